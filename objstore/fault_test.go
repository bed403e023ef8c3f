package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAcceptanceFaultyWithoutRules(t *testing.T) {
	AcceptanceTest(t, NewFaulty(NewMemory(), 1))
}

func put(ctx context.Context, b Bucket, key, value string) error {
	_, err := b.Put(ctx, key, bytes.NewReader([]byte(value)), int64(len(value)), PutOptions{})
	return err
}

func TestFaultyNth(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		rule     Fault
		keys     []string
		wantFail []bool
	}{
		{
			name:     "third put",
			rule:     Fault{Op: OpPut, Nth: 3},
			keys:     []string{"a", "b", "c", "d"},
			wantFail: []bool{false, false, true, false},
		},
		{
			name:     "second matching suffix",
			rule:     Fault{Op: OpPut, KeySuffix: ".json", Nth: 2},
			keys:     []string{"1.json", "x.parquet", "y.parquet", "2.json", "3.json"},
			wantFail: []bool{false, false, false, true, false},
		},
		{
			name:     "first matching prefix",
			rule:     Fault{Op: OpPut, KeyPrefix: "_delta_log/", Nth: 1},
			keys:     []string{"data/1", "_delta_log/0", "_delta_log/1"},
			wantFail: []bool{false, true, false},
		},
		{
			name:     "other operation untouched",
			rule:     Fault{Op: OpDelete, Nth: 1},
			keys:     []string{"a", "b"},
			wantFail: []bool{false, false},
		},
		{
			name:     "rate one fails all",
			rule:     Fault{Op: OpPut, Rate: 1},
			keys:     []string{"a", "b"},
			wantFail: []bool{true, true},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := NewMemory()
			f := NewFaulty(mem, 1)
			f.Add(tc.rule)
			var injected int64
			for i, key := range tc.keys {
				err := put(ctx, f, key, "v")
				if tc.wantFail[i] {
					injected++
					require.ErrorIs(t, err, ErrInjected, key)
					_, err := mem.Head(ctx, key)
					require.ErrorIs(t, err, ErrNotExist, "a plain fault does not write %s", key)
				} else {
					require.NoError(t, err, key)
				}
			}
			require.Equal(t, injected, f.Injected(OpPut))
			require.Equal(t, injected, f.InjectedTotal())
			require.Equal(t, int64(len(tc.keys)), f.Calls(OpPut))
		})
	}
}

func TestFaultyAmbiguous(t *testing.T) {
	ctx := context.Background()
	mem := NewMemory()
	f := NewFaulty(mem, 1)
	conflict := errors.New("connection reset")
	f.Add(Fault{Op: OpPut, Nth: 1, Ambiguous: true, Err: conflict})
	f.Add(Fault{Op: OpGet, Nth: 1, Ambiguous: true})

	_, err := f.Put(ctx, "k", bytes.NewReader([]byte("v")), 1, PutOptions{IfNoneMatch: true})
	require.ErrorIs(t, err, conflict)
	require.Equal(t, []byte("v"), readAll(t, mem, "k"), "the write happened")
	// The retry then sees its own write as a conflict.
	_, err = f.Put(ctx, "k", bytes.NewReader([]byte("v")), 1, PutOptions{IfNoneMatch: true})
	require.ErrorIs(t, err, ErrPreconditionFailed)

	_, err = f.Get(ctx, "k")
	require.ErrorIs(t, err, ErrInjected)
	require.Equal(t, []byte("v"), readAll(t, f, "k"))

	f.Reset()
	require.NoError(t, put(ctx, f, "k2", "v"))
	require.Equal(t, int64(2), f.InjectedTotal())
}

func TestFaultyCustomError(t *testing.T) {
	ctx := context.Background()
	f := NewFaulty(NewMemory(), 1)
	f.Add(Fault{Op: OpHead, Rate: 1, Err: ErrPreconditionFailed})
	f.Add(Fault{Op: OpList, Rate: 1})
	f.Add(Fault{Op: OpDelete, Rate: 1})
	f.Add(Fault{Op: OpGetRange, Rate: 1})
	_, err := f.Head(ctx, "k")
	require.ErrorIs(t, err, ErrPreconditionFailed)
	require.ErrorIs(t, f.List(ctx, "", func(ObjectInfo) error { return nil }), ErrInjected)
	require.ErrorIs(t, f.Delete(ctx, "k"), ErrInjected)
	_, err = f.GetRange(ctx, "k", 0, 1)
	require.ErrorIs(t, err, ErrInjected)
}

func TestFaultySeedReproducible(t *testing.T) {
	ctx := context.Background()
	pattern := func(seed int64) []bool {
		f := NewFaulty(NewMemory(), seed)
		f.Add(Fault{Op: OpPut, Rate: 0.5})
		var out []bool
		for i := range 64 {
			out = append(out, put(ctx, f, fmt.Sprint(i), "v") != nil)
		}
		return out
	}
	a := pattern(42)
	require.Equal(t, a, pattern(42))
	require.Contains(t, a, true)
	require.Contains(t, a, false)
}

func TestFaultyLatency(t *testing.T) {
	ctx := context.Background()
	f := NewFaulty(NewMemory(), 1)
	f.Add(Fault{Op: OpPut, Latency: 20 * time.Millisecond})
	start := time.Now()
	require.NoError(t, put(ctx, f, "k", "v"))
	require.GreaterOrEqual(t, time.Since(start), 20*time.Millisecond)
	require.Zero(t, f.InjectedTotal(), "latency alone is not a fault")

	f.Add(Fault{Op: OpHead, Latency: time.Hour})
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err := f.Head(cancelled, "k")
	require.ErrorIs(t, err, context.Canceled)
}

func TestFaultyConcurrentNth(t *testing.T) {
	ctx := context.Background()
	f := NewFaulty(NewMemory(), 1)
	f.Add(Fault{Op: OpPut, Nth: 5})
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures int
	)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := put(ctx, f, fmt.Sprint(i), "v"); err != nil {
				mu.Lock()
				failures++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 1, failures)
	require.Equal(t, int64(1), f.Injected(OpPut))
	require.Equal(t, int64(16), f.Calls(OpPut))
}
