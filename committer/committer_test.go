package committer

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
)

func TestSplitLineage(t *testing.T) {
	for _, tc := range []struct {
		app, id, lineage string
		ok               bool
	}{
		{app: LineageAppID("evodb-sink/g/t/0", "vJZ6j9qWQ7qY8Yd8Z5C3Hw"), id: "evodb-sink/g/t/0", lineage: "vJZ6j9qWQ7qY8Yd8Z5C3Hw", ok: true},
		{app: "evodb-sink/g/t/0"},
		{app: "evodb-sink/team@x/t/0"}, // an '@' in the group is not a lineage
		{app: "evodb-sink/g/t/0@"},
		{app: "@x"},
	} {
		id, lineage, ok := SplitLineage(tc.app)
		require.Equal(t, tc.ok, ok, tc.app)
		require.Equal(t, tc.id, id, tc.app)
		require.Equal(t, tc.lineage, lineage, tc.app)
	}
}

// TestFieldIDsFor: columns the table has keep their IDs, new ones get the
// IDs after LastFieldID in block order (metadata columns first), and a
// format without IDs gets none.
func TestFieldIDsFor(t *testing.T) {
	s := codec.NewSchema()
	s.SetKafkaColumns(true)
	require.NoError(t, s.AddColumn(codec.Column{Name: "id", Type: codec.Type{Kind: codec.TypeLong}}))
	require.NoError(t, s.AddColumn(codec.Column{Name: "b", Type: codec.Type{Kind: codec.TypeString}, Nullable: true}))
	require.NoError(t, s.AddColumn(codec.Column{Name: "a", Type: codec.Type{Kind: codec.TypeString}, Nullable: true}))
	require.Nil(t, Metadata{}.FieldIDsFor(s))

	md := Metadata{FieldIDs: map[string]int{codec.ColOp: 1, codec.ColLSN: 2, codec.ColTS: 3, "id": 4}, LastFieldID: 9}
	require.Equal(t, map[string]int{
		codec.ColOp: 1, codec.ColLSN: 2, codec.ColTS: 3,
		codec.ColTopic: 10, codec.ColPartition: 11, codec.ColOffset: 12,
		"id": 4, "b": 13, "a": 14,
	}, md.FieldIDsFor(s))
}

func TestValidateDeletes(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Commit
		err  string
	}{
		{"kept file", Commit{Deletes: []RowDeletion{{Path: "a", Rows: []int64{0, 3}}}}, ""},
		{"added file", Commit{Adds: []Add{{Path: "a"}}, Deletes: []RowDeletion{{Path: "a", Rows: []int64{1}}}}, ""},
		{"replaced file", Commit{Removes: []Remove{{Path: "a"}}, Adds: []Add{{Path: "a"}}, Deletes: []RowDeletion{{Path: "a", Rows: []int64{1}}}}, ""},
		{"empty path", Commit{Deletes: []RowDeletion{{Rows: []int64{1}}}}, "empty path"},
		{"twice", Commit{Deletes: []RowDeletion{{Path: "a", Rows: []int64{1}}, {Path: "a", Rows: []int64{2}}}}, "deleted twice"},
		{"removed", Commit{Removes: []Remove{{Path: "a"}}, Deletes: []RowDeletion{{Path: "a", Rows: []int64{1}}}}, "removes the file"},
		{"negative row", Commit{Deletes: []RowDeletion{{Path: "a", Rows: []int64{-1}}}}, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
}
