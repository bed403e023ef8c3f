package committer

import (
	"errors"
	"fmt"
)

// ErrNoTable is returned (wrapped) when a table does not exist.
var ErrNoTable = errors.New("table does not exist")

// ErrFileRemoved is matched (errors.Is) by a *FileRemovedError: a commit
// removes a file that is no longer active.
var ErrFileRemoved = errors.New("file is no longer active")

// ErrFileExists is returned (wrapped) when a commit adds a path that is
// already active and that it does not also remove.
var ErrFileExists = errors.New("file is already active")

// ErrMetadataChanged is returned (wrapped) when a commit carries new
// Metadata but the table's schema changed after the commit's ReadVersion:
// committing would silently drop the other writer's schema change, so the
// caller must merge schemas again.
var ErrMetadataChanged = errors.New("table metadata changed concurrently")

// ErrTooManyAttempts is returned (wrapped) when a commit did not land within
// the format's bound on attempts. The outcome of the last attempt may be
// unknown; see Table.Commit.
var ErrTooManyAttempts = errors.New("too many commit attempts")

// ErrTableReplaced is returned (wrapped) when a commit landed where no
// reader reaches it: the table was deleted, or deleted and created again,
// while this writer held it. The format has withdrawn the commit, so the
// table is unchanged by it and nothing the commit held is durable. The
// caller must not treat its data as committed; a sink stops, and on
// restart it reads the table as it now is.
var ErrTableReplaced = errors.New("table log was deleted or replaced under this writer")

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

// LineageConflictError refuses an append whose offsets from a source come
// from another lineage (for Kafka: another topic ID, the topic was deleted
// and re-created) than the offsets the table holds for it.
type LineageConflictError struct {
	AppID        string
	Lineage      string
	TableLineage string
	TableVersion int64
}

func (e *LineageConflictError) Error() string {
	return fmt.Sprintf("lineage conflict for %s: table version %d holds offsets of lineage %s, the commit's offsets are of lineage %s",
		e.AppID, e.TableVersion, e.TableLineage, e.Lineage)
}

// ErrHistoryExpired is returned (wrapped) by History.Changes when a
// version asked for is no longer recorded: log cleanup deleted it.
var ErrHistoryExpired = errors.New("the table no longer records that version")

// ErrAccessDenied is returned (wrapped) when the service that keeps the
// tables (an Iceberg REST catalog) refuses the writer's credentials: a
// wrong, expired or revoked token, or unknown client credentials. The
// request was refused before it did anything, and no retry fixes it: the
// configuration must change.
var ErrAccessDenied = errors.New("the catalog refused the credentials")
