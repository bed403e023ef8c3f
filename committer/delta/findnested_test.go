package delta

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

// TestSnapshotFindNested loads tables through the one listing of their
// prefix that also looks for tables nested inside them, and counts its
// requests: a table that does not exist costs one listing for both, an
// existing one one listing that stops after its log, and a prefix with
// more than a listing page of objects before the log falls back to a
// listing of the log alone, leaving the nested check to the caller.
func TestSnapshotFindNested(t *testing.T) {
	ctx := context.Background()
	forEachBucket(t, func(t *testing.T, under objstore.Bucket) {
		b := newCountingBucket(under)
		create := func(t *testing.T, root string) {
			t.Helper()
			_, err := Open(under, root, testOptions("creator")).Create(ctx, committer.Metadata{Schema: mustSchema(t, schemaV1)})
			require.NoError(t, err)
		}
		find := func(t *testing.T, root string) (*committer.Snapshot, string, bool, error) {
			t.Helper()
			b.reset()
			return Open(b, root, testOptions("finder")).SnapshotFindNested(ctx)
		}

		t.Run("absent, nothing inside", func(t *testing.T) {
			_, nested, checked, err := find(t, "absent")
			require.ErrorIs(t, err, committer.ErrNoTable)
			require.True(t, checked)
			require.Empty(t, nested)
			require.Equal(t, map[string]int{"list": 1}, b.calls)
		})
		for _, inner := range []string{"outer/data", "outer/A", "outer/0/deep"} {
			t.Run("absent, a table inside at "+inner, func(t *testing.T) {
				create(t, inner)
				_, nested, checked, err := find(t, "outer")
				require.ErrorIs(t, err, committer.ErrNoTable)
				require.True(t, checked)
				require.Equal(t, inner, nested)
				require.Equal(t, map[string]int{"list": 1}, b.calls)
				require.NoError(t, under.Delete(ctx, inner+"/"+FirstCommit))
			})
		}
		t.Run("existing, with data files and a table inside", func(t *testing.T) {
			create(t, testRoot)
			tbl := Open(under, testRoot, testOptions("writer"))
			_, err := tbl.Snapshot(ctx)
			require.NoError(t, err)
			_, err = tbl.Commit(ctx, appendCommit("data/1.parquet", testAppID, 0, 9))
			require.NoError(t, err)
			for i := range 5 {
				_, err := under.Put(ctx, fmt.Sprintf("%s/data/%d.parquet", testRoot, i), bytes.NewReader([]byte("x")), 1, objstore.PutOptions{})
				require.NoError(t, err)
			}
			create(t, testRoot+"/data/inner")
			s, nested, checked, err := find(t, testRoot)
			require.NoError(t, err)
			require.Equal(t, int64(1), s.Version)
			require.True(t, checked)
			require.Empty(t, nested, "an existing table is not being created: what is inside does not matter")
			require.Equal(t, map[string]int{"list": 1, "get": 2}, b.calls)
		})
		if _, ok := under.(*objstore.Memory); !ok {
			return
		}
		t.Run("more than a listing page before the log", func(t *testing.T) {
			for i := range listBudget + 1 {
				_, err := under.Put(ctx, fmt.Sprintf("crowded/0/%05d", i), bytes.NewReader(nil), 0, objstore.PutOptions{})
				require.NoError(t, err)
			}
			_, nested, checked, err := find(t, "crowded")
			require.ErrorIs(t, err, committer.ErrNoTable)
			require.False(t, checked, "undecided: the caller looks for nested tables itself")
			require.Empty(t, nested)
			require.Equal(t, map[string]int{"list": 2}, b.calls, "the prefix's first page, then the log alone")
			create(t, "crowded")
			s, _, _, err := find(t, "crowded")
			require.NoError(t, err)
			require.Equal(t, int64(0), s.Version)
		})
	})
}
