package iceberg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/catalog/rest"
	icebergio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
)

// Snapshot summary and table property keys of our own. Readers ignore
// unknown summary keys and properties.
const (
	// sumCommitID identifies the commit that made a snapshot.
	sumCommitID = "evodb.commit-id"
	// sumTxnPrefix + appId holds the table's txn version for appId, as
	// of the snapshot: the whole map, carried forward by every commit.
	sumTxnPrefix = "evodb.txn."
	// sumTags holds the tags of the files the snapshot added, as a JSON
	// object path -> tags.
	sumTags = "evodb.tags"
	// sumInstance names the sink instance, sumOperation the committer
	// operation, sumInfoPrefix + key the commit's Info.
	sumInstance   = "evodb.instance"
	sumOperation  = "evodb.operation"
	sumInfoPrefix = "evodb.info."

	// propName and propCreated keep Metadata.Name and CreatedTime, which
	// Iceberg metadata has no field for.
	propName    = "evodb.name"
	propCreated = "evodb.created-time"
)

// manifestMinMergeCount is how many manifests a table collects before an
// append merges them into one (commit.manifest.min-count-to-merge), so a
// table's manifest list does not grow by one manifest per flush forever.
const manifestMinMergeCount = "16"

// managedProperty says whether a table property is Iceberg's or this
// package's own, rather than one of the caller's Configuration.
func managedProperty(k string) bool {
	for _, p := range []string{"commit.", "write.", "read.", "schema.", "gc.", "history.", "format-version", "engine.", "current-snapshot", "snapshot-count"} {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return k == propName || k == propCreated
}

// Table is one Iceberg table of a REST catalog.
//
// Commit protocol. A commit is one catalog commit of one snapshot:
//
//  1. The caller has uploaded every data file the commit adds. Until
//     step 3 succeeds they are orphans no reader sees; vacuum removes them.
//  2. The committer checks the commit's conditions against the latest
//     snapshot it knows (txn versions and lineages from that snapshot's
//     summary, removed files live in it, the schema unchanged since the
//     commit's ReadVersion).
//  3. It asks the catalog to commit a snapshot whose parent is that
//     snapshot, with the requirements assert-table-uuid and
//     assert-ref-snapshot-id(main): the catalog applies it only if main
//     is still the snapshot the checks held against, in the table the
//     writer loaded. iceberg-go writes the manifest and manifest list
//     first (under metadata/); a refused commit leaves them as orphans.
//  4. A refusal (409) means another commit landed first: the committer
//     loads the table; if a snapshot carries this commit's id an earlier
//     attempt landed (AlreadyCommitted); if the table's UUID changed the
//     table was replaced (committer.ErrTableReplaced); otherwise it checks
//     again (step 2) and retries at once.
//  5. An unknown outcome (5xx, timeout, a lost connection) is resolved by
//     loading the table after a backoff: a retained snapshot carrying the
//     commit id means it landed; otherwise it did not (the assertion
//     pinned main to the parent, so a late arrival of the same request can
//     no longer land once anything else has) and it is retried. Snapshot
//     expiry must therefore retain snapshots for longer than a commit can
//     take, which ExpireHistory's minimum retention ensures.
//
// File tags. Iceberg's data-file entries have no key-value field, so a
// commit keeps the tags of the files it adds in its own snapshot's
// summary (evodb.tags), and a snapshot's files take their tags from the
// summaries of the retained snapshots. Once expiry has dropped the
// snapshot that added a file, its tags are gone: tablefile then reads the
// file's LSN range and compaction level from its name (which the sink
// gives every file it writes) and its row count from the manifest; only
// the informational evodb.sources tag is lost. Carrying every live file's
// tags forward, as the txn map is, would grow each snapshot's summary
// with the table's file count.
//
// Sequence numbers are the versions: Iceberg v2 gives every snapshot the
// table's last sequence number plus one, so a table's commits are numbered
// 1, 2, ... and a table without snapshots is at version 0.
//
// A Table is safe for concurrent use; it caches the latest snapshot it saw
// and the entries of the manifests it read (manifests are immutable).
type Table struct {
	cat      *rest.Catalog
	fs       *sharedFS
	root     string
	ident    table.Identifier
	location string
	opts     Options
	// deleteRows is committer.Options.DeleteRows, which the Table refuses
	// (ErrDeleteRowsUnsupported).
	deleteRows bool

	mu struct {
		sync.Mutex
		latest *committer.Snapshot
		// manifests caches the live entries of manifests by path.
		manifests map[string][]iceberg.ManifestEntry
	}
}

// state is the Iceberg side of a snapshot, in committer.Snapshot.Sys.
type state struct {
	tbl  *table.Table
	uuid string
	// schemaVersion is the version at which the current schema took
	// effect (the first snapshot written with it).
	schemaVersion int64
	// commits maps the commit ids of the retained snapshots to their
	// versions.
	commits map[string]int64

	removedOnce sync.Once
	removed     map[string]committer.Remove
	removedErr  error
}

func st(s *committer.Snapshot) *state {
	if s == nil {
		return nil
	}
	ss, _ := s.Sys.(*state)
	return ss
}

// Root returns the table's root.
func (t *Table) Root() string { return t.root }

// Snapshot loads the table from the catalog.
func (t *Table) Snapshot(ctx context.Context) (*committer.Snapshot, error) {
	return t.load(ctx)
}

// Update loads the table from the catalog: one request, which returns the
// current metadata whatever s is.
func (t *Table) Update(ctx context.Context, s *committer.Snapshot) (*committer.Snapshot, error) {
	return t.load(ctx)
}

// load reads the table's current metadata and builds its snapshot,
// reusing the cached one if the metadata did not change.
func (t *Table) load(ctx context.Context) (*committer.Snapshot, error) {
	tbl, err := t.cat.LoadTable(ctx, t.ident)
	if errors.Is(err, catalog.ErrNoSuchTable) {
		t.mu.Lock()
		t.mu.latest = nil
		t.mu.Unlock()
		return nil, fmt.Errorf("load table %s (%s): %w", t.root, strings.Join(t.ident, "."), committer.ErrNoTable)
	}
	if err != nil {
		return nil, fmt.Errorf("load table %s (%s): %w", t.root, strings.Join(t.ident, "."), authErr(err))
	}
	// The table reads and writes its manifests through the Format's
	// FileIO; commits keep it (iceberg-go carries it to the committed
	// table).
	tbl = table.New(tbl.Identifier(), tbl.Metadata(), tbl.MetadataLocation(), t.fs.get, t.cat)
	t.mu.Lock()
	prev := t.mu.latest
	t.mu.Unlock()
	if ps := st(prev); ps != nil && ps.tbl.MetadataLocation() == tbl.MetadataLocation() {
		return prev, nil
	}
	s, err := t.build(ctx, tbl)
	if err != nil {
		return nil, err
	}
	t.adopt(s)
	return s, nil
}

// adopt makes s the latest snapshot unless the Table holds a newer one of
// the same table.
func (t *Table) adopt(s *committer.Snapshot) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if l := t.mu.latest; l != nil && st(l).uuid == st(s).uuid && l.Version > s.Version {
		return
	}
	t.mu.latest = s
}

// build reads the snapshot of tbl: its metadata, the live files of its
// current snapshot's manifests, and its exactly-once state.
func (t *Table) build(ctx context.Context, tbl *table.Table) (*committer.Snapshot, error) {
	md := tbl.Metadata()
	s := &committer.Snapshot{Files: map[string]committer.Add{}, Txns: map[string]int64{}}
	ss := &state{tbl: tbl, uuid: md.TableUUID().String(), commits: map[string]int64{}}
	s.Sys = ss
	s.Metadata = t.metadataOf(tbl)

	snaps := md.Snapshots()
	bySeq := map[int64]*table.Snapshot{}
	byID := map[int64]*table.Snapshot{}
	tags := map[string]map[string]string{}
	oldest := int64(0)
	for i := range snaps {
		sn := &snaps[i]
		byID[sn.SnapshotID] = sn
		bySeq[sn.SequenceNumber] = sn
		if oldest == 0 || sn.TimestampMs < oldest {
			oldest = sn.TimestampMs
		}
		if sn.Summary == nil {
			continue
		}
		if id := sn.Summary.Properties[sumCommitID]; id != "" {
			ss.commits[id] = sn.SequenceNumber
		}
		if raw := sn.Summary.Properties[sumTags]; raw != "" {
			var m map[string]map[string]string
			if json.Unmarshal([]byte(raw), &m) == nil {
				maps.Copy(tags, m)
			}
		}
	}
	cur := md.CurrentSnapshot()
	if cur == nil {
		return s, nil
	}
	s.Version = cur.SequenceNumber
	s.Txns = txnsOf(cur, byID)
	ss.schemaVersion = schemaVersion(md, cur, byID)

	entries, err := t.liveEntries(ctx, tbl, cur)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		df := e.DataFile()
		a := committer.Add{
			Path:             t.relPath(df.FilePath()),
			Size:             df.FileSizeBytes(),
			ModificationTime: oldest,
			DataChange:       true,
			Stats:            &codec.BlockStats{Rows: df.Count()},
			Sys:              df,
		}
		if by := byID[e.SnapshotID()]; by != nil {
			a.ModificationTime = by.TimestampMs
			if by.Summary != nil && by.Summary.Operation == table.OpReplace {
				a.DataChange = false
			}
		}
		if tg := tags[a.Path]; tg != nil {
			a.Tags = maps.Clone(tg)
		}
		s.Files[a.Path] = a
	}
	return s, nil
}

// metadataOf maps tbl's metadata onto committer.Metadata.
func (t *Table) metadataOf(tbl *table.Table) committer.Metadata {
	md := tbl.Metadata()
	props := md.Properties()
	out := committer.Metadata{
		ID:            md.TableUUID().String(),
		Name:          props[propName],
		Configuration: map[string]string{},
	}
	if out.Name == "" {
		out.Name = t.ident[len(t.ident)-1]
	}
	out.CreatedTime, _ = strconv.ParseInt(props[propCreated], 10, 64)
	for k, v := range props {
		if !managedProperty(k) {
			out.Configuration[k] = v
		}
	}
	schema, err := parseSchema(md.CurrentSchema())
	if err != nil {
		out.SchemaErr = err
	} else {
		out.Schema = schema
		out.FieldIDs = fieldIDsOf(md.CurrentSchema())
		out.LastFieldID = md.LastColumnID()
	}
	return out
}

// txnsOf reads the txn map from the newest snapshot in cur's ancestry
// that this package wrote: cur itself unless another engine appended
// since, whose snapshots carry no evodb keys.
func txnsOf(cur *table.Snapshot, byID map[int64]*table.Snapshot) map[string]int64 {
	out := map[string]int64{}
	for sn := cur; sn != nil; {
		if sn.Summary != nil && sn.Summary.Properties[sumCommitID] != "" {
			for k, v := range sn.Summary.Properties {
				app, ok := strings.CutPrefix(k, sumTxnPrefix)
				if !ok {
					continue
				}
				if n, err := strconv.ParseInt(v, 10, 64); err == nil {
					out[app] = n
				}
			}
			return out
		}
		if sn.ParentSnapshotID == nil {
			break
		}
		sn = byID[*sn.ParentSnapshotID]
	}
	return out
}

// schemaVersion returns the version at which md's current schema took
// effect: the oldest snapshot of cur's retained ancestry written with it
// (the oldest retained one if all are), or cur's version if cur was
// written with another schema (changed since by another engine without a
// snapshot).
func schemaVersion(md table.Metadata, cur *table.Snapshot, byID map[int64]*table.Snapshot) int64 {
	id := md.CurrentSchema().ID
	if cur.SchemaID != nil && *cur.SchemaID != id {
		return cur.SequenceNumber
	}
	v := cur.SequenceNumber
	for sn := cur; sn != nil; {
		if sn.SchemaID != nil && *sn.SchemaID != id {
			break
		}
		v = sn.SequenceNumber
		if sn.ParentSnapshotID == nil {
			// The first snapshot: the schema is the table's first, from
			// version 0, unless the table has had others.
			if len(md.Schemas()) == 1 {
				v = 0
			}
			break
		}
		sn = byID[*sn.ParentSnapshotID]
	}
	return v
}

// liveEntries returns the live data-file entries of snap's manifests,
// from the cache where it has a manifest; the cache keeps only snap's
// manifests afterwards.
func (t *Table) liveEntries(ctx context.Context, tbl *table.Table, snap *table.Snapshot) ([]iceberg.ManifestEntry, error) {
	fs, err := tbl.FS(ctx)
	if err != nil {
		return nil, fmt.Errorf("table %s: file IO: %w", t.root, err)
	}
	mfs, err := snap.Manifests(fs)
	if err != nil {
		return nil, fmt.Errorf("table %s: read manifest list %s: %w", t.root, snap.ManifestList, err)
	}
	t.mu.Lock()
	cache := t.mu.manifests
	t.mu.Unlock()
	next := make(map[string][]iceberg.ManifestEntry, len(mfs))
	var out []iceberg.ManifestEntry
	for _, m := range mfs {
		if m.ManifestContent() != iceberg.ManifestContentData {
			// Delete files (another engine's row-level deletes) are not
			// applied by the sink; their data files still count as live.
			continue
		}
		ents, ok := cache[m.FilePath()]
		if !ok {
			if ents, err = readEntries(fs, m); err != nil {
				return nil, fmt.Errorf("table %s: %w", t.root, err)
			}
		}
		next[m.FilePath()] = ents
		out = append(out, ents...)
	}
	t.mu.Lock()
	t.mu.manifests = next
	t.mu.Unlock()
	return out, nil
}

// relPath maps a data file's URI to its path relative to the table root;
// a file outside the table's location keeps its URI.
func (t *Table) relPath(uri string) string {
	if rel, ok := strings.CutPrefix(uri, t.location+"/"); ok {
		return rel
	}
	return uri
}

// absPath is the inverse of relPath.
func (t *Table) absPath(rel string) string {
	if strings.Contains(rel, "://") {
		return rel
	}
	return t.location + "/" + rel
}

// NewFieldIDs returns the field IDs of a table Create makes with schema
// s: 1, 2, ... in block order, as newSchema numbers them and as the REST
// specification has catalogs keep them (a catalog assigning others makes
// the first commit refuse them, and the writer writes its file again).
func (t *Table) NewFieldIDs(s *codec.Schema) map[string]int {
	return committer.Metadata{FieldIDs: map[string]int{}}.FieldIDsFor(s)
}

// Create creates the table unless it exists, and returns its snapshot.
// The table's location is its root under the format's Location; its
// properties are md.Configuration plus manifest merging, the name mapping
// and md's name and creation time. Concurrent creators converge: the
// catalog creates a table once and the others load it. md.ID is not
// used: the catalog assigns the table's UUID, which is its ID.
func (t *Table) Create(ctx context.Context, md committer.Metadata) (*committer.Snapshot, error) {
	if t.deleteRows {
		return nil, fmt.Errorf("create table %s: %w", t.root, ErrDeleteRowsUnsupported)
	}
	s, err := t.load(ctx)
	if err == nil || !errors.Is(err, committer.ErrNoTable) {
		return s, err
	}
	schema := md.Schema
	if schema == nil {
		schema = codec.NewSchema()
	}
	is, err := newSchema(schema)
	if err != nil {
		return nil, fmt.Errorf("create table %s: %w", t.root, err)
	}
	mapping, err := nameMapping(is)
	if err != nil {
		return nil, fmt.Errorf("create table %s: %w", t.root, err)
	}
	props := iceberg.Properties{}
	maps.Copy(props, md.Configuration)
	created := md.CreatedTime
	if created == 0 {
		created = t.opts.Now().UnixMilli()
	}
	maps.Copy(props, iceberg.Properties{
		"format-version":                  "2",
		table.ManifestMergeEnabledKey:     "true",
		table.ManifestMinMergeCountKey:    manifestMinMergeCount,
		table.DefaultNameMappingKey:       mapping,
		"write.parquet.compression-codec": "zstd",
		// The catalog deletes metadata files beyond the last 20 as
		// commits land, so they do not pile up one per commit.
		"write.metadata.delete-after-commit.enabled": "true",
		"write.metadata.previous-versions-max":       "20",
		propCreated:                                  strconv.FormatInt(created, 10),
	})
	if md.Name != "" {
		props[propName] = md.Name
	}
	if err := t.ensureNamespace(ctx); err != nil {
		return nil, err
	}
	_, err = t.cat.CreateTable(ctx, t.ident, is, catalog.WithLocation(t.location), catalog.WithProperties(props))
	if err != nil && !errors.Is(err, catalog.ErrTableAlreadyExists) {
		return nil, fmt.Errorf("create table %s (%s): %w", t.root, strings.Join(t.ident, "."), authErr(err))
	}
	return t.load(ctx)
}

// ensureNamespace creates the table's namespace, level by level. A
// creation that fails otherwise than with "already exists" may have lost a
// race all the same (Apache Iceberg's JDBC catalog answers a concurrent
// creation with a 500 from its unique constraint), so the namespace
// existing afterwards is success.
func (t *Table) ensureNamespace(ctx context.Context) error {
	ns := t.ident[:len(t.ident)-1]
	for i := 1; i <= len(ns); i++ {
		err := t.cat.CreateNamespace(ctx, ns[:i], nil)
		if err == nil || errors.Is(err, catalog.ErrNamespaceAlreadyExists) {
			continue
		}
		if ok, cerr := t.cat.CheckNamespaceExists(ctx, ns[:i]); cerr == nil && ok {
			continue
		}
		return fmt.Errorf("create namespace %s: %w", strings.Join(ns[:i], "."), err)
	}
	return nil
}

// readEntries reads the live entries of manifest m.
func readEntries(fs icebergio.IO, m iceberg.ManifestFile) ([]iceberg.ManifestEntry, error) {
	var out []iceberg.ManifestEntry
	for e, err := range m.Entries(fs, true) {
		if err != nil {
			return nil, fmt.Errorf("read manifest %s: %w", m.FilePath(), err)
		}
		out = append(out, e)
	}
	return out, nil
}
