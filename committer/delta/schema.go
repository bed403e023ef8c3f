package delta

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/evodb/sink/codec"
)

// field is a field of a Delta Lake struct type.
type field struct {
	Name     string         `json:"name"`
	Type     any            `json:"type"`
	Nullable bool           `json:"nullable"`
	Metadata map[string]any `json:"metadata"`
}

type structType struct {
	Type   string  `json:"type"`
	Fields []field `json:"fields"`
}

// jsonMetaKey marks JSON text columns in Delta field metadata: Delta has
// no JSON type, so they are strings to every other reader.
const jsonMetaKey = "evodb.type"

// SchemaJSON returns the Delta Lake schemaString of s: a struct type with
// the metadata columns (non-nullable) first, then the data columns in
// order (nullable).
func SchemaJSON(s *codec.Schema) (string, error) {
	st := structType{Type: "struct"}
	for _, c := range codec.MetaColumns(s.KafkaColumns()) {
		st.Fields = append(st.Fields, field{Name: c.Name, Type: c.Type.String(), Nullable: false, Metadata: map[string]any{}})
	}
	for _, c := range s.Columns() {
		md := map[string]any{}
		if c.Type.Kind == codec.TypeJSON {
			md[jsonMetaKey] = "json"
		}
		st.Fields = append(st.Fields, field{Name: c.Name, Type: c.Type.String(), Nullable: c.Nullable, Metadata: md})
	}
	b, err := json.Marshal(st)
	if err != nil {
		return "", fmt.Errorf("encode delta schema: %w", err)
	}
	return string(b), nil
}

// ParseSchema is the inverse of SchemaJSON: it rebuilds a schema from a
// Delta schemaString, skipping metadata columns (and noting whether the
// Kafka columns are present).
func ParseSchema(schemaString string) (*codec.Schema, error) {
	var st structType
	if err := json.Unmarshal([]byte(schemaString), &st); err != nil {
		return nil, fmt.Errorf("parse delta schema: %w", err)
	}
	if st.Type != "struct" {
		return nil, fmt.Errorf("parse delta schema: type %q, want struct", st.Type)
	}
	s := codec.NewSchema()
	for _, f := range st.Fields {
		if codec.IsReserved(f.Name) {
			if f.Name == codec.ColTopic {
				s.SetKafkaColumns(true)
			}
			continue
		}
		name, ok := f.Type.(string)
		if !ok {
			return nil, fmt.Errorf("parse delta schema: column %q: nested types are not supported", f.Name)
		}
		t, err := codec.ParseType(name)
		if err != nil {
			return nil, fmt.Errorf("parse delta schema: column %q: %w", f.Name, err)
		}
		if t.Kind == codec.TypeString && f.Metadata[jsonMetaKey] == "json" {
			t.Kind = codec.TypeJSON
		}
		if err := s.AddColumn(codec.Column{Name: f.Name, Type: t, Nullable: f.Nullable}); err != nil {
			return nil, fmt.Errorf("parse delta schema: %w", err)
		}
	}
	return s, nil
}

// statsStringPrefix is how many characters of a string Delta stats keep,
// as Delta writers do, so long values do not bloat the log.
const statsStringPrefix = 32

// StatsJSON renders b as the Delta "stats" JSON of an add action:
// numRecords, minValues, maxValues and nullCount. Timestamps are ISO-8601
// with milliseconds, dates YYYY-MM-DD, decimals exact numbers. Strings
// longer than 32 characters keep a 32-character prefix as their minimum
// and have no maximum (a truncated maximum would be wrong); binary, JSON,
// boolean and non-finite values have no min/max.
func StatsJSON(b *codec.BlockStats) (string, error) {
	minV, maxV := map[string]any{}, map[string]any{}
	nulls := make(map[string]int64, len(b.Columns))
	for name, cs := range b.Columns {
		nulls[name] = cs.NullCount
		if v, ok := statValue(cs.Min, cs.Type, false); ok {
			minV[name] = v
		}
		if v, ok := statValue(cs.Max, cs.Type, true); ok {
			maxV[name] = v
		}
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	err := enc.Encode(struct {
		NumRecords int64            `json:"numRecords"`
		MinValues  map[string]any   `json:"minValues"`
		MaxValues  map[string]any   `json:"maxValues"`
		NullCount  map[string]int64 `json:"nullCount"`
	}{b.Rows, minV, maxV, nulls})
	if err != nil {
		return "", fmt.Errorf("encode delta stats: %w", err)
	}
	return strings.TrimSuffix(out.String(), "\n"), nil
}

func statValue(v codec.Value, t codec.Type, isMax bool) (any, bool) {
	if v.IsNull() {
		return nil, false
	}
	switch t.Kind {
	case codec.TypeLong, codec.TypeInteger:
		return v.Int(), true
	case codec.TypeDouble:
		f := v.Float()
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, false
		}
		return f, true
	case codec.TypeString:
		s := v.Str()
		if utf8.RuneCountInString(s) > statsStringPrefix {
			if isMax {
				return nil, false
			}
			r := []rune(s)
			s = string(r[:statsStringPrefix])
		}
		return s, true
	case codec.TypeDate, codec.TypeTimestamp:
		return v.Text(), true
	case codec.TypeDecimal:
		return json.Number(v.Text()), true
	}
	return nil, false
}

// RawStats is an add action's stats JSON as the log holds it. The format
// keeps it in committer.Add.Sys of the files it reads, so that checkpoints
// write it back unchanged, and writes it as is for an Add whose Sys holds
// one (a test standing in for another engine's writer sets it).
type RawStats string

// readStats returns the row count of stats text, as committer.Add.Stats:
// nil when the text is empty or has no numRecords (Delta makes stats
// optional; another writer may write none). Only numRecords is read: the
// column bounds stay in the text, which the sink never needs to read.
func readStats(text string) *codec.BlockStats {
	if text == "" {
		return nil
	}
	// The sink writes numRecords first; take it without a full parse.
	if rest, ok := strings.CutPrefix(text, `{"numRecords":`); ok {
		end := strings.IndexAny(rest, ",}")
		if end > 0 {
			if n, err := strconv.ParseInt(rest[:end], 10, 64); err == nil {
				return &codec.BlockStats{Rows: n}
			}
		}
	}
	var st struct {
		NumRecords *int64 `json:"numRecords"`
	}
	if json.Unmarshal([]byte(text), &st) != nil || st.NumRecords == nil {
		return nil
	}
	return &codec.BlockStats{Rows: *st.NumRecords}
}
