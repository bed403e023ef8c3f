package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// ErrInjected is the error a Faulty bucket returns for a fault whose rule
// names no other error.
var ErrInjected = errors.New("injected fault")

// Op names a Bucket operation in fault rules.
type Op string

// The Bucket operations.
const (
	OpPut      Op = opPut
	OpGet      Op = opGet
	OpGetRange Op = opGetRange
	OpHead     Op = opHead
	OpList     Op = opList
	OpDelete   Op = opDelete
)

// Fault is one rule of a Faulty bucket. It applies to the calls of Op whose
// key (for List, the prefix) has KeyPrefix and KeySuffix.
type Fault struct {
	Op        Op
	KeyPrefix string
	KeySuffix string
	// Nth fails the Nth matching call (1-based, counted from when the rule
	// was added) and no other.
	Nth int
	// Rate fails each matching call with this probability; 1 fails all.
	Rate float64
	// Latency delays every matching call, failing or not.
	Latency time.Duration
	// Ambiguous performs the call and then reports the failure anyway: the
	// write happened, the caller cannot know it.
	Ambiguous bool
	// Err is the error returned (wrapped); nil means ErrInjected.
	Err error
}

// faultRule is a Fault with its match count.
type faultRule struct {
	Fault
	calls int
}

// Faulty wraps a Bucket and injects failures and latency by rules, for
// tests of what callers do when the store misbehaves. With no rules it
// passes every call through. It is safe for concurrent use; with one
// goroutine, a given seed gives the same faults on every run.
type Faulty struct {
	b        Bucket
	mu       sync.Mutex
	rng      *rand.Rand
	rules    []*faultRule
	calls    map[Op]int64
	injected map[Op]int64
}

var _ Bucket = (*Faulty)(nil)

// NewFaulty wraps b; seed drives the Rate rules.
func NewFaulty(b Bucket, seed int64) *Faulty {
	return &Faulty{
		b:        b,
		rng:      rand.New(rand.NewPCG(uint64(seed), 0x5eed)),
		calls:    map[Op]int64{},
		injected: map[Op]int64{},
	}
}

// Add installs a rule. When several rules match a call, all their latencies
// add up and the first failing rule (in order of addition) decides the
// error.
func (f *Faulty) Add(rule Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, &faultRule{Fault: rule})
}

// Reset removes all rules; counters are kept.
func (f *Faulty) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = nil
}

// Calls returns how many calls of op the bucket has seen.
func (f *Faulty) Calls(op Op) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// Injected returns how many faults were injected into calls of op.
func (f *Faulty) Injected(op Op) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.injected[op]
}

// InjectedTotal returns how many faults were injected in all.
func (f *Faulty) InjectedTotal() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for _, v := range f.injected {
		n += v
	}
	return n
}

// plan decides the fate of one call: the delay, whether the fault is
// ambiguous, and the fault (nil for none).
func (f *Faulty) plan(op Op, key string) (time.Duration, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	var (
		delay     time.Duration
		fault     error
		ambiguous bool
	)
	for _, r := range f.rules {
		if r.Op != op || !strings.HasPrefix(key, r.KeyPrefix) || !strings.HasSuffix(key, r.KeySuffix) {
			continue
		}
		r.calls++
		delay += r.Latency
		fail := r.Nth > 0 && r.calls == r.Nth
		if r.Rate > 0 && f.rng.Float64() < r.Rate {
			fail = true
		}
		if fail && fault == nil {
			err := r.Err
			if err == nil {
				err = ErrInjected
			}
			fault = fmt.Errorf("%s %s: %w", op, key, err)
			ambiguous = r.Ambiguous
		}
	}
	if fault != nil {
		f.injected[op]++
	}
	return delay, ambiguous, fault
}

// before applies the delay and reports whether the call should go ahead,
// and the error to return (after it, for an ambiguous fault).
func (f *Faulty) before(ctx context.Context, op Op, key string) (proceed bool, fault error) {
	delay, ambiguous, fault := f.plan(op, key)
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false, fmt.Errorf("%s %s: %w", op, key, ctx.Err())
		}
	}
	return fault == nil || ambiguous, fault
}

// Put implements Bucket.
func (f *Faulty) Put(ctx context.Context, key string, body io.ReaderAt, size int64, opts PutOptions) (string, error) {
	proceed, fault := f.before(ctx, OpPut, key)
	if !proceed {
		return "", fault
	}
	etag, err := f.b.Put(ctx, key, body, size, opts)
	if fault != nil {
		return "", fault
	}
	return etag, err
}

// Get implements Bucket.
func (f *Faulty) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	proceed, fault := f.before(ctx, OpGet, key)
	if !proceed {
		return nil, fault
	}
	rc, err := f.b.Get(ctx, key)
	return closeOnFault(rc, err, fault)
}

// GetRange implements Bucket.
func (f *Faulty) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	proceed, fault := f.before(ctx, OpGetRange, key)
	if !proceed {
		return nil, fault
	}
	rc, err := f.b.GetRange(ctx, key, offset, length)
	return closeOnFault(rc, err, fault)
}

func closeOnFault(rc io.ReadCloser, err, fault error) (io.ReadCloser, error) {
	if fault != nil {
		if err == nil {
			_ = rc.Close()
		}
		return nil, fault
	}
	return rc, err
}

// Head implements Bucket.
func (f *Faulty) Head(ctx context.Context, key string) (ObjectInfo, error) {
	proceed, fault := f.before(ctx, OpHead, key)
	if !proceed {
		return ObjectInfo{}, fault
	}
	info, err := f.b.Head(ctx, key)
	if fault != nil {
		return ObjectInfo{}, fault
	}
	return info, err
}

// List implements Bucket. Rules match the listed prefix.
func (f *Faulty) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	proceed, fault := f.before(ctx, OpList, prefix)
	if !proceed {
		return fault
	}
	err := f.b.List(ctx, prefix, fn)
	if fault != nil {
		return fault
	}
	return err
}

// Delete implements Bucket.
func (f *Faulty) Delete(ctx context.Context, key string) error {
	proceed, fault := f.before(ctx, OpDelete, key)
	if !proceed {
		return fault
	}
	err := f.b.Delete(ctx, key)
	if fault != nil {
		return fault
	}
	return err
}
