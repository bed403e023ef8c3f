package delta

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unique"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

// recentCommitIDs bounds how many versions back a snapshot remembers commit
// ids. They let a retried commit recognise that an earlier, ambiguous
// attempt landed: the commit loop looks a few versions after its put, and
// a caller calling Commit again after an ambiguous error does so after its
// own backoff, which 128 versions of other writers' commits far outlast.
// Missing one never lands a commit twice (an append is refused by its txn
// versions, a compaction by its removed inputs); it only turns the retry
// into a refusal. Every open table keeps these ids: at 1,024 versions they
// were 89 kB a table, 180 MB at 2,048 tables, after half an hour of 2 s
// flushes.
const recentCommitIDs = 128

// state is what a Delta snapshot holds beyond the format-neutral
// committer.Snapshot, in its Sys field.
type state struct {
	protocol Protocol
	// metadata is the metaData action as the log holds it; the snapshot's
	// Metadata is its format-neutral reading.
	metadata metadata
	// tombs are the removed files kept for vacuum and checkpoints, until
	// TombstoneRetention after their removal; see Table.Removed.
	tombs tombstoneSet
	// txnUpdated keeps each txn's lastUpdated so checkpoints preserve it,
	// and the handle that keeps its interned app id alive (see setTxn).
	txnUpdated map[string]txnMeta
	// schema keeps metadata's interned SchemaString alive (see intern).
	schema unique.Handle[string]
	// metadataVersion is the version that last set metaData (for a snapshot
	// loaded from a checkpoint, the checkpoint's version: an upper bound).
	metadataVersion int64
	// commitIDs are the evodb commit ids of the commits of the last
	// recentCommitIDs versions, oldest first. A snapshot owns its slice
	// (clone copies it): apply appends to it.
	commitIDs []commitRef
	// seenAt is a time (on the Table's clock) at which Version was the
	// table's latest version: taken before the read that found no later
	// version, or before the put that created Version. Zero for a snapshot
	// no Table has confirmed.
	seenAt time.Time
}

// st returns the Delta state of s, which this package created.
func st(s *committer.Snapshot) *state { return s.Sys.(*state) }

// ours reports whether s is a snapshot this package created.
func ours(s *committer.Snapshot) bool {
	if s == nil {
		return false
	}
	_, ok := s.Sys.(*state)
	return ok
}

// Tombstone returns the remove action of path if s keeps it as a
// tombstone: removed less than the Table's TombstoneRetention ago (or a
// little longer; expiry runs in batches). A path removed several times
// with different deletion vectors (its vector changed while it stayed
// active) has a tombstone per vector; Tombstone returns the latest, and
// Tombstones yields them all. A path can be active and have tombstones.
func Tombstone(s *committer.Snapshot, path string) (committer.Remove, bool) {
	return st(s).tombs.get(path)
}

// NumTombstones returns how many tombstones s keeps.
func NumTombstones(s *committer.Snapshot) int { return st(s).tombs.n }

// Tombstones yields the tombstones s keeps, by path, in no particular
// order; a path appears once per deletion vector it was removed with.
func Tombstones(s *committer.Snapshot) iter.Seq2[string, committer.Remove] {
	return st(s).tombs.all()
}

// ProtocolOf returns the protocol of s.
func ProtocolOf(s *committer.Snapshot) Protocol { return st(s).protocol }

// SchemaString returns the Delta schemaString of s as the log holds it.
func SchemaString(s *committer.Snapshot) string { return st(s).metadata.SchemaString }

func emptySnapshot() *committer.Snapshot {
	return &committer.Snapshot{
		Version: -1,
		Files:   map[string]committer.Add{},
		Txns:    map[string]int64{},
		Sys: &state{
			txnUpdated:      map[string]txnMeta{},
			metadataVersion: -1,
		},
	}
}

func clone(s *committer.Snapshot) *committer.Snapshot {
	c := *s
	c.Files = maps.Clone(s.Files)
	c.Txns = maps.Clone(s.Txns)
	cs := *st(s)
	cs.tombs = cs.tombs.share()
	cs.txnUpdated = maps.Clone(cs.txnUpdated)
	cs.commitIDs = slices.Clone(cs.commitIDs)
	c.Sys = &cs
	return &c
}

// shallow returns a copy of s that shares its maps, which neither ever
// changes, to record a later seenAt.
func shallow(s *committer.Snapshot) *committer.Snapshot {
	c := *s
	cs := *st(s)
	cs.tombs = cs.tombs.share()
	c.Sys = &cs
	return &c
}

// neutralMetadata reads md as format-neutral metadata. A schemaString the
// row model cannot represent (another engine's nested or unknown types)
// leaves Schema nil and says why in SchemaErr.
func neutralMetadata(md metadata) committer.Metadata {
	out := committer.Metadata{
		ID:               md.ID,
		Name:             md.Name,
		PartitionColumns: append([]string(nil), md.PartitionColumns...),
		Configuration:    maps.Clone(md.Configuration),
		CreatedTime:      md.CreatedTime,
	}
	if md.SchemaString != "" {
		out.Schema, out.SchemaErr = ParseSchema(md.SchemaString)
	}
	return out
}

// apply replays one commit onto s in place. Within a commit removes are
// applied before adds, so a commit that removes and re-adds a path ends with
// the path active, as Delta's action reconciliation requires.
func apply(s *committer.Snapshot, version int64, e *logEntry) {
	ss := st(s)
	s.Version = version
	if e.protocol != nil {
		ss.protocol = *e.protocol
	}
	if e.metadata != nil {
		ss.metadata = cloneMetadata(*e.metadata)
		ss.metadata.SchemaString, ss.schema = intern(ss.metadata.SchemaString)
		s.Metadata = neutralMetadata(ss.metadata)
		ss.metadataVersion = version
	}
	for _, t := range e.txns {
		setTxn(s, t.AppID, t.Version, t.LastUpdated)
	}
	for _, r := range e.removes {
		delete(s.Files, r.Path)
		ss.tombs.put(r)
	}
	for _, a := range e.adds {
		s.Files[a.Path] = a
		ss.tombs.remove(a.Path, a.Deleted)
	}
	if id := e.commitID(); id != "" {
		ss.commitIDs = append(ss.commitIDs, commitRef{id: id, version: version})
		drop := 0
		for drop < len(ss.commitIDs) && ss.commitIDs[drop].version <= version-recentCommitIDs {
			drop++
		}
		ss.commitIDs = ss.commitIDs[drop:]
	}
}

// commitRef is a commit id and the version holding it.
type commitRef struct {
	id      string
	version int64
}

// intern returns the canonical copy of s, and the handle that keeps it
// alive: a process keeps a snapshot per open table, and its tables mostly
// share their txn app ids (one per source partition and its lineage, built
// afresh for every commit) and often their schemaStrings (tables of one
// source schema, one per tenant). At thousands of tables private copies of
// them were megabytes. The canonical copies are the runtime's (package
// unique); one lives as long as a snapshot holds its handle, so a snapshot
// keeps the handle of every string it interned (state.schema, txnMeta).
func intern(s string) (string, unique.Handle[string]) {
	h := unique.Make(s)
	return h.Value(), h
}

// txnMeta is what a snapshot keeps of a txn beside its version.
type txnMeta struct {
	lastUpdated int64
	// app keeps the interned app id, the key of the txn in Txns and
	// txnUpdated, alive.
	app unique.Handle[string]
}

// setTxn records in s, which no caller holds yet, the txn of app at
// version, last updated at updated, under app's interned copy.
func setTxn(s *committer.Snapshot, app string, version, updated int64) {
	app, h := intern(app)
	// Assigning to a key a map holds also stores the new key string, so
	// the map ends up keyed by the canonical copy either way.
	s.Txns[app] = version
	st(s).txnUpdated[app] = txnMeta{lastUpdated: updated, app: h}
}

// expireTombstones drops from s, which no caller holds yet, the tombstones
// removed more than TombstoneRetention ago, as checkpoints leave them out:
// without it a long-running writer would keep every file compaction ever
// removed. Expiry runs in batches, at most every sixteenth of the retention.
func (t *Table) expireTombstones(s *committer.Snapshot) {
	r := t.opts.TombstoneRetention
	st(s).tombs.expire(t.opts.Now().Add(-r).UnixMilli(), (r / 16).Milliseconds())
}

// committedAt reports the version holding the commit with the given id, if
// s remembers it.
func committedAt(s *committer.Snapshot, id string) (int64, bool) {
	ids := st(s).commitIDs
	for i := len(ids) - 1; i >= 0; i-- {
		if ids[i].id == id {
			return ids[i].version, true
		}
	}
	return 0, false
}

func (t *Table) logKey(name string) string {
	return t.root + "_delta_log/" + name
}

func commitName(version int64) string {
	return fmt.Sprintf("%020d.json", version)
}

func checkpointName(version int64) string {
	return fmt.Sprintf("%020d.checkpoint.parquet", version)
}

func (t *Table) readObject(ctx context.Context, key string) ([]byte, error) {
	rc, err := t.bucket.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return data, nil
}

// readCommit reads and parses one commit; it returns objstore.ErrNotExist
// (wrapped) when the version does not exist yet.
func (t *Table) readCommit(ctx context.Context, version int64) (*logEntry, error) {
	key := t.logKey(commitName(version))
	data, err := t.readObject(ctx, key)
	if err != nil {
		return nil, err
	}
	e, err := parseLogEntry(data)
	if err != nil {
		return nil, fmt.Errorf("parse commit %s: %w", key, err)
	}
	e.root(t.root)
	return e, nil
}

// update applies the commits after s.Version, probing version by version
// until one does not exist. Probing instead of listing keeps an update at one
// request per new commit plus one, whatever the length of the log. When
// there is nothing new it returns s, or a copy of s with a later seenAt.
//
// Probing relies on the versions after s.Version not having been deleted
// by log cleanup, which holds while s is fresh (see the Table doc) and for
// a snapshot just read from the newest checkpoint (cleanup keeps it and
// everything after it); callers ensure one or the other.
func (t *Table) update(ctx context.Context, s *committer.Snapshot) (*committer.Snapshot, error) {
	seenAt := t.opts.Now()
	out := s
	for {
		v := out.Version + 1
		e, err := t.readCommit(ctx, v)
		if errors.Is(err, objstore.ErrNotExist) {
			if out == s && !seenAt.After(st(s).seenAt) {
				return s, nil
			}
			if out == s {
				// A shallow copy: the maps are shared, and neither
				// snapshot ever changes them.
				out = shallow(s)
			} else {
				t.expireTombstones(out)
			}
			st(out).seenAt = seenAt
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("update table %s to version %d: %w", t.root, v, err)
		}
		if out == s {
			out = clone(s)
		}
		apply(out, v, e)
	}
}

// errUnrooted is returned (wrapped) by load for a log that has versions but
// neither version 0 nor a readable checkpoint: no engine can load it.
var errUnrooted = errors.New("log has no version 0 and no readable checkpoint")

// listBudget is how many log objects load takes from one listing: one page
// of an S3 ListObjectsV2. A longer log is loaded through _last_checkpoint.
const listBudget = 1000

// errLongLog stops a listing of a log longer than listBudget objects.
var errLongLog = errors.New("log longer than one listing page")

// logListing is what one listing of a table's _delta_log/ found.
type logListing struct {
	// commits and checkpoints map versions to their objects' ETags.
	commits, checkpoints map[int64]string
	// newest is the highest commit version listed, -1 if none.
	newest int64
}

// note records the log object name (relative to _delta_log/) with etag.
func (l *logListing) note(name, etag string) {
	if v, ok := strings.CutSuffix(name, ".json"); ok && len(v) == 20 {
		if version, err := strconv.ParseInt(v, 10, 64); err == nil {
			l.commits[version] = etag
			l.newest = max(l.newest, version)
		}
	}
	if v, ok := strings.CutSuffix(name, ".checkpoint.parquet"); ok && len(v) == 20 {
		if version, err := strconv.ParseInt(v, 10, 64); err == nil {
			l.checkpoints[version] = etag
		}
	}
}

// listLog lists the table's log. It reports false, with no error, when the
// log holds more than listBudget objects.
func (t *Table) listLog(ctx context.Context) (logListing, bool, error) {
	l := logListing{commits: map[int64]string{}, checkpoints: map[int64]string{}, newest: -1}
	prefix := t.logKey("")
	n := 0
	err := t.bucket.List(ctx, prefix, func(info objstore.ObjectInfo) error {
		if n++; n > listBudget {
			return errLongLog
		}
		l.note(strings.TrimPrefix(info.Key, prefix), info.ETag)
		return nil
	})
	if errors.Is(err, errLongLog) {
		return logListing{}, false, nil
	}
	if err != nil {
		return logListing{}, false, fmt.Errorf("list log of table %s: %w", t.root, err)
	}
	return l, true, nil
}

// errListed stops a listing of a table's prefix once it found what
// listPrefix looks for.
var errListed = errors.New("listed enough")

// errUndecided stops a listing of a table's prefix that found more than
// listBudget objects outside the log before it could tell anything.
var errUndecided = errors.New("too many objects before the log")

// listPrefix lists the table's whole prefix instead of its log, to load
// the table and look for tables nested in it in one listing. Keys come in
// order, so it stops once it is past the log's keys and knows either that
// the log exists (then nested tables do not matter: the table is not
// being created) or the first nested table. Only a table that does not
// exist yet is listed to the end of its prefix, which then holds little
// but the tables nested in it. It reports decided false, with no error,
// after listBudget objects outside the log with nothing decided; the
// caller then lists the log alone. ok is listLog's.
func (t *Table) listPrefix(ctx context.Context) (l logListing, nested string, decided, ok bool, err error) {
	l = logListing{commits: map[int64]string{}, checkpoints: map[int64]string{}, newest: -1}
	logPrefix := t.logKey("")
	inLog, others := 0, 0
	err = t.bucket.List(ctx, t.root, func(info objstore.ObjectInfo) error {
		if name, isLog := strings.CutPrefix(info.Key, logPrefix); isLog {
			if inLog++; inLog > listBudget {
				return errLongLog
			}
			l.note(name, info.ETag)
			return nil
		}
		if others++; others > listBudget {
			return errUndecided
		}
		if root, ok := strings.CutSuffix(info.Key, "/"+FirstCommit); ok && nested == "" {
			nested = root
		}
		if info.Key > logPrefix && (inLog > 0 || nested != "") {
			return errListed
		}
		return nil
	})
	switch {
	case errors.Is(err, errLongLog):
		return logListing{}, "", true, false, nil
	case errors.Is(err, errUndecided):
		return logListing{}, "", false, false, nil
	case err != nil && !errors.Is(err, errListed):
		return logListing{}, "", false, false, fmt.Errorf("list table %s: %w", t.root, err)
	}
	return l, nested, true, true, nil
}

var _ committer.NestedFinder = (*Table)(nil)

// SnapshotFindNested implements committer.NestedFinder: Snapshot, from a
// listing of the table's prefix (listPrefix) rather than of its log.
func (t *Table) SnapshotFindNested(ctx context.Context) (*committer.Snapshot, string, bool, error) {
	s, a, nested, checked, err := t.loadFindNested(ctx)
	if err != nil {
		return nil, nested, checked, err
	}
	t.remember(s)
	t.setAnchor(a)
	return s, "", true, nil
}

// loadFindNested is load from listPrefix's listing, falling back to
// listLog's when that one could not decide.
func (t *Table) loadFindNested(ctx context.Context) (*committer.Snapshot, anchor, string, bool, error) {
	seenAt := t.opts.Now()
	l, nested, decided, ok, err := t.listPrefix(ctx)
	if err != nil {
		return nil, anchor{}, "", false, err
	}
	if !decided {
		s, a, err := t.load(ctx)
		return s, a, "", false, err
	}
	s, a, err := t.loadFrom(ctx, l, ok, seenAt)
	return s, a, nested, true, err
}

// load builds the latest snapshot from scratch and returns it with the
// anchor it was built from.
//
// A log of up to listBudget objects is loaded from one listing: the newest
// readable checkpoint, or version 0, then the commits after it that the
// listing names, read once each. That takes no request that answers with an
// error (no probe of _last_checkpoint or of the version after the latest,
// which S3 servers answer with 404), and no HEAD: the anchor's ETag is the
// listing's. It relies on the store listing every object created before
// the listing began (read-after-write consistent listings, as S3, R2,
// versitygw and the filesystem and memory buckets give) and reporting the
// same ETag in a listing as in a HEAD (the acceptance test checks it). A
// listing that lags behind the newest writes gives an older snapshot, as a
// read a moment earlier would have: the next commit's create-only put finds
// the version taken and reads the log (step 4 of the Table doc), and log
// cleanup, which deletes no version younger than MinLogRetention, cannot
// have removed versions that recent (TestLoadFromLaggingListing). A listing
// that skips a version between the ones it names is detected, and the log
// is then loaded as a longer one is.
//
// A longer log is loaded from the checkpoint _last_checkpoint names (or
// failing that the newest readable checkpoint a full listing finds, or a
// replay from version 0), then the commits after it, probed one by one.
func (t *Table) load(ctx context.Context) (*committer.Snapshot, anchor, error) {
	seenAt := t.opts.Now()
	l, ok, err := t.listLog(ctx)
	if err != nil {
		return nil, anchor{}, err
	}
	return t.loadFrom(ctx, l, ok, seenAt)
}

// loadFrom is load after its listing: l, or a log too long for one
// listing (ok false).
func (t *Table) loadFrom(ctx context.Context, l logListing, ok bool, seenAt time.Time) (*committer.Snapshot, anchor, error) {
	if ok {
		if len(l.commits) == 0 && len(l.checkpoints) == 0 {
			t.markAbsent(seenAt)
			return nil, anchor{}, fmt.Errorf("table %s: %w", t.root, committer.ErrNoTable)
		}
		s, a, err := t.loadListed(ctx, l, seenAt)
		if !errors.Is(err, errListingGap) {
			return s, a, err
		}
		t.logger.Warn("load table: the log listing skips a version; reading the log version by version", "err", err)
	}
	return t.loadLong(ctx)
}

// errListingGap is returned (wrapped) by loadListed when the listing or the
// reads after it do not give a contiguous run of versions.
var errListingGap = errors.New("log listing is not contiguous")

// loadListed builds the snapshot at the newest version of l, seen at
// seenAt (taken before the listing). See load.
func (t *Table) loadListed(ctx context.Context, l logListing, seenAt time.Time) (*committer.Snapshot, anchor, error) {
	var (
		s    *committer.Snapshot
		a    anchor
		base int64
	)
	cps := slices.Sorted(maps.Keys(l.checkpoints))
	for i := len(cps) - 1; i >= 0 && s == nil; i-- {
		cs, err := t.readCheckpoint(ctx, cps[i])
		if err != nil {
			t.logger.Warn("read checkpoint", "version", cps[i], "err", err)
			continue
		}
		s, base = cs, cps[i]
		a = anchor{key: t.logKey(checkpointName(base)), etag: l.checkpoints[base], base: base}
	}
	if s == nil {
		etag, ok := l.commits[0]
		if !ok {
			return nil, anchor{}, fmt.Errorf("table %s: %w; if the table's prefix was deleted, delete what is left of it", t.root, errUnrooted)
		}
		s, base = emptySnapshot(), -1
		a = anchor{key: t.logKey(commitName(0)), etag: etag}
	}
	for v := base + 1; v <= l.newest; v++ {
		if _, ok := l.commits[v]; !ok {
			return nil, anchor{}, fmt.Errorf("table %s: version %d is not listed but %d is: %w", t.root, v, l.newest, errListingGap)
		}
		e, err := t.readCommit(ctx, v)
		if errors.Is(err, objstore.ErrNotExist) {
			return nil, anchor{}, fmt.Errorf("table %s: listed version %d is gone: %w", t.root, v, errListingGap)
		}
		if err != nil {
			return nil, anchor{}, fmt.Errorf("load table %s at version %d: %w", t.root, v, err)
		}
		apply(s, v, e)
	}
	if s.Version < 0 {
		return nil, anchor{}, fmt.Errorf("table %s: %w", t.root, committer.ErrNoTable)
	}
	if s.Version > base {
		t.expireTombstones(s)
	}
	if s.Metadata.ID == "" && st(s).metadata.SchemaString == "" {
		return nil, anchor{}, fmt.Errorf("table %s at version %d has no metaData", t.root, s.Version)
	}
	st(s).seenAt = seenAt
	return s, a, nil
}

// loadLong loads a log too long for one listing page; see load.
func (t *Table) loadLong(ctx context.Context) (*committer.Snapshot, anchor, error) {
	if v, ok := t.readLastCheckpoint(ctx); ok {
		s, err := t.readCheckpoint(ctx, v)
		if err == nil {
			return t.finishLoad(ctx, s, t.logKey(checkpointName(v)), v)
		}
		t.logger.Warn("read checkpoint named by _last_checkpoint", "table", t.root, "version", v, "err", err)
	}
	var checkpoints []int64
	found := false
	err := t.bucket.List(ctx, t.logKey(""), func(info objstore.ObjectInfo) error {
		name := strings.TrimPrefix(info.Key, t.logKey(""))
		if strings.HasSuffix(name, ".json") && len(name) == 25 {
			found = true
		}
		if v, ok := strings.CutSuffix(name, ".checkpoint.parquet"); ok && len(v) == 20 {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				checkpoints = append(checkpoints, n)
			}
		}
		return nil
	})
	if err != nil {
		return nil, anchor{}, fmt.Errorf("list log of table %s: %w", t.root, err)
	}
	if !found && len(checkpoints) == 0 {
		return nil, anchor{}, fmt.Errorf("table %s: %w", t.root, committer.ErrNoTable)
	}
	for i := len(checkpoints) - 1; i >= 0; i-- {
		s, err := t.readCheckpoint(ctx, checkpoints[i])
		if err == nil {
			return t.finishLoad(ctx, s, t.logKey(checkpointName(checkpoints[i])), checkpoints[i])
		}
		t.logger.Warn("read checkpoint", "table", t.root, "version", checkpoints[i], "err", err)
	}
	s, a, err := t.finishLoad(ctx, emptySnapshot(), t.logKey(commitName(0)), 0)
	if errors.Is(err, committer.ErrNoTable) {
		return nil, anchor{}, fmt.Errorf("table %s: %w; if the table's prefix was deleted, delete what is left of it", t.root, errUnrooted)
	}
	return s, a, err
}

// finishLoad advances s, just read from the object at rootKey (the
// checkpoint of version base, or version 0), to the latest version, and
// returns it with the anchor it came from.
func (t *Table) finishLoad(ctx context.Context, s *committer.Snapshot, rootKey string, base int64) (*committer.Snapshot, anchor, error) {
	s, err := t.update(ctx, s)
	if err != nil {
		return nil, anchor{}, err
	}
	if s.Version < 0 {
		return nil, anchor{}, fmt.Errorf("table %s: %w", t.root, committer.ErrNoTable)
	}
	if s.Metadata.ID == "" && st(s).metadata.SchemaString == "" {
		return nil, anchor{}, fmt.Errorf("table %s at version %d has no metaData", t.root, s.Version)
	}
	// The anchor's ETag lets later commits notice the table being deleted
	// or created again; the object was just read, so a HEAD finds it.
	info, err := t.bucket.Head(ctx, rootKey)
	if err != nil {
		return nil, anchor{}, fmt.Errorf("table %s: head %s: %w", t.root, rootKey, err)
	}
	return s, anchor{key: rootKey, etag: info.ETag, base: base}, nil
}
