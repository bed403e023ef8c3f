package tablefile

import (
	"fmt"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
)

// TableSchema returns the schema of a table's metadata; a table without
// one (its metadata not written yet) has an empty schema. A table whose
// format holds a schema the row model cannot represent is an error.
func TableSchema(snap *committer.Snapshot) (*codec.Schema, error) {
	if snap.Metadata.SchemaErr != nil {
		return nil, fmt.Errorf("parse schema of version %d: %w", snap.Version, snap.Metadata.SchemaErr)
	}
	if snap.Metadata.Schema == nil {
		return codec.NewSchema(), nil
	}
	return snap.Metadata.Schema.Clone(), nil
}

// SchemaMetadata returns snap's metadata with schema as the table's schema,
// to commit with data files of that schema, or nil when the table already
// has it. A schema is committed in the same commit as the first file that
// needs it, so no reader sees a file with columns its table lacks.
func SchemaMetadata(snap *committer.Snapshot, schema *codec.Schema) (*committer.Metadata, error) {
	if cur := snap.Metadata.Schema; cur != nil && snap.Metadata.SchemaErr == nil && cur.Equal(schema) {
		return nil, nil
	}
	md := snap.Metadata.Clone()
	md.Schema = schema.Clone()
	md.SchemaErr = nil
	return &md, nil
}

// WidenedMetadata returns the table metadata to commit with data files of
// schema: snap's metadata with schema's columns merged into the table's
// schema (the table's columns first, in their order, widened where schema
// holds a wider type), or nil when the table's schema already holds them.
func WidenedMetadata(snap *committer.Snapshot, schema *codec.Schema) (*committer.Metadata, error) {
	merged, err := TableSchema(snap)
	if err != nil {
		return nil, err
	}
	if err := merged.Merge(schema); err != nil {
		return nil, fmt.Errorf("merge schema into version %d: %w", snap.Version, err)
	}
	return SchemaMetadata(snap, merged)
}
