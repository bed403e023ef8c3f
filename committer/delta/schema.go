package delta

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
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
//
// It writes the JSON itself, byte for byte what encoding/json writes for
// the same values in maps (keys sorted, HTML characters not escaped): the
// reflection and the maps of interface values had cost as much as the
// rest of a commit's log entry (TestStatsJSONAsEncodingJSON and
// FuzzStatsJSON compare the two).
func StatsJSON(b *codec.BlockStats) (string, error) {
	names := make([]string, 0, len(b.Columns))
	for name := range b.Columns {
		names = append(names, name)
	}
	// encoding/json sorts map keys as byte strings.
	slices.Sort(names)
	out := make([]byte, 0, 64+48*len(names))
	out = append(out, `{"numRecords":`...)
	out = strconv.AppendInt(out, b.Rows, 10)
	var err error
	out = append(out, `,"minValues":{`...)
	if out, err = appendBounds(out, names, b.Columns, false); err != nil {
		return "", err
	}
	out = append(out, `},"maxValues":{`...)
	if out, err = appendBounds(out, names, b.Columns, true); err != nil {
		return "", err
	}
	out = append(out, `},"nullCount":{`...)
	for i, name := range names {
		if i > 0 {
			out = append(out, ',')
		}
		out = appendJSONString(out, name)
		out = append(out, ':')
		out = strconv.AppendInt(out, b.Columns[name].NullCount, 10)
	}
	out = append(out, "}}"...)
	return string(out), nil
}

// appendBounds appends the "name":value members of the minima (or with
// isMax the maxima) of the columns names, in that order, as statValue
// gives them.
func appendBounds(out []byte, names []string, cols map[string]codec.ColumnStats, isMax bool) ([]byte, error) {
	first := true
	for _, name := range names {
		cs := cols[name]
		v := cs.Min
		if isMax {
			v = cs.Max
		}
		sv, ok := statValue(v, cs.Type, isMax)
		if !ok {
			continue
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = appendJSONString(out, name)
		out = append(out, ':')
		switch x := sv.(type) {
		case int64:
			out = strconv.AppendInt(out, x, 10)
		case float64:
			out = appendJSONFloat(out, x)
		case string:
			out = appendJSONString(out, x)
		default:
			// Decimals (json.Number), which encoding/json checks to be a
			// valid number literal.
			text, err := json.Marshal(x)
			if err != nil {
				return nil, fmt.Errorf("encode delta stats: %w", err)
			}
			out = append(out, text...)
		}
	}
	return out, nil
}

// appendJSONFloat appends a finite f as encoding/json writes a float64.
func appendJSONFloat(out []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	out = strconv.AppendFloat(out, f, format, -1, 64)
	if format == 'e' {
		// Exponents of one digit lose their leading zero: 1e-07 is 1e-7.
		if n := len(out); n >= 4 && out[n-4] == 'e' && out[n-3] == '-' && out[n-2] == '0' {
			out[n-2] = out[n-1]
			out = out[:n-1]
		}
	}
	return out
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json quotes a string with
// HTML escaping off: ", \ and control characters escaped, invalid UTF-8
// as U+FFFD, and U+2028 and U+2029 escaped.
func appendJSONString(out []byte, s string) []byte {
	out = append(out, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			out = append(out, s[start:i]...)
			switch b {
			case '\\', '"':
				out = append(out, '\\', b)
			case '\b':
				out = append(out, '\\', 'b')
			case '\f':
				out = append(out, '\\', 'f')
			case '\n':
				out = append(out, '\\', 'n')
			case '\r':
				out = append(out, '\\', 'r')
			case '\t':
				out = append(out, '\\', 't')
			default:
				out = append(out, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			out = append(out, s[start:i]...)
			out = append(out, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			out = append(out, s[start:i]...)
			out = append(out, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	out = append(out, s[start:]...)
	return append(out, '"')
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
