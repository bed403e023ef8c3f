package cdc

import (
	"encoding/base64"
	"errors"
	"math"
	"math/big"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
)

func decodeOne(t *testing.T, f codec.Format, key, value string) (codec.Change, error) {
	t.Helper()
	d, err := NewDecoder(f)
	require.NoError(t, err)
	var ch codec.Change
	rec := codec.Record{Topic: "srv.public.users", Partition: 2, Offset: 77, TimestampMs: 5000, Value: []byte(value)}
	if key != "" {
		rec.Key = []byte(key)
	}
	err = d.Decode(rec, &ch)
	return ch, err
}

func requireDecodeErr(t *testing.T, err error, field string) {
	t.Helper()
	var de *codec.DecodeError
	require.ErrorAs(t, err, &de)
	require.Equal(t, field, de.Field, de.Error())
	require.Equal(t, int64(77), de.Offset)
}

func TestDecodeEvoDB(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    string
		check func(t *testing.T, ch codec.Change)
		field string // expected DecodeError field; "" means success
		tomb  bool
	}{
		{name: "insert", in: `{"op":"INSERT","table":"users","data":{"id":1,"name":"ada","score":2.5,"ok":true,"n":null},"lsn":100,"ts":1700}`,
			check: func(t *testing.T, ch codec.Change) {
				require.Equal(t, codec.OpInsert, ch.Op)
				require.Equal(t, "users", ch.Table)
				require.Equal(t, "users", ch.TableName())
				require.Equal(t, uint64(100), ch.LSN)
				require.Equal(t, int64(1700), ch.TS)
				require.Equal(t, []codec.Field{{Name: "id", Value: codec.Int(1)}, {Name: "name", Value: codec.String("ada")}, {Name: "score", Value: codec.Float(2.5)}, {Name: "ok", Value: codec.Bool(true)}, {Name: "n", Value: codec.Null()}}, ch.Row)
				require.Equal(t, "srv.public.users", ch.Topic)
				require.Equal(t, int32(2), ch.Partition)
				require.Equal(t, int64(77), ch.Offset)
			}},
		{name: "lsn above 2^53 exact", in: `{"op":"UPDATE","table":"t","data":{},"lsn":18014398509481985}`,
			check: func(t *testing.T, ch codec.Change) { require.Equal(t, uint64(18014398509481985), ch.LSN) }},
		{name: "lsn decimal string", in: `{"op":"update","table":"t","data":{},"lsn":"9223372036854775807"}`,
			check: func(t *testing.T, ch codec.Change) { require.Equal(t, uint64(9223372036854775807), ch.LSN) }},
		{name: "ts defaults to kafka time", in: `{"op":"INSERT","table":"t","data":{},"lsn":1}`,
			check: func(t *testing.T, ch codec.Change) { require.Equal(t, int64(5000), ch.TS) }},
		{name: "delete uses before", in: `{"op":"DELETE","table":"t","data":{"id":1},"before":{"id":1,"name":"x"},"lsn":1}`,
			check: func(t *testing.T, ch codec.Change) {
				require.Equal(t, codec.OpDelete, ch.Op)
				require.Equal(t, []codec.Field{{Name: "id", Value: codec.Int(1)}, {Name: "name", Value: codec.String("x")}}, ch.Row)
			}},
		{name: "delete with only before", in: `{"before":{"id":1},"op":"DELETE","table":"t","lsn":1}`,
			check: func(t *testing.T, ch codec.Change) {
				require.Equal(t, []codec.Field{{Name: "id", Value: codec.Int(1)}}, ch.Row)
			}},
		{name: "update ignores before", in: `{"op":"UPDATE","table":"t","data":{"a":2},"before":{"a":1},"lsn":1}`,
			check: func(t *testing.T, ch codec.Change) {
				require.Equal(t, []codec.Field{{Name: "a", Value: codec.Int(2)}}, ch.Row)
			}},
		{name: "nested and big ints", in: `{"op":"INSERT","table":"t","lsn":1,"data":{"o":{"x":[1, {"y":"z"}]},"a":[],"big":18446744073709551616,"neg":-9223372036854775808,"e":1e3}}`,
			check: func(t *testing.T, ch codec.Change) {
				require.Equal(t, []codec.Field{{Name: "o", Value: codec.JSON(`{"x":[1, {"y":"z"}]}`)}, {Name: "a", Value: codec.JSON(`[]`)},
					{Name: "big", Value: codec.Float(18446744073709551616)}, {Name: "neg", Value: codec.Int(-9223372036854775808)}, {Name: "e", Value: codec.Float(1000)}}, ch.Row)
			}},
		{name: "escapes and unicode", in: `{"op":"INSERT","table":"t","lsn":1,"data":{"s":"a\"b\\c\n\u00e9\ud83d\ude80","u":"世界","":""}}`,
			check: func(t *testing.T, ch codec.Change) {
				require.Equal(t, []codec.Field{{Name: "s", Value: codec.String("a\"b\\c\né🚀")}, {Name: "u", Value: codec.String("世界")}, {Name: "", Value: codec.String("")}}, ch.Row)
			}},
		{name: "unknown keys skipped", in: `{"x":{"y":[1,2]},"op":"INSERT","table":"t","data":{},"lsn":0}`,
			check: func(t *testing.T, ch codec.Change) { require.Equal(t, uint64(0), ch.LSN) }},
		{name: "null value is a tombstone", in: `null`, tomb: true},
		{name: "empty value is a tombstone", in: ``, tomb: true},
		{name: "largest lsn", in: `{"op":"INSERT","table":"t","data":{},"lsn":9223372036854775807,"ts":-9223372036854775808}`,
			check: func(t *testing.T, ch codec.Change) {
				require.Equal(t, uint64(math.MaxInt64), ch.LSN)
				require.Equal(t, int64(math.MinInt64), ch.TS)
			}},
		{name: "lsn as a string", in: `{"op":"INSERT","table":"t","data":{},"lsn":"9223372036854775807"}`,
			check: func(t *testing.T, ch codec.Change) { require.Equal(t, uint64(math.MaxInt64), ch.LSN) }},
		{name: "negative lsn", in: `{"op":"INSERT","table":"t","data":{},"lsn":-1}`, field: "lsn"},
		{name: "negative zero lsn", in: `{"op":"INSERT","table":"t","data":{},"lsn":-0}`, field: "lsn"},
		{name: "ts beyond int64", in: `{"op":"INSERT","table":"t","data":{},"lsn":1,"ts":9223372036854775808}`, field: "ts"},
		{name: "fractional lsn", in: `{"op":"INSERT","table":"t","data":{},"lsn":1.5}`, field: "lsn"},
		{name: "lsn beyond int64", in: `{"op":"INSERT","table":"t","data":{},"lsn":9223372036854775808}`, field: "lsn"},
		{name: "lsn bad string", in: `{"op":"INSERT","table":"t","data":{},"lsn":"12a"}`, field: "lsn"},
		{name: "missing lsn", in: `{"op":"INSERT","table":"t","data":{}}`, field: "lsn"},
		{name: "unknown op", in: `{"op":"UPSERT","table":"t","data":{},"lsn":1}`, field: "op"},
		{name: "missing op", in: `{"table":"t","data":{},"lsn":1}`, field: "op"},
		{name: "missing table", in: `{"op":"INSERT","data":{},"lsn":1}`, field: "table"},
		{name: "empty table", in: `{"op":"INSERT","table":"","data":{},"lsn":1}`, field: "table"},
		{name: "data not object", in: `{"op":"INSERT","table":"t","data":[1],"lsn":1}`, field: "data"},
		{name: "data missing", in: `{"op":"INSERT","table":"t","lsn":1}`, field: "data"},
		{name: "bad ts", in: `{"op":"INSERT","table":"t","data":{},"lsn":1,"ts":"x"}`, field: "ts"},
		{name: "number out of range", in: `{"op":"INSERT","table":"t","data":{"x":1e999},"lsn":1}`, field: "data"},
		{name: "truncated", in: `{"op":"INSERT","table":"t","data":{"a":1`, field: "data"},
		{name: "trailing garbage", in: `{"op":"INSERT","table":"t","data":{},"lsn":1} x`, field: ""},
		{name: "not an object", in: `[1]`, field: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch, err := decodeOne(t, FormatEvoDB, "", tc.in)
			switch {
			case tc.tomb:
				require.ErrorIs(t, err, ErrTombstone)
			case tc.check != nil:
				require.NoError(t, err)
				tc.check(t, ch)
			default:
				requireDecodeErr(t, err, tc.field)
			}
		})
	}
}

func b64(b ...byte) string { return base64.StdEncoding.EncodeToString(b) }

const dbzSchema = `{"type":"struct","name":"srv.public.users.Envelope","fields":[
 {"type":"struct","optional":true,"field":"before","name":"srv.public.users.Value","fields":[
  {"type":"int32","optional":false,"field":"id"},{"type":"string","optional":true,"field":"name"}]},
 {"type":"struct","optional":true,"field":"after","name":"srv.public.users.Value","fields":[
  {"type":"int32","optional":false,"field":"id"},
  {"type":"int16","optional":true,"field":"small"},
  {"type":"int64","optional":true,"field":"big"},
  {"type":"float","optional":true,"field":"f32"},
  {"type":"double","optional":true,"field":"f64"},
  {"type":"boolean","optional":true,"field":"ok"},
  {"type":"string","optional":true,"field":"name"},
  {"type":"bytes","optional":true,"field":"raw"},
  {"type":"int32","optional":true,"name":"io.debezium.time.Date","field":"born"},
  {"type":"int64","optional":true,"name":"io.debezium.time.Timestamp","field":"ts_ms_col"},
  {"type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp","field":"ts_us"},
  {"type":"int64","optional":true,"name":"io.debezium.time.NanoTimestamp","field":"ts_ns"},
  {"type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp","field":"ts_z"},
  {"type":"int64","optional":true,"name":"io.debezium.time.MicroTime","field":"t_us"},
  {"type":"int32","optional":true,"name":"io.debezium.time.Time","field":"t_ms"},
  {"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2","connect.decimal.precision":"10"},"field":"price"},
  {"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"1"},"field":"num"},
  {"type":"struct","optional":true,"name":"io.debezium.data.VariableScaleDecimal","fields":[{"type":"int32","field":"scale"},{"type":"bytes","field":"value"}],"field":"vsd"},
  {"type":"string","optional":true,"name":"io.debezium.data.Json","field":"doc"},
  {"type":"string","optional":true,"name":"io.debezium.data.Uuid","field":"uid"},
  {"type":"array","optional":true,"items":{"type":"string"},"field":"tags"}]},
 {"type":"struct","field":"source","fields":[]},
 {"type":"string","field":"op"},{"type":"int64","optional":true,"field":"ts_ms"}]}`

func TestDecodeDebezium(t *testing.T) {
	source := `"source":{"db":"shop","schema":"public","table":"users","lsn":18014398509481985,"ts_ms":1700000000000}`
	typedAfter := `{"id":1,"small":-3,"big":9007199254740993,"f32":1.5,"f64":"NaN","ok":false,"name":"ada","raw":"` + b64(0, 255) + `",` +
		`"born":19000,"ts_ms_col":1700000000123,"ts_us":-1,"ts_ns":1700000000123456789,"ts_z":"2023-11-14T23:13:20.5+01:00",` +
		`"t_us":3600000000,"t_ms":1000,"price":"` + b64(0x30, 0x39) + `","num":-12.3,"vsd":{"scale":3,"value":"` + b64(0xff) + `"},` +
		`"doc":"{\"a\":1}","uid":"0b7a","tags":["x","y"]}`
	for _, tc := range []struct {
		name       string
		key, value string
		check      func(t *testing.T, ch codec.Change)
		field      string
		tomb       bool
	}{
		{name: "bare insert", value: `{"before":null,"after":{"id":1,"name":"ada","obj":{"k":[1]}},` + source + `,"op":"c","ts_ms":1}`,
			check: func(t *testing.T, ch codec.Change) {
				require.Equal(t, codec.OpInsert, ch.Op)
				require.Equal(t, "shop.public.users", ch.TableName())
				require.Equal(t, uint64(18014398509481985), ch.LSN)
				require.Equal(t, int64(1700000000000), ch.TS)
				require.Nil(t, ch.Declared)
				require.Equal(t, []codec.Field{{Name: "id", Value: codec.Int(1)}, {Name: "name", Value: codec.String("ada")}, {Name: "obj", Value: codec.JSON(`{"k":[1]}`)}}, ch.Row)
			}},
		{name: "wrapped typed", value: `{"schema":` + dbzSchema + `,"payload":{"before":null,"after":` + typedAfter + `,` + source + `,"op":"r"}}`,
			check: func(t *testing.T, ch codec.Change) {
				require.Equal(t, codec.OpSnapshot, ch.Op)
				require.NotNil(t, ch.Declared)
				get := ch.Get
				require.Equal(t, codec.Int(1), get("id"))
				require.Equal(t, codec.Int(-3), get("small"))
				require.Equal(t, codec.Int(9007199254740993), get("big"))
				require.Equal(t, codec.Float(1.5), get("f32"))
				require.Equal(t, codec.KindFloat, get("f64").Kind())
				require.Equal(t, codec.Bool(false), get("ok"))
				require.Equal(t, codec.Binary([]byte{0, 255}), get("raw"))
				require.Equal(t, codec.Date(19000), get("born"))
				require.Equal(t, codec.Timestamp(1700000000123), get("ts_ms_col"))
				require.Equal(t, codec.Timestamp(-1), get("ts_us"))
				require.Equal(t, codec.Timestamp(1700000000123), get("ts_ns"))
				require.Equal(t, codec.Timestamp(1700000000500), get("ts_z"))
				require.Equal(t, codec.Int(3600000000), get("t_us"))
				require.Equal(t, codec.Int(1000000), get("t_ms"))
				require.Equal(t, "123.45", get("price").Text())
				require.Equal(t, int32(2), get("price").Scale())
				require.Equal(t, "-12.3", get("num").Text())
				require.Equal(t, codec.String("-0.001"), get("vsd"))
				require.Equal(t, codec.JSON(`{"a":1}`), get("doc"))
				require.Equal(t, codec.String("0b7a"), get("uid"))
				require.Equal(t, codec.JSON(`["x","y"]`), get("tags"))

				s := codec.NewSchema()
				_, err := s.Accept(&ch)
				require.NoError(t, err)
				c, _ := s.Column("price")
				require.Equal(t, codec.Type{Kind: codec.TypeDecimal, Precision: 10, Scale: 2}, c.Type)
				c, _ = s.Column("small")
				require.Equal(t, codec.Type{Kind: codec.TypeLong}, c.Type, "int16 is created as long")
				c, _ = s.Column("num")
				require.Equal(t, codec.Type{Kind: codec.TypeDecimal, Precision: 38, Scale: 1}, c.Type)
			}},
		{name: "delete uses before, key wrapped", key: `{"schema":{"type":"struct","fields":[{"type":"int32","field":"id"}]},"payload":{"id":7}}`,
			value: `{"schema":` + dbzSchema + `,"payload":{"before":{"id":7,"name":"x"},"after":null,` + source + `,"op":"d"}}`,
			check: func(t *testing.T, ch codec.Change) {
				require.Equal(t, codec.OpDelete, ch.Op)
				require.Equal(t, []codec.Field{{Name: "id", Value: codec.Int(7)}, {Name: "name", Value: codec.String("x")}}, ch.Row)
				require.Equal(t, []codec.Field{{Name: "id", Value: codec.Int(7)}}, ch.Key)
			}},
		{name: "delete without before uses key", key: `{"id":7}`,
			value: `{"before":null,"after":null,` + source + `,"op":"d"}`,
			check: func(t *testing.T, ch codec.Change) {
				require.Equal(t, []codec.Field{{Name: "id", Value: codec.Int(7)}}, ch.Row)
				require.Equal(t, []codec.Field{{Name: "id", Value: codec.Int(7)}}, ch.Key)
			}},
		{name: "mysql file and pos", value: `{"after":{"id":1},"source":{"db":"inv","table":"orders","file":"mysql-bin.000003","pos":154,"ts_ms":10},"op":"u"}`,
			check: func(t *testing.T, ch codec.Change) {
				require.Equal(t, uint64(3)<<32|154, ch.LSN)
				require.Equal(t, "inv.orders", ch.TableName())
				require.Equal(t, codec.OpUpdate, ch.Op)
			}},
		{name: "oracle scn", value: `{"after":{"id":1},"source":{"table":"T","scn":"123456789"},"op":"c"}`,
			check: func(t *testing.T, ch codec.Change) { require.Equal(t, uint64(123456789), ch.LSN) }},
		{name: "fallback ordering key", value: `{"after":{"id":1},"source":{"table":"T","ts_ms":3},"op":"c"}`,
			check: func(t *testing.T, ch codec.Change) { require.Equal(t, uint64(3)<<20|77, ch.LSN) }},
		{name: "table from topic", value: `{"after":{"id":1},"op":"c","ts_ms":9}`,
			check: func(t *testing.T, ch codec.Change) {
				require.Equal(t, "users", ch.Table)
				require.Equal(t, int64(9), ch.TS)
			}},
		{name: "null value tombstone", value: ``, tomb: true},
		{name: "null payload tombstone", value: `{"schema":null,"payload":null}`, tomb: true},
		{name: "unknown op", value: `{"after":{},` + source + `,"op":"t"}`, field: "op"},
		{name: "missing op", value: `{"after":{},` + source + `}`, field: "op"},
		{name: "missing after", value: `{"before":null,` + source + `,"op":"c"}`, field: "after"},
		{name: "negative lsn", value: `{"after":{},"source":{"table":"t","lsn":-5},"op":"c"}`, field: "source.lsn"},
		{name: "wrong typed value", value: `{"schema":` + dbzSchema + `,"payload":{"after":{"id":"x"},` + source + `,"op":"c"}}`, field: "after"},
		{name: "int32 overflow", value: `{"schema":` + dbzSchema + `,"payload":{"after":{"id":2147483648},` + source + `,"op":"c"}}`, field: "after"},
		{name: "bad base64", value: `{"schema":` + dbzSchema + `,"payload":{"after":{"id":1,"raw":"!!"},` + source + `,"op":"c"}}`, field: "after"},
		{name: "bad zoned", value: `{"schema":` + dbzSchema + `,"payload":{"after":{"id":1,"ts_z":"yesterday"},` + source + `,"op":"c"}}`, field: "after"},
		{name: "decimal too many digits", value: `{"schema":` + dbzSchema + `,"payload":{"after":{"id":1,"num":1.25},` + source + `,"op":"c"}}`, field: "after"},
		{name: "bad schema", value: `{"schema":{"type":"struct","fields":[{"type":"struct","field":"after","fields":[{"type":"weird","field":"x"}]}]},"payload":{"after":{},` + source + `,"op":"c"}}`, field: "schema"},
		{name: "broken JSON key kept opaque", key: `{"id":`, value: `{"after":{"id":1},` + source + `,"op":"c"}`,
			check: func(t *testing.T, ch codec.Change) {
				require.Equal(t, []codec.Field{{Name: "id", Value: codec.Int(1)}}, ch.Row)
				require.Equal(t, []codec.Field{{Name: codec.OpaqueKey, Value: codec.Binary([]byte(`{"id":`))}}, ch.Key)
				require.True(t, ch.HasOpaqueKey())
			}},
		{name: "string converter key kept opaque", key: `Struct{id=1}`, value: `{"after":{"id":1},` + source + `,"op":"u"}`,
			check: func(t *testing.T, ch codec.Change) {
				require.Equal(t, codec.OpUpdate, ch.Op)
				require.Equal(t, []codec.Field{{Name: codec.OpaqueKey, Value: codec.Binary([]byte(`Struct{id=1}`))}}, ch.Key)
			}},
		{name: "JSON scalar key kept opaque", key: `42`, value: `{"after":{"id":42},` + source + `,"op":"c"}`,
			check: func(t *testing.T, ch codec.Change) {
				require.Equal(t, []codec.Field{{Name: codec.OpaqueKey, Value: codec.Binary([]byte(`42`))}}, ch.Key)
			}},
		{name: "delete without before, opaque key", key: `users:42`, value: `{"before":null,"after":null,` + source + `,"op":"d"}`,
			check: func(t *testing.T, ch codec.Change) {
				require.Equal(t, codec.OpDelete, ch.Op)
				require.Empty(t, ch.Row, "an opaque key names no column, so it is not a row")
				require.Equal(t, []codec.Field{{Name: codec.OpaqueKey, Value: codec.Binary([]byte(`users:42`))}}, ch.Key)
			}},
		{name: "bad value with opaque key", key: `users:42`, value: `{"after":{},` + source + `,"op":"t"}`, field: "op"},
		{name: "not json", value: `nope`, field: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch, err := decodeOne(t, FormatDebezium, tc.key, tc.value)
			switch {
			case tc.tomb:
				require.ErrorIs(t, err, ErrTombstone)
			case tc.check != nil:
				require.NoError(t, err)
				tc.check(t, ch)
			default:
				requireDecodeErr(t, err, tc.field)
			}
		})
	}
}

func TestNewDecoderUnknown(t *testing.T) {
	_, err := NewDecoder("avro")
	require.Error(t, err)
}

// codec.Format.Envelope names these formats by their values, since codec
// does not import the decoders: renaming one must not go unnoticed.
func TestFormatEnvelope(t *testing.T) {
	require.Equal(t, "an evodb envelope", FormatEvoDB.Envelope())
	require.Equal(t, "a Debezium envelope", FormatDebezium.Envelope())
}

// A record key is metadata: whatever its bytes, a valid value decodes.
// Debezium keeps a key without column names as opaque bytes, also when
// decoding borrows the record's memory; evodb does not read keys.
func TestDecodeOpaqueKeys(t *testing.T) {
	evo := `{"op":"INSERT","table":"users","data":{"id":42},"lsn":7}`
	dbz := `{"after":{"id":42},"source":{"table":"users","lsn":7},"op":"c"}`
	for _, key := range []string{`users:42`, `Struct{id=42}`, `"42"`, `{"id":`, "\xff\x00"} {
		t.Run(key, func(t *testing.T) {
			ch, err := decodeOne(t, FormatEvoDB, key, evo)
			require.NoError(t, err)
			require.Equal(t, []codec.Field{{Name: "id", Value: codec.Int(42)}}, ch.Row)

			d, err := NewDecoder(FormatDebezium)
			require.NoError(t, err)
			rec := codec.Record{Topic: "t", Key: []byte(key), Value: []byte(dbz)}
			var dst codec.Change
			for range 2 {
				require.NoError(t, d.(BorrowingDecoder).DecodeBorrowed(rec, &dst))
				require.Equal(t, []codec.Field{{Name: "id", Value: codec.Int(42)}}, dst.Row)
				require.Equal(t, []codec.Field{{Name: codec.OpaqueKey, Value: codec.Binary([]byte(key))}}, dst.Key)
			}
		})
	}
}

// Invalid UTF-8 is a record error at every depth, naming the column,
// never rewritten and never stored: string values, names, nested objects
// and arrays, escaped strings, and Debezium's typed string and JSON
// columns. Escapes (a lone surrogate included) are valid JSON and decode.
func TestDecodeInvalidUTF8(t *testing.T) {
	const bad = "\xff\xfe"
	evo := func(data string) string {
		return `{"op":"INSERT","table":"users","data":` + data + `,"lsn":7}`
	}
	dbz := func(after string) string {
		return `{"schema":` + dbzSchema + `,"payload":{"after":` + after + `,"source":{"table":"users","lsn":7},"op":"c"}}`
	}
	for _, tc := range []struct {
		name   string
		format codec.Format
		value  string
		field  string // the failing field; "" with reason "" means the record decodes
		reason string
	}{
		{"evodb top-level string", FormatEvoDB, evo(`{"id":1,"name":"a` + bad + `"}`), "data", `column "name": string is not valid UTF-8`},
		{"evodb escaped string", FormatEvoDB, evo(`{"name":"\n` + bad + `"}`), "data", `column "name": string is not valid UTF-8`},
		{"evodb nested object", FormatEvoDB, evo(`{"doc":{"k":"` + bad + `"}}`), "data", `column "doc": string is not valid UTF-8`},
		{"evodb nested key", FormatEvoDB, evo(`{"doc":{"` + bad + `":1}}`), "data", `column "doc": string is not valid UTF-8`},
		{"evodb nested array", FormatEvoDB, evo(`{"tags":[1,["` + bad + `"]]}`), "data", `column "tags": string is not valid UTF-8`},
		{"evodb column name", FormatEvoDB, evo(`{"n` + bad + `":1}`), "data", "string is not valid UTF-8"},
		{"evodb table name", FormatEvoDB, `{"op":"INSERT","table":"u` + bad + `","data":{},"lsn":7}`, "table", "not a string"},
		{"evodb unused field", FormatEvoDB, `{"op":"INSERT","table":"users","data":{"id":1},"lsn":7,"extra":"` + bad + `"}`, "", ""},
		{"evodb lone surrogate escape", FormatEvoDB, evo(`{"name":"\ud800","doc":{"k":"\ud800"}}`), "", ""},
		{"debezium inferred", FormatDebezium, `{"after":{"name":"` + bad + `"},"source":{"table":"users","lsn":7},"op":"c"}`, "after", `column "name": string is not valid UTF-8`},
		{"debezium inferred nested", FormatDebezium, `{"after":{"o":{"a":["` + bad + `"]}},"source":{"table":"users","lsn":7},"op":"c"}`, "after", `column "o": string is not valid UTF-8`},
		{"debezium typed string", FormatDebezium, dbz(`{"id":1,"name":"` + bad + `"}`), "after", `column "name": string is not valid UTF-8`},
		{"debezium JSON text", FormatDebezium, dbz(`{"id":1,"doc":"{\"a\":\"` + bad + `\"}"}`), "after", `column "doc": string is not valid UTF-8`},
		{"debezium struct", FormatDebezium, dbz(`{"id":1,"tags":["` + bad + `"]}`), "after", `column "tags": string is not valid UTF-8`},
		{"debezium unused before", FormatDebezium, `{"before":{"name":"` + bad + `"},"after":{"name":"ok"},"source":{"table":"users","lsn":7},"op":"u"}`, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch, err := decodeOne(t, tc.format, "", tc.value)
			if tc.reason == "" {
				require.NoError(t, err)
				for _, f := range ch.Row {
					require.True(t, utf8.ValidString(f.Value.Str()), "column %s", f.Name)
				}
				return
			}
			requireDecodeErr(t, err, tc.field)
			require.Contains(t, err.Error(), tc.reason)
			require.True(t, utf8.ValidString(err.Error()), "the error text goes into a DLQ header")
		})
	}
}

func TestDecodeErrorIsTyped(t *testing.T) {
	_, err := decodeOne(t, FormatEvoDB, "", `{"op":"X"}`)
	var de *codec.DecodeError
	require.True(t, errors.As(err, &de))
	require.Contains(t, de.Error(), "srv.public.users/2@77")
}

func TestValueDecimal(t *testing.T) {
	for _, s := range []string{"0", "1", "-1", "127", "128", "-128", "-129", "255", "99999999999999999999999999999999999999", "-99999999999999999999999999999999999999"} {
		u, _ := new(big.Int).SetString(s, 10)
		v := codec.DecimalFromBig(u, 0)
		require.Equal(t, 0, u.Cmp(v.Unscaled()), s)
		require.Equal(t, s, v.Text())
	}
	require.Equal(t, "-0.05", codec.DecimalFromBig(big.NewInt(-5), 2).Text())
}

// A record of the other built-in format fails to decode, and the error says
// which envelope it has, so the operator fixes the topic's format instead
// of diverting every record.
func TestDecodeErrorNamesTheOtherEnvelope(t *testing.T) {
	const (
		dbz        = `{"before":null,"after":{"id":1},"source":{"db":"shop","table":"users","lsn":5},"op":"c","ts_ms":1}`
		dbzWrapped = `{"schema":null,"payload":` + dbz + `}`
		evo        = `{"op":"INSERT","table":"users","data":{"id":1},"lsn":100}`
	)
	for _, tc := range []struct {
		name   string
		format codec.Format
		value  string
		want   codec.Format
	}{
		{name: "debezium read as evodb", format: FormatEvoDB, value: dbz, want: FormatDebezium},
		{name: "wrapped debezium read as evodb", format: FormatEvoDB, value: dbzWrapped, want: FormatDebezium},
		{name: "evodb read as debezium", format: FormatDebezium, value: evo, want: FormatEvoDB},
		{name: "broken evodb", format: FormatEvoDB, value: `{"op":"INSERT","table":"users","data":{"id":1},"lsn":-1}`},
		{name: "broken debezium", format: FormatDebezium, value: `{"after":{"id":1},"op":"x"}`},
		{name: "not json", format: FormatEvoDB, value: `hello`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeOne(t, tc.format, "", tc.value)
			var de *codec.DecodeError
			require.ErrorAs(t, err, &de)
			require.Equal(t, tc.want, de.LooksLike)
			if tc.want == "" {
				require.NotContains(t, err.Error(), "looks like")
				return
			}
			require.Contains(t, err.Error(), "(this looks like "+tc.want.Envelope()+")")
		})
	}
}

// AppendEvoDB renders a change as an evodb record that decodes back to the
// same values (JSON text, escapes and exact decimals included).
func TestAppendEvoDB(t *testing.T) {
	in := codec.Change{Table: "users", Op: codec.OpSnapshot, LSN: 1<<62 + 1, TS: 1700000000000, Row: []codec.Field{
		{Name: "id", Value: codec.Int(-7)}, {Name: "name", Value: codec.String("a \"quoted\"\n\\ name")}, {Name: "f", Value: codec.Float(0.25)}, {Name: "nan", Value: codec.Float(math.NaN())},
		{Name: "ok", Value: codec.Bool(true)}, {Name: "doc", Value: codec.JSON(`{"k":[1,"x"]}`)}, {Name: "price", Value: codec.Decimal([]byte{0x30, 0x39}, 2)}, {Name: "none", Value: codec.Null()},
	}}
	text := AppendEvoDB(nil, &in)
	out, err := decodeOne(t, FormatEvoDB, "", string(text))
	require.NoError(t, err, "%s", text)
	require.Equal(t, codec.OpInsert, out.Op)
	require.Equal(t, in.LSN, out.LSN)
	require.Equal(t, in.TS, out.TS)
	require.Equal(t, "users", out.Table)
	for _, f := range in.Row {
		got := out.Get(f.Name)
		switch f.Name {
		case "nan":
			require.Equal(t, codec.String("NaN"), got)
		case "price":
			require.Equal(t, "123.45", got.Text())
		default:
			require.Equal(t, f.Value, got, f.Name)
		}
	}
}
