package sink

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/partitioner"
)

// Routing: which table writer a change goes to, opened on first use.

// routeKey is what a table's path is rendered from.
type routeKey struct{ db, schema, table, topic string }

// routeEntry is a change's table path and name, and the table once known.
type routeEntry struct {
	key        routeKey // cloned: the change's strings may share a whole fetch's memory
	path, name string
	table      *tableWriter
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

// tableFor returns (creating and loading on first use) the table writer a
// change goes to. It does store I/O, so it runs outside s.mu; a load that
// fails is run again as a whole (retry.go).
func (s *Sink) tableFor(ctx context.Context, ch *codec.Change) (*tableWriter, error) {
	e, err := s.route(ch)
	if err != nil {
		return nil, err
	}
	if e.refused != nil {
		return nil, e.refused
	}
	path, name := e.path, e.name
	s.mu.Lock()
	w := e.table
	if w == nil {
		w = s.tables[path]
	}
	s.mu.Unlock()
	if w != nil && w.name != name {
		return nil, &routeError{fmt.Errorf("tables %s and %s both map to path %s: make tables.default.path include {db} and {schema}, or give one of them a path in tables.overrides", w.name, name, path)}
	}
	if w != nil && !w.isStale() {
		// Tables are never removed from s.tables.
		e.table = w
		return w, nil
	}
	if w != nil {
		return w, s.retry(ctx, "load", func() error { return w.refresh(ctx) })
	}
	if err := s.checkNested(path, name); err != nil {
		e.refused = err
		return nil, err
	}
	return s.openTable(ctx, e)
}

// openTable creates the writer of a table not open yet and loads the
// table, running each load again as a whole while it fails in a way a wait
// may fix.
func (s *Sink) openTable(ctx context.Context, e *routeEntry) (*tableWriter, error) {
	path, name := e.path, e.name
	nw, err := newTableWriter(s.env, path, name, s.cfg.TableConfig(name))
	if err != nil {
		return nil, err
	}
	var (
		snap    *committer.Snapshot
		nested  string
		checked bool
	)
	err = s.retry(ctx, "load", func() error {
		var err error
		snap, nested, checked, err = nw.loadFindNested(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	if snap == nil {
		if err := s.checkNestedOnStore(ctx, path, name, nested, checked); err != nil {
			var rerr *routeError
			if errors.As(err, &rerr) {
				e.refused = err
			}
			return nil, err
		}
	}
	if err := s.retry(ctx, "dedupe-read", func() error { return nw.seedDedupe(ctx, snap) }); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.tables[path]; w != nil {
		return w, nil
	}
	if err := nw.adopt(snap, false); err != nil {
		return nil, err
	}
	// A table not created yet has state too; adopt counted a snapshot's.
	nw.mu.Lock()
	nw.countStateLocked()
	nw.mu.Unlock()
	share := s.ctrl.Budget().Low / int64(len(s.tables)+1)
	if h, ok := s.hints.forNew(e.key.topic, share); ok {
		nw.seedHint(h)
	}
	s.tables[path] = nw
	s.metrics.initTable(path, nw.dedupe != nil)
	if snap == nil {
		s.log.Info("table opened: it does not exist yet and is created by its first commit", "table", path)
	} else {
		s.log.Info("table opened", "table", path, "version", snap.Version)
	}
	return nw, nil
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
	for p, w := range s.tables {
		if partitioner.Nested(p, path) || partitioner.Nested(path, p) {
			return &routeError{fmt.Errorf("table %s (path %s) and table %s (path %s) are nested: one table's path may not lie inside another's; give one of them a path in tables.overrides or change tables.default.path", name, path, w.name, p)}
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
// When innerChecked, the listing that loaded the table already looked
// inside its prefix and found inner ("" for none), so the prefix is not
// listed again.
func (s *Sink) checkNestedOnStore(ctx context.Context, path, name, inner string, innerChecked bool) error {
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
	if innerChecked {
		if inner != "" {
			return refuse(inner)
		}
		return nil
	}
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
