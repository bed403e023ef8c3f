package codec

import (
	"math"
	"math/big"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSchemaAccept(t *testing.T) {
	row := func(fs ...Field) *Change { return &Change{Table: "t", Schema: "s", Op: OpInsert, Row: fs} }
	for _, tc := range []struct {
		name    string
		changes []*Change
		want    []Column // final columns
		base    []Column // committed columns the schema starts from
		errCol  string   // the last change fails on this column
		reason  string   // and the error says this
		evolved []bool
	}{
		{name: "new columns nullable, nulls wait for a type",
			changes: []*Change{row(Field{"a", Int(1)}, Field{"n", Null()}), row(Field{"b", String("x")}), row(Field{"n", Bool(true)})},
			want:    []Column{{"a", Type{Kind: TypeLong}, true}, {"b", Type{Kind: TypeString}, true}, {"n", Type{Kind: TypeBoolean}, true}},
			evolved: []bool{true, true, true}},
		{name: "int widens to double",
			changes: []*Change{row(Field{"a", Int(1)}), row(Field{"a", Float(1.5)}), row(Field{"a", Int(2)})},
			want:    []Column{{"a", Type{Kind: TypeDouble}, true}},
			evolved: []bool{true, true, false}},
		{name: "scalars into string column as text",
			changes: []*Change{row(Field{"a", String("x")}), row(Field{"a", Int(1)}), row(Field{"a", Float(2)}), row(Field{"a", Bool(true)}), row(Field{"a", JSON(`{}`)})},
			want:    []Column{{"a", Type{Kind: TypeString}, true}},
			evolved: []bool{true, false, false, false, false}},
		{name: "scalars into json column",
			changes: []*Change{row(Field{"a", JSON(`[1]`)}), row(Field{"a", String("x")}), row(Field{"a", Int(3)})},
			want:    []Column{{"a", Type{Kind: TypeJSON}, true}},
			evolved: []bool{true, false, false}},
		{name: "string into long column is an error",
			changes: []*Change{row(Field{"a", Int(1)}), row(Field{"b", Int(2)}, Field{"a", String("x")})},
			want:    []Column{{"a", Type{Kind: TypeLong}, true}},
			errCol:  "a", evolved: []bool{true}},
		{name: "bool into double is an error",
			changes: []*Change{row(Field{"a", Float(1)}), row(Field{"a", Bool(true)})},
			want:    []Column{{"a", Type{Kind: TypeDouble}, true}},
			errCol:  "a", evolved: []bool{true}},
		{name: "reserved name is an error",
			changes: []*Change{row(Field{"_lsn", Int(1)})},
			errCol:  "_lsn"},
		{name: "declared columns added even when null",
			changes: []*Change{{Table: "t", Op: OpInsert, Declared: []Column{{"d", Type{Kind: TypeDecimal, Precision: 10, Scale: 2}, true}}, Row: []Field{{"d", Null()}}}},
			want:    []Column{{"d", Type{Kind: TypeDecimal, Precision: 10, Scale: 2}, true}},
			evolved: []bool{true}},
		{name: "declared integer is created as long",
			changes: []*Change{
				{Table: "t", Op: OpInsert, Declared: []Column{{"i", Type{Kind: TypeInteger}, true}}},
				{Table: "t", Op: OpInsert, Declared: []Column{{"i", Type{Kind: TypeLong}, true}}},
				{Table: "t", Op: OpInsert, Declared: []Column{{"i", Type{Kind: TypeInteger}, true}}}},
			want:    []Column{{"i", Type{Kind: TypeLong}, true}},
			evolved: []bool{true, false, false}},
		{name: "declared integer holds a large value",
			changes: []*Change{{Table: "t", Op: OpInsert, Declared: []Column{{"i", Type{Kind: TypeInteger}, true}}}, row(Field{"i", Int(1 << 40)})},
			want:    []Column{{"i", Type{Kind: TypeLong}, true}},
			evolved: []bool{true, false}},
		{name: "committed long refuses a double",
			base:    []Column{{"a", Type{Kind: TypeLong}, true}},
			changes: []*Change{row(Field{"a", Int(1)}), row(Field{"a", Float(1.5)})},
			want:    []Column{{"a", Type{Kind: TypeLong}, true}},
			errCol:  "a", reason: `the table's files hold column "a" as long`, evolved: []bool{false}},
		{name: "committed long keeps its type whatever is declared",
			base: []Column{{"a", Type{Kind: TypeLong}, true}},
			changes: []*Change{
				{Table: "t", Op: OpInsert, Declared: []Column{{"a", Type{Kind: TypeDouble}, true}}, Row: []Field{{"a", Int(2)}}},
				{Table: "t", Op: OpInsert, Declared: []Column{{"a", Type{Kind: TypeDouble}, true}}, Row: []Field{{"a", Float(2.5)}}}},
			want:   []Column{{"a", Type{Kind: TypeLong}, true}},
			errCol: "a", reason: "files hold", evolved: []bool{false}},
		{name: "committed integer of an earlier version refuses a long",
			base:    []Column{{"i", Type{Kind: TypeInteger}, true}},
			changes: []*Change{row(Field{"i", Int(7)}), {Table: "t", Op: OpInsert, Declared: []Column{{"i", Type{Kind: TypeLong}, true}}, Row: []Field{{"i", Int(1 << 40)}}}},
			want:    []Column{{"i", Type{Kind: TypeInteger}, true}},
			errCol:  "i", reason: "files hold", evolved: []bool{false}},
		{name: "committed decimal keeps its precision",
			base:    []Column{{"d", Type{Kind: TypeDecimal, Precision: 4, Scale: 2}, true}},
			changes: []*Change{{Table: "t", Op: OpInsert, Declared: []Column{{"d", Type{Kind: TypeDecimal, Precision: 10, Scale: 2}, true}}, Row: []Field{{"d", Int(12)}}}, row(Field{"d", Int(100)})},
			want:    []Column{{"d", Type{Kind: TypeDecimal, Precision: 4, Scale: 2}, true}},
			errCol:  "d", reason: "files hold", evolved: []bool{false}},
		{name: "committed double takes integers, string takes scalars",
			base:    []Column{{"f", Type{Kind: TypeDouble}, true}, {"s", Type{Kind: TypeString}, true}},
			changes: []*Change{row(Field{"f", Int(1)}, Field{"s", Float(0.5)}), row(Field{"n", Float(1)})},
			want:    []Column{{"f", Type{Kind: TypeDouble}, true}, {"s", Type{Kind: TypeString}, true}, {"n", Type{Kind: TypeDouble}, true}},
			evolved: []bool{false, true}},
		{name: "decimal rescale and precision",
			changes: []*Change{
				{Table: "t", Op: OpInsert, Declared: []Column{{"d", Type{Kind: TypeDecimal, Precision: 4, Scale: 2}, true}}},
				row(Field{"d", Int(12)}), row(Field{"d", dec("5", 1)}), row(Field{"d", Int(100)})},
			want:   []Column{{"d", Type{Kind: TypeDecimal, Precision: 4, Scale: 2}, true}},
			errCol: "d", evolved: []bool{true, false, false}},
		{name: "decimal scale change is an error",
			changes: []*Change{row(Field{"d", dec("5", 1)}), {Table: "t", Op: OpInsert, Declared: []Column{{"d", Type{Kind: TypeDecimal, Precision: 10, Scale: 3}, true}}}},
			want:    []Column{{"d", Type{Kind: TypeDecimal, Precision: 38, Scale: 1}, true}},
			errCol:  "d", evolved: []bool{true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSchema()
			if tc.base != nil {
				committed := NewSchema()
				for _, c := range tc.base {
					require.NoError(t, committed.AddColumn(c))
				}
				s.Rebase(committed)
			}
			for i, ch := range tc.changes {
				before := s.Clone()
				evolved, err := s.Accept(ch)
				if tc.errCol != "" && i == len(tc.changes)-1 {
					var de *DecodeError
					require.ErrorAs(t, err, &de)
					require.Equal(t, tc.errCol, de.Field)
					require.Equal(t, ch.TableName(), de.Table)
					if !IsReserved(tc.errCol) {
						require.Contains(t, de.Reason, "expected")
					}
					require.Contains(t, de.Reason, tc.reason)
					require.True(t, before.Equal(s), "schema unchanged on error")
					continue
				}
				require.NoError(t, err)
				require.Equal(t, tc.evolved[i], evolved, "change %d", i)
			}
			require.Equal(t, tc.want, append([]Column(nil), s.Columns()...))
		})
	}
}

func TestSchemaClone(t *testing.T) {
	s := NewSchema()
	_, err := s.Accept(&Change{Table: "t", Row: []Field{{"a", Int(1)}}})
	require.NoError(t, err)
	c := s.Clone()
	_, err = c.Accept(&Change{Table: "t", Row: []Field{{"b", Int(1)}}})
	require.NoError(t, err)
	require.Len(t, s.Columns(), 1)
	require.Len(t, c.Columns(), 2)
}

func TestChangeSizeAndName(t *testing.T) {
	ch := Change{DB: "d", Table: "t", Row: []Field{{"a", String("hello")}}}
	require.Equal(t, "d.t", ch.TableName())
	require.Equal(t, rowMetaBytes+cellBytes+5, ch.Size())
	ch.Schema = "s"
	require.Equal(t, "d.s.t", ch.TableName())
}

// Rebase keeps the committed columns with their committed types, then the
// columns only the writer has; Check then finds the changes that no longer
// fit, naming the column and what the table's files hold.
func TestSchemaRebase(t *testing.T) {
	ours := NewSchema()
	for _, c := range []Column{
		{Name: "x", Type: Type{Kind: TypeLong}, Nullable: true},
		{Name: "mine", Type: Type{Kind: TypeDouble}, Nullable: true},
		{Name: "y", Type: Type{Kind: TypeDouble}, Nullable: true},
	} {
		require.NoError(t, ours.AddColumn(c))
	}
	theirs := NewSchema()
	for _, c := range []Column{
		{Name: "y", Type: Type{Kind: TypeLong}, Nullable: true},
		{Name: "x", Type: Type{Kind: TypeString}, Nullable: true},
		{Name: "theirs", Type: Type{Kind: TypeBoolean}, Nullable: true},
	} {
		require.NoError(t, theirs.AddColumn(c))
	}
	theirs.SetKafkaColumns(true)
	ours.Rebase(theirs)
	require.Equal(t, []Column{
		{Name: "y", Type: Type{Kind: TypeLong}, Nullable: true},
		{Name: "x", Type: Type{Kind: TypeString}, Nullable: true},
		{Name: "theirs", Type: Type{Kind: TypeBoolean}, Nullable: true},
		{Name: "mine", Type: Type{Kind: TypeDouble}, Nullable: true},
	}, ours.Columns())
	require.True(t, ours.KafkaColumns())
	require.True(t, ours.Committed("x"))
	require.False(t, ours.Committed("mine"))
	require.False(t, theirs.Committed("x"), "the committed schema is not modified")

	ch := Change{Topic: "cdc", Partition: 1, Offset: 9, Table: "users", Row: []Field{{"x", Int(1)}, {"y", Int(2)}, {"mine", Float(0.5)}}}
	require.NoError(t, ours.Check(&ch), "a long fits a string column as text, and a long column")
	ch.Row[1].Value = Float(2.5)
	err := ours.Check(&ch)
	var de *DecodeError
	require.ErrorAs(t, err, &de)
	require.Equal(t, "y", de.Field)
	require.Contains(t, err.Error(), "record cdc/1@9 table users field y: expected long, got float: the table's files hold column \"y\" as long")

	c := ours.Clone()
	require.True(t, c.Committed("y"), "Clone keeps what is committed")
}

// dec is a decimal literal: dec("1234", 2) is 12.34.
func dec(s string, scale int32) Value {
	u, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic("bad decimal literal in test: " + s)
	}
	return DecimalFromBig(u, scale)
}

// TestCoerces compares coerces with Coerce's ok on values of every kind in
// columns of every type, including integers outside int32, decimals too
// wide or too fine for the column, and NaN.
func TestCoerces(t *testing.T) {
	values := []Value{
		Null(), Bool(true), Int(0), Int(math.MaxInt32), Int(math.MaxInt32 + 1), Int(math.MinInt32 - 1), Int(math.MinInt64),
		Float(2.5), Float(math.NaN()), Float(math.Inf(1)), String("x"), String(""), BinaryString("\x00\xff"), JSON(`{"a":1}`),
		DecimalFromInt64(12345, 2), DecimalFromInt64(-1, 0), DecimalFromInt64(123456789012, 5), DecimalFromInt64(5, 9),
		Date(-1), Timestamp(1700000000000),
	}
	types := []Type{
		{Kind: TypeLong}, {Kind: TypeInteger}, {Kind: TypeDouble}, {Kind: TypeBoolean}, {Kind: TypeString},
		{Kind: TypeBinary}, {Kind: TypeDate}, {Kind: TypeTimestamp}, {Kind: TypeJSON},
		{Kind: TypeDecimal, Precision: 10, Scale: 2}, {Kind: TypeDecimal, Precision: 4, Scale: 2}, {Kind: TypeDecimal, Precision: 38, Scale: 9},
	}
	for _, ty := range types {
		for _, v := range values {
			_, want := Coerce(v, ty)
			require.Equal(t, want, coerces(v, ty), "%#v in %s", v, ty.Name())
		}
	}
	// A type coerces does not know refuses everything but null, as Coerce
	// does.
	require.False(t, coerces(Int(1), Type{Kind: TypeJSON + 1}))
	require.True(t, coerces(Null(), Type{Kind: TypeJSON + 1}))
}
