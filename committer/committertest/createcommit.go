package committertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/committer"
)

// The conformance test of committer.CreateCommit: a table created in its
// first commit. Each test runs twice: with the table as the format opens
// it (its own CreateCommit, if it has one) and with the table hidden
// behind a wrapper that has none, so committer.CreateCommit emulates it
// with Create and Commit.

// plainTable hides every method of a Table beyond committer.Table.
type plainTable struct{ committer.Table }

// createCommitModes are the two ways of opening a table for CreateCommit.
var createCommitModes = []struct {
	name string
	wrap func(committer.Table) committer.Table
}{
	{"format", func(t committer.Table) committer.Table { return t }},
	{"emulated", func(t committer.Table) committer.Table { return plainTable{t} }},
}

func runCreateCommit(t *testing.T, newStore func(t *testing.T) Store) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, st Store, wrap func(committer.Table) committer.Table)
	}{
		{"New", testCreateCommitNew},
		{"Existing", testCreateCommitExisting},
		{"Race", testCreateCommitRace},
		{"Ambiguous", testCreateCommitAmbiguous},
		{"TableDeleted", testCreateCommitTableDeleted},
	} {
		for _, mode := range createCommitModes {
			t.Run(tc.name+"/"+mode.name, func(t *testing.T) { tc.fn(t, newStore(t), mode.wrap) })
		}
	}
}

func createMetadata(t *testing.T, extra ...string) committer.Metadata {
	return committer.Metadata{Name: "orders", Schema: schema(t, extra...),
		Configuration: map[string]string{"evodb.primaryKey": "id"}}
}

// testCreateCommitNew: a table that does not exist is created holding the
// commit; every reader, and the listing of tables, finds it.
func testCreateCommitNew(t *testing.T, st Store, wrap func(committer.Table) committer.Table) {
	ctx := context.Background()
	tbl := wrap(open(st.Format, "a"))
	_, err := tbl.Snapshot(ctx)
	require.ErrorIs(t, err, committer.ErrNoTable)

	c := appendCommit("data/a.parquet", testAppID, 0, 9)
	c.ID = "first-commit"
	res, err := committer.CreateCommit(ctx, tbl, createMetadata(t, "email"), c)
	require.NoError(t, err)
	require.False(t, res.AlreadyCommitted)
	require.Equal(t, res.Version, res.Snapshot.Version)
	for _, s := range []*committer.Snapshot{res.Snapshot, latest(t, st.Format)} {
		require.Equal(t, res.Version, s.Version)
		require.NotEmpty(t, s.Metadata.ID)
		require.NotZero(t, s.Metadata.CreatedTime)
		require.Equal(t, "orders", s.Metadata.Name)
		require.True(t, schema(t, "email").Equal(s.Metadata.Schema))
		require.Equal(t, "id", s.Metadata.Configuration["evodb.primaryKey"])
		require.Len(t, s.Files, 1)
		require.Equal(t, int64(10), s.Files["data/a.parquet"].Rows())
		v, ok := s.TxnVersion(testAppID)
		require.True(t, ok)
		require.Equal(t, int64(9), v)
	}
	roots, err := st.Format.ListTables(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{root}, roots)

	// The same call again finds the commit; the table goes on with Commit.
	again, err := committer.CreateCommit(ctx, wrap(open(st.Format, "b")), createMetadata(t, "email"), c)
	require.NoError(t, err)
	require.True(t, again.AlreadyCommitted)
	require.Equal(t, res.Version, again.Version)
	next, err := tbl.Commit(ctx, appendCommit("data/b.parquet", testAppID, 10, 19))
	require.NoError(t, err)
	require.Equal(t, res.Version+1, next.Version)

	// A commit that creates its table carries no metadata of its own.
	bad := appendCommit("data/x.parquet", testAppID2, 0, 9)
	bad.Metadata = &committer.Metadata{Schema: schema(t)}
	_, err = committer.CreateCommit(ctx, tbl, createMetadata(t), bad)
	require.Error(t, err)
}

// testCreateCommitExisting: on a table that exists, the commit lands as
// Commit lands it when the schemas are the same, is fenced by txn
// versions, and is refused with ErrMetadataChanged, leaving the table
// unchanged, when the table has another schema.
func testCreateCommitExisting(t *testing.T, st Store, wrap func(committer.Table) committer.Table) {
	ctx := context.Background()
	creator := create(t, st.Format)
	_, err := creator.Commit(ctx, appendCommit("data/0.parquet", testAppID, 0, 9))
	require.NoError(t, err)
	before := latest(t, st.Format)

	tbl := wrap(open(st.Format, "late"))
	res, err := committer.CreateCommit(ctx, tbl, committer.Metadata{Schema: schema(t)}, appendCommit("data/1.parquet", testAppID2, 0, 9))
	require.NoError(t, err)
	require.Equal(t, before.Version+1, res.Version)
	require.Equal(t, before.Metadata.ID, res.Snapshot.Metadata.ID, "the table that was there")
	require.Len(t, res.Snapshot.Files, 2)

	_, err = committer.CreateCommit(ctx, wrap(open(st.Format, "zombie")), committer.Metadata{Schema: schema(t)}, appendCommit("data/z.parquet", testAppID, 5, 19))
	var conflict *committer.TxnConflictError
	require.ErrorAs(t, err, &conflict, "txn versions fence it")
	require.Equal(t, int64(9), conflict.TableTxnVersion)

	c := appendCommit("data/2.parquet", testAppID, 10, 19)
	c.ID = "other-schema"
	_, err = committer.CreateCommit(ctx, wrap(open(st.Format, "wide")), committer.Metadata{Schema: schema(t, "email")}, c)
	require.ErrorIs(t, err, committer.ErrMetadataChanged)
	s := latest(t, st.Format)
	require.Equal(t, res.Version, s.Version, "the refused commit left the table unchanged")
	require.True(t, schema(t).Equal(s.Metadata.Schema))
	require.NotContains(t, s.Files, "data/2.parquet")

	// What the caller does next: merge the schemas, commit with Commit.
	c.Metadata = &committer.Metadata{Schema: schema(t, "email")}
	c.ReadVersion = s.Version
	merged, err := open(st.Format, "wide").Commit(ctx, c)
	require.NoError(t, err)
	require.True(t, schema(t, "email").Equal(merged.Snapshot.Metadata.Schema))
	require.Len(t, merged.Snapshot.Files, 3)
}

// testCreateCommitRace: creators of two schemas race for a table that does
// not exist. One table results; every creator of its schema lands, every
// other is refused with ErrMetadataChanged and lands after merging
// schemas, as the sink does; no commit is lost or lands twice.
func testCreateCommitRace(t *testing.T, st Store, wrap func(committer.Table) committer.Table) {
	const creators = 6
	ctx := context.Background()
	extra := func(i int) string { return []string{"email", "age"}[i%2] }
	first := make([]*committer.CommitResult, creators)
	errs := make([]error, creators)
	var wg sync.WaitGroup
	for i := range creators {
		wg.Go(func() {
			tbl := wrap(open(st.Format, fmt.Sprint("creator-", i)))
			c := appendCommit(fmt.Sprintf("data/c%d.parquet", i), fmt.Sprint("group-orders-topic-", i), 0, 9)
			c.ID = fmt.Sprint("create-", i)
			md := committer.Metadata{ID: fmt.Sprint("table-", i), Schema: schema(t, extra(i))}
			first[i], errs[i] = committer.CreateCommit(ctx, tbl, md, c)
		})
	}
	wg.Wait()
	s := latest(t, st.Format)
	won := extra(0)
	if !schema(t, won).Equal(s.Metadata.Schema) {
		won = extra(1)
	}
	require.True(t, schema(t, won).Equal(s.Metadata.Schema), "the table has one creator's schema")
	for i := range creators {
		if extra(i) == won {
			require.NoError(t, errs[i], "creator %d has the table's schema", i)
			require.Equal(t, s.Metadata.ID, first[i].Snapshot.Metadata.ID)
			continue
		}
		require.ErrorIs(t, errs[i], committer.ErrMetadataChanged, "creator %d", i)
		// Merge and commit, as the sink does after ErrMetadataChanged.
		tbl := open(st.Format, fmt.Sprint("creator-", i))
		for {
			cur, err := tbl.Snapshot(ctx)
			require.NoError(t, err)
			c := appendCommit(fmt.Sprintf("data/c%d.parquet", i), fmt.Sprint("group-orders-topic-", i), 0, 9)
			c.ID = fmt.Sprint("create-", i)
			c.Metadata = &committer.Metadata{Schema: schema(t, won, extra(i))}
			c.ReadVersion = cur.Version
			_, err = tbl.Commit(ctx, c)
			if errors.Is(err, committer.ErrMetadataChanged) {
				continue
			}
			require.NoError(t, err, "creator %d", i)
			break
		}
	}
	s = latest(t, st.Format)
	require.Len(t, s.Files, creators, "every commit landed once")
	for i := range creators {
		v, ok := s.TxnVersion(fmt.Sprint("group-orders-topic-", i))
		require.True(t, ok)
		require.Equal(t, int64(9), v)
	}
	lost := extra(0)
	if lost == won {
		lost = extra(1)
	}
	require.True(t, schema(t, won, lost).Equal(s.Metadata.Schema), "the schemas merged")
}

// testCreateCommitAmbiguous: the store creates the table holding the
// commit and reports a failure. The commit lands once; calling
// CreateCommit again with the same commit finds it, also after another
// writer changed the table's schema, which would refuse it otherwise.
func testCreateCommitAmbiguous(t *testing.T, st Store, wrap func(committer.Table) committer.Table) {
	ctx := context.Background()
	faulty := st.Ambiguous(t)
	c := appendCommit("data/a.parquet", testAppID, 0, 9)
	c.ID = "ambiguous-create"
	res, err := committer.CreateCommit(ctx, wrap(open(faulty, "a")), createMetadata(t), c)
	if err != nil {
		// A format may report the outcome as unknown instead of resolving
		// it; a retry resolves it.
		require.NotErrorIs(t, err, committer.ErrMetadataChanged)
		res, err = committer.CreateCommit(ctx, wrap(open(st.Format, "a")), createMetadata(t), c)
		require.NoError(t, err)
	}
	s := latest(t, st.Format)
	require.Equal(t, res.Version, s.Version, "the commit landed once")
	require.Contains(t, s.Files, "data/a.parquet")

	widen := appendCommit("data/b.parquet", testAppID2, 0, 9)
	widen.Metadata = &committer.Metadata{Schema: schema(t, "email")}
	widen.ReadVersion = s.Version
	_, err = open(st.Format, "other").Commit(ctx, widen)
	require.NoError(t, err)

	again, err := committer.CreateCommit(ctx, wrap(open(st.Format, "a")), createMetadata(t), c)
	require.NoError(t, err)
	require.True(t, again.AlreadyCommitted)
	require.Equal(t, res.Version, again.Version)
	s = latest(t, st.Format)
	require.Len(t, s.Files, 2)
	require.Equal(t, res.Version+1, s.Version)
}

// testCreateCommitTableDeleted: the table a writer created is deleted.
// The writer's next CreateCommit either fails as Commit would, leaving
// nothing visible, or creates the table again holding only that commit.
func testCreateCommitTableDeleted(t *testing.T, st Store, wrap func(committer.Table) committer.Table) {
	ctx := context.Background()
	tbl := wrap(open(st.Format, "a"))
	_, err := committer.CreateCommit(ctx, tbl, createMetadata(t), appendCommit("data/a0.parquet", testAppID, 0, 9))
	require.NoError(t, err)
	st.Drop(t, root)

	res, err := committer.CreateCommit(ctx, tbl, createMetadata(t), appendCommit("data/a1.parquet", testAppID, 10, 19))
	if err != nil {
		require.True(t, errors.Is(err, committer.ErrTableReplaced) || errors.Is(err, committer.ErrNoTable), "got %v", err)
		_, err = open(st.Format, "reader").Snapshot(ctx)
		require.ErrorIs(t, err, committer.ErrNoTable, "nothing of the failed commit is visible")
		return
	}
	s := latest(t, st.Format)
	require.Equal(t, res.Version, s.Version)
	require.Len(t, s.Files, 1)
	require.Contains(t, s.Files, "data/a1.parquet")
}
