// Package delta is the Delta Lake table format: a transaction log (reader
// protocol 1, writer protocol 2; or 3 and 7 with deletion vectors for a
// writer that deletes rows, Options.DeleteRows) kept on an object store and
// written only with create-only conditional puts.
//
// The log is the manifest of a table and the source of truth for the sink's
// exactly-once state: a data file exists for readers only once a commit names
// it in an add action, and the last source offset of every Kafka partition
// whose records the table holds is the version of a txn action whose appId
// names the partition. Spark, delta-rs, DuckDB, Trino and Polars read the
// tables without this package.
package delta

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

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

// ErrUnsupportedProtocol is returned (wrapped) when a table requires a reader
// or writer protocol this committer cannot write correctly: newer than
// (1, 2), or for a Table opened with DeleteRows, newer than (3, 7) or with
// table features other than deletionVectors (and the legacy appendOnly and
// invariants, honoured).
var ErrUnsupportedProtocol = errors.New("unsupported table protocol")

// MinLogRetention is the shortest retention any log cleanup may use: a
// cleanup (sink vacuum -log, or another engine's) must never delete a log
// version written less than MinLogRetention ago. Writers rely on it; see
// Table.
const MinLogRetention = time.Hour

// maxSnapshotAge is how long after a Table last saw the log it still puts
// the next version without reading the log first. The Table doc proves it
// safe for clock skews and attempt durations up to 3/4 of MinLogRetention.
const maxSnapshotAge = MinLogRetention / 4

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
	// DeleteRows is committer.Options.DeleteRows: the Table creates tables
	// of reader 3 / writer 7 with deletion vectors enabled, writes tables
	// of that protocol, and takes Commit.Deletes. Without it such tables
	// are refused with ErrUnsupportedProtocol.
	DeleteRows bool
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
//     snapshot it knows (loading one if it has none, or if it last saw the
//     log more than maxSnapshotAge ago: see "Log cleanup" below), without
//     reading the log for newer commits: for each source partition the
//     table's txn version must be below the block's first offset (and the
//     table must record no other lineage for it, TxnCondition.Lineage), and every
//     file the commit removes must be active.
//  3. It puts that snapshot's version+1 with If-None-Match: the put can only
//     land if no one committed since, so the checks held against the table
//     as it is. The commit file holds commitInfo (first, with the commit
//     id), then protocol/metaData if any, txn, remove and add actions.
//     Success makes the commit visible whole, once one HEAD has checked
//     that the table was not deleted under the writer (see "Deleted
//     tables" below).
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
// A commit that deletes rows (Commit.Deletes, DeleteRows only) computes,
// between steps 2 and 3, each file's new deletion vector from the snapshot
// the attempt builds on (the vector it has, plus the rows) and puts them,
// in a deletion vector file of the attempt's own, before the log entry
// that names them; a lost race (step 4) computes them again from the newer
// snapshot, so a concurrent deletion from the same file is never lost. A
// file put by an attempt that did not land is an orphan, as a data file
// is.
//
// A table's first commit may create it (CreateCommit): version 0 then
// holds protocol and metaData besides the commit's actions, and goes
// through steps 3 to 5 like any other version, with version 0 taken by a
// concurrent creator as the lost race of step 4.
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
// Log cleanup and the unread put. A put of version N+1 is only correct if N
// is the table's latest version; the create-only put proves that no N+1
// exists, not that one never existed. Log cleanup deletes old versions, so
// a writer holding a snapshot older than the cleaned range would see its
// put of N+1 succeed below the newest checkpoint, where no reader looks.
// The committer therefore never puts a version at or below the oldest
// retained version or the newest checkpoint, by this rule:
//
//   - Cleanup invariant (relied on, not checked): a cleanup deletes only
//     versions below the newest checkpoint whose objects were written more
//     than MinLogRetention before the cleanup runs. VacuumLog keeps it.
//   - Every snapshot records seenAt, a time at which its version was the
//     latest: taken before the read that found no version after it, or
//     before the put that created it. Versions are created in order (a
//     writer puts only the successor of a version it has read or written),
//     so any version after N was created after seenAt.
//   - Before each put, a snapshot older than maxSnapshotAge
//     (MinLogRetention/4) is replaced by a full load from the newest
//     checkpoint, and a lost race is read from a snapshot within that age.
//     So when the put (or a read of the versions after N) happens, every
//     version after N is younger than maxSnapshotAge plus the attempt's
//     duration, measured on the writer's clock.
//   - A version younger than MinLogRetention is never deleted. Deleting a
//     version after N would need its store timestamp, at least seenAt, to
//     be more than MinLogRetention before the cleanup's clock, which ran
//     before the put, at most maxSnapshotAge plus the attempt after
//     seenAt. That takes the writer's clock skew to the store plus its
//     skew to the cleanup host plus the attempt's duration to reach 3/4 of
//     MinLogRetention (45 minutes). Short of that, every version after N
//     that was ever created still exists: if N+1 was, the put fails and
//     the writer reads it, as in step 4. Hence a put that succeeds is the
//     true successor of the latest version, which is at or above the
//     newest checkpoint.
//
// The test TestStaleWriterAfterLogCleanup breaks the rule's premise on
// purpose (a writer whose snapshot is older than cleanup allows) and shows
// the commit landing after the checkpoint instead of below it.
//
// Deleted tables. No retention bounds an operator deleting a table's prefix,
// so no age makes the unread put safe against it: a writer whose snapshot
// predates the deletion would put N+1 into an empty prefix, a log without
// version 0 or a checkpoint that no engine can load. Therefore after every
// put of a version above 0 the committer checks the log's anchor, the object
// readers start from (version 0, or the checkpoint it loaded from), with one
// HEAD that compares the anchor's ETag with the one it last saw. If the
// anchor is gone or replaced, it loads the table as a reader would; if that
// load does not reach the commit, the commit is withdrawn (its object is
// deleted, so a table created again later cannot collide with it) and
// Commit fails with committer.ErrTableReplaced, before the caller moves any offset.
// A deletion that completes between the check and the put's return cannot
// be detected by any single request; the check closes every other case.
//
// A Table is safe for concurrent use; it caches the latest snapshot it saw.
type Table struct {
	bucket objstore.Bucket
	root   string
	opts   Options
	logger *slog.Logger

	mu struct {
		sync.Mutex
		// latest is the newest snapshot this Table saw.
		latest *committer.Snapshot
		// anchor is the log object readers start from, as last seen.
		anchor anchor
		// absentAt is when a listing that found no log began, while latest
		// is nil; zero if none did. See Create.
		absentAt time.Time
	}
}

// anchor names the log object a table's readers start from (version 0 or a
// checkpoint) and the ETag it had when this Table last saw it. A deleted or
// re-created table has the object missing or with another ETag.
type anchor struct {
	key, etag string
	// base is the version of the anchor's snapshot: the checkpoint's, or 0.
	base int64
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

// remember caches s if it is newer than the cached snapshot: a later
// version, the same version seen more recently, or another table (the log
// was deleted and created again, so versions start over).
func (t *Table) remember(s *committer.Snapshot) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := t.mu.latest
	if cur == nil || s.Version > cur.Version ||
		(s.Version == cur.Version && st(s).seenAt.After(st(cur).seenAt)) ||
		s.Metadata.ID != cur.Metadata.ID {
		t.mu.latest = s
	}
}

func (t *Table) cached() *committer.Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mu.latest
}

// forget drops the cached snapshot and anchor, so that the next use of the
// Table loads the log from scratch.
func (t *Table) forget() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.mu.latest = nil
	t.mu.anchor = anchor{}
	t.mu.absentAt = time.Time{}
}

// markAbsent records that a listing begun at seenAt found no log.
func (t *Table) markAbsent(seenAt time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.latest == nil && seenAt.After(t.mu.absentAt) {
		t.mu.absentAt = seenAt
	}
}

// seenAbsent reports whether this Table has no snapshot and saw the table
// absent recently enough for Create to put version 0 without looking again.
func (t *Table) seenAbsent() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mu.latest == nil && !t.mu.absentAt.IsZero() && t.opts.Now().Sub(t.mu.absentAt) <= maxSnapshotAge
}

func (t *Table) currentAnchor() anchor {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mu.anchor
}

func (t *Table) setAnchor(a anchor) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.mu.anchor = a
}

// fresh reports whether s was seen to be the latest version recently enough
// for a put of its successor, or a probe for the versions after it, to be
// safe against log cleanup (see the Table doc).
func (t *Table) fresh(s *committer.Snapshot) bool {
	return t.opts.Now().Sub(st(s).seenAt) <= maxSnapshotAge
}

// Snapshot loads the latest snapshot: the newest checkpoint, then the JSON
// commits after it. A log of up to a thousand objects costs one listing and
// one read per object loaded; a longer one is found through
// _last_checkpoint (see load). It returns committer.ErrNoTable (wrapped) if the table
// has no log.
func (t *Table) Snapshot(ctx context.Context) (*committer.Snapshot, error) {
	s, a, err := t.load(ctx)
	if err != nil {
		return nil, err
	}
	t.remember(s)
	t.setAnchor(a)
	return s, nil
}

// Update returns the table advanced past s: s, or the Table's cached
// snapshot if that is newer, advanced by the commits after it (a snapshot of
// the same version if there are none). It costs one read per new commit plus
// one. A snapshot too old to be advanced safely after log cleanup (see the
// Table doc) is not advanced: the table is loaded again instead.
func (t *Table) Update(ctx context.Context, s *committer.Snapshot) (*committer.Snapshot, error) {
	if !ours(s) {
		s = nil
	}
	if c := t.cached(); s == nil || (c != nil && c.Version > s.Version && c.Metadata.ID == s.Metadata.ID) {
		s = c
	}
	if s == nil || !t.fresh(s) {
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
//
// A Table whose Snapshot found no table less than maxSnapshotAge ago puts
// version 0 at once instead of reading the log again: one request for a
// new table. It relies on version 0 of a table created after that look
// still existing when the put runs, which holds because a log cleanup
// deletes no version younger than MinLogRetention (and VacuumLog never
// deletes version 0): the create-only put then fails and the winner's
// table is loaded, as for any concurrent creator. TestCreateAfterAbsent
// creates the table behind the Table's back, and lets the look age past
// maxSnapshotAge.
func (t *Table) Create(ctx context.Context, cmd committer.Metadata) (*committer.Snapshot, error) {
	var schema string
	if cmd.Schema != nil {
		var err error
		if schema, err = SchemaJSON(cmd.Schema); err != nil {
			return nil, fmt.Errorf("create table %s: %w", t.root, err)
		}
	}
	md := metadataAction(cmd, schema)
	md.Configuration = t.newConfiguration(md.Configuration)
	if !t.seenAbsent() {
		s, err := t.Snapshot(ctx)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, committer.ErrNoTable) {
			return nil, err
		}
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
			"operation":           committer.OpCreateTable,
			"operationParameters": map[string]string{"isManaged": "false", "partitionBy": partitionByJSON(md.PartitionColumns)},
			"isBlindAppend":       true,
			"engineInfo":          EngineInfo,
			infoCommitID:          id,
			infoInstance:          t.opts.Instance,
		},
		protocol: t.newProtocol(),
		metadata: &md,
	}
	body, err := e.encode()
	if err != nil {
		return nil, fmt.Errorf("create table %s: %w", t.root, err)
	}
	bo := t.newBackoff()
	for attempt := 1; ; attempt++ {
		seenAt := t.opts.Now()
		key := t.logKey(commitName(0))
		etag, err := t.bucket.Put(ctx, key, bytes.NewReader(body), int64(len(body)), objstore.PutOptions{IfNoneMatch: true})
		if err == nil {
			s := emptySnapshot()
			apply(s, 0, e)
			st(s).seenAt = seenAt
			t.remember(s)
			t.setAnchor(anchor{key: key, etag: etag})
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
			return nil, fmt.Errorf("create table %s: %w after %d attempts: %w", t.root, committer.ErrTooManyAttempts, attempt, errors.Join(err, serr))
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
