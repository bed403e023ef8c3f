package tablefile

import (
	"fmt"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer/delta"
)

// TableSchema parses the schema of a table's metadata; a table without one
// (its metadata not written yet) has an empty schema.
func TableSchema(snap *delta.Snapshot) (*codec.Schema, error) {
	if snap.Metadata.SchemaString == "" {
		return codec.NewSchema(), nil
	}
	s, err := codec.ParseDeltaSchema(snap.Metadata.SchemaString)
	if err != nil {
		return nil, fmt.Errorf("parse schema of version %d: %w", snap.Version, err)
	}
	return s, nil
}

// SchemaMetadata returns snap's metadata with schema as the table's schema,
// to commit with data files of that schema, or nil when the table already
// has it. A schema is committed in the same commit as the first file that
// needs it, so no reader sees a file with columns its table lacks.
func SchemaMetadata(snap *delta.Snapshot, schema *codec.Schema) (*delta.Metadata, error) {
	text, err := schema.DeltaSchemaJSON()
	if err != nil {
		return nil, fmt.Errorf("render schema: %w", err)
	}
	if text == snap.Metadata.SchemaString {
		return nil, nil
	}
	md := snap.Metadata
	md.SchemaString = text
	return &md, nil
}

// WidenedMetadata returns the table metadata to commit with data files of
// schema: snap's metadata with schema's columns merged into the table's
// schema (the table's columns first, in their order, widened where schema
// holds a wider type), or nil when the table's schema already holds them.
func WidenedMetadata(snap *delta.Snapshot, schema *codec.Schema) (*delta.Metadata, error) {
	merged, err := TableSchema(snap)
	if err != nil {
		return nil, err
	}
	if err := merged.Merge(schema); err != nil {
		return nil, fmt.Errorf("merge schema into version %d: %w", snap.Version, err)
	}
	return SchemaMetadata(snap, merged)
}
