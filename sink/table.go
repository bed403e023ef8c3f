package sink

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/partitioner"
	"github.com/evodb/sink/sink/buffer"
)

// table is the runtime state of one destination table. Fields are guarded
// by Sink.mu except log, which is safe for concurrent use.
type table struct {
	path   string
	name   string // the routed table name the config overrides are keyed by
	cfg    TableConfig
	mode   partitioner.Mode
	log    *committer.Table
	buf    *buffer.Table
	schema *codec.Schema // every buffered change fits it; grows by Accept
	// durable maps a txn appId to the table's txn version: the last offset
	// of that source partition already in the table.
	durable map[string]int64
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
		schema:  codec.NewSchema(),
		durable: map[string]int64{},
		log: committer.Open(s.bucket, path, committer.Options{
			Instance:           s.instance,
			CheckpointInterval: s.cfg.Commit.CheckpointInterval,
			Now:                s.now,
			Logger:             s.log,
		}),
	}
	nt.schema.SetKafkaColumns(cfg.KafkaColumns == nil || *cfg.KafkaColumns)
	snap, err := s.loadSnapshot(ctx, nt)
	if err != nil {
		return nil, err
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
	s.log.Info("table opened", "table", path, "version", versionOf(snap))
	return nt, nil
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
		if v > t.durable[app] {
			t.durable[app] = v
		} else if _, ok := t.durable[app]; !ok {
			t.durable[app] = v
		}
	}
	if pk := snap.Metadata.Configuration[primaryKeyConfig]; pk != "" && t.pk == "" {
		t.pk = pk
	}
	if snap.Metadata.SchemaString != "" {
		theirs, err := codec.ParseDeltaSchema(snap.Metadata.SchemaString)
		if err != nil {
			return fmt.Errorf("table %s: parse schema of version %d: %w", t.path, snap.Version, err)
		}
		// The committed types win; buffered changes that no longer fit
		// are refused when their flush checks them.
		t.schema.Rebase(theirs)
	}
	s.metrics.tableVersion.WithLabelValues(t.path).Set(float64(snap.Version))
	return nil
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
