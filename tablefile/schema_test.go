package tablefile

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
)

func TestSchemaAgainstMetadata(t *testing.T) {
	schemaOf := func(fields ...codec.Field) *codec.Schema {
		s := codec.NewSchema()
		_, err := s.Accept(&codec.Change{Table: "users", Op: codec.OpInsert, LSN: 1, Row: fields})
		require.NoError(t, err)
		return s
	}
	narrow := schemaOf(codec.Field{Name: "id", Value: codec.Int(1)})
	wide := schemaOf(codec.Field{Name: "id", Value: codec.Int(1)}, codec.Field{Name: "name", Value: codec.String("a")})
	snap := &committer.Snapshot{Version: 3, Metadata: committer.Metadata{ID: "t", Schema: narrow.Clone(),
		Configuration: map[string]string{"k": "v"}}}

	got, err := TableSchema(snap)
	require.NoError(t, err)
	require.True(t, got.Equal(narrow))
	got, err = TableSchema(&committer.Snapshot{})
	require.NoError(t, err)
	require.Empty(t, got.Columns(), "a table without a schema yet")
	_, err = TableSchema(&committer.Snapshot{Version: 7, Metadata: committer.Metadata{SchemaErr: errors.New("nested type")}})
	require.ErrorContains(t, err, "parse schema of version 7")

	// The table already has the schema, or holds every column of it.
	md, err := SchemaMetadata(snap, narrow)
	require.NoError(t, err)
	require.Nil(t, md)
	md, err = WidenedMetadata(snap, narrow)
	require.NoError(t, err)
	require.Nil(t, md)

	// A wider schema: the rest of the metadata is kept.
	for name, f := range map[string]func(*committer.Snapshot, *codec.Schema) (*committer.Metadata, error){
		"SchemaMetadata": SchemaMetadata, "WidenedMetadata": WidenedMetadata,
	} {
		md, err := f(snap, wide)
		require.NoError(t, err, name)
		require.NotNil(t, md, name)
		require.True(t, wide.Equal(md.Schema), name)
		require.Equal(t, "t", md.ID, name)
		require.Equal(t, map[string]string{"k": "v"}, md.Configuration, name)
		require.True(t, narrow.Equal(snap.Metadata.Schema), "%s leaves the snapshot alone", name)
	}

	// Widening keeps the table's columns a narrower schema lacks;
	// SchemaMetadata makes the schema the table's as it is.
	wideSnap := &committer.Snapshot{Metadata: committer.Metadata{Schema: wide.Clone()}}
	md, err = WidenedMetadata(wideSnap, narrow)
	require.NoError(t, err)
	require.Nil(t, md)
	md, err = SchemaMetadata(wideSnap, narrow)
	require.NoError(t, err)
	require.True(t, narrow.Equal(md.Schema))

	// A column of another type the table's cannot widen to is refused.
	clash := schemaOf(codec.Field{Name: "id", Value: codec.String("x")})
	_, err = WidenedMetadata(snap, clash)
	require.ErrorContains(t, err, "merge schema into version 3")
}
