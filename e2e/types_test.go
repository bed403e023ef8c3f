package e2e

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/committer/delta"
)

// everyTypeSchema is a Debezium envelope schema declaring every type the
// sink maps; small is int16 until the source widens it to int64.
func everyTypeSchema(smallType string) string {
	return `{"type":"struct","name":"srv.public.types.Envelope","fields":[
 {"type":"struct","optional":true,"field":"after","name":"srv.public.types.Value","fields":[
  {"type":"int32","optional":false,"field":"id"},
  {"type":"` + smallType + `","optional":true,"field":"small"},
  {"type":"int8","optional":true,"field":"tiny"},
  {"type":"int64","optional":true,"field":"big"},
  {"type":"float","optional":true,"field":"f32"},
  {"type":"double","optional":true,"field":"f64"},
  {"type":"boolean","optional":true,"field":"ok"},
  {"type":"string","optional":true,"field":"name"},
  {"type":"bytes","optional":true,"field":"raw"},
  {"type":"int32","optional":true,"name":"io.debezium.time.Date","field":"born"},
  {"type":"int64","optional":true,"name":"io.debezium.time.Timestamp","field":"ts_ms"},
  {"type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp","field":"ts_us"},
  {"type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp","field":"ts_z"},
  {"type":"int64","optional":true,"name":"io.debezium.time.MicroTime","field":"t_us"},
  {"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2","connect.decimal.precision":"10"},"field":"price"},
  {"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"0","connect.decimal.precision":"50"},"field":"huge"},
  {"type":"struct","optional":true,"name":"io.debezium.data.VariableScaleDecimal","fields":[{"type":"int32","field":"scale"},{"type":"bytes","field":"value"}],"field":"vsd"},
  {"type":"string","optional":true,"name":"io.debezium.data.Json","field":"doc"},
  {"type":"string","optional":true,"name":"io.debezium.data.Uuid","field":"uid"},
  {"type":"array","optional":true,"items":{"type":"string"},"field":"tags"},
  {"type":"struct","optional":true,"fields":[{"type":"int32","field":"x"}],"field":"point"}]},
 {"type":"struct","field":"source","fields":[]},
 {"type":"string","field":"op"}]}`
}

// TestEveryType writes every column type the sink produces (Debezium's
// declared types, evodb's inferred ones) over many commits, so the log has
// checkpoints and compaction merges files, and every reader, Spark and
// Polars included, reads every column of each table: a file whose
// physical type differs from the table's schema fails them. Debezium's
// int16 column widened to int64 mid-stream still fits (integers are long
// from the start); an evodb value that would turn a committed long column
// into double goes to the dead-letter topic instead.
func TestEveryType(t *testing.T) {
	h := newHarness(t, 9)
	dbz, evo, dlq := h.topic("dbz"), h.topic("evo"), h.topic("dlq")
	h.createTopics(1, dbz, evo, dlq)
	opts := sinkOptions{topics: []string{dbz, evo}, formats: map[string]string{dbz: "debezium"}, dlq: dlq,
		flushThreshold: 4, flushInterval: 200 * time.Millisecond, compactionInterval: time.Second}
	a := h.startSink(opts)

	b64 := func(b ...byte) string { return base64.StdEncoding.EncodeToString(b) }
	want := map[string][]string{}
	refused := 0
	const rounds = 14
	for r := range rounds {
		var recs []*kgo.Record
		for i := range 4 {
			id := r*4 + i
			small, smallType := fmt.Sprint(-id), "int16"
			if r >= rounds/2 {
				small, smallType = fmt.Sprint(int64(1)<<40+int64(id)), "int64"
			}
			after := fmt.Sprintf(`{"id":%d,"small":%s,"tiny":%d,"big":%d,"f32":1.5,"f64":%d.25,"ok":%t,"name":"név %d","raw":%q,`+
				`"born":%d,"ts_ms":1700000000123,"ts_us":1700000000123456,"ts_z":"2024-02-29T12:00:00.5+01:00","t_us":3600000000,`+
				`"price":%q,"huge":%q,"vsd":{"scale":3,"value":%q},"doc":"{\"k\":[%d]}","uid":"0b7a-%d","tags":["a","b%d"],"point":{"x":%d}}`,
				id, small, id%100, int64(1)<<50+int64(id), id, id%2 == 0, id, b64(byte(id), 0, 255),
				19000+id, b64(0x30, 0x39), b64(0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), b64(byte(id)), id, id, id, id)
			val := `{"schema":` + everyTypeSchema(smallType) + `,"payload":{"after":` + after +
				fmt.Sprintf(`,"source":{"db":"shop","schema":"public","table":"types","lsn":%d,"ts_ms":1700000000000},"op":"c"}}`, 1000+id)
			recs = append(recs, &kgo.Record{Topic: dbz, Key: []byte(fmt.Sprintf("types:%d", id)), Value: []byte(val)})

			// evodb infers: long, double, boolean, string, JSON text. Once
			// n is committed as long, a fraction is refused.
			n := fmt.Sprint(id)
			if r >= 2 && i == 3 {
				n = fmt.Sprintf("%d.5", id)
			}
			val = fmt.Sprintf(`{"op":"INSERT","table":"inferred","data":{"id":%d,"n":%s,"d":%d.75,"ok":%t,"s":"%s","o":{"a":[%d,{"b":null}]},"arr":[1,"x"]},"lsn":%d,"ts":1700000000000}`,
				id, n, id, id%3 == 0, strings.Repeat("x", id%5), id, 1000+id)
			recs = append(recs, &kgo.Record{Topic: evo, Value: []byte(val)})
		}
		require.NoError(t, h.cl.ProduceSync(h.ctx(time.Minute), recs...).FirstErr())
		for _, rec := range recs {
			coord := fmt.Sprintf("%s/%d/%d", rec.Topic, rec.Partition, rec.Offset)
			switch {
			case rec.Topic == dbz:
				want["types"] = append(want["types"], coord)
			case strings.Contains(string(rec.Value), `.5,"d"`):
				refused++
			default:
				want["inferred"] = append(want["inferred"], coord)
			}
		}
		// One round at a time: each is its own commits, so the log grows
		// past a checkpoint and compaction has small files to merge.
		h.waitDone(opts.topics, 2*time.Minute)
	}
	a.stop()
	// The readers below read tables with a checkpoint and compacted files.
	b := h.bucket()
	for _, table := range []string{"types", "inferred"} {
		rc, err := b.Get(h.ctx(time.Minute), table+"/_delta_log/_last_checkpoint")
		require.NoError(t, err, "table %s has no checkpoint", table)
		require.NoError(t, rc.Close())
		snap, err := delta.Open(b, table, delta.Options{}).Snapshot(h.ctx(time.Minute))
		require.NoError(t, err)
		compacted := 0
		for _, add := range snap.Files {
			if lvl := add.Tags["evodb.level"]; lvl != "" && lvl != "0" {
				compacted++
			}
		}
		require.Positive(t, compacted, "table %s has no compacted file", table)
	}
	require.Positive(t, refused)
	end, err := endOffset(h, dlq)
	require.NoError(t, err)
	require.Equal(t, int64(refused), end, "refused records in the dead-letter topic")
	h.readers(want)
}

// endOffset returns the end offset of partition 0 of a topic.
func endOffset(h *harness, topic string) (int64, error) {
	ends, err := kadm.NewClient(h.cl).ListEndOffsets(h.ctx(10*time.Second), topic)
	if err != nil {
		return 0, err
	}
	o, ok := ends.Lookup(topic, 0)
	if !ok {
		return 0, fmt.Errorf("no end offset for %s/0", topic)
	}
	return o.Offset, o.Err
}
