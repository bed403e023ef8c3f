package confluent

import (
	"context"
	"errors"
	"io"
	"math/big"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bufbuild/protocompile"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
)

// registerProto registers a Protobuf schema under subject and returns its
// ID.
func (f *fixture) registerProto(subject, schema string, refs ...sr.SchemaReference) int {
	f.t.Helper()
	id, _, err := f.fake.RegisterSchema(subject, sr.Schema{Schema: schema, Type: sr.TypeProtobuf, References: refs})
	require.NoError(f.t, err)
	return id
}

// encodeProto returns the message named msg, given as protojson text, in
// the Confluent wire format under schema ID id and message index index.
// The bytes come from google.golang.org/protobuf's own marshaling of a
// dynamic message, so the decoder is checked against an independent
// implementation of the format.
func (f *fixture) encodeProto(id int, index []int, schema string, refs map[string]string, msg, jsonText string) []byte {
	f.t.Helper()
	md := protoDescriptor(f.t, schema, refs, msg)
	m := dynamicpb.NewMessage(md)
	require.NoError(f.t, protojson.Unmarshal([]byte(jsonText), m))
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	require.NoError(f.t, err)
	var h sr.ConfluentHeader
	out, err := h.AppendEncode(nil, id, index)
	require.NoError(f.t, err)
	if len(index) == 0 {
		out = append(out, 0)
	}
	return append(out, body...)
}

func protoDescriptor(t testing.TB, schema string, refs map[string]string, msg string) protoreflect.MessageDescriptor {
	t.Helper()
	access := func(path string) (io.ReadCloser, error) {
		if path == "root.proto" {
			return io.NopCloser(strings.NewReader(schema)), nil
		}
		if s, ok := refs[path]; ok {
			return io.NopCloser(strings.NewReader(s)), nil
		}
		if s, ok := builtinProtos[path]; ok {
			return io.NopCloser(strings.NewReader(s)), nil
		}
		return nil, os.ErrNotExist
	}
	c := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{Accessor: access})}
	files, err := c.Compile(context.Background(), "root.proto")
	require.NoError(t, err)
	d := files[0].FindDescriptorByName(protoreflect.FullName(msg))
	require.NotNil(t, d, "message %s", msg)
	return d.(protoreflect.MessageDescriptor)
}

const protoPlainSchema = `syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
import "google/type/date.proto";
import "google/type/decimal.proto";
import "confluent/meta.proto";
import "confluent/type/decimal.proto";

message Order {
  enum Status { UNKNOWN = 0; NEW = 1; SHIPPED = 2; }
  message Addr { string city = 1; optional int32 zip = 2; }
  string op = 1;
  int64 lsn = 2;
  google.protobuf.Timestamp ts = 3;
  int64 id = 4;
  int32 qty = 5;
  uint32 u32 = 6;
  sint32 s32 = 7;
  sint64 s64 = 8;
  fixed32 f32 = 9;
  sfixed64 sf64 = 10;
  uint64 u64 = 11;
  optional string name = 12;
  confluent.type.Decimal price = 13 [(confluent.field_meta) = { params: [ { key: "precision", value: "10" }, { key: "scale", value: "2" } ] }];
  google.type.Date day = 14;
  google.protobuf.Timestamp at = 15;
  bool ok = 16;
  double ratio = 17;
  float half = 18;
  bytes raw = 19;
  Status status = 20;
  repeated string tags = 21;
  repeated int32 nums = 22;
  map<string, int64> attrs = 23;
  Addr addr = 24;
  google.protobuf.StringValue note = 25;
  google.protobuf.Int64Value cnt = 26;
  google.type.Decimal exact = 27;
  confluent.type.Decimal loose = 28;
  string absent = 29;
  optional int64 maybe = 30;
  repeated Addr addrs = 31;
}
`

const protoPlainValue = `{
  "op": "UPDATE", "lsn": "42", "ts": "2023-11-14T22:13:20.123Z",
  "id": "7", "qty": -3, "u32": 4000000000, "s32": -5, "s64": "-6", "f32": 9, "sf64": "-10", "u64": "11",
  "name": "widget",
  "price": {"value": "B88=", "precision": 10, "scale": 2},
  "day": {"year": 2024, "month": 2, "day": 29},
  "at": "2023-11-14T22:13:20.123456Z",
  "ok": true, "ratio": 0.5, "half": 1.5, "raw": "AAEC", "status": "SHIPPED",
  "tags": ["a", "b"], "nums": [1, -2, 3], "attrs": {"x": "1"},
  "addr": {"city": "Oslo"},
  "note": "hi", "exact": {"value": "-12.345e2"}, "loose": {"value": "MDk=", "scale": 3},
  "addrs": [{"city": "A", "zip": 1}, {}]
}`

func TestProtobufPlainRecord(t *testing.T) {
	f := newFixture(t)
	id := f.registerProto("orders-value", protoPlainSchema)
	d := f.decoder(DecoderOptions{Value: FormatProtobuf})
	value := f.encodeProto(id, nil, protoPlainSchema, nil, "shop.Order", protoPlainValue)
	for _, borrow := range []bool{false, true} {
		rec := codec.Record{Topic: "shop.orders", Partition: 1, Offset: 9, Value: value, TimestampMs: 5}
		var ch codec.Change
		var err error
		if borrow {
			err = d.DecodeBorrowed(rec, &ch)
		} else {
			err = d.Decode(rec, &ch)
		}
		require.NoError(t, err)
		require.Equal(t, "orders", ch.Table, "no table field: the topic's last part")
		require.Equal(t, codec.OpUpdate, ch.Op)
		require.Equal(t, uint64(42), ch.LSN)
		require.Equal(t, int64(1700000000123), ch.TS)
		get := func(name string) string { return ch.Get(name).Text() }
		require.Equal(t, "7", get("id"))
		require.Equal(t, "-3", get("qty"))
		require.Equal(t, "4000000000", get("u32"))
		require.Equal(t, "-5", get("s32"))
		require.Equal(t, "-6", get("s64"))
		require.Equal(t, "9", get("f32"))
		require.Equal(t, "-10", get("sf64"))
		require.Equal(t, "11", get("u64"))
		require.Equal(t, "widget", get("name"))
		require.Equal(t, "19.99", get("price"))
		require.Equal(t, codec.KindDecimal, ch.Get("price").Kind())
		require.Equal(t, "2024-02-29", get("day"))
		require.Equal(t, "2023-11-14T22:13:20.123Z", get("at"))
		require.Equal(t, "true", get("ok"))
		require.Equal(t, "0.5", get("ratio"))
		require.Equal(t, "1.5", get("half"))
		require.Equal(t, codec.Binary([]byte{0, 1, 2}), ch.Get("raw"))
		require.Equal(t, codec.String("SHIPPED"), ch.Get("status"))
		require.Equal(t, codec.JSON(`["a","b"]`), ch.Get("tags"))
		require.Equal(t, codec.JSON(`[1,-2,3]`), ch.Get("nums"), "a packed list")
		require.Equal(t, codec.JSON(`{"x":1}`), ch.Get("attrs"))
		require.Equal(t, codec.JSON(`{"city":"Oslo","zip":null}`), ch.Get("addr"))
		require.Equal(t, codec.JSON(`[{"city":"A","zip":1},{"city":"","zip":null}]`), ch.Get("addrs"))
		require.Equal(t, codec.String("hi"), ch.Get("note"))
		require.True(t, ch.Get("cnt").IsNull(), "an absent wrapper is null")
		require.Equal(t, codec.String("-12.345e2"), ch.Get("exact"))
		require.Equal(t, codec.String("12.345"), ch.Get("loose"), "a decimal without precision and scale options is its text")
		require.Equal(t, codec.String(""), ch.Get("absent"), "an absent proto3 scalar is its default")
		require.True(t, ch.Get("maybe").IsNull(), "an absent optional is null")
		for _, meta := range []string{"op", "lsn", "ts"} {
			require.True(t, ch.Get(meta).IsNull(), "metadata field %s is not a column", meta)
		}
		types := map[string]string{}
		for _, c := range ch.Declared {
			types[c.Name] = c.Type.String()
		}
		require.Equal(t, map[string]string{
			"id": "long", "qty": "long", "u32": "long", "s32": "long", "s64": "long", "f32": "long", "sf64": "long", "u64": "long",
			"name": "string", "price": "decimal(10,2)", "day": "date", "at": "timestamp", "ok": "boolean", "ratio": "double",
			"half": "double", "raw": "binary", "status": "string", "tags": "string", "nums": "string", "attrs": "string",
			"addr": "string", "note": "string", "cnt": "long", "exact": "string", "loose": "string", "absent": "string",
			"maybe": "long", "addrs": "string",
		}, types)
		s := codec.NewSchema()
		_, err = s.Accept(&ch)
		require.NoError(t, err)
	}
}

const protoMultiSchema = `syntax = "proto3";
package m;
message First { int64 a = 1; }
message Second {
  message Inner { string b = 1; string table = 2; }
  int64 c = 1;
}
`

// The message index after the header picks the message: the single byte 0
// for the first, else a count and a path through nested messages.
func TestProtobufMessageIndex(t *testing.T) {
	f := newFixture(t)
	id := f.registerProto("m-value", protoMultiSchema)
	d := f.decoder(DecoderOptions{Value: FormatProtobuf})
	var ch codec.Change
	require.NoError(t, d.Decode(codec.Record{Topic: "m", Value: f.encodeProto(id, []int{0}, protoMultiSchema, nil, "m.First", `{"a":"1"}`), TimestampMs: 1}, &ch))
	require.Equal(t, codec.Int(1), ch.Get("a"))
	require.NoError(t, d.Decode(codec.Record{Topic: "m", Value: f.encodeProto(id, []int{1}, protoMultiSchema, nil, "m.Second", `{"c":"2"}`), TimestampMs: 1}, &ch))
	require.Equal(t, codec.Int(2), ch.Get("c"))
	require.NoError(t, d.Decode(codec.Record{Topic: "m", Value: f.encodeProto(id, []int{1, 0}, protoMultiSchema, nil, "m.Second.Inner", `{"b":"x","table":"t9"}`), TimestampMs: 1}, &ch))
	require.Equal(t, codec.String("x"), ch.Get("b"))
	require.Equal(t, "t9", ch.Table)
}

// A schema importing another subject's schema is compiled with the
// reference fetched from the registry.
func TestProtobufReferences(t *testing.T) {
	f := newFixture(t)
	common := "syntax = \"proto3\";\npackage common;\nmessage Money { string currency = 1; int64 cents = 2; }\n"
	f.registerProto("common.proto", common)
	schema := "syntax = \"proto3\";\npackage shop;\nimport \"common/money.proto\";\nmessage Sale { int64 id = 1; common.Money total = 2; }\n"
	id := f.registerProto("sales-value", schema, sr.SchemaReference{Name: "common/money.proto", Subject: "common.proto", Version: 1})
	d := f.decoder(DecoderOptions{Value: FormatProtobuf})
	var ch codec.Change
	v := f.encodeProto(id, nil, schema, map[string]string{"common/money.proto": common}, "shop.Sale", `{"id":"3","total":{"currency":"EUR","cents":"250"}}`)
	require.NoError(t, d.Decode(codec.Record{Topic: "sales", Value: v, TimestampMs: 1}, &ch))
	require.Equal(t, codec.JSON(`{"currency":"EUR","cents":250}`), ch.Get("total"))

	// A reference the registry lacks is a record error, not an outage.
	bad := f.registerProto("bad-value", schema+"// another schema\n", sr.SchemaReference{Name: "common/money.proto", Subject: "common.proto", Version: 1})
	f.fake.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/subjects/common.proto/") {
			http.Error(w, `{"error_code":40401,"message":"subject not found"}`, http.StatusNotFound)
			return true
		}
		return false
	})
	// A new registry client: the first has common.proto version 1 cached.
	reg, err := NewRegistry(Options{URLs: []string{f.fake.URL()}, RetryTimeout: 2 * time.Second})
	require.NoError(t, err)
	defer reg.Close()
	d, err = NewDecoder(reg, DecoderOptions{Value: FormatProtobuf})
	require.NoError(t, err)
	err = d.Decode(codec.Record{Topic: "sales", Value: append([]byte{0, 0, 0, 0, byte(bad), 0}, v[6:]...), TimestampMs: 1}, &ch)
	var de *codec.DecodeError
	require.ErrorAs(t, err, &de)
	require.False(t, errors.Is(err, ErrUnavailable))
	require.Contains(t, err.Error(), "subject common.proto version 1) is not in the registry")
}

const protoDebeziumSchema = `syntax = "proto3";
package db.public.items;
message Value { int32 id = 1; optional string name = 2; }
message Source { string version = 1; int64 ts_ms = 2; string db = 3; string schema = 4; string table = 5; optional int64 lsn = 6; }
message Envelope { Value before = 1; Value after = 2; Source source = 3; string op = 4; optional int64 ts_ms = 5; }
`

const protoKeySchema = "syntax = \"proto3\";\npackage db.public.items;\nmessage Key { int32 id = 1; }\n"

func TestProtobufDebeziumEnvelope(t *testing.T) {
	f := newFixture(t)
	vid := f.registerProto("items-value", protoDebeziumSchema)
	kid := f.registerProto("items-key", protoKeySchema)
	d := f.decoder(DecoderOptions{Value: FormatProtobuf, Key: FormatProtobuf})
	src := `"source":{"version":"3","ts_ms":"1700000000000","db":"db","schema":"public","table":"items","lsn":"987654"}`
	env := func(body string) []byte {
		return f.encodeProto(vid, []int{2}, protoDebeziumSchema, nil, "db.public.items.Envelope", body)
	}
	rec := codec.Record{Topic: "db.public.items", Offset: 3,
		Key:   f.encodeProto(kid, nil, protoKeySchema, nil, "db.public.items.Key", `{"id":5}`),
		Value: env(`{"after":{"id":5,"name":"x"},` + src + `,"op":"c","ts_ms":"1700000000500"}`)}
	var ch codec.Change
	require.NoError(t, d.Decode(rec, &ch))
	require.Equal(t, "db.public.items", ch.TableName())
	require.Equal(t, codec.OpInsert, ch.Op)
	require.Equal(t, uint64(987654), ch.LSN)
	require.Equal(t, int64(1700000000000), ch.TS)
	require.Equal(t, []codec.Field{{Name: "id", Value: codec.Int(5)}}, ch.Key)
	require.Equal(t, []codec.Field{{Name: "id", Value: codec.Int(5)}, {Name: "name", Value: codec.String("x")}}, ch.Row)
	require.Len(t, ch.Declared, 2)

	// A delete without a before-image: the key's columns stand in.
	rec.Value = env(`{` + src + `,"op":"d"}`)
	require.NoError(t, d.Decode(rec, &ch))
	require.Equal(t, codec.OpDelete, ch.Op)
	require.Equal(t, []codec.Field{{Name: "id", Value: codec.Int(5)}}, ch.Row)

	// Without a source LSN the fallback ordering key is used.
	rec.Value = env(`{"after":{"id":6},"op":"u","ts_ms":"1000"}`)
	require.NoError(t, d.Decode(rec, &ch))
	require.Equal(t, codec.OpUpdate, ch.Op)
	require.Equal(t, uint64(1000)<<20|3, ch.LSN)
	require.True(t, ch.Get("name").IsNull())

	// Other ops are errors; a key that is not in the wire format is opaque.
	rec.Key = []byte("items:5")
	rec.Value = env(`{` + src + `,"op":"t"}`)
	var de *codec.DecodeError
	require.ErrorAs(t, d.Decode(rec, &ch), &de)
	require.Equal(t, "op", de.Field)
	rec.Value = env(`{"after":{"id":6},"op":"c","ts_ms":"1000"}`)
	require.NoError(t, d.Decode(rec, &ch))
	require.True(t, ch.HasOpaqueKey())
}

// A new schema version (a field added) evolves the table through
// Declared; a type the column cannot hold is refused, as for JSON.
func TestProtobufSchemaVersionEvolvesTable(t *testing.T) {
	f := newFixture(t)
	v1 := "syntax = \"proto3\";\nmessage R { int64 id = 1; }\n"
	v2 := "syntax = \"proto3\";\nmessage R { int64 id = 1; optional string note = 2; }\n"
	id1 := f.registerProto("t-value", v1)
	id2 := f.registerProto("t-value", v2)
	require.NotEqual(t, id1, id2)
	d := f.decoder(DecoderOptions{Value: FormatProtobuf})
	s := codec.NewSchema()
	var ch codec.Change
	require.NoError(t, d.Decode(codec.Record{Topic: "t", Offset: 1, Value: f.encodeProto(id1, nil, v1, nil, "R", `{"id":"1"}`), TimestampMs: 1}, &ch))
	_, err := s.Accept(&ch)
	require.NoError(t, err)
	require.NoError(t, d.Decode(codec.Record{Topic: "t", Offset: 2, Value: f.encodeProto(id2, nil, v2, nil, "R", `{"id":"2","note":"x"}`), TimestampMs: 1}, &ch))
	evolved, err := s.Accept(&ch)
	require.NoError(t, err)
	require.True(t, evolved)
	col, ok := s.Column("note")
	require.True(t, ok)
	require.Equal(t, "string", col.Type.String())

	v3 := "syntax = \"proto3\";\nmessage R { string id = 1; }\n"
	id3 := f.registerProto("u-value", v3)
	require.NoError(t, d.Decode(codec.Record{Topic: "t", Offset: 3, Value: f.encodeProto(id3, nil, v3, nil, "R", `{"id":"x"}`), TimestampMs: 1}, &ch))
	_, err = s.Accept(&ch)
	var de *codec.DecodeError
	require.ErrorAs(t, err, &de)
	require.Equal(t, "id", de.Field)
}

// A recursive message nested deeper than maxNesting is a record error,
// not a deep stack.
func TestProtobufNestingLimit(t *testing.T) {
	f := newFixture(t)
	schema := "syntax = \"proto3\";\nmessage Node { Node child = 1; }\nmessage R { Node tree = 1; }\n"
	id := f.registerProto("n-value", schema)
	d := f.decoder(DecoderOptions{Value: FormatProtobuf})
	nest := func(depth int) []byte {
		var b []byte
		for range depth {
			b = append(protowire.AppendTag(nil, 1, protowire.BytesType), protowire.AppendBytes(nil, b)...)
		}
		return append([]byte{0, 0, 0, 0, byte(id), 2, 2}, b...) // message index [1]
	}
	var ch codec.Change
	require.NoError(t, d.Decode(codec.Record{Topic: "t", Value: nest(maxNesting), TimestampMs: 1}, &ch))
	var de *codec.DecodeError
	require.ErrorAs(t, d.Decode(codec.Record{Topic: "t", Value: nest(maxNesting + 1), TimestampMs: 1}, &ch), &de)
	require.Contains(t, de.Reason, "nested deeper than 100")
}

func TestProtobufRecordErrors(t *testing.T) {
	f := newFixture(t)
	schema := "syntax = \"proto3\";\nmessage R { int64 id = 1; string s = 2; uint64 u = 3; google.protobuf.Timestamp at = 4; google.type.Date day = 5; }\nimport \"google/protobuf/timestamp.proto\";\nimport \"google/type/date.proto\";\n"
	id := f.registerProto("t-value", schema)
	good := f.encodeProto(id, nil, schema, nil, "R", `{"id":"1","s":"hello"}`)
	aid := f.register("a-value", `{"type":"record","name":"R","fields":[]}`)
	hdr := func(rest ...byte) []byte { return append([]byte{0, 0, 0, 0, byte(id)}, rest...) }
	d := f.decoder(DecoderOptions{Value: FormatProtobuf})
	cases := []struct {
		name  string
		value []byte
		want  string
	}{
		{"wrong magic byte", append([]byte{1}, good[1:]...), "magic byte 0x1, want 0"},
		{"short header", []byte{0, 0, 1}, "shorter than the 5-byte header"},
		{"unknown schema ID", append([]byte{0, 0, 0, 0x30, 0x39}, good[5:]...), "names schema ID 12345, which the schema registry"},
		{"no message index", hdr(), "truncated message index"},
		{"message index out of range", hdr(2, 2, 0x08, 1), "message index 1 out of range"},
		{"message index count past the end", hdr(0x7e), "message index count 63 out of range"},
		{"negative message index", hdr(2, 1), "message index -1 out of range"},
		{"truncated", good[:len(good)-2], "does not match its schema ID"},
		{"tag without value", hdr(0, 0x08), "field id: value does not match its schema ID 1 (schema registry " + f.fake.URL() + "): malformed wire format"},
		{"wrong wire type", hdr(0, 0x0a, 1, 'x'), "field id: value does not match its schema ID 1 (schema registry " + f.fake.URL() + "): wire type 2, want 0"},
		{"invalid UTF-8", hdr(0, 0x12, 2, 0xff, 0xfe), "field s: value does not match its schema ID 1 (schema registry " + f.fake.URL() + "): string is not valid UTF-8"},
		{"uint64 above a long", hdr(0, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), "does not fit a long"},
		{"timestamp out of range", hdr(0, 0x22, 10, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), "out of range"},
		{"partial date", hdr(0, 0x2a, 2, 0x08, 0x01), "not a full calendar date"},
		{"Avro schema", append([]byte{0, 0, 0, 0, byte(aid)}, 0), "is a AVRO schema, not Protobuf"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ch codec.Change
			err := d.Decode(codec.Record{Topic: "t", Partition: 2, Offset: 77, Value: tc.value}, &ch)
			var de *codec.DecodeError
			require.ErrorAs(t, err, &de)
			require.False(t, errors.Is(err, ErrUnavailable))
			msg := err.Error()
			require.Contains(t, msg, "record t/2@77")
			require.Contains(t, msg, tc.want)
			require.Contains(t, msg, f.fake.URL())
		})
	}
}

// Changes written by the ProtoEncoder decode to the same changes.
func TestProtoEncoderRoundTrip(t *testing.T) {
	f := newFixture(t)
	recs := evodbRecords(20)
	jd, err := cdc.NewDecoder(cdc.FormatEvoDB)
	require.NoError(t, err)
	enc := NewProtoEncoder(f.reg, "shop.users")
	d := f.decoder(DecoderOptions{Value: FormatProtobuf})
	for _, r := range recs {
		var want, got codec.Change
		require.NoError(t, jd.Decode(r, &want))
		v, err := enc.Append(context.Background(), nil, &want)
		require.NoError(t, err)
		r.Value = v
		require.NoError(t, d.Decode(r, &got))
		requireSameChange(t, &want, &got)
	}

	ch := codec.Change{Topic: "t", Table: "k", Op: codec.OpDelete, LSN: 5, TS: 6, Row: []codec.Field{
		{Name: "b", Value: codec.Bool(false)}, {Name: "i", Value: codec.Int(-3)}, {Name: "f", Value: codec.Float(1.5)},
		{Name: "s", Value: codec.String("x")}, {Name: "y", Value: codec.Binary([]byte{9})},
		{Name: "d", Value: codec.DecimalFromBig(bigInt(-25600), 2)}, {Name: "e", Value: codec.DecimalFromBig(bigInt(255), 1)},
		{Name: "day", Value: codec.Date(-1)}, {Name: "at", Value: codec.Timestamp(-5)}, {Name: "n", Value: codec.Null()},
		{Name: "zero", Value: codec.Int(0)}, {Name: "j", Value: codec.JSON(`{"a":1}`)},
	}}
	v, err := NewProtoEncoder(f.reg, "t").Append(context.Background(), nil, &ch)
	require.NoError(t, err)
	var got codec.Change
	require.NoError(t, d.Decode(codec.Record{Topic: "t", Value: v}, &got))
	requireSameChange(t, &ch, &got)
	require.Equal(t, codec.String(`{"a":1}`), got.Get("j"), "JSON columns are strings in Protobuf")
}

// BenchmarkDecodeProtobuf decodes the rows of BenchmarkDecodeAvro as
// Protobuf.
func BenchmarkDecodeProtobuf(b *testing.B)         { benchDecodeProto(b, false) }
func BenchmarkDecodeBorrowedProtobuf(b *testing.B) { benchDecodeProto(b, true) }

func benchDecodeProto(b *testing.B, borrow bool) {
	f := newFixture(b)
	recs := evodbRecords(1024)
	jd, err := cdc.NewDecoder(cdc.FormatEvoDB)
	require.NoError(b, err)
	enc := NewProtoEncoder(f.reg, "shop.users")
	total := 0
	for i := range recs {
		var ch codec.Change
		require.NoError(b, jd.Decode(recs[i], &ch))
		recs[i].Value, err = enc.Append(context.Background(), nil, &ch)
		require.NoError(b, err)
		total += len(recs[i].Value)
	}
	d := f.decoder(DecoderOptions{Value: FormatProtobuf})
	b.SetBytes(int64(total / len(recs)))
	b.ReportAllocs()
	decode := d.Decode
	if borrow {
		decode = d.DecodeBorrowed
	}
	var ch codec.Change
	i := 0
	for b.Loop() {
		if err := decode(recs[i%len(recs)], &ch); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func bigInt(v int64) *big.Int { return big.NewInt(v) }
