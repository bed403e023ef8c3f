package tablefile

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer/delta"
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
	narrowText, err := narrow.DeltaSchemaJSON()
	require.NoError(t, err)
	wideText, err := wide.DeltaSchemaJSON()
	require.NoError(t, err)
	snap := &delta.Snapshot{Version: 3, Metadata: delta.Metadata{ID: "t", SchemaString: narrowText,
		Configuration: map[string]string{"k": "v"}}}

	got, err := TableSchema(snap)
	require.NoError(t, err)
	require.True(t, got.Equal(narrow))
	got, err = TableSchema(&delta.Snapshot{})
	require.NoError(t, err)
	require.Empty(t, got.Columns(), "a table without a schema yet")
	_, err = TableSchema(&delta.Snapshot{Version: 7, Metadata: delta.Metadata{SchemaString: "{"}})
	require.ErrorContains(t, err, "parse schema of version 7")

	// The table already has the schema, or holds every column of it.
	md, err := SchemaMetadata(snap, narrow)
	require.NoError(t, err)
	require.Nil(t, md)
	md, err = WidenedMetadata(snap, narrow)
	require.NoError(t, err)
	require.Nil(t, md)

	// A wider schema: the rest of the metadata is kept.
	for name, f := range map[string]func(*delta.Snapshot, *codec.Schema) (*delta.Metadata, error){
		"SchemaMetadata": SchemaMetadata, "WidenedMetadata": WidenedMetadata,
	} {
		md, err := f(snap, wide)
		require.NoError(t, err, name)
		require.NotNil(t, md, name)
		require.Equal(t, wideText, md.SchemaString, name)
		require.Equal(t, "t", md.ID, name)
		require.Equal(t, map[string]string{"k": "v"}, md.Configuration, name)
		require.Equal(t, narrowText, snap.Metadata.SchemaString, "%s leaves the snapshot alone", name)
	}

	// Widening keeps the table's columns a narrower schema lacks;
	// SchemaMetadata makes the schema the table's as it is.
	wideSnap := &delta.Snapshot{Metadata: delta.Metadata{SchemaString: wideText}}
	md, err = WidenedMetadata(wideSnap, narrow)
	require.NoError(t, err)
	require.Nil(t, md)
	md, err = SchemaMetadata(wideSnap, narrow)
	require.NoError(t, err)
	require.Equal(t, narrowText, md.SchemaString)

	// A column of another type the table's cannot widen to is refused.
	clash := schemaOf(codec.Field{Name: "id", Value: codec.String("x")})
	_, err = WidenedMetadata(snap, clash)
	require.ErrorContains(t, err, "merge schema into version 3")
}
