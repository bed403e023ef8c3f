package codec

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// TypeKind is the kind of a column type. Each maps to one Delta Lake
// primitive type.
type TypeKind uint8

// Column type kinds.
const (
	TypeLong TypeKind = iota + 1
	TypeInteger
	TypeDouble
	TypeBoolean
	TypeString
	TypeBinary
	TypeDate
	TypeTimestamp
	TypeDecimal
	// TypeJSON is a string column holding JSON text (nested objects and
	// arrays). Delta and Parquet see a plain string; the Delta field
	// metadata {"evodb.type":"json"} marks it.
	TypeJSON
)

// MaxDecimalPrecision is the largest precision Delta Lake accepts.
const MaxDecimalPrecision = 38

// Type is a column type.
type Type struct {
	Kind TypeKind
	// Precision and Scale apply to TypeDecimal.
	Precision, Scale int32
}

// String returns the Delta Lake type name.
func (t Type) String() string {
	switch t.Kind {
	case TypeLong:
		return "long"
	case TypeInteger:
		return "integer"
	case TypeDouble:
		return "double"
	case TypeBoolean:
		return "boolean"
	case TypeString, TypeJSON:
		return "string"
	case TypeBinary:
		return "binary"
	case TypeDate:
		return "date"
	case TypeTimestamp:
		return "timestamp"
	case TypeDecimal:
		return fmt.Sprintf("decimal(%d,%d)", t.Precision, t.Scale)
	}
	return "invalid"
}

// Name names a type in error messages and in a block's column list: its
// String, except that a JSON column is "json".
func (t Type) Name() string {
	if t.Kind == TypeJSON {
		return "json"
	}
	return t.String()
}

// Column is one data column of a table.
type Column struct {
	Name     string
	Type     Type
	Nullable bool
}

// Metadata column names. Every block has _op, _lsn and _ts; the Kafka
// coordinates are optional. Source columns cannot use these names.
const (
	ColOp        = "_op"
	ColLSN       = "_lsn"
	ColTS        = "_ts"
	ColTopic     = "_topic"
	ColPartition = "_partition"
	ColOffset    = "_offset"
)

// IsReserved reports whether name is a metadata column's name, which no
// source column may use.
func IsReserved(name string) bool {
	switch name {
	case ColOp, ColLSN, ColTS, ColTopic, ColPartition, ColOffset:
		return true
	}
	return false
}

// Schema is a table's ordered data columns. It evolves as changes are
// accepted: a new column is added (nullable) when a non-null value or a
// declared column first appears (integers of any declared width as long);
// a string column takes any scalar as text; a JSON column takes any value
// as JSON text; a double column takes integers. A column not yet committed
// (only in buffered changes) also widens: long to double, a decimal to a
// larger precision. A committed column (see Rebase) never changes type:
// its files hold that type, and Spark and Polars refuse files whose
// physical type differs from the table's (Delta's typeWidening feature
// does not cover long to double, and not every reader supports it), so a
// value that needs a wider type is an error. Any error leaves the schema
// unchanged. A Schema is not safe for concurrent use.
type Schema struct {
	cols  []Column
	index map[string]int
	kafka bool
	// committed marks the columns the table's log already has (see
	// Rebase): their types are the types of the files readers hold.
	committed map[string]bool
	// pos is the column last found at each field position of a change
	// (-1: none), so Accept compares a name instead of hashing it.
	pos []int
}

// NewSchema returns an empty schema.
func NewSchema() *Schema { return &Schema{index: map[string]int{}} }

// Columns returns the data columns in order (metadata columns excluded).
// The slice must not be modified.
func (s *Schema) Columns() []Column { return s.cols }

// Column returns the named data column.
func (s *Schema) Column(name string) (Column, bool) {
	i, ok := s.index[name]
	if !ok {
		return Column{}, false
	}
	return s.cols[i], true
}

// KafkaColumns reports whether the Delta schema includes _topic,
// _partition and _offset.
func (s *Schema) KafkaColumns() bool { return s.kafka }

// SetKafkaColumns sets whether the Delta schema includes the Kafka
// coordinate columns; set it from the same setting as
// EncodeOptions.KafkaColumns.
func (s *Schema) SetKafkaColumns(on bool) { s.kafka = on }

// Clone returns an independent copy.
func (s *Schema) Clone() *Schema {
	c := &Schema{cols: append([]Column(nil), s.cols...), index: make(map[string]int, len(s.index)), kafka: s.kafka}
	for k, v := range s.index {
		c.index[k] = v
	}
	if len(s.committed) > 0 {
		c.committed = make(map[string]bool, len(s.committed))
		for k := range s.committed {
			c.committed[k] = true
		}
	}
	return c
}

// Committed reports whether the named column is in the table's committed
// schema (see Rebase).
func (s *Schema) Committed(name string) bool { return s.committed[name] }

// Rebase makes the table's committed schema the base of s, which may hold
// columns of changes not yet committed: the result has the committed
// columns, in their order and with their committed types, then the columns
// only s has. A column both have takes the committed type, whatever s
// widened it to, because the table's files hold that type (another writer
// may have committed it first, or with another type): changes that no
// longer fit are found by Check and refused as record errors, as Accept
// refuses them once the column is committed. Rebase never fails.
func (s *Schema) Rebase(committed *Schema) {
	next := committed.Clone()
	if next.committed == nil {
		next.committed = make(map[string]bool, len(next.cols))
	}
	for _, c := range committed.cols {
		next.committed[c.Name] = true
	}
	for _, c := range s.cols {
		if _, ok := next.index[c.Name]; !ok {
			next.index[c.Name] = len(next.cols)
			next.cols = append(next.cols, c)
		}
	}
	for name := range s.committed {
		next.committed[name] = true
	}
	next.kafka = next.kafka || s.kafka
	*s = *next
}

// Check reports, as a *DecodeError naming the column, a value of ch that
// does not fit its column's type (its column may have been rebased onto a
// committed type since ch was accepted).
func (s *Schema) Check(ch *Change) error {
	for i := range ch.Row {
		f := &ch.Row[i]
		if f.Value.kind == KindNull {
			continue
		}
		j, ok := s.index[f.Name]
		if !ok {
			return s.recordErr(ch, f.Name, "no such column")
		}
		if _, ok := Coerce(f.Value, s.cols[j].Type); !ok {
			return s.recordErr(ch, f.Name, s.refusal(s.cols[j], f.Value))
		}
	}
	return nil
}

// refusal says why v does not fit column c and what to do about it.
func (s *Schema) refusal(c Column, v Value) string {
	if s.committed[c.Name] {
		return fmt.Sprintf("expected %s, got %s: the table's files hold column %q as %s, and a type change would make them unreadable for Spark and Polars; send values that fit, or move the column to a new name or table", c.Type.Name(), v.kind, c.Name, c.Type.Name())
	}
	return fmt.Sprintf("expected %s, got %s", c.Type.Name(), v.kind)
}

// Equal reports whether two schemas have the same columns in the same
// order.
func (s *Schema) Equal(o *Schema) bool {
	if len(s.cols) != len(o.cols) || s.kafka != o.kafka {
		return false
	}
	for i := range s.cols {
		if s.cols[i] != o.cols[i] {
			return false
		}
	}
	return true
}

// AddColumn appends a column; it fails if the name exists or is reserved.
func (s *Schema) AddColumn(c Column) error {
	if err := checkName(c.Name); err != nil {
		return err
	}
	if _, ok := s.index[c.Name]; ok {
		return fmt.Errorf("column %q exists", c.Name)
	}
	if err := c.Type.validate(); err != nil {
		return fmt.Errorf("column %q: %w", c.Name, err)
	}
	c.Name = strings.Clone(c.Name) // do not pin the record the name came from
	s.index[c.Name] = len(s.cols)
	s.cols = append(s.cols, c)
	return nil
}

func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("empty column name")
	}
	if IsReserved(name) {
		return fmt.Errorf("column name %q is reserved for metadata", name)
	}
	return nil
}

func (t Type) validate() error {
	if t.Kind < TypeLong || t.Kind > TypeJSON {
		return fmt.Errorf("invalid type kind %d", t.Kind)
	}
	if t.Kind == TypeDecimal && (t.Precision < 1 || t.Precision > MaxDecimalPrecision || t.Scale < 0 || t.Scale > t.Precision) {
		return fmt.Errorf("invalid decimal(%d,%d)", t.Precision, t.Scale)
	}
	return nil
}

// Accept checks that ch fits the schema, evolving the schema when it
// needs new or wider columns. It reports whether the schema changed. An
// uncoercible value is a *DecodeError naming the table, column, expected
// and actual type; the schema is then unchanged.
func (s *Schema) Accept(ch *Change) (evolved bool, err error) {
	// Fast path: every declared column and every value fits as is.
	if s.fits(ch) {
		return false, nil
	}
	next := s.Clone()
	for _, d := range ch.Declared {
		if err := next.acceptDeclared(d); err != nil {
			return false, s.recordErr(ch, d.Name, err.Error())
		}
	}
	for i := range ch.Row {
		f := &ch.Row[i]
		if err := next.acceptValue(f.Name, f.Value); err != nil {
			return false, s.recordErr(ch, f.Name, err.Error())
		}
	}
	if next.Equal(s) {
		return false, nil
	}
	*s = *next
	return true, nil
}

func (s *Schema) recordErr(ch *Change, col, reason string) *DecodeError {
	return &DecodeError{Topic: ch.Topic, Partition: ch.Partition, Offset: ch.Offset, Table: ch.TableName(), Field: col, Reason: reason}
}

// fits reports whether ch needs no evolution and has no errors.
func (s *Schema) fits(ch *Change) bool {
	for _, d := range ch.Declared {
		i, ok := s.index[d.Name]
		if !ok {
			return false
		}
		// A committed column's type is fixed (its values are checked
		// below); any other column fits a declaration it already holds.
		if cur := s.cols[i].Type; cur != d.Type && !s.committed[d.Name] {
			if wide, ok := widen(cur, d.Type); !ok || wide != cur {
				return false
			}
		}
	}
	for i := range ch.Row {
		f := &ch.Row[i]
		v := f.Value
		j, ok := -1, false
		if i < len(s.pos) {
			if j = s.pos[i]; j >= 0 && s.cols[j].Name == f.Name {
				ok = true
			}
		}
		if !ok {
			if j, ok = s.index[f.Name]; ok {
				for len(s.pos) <= i {
					s.pos = append(s.pos, -1)
				}
				s.pos[i] = j
			}
		}
		if !ok {
			if v.kind == KindNull && !IsReserved(ch.Row[i].Name) && ch.Row[i].Name != "" {
				continue
			}
			return false
		}
		if !coerces(v, s.cols[j].Type) {
			return false
		}
	}
	return true
}

// coerces reports whether Coerce(v, t) succeeds, without building the
// coerced value: fits runs it on every value of every change, and Coerce
// renders text for a value of another kind in a string or JSON column
// (which always fits). Invariant: the same answer as Coerce's ok for every
// kind and type; TestCoerces compares them on values of every kind,
// including out-of-range integers and decimals that do not fit.
func coerces(v Value, t Type) bool {
	if v.kind == KindNull {
		return true
	}
	switch t.Kind {
	case TypeLong:
		return v.kind == KindInt
	case TypeInteger:
		return v.kind == KindInt && v.Int() >= math.MinInt32 && v.Int() <= math.MaxInt32
	case TypeDouble:
		return v.kind == KindFloat || v.kind == KindInt
	case TypeBoolean:
		return v.kind == KindBool
	case TypeString, TypeJSON:
		return true
	case TypeBinary:
		return v.kind == KindBinary
	case TypeDate:
		return v.kind == KindDate
	case TypeTimestamp:
		return v.kind == KindTimestamp
	case TypeDecimal:
		_, ok := coerceDecimal(v, t)
		return ok
	}
	return false
}

func (s *Schema) acceptDeclared(d Column) error {
	i, ok := s.index[d.Name]
	if !ok {
		return s.AddColumn(Column{Name: d.Name, Type: newColumnType(d.Type), Nullable: true})
	}
	cur := s.cols[i].Type
	if cur == d.Type || s.committed[d.Name] {
		// A committed column keeps its type whatever a change declares:
		// Accept then checks that each value fits it.
		return nil
	}
	wide, ok := widen(cur, d.Type)
	if !ok {
		return fmt.Errorf("expected %s, got %s", cur.Name(), d.Type.Name())
	}
	s.cols[i].Type = wide
	return nil
}

func (s *Schema) acceptValue(name string, v Value) error {
	i, ok := s.index[name]
	if !ok {
		if v.kind == KindNull {
			// A column seen only as null has no type yet; missing columns
			// read as null, so nothing is lost by adding it later.
			return checkName(name)
		}
		return s.AddColumn(Column{Name: name, Type: naturalType(v), Nullable: true})
	}
	cur := s.cols[i].Type
	if _, ok := Coerce(v, cur); ok {
		return nil
	}
	if s.committed[name] {
		return errors.New(s.refusal(s.cols[i], v))
	}
	wide, ok := widen(cur, naturalType(v))
	if ok {
		if _, ok := Coerce(v, wide); ok {
			s.cols[i].Type = wide
			return nil
		}
	}
	return fmt.Errorf("expected %s, got %s", cur.Name(), v.kind)
}

// newColumnType is the type a new column gets for a declared type. A
// declared 8, 16 or 32-bit integer column is created as long: a column's
// type never changes once it has files (see Schema), and a source that
// widens its column later (Debezium's int32 to int64 after an ALTER) then
// still fits, where an integer column would need Delta's typeWidening
// feature that not every reader supports.
func newColumnType(t Type) Type {
	if t.Kind == TypeInteger {
		return Type{Kind: TypeLong}
	}
	return t
}

// naturalType is the column type a value creates.
func naturalType(v Value) Type {
	switch v.kind {
	case KindBool:
		return Type{Kind: TypeBoolean}
	case KindInt:
		return Type{Kind: TypeLong}
	case KindFloat:
		return Type{Kind: TypeDouble}
	case KindString:
		return Type{Kind: TypeString}
	case KindBinary:
		return Type{Kind: TypeBinary}
	case KindDecimal:
		p := int32(decimalDigits(v.Unscaled()))
		p = max(p, v.scale, 1)
		// Inferred decimals get the widest precision so later values of
		// the same scale fit without a type change.
		if v.scale <= MaxDecimalPrecision {
			p = MaxDecimalPrecision
		}
		return Type{Kind: TypeDecimal, Precision: p, Scale: v.scale}
	case KindDate:
		return Type{Kind: TypeDate}
	case KindTimestamp:
		return Type{Kind: TypeTimestamp}
	case KindJSON:
		return Type{Kind: TypeJSON}
	}
	return Type{}
}

// widen returns the type that holds values of both a column's current type
// and an incoming type, if the widening rules allow one.
func widen(cur, in Type) (Type, bool) {
	if cur == in {
		return cur, true
	}
	switch cur.Kind {
	case TypeInteger:
		switch in.Kind {
		case TypeLong, TypeDouble:
			return in, true
		}
	case TypeLong:
		switch in.Kind {
		case TypeInteger:
			return cur, true
		case TypeDouble:
			return in, true
		}
	case TypeDouble:
		switch in.Kind {
		case TypeInteger, TypeLong:
			return cur, true
		}
	case TypeString, TypeJSON:
		return cur, true
	case TypeDecimal:
		if in.Kind == TypeDecimal && in.Scale == cur.Scale {
			cur.Precision = max(cur.Precision, in.Precision)
			return cur, true
		}
	}
	return Type{}, false
}

var bigTen = big.NewInt(10)

func decimalDigits(u *big.Int) int {
	if u.Sign() == 0 {
		return 1
	}
	return len(new(big.Int).Abs(u).String())
}

// Coerce converts v to what a column of type t stores (an int in a double
// column is a double, any scalar in a string column its Text), and reports
// whether the column can hold it at all.
func Coerce(v Value, t Type) (Value, bool) {
	if v.kind == KindNull {
		return v, true
	}
	switch t.Kind {
	case TypeLong:
		return v, v.kind == KindInt
	case TypeInteger:
		return v, v.kind == KindInt && v.Int() >= math.MinInt32 && v.Int() <= math.MaxInt32
	case TypeDouble:
		switch v.kind {
		case KindFloat:
			return v, true
		case KindInt:
			return Float(float64(v.Int())), true
		}
	case TypeBoolean:
		return v, v.kind == KindBool
	case TypeString:
		if v.kind == KindString {
			return v, true
		}
		return String(v.Text()), true
	case TypeBinary:
		return v, v.kind == KindBinary
	case TypeDate:
		return v, v.kind == KindDate
	case TypeTimestamp:
		return v, v.kind == KindTimestamp
	case TypeDecimal:
		return coerceDecimal(v, t)
	case TypeJSON:
		switch v.kind {
		case KindJSON:
			return v, true
		case KindBool, KindInt, KindFloat, KindDecimal:
			if v.kind == KindFloat && (math.IsNaN(v.Float()) || math.IsInf(v.Float(), 0)) {
				return JSON(strconv.Quote(v.Text())), true
			}
			return JSON(v.Text()), true
		default:
			b, _ := json.Marshal(v.Text())
			return JSON(string(b)), true
		}
	}
	return Value{}, false
}

func coerceDecimal(v Value, t Type) (Value, bool) {
	var u *big.Int
	var scale int32
	switch v.kind {
	case KindDecimal:
		if v.scale == t.Scale {
			if x, ok := twosInt64(v.str); ok {
				return v, int64Digits(x) <= int(t.Precision)
			}
		}
		u, scale = v.Unscaled(), v.scale
	case KindInt:
		u, scale = big.NewInt(v.Int()), 0
	default:
		return Value{}, false
	}
	if scale > t.Scale {
		return Value{}, false // would lose digits
	}
	if scale < t.Scale {
		u = new(big.Int).Mul(u, new(big.Int).Exp(bigTen, big.NewInt(int64(t.Scale-scale)), nil))
	}
	if decimalDigits(u) > int(t.Precision) {
		return Value{}, false
	}
	return DecimalFromBig(u, t.Scale), true
}

// int64Digits counts the decimal digits of x.
func int64Digits(x int64) int {
	if x == math.MinInt64 {
		return 19
	}
	if x < 0 {
		x = -x
	}
	n := 1
	for x >= 10 {
		x /= 10
		n++
	}
	return n
}

// MetaColumns returns the metadata columns in block order: _op, _lsn,
// _ts, and with kafka the Kafka coordinates.
func MetaColumns(kafka bool) []Column {
	cols := []Column{
		{Name: ColOp, Type: Type{Kind: TypeString}},
		{Name: ColLSN, Type: Type{Kind: TypeLong}},
		{Name: ColTS, Type: Type{Kind: TypeTimestamp}},
	}
	if kafka {
		cols = append(cols,
			Column{Name: ColTopic, Type: Type{Kind: TypeString}},
			Column{Name: ColPartition, Type: Type{Kind: TypeInteger}},
			Column{Name: ColOffset, Type: Type{Kind: TypeLong}},
		)
	}
	return cols
}

// ParseType is the inverse of Type.String: it parses a type name such as
// "long" or "decimal(12,3)" (a JSON column's name is "string"; callers
// that distinguish JSON columns mark them separately). "short" and "byte"
// read as integer, "float" as double.
func ParseType(name string) (Type, error) {
	switch name {
	case "long":
		return Type{Kind: TypeLong}, nil
	case "integer", "short", "byte":
		return Type{Kind: TypeInteger}, nil
	case "double", "float":
		return Type{Kind: TypeDouble}, nil
	case "boolean":
		return Type{Kind: TypeBoolean}, nil
	case "string":
		return Type{Kind: TypeString}, nil
	case "binary":
		return Type{Kind: TypeBinary}, nil
	case "date":
		return Type{Kind: TypeDate}, nil
	case "timestamp":
		return Type{Kind: TypeTimestamp}, nil
	}
	var p, sc int32
	if _, err := fmt.Sscanf(name, "decimal(%d,%d)", &p, &sc); err == nil {
		t := Type{Kind: TypeDecimal, Precision: p, Scale: sc}
		return t, t.validate()
	}
	return Type{}, fmt.Errorf("unsupported type %q", name)
}
