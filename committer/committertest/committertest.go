// Package committertest is the conformance test of the table-format seam:
// Run checks that a committer.Format gives every guarantee the committer
// package documents (atomic, totally ordered commits; txn fencing with
// lineages; refused removes and schema races; idempotent commit ids after
// an ambiguous failure; tables deleted or replaced under a writer; tables
// created in their first commit, committer.CreateCommit; rows deleted from
// kept files, committer.RowDeleter, for formats that delete rows). Every
// format runs it, over every store it supports, as every objstore backend
// runs objstore.AcceptanceTest.
package committertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

// Store is what one conformance test runs against: a fresh, empty store
// and the format under test over it.
type Store struct {
	// Format opens the store's tables.
	Format committer.Format
	// Faulty returns a Format over the same store whose requests fail as
	// the faults say (objstore.Fault rules, keys relative to the store);
	// nil for a format whose commits do not go through the bucket.
	Faulty func(faults ...objstore.Fault) committer.Format
	// Ambiguous returns a Format over the same store whose first commit
	// request is applied and then reported as failed, as a timeout after
	// the store (a bucket put, a catalog's commit) did its work: the
	// writer cannot tell whether it landed. Every format has such a
	// failure; each injects it where its commits go.
	Ambiguous func(t *testing.T) committer.Format
	// Drop deletes the table at root as an operator deleting it would:
	// all of it, behind the back of every writer.
	Drop func(t *testing.T, root string)
}

// BucketStore returns the Store of a format that keeps its tables in b:
// Faulty wraps b in an objstore.Faulty, Drop deletes every object under
// the table's root.
func BucketStore(b objstore.Bucket, newFormat func(b objstore.Bucket) committer.Format) Store {
	faulty := func(faults ...objstore.Fault) committer.Format {
		fb := objstore.NewFaulty(b, 1)
		for _, f := range faults {
			fb.Add(f)
		}
		return newFormat(fb)
	}
	return Store{
		Format: newFormat(b),
		Faulty: faulty,
		Ambiguous: func(t *testing.T) committer.Format {
			// The first put of a JSON object under the table is the
			// commit's log entry; a commit that deletes rows puts its
			// deletion vector file (.bin) first.
			return faulty(objstore.Fault{Op: objstore.OpPut, KeyPrefix: root + "/", KeySuffix: ".json", Nth: 1, Ambiguous: true})
		},
		Drop: func(t *testing.T, root string) {
			t.Helper()
			ctx := context.Background()
			var keys []string
			require.NoError(t, b.List(ctx, root+"/", func(o objstore.ObjectInfo) error {
				keys = append(keys, o.Key)
				return nil
			}))
			for _, k := range keys {
				require.NoError(t, b.Delete(ctx, k))
			}
		},
	}
}

const (
	root       = "sales/public/orders"
	testAppID  = "group-orders-topic-0"
	testAppID2 = "group-orders-topic-1"
	lineageA   = "AAAAAAAAAAAAAAAAAAAAAQ"
	lineageB   = "BBBBBBBBBBBBBBBBBBBBBQ"
)

// schema returns a schema of an id and a name column plus extra string
// columns.
func schema(t testing.TB, extra ...string) *codec.Schema {
	s := codec.NewSchema()
	require.NoError(t, s.AddColumn(codec.Column{Name: "id", Type: codec.Type{Kind: codec.TypeLong}}))
	for _, name := range append([]string{"name"}, extra...) {
		require.NoError(t, s.AddColumn(codec.Column{Name: name, Type: codec.Type{Kind: codec.TypeString}, Nullable: true}))
	}
	return s
}

func block(path string, rows int64) committer.Add {
	return committer.Add{
		Path:       path,
		Size:       100 + rows,
		DataChange: true,
		Stats:      &codec.BlockStats{Rows: rows},
		Tags:       map[string]string{"evodb.level": "0"},
	}
}

func appendCommit(path, app string, first, last int64) committer.Commit {
	return committer.Commit{
		Operation:   committer.OpStreamingUpdate,
		Adds:        []committer.Add{block(path, last-first+1)},
		Txns:        []committer.TxnCondition{{AppID: app, FirstOffset: first, LastOffset: last}},
		ReadVersion: -1,
	}
}

func withLineage(c committer.Commit, lineage string) committer.Commit {
	c.Txns[0].Lineage = lineage
	return c
}

func open(f committer.Format, instance string) committer.Table {
	return f.Open(root, committer.Options{Instance: instance})
}

func create(t *testing.T, f committer.Format) committer.Table {
	t.Helper()
	tbl := open(f, "test")
	_, err := tbl.Create(context.Background(), committer.Metadata{Name: "orders", Schema: schema(t)})
	require.NoError(t, err)
	return tbl
}

// latest reads the table afresh, as a new writer would.
func latest(t *testing.T, f committer.Format) *committer.Snapshot {
	t.Helper()
	s, err := open(f, "reader").Snapshot(context.Background())
	require.NoError(t, err)
	return s
}

// Run runs the conformance test; newStore returns a fresh, empty store
// for each subtest.
func Run(t *testing.T, newStore func(t *testing.T) Store) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, st Store)
	}{
		{"CreateAndSnapshot", testCreateAndSnapshot},
		{"CreateConvergence", testCreateConvergence},
		{"ConcurrentCommitters", testConcurrentCommitters},
		{"CommitIDIsIdempotent", testCommitIDIsIdempotent},
		{"AmbiguousCommit", testAmbiguousCommit},
		{"TxnFencing", testTxnFencing},
		{"TxnVersionsMonotonic", testTxnVersionsMonotonic},
		{"TxnLineage", testTxnLineage},
		{"ConflictingRemove", testConflictingRemove},
		{"SchemaEvolution", testSchemaEvolution},
		{"TableDeleted", testTableDeleted},
		{"TableReplaced", testTableReplaced},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
	t.Run("CreateCommit", func(t *testing.T) { runCreateCommit(t, newStore) })
	t.Run("RowDeletion", func(t *testing.T) { runRowDeletion(t, newStore) })
}

func testCreateAndSnapshot(t *testing.T, st Store) {
	ctx := context.Background()
	tbl := open(st.Format, "a")
	require.Equal(t, root, tbl.Root())
	_, err := tbl.Snapshot(ctx)
	require.ErrorIs(t, err, committer.ErrNoTable)
	_, err = tbl.Commit(ctx, appendCommit("data/a.parquet", testAppID, 0, 9))
	require.ErrorIs(t, err, committer.ErrNoTable)
	roots, err := st.Format.ListTables(ctx)
	require.NoError(t, err)
	require.Empty(t, roots)

	s, err := tbl.Create(ctx, committer.Metadata{Name: "orders", Schema: schema(t),
		Configuration: map[string]string{"evodb.primaryKey": "id"}})
	require.NoError(t, err)
	require.Equal(t, int64(0), s.Version)
	require.NotEmpty(t, s.Metadata.ID)
	require.NotZero(t, s.Metadata.CreatedTime)
	require.True(t, schema(t).Equal(s.Metadata.Schema))
	require.Equal(t, "id", s.Metadata.Configuration["evodb.primaryKey"])
	require.Empty(t, s.Files)
	require.Empty(t, s.Txns)

	res, err := tbl.Commit(ctx, appendCommit("data/a.parquet", testAppID, 0, 9))
	require.NoError(t, err)
	require.Equal(t, int64(1), res.Version)
	require.False(t, res.AlreadyCommitted)

	loaded := latest(t, st.Format)
	require.Equal(t, int64(1), loaded.Version)
	require.Equal(t, s.Metadata.ID, loaded.Metadata.ID)
	require.Equal(t, "orders", loaded.Metadata.Name)
	require.True(t, schema(t).Equal(loaded.Metadata.Schema))
	require.Equal(t, "id", loaded.Metadata.Configuration["evodb.primaryKey"])
	a, ok := loaded.Files["data/a.parquet"]
	require.True(t, ok)
	require.Equal(t, int64(110), a.Size)
	require.Equal(t, int64(10), a.Rows(), "the row count reads back")
	require.Equal(t, "0", a.Tags["evodb.level"])
	require.True(t, a.DataChange)
	require.NotZero(t, a.ModificationTime)
	v, ok := loaded.TxnVersion(testAppID)
	require.True(t, ok)
	require.Equal(t, int64(9), v)

	// Update advances a snapshot, and keeps one that is current.
	same, err := tbl.Update(ctx, loaded)
	require.NoError(t, err)
	require.Equal(t, int64(1), same.Version)
	fresh, err := tbl.Update(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, int64(1), fresh.Version)

	again, err := tbl.Create(ctx, committer.Metadata{Schema: schema(t, "email")})
	require.NoError(t, err)
	require.Equal(t, s.Metadata.ID, again.Metadata.ID, "Create of an existing table returns it")
	require.Equal(t, int64(1), again.Version)

	roots, err = st.Format.ListTables(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{root}, roots)
}

func testCreateConvergence(t *testing.T, st Store) {
	const creators = 8
	ids := make([]string, creators)
	errs := make([]error, creators)
	var wg sync.WaitGroup
	for i := range creators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := open(st.Format, fmt.Sprint("creator-", i)).Create(context.Background(),
				committer.Metadata{ID: fmt.Sprint("table-id-", i), Schema: schema(t)})
			errs[i] = err
			if err == nil {
				ids[i] = s.Metadata.ID
			}
		}()
	}
	wg.Wait()
	for i := range creators {
		require.NoError(t, errs[i], "creator %d", i)
		require.Equal(t, ids[0], ids[i], "creator %d sees another table", i)
	}
	require.Equal(t, int64(0), latest(t, st.Format).Version)
}

// testConcurrentCommitters: writers race for every version; exactly one
// wins each, the losers read the table again and land later, and no
// commit is lost or landed twice.
func testConcurrentCommitters(t *testing.T, st Store) {
	create(t, st.Format)
	const writers, perWriter = 6, 5
	versions := make([][]int64, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tbl := open(st.Format, fmt.Sprint("writer-", w))
			app := fmt.Sprint("group-orders-topic-", w)
			for i := range perWriter {
				res, err := tbl.Commit(context.Background(),
					appendCommit(fmt.Sprintf("data/w%d-%03d.parquet", w, i), app, int64(i*10), int64(i*10+9)))
				if err != nil {
					errs[w] = err
					return
				}
				versions[w] = append(versions[w], res.Version)
			}
		}()
	}
	wg.Wait()
	seen := map[int64]bool{}
	for w := range writers {
		require.NoError(t, errs[w])
		for _, v := range versions[w] {
			require.False(t, seen[v], "version %d returned twice", v)
			seen[v] = true
		}
	}
	const total = writers * perWriter
	for v := int64(1); v <= total; v++ {
		require.True(t, seen[v], "versions are contiguous: %d is missing", v)
	}
	s := latest(t, st.Format)
	require.Equal(t, int64(total), s.Version)
	require.Len(t, s.Files, total, "no commit lost")
	for w := range writers {
		v, ok := s.TxnVersion(fmt.Sprint("group-orders-topic-", w))
		require.True(t, ok)
		require.Equal(t, int64((perWriter-1)*10+9), v)
	}
}

func testCommitIDIsIdempotent(t *testing.T, st Store) {
	ctx := context.Background()
	tbl := create(t, st.Format)
	c := committer.Commit{ID: "commit-1", Operation: committer.OpOptimize, Adds: []committer.Add{block("data/x.parquet", 3)}, ReadVersion: -1}
	first, err := tbl.Commit(ctx, c)
	require.NoError(t, err)
	require.False(t, first.AlreadyCommitted)
	second, err := tbl.Commit(ctx, c)
	require.NoError(t, err)
	require.True(t, second.AlreadyCommitted)
	require.Equal(t, first.Version, second.Version)
	// Another writer retrying the same commit finds it too.
	third, err := open(st.Format, "other").Commit(ctx, c)
	require.NoError(t, err)
	require.True(t, third.AlreadyCommitted)
	require.Equal(t, first.Version, latest(t, st.Format).Version)
}

// testAmbiguousCommit: the store performs the commit's write and then
// reports a failure (Store.Ambiguous), so the writer cannot know whether
// it landed. The commit lands exactly once, and calling Commit again with
// its id finds it rather than landing it twice.
func testAmbiguousCommit(t *testing.T, st Store) {
	ctx := context.Background()
	create(t, st.Format)
	faulty := st.Ambiguous(t)
	c := appendCommit("data/a.parquet", testAppID, 0, 9)
	c.ID = "ambiguous-1"
	res, err := open(faulty, "a").Commit(ctx, c)
	if err == nil {
		require.Equal(t, int64(1), res.Version)
	} else {
		// A format may report the outcome as unknown instead of
		// resolving it; it must then not have landed twice, and a
		// retry resolves it.
		require.NotErrorIs(t, err, committer.ErrNoTable)
	}
	again, err := open(st.Format, "a").Commit(ctx, c)
	require.NoError(t, err)
	require.True(t, again.AlreadyCommitted)
	require.Equal(t, int64(1), again.Version)
	s := latest(t, st.Format)
	require.Equal(t, int64(1), s.Version, "the commit landed exactly once")
	require.Contains(t, s.Files, "data/a.parquet")
	v, _ := s.TxnVersion(testAppID)
	require.Equal(t, int64(9), v)
}

// testTxnFencing: a zombie (stale owner) and the partition's new owner
// both commit offsets of the same source partition. Whichever lands
// first, the other is refused: nothing is written twice.
func testTxnFencing(t *testing.T, st Store) {
	for _, zombieFirst := range []bool{true, false} {
		t.Run(fmt.Sprint("zombieFirst=", zombieFirst), func(t *testing.T) {
			ctx := context.Background()
			st.Drop(t, root)
			create(t, st.Format)
			zombie := open(st.Format, "zombie")
			owner := open(st.Format, "owner")
			_, err := zombie.Commit(ctx, appendCommit("data/z0.parquet", testAppID, 0, 9))
			require.NoError(t, err)
			// Both loaded the table at txn 9 and hold records from offset 10.
			_, err = owner.Snapshot(ctx)
			require.NoError(t, err)

			zc := appendCommit("data/z1.parquet", testAppID, 10, 19)
			oc := appendCommit("data/o1.parquet", testAppID, 10, 24)
			first, second, fc, sc, wantTxn := zombie, owner, zc, oc, int64(19)
			if !zombieFirst {
				first, second, fc, sc, wantTxn = owner, zombie, oc, zc, 24
			}
			_, err = first.Commit(ctx, fc)
			require.NoError(t, err)
			_, err = second.Commit(ctx, sc)
			var conflict *committer.TxnConflictError
			require.ErrorAs(t, err, &conflict)
			require.Equal(t, testAppID, conflict.AppID)
			require.Equal(t, int64(10), conflict.FirstOffset)
			require.Equal(t, wantTxn, conflict.TableTxnVersion)
			require.Equal(t, int64(2), conflict.TableVersion)
			require.Contains(t, err.Error(), testAppID)

			s := latest(t, st.Format)
			require.Equal(t, int64(2), s.Version, "the refused commit left the table unchanged")
			require.Len(t, s.Files, 2)
			v, _ := s.TxnVersion(testAppID)
			require.Equal(t, wantTxn, v)
		})
	}
}

func testTxnVersionsMonotonic(t *testing.T, st Store) {
	ctx := context.Background()
	tbl := create(t, st.Format)
	steps := []struct {
		first, last int64
		wantErr     bool
	}{
		{0, 9, false},
		{10, 10, false},
		{5, 30, true},   // overlaps what the table holds
		{10, 12, true},  // starts at the held offset
		{11, 40, false}, // the first offset past the table's
		{41, 41, false},
		{0, 100, true},
	}
	prev := int64(-1)
	for i, step := range steps {
		_, err := tbl.Commit(ctx, appendCommit(fmt.Sprintf("data/%03d.parquet", i), testAppID, step.first, step.last))
		if step.wantErr {
			var conflict *committer.TxnConflictError
			require.ErrorAs(t, err, &conflict, "step %d", i)
		} else {
			require.NoError(t, err, "step %d", i)
		}
		s, err := tbl.Snapshot(ctx)
		require.NoError(t, err)
		v, _ := s.TxnVersion(testAppID)
		require.GreaterOrEqual(t, v, prev, "step %d lowered the txn version", i)
		prev = v
	}
	require.Equal(t, int64(41), prev)

	_, err := tbl.Commit(ctx, appendCommit("data/bad.parquet", testAppID, 60, 50))
	require.Error(t, err, "a reversed offset range is refused")
	_, err = tbl.Commit(ctx, committer.Commit{Txns: []committer.TxnCondition{
		{AppID: testAppID, FirstOffset: 100, LastOffset: 101}, {AppID: testAppID, FirstOffset: 102, LastOffset: 103}}})
	require.Error(t, err, "a partition twice in one commit is refused")
	_, err = tbl.Commit(ctx, withLineage(appendCommit("data/bad.parquet", testAppID, 100, 101), "a/b"))
	require.Error(t, err, "a lineage with a '/' is refused")
}

// testTxnLineage: offsets of another lineage (a topic deleted and created
// again) are refused, even when they are past the table's, including by a
// writer whose snapshot predates the lineage; a writer recording no
// lineage is fenced by the version alone.
func testTxnLineage(t *testing.T, st Store) {
	ctx := context.Background()
	a := create(t, st.Format)
	other := open(st.Format, "other")
	// A table written without lineages (by an earlier version).
	_, err := a.Commit(ctx, appendCommit("data/0.parquet", testAppID, 0, 9))
	require.NoError(t, err)
	_, err = other.Snapshot(ctx)
	require.NoError(t, err)

	// The first lineage is recorded; the legacy version still fences.
	_, err = a.Commit(ctx, withLineage(appendCommit("data/1.parquet", testAppID, 10, 19), lineageA))
	require.NoError(t, err)
	var conflict *committer.TxnConflictError
	_, err = a.Commit(ctx, withLineage(appendCommit("data/x.parquet", testAppID, 15, 30), lineageA))
	require.ErrorAs(t, err, &conflict)

	// other still holds the snapshot from before the lineage.
	_, err = other.Commit(ctx, withLineage(appendCommit("data/y.parquet", testAppID, 500, 600), lineageB))
	var lc *committer.LineageConflictError
	require.ErrorAs(t, err, &lc)
	require.Equal(t, testAppID, lc.AppID)
	require.Equal(t, lineageA, lc.TableLineage)
	require.Equal(t, lineageB, lc.Lineage)

	_, err = other.Commit(ctx, appendCommit("data/2.parquet", testAppID, 20, 29))
	require.NoError(t, err)

	s := latest(t, st.Format)
	v, ok := s.TxnVersion(committer.LineageAppID(testAppID, lineageA))
	require.True(t, ok)
	require.Equal(t, int64(19), v)
	v, _ = s.TxnVersion(testAppID)
	require.Equal(t, int64(29), v)
	_, err = open(st.Format, "late").Commit(ctx, withLineage(appendCommit("data/z.parquet", testAppID, 30, 40), lineageB))
	require.ErrorAs(t, err, &lc)
	_, err = open(st.Format, "late").Commit(ctx, withLineage(appendCommit("data/3.parquet", testAppID, 30, 40), lineageA))
	require.NoError(t, err)
}

// testConflictingRemove: two compactions of overlapping inputs; the
// second is refused with ErrFileRemoved and leaves the table unchanged.
func testConflictingRemove(t *testing.T, st Store) {
	ctx := context.Background()
	tbl := create(t, st.Format)
	for _, p := range []string{"data/a.parquet", "data/b.parquet", "data/c.parquet"} {
		_, err := tbl.Commit(ctx, committer.Commit{Adds: []committer.Add{block(p, 10)}, ReadVersion: -1})
		require.NoError(t, err)
	}
	other := open(st.Format, "other")
	_, err := other.Snapshot(ctx)
	require.NoError(t, err)

	compact := func(out string, inputs ...string) committer.Commit {
		c := committer.Commit{Operation: committer.OpOptimize, ReadVersion: 3}
		for _, in := range inputs {
			c.Removes = append(c.Removes, committer.Remove{Path: in})
		}
		add := block(out, 20)
		add.DataChange = false
		c.Adds = []committer.Add{add}
		return c
	}
	res, err := tbl.Commit(ctx, compact("data/ab.parquet", "data/a.parquet", "data/b.parquet"))
	require.NoError(t, err)
	require.Equal(t, int64(4), res.Version)
	require.NotContains(t, res.Snapshot.Files, "data/a.parquet")
	require.Contains(t, res.Snapshot.Files, "data/ab.parquet")

	// other's snapshot still has b active; its commit must be refused.
	_, err = other.Commit(ctx, compact("data/bc.parquet", "data/b.parquet", "data/c.parquet"))
	require.ErrorIs(t, err, committer.ErrFileRemoved)
	var removed *committer.FileRemovedError
	require.ErrorAs(t, err, &removed)
	require.Equal(t, "data/b.parquet", removed.Path)
	require.Contains(t, err.Error(), "data/b.parquet")

	_, err = tbl.Commit(ctx, committer.Commit{Adds: []committer.Add{block("data/c.parquet", 1)}})
	require.ErrorIs(t, err, committer.ErrFileExists)

	s := latest(t, st.Format)
	require.Equal(t, int64(4), s.Version)
	require.Len(t, s.Files, 2)
}

// testSchemaEvolution: a widened schema commits with data; a writer that
// widened a stale schema differently is refused with ErrMetadataChanged,
// the same widening from a stale read is not.
func testSchemaEvolution(t *testing.T, st Store) {
	ctx := context.Background()
	tbl := create(t, st.Format)
	base, err := tbl.Snapshot(ctx)
	require.NoError(t, err)

	c := appendCommit("data/1.parquet", testAppID, 0, 9)
	c.Metadata = &committer.Metadata{Schema: schema(t, "email"), Name: "orders"}
	c.ReadVersion = base.Version
	res, err := tbl.Commit(ctx, c)
	require.NoError(t, err)
	require.True(t, schema(t, "email").Equal(res.Snapshot.Metadata.Schema))
	require.Equal(t, base.Metadata.ID, res.Snapshot.Metadata.ID, "the table id survives a schema change")
	require.Equal(t, base.Metadata.CreatedTime, res.Snapshot.Metadata.CreatedTime)

	stale := appendCommit("data/2.parquet", testAppID2, 0, 9)
	stale.Metadata = &committer.Metadata{Schema: schema(t, "age")}
	stale.ReadVersion = base.Version
	_, err = open(st.Format, "stale").Commit(ctx, stale)
	require.ErrorIs(t, err, committer.ErrMetadataChanged)

	same := appendCommit("data/3.parquet", testAppID2, 0, 9)
	same.Metadata = &committer.Metadata{Schema: schema(t, "email")}
	same.ReadVersion = base.Version
	_, err = open(st.Format, "same").Commit(ctx, same)
	require.NoError(t, err)

	s := latest(t, st.Format)
	require.Equal(t, int64(2), s.Version)
	require.True(t, schema(t, "email").Equal(s.Metadata.Schema))
	require.Equal(t, "orders", s.Metadata.Name)
	require.Len(t, s.Files, 2)
}

// testTableDeleted: the table is deleted while a writer holds it. The
// writer's commit fails with ErrTableReplaced or ErrNoTable, nothing of it
// is visible, and the table can be created again.
func testTableDeleted(t *testing.T, st Store) {
	ctx := context.Background()
	a := create(t, st.Format)
	for i := range 3 {
		_, err := a.Commit(ctx, appendCommit(fmt.Sprintf("data/a%d.parquet", i), testAppID, int64(10*i), int64(10*i+9)))
		require.NoError(t, err)
	}
	st.Drop(t, root)

	_, err := a.Commit(ctx, appendCommit("data/a3.parquet", testAppID, 30, 39))
	require.True(t, errors.Is(err, committer.ErrTableReplaced) || errors.Is(err, committer.ErrNoTable), "got %v", err)
	_, err = open(st.Format, "reader").Snapshot(ctx)
	require.ErrorIs(t, err, committer.ErrNoTable, "nothing of the refused commit is visible")

	_, err = a.Commit(ctx, appendCommit("data/a3.parquet", testAppID, 30, 39))
	require.ErrorIs(t, err, committer.ErrNoTable, "the writer reads the table again and finds none")
	s, err := open(st.Format, "b").Create(ctx, committer.Metadata{Schema: schema(t)})
	require.NoError(t, err)
	require.Equal(t, int64(0), s.Version)
}

// testTableReplaced: the table is deleted and created again by another
// writer while a writer holds the old one. The old writer's commit fails
// and never shows in the new table, whose writers go on undisturbed.
func testTableReplaced(t *testing.T, st Store) {
	ctx := context.Background()
	a := create(t, st.Format)
	for i := range 3 {
		_, err := a.Commit(ctx, appendCommit(fmt.Sprintf("data/a%d.parquet", i), testAppID, int64(10*i), int64(10*i+9)))
		require.NoError(t, err)
	}
	st.Drop(t, root)
	b := open(st.Format, "b")
	created, err := b.Create(ctx, committer.Metadata{Schema: schema(t)})
	require.NoError(t, err)

	_, err = a.Commit(ctx, appendCommit("data/a3.parquet", testAppID, 30, 39))
	require.Error(t, err)
	require.True(t, errors.Is(err, committer.ErrTableReplaced) || errors.Is(err, committer.ErrNoTable), "got %v", err)

	res, err := b.Commit(ctx, appendCommit("data/b0.parquet", testAppID, 0, 9))
	require.NoError(t, err)
	require.Equal(t, int64(1), res.Version)
	s := latest(t, st.Format)
	require.Equal(t, created.Metadata.ID, s.Metadata.ID)
	require.Equal(t, int64(1), s.Version)
	require.NotContains(t, s.Files, "data/a3.parquet", "the old writer's commit is not in the new table")
	require.Len(t, s.Files, 1)
}
