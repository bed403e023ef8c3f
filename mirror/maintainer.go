package mirror

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/parquetblock"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/tablefile"
)

// OpMerge is the operation of a mirror commit that applies change-log
// versions, as Spark names a MERGE INTO.
const OpMerge = "MERGE"

// seqAppID is the txn appId every mirror commit advances by one, on the
// condition that it is still what the commit's snapshot held: a
// compare-and-swap that orders all commits to a mirror. Without it a
// mirror compaction could rewrite a row that a concurrent maintainer's
// step superseded (deleting it in a file the compaction keeps reading),
// and bring it back.
const seqAppID = "evodb-mirror.seq"

// AppID is the mirror's txn appId whose version is the last change-log
// version the mirror holds (W in the package doc). It names the change
// log's table id, so a change log deleted and created again (another id)
// is a new source, which the maintainer rebuilds from.
func AppID(changeLogID string) string { return "evodb-mirror/" + changeLogID }

// Options configure a Maintainer. Zero values take the defaults.
type Options struct {
	// Key lists the primary key columns; empty takes the change log's
	// PrimaryKeyConfig.
	Key []string
	// MaxVersions bounds the change-log versions one step applies;
	// default 100.
	MaxVersions int
	// MaxFiles compacts the mirror when it holds more files; default 16.
	MaxFiles int
	// MaxDeletedFraction compacts the mirror when more than this fraction
	// of its physical rows are deleted; default 0.2.
	MaxDeletedFraction float64
	// TargetFileRows is the row count of files a rebuild or compaction
	// writes; default 131072.
	TargetFileRows int
	// Compression of the mirror's files: "zstd" (default), "snappy" or
	// "none".
	Compression string
	// Now stamps the files written; default time.Now.
	Now func() time.Time
	// Logger; default discards.
	Logger *slog.Logger
	// Instance names the maintainer in commit info.
	Instance string
}

func (o *Options) applyDefaults() {
	if o.MaxVersions <= 0 {
		o.MaxVersions = 100
	}
	if o.MaxFiles <= 0 {
		o.MaxFiles = 16
	}
	if o.MaxDeletedFraction <= 0 {
		o.MaxDeletedFraction = 0.2
	}
	if o.TargetFileRows <= 0 {
		o.TargetFileRows = 131072
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// maxUnknownOutcomes bounds how often a step commits again, with the same
// commit id, after an outcome it cannot know (the store timed out).
const maxUnknownOutcomes = 5

// Maintainer keeps one mirror table up to date from its change log. It is
// not safe for concurrent use: one goroutine calls Step (Scheduler, under
// a lease). Two Maintainers of one mirror, in one process or two, are
// safe: the txn fences make one of them win each commit, and the other
// reloads.
type Maintainer struct {
	b         objstore.Bucket
	changeLog committer.Table
	history   committer.History
	mirror    committer.Table
	deleter   committer.RowDeleter
	opts      Options

	// logSnap and snap are the last snapshots seen of the change log and
	// of the mirror (nil: none yet, or to be read again).
	logSnap, snap *committer.Snapshot
	// index holds the indexes of mirror files by path. A file never
	// changes, so an entry is never stale; entries of files the mirror no
	// longer holds are dropped after each commit.
	index map[string]*fileIndex
}

// New returns the maintainer of mirror, derived from changeLog. Data files
// of both lie in b. changeLog must implement committer.History, and
// mirror, opened with Options.DeleteRows, committer.RowDeleter.
func New(b objstore.Bucket, changeLog, mirror committer.Table, opts Options) (*Maintainer, error) {
	h, ok := changeLog.(committer.History)
	if !ok {
		return nil, fmt.Errorf("mirror of %s: the change log's table format cannot list its commits (committer.History); mirror tables need Delta", changeLog.Root())
	}
	d, ok := mirror.(committer.RowDeleter)
	if !ok {
		return nil, fmt.Errorf("mirror %s: the table format cannot delete rows (committer.RowDeleter); mirror tables need Delta", mirror.Root())
	}
	opts.applyDefaults()
	return &Maintainer{b: b, changeLog: changeLog, history: h, mirror: mirror, deleter: d, opts: opts, index: map[string]*fileIndex{}}, nil
}

// StepResult says what one Step did.
type StepResult struct {
	// ChangeLogVersion is the change log's latest version the step saw
	// (L), -1 if the change log does not exist.
	ChangeLogVersion int64
	// From and To are the change-log versions the mirror held before and
	// after the step (W), -1 for none.
	From, To int64
	// MirrorVersion is the mirror's version after the step, -1 if there
	// is no mirror yet.
	MirrorVersion int64
	// Rebuilt says the step rebuilt the mirror from a change-log snapshot,
	// and Reason why.
	Rebuilt bool
	Reason  string
	// Compacted says the step compacted the mirror.
	Compacted bool
	// Conflict says another maintainer committed first; the step changed
	// nothing and the next one goes on from that maintainer's state.
	Conflict bool
	// Rows is how many rows the step wrote, Deleted how many it deleted.
	Rows, Deleted int
	// SourceTime is the commit time of the first change-log version the
	// step applied (Unix milliseconds, 0 if unknown or none): the oldest
	// change the step made visible, for the mirror's lag.
	SourceTime int64
}

// Step applies at most MaxVersions change-log versions to the mirror (or
// rebuilds it), then compacts the mirror if it needs it. It returns with
// nothing done when the mirror is up to date; an error leaves the mirror
// as it was or with the step applied, never half of it, and the next Step
// starts from the mirror's state.
func (m *Maintainer) Step(ctx context.Context) (StepResult, error) {
	res := StepResult{ChangeLogVersion: -1, From: -1, To: -1, MirrorVersion: -1}
	logSnap, err := m.changeLog.Update(ctx, m.logSnap)
	if errors.Is(err, committer.ErrNoTable) {
		m.logSnap = nil
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("mirror of %s: read the change log: %w", m.changeLog.Root(), err)
	}
	m.logSnap = logSnap
	res.ChangeLogVersion = logSnap.Version
	key, err := KeyColumns(m.changeLog.Root(), m.opts.Key, logSnap.Metadata)
	if err != nil {
		return res, err
	}
	snap, err := m.loadMirror(ctx)
	if err != nil {
		return res, err
	}
	app := AppID(logSnap.Metadata.ID)
	w := int64(-1)
	if snap != nil {
		res.MirrorVersion = snap.Version
		if v, ok := snap.Txns[app]; ok {
			w = v
		}
	}
	res.From, res.To = w, w
	kr := keyer{cols: key}
	switch {
	case w < 0:
		reason := "new mirror"
		if snap != nil {
			reason = "the mirror holds no version of this change log (table id " + logSnap.Metadata.ID + ")"
		}
		return m.rebuild(ctx, res, kr, reason)
	case snap.Metadata.Configuration[ConfigMirrorKey] != strings.Join(key, ","):
		return m.rebuild(ctx, res, kr, fmt.Sprintf("the key changed from %q to %q", snap.Metadata.Configuration[ConfigMirrorKey], strings.Join(key, ",")))
	case logSnap.Version <= w:
		return m.maybeCompact(ctx, res, kr)
	}
	to := min(logSnap.Version, w+int64(m.opts.MaxVersions))
	changes, err := m.history.Changes(ctx, w, to)
	if errors.Is(err, committer.ErrHistoryExpired) {
		return m.rebuild(ctx, res, kr, err.Error())
	}
	if err != nil {
		return res, fmt.Errorf("mirror of %s: %w", m.changeLog.Root(), err)
	}
	schema := snap.Metadata.Schema
	var files []committer.Add
	for _, vc := range changes {
		for _, r := range vc.Removes {
			if r.DataChange {
				return m.rebuild(ctx, res, kr, fmt.Sprintf("change-log version %d removed %s with a data change", vc.Version, r.Path))
			}
		}
		if vc.Metadata != nil {
			if vc.Metadata.ID != logSnap.Metadata.ID {
				return m.rebuild(ctx, res, kr, fmt.Sprintf("change-log version %d changed the table id", vc.Version))
			}
			if vc.Metadata.SchemaErr != nil {
				return res, fmt.Errorf("mirror of %s: change-log version %d: %w", m.changeLog.Root(), vc.Version, vc.Metadata.SchemaErr)
			}
			schema = vc.Metadata.Schema
		}
		for _, a := range vc.Adds {
			if a.Deleted != nil {
				return res, deletedRowsError(m.changeLog.Root(), a.Path)
			}
			if a.DataChange {
				files = append(files, a)
			}
		}
		if res.SourceTime == 0 {
			res.SourceTime = vc.Timestamp
		}
	}
	if schema == nil {
		schema = codec.NewSchema()
	}
	var rows []codec.Change
	for _, a := range files {
		_, changes, err := tablefile.ReadFile(ctx, m.b, m.changeLog.Root(), a.Path)
		if errors.Is(err, objstore.ErrNotExist) {
			return m.rebuild(ctx, res, kr, err.Error())
		}
		if err != nil {
			return res, fmt.Errorf("mirror of %s: %w", m.changeLog.Root(), err)
		}
		rows = append(rows, changes...)
	}
	if err := m.ensureIndex(ctx, kr, snap); err != nil {
		return res, err
	}
	latest := reduce(kr, rows)
	var out []keyedRow
	deletes := map[string][]int64{}
	for _, r := range latest {
		cur, ok := m.lookup(snap, r.key)
		if ok && cur.order.compare(orderOf(r.ch)) >= 0 {
			continue // a replay, or older than what the mirror holds
		}
		if ok && !cur.delete {
			deletes[cur.path] = append(deletes[cur.path], cur.pos)
			res.Deleted++
		}
		out = append(out, r)
	}
	c := committer.Commit{
		Operation:   OpMerge,
		ReadVersion: snap.Version,
		Txns:        []committer.TxnCondition{{AppID: app, FirstOffset: w + 1, LastOffset: to}},
		Info:        m.info(to),
	}
	if !schema.Equal(snap.Metadata.Schema) {
		md, err := tablefile.SchemaMetadata(snap, schema)
		if err != nil {
			return res, fmt.Errorf("mirror %s: %w", m.mirror.Root(), err)
		}
		c.Metadata = md
	}
	var written []*fileIndex
	if len(out) > 0 {
		f, err := m.writeFile(ctx, schema, out, to, true)
		if err != nil {
			return res, err
		}
		c.Adds = append(c.Adds, f.add)
		if len(f.deleted) > 0 {
			c.Deletes = append(c.Deletes, committer.RowDeletion{Path: f.add.Path, Rows: f.deleted})
			res.Deleted += len(f.deleted)
		}
		written = append(written, f.index)
		res.Rows = len(out)
	}
	for _, path := range slices.Sorted(maps.Keys(deletes)) {
		c.Deletes = append(c.Deletes, committer.RowDeletion{Path: path, Rows: deletes[path]})
	}
	ok, err := m.commit(ctx, &res, snap, c, written)
	if err != nil || !ok {
		return res, err
	}
	res.To = to
	return m.maybeCompact(ctx, res, kr)
}

// deletedRowsError refuses a change log with deleted rows: its rows are
// changes, which no writer of the sink deletes, so another engine changed
// it, and the view of its files is no longer the view of its changes.
func deletedRowsError(root, path string) error {
	return fmt.Errorf("mirror of %s: the change log deletes rows of its file %s (a deletion vector); another engine changed it, and a change log must keep every change: the mirror is not maintained until the change log is rewritten without deleted rows", root, path)
}

// info is the commit info of a mirror commit holding change-log version
// to.
func (m *Maintainer) info(to int64) map[string]string {
	return map[string]string{ConfigMirrorOf: m.changeLog.Root(), "evodb.mirrorVersion": strconv.FormatInt(to, 10), "evodb.instance": m.opts.Instance}
}

// loadMirror returns the mirror's latest snapshot, nil if the mirror does
// not exist yet.
func (m *Maintainer) loadMirror(ctx context.Context) (*committer.Snapshot, error) {
	snap, err := m.mirror.Update(ctx, m.snap)
	if errors.Is(err, committer.ErrNoTable) {
		m.snap = nil
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mirror %s: read the mirror: %w", m.mirror.Root(), err)
	}
	m.snap = snap
	return snap, nil
}

// commit commits c on top of snap with the seq fence, retrying unknown
// outcomes with the same id. It reports false, with no error, when
// another maintainer committed first (res.Conflict): the next step reads
// the mirror again. On success it indexes the files written.
func (m *Maintainer) commit(ctx context.Context, res *StepResult, snap *committer.Snapshot, c committer.Commit, written []*fileIndex) (bool, error) {
	c.ID = newID()
	seq := int64(-1)
	if snap != nil {
		if v, ok := snap.Txns[seqAppID]; ok {
			seq = v
		}
	}
	c.Txns = append(c.Txns, committer.TxnCondition{AppID: seqAppID, FirstOffset: seq + 1, LastOffset: seq + 1})
	var cr *committer.CommitResult
	var err error
	for attempt := 1; ; attempt++ {
		if snap == nil {
			cr, err = committer.CreateCommit(ctx, m.mirror, m.newMetadata(c.Metadata), withoutMetadata(c))
		} else {
			cr, err = m.mirror.Commit(ctx, c)
		}
		if (errors.Is(err, committer.ErrTooManyAttempts) || (ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded))) && attempt < maxUnknownOutcomes {
			m.opts.Logger.Warn("mirror commit outcome unknown, committing again", "table", m.mirror.Root(), "commit", c.ID, "err", err)
			continue
		}
		break
	}
	var txnErr *committer.TxnConflictError
	switch {
	case err == nil:
	case errors.As(err, &txnErr), errors.Is(err, committer.ErrFileRemoved), errors.Is(err, committer.ErrMetadataChanged), errors.Is(err, committer.ErrFileExists):
		// Another maintainer got there first. Its commit holds what this
		// one would have; what this one wrote is an orphan.
		m.opts.Logger.Info("mirror commit refused: another maintainer committed first", "table", m.mirror.Root(), "err", err)
		m.snap = nil
		res.Conflict = true
		return false, nil
	default:
		m.snap = nil
		return false, fmt.Errorf("mirror %s: commit: %w", m.mirror.Root(), err)
	}
	m.snap = cr.Snapshot
	res.MirrorVersion = cr.Version
	for _, f := range written {
		m.index[f.path] = f
	}
	for path := range m.index {
		if _, ok := cr.Snapshot.Files[path]; !ok {
			delete(m.index, path)
		}
	}
	return true, nil
}

// newMetadata is the metadata a new mirror is created with: the change
// log's schema (md's, when the commit widens it), its key, and what it
// mirrors.
func (m *Maintainer) newMetadata(md *committer.Metadata) committer.Metadata {
	out := committer.Metadata{Schema: m.logSnap.Metadata.Schema}
	if md != nil {
		out.Schema = md.Schema
	}
	if out.Schema == nil {
		out.Schema = codec.NewSchema()
	}
	key, _ := KeyColumns(m.changeLog.Root(), m.opts.Key, m.logSnap.Metadata)
	out.Configuration = map[string]string{
		ConfigMirrorOf:                m.changeLog.Root(),
		ConfigMirrorKey:               strings.Join(key, ","),
		PrimaryKeyConfig:              strings.Join(key, ","),
		"delta.enableDeletionVectors": "true",
	}
	return out
}

func withoutMetadata(c committer.Commit) committer.Commit {
	c.Metadata = nil
	return c
}

// ensureIndex indexes every file of snap not indexed yet, reading it:
// the first step of a maintainer that starts on an existing mirror.
func (m *Maintainer) ensureIndex(ctx context.Context, kr keyer, snap *committer.Snapshot) error {
	for path := range snap.Files {
		if _, ok := m.index[path]; ok {
			continue
		}
		_, rows, err := tablefile.ReadFile(ctx, m.b, m.mirror.Root(), path)
		if err != nil {
			return fmt.Errorf("mirror %s: index: %w", m.mirror.Root(), err)
		}
		keyed := make([]keyedRow, len(rows))
		for i := range rows {
			keyed[i] = keyedRow{key: kr.keyOf(nil, &rows[i]), ch: &rows[i], pos: i}
		}
		m.index[path] = newFileIndex(path, keyed)
	}
	return nil
}

// lookup returns the mirror's row of key k with the greatest order: the
// key's state. It relies on the layout invariant of the package doc: of a
// key's rows, all but the one with the greatest order are deleted, and
// that one is deleted exactly when it is a DELETE, so the greatest says
// whether the key is visible and which row to delete when a newer change
// comes, without reading deletion vectors. Another writer breaking it (a
// second visible row of a key) goes unnoticed here; Check, which reads
// every visible row, reports it (TestCheckDetectsCorruptMirror).
func (m *Maintainer) lookup(snap *committer.Snapshot, k []byte) (entry, bool) {
	var best entry
	found := false
	for path := range snap.Files {
		f := m.index[path]
		if f == nil {
			continue
		}
		if e, ok := f.find(k); ok && (!found || e.order.compare(best.order) > 0) {
			best, found = e, true
		}
	}
	return best, found
}

// IndexBytes returns the memory the maintainer's key index holds.
func (m *Maintainer) IndexBytes() int64 {
	var n int64
	for _, f := range m.index {
		n += f.bytes()
	}
	return n
}

// reduce returns, per key, the row of rows with the greatest order,
// sorted by key.
func reduce(kr keyer, rows []codec.Change) []keyedRow {
	keyed := make([]keyedRow, len(rows))
	for i := range rows {
		keyed[i] = keyedRow{key: kr.keyOf(nil, &rows[i]), ch: &rows[i]}
	}
	slices.SortFunc(keyed, func(a, b keyedRow) int {
		if c := bytes.Compare(a.key, b.key); c != 0 {
			return c
		}
		return orderOf(a.ch).compare(orderOf(b.ch))
	})
	out := keyed[:0]
	for i, r := range keyed {
		if i+1 < len(keyed) && bytes.Equal(keyed[i+1].key, r.key) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// writtenFile is a mirror file uploaded and not yet committed.
type writtenFile struct {
	add     committer.Add
	deleted []int64
	index   *fileIndex
}

// writeFile uploads rows, sorted by key with one row per key, as one
// mirror file, and returns its add, the positions of its DELETE rows
// (the tombstones, to be deleted in the same commit) and its index.
func (m *Maintainer) writeFile(ctx context.Context, schema *codec.Schema, rows []keyedRow, version int64, dataChange bool) (writtenFile, error) {
	changes := make([]codec.Change, len(rows))
	var deleted []int64
	for i, r := range rows {
		changes[i] = *r.ch
		changes[i].Key = nil
		rows[i].pos = i
		if r.ch.Op == codec.OpDelete {
			deleted = append(deleted, int64(i))
		}
	}
	w, err := tablefile.WriteBlock(ctx, m.b, m.mirror.Root(), tablefile.Block{
		Schema:  schema,
		Changes: changes,
		Encode: parquetblock.EncodeOptions{
			Compression:  m.opts.Compression,
			KafkaColumns: schema.KafkaColumns(),
		},
		// Names are random: a file of a step that never committed is an
		// orphan, and a later step never reuses its name.
		Name: func(codec.BlockStats, int) string {
			return fmt.Sprintf("data/mirror-%020d-%s.parquet", version, newID())
		},
		DataChange: dataChange,
		ModTime:    m.opts.Now(),
	})
	if err != nil {
		return writtenFile{}, fmt.Errorf("mirror %s: %w", m.mirror.Root(), err)
	}
	return writtenFile{add: w.Add, deleted: deleted, index: newFileIndex(w.Add.Path, rows)}, nil
}

// writeFiles writes rows, sorted by key, as files of about TargetFileRows
// rows each.
func (m *Maintainer) writeFiles(ctx context.Context, schema *codec.Schema, rows []keyedRow, version int64, dataChange bool) ([]writtenFile, error) {
	var out []writtenFile
	for start := 0; start < len(rows); start += m.opts.TargetFileRows {
		end := min(len(rows), start+m.opts.TargetFileRows)
		f, err := m.writeFile(ctx, schema, rows[start:end], version, dataChange)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// rebuild replaces the mirror's files with the view of the change log's
// snapshot: every row of every file the snapshot holds, reduced to the
// latest per key. The change log's compacted files hold the same rows as
// the files they replaced, so the snapshot is enough.
func (m *Maintainer) rebuild(ctx context.Context, res StepResult, kr keyer, reason string) (StepResult, error) {
	logSnap := m.logSnap
	snap := m.snap
	m.opts.Logger.Info("mirror rebuild", "table", m.mirror.Root(), "change_log", m.changeLog.Root(), "version", logSnap.Version, "reason", reason)
	res.Rebuilt, res.Reason = true, reason
	schema, err := tablefile.TableSchema(logSnap)
	if err != nil {
		return res, fmt.Errorf("mirror of %s: %w", m.changeLog.Root(), err)
	}
	// The latest change per key, file by file: memory holds one row per
	// key (and one file's rows), however many changes the log holds.
	latest := map[string]*codec.Change{}
	for _, path := range slices.Sorted(maps.Keys(logSnap.Files)) {
		if logSnap.Files[path].Deleted != nil {
			return res, deletedRowsError(m.changeLog.Root(), path)
		}
		_, changes, err := tablefile.ReadFile(ctx, m.b, m.changeLog.Root(), path)
		if err != nil {
			return res, fmt.Errorf("mirror of %s: rebuild: %w", m.changeLog.Root(), err)
		}
		var key []byte
		for i := range changes {
			ch := &changes[i]
			key = kr.keyOf(key[:0], ch)
			if cur, ok := latest[string(key)]; !ok || orderOf(ch).compare(orderOf(cur)) > 0 {
				latest[string(key)] = ch
			}
		}
	}
	rows := make([]keyedRow, 0, len(latest))
	for k, ch := range latest {
		rows = append(rows, keyedRow{key: []byte(k), ch: ch})
	}
	slices.SortFunc(rows, func(a, b keyedRow) int { return bytes.Compare(a.key, b.key) })
	files, err := m.writeFiles(ctx, schema, rows, logSnap.Version, true)
	if err != nil {
		return res, err
	}
	app := AppID(logSnap.Metadata.ID)
	c := committer.Commit{Operation: OpMerge, ReadVersion: -1, Info: m.info(logSnap.Version)}
	if w := res.From; logSnap.Version > w {
		c.Txns = []committer.TxnCondition{{AppID: app, FirstOffset: w + 1, LastOffset: logSnap.Version}}
	}
	if snap != nil {
		c.ReadVersion = snap.Version
		for _, path := range slices.Sorted(maps.Keys(snap.Files)) {
			a := snap.Files[path]
			c.Removes = append(c.Removes, committer.Remove{Path: path, DataChange: true, Size: a.Size, PartitionValues: a.PartitionValues, DeletionTimestamp: m.opts.Now().UnixMilli()})
		}
		md := m.newMetadata(&committer.Metadata{Schema: schema})
		cur := snap.Metadata.Clone()
		cur.Schema = md.Schema
		cur.SchemaErr = nil
		cur.Configuration = md.Configuration
		c.Metadata = &cur
	} else {
		c.Metadata = &committer.Metadata{Schema: schema}
	}
	var written []*fileIndex
	for _, f := range files {
		c.Adds = append(c.Adds, f.add)
		if len(f.deleted) > 0 {
			c.Deletes = append(c.Deletes, committer.RowDeletion{Path: f.add.Path, Rows: f.deleted})
			res.Deleted += len(f.deleted)
		}
		written = append(written, f.index)
		res.Rows += f.index.len()
	}
	ok, err := m.commit(ctx, &res, snap, c, written)
	if err != nil || !ok {
		return res, err
	}
	res.To = max(res.From, logSnap.Version)
	return res, nil
}

// maybeCompact rewrites some of the mirror's files into fewer, cleaner
// ones, when the mirror holds more than MaxFiles files or more than
// MaxDeletedFraction of its rows are superseded (deleted rows that are not
// tombstones). Its inputs are the small files (under half of
// TargetFileRows rows: what steps write) and the files whose superseded
// rows exceed the fraction; large clean files stay. Of the inputs it keeps
// the rows that are their key's state (tombstones included, deleted again
// in the output), key-sorted, in files of TargetFileRows rows, committed
// with dataChange=false and the mirror's txn version unchanged. Rows are
// kept or dropped by the index: a row is kept when the index finds it as
// its key's latest row.
func (m *Maintainer) maybeCompact(ctx context.Context, res StepResult, kr keyer) (StepResult, error) {
	snap := m.snap
	if snap == nil || len(snap.Files) == 0 {
		return res, nil
	}
	if err := m.ensureIndex(ctx, kr, snap); err != nil {
		return res, err
	}
	var physical, superseded int64
	var small, dirty []string
	for _, path := range slices.Sorted(maps.Keys(snap.Files)) {
		a := snap.Files[path]
		rows := a.Rows()
		sup := m.superseded(a)
		physical += rows
		superseded += sup
		switch {
		case float64(sup) > m.opts.MaxDeletedFraction*float64(rows):
			dirty = append(dirty, path)
		case rows < int64(m.opts.TargetFileRows/2):
			small = append(small, path)
		}
	}
	tooMany := len(snap.Files) > m.opts.MaxFiles && len(small) >= 2
	tooDeleted := float64(superseded) > m.opts.MaxDeletedFraction*float64(physical) && len(dirty) > 0
	if !tooMany && !tooDeleted {
		return res, nil
	}
	inputs := append(dirty, small...)
	slices.Sort(inputs)
	schema, err := tablefile.TableSchema(snap)
	if err != nil {
		return res, fmt.Errorf("mirror %s: %w", m.mirror.Root(), err)
	}
	var kept []keyedRow
	for _, path := range inputs {
		_, rows, err := tablefile.ReadFile(ctx, m.b, m.mirror.Root(), path)
		if err != nil {
			return res, fmt.Errorf("mirror %s: compact: %w", m.mirror.Root(), err)
		}
		for i := range rows {
			k := kr.keyOf(nil, &rows[i])
			if e, ok := m.lookup(snap, k); ok && e.path == path && e.pos == int64(i) {
				kept = append(kept, keyedRow{key: k, ch: &rows[i]})
			}
		}
	}
	slices.SortFunc(kept, func(a, b keyedRow) int { return bytes.Compare(a.key, b.key) })
	files, err := m.writeFiles(ctx, schema, kept, max(res.To, 0), false)
	if err != nil {
		return res, err
	}
	c := committer.Commit{Operation: committer.OpOptimize, ReadVersion: snap.Version, Info: m.info(res.To)}
	for _, path := range inputs {
		// Deleted names the rows the rewrite dropped: the format refuses
		// the commit if more were deleted since (a second fence, beside
		// the seq txn).
		a := snap.Files[path]
		c.Removes = append(c.Removes, committer.Remove{Path: path, DataChange: false, Size: a.Size, PartitionValues: a.PartitionValues,
			DeletionTimestamp: m.opts.Now().UnixMilli(), Deleted: a.Deleted})
	}
	var written []*fileIndex
	for _, f := range files {
		c.Adds = append(c.Adds, f.add)
		if len(f.deleted) > 0 {
			c.Deletes = append(c.Deletes, committer.RowDeletion{Path: f.add.Path, Rows: f.deleted})
		}
		written = append(written, f.index)
	}
	ok, err := m.commit(ctx, &res, snap, c, written)
	if err != nil || !ok {
		return res, err
	}
	m.opts.Logger.Info("mirror compacted", "table", m.mirror.Root(), "version", res.MirrorVersion, "inputs", len(inputs), "outputs", len(files),
		"files_before", len(snap.Files), "rows_before", physical, "superseded_before", superseded)
	res.Compacted = true
	return res, nil
}

// superseded returns how many of a's deleted rows are superseded rows
// rather than tombstones: the rows compaction would drop.
func (m *Maintainer) superseded(a committer.Add) int64 {
	if a.Deleted == nil {
		return 0
	}
	n := a.Deleted.Count
	if f := m.index[a.Path]; f != nil {
		n -= int64(f.tombstones())
	}
	return max(n, 0)
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error.
	return hex.EncodeToString(b[:])
}
