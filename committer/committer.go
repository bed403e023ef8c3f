// Package committer is the table-format seam: the one interface through
// which the sink and compaction read and change tables, whatever format
// keeps them (a Delta Lake log in committer/delta; Iceberg through a REST
// catalog next).
//
// A table is a set of data files plus the exactly-once state of its
// writers. A Snapshot is that state at one version; a Commit changes it
// atomically: it adds and removes files, may change the schema, and is
// fenced by the txn versions of the source partitions whose records it
// holds. Every implementation gives the guarantees stated on Table and
// passes committertest.Run; the runtime imports this package only, never a
// format, so a second format needs no change to the sink, its buffers or
// compaction's planner.
package committer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/evodb/sink/codec"
)

// Format opens the tables of one store in one table format. cmd/sink
// builds it (for Delta, delta.NewFormat over a bucket) and hands it to the
// sink and to compaction.
type Format interface {
	// Open returns the table at root, a path such as
	// "sales/public/orders" relative to the store's root. It does no I/O:
	// the table need not exist.
	Open(root string, opts Options) Table
	// ListTables returns the roots of the tables the store holds, sorted.
	ListTables(ctx context.Context) ([]string, error)
	// Marker returns the key, relative to a table's root, of an object
	// every table of this format has as long as it exists, and that no
	// cleanup deletes; "" if the format keeps no such object in the
	// bucket (tables held by a catalog). The sink looks for it to refuse
	// tables nested inside one another.
	Marker() string
}

// Options are what a caller tells a Format about the writer opening a
// table. The zero value is usable.
type Options struct {
	// Instance identifies the writer in the table's history.
	Instance string
	// Now is the clock for commit timestamps and for the age of cached
	// state; default time.Now.
	Now func() time.Time
	// Logger receives warnings about retries.
	Logger *slog.Logger
	// Format is the table format the caller's configuration names for
	// the table ("delta", "iceberg"). A Format of one table format ignores
	// it; one that routes tables among formats opens the table in it, and
	// without it finds the format that holds the table.
	Format string
	// DeleteRows says the writer deletes rows of files it keeps
	// (Commit.Deletes), as a mirror table's maintainer does: a table it
	// creates allows deleted rows (for Delta, reader 3 / writer 7 with the
	// deletionVectors feature), and it may write tables that have them. A
	// Table opened without it refuses to commit to a table that may hold
	// deleted rows (for Delta, ErrUnsupportedProtocol), because a writer
	// that rewrites files whole, such as compaction, would bring deleted
	// rows back.
	DeleteRows bool
}

// RowDeleter is implemented by tables whose format can delete rows of the
// files it keeps (Options.DeleteRows, Commit.Deletes).
type RowDeleter interface {
	Table
	// DeletedRows returns the positions of a's deleted rows, sorted
	// ascending, read from a.Deleted (nil when a.Deleted is nil). a is a
	// file of one of the Table's snapshots.
	DeletedRows(ctx context.Context, a Add) ([]int64, error)
}

// History is implemented by tables whose format can tell what each commit
// after a version did, as long as it keeps that version's record: a mirror
// table follows its change log that way instead of reading it whole.
type History interface {
	Table
	// Changes returns the commits at versions after..to (after excluded,
	// to included), in version order. It fails with an error wrapping
	// ErrHistoryExpired when one of them is no longer recorded (the log
	// was cleaned up): the caller then starts again from a snapshot.
	Changes(ctx context.Context, after, to int64) ([]VersionChange, error)
}

// VersionChange is what one commit did to a table.
type VersionChange struct {
	Version int64
	// Operation is the commit's operation (OpWrite, OpOptimize, ...), ""
	// when the commit recorded none.
	Operation string
	// Adds and Removes are the files the commit added and removed, with
	// DataChange as the commit recorded it: false for a rewrite of rows
	// the table already held (compaction).
	Adds    []Add
	Removes []Remove
	// Metadata is the table's metadata as the commit set it, nil if the
	// commit did not change it.
	Metadata *Metadata
	// Txns are the txn versions the commit set, by appId.
	Txns map[string]int64
	// Timestamp is when the commit was made, in Unix milliseconds, as the
	// commit recorded it; 0 if it recorded none.
	Timestamp int64
}

// FieldIDTable is implemented by a Table whose format finds its data
// files' columns by field ID (Iceberg). NewFieldIDs returns the IDs the
// columns get when Create (or CreateCommit) creates the table with schema
// s, so that a table's first file, written before the table exists,
// carries IDs too. Commit checks them (Commit.FieldIDs) as any others: a
// table created by another writer with other IDs refuses the commit.
type FieldIDTable interface {
	Table
	NewFieldIDs(s *codec.Schema) map[string]int
}

// Table is one table of a Format. Implementations are safe for concurrent
// use and may cache the latest snapshot they saw.
//
// The guarantees every implementation gives, and committertest checks:
//
//   - Commits are atomic and totally ordered: a commit lands whole at one
//     version (the previous version plus one) or not at all. Of concurrent
//     commits on the same version exactly one wins; a loser reads the
//     newer state, checks its conditions again, and lands at a later
//     version or fails with the condition's error.
//   - Fencing: a commit's TxnConditions are checked against the table as
//     it is when the commit lands, never against an older state: a commit
//     lands only if, for each condition, the table's txn version for its
//     AppID is below FirstOffset and no other lineage is recorded for it.
//     Txn versions therefore never go backwards.
//   - Idempotence: a commit is identified by Commit.ID. A Commit that
//     failed with an outcome unknown (ErrTooManyAttempts, a cancelled
//     context) may be called again with the same ID: if the first one
//     landed, the second reports AlreadyCommitted and changes nothing.
//   - A refused commit (any error other than an unknown outcome) leaves the
//     table unchanged by it.
//   - A commit whose table was deleted, or deleted and created again, while
//     the writer held it fails with ErrTableReplaced or ErrNoTable; nothing
//     it holds is durable.
//
// Data files a commit adds must be uploaded before Commit is called;
// until the commit lands they are orphans that no reader sees.
type Table interface {
	// Root returns the table's root, as passed to Format.Open.
	Root() string
	// Snapshot reads the table's latest state. It returns an error
	// wrapping ErrNoTable if the table does not exist.
	Snapshot(ctx context.Context) (*Snapshot, error)
	// Update returns the table at s's version or later: s advanced by the
	// commits after it (or a later snapshot the Table already holds).
	// With a nil s it is Snapshot.
	Update(ctx context.Context, s *Snapshot) (*Snapshot, error)
	// Create creates the table with md unless it exists, and returns its
	// snapshot. Concurrent creators converge on one table, whose metadata
	// may be another creator's. Empty md.ID and md.CreatedTime are filled
	// in.
	Create(ctx context.Context, md Metadata) (*Snapshot, error)
	// Commit commits c as the table's next version, retrying lost races
	// and ambiguous store failures. It refuses c, leaving the table
	// unchanged by it, with a *TxnConflictError, a *LineageConflictError,
	// a *FileRemovedError (errors.Is ErrFileRemoved), or an error wrapping
	// ErrFileExists, ErrMetadataChanged, ErrNoTable or ErrTableReplaced.
	// An error wrapping ErrTooManyAttempts or the context's error leaves
	// the outcome unknown: calling Commit again with the same c.ID finds
	// an attempt that landed (CommitResult.AlreadyCommitted).
	Commit(ctx context.Context, c Commit) (*CommitResult, error)
}

// CreateCommitter is implemented by tables whose format can create a
// table in the same atomic step as its first commit (for Delta, version 0
// of the log holds the metaData and the first files together): one write
// instead of two for a new table. CreateCommit, the function, uses it and
// emulates it for tables that do not implement it.
type CreateCommitter interface {
	// CreateCommit commits c as CreateCommit, the function, describes,
	// in one atomic step when the table does not exist yet.
	CreateCommit(ctx context.Context, md Metadata, c Commit) (*CommitResult, error)
}

// CreateCommit commits c to t, creating t with md in the same commit if it
// does not exist: a writer whose table is not there yet needs no separate
// Create. c carries no Metadata of its own (md is the table's) and c's
// files were written under md.Schema.
//
// If the table does not exist, it is created with md (empty md.ID and
// md.CreatedTime are filled in) and holds c from the same version on:
// readers never see the table without c's files, nor c without the
// table. If it exists, created by a concurrent creator or by an earlier
// call with the same c.ID, c is committed to it as Commit commits it, with
// every guarantee Commit gives: a landed earlier attempt is found by c.ID
// (AlreadyCommitted), txn conditions are checked against the table as it
// is. Its metadata is then the table's, not md: if the table's schema is
// not md.Schema, c is refused with an error wrapping ErrMetadataChanged,
// because c's files may hold columns the table does not have, and the
// caller reads the table, merges its schema and commits with Commit and a
// Metadata, as after any concurrent schema change. Otherwise it refuses
// c, and reports unknown outcomes, as Commit does; calling it again with
// the same md and c after an unknown outcome finds an attempt that landed.
// A table deleted after the Table saw it either fails c as Commit would
// (ErrTableReplaced, ErrNoTable) or is created again holding c: never
// does c land where no reader reaches it.
//
// A table that implements CreateCommitter does all of this itself. For
// any other table CreateCommit calls Create, then Commit: the table exists
// for a moment without c, as it would for any writer creating it first.
// When Create finds a table of another schema, CreateCommit asks Commit
// with c plus the removal of a path no table holds (createProbe): Commit
// reports AlreadyCommitted if an earlier call landed c, and otherwise
// refuses the removal, leaving the table unchanged; only then does
// CreateCommit refuse c with ErrMetadataChanged.
func CreateCommit(ctx context.Context, t Table, md Metadata, c Commit) (*CommitResult, error) {
	if c.Metadata != nil {
		return nil, fmt.Errorf("create table %s with its first commit: the commit carries metadata of its own; the table's is md", t.Root())
	}
	if cc, ok := t.(CreateCommitter); ok {
		return cc.CreateCommit(ctx, md, c)
	}
	s, err := t.Create(ctx, md)
	if err != nil {
		return nil, err
	}
	if sameSchema(md.Schema, s.Metadata.Schema) {
		return t.Commit(ctx, c)
	}
	changed := fmt.Errorf("create table %s with commit %s: the table exists with another schema: %w", t.Root(), c.ID, ErrMetadataChanged)
	if c.ID == "" {
		// No earlier call can have landed a commit without an id.
		return nil, changed
	}
	probe := c
	probe.Removes = append(slices.Clone(c.Removes), Remove{Path: createProbe(c.ID)})
	res, err := t.Commit(ctx, probe)
	switch {
	case err == nil && res.AlreadyCommitted:
		return res, nil
	case err == nil:
		// Commit cannot land the removal of a path no commit adds.
		return nil, fmt.Errorf("create table %s with commit %s: the probe for an earlier attempt landed at version %d", t.Root(), c.ID, res.Version)
	case errors.Is(err, ErrFileRemoved):
		return nil, changed
	default:
		return nil, err
	}
}

// createProbe is a path no table holds: CreateCommit removes it to learn,
// without changing the table, whether a commit landed. It lies under a
// directory no writer puts data files in.
func createProbe(id string) string { return "_evodb_create_probe/" + id }

// sameSchema reports whether a and b are the same schema, both nil
// included.
func sameSchema(a, b *codec.Schema) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(b)
}

// Maintainer is implemented by tables whose format keeps history that
// must be cleaned up from outside: removed files that stay readable for
// a while, and the log or snapshot history itself. Vacuum uses it; a
// table that does not implement it is not vacuumed.
type Maintainer interface {
	// Removed returns the removal of path if s still records it: the file
	// was removed from the table, and readers of versions within the
	// format's retention may still read it. Vacuum deletes a removed file
	// only once its removal is older than vacuum's retention.
	Removed(s *Snapshot, path string) (Remove, bool)
	// ExpireHistory deletes the table's history (log versions, snapshots)
	// that no reader or writer may need any more, older than retention
	// before now; with dryRun it deletes nothing and reports what it would
	// delete. It refuses a retention shorter than the format allows.
	ExpireHistory(ctx context.Context, retention time.Duration, dryRun bool, now time.Time) (ExpireResult, error)
}

// ExpireResult lists what ExpireHistory deleted, or would delete.
type ExpireResult struct {
	// Oldest is the version everything deleted lies before (for Delta,
	// the latest checkpoint); -1 if there is none, and then nothing is
	// deleted.
	Oldest int64
	// Deleted are the keys of the objects deleted, relative to the
	// table's root.
	Deleted []string
	// DryRun says nothing was deleted.
	DryRun bool
	// Entries names the deleted objects and OldestName what Oldest
	// numbers, in an operator's words: "log entries" and "checkpoint" for
	// Delta, "metadata files" and "snapshot" for Iceberg.
	Entries, OldestName string
}
