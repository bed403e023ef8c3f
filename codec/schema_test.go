package codec

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSchemaAccept(t *testing.T) {
	row := func(fs ...Field) *Change { return &Change{Table: "t", Schema: "s", Op: OpInsert, Row: fs} }
	for _, tc := range []struct {
		name    string
		changes []*Change
		want    []Column // final columns
		errCol  string   // the last change fails on this column
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
		{name: "declared integer widens to long",
			changes: []*Change{
				{Table: "t", Op: OpInsert, Declared: []Column{{"i", Type{Kind: TypeInteger}, true}}},
				{Table: "t", Op: OpInsert, Declared: []Column{{"i", Type{Kind: TypeLong}, true}}},
				{Table: "t", Op: OpInsert, Declared: []Column{{"i", Type{Kind: TypeInteger}, true}}}},
			want:    []Column{{"i", Type{Kind: TypeLong}, true}},
			evolved: []bool{true, true, false}},
		{name: "integer column widens on a large value",
			changes: []*Change{{Table: "t", Op: OpInsert, Declared: []Column{{"i", Type{Kind: TypeInteger}, true}}}, row(Field{"i", Int(1 << 40)})},
			want:    []Column{{"i", Type{Kind: TypeLong}, true}},
			evolved: []bool{true, true}},
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
			for i, ch := range tc.changes {
				before := s.Clone()
				evolved, err := s.Accept(ch)
				if tc.errCol != "" && i == len(tc.changes)-1 {
					var de *DecodeError
					require.ErrorAs(t, err, &de)
					require.Equal(t, tc.errCol, de.Field)
					require.Equal(t, ch.TableName(), de.Table)
					if !isReserved(tc.errCol) {
						require.Contains(t, de.Reason, "expected")
					}
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

func TestDeltaSchemaRoundTrip(t *testing.T) {
	s := NewSchema()
	for _, c := range []Column{
		{"l", Type{Kind: TypeLong}, true}, {"i", Type{Kind: TypeInteger}, true}, {"d", Type{Kind: TypeDouble}, true},
		{"b", Type{Kind: TypeBoolean}, true}, {"s", Type{Kind: TypeString}, true}, {"bin", Type{Kind: TypeBinary}, true},
		{"dt", Type{Kind: TypeDate}, true}, {"ts", Type{Kind: TypeTimestamp}, true},
		{"dec", Type{Kind: TypeDecimal, Precision: 12, Scale: 3}, true}, {"j", Type{Kind: TypeJSON}, true},
	} {
		require.NoError(t, s.AddColumn(c))
	}
	s.SetKafkaColumns(true)
	js, err := s.DeltaSchemaJSON()
	require.NoError(t, err)
	require.Contains(t, js, `{"name":"_ts","type":"timestamp","nullable":false,"metadata":{}}`)
	require.Contains(t, js, `{"name":"dec","type":"decimal(12,3)","nullable":true,"metadata":{}}`)
	require.Contains(t, js, `{"name":"j","type":"string","nullable":true,"metadata":{"evodb.type":"json"}}`)
	back, err := ParseDeltaSchema(js)
	require.NoError(t, err)
	require.True(t, s.Equal(back))
	require.True(t, back.KafkaColumns())

	for _, bad := range []string{`x`, `{"type":"array"}`, `{"type":"struct","fields":[{"name":"a","type":{"type":"struct"}}]}`,
		`{"type":"struct","fields":[{"name":"a","type":"interval"}]}`, `{"type":"struct","fields":[{"name":"a","type":"decimal(50,2)"}]}`} {
		_, err := ParseDeltaSchema(bad)
		require.Error(t, err, bad)
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
