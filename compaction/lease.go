package compaction

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/evodb/sink/objstore"
)

// LeaseKey is the key of a table's compaction lease, relative to the table
// root. It lies outside _delta_log and data/, so neither Delta readers nor
// Vacuum look at it.
const LeaseKey = "_evodb/compaction.lease"

// ErrLeaseHeld is returned (wrapped in a *LeaseHeldError) when another owner
// holds an unexpired lease.
var ErrLeaseHeld = errors.New("lease is held by another owner")

// ErrLeaseLost is returned (wrapped) when a lease could not be renewed
// because someone else took it over.
var ErrLeaseLost = errors.New("lease was lost")

// LeaseHeldError names the owner of a lease that could not be taken.
type LeaseHeldError struct {
	Key     string
	Owner   string
	Expires time.Time
}

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("%s: %v: %s until %s", e.Key, ErrLeaseHeld, e.Owner, e.Expires.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrLeaseHeld) match.
func (e *LeaseHeldError) Is(target error) bool { return target == ErrLeaseHeld }

// leaseBody is the lease object's JSON.
type leaseBody struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
}

// Lease is a held lease: one owner of a table's job at a time across all
// sink instances (one compactor per table, one mirror maintainer per
// mirror). It is taken with a create-only put, or, when the
// current lease has expired, with a compare-and-swap put on its ETag, so two
// contenders never both succeed. Expiry is judged by the taker's clock, so
// the TTL must exceed the clock skew between instances plus the longest
// pause between renewals (one merge job).
type Lease struct {
	b     objstore.Bucket
	key   string
	owner string
	ttl   time.Duration
	etag  string
	// expires is when the lease as last written runs out.
	expires time.Time
}

// AcquireLease takes the compaction lease of the table at root for owner,
// valid for ttl from now. It fails with a *LeaseHeldError if another owner
// holds an unexpired lease. An owner that still holds the lease (after a
// restart, say) takes it again.
func AcquireLease(ctx context.Context, b objstore.Bucket, root, owner string, ttl time.Duration, now time.Time) (*Lease, error) {
	return AcquireLeaseAt(ctx, b, joinKey(root, LeaseKey), owner, ttl, now)
}

// AcquireLeaseAt takes the lease kept in the object key, as AcquireLease
// takes a table's compaction lease: other jobs that need one owner per
// table (the mirror maintainer) keep their leases under other keys.
func AcquireLeaseAt(ctx context.Context, b objstore.Bucket, key, owner string, ttl time.Duration, now time.Time) (*Lease, error) {
	l := &Lease{b: b, key: key, owner: owner, ttl: ttl}
	for attempt := 0; attempt < 3; attempt++ {
		etag, err := l.put(ctx, now, objstore.PutOptions{IfNoneMatch: true})
		if err == nil {
			l.etag = etag
			return l, nil
		}
		if !errors.Is(err, objstore.ErrPreconditionFailed) {
			return nil, err
		}
		cur, curTag, err := l.read(ctx)
		if errors.Is(err, objstore.ErrNotExist) {
			continue // released in between: try to create it again
		}
		if err != nil {
			return nil, err
		}
		if cur.Owner != owner && now.Before(cur.Expires) {
			return nil, &LeaseHeldError{Key: l.key, Owner: cur.Owner, Expires: cur.Expires}
		}
		etag, err = l.put(ctx, now, objstore.PutOptions{IfMatch: curTag})
		if err == nil {
			l.etag = etag
			return l, nil
		}
		if !errors.Is(err, objstore.ErrPreconditionFailed) && !errors.Is(err, objstore.ErrNotExist) {
			return nil, err
		}
		// Someone else took it over or released it first: look again.
	}
	return nil, fmt.Errorf("acquire lease %s: %w", l.key, ErrLeaseHeld)
}

// Owner returns the lease's owner.
func (l *Lease) Owner() string { return l.owner }

// Expires returns when the lease runs out unless renewed.
func (l *Lease) Expires() time.Time { return l.expires }

// Renew extends the lease to now+ttl. It fails with ErrLeaseLost if the
// lease object changed since this owner last wrote it.
func (l *Lease) Renew(ctx context.Context, now time.Time) error {
	etag, err := l.put(ctx, now, objstore.PutOptions{IfMatch: l.etag})
	if errors.Is(err, objstore.ErrPreconditionFailed) || errors.Is(err, objstore.ErrNotExist) {
		return fmt.Errorf("renew lease %s: %w", l.key, ErrLeaseLost)
	}
	if err != nil {
		return err
	}
	l.etag = etag
	return nil
}

// Release gives the lease up by overwriting it, conditionally on its ETag,
// with an expired lease: an owner whose lease was taken over never releases
// the new owner's.
func (l *Lease) Release(ctx context.Context) error {
	body, err := json.Marshal(leaseBody{Owner: l.owner})
	if err != nil {
		return fmt.Errorf("release lease %s: %w", l.key, err)
	}
	_, err = l.b.Put(ctx, l.key, bytes.NewReader(body), int64(len(body)), objstore.PutOptions{IfMatch: l.etag})
	if err != nil && !errors.Is(err, objstore.ErrPreconditionFailed) && !errors.Is(err, objstore.ErrNotExist) {
		return fmt.Errorf("release lease %s: %w", l.key, err)
	}
	return nil
}

func (l *Lease) put(ctx context.Context, now time.Time, opts objstore.PutOptions) (string, error) {
	exp := now.Add(l.ttl)
	body, err := json.Marshal(leaseBody{Owner: l.owner, Expires: exp})
	if err != nil {
		return "", fmt.Errorf("write lease %s: %w", l.key, err)
	}
	etag, err := l.b.Put(ctx, l.key, bytes.NewReader(body), int64(len(body)), opts)
	if err != nil {
		return "", fmt.Errorf("write lease %s: %w", l.key, err)
	}
	l.expires = exp
	return etag, nil
}

// read returns the current lease and an ETag to swap it with. The ETag is
// read before the body, so if the object changes in between the swap fails
// rather than acting on a body newer than its ETag.
func (l *Lease) read(ctx context.Context) (leaseBody, string, error) {
	info, err := l.b.Head(ctx, l.key)
	if err != nil {
		return leaseBody{}, "", fmt.Errorf("read lease %s: %w", l.key, err)
	}
	rc, err := l.b.Get(ctx, l.key)
	if err != nil {
		return leaseBody{}, "", fmt.Errorf("read lease %s: %w", l.key, err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return leaseBody{}, "", fmt.Errorf("read lease %s: %w", l.key, err)
	}
	var cur leaseBody
	if err := json.Unmarshal(data, &cur); err != nil {
		// A corrupt lease protects nothing: treat it as expired.
		return leaseBody{}, info.ETag, nil
	}
	return cur, info.ETag, nil
}
