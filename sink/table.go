package sink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/partitioner"
	"github.com/evodb/sink/sink/buffer"
	"github.com/evodb/sink/tablefile"
)

// table is the runtime state of one destination table. Fields are guarded
// by Sink.mu except log, which is safe for concurrent use.
type table struct {
	path string
	name string // the routed table name the config overrides are keyed by
	cfg  TableConfig
	mode partitioner.Mode
	log  committer.Table
	buf  *buffer.Table
	// schema is the table's committed schema evolved by the changes in
	// the buffer and in the running flush; every buffered change fits it.
	// A change evolves it only once the buffer has taken the change, and
	// dropping changes from the buffer rebuilds it (rebuildSchemaLocked),
	// so a change that is refused or dropped never reaches a commit's
	// schema.
	schema *codec.Schema
	// evolvedBy holds the source partitions whose changes in the buffer
	// evolved schema, and declared the column schemas (Change.Declared,
	// shared between changes) each partition's buffered changes carry:
	// what rebuildSchemaLocked needs, since the buffer keeps values but
	// not declared types. Both are reset when the buffer is drained.
	evolvedBy map[topicPartition]bool
	declared  map[topicPartition][][]codec.Column
	// lastDeclared is the Declared slice and partition recorded last, so
	// the common case (a partition's consecutive changes share one)
	// records nothing.
	lastDeclared struct {
		tp   topicPartition
		cols []codec.Column
	}
	// durable maps a txn appId to what the table holds from that source
	// partition.
	durable map[string]txnState
	// snap is the latest snapshot this sink saw, nil before the table exists.
	snap *committer.Snapshot
	// stale asks for a snapshot refresh before the next record is
	// buffered (set when partitions are assigned).
	stale bool
	// inflight is the flush running for this table; at most one, so commits
	// of a table land in order.
	inflight *flushJob
	// flushWanted asks for another flush as soon as inflight finishes.
	flushWanted string

	// pk is the primary key columns, comma-separated, from record keys
	// or the table's metaData.
	pk string
	// dedupe is the lsn deduplication state, nil unless `dedupe: lsn`.
	dedupe *dedupeState

	lastCommit  time.Time
	newestTS    int64
	rowsWritten int64
}

// txnState is what a table holds from one source partition.
type txnState struct {
	// version is the table's txn version: the last offset of the
	// partition already in the table; -1 if none.
	version int64
	// topicIDs are the topic IDs the table's commits recorded with the
	// version (committer.LineageAppID), sorted: none for a table written
	// before topic IDs were recorded or from a broker without them, one
	// normally, more only if sinks raced on a re-created topic.
	topicIDs []string
}

// otherTopic returns a topic ID the table recorded for the partition that
// is not id, if there is one. It never finds one when id is empty (the
// broker gives no topic IDs) or when the table recorded none.
func (st txnState) otherTopic(id string) (string, bool) {
	if id == "" {
		return "", false
	}
	for _, t := range st.topicIDs {
		if t != id {
			return t, true
		}
	}
	return "", false
}

// routeError is a change whose table cannot be routed (a bad name for a
// path): a record error, not a sink error.
type routeError struct{ err error }

func (e *routeError) Error() string { return e.err.Error() }
func (e *routeError) Unwrap() error { return e.err }

// routeKey is what a table's path is rendered from.
type routeKey struct{ db, schema, table, topic string }

// routeEntry is a change's table path and name, and the table once known.
type routeEntry struct {
	key        routeKey // cloned: the change's strings may share a whole fetch's memory
	path, name string
	table      *table
	// refused is why the table may not be opened (its path is nested
	// with another table's), so that its later changes are refused
	// without asking the store again.
	refused error
}

// maxRoutes bounds the route cache; past it the cache starts over.
const maxRoutes = 1 << 16

// route returns the route of a change's table. Rendering the path template
// and joining the name cost more than the rest of routing, and a sink sees
// few distinct tables, so results are cached. Only the poll goroutine
// calls it.
func (s *Sink) route(ch *codec.Change) (*routeEntry, error) {
	k := routeKey{ch.DB, ch.Schema, ch.Table, ch.Topic}
	if e := s.lastRoute.entry; e != nil && s.lastRoute.key == k {
		return e, nil
	}
	e, ok := s.routes[k]
	if !ok {
		name := ch.TableName()
		path, err := s.router.Route(ch.DB, ch.Schema, ch.Table, ch.Topic)
		if err != nil {
			return nil, &routeError{fmt.Errorf("route table %s: %w", name, err)}
		}
		if len(s.routes) >= maxRoutes || s.routes == nil {
			s.routes = map[routeKey]*routeEntry{}
		}
		k = routeKey{strings.Clone(k.db), strings.Clone(k.schema), strings.Clone(k.table), strings.Clone(k.topic)}
		e = &routeEntry{key: k, path: strings.Clone(path), name: strings.Clone(name)}
		s.routes[k] = e
	}
	s.lastRoute.key, s.lastRoute.entry = e.key, e
	return e, nil
}

// tableFor returns (creating and loading on first use) the table a change
// goes to. It does store I/O, so it runs outside s.mu.
func (s *Sink) tableFor(ctx context.Context, ch *codec.Change) (*table, error) {
	e, err := s.route(ch)
	if err != nil {
		return nil, err
	}
	if e.refused != nil {
		return nil, e.refused
	}
	path, name := e.path, e.name
	s.mu.Lock()
	t := e.table
	if t == nil {
		t = s.tables[path]
	}
	stale := t != nil && t.stale
	s.mu.Unlock()
	if t != nil && t.name != name {
		return nil, &routeError{fmt.Errorf("tables %s and %s both map to path %s: make tables.default.path include {db} and {schema}, or give one of them a path in tables.overrides", t.name, name, path)}
	}
	if t != nil && !stale {
		// Tables are never removed from s.tables.
		e.table = t
		return t, nil
	}
	if t != nil {
		return t, s.refresh(ctx, t)
	}
	if err := s.checkNested(path, name); err != nil {
		e.refused = err
		return nil, err
	}

	cfg := s.cfg.TableConfig(name)
	mode, err := partitioner.ModeByName(cfg.Mode)
	if err != nil {
		return nil, err
	}
	maxBytes := cfg.MaxBufferBytes
	if maxBytes == 0 {
		maxBytes = 4 * mode.BlockSize
	}
	buf, err := buffer.NewTable(path, buffer.Options{
		FlushThreshold: cfg.FlushThreshold,
		FlushInterval:  cfg.FlushInterval,
		TargetBytes:    mode.BlockSize,
		MaxBytes:       maxBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", path, err)
	}
	nt := &table{
		path: path, name: name, cfg: cfg, mode: mode, buf: buf,
		schema:    codec.NewSchema(),
		durable:   map[string]txnState{},
		evolvedBy: map[topicPartition]bool{},
		declared:  map[topicPartition][][]codec.Column{},
		log: s.format.Open(path, committer.Options{
			Instance: s.instance,
			Now:      s.now,
			Logger:   s.log,
		}),
	}
	nt.schema.SetKafkaColumns(cfg.KafkaColumns == nil || *cfg.KafkaColumns)
	snap, err := s.loadSnapshot(ctx, nt)
	if err != nil {
		return nil, err
	}
	if snap == nil {
		if err := s.checkNestedOnStore(ctx, path, name); err != nil {
			var rerr *routeError
			if errors.As(err, &rerr) {
				e.refused = err
			}
			return nil, err
		}
	}
	if s.cfg.Dedupe == "lsn" {
		nt.dedupe = newDedupeState(s.cfg.DedupeWindow)
		if snap != nil {
			if err := s.absorbFiles(ctx, nt, snap, dedupeSeedFiles); err != nil {
				return nil, err
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tables[path]; t != nil {
		return t, nil
	}
	if err := s.adoptSnapshotLocked(nt, snap); err != nil {
		return nil, err
	}
	s.tables[path] = nt
	s.metrics.initTable(path, nt.dedupe != nil)
	if snap == nil {
		s.log.Info("table opened: it does not exist yet and is created by its first commit", "table", path)
	} else {
		s.log.Info("table opened", "table", path, "version", snap.Version)
	}
	return nt, nil
}

// checkNested refuses a new table whose path lies inside an open table's
// path or contains one: "inv" and "inv/data" (an evodb table inv and a
// Debezium MySQL table inv.data under "{db}/{table}") would share objects,
// and neither the log nor vacuum of the outer table could tell them apart.
// It is a record error, so the change goes to the dead-letter topic or
// stops the sink naming both tables, as errors.tolerance says. Tables are
// only opened by the poll goroutine, so no table can appear between this
// check and the new table's registration.
func (s *Sink) checkNested(path, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, t := range s.tables {
		if partitioner.Nested(p, path) || partitioner.Nested(path, p) {
			return &routeError{fmt.Errorf("table %s (path %s) and table %s (path %s) are nested: one table's path may not lie inside another's; give one of them a path in tables.overrides or change tables.default.path", name, path, t.name, p)}
		}
	}
	return nil
}

// errNestedFound stops a listing at the first nested table.
var errNestedFound = errors.New("nested table found")

// checkNestedOnStore refuses to create a table at path when the store
// already holds a table at a path that contains it or lies inside it,
// written by another sink or an earlier run (checkNested sees only the
// tables this process opened). A table is known by its version 0, which
// log cleanup never deletes. It runs only for a table that does not exist
// yet, once per table: a listing per ancestor path of its version 0's key
// and one listing of the path's own prefix, which for a table not yet
// created holds little but the tables nested in it. A listing rather than
// a HEAD: it answers 200 whether or not the key exists, where a HEAD of a
// missing key is an error answer (404), and most ancestors hold no table.
func (s *Sink) checkNestedOnStore(ctx context.Context, path, name string) error {
	refuse := func(other string) error {
		return &routeError{fmt.Errorf("table %s (path %s) and the table at path %s on the store are nested: one table's path may not lie inside another's; give %s a path in tables.overrides or change tables.default.path", name, path, other, name)}
	}
	marker := s.format.Marker()
	if marker == "" {
		// The format keeps its tables in a catalog, not under key
		// prefixes: paths cannot nest.
		return nil
	}
	for i := strings.IndexByte(path, '/'); i > 0; i = nextSlash(path, i) {
		outer := path[:i]
		var found bool
		err := s.retry(ctx, "load", func() error {
			first := outer + "/" + marker
			found = false
			return s.bucket.List(ctx, first, func(o objstore.ObjectInfo) error {
				found = found || o.Key == first
				return nil
			})
		})
		if err != nil {
			return fmt.Errorf("look for a table at %s: %w", outer, err)
		}
		if found {
			return refuse(outer)
		}
	}
	var inner string
	err := s.retry(ctx, "load", func() error {
		err := s.bucket.List(ctx, path+"/", func(o objstore.ObjectInfo) error {
			if root, ok := strings.CutSuffix(o.Key, "/"+marker); ok && root != path {
				inner = root
				return errNestedFound
			}
			return nil
		})
		if errors.Is(err, errNestedFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("look for tables inside %s: %w", path, err)
	}
	if inner != "" {
		return refuse(inner)
	}
	return nil
}

// nextSlash returns the index of the first '/' in path after i, or -1.
func nextSlash(path string, i int) int {
	j := strings.IndexByte(path[i+1:], '/')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

func versionOf(s *committer.Snapshot) int64 {
	if s == nil {
		return -1
	}
	return s.Version
}

// loadSnapshot reads a table's log with retries; nil means no table yet.
func (s *Sink) loadSnapshot(ctx context.Context, t *table) (*committer.Snapshot, error) {
	var snap *committer.Snapshot
	err := s.retry(ctx, "load", func() error {
		var err error
		snap, err = t.log.Snapshot(ctx)
		if errors.Is(err, committer.ErrNoTable) {
			snap, err = nil, nil
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load table %s: %w", t.path, err)
	}
	return snap, nil
}

// refresh reloads the txn versions of a table after an assignment.
func (s *Sink) refresh(ctx context.Context, t *table) error {
	snap, err := s.loadSnapshot(ctx, t)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t.stale = false
	return s.adoptSnapshotLocked(t, snap)
}

// adoptSnapshotLocked takes a newer snapshot's txn versions and schema.
func (s *Sink) adoptSnapshotLocked(t *table, snap *committer.Snapshot) error {
	if snap == nil || (t.snap != nil && snap.Version <= t.snap.Version) {
		return nil
	}
	t.snap = snap
	for app, v := range snap.Txns {
		id, topicID, isTopicID := committer.SplitLineage(app)
		if !isTopicID {
			id = app
		}
		st, ok := t.durable[id]
		if !ok {
			st.version = -1
		}
		if !isTopicID {
			st.version = max(st.version, v)
		} else if !slices.Contains(st.topicIDs, topicID) {
			st.topicIDs = append(st.topicIDs, topicID)
			slices.Sort(st.topicIDs)
		}
		t.durable[id] = st
	}
	if pk := snap.Metadata.Configuration[primaryKeyConfig]; pk != "" && t.pk == "" {
		t.pk = pk
	}
	if snap.Metadata.HasSchema() {
		theirs, err := tablefile.TableSchema(snap)
		if err != nil {
			return fmt.Errorf("table %s: %w", t.path, err)
		}
		// The committed types win; buffered changes that no longer fit
		// are refused when their flush checks them.
		t.schema.Rebase(theirs)
	}
	s.metrics.tableVersion.WithLabelValues(t.path).Set(float64(snap.Version))
	return nil
}

// acceptedLocked records what rebuildSchemaLocked needs about a change
// the buffer took from source partition tp: whether it evolved the
// schema, and the column schema it declared.
func (t *table) acceptedLocked(tp topicPartition, ch *codec.Change, evolved bool) {
	if evolved {
		t.evolvedBy[tp] = true
	}
	d := ch.Declared
	if len(d) == 0 || (t.lastDeclared.tp == tp && len(t.lastDeclared.cols) == len(d) && &t.lastDeclared.cols[0] == &d[0]) {
		return
	}
	t.lastDeclared.tp, t.lastDeclared.cols = tp, d
	for _, seen := range t.declared[tp] {
		if len(seen) == len(d) && &seen[0] == &d[0] {
			return
		}
	}
	t.declared[tp] = append(t.declared[tp], d)
}

// drainedLocked forgets what the buffer's changes told about the schema:
// they are in a flush now, and their evolutions are in its schema.
func (t *table) drainedLocked() {
	clear(t.evolvedBy)
	clear(t.declared)
	t.lastDeclared.tp, t.lastDeclared.cols = topicPartition{}, nil
}

// rebuildSchemaLocked recomputes t.schema after changes were dropped from
// the buffer: the committed schema of the latest snapshot, evolved by the
// declared column schemas and the values of the changes still buffered.
// The running flush's evolutions, if any, come back when its commit is
// adopted. If the remaining changes somehow do not fit the rebuilt schema,
// the schema is left as it was: wider than needed, never too narrow.
func (s *Sink) rebuildSchemaLocked(t *table) {
	next := codec.NewSchema()
	next.SetKafkaColumns(t.schema.KafkaColumns())
	err := func() error {
		if t.snap != nil && t.snap.Metadata.HasSchema() {
			theirs, err := tablefile.TableSchema(t.snap)
			if err != nil {
				return err
			}
			if err := next.Merge(theirs); err != nil {
				return err
			}
		}
		for _, ds := range t.declared {
			for _, d := range ds {
				if _, err := next.Accept(&codec.Change{Table: t.name, Declared: d}); err != nil {
					return err
				}
			}
		}
		if rows := t.buf.Rows(); rows != nil {
			for k := range rows.Len() {
				ch := rows.Change(k)
				if _, err := next.Accept(&ch); err != nil {
					return err
				}
			}
		}
		return nil
	}()
	if err != nil {
		s.log.Warn("keeping the table's schema after dropping buffered changes", "table", t.path, "err", err)
		return
	}
	t.schema = next
}

// requestFlush starts a flush of t, or asks for one after the running one.
func (s *Sink) requestFlush(t *table, reason string) {
	if t.buf.Len() == 0 {
		return
	}
	if t.inflight != nil {
		if t.flushWanted == "" {
			t.flushWanted = reason
		}
		return
	}
	if s.aborting || s.fatal != nil {
		return
	}
	s.startFlushLocked(t, reason)
}

// largestTablesLocked returns up to n tables holding the most memory.
func (s *Sink) largestTablesLocked(n int) []*table {
	ts := make([]*table, 0, len(s.tables))
	for _, t := range s.tables {
		if t.buf.Mem() > 0 {
			ts = append(ts, t)
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].buf.Mem() > ts[j].buf.Mem() })
	if len(ts) > n {
		ts = ts[:n]
	}
	return ts
}
