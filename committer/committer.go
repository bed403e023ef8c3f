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
	"log/slog"
	"time"
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
}
