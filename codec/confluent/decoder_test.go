package confluent

import (
	"errors"
	"math/big"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
)

// fixture is a decoder against an in-process registry; values are encoded
// by hamba/avro's own encoder, so the decoder is checked against an
// independent implementation of the format.
type fixture struct {
	t    testing.TB
	fake *srfake.Registry
	reg  *Registry
}

func newFixture(t testing.TB, opts ...srfake.Option) *fixture {
	t.Helper()
	fake := srfake.New(opts...)
	t.Cleanup(fake.Close)
	reg, err := NewRegistry(Options{URLs: []string{fake.URL()}, RetryTimeout: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(reg.Close)
	return &fixture{t: t, fake: fake, reg: reg}
}

func (f *fixture) decoder(o DecoderOptions) *Decoder {
	f.t.Helper()
	d, err := NewDecoder(f.reg, o)
	require.NoError(f.t, err)
	return d
}

// register registers an Avro schema under subject and returns its ID.
func (f *fixture) register(subject, schema string) int {
	f.t.Helper()
	id, _, err := f.fake.RegisterSchema(subject, sr.Schema{Schema: schema, Type: sr.TypeAvro})
	require.NoError(f.t, err)
	return id
}

// encode returns v in the Confluent wire format under schema ID id.
func (f *fixture) encode(id int, schema string, v any) []byte {
	f.t.Helper()
	s, err := avro.ParseWithCache(schema, "", &avro.SchemaCache{})
	require.NoError(f.t, err)
	body, err := avro.Marshal(s, v)
	require.NoError(f.t, err)
	var h sr.ConfluentHeader
	out, err := h.AppendEncode(nil, id, nil)
	require.NoError(f.t, err)
	return append(out, body...)
}

const plainSchema = `{"type":"record","name":"Order","fields":[
 {"name":"op","type":"string"},
 {"name":"lsn","type":"long"},
 {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"id","type":"long"},
 {"name":"qty","type":"int"},
 {"name":"name","type":["null","string"]},
 {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
 {"name":"day","type":{"type":"int","logicalType":"date"}},
 {"name":"at","type":{"type":"long","logicalType":"timestamp-micros"}},
 {"name":"ok","type":"boolean"},
 {"name":"ratio","type":"double"},
 {"name":"raw","type":"bytes"},
 {"name":"tags","type":{"type":"array","items":"string"}},
 {"name":"addr","type":{"type":"record","name":"Addr","fields":[{"name":"city","type":"string"},{"name":"zip","type":["null","int"]}]}}
]}`

func plainValue() map[string]any {
	return map[string]any{
		"op": "UPDATE", "lsn": int64(42), "ts": time.UnixMilli(1700000000123).UTC(),
		"id": int64(7), "qty": 3, "name": "widget",
		"price": big.NewRat(1999, 100), "day": time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC),
		"at": time.UnixMicro(1700000000123456).UTC(), "ok": true, "ratio": 0.5, "raw": []byte{0, 1, 2},
		"tags": []any{"a", "b"}, "addr": map[string]any{"city": "Oslo", "zip": nil},
	}
}

func TestAvroPlainRecord(t *testing.T) {
	f := newFixture(t)
	id := f.register("orders-value", plainSchema)
	d := f.decoder(DecoderOptions{Value: FormatAvro})
	for _, borrow := range []bool{false, true} {
		rec := codec.Record{Topic: "shop.orders", Partition: 1, Offset: 9, Value: f.encode(id, plainSchema, plainValue()), TimestampMs: 5}
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
		require.Equal(t, "3", get("qty"))
		require.Equal(t, "widget", get("name"))
		require.Equal(t, "19.99", get("price"))
		require.Equal(t, "2024-02-29", get("day"))
		require.Equal(t, "2023-11-14T22:13:20.123Z", get("at"))
		require.Equal(t, "true", get("ok"))
		require.Equal(t, "0.5", get("ratio"))
		require.Equal(t, codec.Binary([]byte{0, 1, 2}), ch.Get("raw"))
		require.Equal(t, codec.JSON(`["a","b"]`), ch.Get("tags"))
		require.Equal(t, codec.JSON(`{"city":"Oslo","zip":null}`), ch.Get("addr"))
		for _, meta := range []string{"op", "lsn", "ts"} {
			require.True(t, ch.Get(meta).IsNull(), "metadata field %s is not a column", meta)
		}
		types := map[string]string{}
		for _, c := range ch.Declared {
			types[c.Name] = c.Type.String()
		}
		require.Equal(t, map[string]string{
			"id": "long", "qty": "integer", "name": "string", "price": "decimal(10,2)", "day": "date",
			"at": "timestamp", "ok": "boolean", "ratio": "double", "raw": "binary", "tags": "string", "addr": "string",
		}, types)

		// The row fits a table schema built from it, the way the sink
		// builds one.
		s := codec.NewSchema()
		_, err = s.Accept(&ch)
		require.NoError(t, err)
	}
}

// debeziumSchema is what Debezium's PostgreSQL connector registers through
// the AvroConverter (trimmed to the fields that matter).
const debeziumSchema = `{"type":"record","name":"Envelope","namespace":"db.public.items","fields":[
 {"name":"before","type":["null",{"type":"record","name":"Value","fields":[
   {"name":"id","type":"int"},
   {"name":"amount","type":["null",{"type":"bytes","scale":3,"precision":12,"connect.version":1,"connect.parameters":{"scale":"3","connect.decimal.precision":"12"},"connect.name":"org.apache.kafka.connect.data.Decimal","logicalType":"decimal"}],"default":null},
   {"name":"born","type":["null",{"type":"int","connect.version":1,"connect.name":"io.debezium.time.Date"}],"default":null},
   {"name":"seen","type":["null",{"type":"long","connect.version":1,"connect.name":"io.debezium.time.MicroTimestamp"}],"default":null},
   {"name":"zoned","type":["null",{"type":"string","connect.version":1,"connect.name":"io.debezium.time.ZonedTimestamp"}],"default":null},
   {"name":"doc","type":["null",{"type":"string","connect.version":1,"connect.name":"io.debezium.data.Json"}],"default":null},
   {"name":"uid","type":["null",{"type":"string","connect.version":1,"connect.name":"io.debezium.data.Uuid"}],"default":null},
   {"name":"var","type":["null",{"type":"record","name":"VariableScaleDecimal","namespace":"io.debezium.data","fields":[{"name":"scale","type":"int"},{"name":"value","type":"bytes"}],"connect.name":"io.debezium.data.VariableScaleDecimal"}],"default":null},
   {"name":"t","type":["null",{"type":"long","connect.version":1,"connect.name":"io.debezium.time.MicroTime"}],"default":null}
 ],"connect.name":"db.public.items.Value"}],"default":null},
 {"name":"after","type":["null","Value"],"default":null},
 {"name":"source","type":{"type":"record","name":"Source","namespace":"io.debezium.connector.postgresql","fields":[
   {"name":"version","type":"string"},
   {"name":"ts_ms","type":"long"},
   {"name":"db","type":"string"},
   {"name":"schema","type":"string"},
   {"name":"table","type":"string"},
   {"name":"lsn","type":["null","long"],"default":null}
 ]}},
 {"name":"op","type":"string"},
 {"name":"ts_ms","type":["null","long"],"default":null}
],"connect.name":"db.public.items.Envelope"}`

const debeziumKeySchema = `{"type":"record","name":"Key","namespace":"db.public.items","fields":[{"name":"id","type":"int"}],"connect.name":"db.public.items.Key"}`

// debeziumRow is a row as hamba/avro encodes it into the nullable union
// of the before and after fields.
func debeziumRow(id int) map[string]any {
	return map[string]any{"db.public.items.Value": debeziumColumns(id)}
}

func debeziumColumns(id int) map[string]any {
	return map[string]any{
		"id": id, "amount": big.NewRat(-12345, 1000), "born": 19000, "seen": int64(1700000000123456),
		"zoned": "2024-01-02T03:04:05.678+01:00", "doc": `{"k":[1,2]}`, "uid": "6a1f0c2e-1b2c-4d5e-8f90-0123456789ab",
		"var": map[string]any{"io.debezium.data.VariableScaleDecimal": map[string]any{"scale": 2, "value": []byte{0x30, 0x39}}}, "t": int64(3723000001),
	}
}

func TestAvroDebeziumEnvelope(t *testing.T) {
	f := newFixture(t)
	vid := f.register("db.public.items-value", debeziumSchema)
	kid := f.register("db.public.items-key", debeziumKeySchema)
	d := f.decoder(DecoderOptions{Value: FormatAvro, Key: FormatAvro})
	source := map[string]any{"version": "3.6", "ts_ms": int64(1700000000000), "db": "db", "schema": "public", "table": "items", "lsn": int64(987654)}

	rec := codec.Record{Topic: "db.public.items", Partition: 0, Offset: 3,
		Key:   f.encode(kid, debeziumKeySchema, map[string]any{"id": 5}),
		Value: f.encode(vid, debeziumSchema, map[string]any{"before": nil, "after": debeziumRow(5), "source": source, "op": "c", "ts_ms": int64(1700000000500)})}
	var ch codec.Change
	require.NoError(t, d.Decode(rec, &ch))
	require.Equal(t, "db.public.items", ch.TableName())
	require.Equal(t, codec.OpInsert, ch.Op)
	require.Equal(t, uint64(987654), ch.LSN)
	require.Equal(t, int64(1700000000000), ch.TS, "the source time wins over the envelope's")
	require.Equal(t, []codec.Field{{Name: "id", Value: codec.Int(5)}}, ch.Key)
	get := func(name string) string { return ch.Get(name).Text() }
	require.Equal(t, "-12.345", get("amount"))
	require.Equal(t, codec.KindDecimal, ch.Get("amount").Kind())
	require.Equal(t, "2022-01-08", get("born"))
	require.Equal(t, "2023-11-14T22:13:20.123Z", get("seen"))
	require.Equal(t, "2024-01-02T02:04:05.678Z", get("zoned"))
	require.Equal(t, codec.JSON(`{"k":[1,2]}`), ch.Get("doc"))
	require.Equal(t, codec.String("6a1f0c2e-1b2c-4d5e-8f90-0123456789ab"), ch.Get("uid"))
	require.Equal(t, codec.String("123.45"), ch.Get("var"))
	require.Equal(t, codec.Int(3723000001), ch.Get("t"))
	types := map[string]string{}
	for _, c := range ch.Declared {
		types[c.Name] = c.Type.String()
	}
	require.Equal(t, map[string]string{"id": "integer", "amount": "decimal(12,3)", "born": "date", "seen": "timestamp",
		"zoned": "timestamp", "doc": "string", "uid": "string", "var": "string", "t": "long"}, types)

	// A delete without a before-image: the key's columns stand in.
	rec.Offset = 4
	rec.Value = f.encode(vid, debeziumSchema, map[string]any{"before": nil, "after": nil, "source": source, "op": "d", "ts_ms": nil})
	require.NoError(t, d.Decode(rec, &ch))
	require.Equal(t, codec.OpDelete, ch.Op)
	require.Equal(t, []codec.Field{{Name: "id", Value: codec.Int(5)}}, ch.Row)

	// An update carries both images; the row is the after-image.
	rec.Offset = 5
	after := debeziumColumns(5)
	after["uid"] = nil
	rec.Value = f.encode(vid, debeziumSchema, map[string]any{"before": debeziumRow(5), "after": map[string]any{"db.public.items.Value": after}, "source": source, "op": "u", "ts_ms": nil})
	require.NoError(t, d.Decode(rec, &ch))
	require.Equal(t, codec.OpUpdate, ch.Op)
	require.True(t, ch.Get("uid").IsNull())

	// A key that is not in the wire format is kept as opaque bytes.
	rec.Key = []byte("items:5")
	require.NoError(t, d.Decode(rec, &ch))
	require.True(t, ch.HasOpaqueKey())

	// Debezium's other ops are errors, as in the JSON decoder.
	rec.Value = f.encode(vid, debeziumSchema, map[string]any{"before": nil, "after": nil, "source": source, "op": "t", "ts_ms": nil})
	var de *codec.DecodeError
	require.ErrorAs(t, d.Decode(rec, &ch), &de)
	require.Equal(t, "op", de.Field)

	// A null value is a tombstone.
	rec.Value = nil
	require.ErrorIs(t, d.Decode(rec, &ch), cdc.ErrTombstone)
}

// A new schema version (a column added with a default) evolves the table
// through Declared, as a Debezium JSON schema change does.
func TestAvroSchemaVersionEvolvesTable(t *testing.T) {
	f := newFixture(t)
	v1 := `{"type":"record","name":"R","fields":[{"name":"id","type":"long"}]}`
	v2 := `{"type":"record","name":"R","fields":[{"name":"id","type":"long"},{"name":"note","type":["null","string"],"default":null}]}`
	id1 := f.register("t-value", v1)
	id2 := f.register("t-value", v2)
	require.NotEqual(t, id1, id2)
	d := f.decoder(DecoderOptions{Value: FormatAvro})
	s := codec.NewSchema()
	var ch codec.Change
	require.NoError(t, d.Decode(codec.Record{Topic: "t", Offset: 1, Value: f.encode(id1, v1, map[string]any{"id": int64(1)}), TimestampMs: 1}, &ch))
	_, err := s.Accept(&ch)
	require.NoError(t, err)
	require.NoError(t, d.Decode(codec.Record{Topic: "t", Offset: 2, Value: f.encode(id2, v2, map[string]any{"id": int64(2), "note": "x"}), TimestampMs: 1}, &ch))
	evolved, err := s.Accept(&ch)
	require.NoError(t, err)
	require.True(t, evolved)
	col, ok := s.Column("note")
	require.True(t, ok)
	require.Equal(t, "string", col.Type.String())

	// A type the column cannot hold is refused, as for JSON.
	v3 := `{"type":"record","name":"R","fields":[{"name":"id","type":"string"}]}`
	id3 := f.register("u-value", v3)
	require.NoError(t, d.Decode(codec.Record{Topic: "t", Offset: 3, Value: f.encode(id3, v3, map[string]any{"id": "x"}), TimestampMs: 1}, &ch))
	_, err = s.Accept(&ch)
	var de *codec.DecodeError
	require.ErrorAs(t, err, &de)
	require.Equal(t, "id", de.Field)
}

func TestRecordErrors(t *testing.T) {
	f := newFixture(t)
	schema := `{"type":"record","name":"R","fields":[{"name":"id","type":"long"},{"name":"s","type":"string"}]}`
	id := f.register("t-value", schema)
	good := f.encode(id, schema, map[string]any{"id": int64(1), "s": "hello"})
	d := f.decoder(DecoderOptions{Value: FormatAvro})
	cases := []struct {
		name  string
		value []byte
		want  string
	}{
		{"wrong magic byte", append([]byte{1}, good[1:]...), "magic byte 0x1, want 0"},
		{"plain JSON", []byte(`{"id":1}`), "magic byte 0x7b"},
		{"short header", []byte{0, 0, 1}, "shorter than the 5-byte header"},
		{"unknown schema ID", append([]byte{0, 0, 0, 0x30, 0x39}, good[5:]...), "names schema ID 12345, which the schema registry"},
		{"truncated", good[:len(good)-2], "does not match its schema ID"},
		{"trailing bytes", append(append([]byte(nil), good...), 0), "1 bytes left after the record"},
		{"string length past the end", append(append([]byte(nil), good[:6]...), 0x7e), "does not match its schema ID"},
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
			if tc.name != "trailing bytes" {
				require.Contains(t, msg, f.fake.URL())
			}
		})
	}
}

// A registry that answers 503 for a while is retried until it answers; one
// that stays down is ErrUnavailable, never a record error.
func TestRegistryOutageIsNotARecordError(t *testing.T) {
	f := newFixture(t)
	schema := `{"type":"record","name":"R","fields":[{"name":"id","type":"long"}]}`
	id := f.register("t-value", schema)
	value := f.encode(id, schema, map[string]any{"id": int64(1)})

	var failures atomic.Int32
	failures.Store(3)
	f.fake.Intercept(func(w http.ResponseWriter, _ *http.Request) bool {
		if failures.Add(-1) >= 0 {
			http.Error(w, `{"error_code":50301,"message":"overloaded"}`, http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	d := f.decoder(DecoderOptions{Value: FormatAvro})
	var ch codec.Change
	require.NoError(t, d.Decode(codec.Record{Topic: "t", Offset: 1, Value: value, TimestampMs: 1}, &ch))
	require.Equal(t, codec.Int(1), ch.Get("id"))

	// Down for good (a new registry client, so nothing is cached).
	f.fake.ClearInterceptors()
	f.fake.Intercept(func(w http.ResponseWriter, _ *http.Request) bool {
		http.Error(w, "down", http.StatusBadGateway)
		return true
	})
	reg, err := NewRegistry(Options{URLs: []string{f.fake.URL()}, RetryTimeout: 300 * time.Millisecond})
	require.NoError(t, err)
	defer reg.Close()
	d2, err := NewDecoder(reg, DecoderOptions{Value: FormatAvro})
	require.NoError(t, err)
	err = d2.Decode(codec.Record{Topic: "t", Partition: 1, Offset: 8, Value: value}, &ch)
	require.ErrorIs(t, err, ErrUnavailable)
	var de *codec.DecodeError
	require.False(t, errors.As(err, &de), "an outage must not look like a bad record: %v", err)
	require.Contains(t, err.Error(), "record t/1@8")
	require.Contains(t, err.Error(), f.fake.URL())

	// Refused credentials are the registry's problem too, and not retried.
	f.fake.ClearInterceptors()
	f.fake.Intercept(func(w http.ResponseWriter, _ *http.Request) bool {
		http.Error(w, `{"error_code":401,"message":"unauthorized"}`, http.StatusUnauthorized)
		return true
	})
	err = d2.Decode(codec.Record{Topic: "t", Partition: 1, Offset: 9, Value: value}, &ch)
	require.ErrorIs(t, err, ErrUnavailable)
}

// The registry cache is keyed by schema ID alone, relying on an ID's
// schema never changing. This test changes it on purpose: the decoder
// keeps the schema it fetched first, and fetched it once.
func TestRegistryCachesByID(t *testing.T) {
	var fetches atomic.Int32
	f := newFixture(t)
	f.fake.Intercept(func(_ http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/schemas/ids/") {
			fetches.Add(1)
		}
		return false
	})
	v1 := `{"type":"record","name":"R","fields":[{"name":"id","type":"long"}]}`
	id := f.register("t-value", v1)
	d := f.decoder(DecoderOptions{Value: FormatAvro})
	var ch codec.Change
	for i := range 50 {
		require.NoError(t, d.Decode(codec.Record{Topic: "t", Offset: int64(i), Value: f.encode(id, v1, map[string]any{"id": int64(i)}), TimestampMs: 1}, &ch))
	}
	require.EqualValues(t, 1, fetches.Load())

	// Break the invariant: the registry now serves another schema under
	// the same ID. The cached one still decodes the old bytes.
	f.fake.Reset()
	other := `{"type":"record","name":"R","fields":[{"name":"s","type":"string"}]}`
	f.fake.SeedSchema("t-value", 1, id, sr.Schema{Schema: other, Type: sr.TypeAvro})
	require.NoError(t, d.Decode(codec.Record{Topic: "t", Offset: 99, Value: f.encode(id, v1, map[string]any{"id": int64(99)}), TimestampMs: 1}, &ch))
	require.Equal(t, codec.Int(99), ch.Get("id"))
	require.EqualValues(t, 1, fetches.Load())
}

func TestJSONSchemaValue(t *testing.T) {
	f := newFixture(t)
	id, _, err := f.fake.RegisterSchema("t-value", sr.Schema{Schema: `{"type":"object"}`, Type: sr.TypeJSON})
	require.NoError(t, err)
	var h sr.ConfluentHeader
	value, _ := h.AppendEncode(nil, id, nil)
	value = append(value, `{"op":"INSERT","table":"users","data":{"id":1,"name":"a"},"lsn":10}`...)
	d := f.decoder(DecoderOptions{Value: FormatJSONSchema})
	var ch codec.Change
	require.NoError(t, d.Decode(codec.Record{Topic: "t", Offset: 1, Value: value}, &ch))
	require.Equal(t, "users", ch.Table)
	require.Equal(t, uint64(10), ch.LSN)
	require.Equal(t, codec.String("a"), ch.Get("name"))

	// An Avro schema ID behind a json-schema topic is a record error.
	aid := f.register("a-value", `{"type":"record","name":"R","fields":[]}`)
	bad, _ := h.AppendEncode(nil, aid, nil)
	var de *codec.DecodeError
	require.ErrorAs(t, d.Decode(codec.Record{Topic: "t", Offset: 2, Value: append(bad, '{', '}')}, &ch), &de)
	require.Contains(t, de.Reason, "not JSON Schema")
}

// TestRealRegistry runs the plain-record round trip, and a Debezium
// envelope split into schema references, against the registry that
// EVODB_SCHEMA_REGISTRY_URL names (e2e/scripts/registry.sh).
func TestRealRegistry(t *testing.T) {
	url := os.Getenv("EVODB_SCHEMA_REGISTRY_URL")
	if url == "" {
		t.Skip("EVODB_SCHEMA_REGISTRY_URL is not set")
	}
	reg, err := NewRegistry(Options{URLs: []string{url}, RetryTimeout: 10 * time.Second})
	require.NoError(t, err)
	defer reg.Close()
	subject := "confluent-test-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + time.Now().Format("150405.000000000")
	ss, err := reg.Client().CreateSchema(t.Context(), subject, sr.Schema{Schema: plainSchema, Type: sr.TypeAvro})
	require.NoError(t, err)
	f := &fixture{t: t, reg: reg}
	d := f.decoder(DecoderOptions{Value: FormatAvro})
	var ch codec.Change
	require.NoError(t, d.Decode(codec.Record{Topic: "orders", Value: f.encode(ss.ID, plainSchema, plainValue())}, &ch))
	require.Equal(t, "19.99", ch.Get("price").Text())
	require.Equal(t, uint64(42), ch.LSN)

	// The split Debezium envelope of references_test.go: Money under one
	// subject, Value referring to it under another, the envelope
	// referring to Value and Source.
	create := func(name, schema string, refs ...sr.SchemaReference) sr.SubjectSchema {
		ss, err := reg.Client().CreateSchema(t.Context(), subject+"-"+name, sr.Schema{Schema: schema, Type: sr.TypeAvro, References: refs})
		require.NoError(t, err, "register %s", name)
		return ss
	}
	ref := func(name string, ss sr.SubjectSchema) sr.SchemaReference {
		return sr.SchemaReference{Name: name, Subject: ss.Subject, Version: ss.Version}
	}
	money := create("money", refMoneySchema)
	value := create("value", refValueSchema, ref("shop.Money", money))
	source := create("source", refSourceSchema)
	env := create("envelope", refEnvelopeSchema, ref("shop.orders.Value", value), ref("io.debezium.connector.postgresql.Source", source))
	require.NoError(t, d.Decode(codec.Record{Topic: "dbz.public.orders", Value: encodeRefs(t, env.ID, refEnvelopeSchema, refDeps, refEnvelopeValue(5)), TimestampMs: 1}, &ch))
	require.Equal(t, "orders", ch.Table)
	require.Equal(t, uint64(1005), ch.LSN)
	require.Equal(t, codec.JSON(`{"currency":"EUR","cents":250}`), ch.Get("total"))
}

// A schema the registry serves but that does not compile is fetched once:
// every record written with it is refused as a record error, without a
// fetch and a compile each.
func TestRegistryCachesCompileErrors(t *testing.T) {
	var fetches atomic.Int32
	f := newFixture(t)
	f.fake.Intercept(func(_ http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/schemas/ids/") {
			fetches.Add(1)
		}
		return false
	})
	f.fake.SeedSchema("t-value", 1, 7, sr.Schema{Schema: `{"type":"record","name":"R","fields":[{"name":"id","type":"nosuchtype"}]}`, Type: sr.TypeAvro})
	var h sr.ConfluentHeader
	value, _ := h.AppendEncode(nil, 7, nil)
	value = append(value, 2)
	d := f.decoder(DecoderOptions{Value: FormatAvro})
	var ch codec.Change
	for i := range 5 {
		err := d.Decode(codec.Record{Topic: "t", Offset: int64(i), Value: value}, &ch)
		var de *codec.DecodeError
		require.ErrorAs(t, err, &de, "record %d", i)
		require.NotErrorIs(t, err, ErrUnavailable)
		require.ErrorContains(t, err, "schema ID 7")
	}
	require.EqualValues(t, 1, fetches.Load())
}
