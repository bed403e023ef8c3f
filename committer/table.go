// Package committer is the table log: a Delta Lake transaction log (reader
// protocol 1, writer protocol 2) kept on an object store and written only
// with create-only conditional puts.
//
// The log is the manifest of a table and the source of truth for the sink's
// exactly-once state: a data file exists for readers only once a commit names
// it in an add action, and the last source offset of every Kafka partition
// whose records the table holds is the version of a txn action whose appId
// names the partition. Spark, delta-rs, DuckDB, Trino and Polars read the
// tables without this package.
package committer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/evodb/sink/objstore"
)

// ErrNoTable is returned (wrapped) when a table has no log.
var ErrNoTable = errors.New("table does not exist")

// ErrFileRemoved is matched (errors.Is) by a *FileRemovedError: a commit
// removes a file that is no longer active.
var ErrFileRemoved = errors.New("file is no longer active")

// ErrFileExists is returned (wrapped) when a commit adds a path that is
// already active and that it does not also remove.
var ErrFileExists = errors.New("file is already active")

// ErrMetadataChanged is returned (wrapped) when a commit carries a new
// metaData but the table's schema changed after the commit's ReadVersion:
// committing would silently drop the other writer's schema change, so the
// caller must merge schemas again.
var ErrMetadataChanged = errors.New("table metadata changed concurrently")

// ErrUnsupportedProtocol is returned (wrapped) when a table requires a reader
// or writer protocol newer than (1, 2), which this committer cannot write
// correctly.
var ErrUnsupportedProtocol = errors.New("unsupported table protocol")

// ErrTooManyAttempts is returned (wrapped) when a commit did not land within
// Options.MaxCommitAttempts attempts.
var ErrTooManyAttempts = errors.New("too many commit attempts")

// TxnConflictError refuses an append whose records from a source partition
// are, at least in part, already in the table: the table's txn version for
// AppID is at or past the block's first offset. The sink drops the
// already-durable records and commits the rest.
type TxnConflictError struct {
	AppID           string
	TableTxnVersion int64
	FirstOffset     int64
	TableVersion    int64
}

func (e *TxnConflictError) Error() string {
	return fmt.Sprintf("txn conflict for %s: table version %d already holds offsets through %d, block starts at offset %d",
		e.AppID, e.TableVersion, e.TableTxnVersion, e.FirstOffset)
}

// FileRemovedError refuses a commit that removes a file no longer active in
// the table (removed by a concurrent commit, or never added).
type FileRemovedError struct {
	Path         string
	TableVersion int64
}

func (e *FileRemovedError) Error() string {
	return fmt.Sprintf("remove %s: %v at table version %d", e.Path, ErrFileRemoved, e.TableVersion)
}

// Is makes errors.Is(err, ErrFileRemoved) match.
func (e *FileRemovedError) Is(target error) bool { return target == ErrFileRemoved }

// Options configures a Table. The zero value is usable.
type Options struct {
	// Instance identifies the sink instance in commitInfo.
	Instance string
	// CheckpointInterval is how many versions lie between checkpoints;
	// default 10.
	CheckpointInterval int
	// TombstoneRetention is how long a removed file stays in checkpoints as
	// a tombstone; default one week, Delta's default
	// delta.deletedFileRetentionDuration. Vacuum must wait at least as long
	// before deleting removed files.
	TombstoneRetention time.Duration
	// MaxCommitAttempts bounds the put attempts of one Commit; default 100.
	MaxCommitAttempts int
	// RetryInitialInterval and RetryMaxInterval bound the exponential backoff
	// after store errors; defaults 50ms and 5s. Lost races are retried at
	// once: someone else made progress.
	RetryInitialInterval time.Duration
	RetryMaxInterval     time.Duration
	// Now is the clock for commit timestamps; default time.Now.
	Now func() time.Time
	// Logger receives warnings about retries and checkpoints.
	Logger *slog.Logger
}

// Table is one Delta table under a key prefix of a bucket.
//
// Commit protocol. A commit of version v is the object
// _delta_log/<v:%020d>.json, written with a create-only put, so at most one
// writer ever creates each version and versions are contiguous. In order:
//
//  1. The caller has uploaded every data file the commit adds. Until step 3
//     succeeds they are orphans no reader sees; vacuum removes them later.
//  2. The committer checks the commit's conditions against the latest
//     snapshot it knows (loading one if it has none), without reading the
//     log for newer commits: for each source partition the table's txn
//     version must be below the block's first offset (and the table must
//     record no other lineage for it, TxnCondition.Lineage), and every
//     file the commit removes must be active.
//  3. It puts that snapshot's version+1 with If-None-Match: the put can only
//     land if no one committed since, so the checks held against the table
//     as it is. The commit file holds commitInfo (first, with the commit
//     id), then protocol/metaData if any, txn, remove and add actions.
//     Success makes the commit visible whole.
//  4. If the put lost the race (precondition failed), another commit took the
//     version: the committer reads the new commits; if one carries this
//     commit's id, an earlier attempt landed and the commit is done
//     (AlreadyCommitted); otherwise it re-checks the conditions and retries
//     at the next version, at once.
//  5. If the put failed ambiguously (timeout, 5xx: the object may or may not
//     exist), the committer backs off and reads the log again: the version
//     holding our id means success, someone else's commit means a lost race
//     (step 4), and no object means the put is retried at the same version.
//     Retrying is safe because the put is create-only and the id identifies
//     the commit.
//  6. Every CheckpointInterval versions the committer writes a checkpoint and
//     then _last_checkpoint; both are best effort.
//
// Idempotence: a commit is identified by its id, and a txn-conditioned
// append can land at most once however often it is retried, because once it
// lands the table's txn version refuses it again. Txn versions never go
// backwards: an append is refused unless its first offset is past the
// table's txn version, and its txn version is its last offset.
//
// A crash leaves: before step 3, orphan data files and nothing else; during
// step 3, either no commit or the whole commit (object stores create objects
// atomically), and a restarted sink learns which from the txn versions;
// during step 6, a checkpoint without _last_checkpoint (or a stale
// _last_checkpoint), which readers tolerate since the JSON commits remain.
//
// A Table is safe for concurrent use; it caches the latest snapshot it saw.
type Table struct {
	bucket objstore.Bucket
	root   string
	opts   Options
	logger *slog.Logger

	mu     sync.Mutex
	latest *Snapshot
}

// Open returns the table under root (a key prefix such as
// "sales/public/orders") in b. It does no I/O.
func Open(b objstore.Bucket, root string, opts Options) *Table {
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = 10
	}
	if opts.TombstoneRetention <= 0 {
		opts.TombstoneRetention = 7 * 24 * time.Hour
	}
	if opts.MaxCommitAttempts <= 0 {
		opts.MaxCommitAttempts = 100
	}
	if opts.RetryInitialInterval <= 0 {
		opts.RetryInitialInterval = 50 * time.Millisecond
	}
	if opts.RetryMaxInterval <= 0 {
		opts.RetryMaxInterval = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	root = strings.Trim(root, "/")
	if root != "" {
		root += "/"
	}
	return &Table{bucket: b, root: root, opts: opts, logger: logger.With("table", strings.TrimSuffix(root, "/"))}
}

// Root returns the table's key prefix without a trailing slash.
func (t *Table) Root() string { return strings.TrimSuffix(t.root, "/") }

func (t *Table) remember(s *Snapshot) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.latest == nil || s.Version > t.latest.Version {
		t.latest = s
	}
}

func (t *Table) cached() *Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.latest
}

// Snapshot loads the latest snapshot: the latest checkpoint (found through
// _last_checkpoint, or by listing the log), then the JSON commits after it.
// It returns ErrNoTable (wrapped) if the table has no log.
func (t *Table) Snapshot(ctx context.Context) (*Snapshot, error) {
	s, err := t.load(ctx)
	if err != nil {
		return nil, err
	}
	t.remember(s)
	return s, nil
}

// Update returns s advanced by the commits after s.Version; s itself if there
// are none. It costs one read per new commit plus one.
func (t *Table) Update(ctx context.Context, s *Snapshot) (*Snapshot, error) {
	if s == nil {
		return t.Snapshot(ctx)
	}
	s, err := t.update(ctx, s)
	if err != nil {
		return nil, err
	}
	t.remember(s)
	return s, nil
}

// Create creates the table at version 0 (protocol (1,2) and md) unless it
// exists, and returns its snapshot. Concurrent creators converge: one put of
// version 0 wins and every other creator returns the winner's table, whose
// metadata may differ from md. Empty md.ID and md.CreatedTime are filled in.
func (t *Table) Create(ctx context.Context, md Metadata) (*Snapshot, error) {
	s, err := t.Snapshot(ctx)
	if err == nil {
		return s, nil
	}
	if !errors.Is(err, ErrNoTable) {
		return nil, err
	}
	now := t.opts.Now()
	if md.ID == "" {
		md.ID = newUUID()
	}
	if md.CreatedTime == 0 {
		md.CreatedTime = now.UnixMilli()
	}
	md = cloneMetadata(md)
	id := newUUID()
	e := &logEntry{
		commitInfo: map[string]any{
			"timestamp":           now.UnixMilli(),
			"operation":           OpCreateTable,
			"operationParameters": map[string]string{"isManaged": "false", "partitionBy": partitionByJSON(md.PartitionColumns)},
			"isBlindAppend":       true,
			"engineInfo":          EngineInfo,
			infoCommitID:          id,
			infoInstance:          t.opts.Instance,
		},
		protocol: &Protocol{MinReaderVersion: readerVersion, MinWriterVersion: writerVersion},
		metadata: &md,
	}
	body, err := e.encode()
	if err != nil {
		return nil, fmt.Errorf("create table %s: %w", t.root, err)
	}
	bo := t.newBackoff()
	for attempt := 1; ; attempt++ {
		_, err := t.bucket.Put(ctx, t.logKey(commitName(0)), bytes.NewReader(body), int64(len(body)), objstore.PutOptions{IfNoneMatch: true})
		if err == nil {
			s := emptySnapshot()
			s.apply(0, e)
			t.remember(s)
			return s, nil
		}
		if !errors.Is(err, objstore.ErrPreconditionFailed) {
			t.logger.Warn("create table: put version 0", "attempt", attempt, "err", err)
		}
		// Version 0 may exist now: ours after an ambiguous failure, or a
		// concurrent creator's. Either way the table is the one in the log.
		s, serr := t.Snapshot(ctx)
		if serr == nil {
			return s, nil
		}
		if attempt >= t.opts.MaxCommitAttempts {
			return nil, fmt.Errorf("create table %s: %w after %d attempts: %w", t.root, ErrTooManyAttempts, attempt, errors.Join(err, serr))
		}
		if err := sleep(ctx, bo.NextBackOff()); err != nil {
			return nil, fmt.Errorf("create table %s: %w", t.root, err)
		}
	}
}

func partitionByJSON(cols []string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, c := range cols {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q", c)
	}
	b.WriteByte(']')
	return b.String()
}

func (t *Table) newBackoff() *backoff.ExponentialBackOff {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = t.opts.RetryInitialInterval
	bo.MaxInterval = t.opts.RetryMaxInterval
	bo.MaxElapsedTime = 0
	bo.Reset()
	return bo
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// newUUID returns a random (version 4) UUID string.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error.
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
