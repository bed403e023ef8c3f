package confluent

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/evodb/sink/codec"
)

// The schemas of a Debezium envelope split into references, the way
// Apicurio's AvroConverter registers it by default: the envelope names
// the row and source types, and the row names a type of its own.
const (
	refMoneySchema = `{"type":"record","name":"Money","namespace":"shop","fields":[
 {"name":"currency","type":"string"},{"name":"cents","type":"long"}]}`
	refValueSchema = `{"type":"record","name":"Value","namespace":"shop.orders","fields":[
 {"name":"id","type":"long"},{"name":"total","type":["null","shop.Money"]}]}`
	refSourceSchema = `{"type":"record","name":"Source","namespace":"io.debezium.connector.postgresql","fields":[
 {"name":"db","type":"string"},{"name":"schema","type":"string"},{"name":"table","type":"string"},
 {"name":"lsn","type":["null","long"]},{"name":"ts_ms","type":"long"}]}`
	refEnvelopeSchema = `{"type":"record","name":"Envelope","namespace":"shop.orders","fields":[
 {"name":"before","type":["null","Value"]},
 {"name":"after","type":["null","Value"]},
 {"name":"source","type":"io.debezium.connector.postgresql.Source"},
 {"name":"op","type":"string"},
 {"name":"ts_ms","type":["null","long"]}]}`
)

// registerRefs registers an Avro schema with references under subject
// and returns its ID.
func (f *fixture) registerRefs(subject, schema string, refs ...sr.SchemaReference) int {
	f.t.Helper()
	id, _, err := f.fake.RegisterSchema(subject, sr.Schema{Schema: schema, Type: sr.TypeAvro, References: refs})
	require.NoError(f.t, err)
	return id
}

// encodeRefs is encode for a schema whose references are deps, in
// dependency order.
func encodeRefs(t testing.TB, id int, schema string, deps []string, v any) []byte {
	t.Helper()
	cache := &avro.SchemaCache{}
	for _, d := range deps {
		_, err := avro.ParseWithCache(d, "", cache)
		require.NoError(t, err)
	}
	s, err := avro.ParseWithCache(schema, "", cache)
	require.NoError(t, err)
	body, err := avro.Marshal(s, v)
	require.NoError(t, err)
	var h sr.ConfluentHeader
	out, err := h.AppendEncode(nil, id, nil)
	require.NoError(t, err)
	return append(out, body...)
}

var refDeps = []string{refMoneySchema, refValueSchema, refSourceSchema}

func refEnvelopeValue(id int64) map[string]any {
	return map[string]any{
		"before": nil,
		"after":  map[string]any{"shop.orders.Value": map[string]any{"id": id, "total": map[string]any{"shop.Money": map[string]any{"currency": "EUR", "cents": int64(250)}}}},
		"source": map[string]any{"db": "shop", "schema": "public", "table": "orders", "lsn": int64(1000 + id), "ts_ms": int64(1700000000000)},
		"op":     "c",
		"ts_ms":  nil,
	}
}

// refFixture registers the split envelope: Money, Value (referring to
// Money), Source, and the envelope referring to Value and Source. It
// returns the envelope's schema ID.
func refFixture(f *fixture) int {
	f.registerRefs("shop.Money", refMoneySchema)
	f.registerRefs("shop.orders.Value", refValueSchema, sr.SchemaReference{Name: "shop.Money", Subject: "shop.Money", Version: 1})
	f.registerRefs("io.debezium.connector.postgresql.Source", refSourceSchema)
	return f.registerRefs("shop.orders-value", refEnvelopeSchema,
		sr.SchemaReference{Name: "shop.orders.Value", Subject: "shop.orders.Value", Version: 1},
		sr.SchemaReference{Name: "io.debezium.connector.postgresql.Source", Subject: "io.debezium.connector.postgresql.Source", Version: 1})
}

// A schema whose types are registered under other subjects, and whose
// referenced schemas refer to others in turn, decodes as if it were
// written inline; a second schema ID referring to the same versions does
// not fetch them again.
func TestAvroReferences(t *testing.T) {
	f := newFixture(t)
	var refFetches atomic.Int32
	f.fake.Intercept(func(_ http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/subjects/") {
			refFetches.Add(1)
		}
		return false
	})
	id := refFixture(f)
	d := f.decoder(DecoderOptions{Value: FormatAvro})
	var ch codec.Change
	rec := codec.Record{Topic: "dbz.public.orders", Partition: 2, Offset: 7, Value: encodeRefs(t, id, refEnvelopeSchema, refDeps, refEnvelopeValue(5)), TimestampMs: 1}
	require.NoError(t, d.Decode(rec, &ch))
	require.Equal(t, "orders", ch.Table)
	require.Equal(t, "public", ch.Schema)
	require.Equal(t, codec.OpInsert, ch.Op)
	require.Equal(t, uint64(1005), ch.LSN)
	require.Equal(t, codec.Int(5), ch.Get("id"))
	require.Equal(t, codec.JSON(`{"currency":"EUR","cents":250}`), ch.Get("total"))
	require.Len(t, ch.Declared, 2)
	require.EqualValues(t, 3, refFetches.Load(), "Value, Money and Source, each once")

	// A new version of the envelope (a new schema ID) refers to the same
	// versions: only its own schema is fetched.
	v2 := strings.Replace(refEnvelopeSchema, `{"name":"op","type":"string"},`, `{"name":"op","type":"string"},{"name":"extra","type":["null","string"],"default":null},`, 1)
	id2 := f.registerRefs("shop.orders-value", v2,
		sr.SchemaReference{Name: "shop.orders.Value", Subject: "shop.orders.Value", Version: 1},
		sr.SchemaReference{Name: "io.debezium.connector.postgresql.Source", Subject: "io.debezium.connector.postgresql.Source", Version: 1})
	require.NotEqual(t, id, id2)
	val := refEnvelopeValue(6)
	val["extra"] = nil
	require.NoError(t, d.Decode(codec.Record{Topic: "dbz.public.orders", Offset: 8, Value: encodeRefs(t, id2, v2, refDeps, val), TimestampMs: 1}, &ch))
	require.Equal(t, codec.Int(6), ch.Get("id"))
	require.EqualValues(t, 3, refFetches.Load())

	// A plain record referring to a type of another subject.
	plain := `{"type":"record","name":"Sale","namespace":"shop","fields":[{"name":"id","type":"long"},{"name":"price","type":"Money"}]}`
	pid := f.registerRefs("sales-value", plain, sr.SchemaReference{Name: "shop.Money", Subject: "shop.Money", Version: 1})
	v := encodeRefs(t, pid, plain, []string{refMoneySchema}, map[string]any{"id": int64(1), "price": map[string]any{"currency": "NOK", "cents": int64(9)}})
	require.NoError(t, d.Decode(codec.Record{Topic: "sales", Value: v, TimestampMs: 1}, &ch))
	require.Equal(t, codec.JSON(`{"currency":"NOK","cents":9}`), ch.Get("price"))
}

// Without its references the envelope does not parse: the test above
// would pass for the wrong reason if the schema were self-contained.
func TestAvroReferencesNeeded(t *testing.T) {
	_, err := compileAvro(refEnvelopeSchema, nil)
	require.ErrorContains(t, err, "unknown type")
	// Out of dependency order, Value cannot find Money.
	_, err = compileAvro(refEnvelopeSchema, []reference{{"shop.orders.Value", refValueSchema}, {"shop.Money", refMoneySchema}, {"io.debezium.connector.postgresql.Source", refSourceSchema}})
	require.ErrorContains(t, err, "parse Avro reference shop.orders.Value")
}

// A reference the registry does not have is a record error naming the
// record and the reference, not an outage.
func TestAvroReferenceMissing(t *testing.T) {
	f := newFixture(t)
	id := refFixture(f)
	f.fake.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/subjects/shop.Money/") {
			http.Error(w, `{"error_code":40402,"message":"version not found"}`, http.StatusNotFound)
			return true
		}
		return false
	})
	d := f.decoder(DecoderOptions{Value: FormatAvro})
	var ch codec.Change
	err := d.Decode(codec.Record{Topic: "dbz.public.orders", Partition: 2, Offset: 7, Value: encodeRefs(t, id, refEnvelopeSchema, refDeps, refEnvelopeValue(5))}, &ch)
	var de *codec.DecodeError
	require.ErrorAs(t, err, &de)
	require.False(t, errors.Is(err, ErrUnavailable))
	require.Contains(t, err.Error(), "record dbz.public.orders/2@7")
	require.Contains(t, err.Error(), "reference shop.Money (subject shop.Money version 1) is not in the registry")
}

// A registry outage while fetching a reference is retried, and when it
// lasts is ErrUnavailable, never a record error; the failed fetch is not
// cached, so the record decodes once the registry is back.
func TestAvroReferenceOutage(t *testing.T) {
	f := newFixture(t)
	id := refFixture(f)
	value := encodeRefs(t, id, refEnvelopeSchema, refDeps, refEnvelopeValue(5))
	moneyDown := func(failures int32) {
		var left atomic.Int32
		left.Store(failures)
		f.fake.ClearInterceptors()
		f.fake.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
			if strings.HasPrefix(r.URL.Path, "/subjects/shop.Money/") && left.Add(-1) >= 0 {
				http.Error(w, `{"error_code":50301,"message":"overloaded"}`, http.StatusServiceUnavailable)
				return true
			}
			return false
		})
	}

	// Down for three requests: retried until it answers.
	moneyDown(3)
	var ch codec.Change
	require.NoError(t, f.decoder(DecoderOptions{Value: FormatAvro}).Decode(codec.Record{Topic: "dbz.public.orders", Value: value, TimestampMs: 1}, &ch))
	require.Equal(t, codec.JSON(`{"currency":"EUR","cents":250}`), ch.Get("total"))

	// Down for good (a new registry client, so nothing is cached).
	moneyDown(math.MaxInt32)
	reg, err := NewRegistry(Options{URLs: []string{f.fake.URL()}, RetryTimeout: 300 * time.Millisecond})
	require.NoError(t, err)
	defer reg.Close()
	d, err := NewDecoder(reg, DecoderOptions{Value: FormatAvro})
	require.NoError(t, err)
	err = d.Decode(codec.Record{Topic: "dbz.public.orders", Partition: 1, Offset: 8, Value: value}, &ch)
	require.ErrorIs(t, err, ErrUnavailable)
	var de *codec.DecodeError
	require.False(t, errors.As(err, &de), "an outage must not look like a bad record: %v", err)
	require.Contains(t, err.Error(), "record dbz.public.orders/1@8")
	require.Contains(t, err.Error(), "reference shop.Money")

	// Back: the same record decodes.
	f.fake.ClearInterceptors()
	require.NoError(t, d.Decode(codec.Record{Topic: "dbz.public.orders", Partition: 1, Offset: 8, Value: value, TimestampMs: 1}, &ch))
	require.Equal(t, codec.JSON(`{"currency":"EUR","cents":250}`), ch.Get("total"))
}

// References that refer back to the schema that refers to them end
// instead of looping: each name is fetched once, and the types that
// cannot be parsed in any order are a record error.
func TestAvroReferenceCycle(t *testing.T) {
	f := newFixture(t)
	a := `{"type":"record","name":"A","namespace":"c","fields":[{"name":"x","type":"long"}]}`
	f.registerRefs("a", a)
	b := `{"type":"record","name":"B","namespace":"c","fields":[{"name":"a","type":"A"}]}`
	id := f.registerRefs("b", b, sr.SchemaReference{Name: "c.A", Subject: "a", Version: 1})
	// The registry now answers that A refers to B: a cycle.
	var aFetches atomic.Int32
	f.fake.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/subjects/a/versions/1" {
			return false
		}
		aFetches.Add(1)
		cyclic := `{"type":"record","name":"A","namespace":"c","fields":[{"name":"b","type":["null","B"]}]}`
		body, _ := json.Marshal(map[string]any{"subject": "a", "version": 1, "id": 99, "schema": cyclic,
			"references": []map[string]any{{"name": "c.B", "subject": "b", "version": 1}}})
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		_, _ = w.Write(body)
		return true
	})
	d := f.decoder(DecoderOptions{Value: FormatAvro})
	var ch codec.Change
	value := encodeRefs(t, id, b, []string{a}, map[string]any{"a": map[string]any{"x": int64(1)}})
	err := d.Decode(codec.Record{Topic: "t", Offset: 3, Value: value}, &ch)
	var de *codec.DecodeError
	require.ErrorAs(t, err, &de)
	require.Contains(t, err.Error(), "parse Avro reference")
	require.EqualValues(t, 1, aFetches.Load())
}

// References are cached by subject and version, relying on the registry's
// contract that a version never changes. This test changes one on
// purpose: a new schema ID referring to the same version still gets the
// version fetched first, without asking the registry.
func TestAvroReferencesCachedByVersion(t *testing.T) {
	f := newFixture(t)
	id := refFixture(f)
	d := f.decoder(DecoderOptions{Value: FormatAvro})
	var ch codec.Change
	require.NoError(t, d.Decode(codec.Record{Topic: "o", Value: encodeRefs(t, id, refEnvelopeSchema, refDeps, refEnvelopeValue(1)), TimestampMs: 1}, &ch))

	// Break the invariant: Money version 1 now has another field.
	var moneyFetches atomic.Int32
	f.fake.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasPrefix(r.URL.Path, "/subjects/shop.Money/") {
			return false
		}
		moneyFetches.Add(1)
		changed := `{"type":"record","name":"Money","namespace":"shop","fields":[{"name":"amount","type":"string"}]}`
		body, _ := json.Marshal(map[string]any{"subject": "shop.Money", "version": 1, "id": 1, "schema": changed})
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		_, _ = w.Write(body)
		return true
	})
	plain := `{"type":"record","name":"Sale","namespace":"shop","fields":[{"name":"price","type":"Money"}]}`
	pid := f.registerRefs("sales-value", plain, sr.SchemaReference{Name: "shop.Money", Subject: "shop.Money", Version: 1})
	v := encodeRefs(t, pid, plain, []string{refMoneySchema}, map[string]any{"price": map[string]any{"currency": "NOK", "cents": int64(9)}})
	require.NoError(t, d.Decode(codec.Record{Topic: "sales", Value: v, TimestampMs: 1}, &ch))
	require.Equal(t, codec.JSON(`{"currency":"NOK","cents":9}`), ch.Get("price"), "the version fetched first")
	require.Zero(t, moneyFetches.Load())
}
