package committer

import (
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/evodb/sink/codec"
)

// Operation names a Commit records. They are the names Spark and delta-rs
// write, so a Delta table's history reads the same whichever engine wrote
// a commit; another format maps them onto its own (Iceberg: append,
// replace).
const (
	OpCreateTable     = "CREATE TABLE"
	OpWrite           = "WRITE"
	OpStreamingUpdate = "STREAMING UPDATE"
	OpOptimize        = "OPTIMIZE"
	OpDelete          = "DELETE"
)

// Snapshot is the state of a table at one version. A Snapshot is immutable
// once returned: Update and Commit return new snapshots and never change
// one a caller holds, so callers must not modify its maps either.
type Snapshot struct {
	// Version numbers the table's commits from 0, one per commit.
	Version  int64
	Metadata Metadata
	// Files are the active data files, by path.
	Files map[string]Add
	// Txns maps a txn appId to the last source offset the table holds for
	// it; the lineages of appIds are recorded under LineageAppID keys.
	Txns map[string]int64
	// Sys is the format's own state of the snapshot (for Delta: protocol,
	// tombstones, recent commit ids). Only the format that returned the
	// snapshot reads it; callers pass it back untouched.
	Sys any
}

// TxnVersion returns the table's txn version for appID: the last source
// offset of that partition the table holds.
func (s *Snapshot) TxnVersion(appID string) (int64, bool) {
	v, ok := s.Txns[appID]
	return v, ok
}

// Metadata is a table's schema and properties.
type Metadata struct {
	// ID identifies the table; a table deleted and created again under the
	// same root has another.
	ID   string
	Name string
	// Schema is the table's schema; nil when the table has none yet, or
	// when its format's schema could not be read (SchemaErr says why).
	Schema *codec.Schema
	// SchemaErr says why the table's schema, written by another engine,
	// is not one the row model can represent (a nested or unknown type).
	// Such a table can be listed and read, but not written.
	SchemaErr        error
	PartitionColumns []string
	// Configuration holds the table properties.
	Configuration map[string]string
	// CreatedTime is when the table was created, in Unix milliseconds.
	CreatedTime int64
	// FieldIDs maps each column of Schema (metadata columns included) to
	// its field ID, for a format whose readers find a data file's columns
	// by ID (Iceberg); nil for a format without IDs (Delta). LastFieldID
	// is the highest ID the table ever assigned. Writers put the IDs that
	// FieldIDsFor returns into the data files they upload.
	FieldIDs    map[string]int
	LastFieldID int
}

// FieldIDsFor returns the field IDs of the columns of a block with schema
// s written for the table md describes, nil if md's format has none. A
// column of md keeps its ID; a column md lacks gets the ID the commit that
// adds it assigns: LastFieldID+1, +2, ... in s's block order (metadata
// columns, then data columns). A format with IDs assigns them that way,
// and refuses a commit whose new columns would get others (the table's
// schema changed after the snapshot md came from: ErrMetadataChanged).
func (md Metadata) FieldIDsFor(s *codec.Schema) map[string]int {
	if md.FieldIDs == nil {
		return nil
	}
	out := make(map[string]int, len(s.Columns())+6)
	next := md.LastFieldID
	assign := func(name string) {
		if id, ok := md.FieldIDs[name]; ok {
			out[name] = id
			return
		}
		next++
		out[name] = next
	}
	for _, c := range codec.MetaColumns(s.KafkaColumns()) {
		assign(c.Name)
	}
	for _, c := range s.Columns() {
		assign(c.Name)
	}
	return out
}

// Clone copies md so that it shares no mutable maps or slices.
func (md Metadata) Clone() Metadata {
	if md.PartitionColumns != nil {
		md.PartitionColumns = append([]string{}, md.PartitionColumns...)
	}
	md.Configuration = maps.Clone(md.Configuration)
	md.FieldIDs = maps.Clone(md.FieldIDs)
	if md.Schema != nil {
		md.Schema = md.Schema.Clone()
	}
	return md
}

// Add is a data file that is part of the table. Path is relative to the
// table root and a URI path (percent-encoded where needed).
type Add struct {
	Path             string
	PartitionValues  map[string]string
	Size             int64
	ModificationTime int64
	DataChange       bool
	// Stats are the file's statistics: row count and, per column, typed
	// min, max and null count. A writer sets them from the block it
	// encoded; a format reading its log back fills what it records (nil
	// when it records none). Delta reads back the row count only; the
	// column bounds stay in Sys, as written.
	Stats *codec.BlockStats
	// Tags are the file's key-value tags (tablefile names them).
	Tags map[string]string
	// Deleted, if not nil, are rows of the file the table no longer holds
	// although the file stays in it (Delta: the file's deletion vector).
	// Readers skip them; Stats still count every row the file has. A
	// writer never sets it: Commit.Deletes deletes rows.
	Deleted *DeletedRows
	// Sys is the format's own record of the file (for Delta: its stats
	// JSON as written), kept so the format can write the file's entry again
	// unchanged; nil in an Add a writer builds.
	Sys any
}

// DeletedRows describes the rows of a data file that a table has deleted
// while keeping the file (Commit.Deletes): a Delta deletion vector, an
// Iceberg position-delete file. The rows themselves are read with
// RowDeleter.DeletedRows.
type DeletedRows struct {
	// Count is how many of the file's rows are deleted.
	Count int64
	// Path is the object that holds the deleted rows' positions, relative
	// to the table root, or "" when the format keeps them in its log
	// (Delta's inline vectors). Vacuum keeps it as long as the file's add,
	// or a retained removal of it, names it.
	Path string
	// Sys is the format's own descriptor (for Delta: the deletion vector
	// descriptor). Only the format that returned it reads it.
	Sys any
}

// RowDeletion deletes rows of one data file: a file the table holds, or
// one the same commit adds. The file stays; readers skip its deleted rows.
type RowDeletion struct {
	// Path is the data file, as in Add.Path.
	Path string
	// Rows are the positions of the rows to delete, 0 for the file's first
	// row, in any order. They are added to the rows already deleted from
	// the file; deleting a row twice is no error.
	Rows []int64
}

// Rows returns the file's row count from its stats, 0 when unknown.
func (a Add) Rows() int64 {
	if a.Stats == nil {
		return 0
	}
	return a.Stats.Rows
}

// Remove is a file that is no longer part of the table. A snapshot may
// keep it for a while (Maintainer.Removed), so vacuum knows when the file
// may go.
type Remove struct {
	Path              string
	DeletionTimestamp int64
	DataChange        bool
	Size              int64
	PartitionValues   map[string]string
	// Deleted are the rows the file had deleted when it was removed (its
	// Add.Deleted); a writer removing a file leaves it nil and the format
	// fills it in from the snapshot. A writer that rewrote the file's rows
	// without its deleted ones (compaction of a table with deleted rows)
	// sets it to the Add.Deleted it read instead: the commit is then
	// refused with a *FileRemovedError if rows of the file were deleted
	// since, which the rewrite would bring back.
	Deleted *DeletedRows
}

// TxnCondition is a source partition's contribution to an append: the
// commit sets the table's txn version for AppID to LastOffset, and is
// refused with a *TxnConflictError if the table's txn version for AppID is
// already at or past FirstOffset.
type TxnCondition struct {
	AppID       string
	FirstOffset int64
	LastOffset  int64
	// Lineage, if not empty, names the incarnation of the source the
	// offsets come from (for a Kafka partition, its topic ID): offsets of
	// two incarnations are not comparable. The commit then also sets
	// txn(LineageAppID(AppID, Lineage)) to LastOffset, and is refused with
	// a *LineageConflictError if the table holds such a txn for AppID with
	// another lineage. Tables written without lineages hold none, so the
	// first commit with a lineage is never refused for it. It must not
	// contain '@' or '/'.
	Lineage string
}

// LineageAppID is the txn appId that records the lineage of appID's
// offsets: appID + "@" + lineage. Its version is the last offset of that
// lineage the table holds, like appID's. A format keeps it beside the
// other txn versions (for Delta, the txn action being the only per-source
// state checkpoints keep, in the appId), so it lasts as long as they do.
func LineageAppID(appID, lineage string) string { return appID + "@" + lineage }

// SplitLineage is the inverse of LineageAppID: it reports whether app
// records a lineage, and of which appId. An appId that merely contains an
// '@' is not one unless what follows its last '@' is a valid lineage
// (non-empty, without '/').
func SplitLineage(app string) (appID, lineage string, ok bool) {
	i := strings.LastIndexByte(app, '@')
	if i <= 0 || i == len(app)-1 || strings.IndexByte(app[i+1:], '/') >= 0 {
		return "", "", false
	}
	return app[:i], app[i+1:], true
}

// Commit is one atomic change to a table.
type Commit struct {
	// ID identifies the commit so that an ambiguous failure can be
	// resolved by reading the table; generated if empty.
	ID string
	// Operation names the change (OpStreamingUpdate, OpWrite, OpOptimize,
	// ...); default OpWrite.
	Operation string
	Adds      []Add
	Removes   []Remove
	// Deletes delete rows of files the table holds after the commit's
	// Adds and Removes: of files it keeps, or of files it adds. Only a
	// table opened with Options.DeleteRows takes them; others refuse the
	// commit. A file the commit removes cannot have rows deleted.
	Deletes []RowDeletion
	Txns    []TxnCondition
	// Metadata, if set, replaces the table's metadata in this commit: the
	// widened schema goes in the same commit as the first file needing it.
	// Empty ID, Name and CreatedTime and nil PartitionColumns and
	// Configuration are taken from the table; a Metadata that changes
	// nothing changes nothing.
	Metadata *Metadata
	// ReadVersion is the snapshot version the caller based the commit on, or
	// -1 for none. A commit with Metadata is refused (ErrMetadataChanged) if
	// the table's schema changed after ReadVersion.
	ReadVersion int64
	// Info holds extra fields recorded with the commit, such as source
	// offsets or the sink group.
	Info map[string]string
	// FieldIDs are the field IDs the added files were written with
	// (Metadata.FieldIDsFor of the snapshot the writer read), nil for
	// files without IDs. A format with IDs refuses the commit with
	// ErrMetadataChanged if the table's schema, with the commit's
	// Metadata applied, gives one of these columns another ID: readers
	// would find the files' columns under the wrong names.
	FieldIDs map[string]int
}

// Validate checks what does not depend on the table: txn conditions with
// non-empty, distinct appIds and offset ranges, valid lineages, no path
// added or removed twice, and row deletions of distinct, non-empty paths
// that the commit does not remove (unless it adds the path again), with
// no negative row.
func (c *Commit) Validate() error {
	apps := map[string]bool{}
	for _, tc := range c.Txns {
		switch {
		case tc.AppID == "":
			return errors.New("txn condition with an empty appId")
		case apps[tc.AppID]:
			return fmt.Errorf("txn appId %s appears twice", tc.AppID)
		case tc.FirstOffset < 0 || tc.LastOffset < tc.FirstOffset:
			return fmt.Errorf("txn %s: offsets [%d, %d] are not a range", tc.AppID, tc.FirstOffset, tc.LastOffset)
		case strings.ContainsAny(tc.Lineage, "@/"):
			return fmt.Errorf("txn %s: lineage %q contains '@' or '/'", tc.AppID, tc.Lineage)
		}
		apps[tc.AppID] = true
	}
	removed := map[string]bool{}
	for _, r := range c.Removes {
		if r.Path == "" {
			return errors.New("remove with an empty path")
		}
		if removed[r.Path] {
			return fmt.Errorf("remove %s appears twice", r.Path)
		}
		removed[r.Path] = true
	}
	added := map[string]bool{}
	for _, a := range c.Adds {
		if a.Path == "" {
			return errors.New("add with an empty path")
		}
		if added[a.Path] {
			return fmt.Errorf("add %s appears twice", a.Path)
		}
		added[a.Path] = true
	}
	deleted := map[string]bool{}
	for _, d := range c.Deletes {
		switch {
		case d.Path == "":
			return errors.New("row deletion with an empty path")
		case deleted[d.Path]:
			return fmt.Errorf("rows of %s are deleted twice; give one RowDeletion per file", d.Path)
		case removed[d.Path] && !added[d.Path]:
			return fmt.Errorf("rows of %s are deleted, but the commit removes the file", d.Path)
		}
		for _, r := range d.Rows {
			if r < 0 {
				return fmt.Errorf("row deletion of %s: row %d is negative", d.Path, r)
			}
		}
		deleted[d.Path] = true
	}
	if c.Metadata != nil && c.Metadata.Schema == nil {
		return errors.New("metadata without a schema")
	}
	return nil
}

// CheckFiles refuses c on top of s if it removes a file s does not hold
// (*FileRemovedError) or adds one s holds and c does not remove
// (ErrFileExists).
func (c *Commit) CheckFiles(s *Snapshot) error {
	removed := map[string]bool{}
	for _, r := range c.Removes {
		if _, ok := s.Files[r.Path]; !ok {
			return &FileRemovedError{Path: r.Path, TableVersion: s.Version}
		}
		removed[r.Path] = true
	}
	for _, a := range c.Adds {
		if _, ok := s.Files[a.Path]; ok && !removed[a.Path] {
			return fmt.Errorf("add %s at table version %d: %w", a.Path, s.Version, ErrFileExists)
		}
	}
	return nil
}

// CheckTxns refuses c on top of s if the table holds, for one of c's
// appIds, a txn version at or past the condition's FirstOffset
// (*TxnConflictError) or a lineage other than the condition's
// (*LineageConflictError). It reads every txn of the table once, and only
// when c names a lineage.
func (c *Commit) CheckTxns(s *Snapshot) error {
	for _, tc := range c.Txns {
		if v, ok := s.Txns[tc.AppID]; ok && v >= tc.FirstOffset {
			return &TxnConflictError{AppID: tc.AppID, TableTxnVersion: v, FirstOffset: tc.FirstOffset, TableVersion: s.Version}
		}
	}
	var want map[string]string
	for _, tc := range c.Txns {
		if tc.Lineage != "" {
			if want == nil {
				want = make(map[string]string, len(c.Txns))
			}
			want[tc.AppID] = tc.Lineage
		}
	}
	if want == nil {
		return nil
	}
	for app := range s.Txns {
		id, lineage, ok := SplitLineage(app)
		if !ok {
			continue
		}
		if w, ok := want[id]; ok && w != lineage {
			return &LineageConflictError{AppID: id, Lineage: w, TableLineage: lineage, TableVersion: s.Version}
		}
	}
	return nil
}

// CommitResult describes a landed commit.
type CommitResult struct {
	// Version is the version holding the commit.
	Version int64
	// Snapshot is the table right after the commit, or later.
	Snapshot *Snapshot
	// Attempts is how many puts the commit took.
	Attempts int
	// AlreadyCommitted says an earlier attempt whose outcome was unknown had
	// landed and was found by its commit id.
	AlreadyCommitted bool
}

// HasSchema reports whether the table has a schema, readable (Schema) or
// not (SchemaErr).
func (md Metadata) HasSchema() bool { return md.Schema != nil || md.SchemaErr != nil }
