package iceberg

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"unicode/utf8"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
)

// jsonDoc marks JSON text columns in an Iceberg field's doc: Iceberg has
// no JSON type, so they are strings to every other reader, as in Delta.
const jsonDoc = "evodb.type=json"

// icebergType maps a column type onto its Iceberg primitive type.
// Timestamps are timestamptz: the blocks hold UTC instants (Parquet
// TIMESTAMP with isAdjustedToUTC, in milliseconds, which Iceberg readers
// widen to the microseconds Iceberg's type has).
func icebergType(t codec.Type) (iceberg.Type, error) {
	switch t.Kind {
	case codec.TypeLong:
		return iceberg.PrimitiveTypes.Int64, nil
	case codec.TypeInteger:
		return iceberg.PrimitiveTypes.Int32, nil
	case codec.TypeDouble:
		return iceberg.PrimitiveTypes.Float64, nil
	case codec.TypeBoolean:
		return iceberg.PrimitiveTypes.Bool, nil
	case codec.TypeString, codec.TypeJSON:
		return iceberg.PrimitiveTypes.String, nil
	case codec.TypeBinary:
		return iceberg.PrimitiveTypes.Binary, nil
	case codec.TypeDate:
		return iceberg.PrimitiveTypes.Date, nil
	case codec.TypeTimestamp:
		return iceberg.PrimitiveTypes.TimestampTz, nil
	case codec.TypeDecimal:
		if t.Precision < 1 || t.Precision > codec.MaxDecimalPrecision || t.Scale < 0 || t.Scale > t.Precision {
			return nil, fmt.Errorf("decimal(%d,%d) is not a valid Iceberg decimal", t.Precision, t.Scale)
		}
		return iceberg.DecimalTypeOf(int(t.Precision), int(t.Scale)), nil
	}
	return nil, fmt.Errorf("column type %s has no Iceberg type", t)
}

// codecType is the inverse of icebergType; ok is false for a type the row
// model cannot represent (nested, time, uuid, float, nanosecond
// timestamps).
func codecType(f iceberg.NestedField) (codec.Type, bool) {
	switch ty := f.Type.(type) {
	case iceberg.Int64Type:
		return codec.Type{Kind: codec.TypeLong}, true
	case iceberg.Int32Type:
		return codec.Type{Kind: codec.TypeInteger}, true
	case iceberg.Float64Type:
		return codec.Type{Kind: codec.TypeDouble}, true
	case iceberg.BooleanType:
		return codec.Type{Kind: codec.TypeBoolean}, true
	case iceberg.StringType:
		if f.Doc == jsonDoc {
			return codec.Type{Kind: codec.TypeJSON}, true
		}
		return codec.Type{Kind: codec.TypeString}, true
	case iceberg.BinaryType:
		return codec.Type{Kind: codec.TypeBinary}, true
	case iceberg.DateType:
		return codec.Type{Kind: codec.TypeDate}, true
	case iceberg.TimestampTzType, iceberg.TimestampType:
		return codec.Type{Kind: codec.TypeTimestamp}, true
	case iceberg.DecimalType:
		return codec.Type{Kind: codec.TypeDecimal, Precision: int32(ty.Precision()), Scale: int32(ty.Scale())}, true
	}
	return codec.Type{}, false
}

// fieldOf returns the Iceberg field of a column; id is its field ID.
func fieldOf(id int, c codec.Column, required bool) (iceberg.NestedField, error) {
	t, err := icebergType(c.Type)
	if err != nil {
		return iceberg.NestedField{}, fmt.Errorf("column %q: %w", c.Name, err)
	}
	f := iceberg.NestedField{ID: id, Name: c.Name, Type: t, Required: required}
	if c.Type.Kind == codec.TypeJSON {
		f.Doc = jsonDoc
	}
	return f, nil
}

// newSchema maps s onto an Iceberg schema with field IDs 1, 2, ... in
// block order: the metadata columns (_op, _lsn, _ts and, with Kafka
// columns, _topic, _partition, _offset; required) and then the data
// columns, required unless nullable.
//
// The blocks' Parquet files carry these field IDs (Commit.FieldIDs,
// Table.NewFieldIDs), but for the blocks of versions that wrote none:
// readers map their columns by name through the table's
// schema.name-mapping.default property, which every schema this package
// writes comes with (see nameMapping).
func newSchema(s *codec.Schema) (*iceberg.Schema, error) {
	var fields []iceberg.NestedField
	for _, c := range codec.MetaColumns(s.KafkaColumns()) {
		f, err := fieldOf(len(fields)+1, c, true)
		if err != nil {
			return nil, err
		}
		fields = append(fields, f)
	}
	for _, c := range s.Columns() {
		f, err := fieldOf(len(fields)+1, c, !c.Nullable)
		if err != nil {
			return nil, err
		}
		fields = append(fields, f)
	}
	return iceberg.NewSchema(0, fields...), nil
}

// fieldIDsOf maps the columns of is to their field IDs
// (committer.Metadata.FieldIDs).
func fieldIDsOf(is *iceberg.Schema) map[string]int {
	out := make(map[string]int, len(is.Fields()))
	for _, f := range is.Fields() {
		out[f.Name] = f.ID
	}
	return out
}

// checkFieldIDs refuses files written with field IDs that is gives other
// columns: the writer predicted the IDs of new columns from a schema the
// table no longer has (committer.Commit.FieldIDs), so readers resolving
// by ID would find its columns under the wrong names.
func checkFieldIDs(is *iceberg.Schema, ids map[string]int) error {
	for name, id := range ids {
		f, ok := is.FindFieldByName(name)
		if !ok || f.ID != id {
			got := "no such column"
			if ok {
				got = fmt.Sprintf("field ID %d", f.ID)
			}
			return fmt.Errorf("the files were written with field ID %d for column %q, the table's schema has %s: %w",
				id, name, got, committer.ErrMetadataChanged)
		}
	}
	return nil
}

// errUnsupportedSchema says an Iceberg schema has a column the row model
// cannot represent.
var errUnsupportedSchema = errors.New("unsupported Iceberg schema")

// parseSchema is the inverse of newSchema: the data columns of is, with
// the Kafka columns noted when _topic is there.
func parseSchema(is *iceberg.Schema) (*codec.Schema, error) {
	s := codec.NewSchema()
	for _, f := range is.Fields() {
		if codec.IsReserved(f.Name) {
			if f.Name == codec.ColTopic {
				s.SetKafkaColumns(true)
			}
			continue
		}
		t, ok := codecType(f)
		if !ok {
			return nil, fmt.Errorf("column %q has type %s: %w", f.Name, f.Type, errUnsupportedSchema)
		}
		if err := s.AddColumn(codec.Column{Name: f.Name, Type: t, Nullable: !f.Required}); err != nil {
			return nil, fmt.Errorf("parse Iceberg schema: %w", err)
		}
	}
	return s, nil
}

// nameMapping renders the schema.name-mapping.default of is, by which
// readers find the columns of files without field IDs.
func nameMapping(is *iceberg.Schema) (string, error) {
	b, err := json.Marshal(is.NameMapping())
	if err != nil {
		return "", fmt.Errorf("encode name mapping: %w", err)
	}
	return string(b), nil
}

// evolve stages in us the changes that turn the table's schema cur into
// want: new columns (with new field IDs), the promotions Iceberg allows
// (int to long, float to double, a decimal to a larger precision at the
// same scale), a required column made optional, and the Kafka columns
// added. Anything else (a column dropped, another type change, an optional
// column made required) is refused: the table keeps the schema its files
// were written with. It reports whether it staged anything.
func evolve(us *table.UpdateSchema, cur *iceberg.Schema, want *codec.Schema) (bool, error) {
	changed := false
	wantCols := codec.MetaColumns(want.KafkaColumns())
	nMeta := len(wantCols)
	wantCols = append(wantCols, want.Columns()...)
	seen := map[string]bool{}
	for i, c := range wantCols {
		seen[c.Name] = true
		required := i < nMeta || !c.Nullable
		nf, err := fieldOf(0, c, required)
		if err != nil {
			return false, err
		}
		f, ok := cur.FindFieldByName(c.Name)
		if !ok {
			// New columns are optional: files already in the table do
			// not have them.
			us.AddColumn([]string{c.Name}, nf.Type, nf.Doc, false, nil)
			changed = true
			continue
		}
		if !f.Type.Equals(nf.Type) {
			if !promotable(f.Type, nf.Type) {
				return false, fmt.Errorf("column %q: type %s cannot become %s in an Iceberg table", c.Name, f.Type, nf.Type)
			}
			us.UpdateColumn([]string{c.Name}, table.ColumnUpdate{FieldType: iceberg.Optional[iceberg.Type]{Valid: true, Val: nf.Type}})
			changed = true
		}
		if f.Doc != nf.Doc && nf.Doc == jsonDoc {
			return false, fmt.Errorf("column %q: a string column cannot become a JSON column", c.Name)
		}
		if f.Required && !required {
			us.UpdateColumn([]string{c.Name}, table.ColumnUpdate{Required: iceberg.Optional[bool]{Valid: true, Val: false}})
			changed = true
		}
	}
	for _, f := range cur.Fields() {
		if !seen[f.Name] {
			return false, fmt.Errorf("column %q would be dropped: the sink never drops columns", f.Name)
		}
	}
	return changed, nil
}

// promotable reports whether Iceberg allows the type change from to to.
func promotable(from, to iceberg.Type) bool {
	switch f := from.(type) {
	case iceberg.Int32Type:
		_, ok := to.(iceberg.Int64Type)
		return ok
	case iceberg.Float32Type:
		_, ok := to.(iceberg.Float64Type)
		return ok
	case iceberg.DecimalType:
		t, ok := to.(iceberg.DecimalType)
		return ok && t.Scale() == f.Scale() && t.Precision() >= f.Precision()
	}
	return false
}

// boundStringBytes is how many bytes of a string the column bounds keep,
// as Iceberg writers do (16 characters by default; bytes here), so long
// values do not bloat manifests.
const boundStringBytes = 32

// bound renders v as an Iceberg single-value binary bound of type t: the
// little-endian integer, IEEE float, days, microseconds, UTF-8 string or
// big-endian two's-complement unscaled decimal. A lower bound of a long
// string keeps a prefix; an upper one is dropped (a truncated maximum would
// be wrong), as are non-finite doubles and binary, JSON and boolean
// values. ok is false when there is no bound.
func bound(v codec.Value, t codec.Type, upper bool) ([]byte, bool) {
	if v.IsNull() {
		return nil, false
	}
	switch t.Kind {
	case codec.TypeLong:
		return binary.LittleEndian.AppendUint64(nil, uint64(v.Int())), true
	case codec.TypeInteger:
		return binary.LittleEndian.AppendUint32(nil, uint32(int32(v.Int()))), true
	case codec.TypeDouble:
		f := v.Float()
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, false
		}
		return binary.LittleEndian.AppendUint64(nil, math.Float64bits(f)), true
	case codec.TypeDate:
		return binary.LittleEndian.AppendUint32(nil, uint32(v.Days())), true
	case codec.TypeTimestamp:
		return binary.LittleEndian.AppendUint64(nil, uint64(v.Millis()*1000)), true
	case codec.TypeString:
		s := v.Str()
		if len(s) > boundStringBytes {
			if upper {
				return nil, false
			}
			n := boundStringBytes
			for n > 0 && !utf8.RuneStart(s[n]) {
				n--
			}
			s = s[:n]
		}
		return []byte(s), true
	case codec.TypeDecimal:
		return decimalBytes(v.Unscaled()), true
	}
	return nil, false
}

// decimalBytes renders u as the minimal big-endian two's complement.
func decimalBytes(u *big.Int) []byte {
	if u.Sign() >= 0 {
		b := u.Bytes()
		if len(b) == 0 || b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
		return b
	}
	// -u - 1 has the complemented bits of u's two's complement.
	n := new(big.Int).Neg(u)
	n.Sub(n, big.NewInt(1))
	b := n.Bytes()
	for i := range b {
		b[i] = ^b[i]
	}
	if len(b) == 0 || b[0]&0x80 == 0 {
		b = append([]byte{0xff}, b...)
	}
	return b
}
