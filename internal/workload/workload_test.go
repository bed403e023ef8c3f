package workload

import (
	"bytes"
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/internal/kafkatest"
)

func newGen(cfg Config, seed uint64) *Generator {
	return New(cfg, rand.New(rand.NewPCG(seed, seed^0xABCDEF)))
}

var formats = []struct {
	name string
	cfg  Config
}{
	{"evodb", Config{Format: cdc.FormatEvoDB}},
	{"debezium", Config{Format: cdc.FormatDebezium}},
	{"debezium-schema", Config{Format: cdc.FormatDebezium, SchemaWrapper: true}},
}

func TestDeterministic(t *testing.T) {
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			cfg := f.cfg
			cfg.EvolveAfter, cfg.BadRate = 50, 0.05
			a, b := newGen(cfg, 7), newGen(cfg, 7)
			other := newGen(cfg, 8)
			same := true
			for range 2000 {
				ra, rb, ro := a.Next(), b.Next(), other.Next()
				require.Equal(t, ra, rb)
				same = same && bytes.Equal(ra.Value, ro.Value)
			}
			require.False(t, same, "a different seed gives different records")
		})
	}
}

func TestOpMixAndState(t *testing.T) {
	const n = 20000
	for _, tables := range []int{8, 64, 512} {
		g := newGen(Config{Tables: tables}, 1)
		ops := map[string]int{}
		perTable := map[string]int{}
		live := map[string]map[int64]bool{}
		lastLSN := uint64(0)
		dec, err := cdc.NewDecoder(cdc.FormatEvoDB)
		require.NoError(t, err)
		for range n {
			r := g.Next()
			ops[r.Op]++
			perTable[r.Table]++
			require.Greater(t, r.LSN, lastLSN, "LSNs grow")
			lastLSN = r.LSN
			var ch codec.Change
			require.NoError(t, dec.Decode(codec.Record{Topic: "x", Value: r.Value}, &ch))
			id := ch.Get("id").Int()
			if live[r.Table] == nil {
				live[r.Table] = map[int64]bool{}
			}
			switch r.Op {
			case OpInsert:
				require.False(t, live[r.Table][id], "insert of a new key")
				live[r.Table][id] = true
			case OpUpdate:
				require.True(t, live[r.Table][id], "update of a live key")
			case OpDelete:
				require.True(t, live[r.Table][id], "delete of a live key")
				delete(live[r.Table], id)
			}
		}
		require.InDelta(t, 0.70, float64(ops[OpInsert])/n, 0.02)
		require.InDelta(t, 0.25, float64(ops[OpUpdate])/n, 0.02)
		require.InDelta(t, 0.05, float64(ops[OpDelete])/n, 0.01)
		// Zipf skew: the most popular table gets far more than its share.
		require.Greater(t, perTable["t0"], 2*n/tables, "tables=%d", tables)
	}
}

// TestSetMix loads a table with inserts only, then changes it with an
// update-heavy mix: the shares follow the mix and every update or delete
// names a live key.
func TestSetMix(t *testing.T) {
	g := newGen(Config{Tables: 1}, 3)
	g.SetMix(1, 0)
	live := map[int64]bool{}
	dec, err := cdc.NewDecoder(cdc.FormatEvoDB)
	require.NoError(t, err)
	apply := func(r Record) {
		var ch codec.Change
		require.NoError(t, dec.Decode(codec.Record{Topic: "x", Value: r.Value}, &ch))
		id := ch.Get("id").Int()
		switch r.Op {
		case OpInsert:
			require.False(t, live[id], "insert of a new key")
			live[id] = true
		case OpUpdate:
			require.True(t, live[id], "update of a live key")
		case OpDelete:
			require.True(t, live[id], "delete of a live key")
			delete(live, id)
		}
	}
	for range 1000 {
		r := g.Next()
		require.Equal(t, OpInsert, r.Op)
		apply(r)
	}
	const n = 20000
	g.SetMix(0.05, 0.90)
	ops := map[string]int{}
	for range n {
		r := g.Next()
		ops[r.Op]++
		apply(r)
	}
	require.InDelta(t, 0.05, float64(ops[OpInsert])/n, 0.01)
	require.InDelta(t, 0.90, float64(ops[OpUpdate])/n, 0.01)
	require.InDelta(t, 0.05, float64(ops[OpDelete])/n, 0.01)
}

func TestRecordSizesAndColumns(t *testing.T) {
	var cases []struct {
		name string
		cfg  Config
	}
	for _, f := range formats {
		cases = append(cases, f)
		f.name += "-descriptive"
		f.cfg.DescriptiveColumns = true
		cases = append(cases, f)
	}
	for _, f := range cases {
		t.Run(f.name, func(t *testing.T) {
			cfg := f.cfg
			cfg.Tables = 64
			// The descriptive names change only the names: fewer records
			// cover the sizes they shape.
			records := 5000
			if cfg.DescriptiveColumns {
				records = 1500
			}
			g := newGen(cfg, 3)
			dec, err := cdc.NewDecoder(cfg.Format)
			require.NoError(t, err)
			cols := map[string]int{}
			for i := range records {
				r := g.Next()
				size := len(r.Value)
				if cfg.SchemaWrapper {
					size = payloadSize(t, r.Value)
				}
				require.GreaterOrEqual(t, size, MinRecordBytes, "%s", r.Value)
				require.LessOrEqual(t, size, MaxRecordBytes, "%s", r.Value)
				var ch codec.Change
				require.NoError(t, dec.Decode(codec.Record{Topic: "x", Partition: r.Partition, Offset: int64(i), Key: r.Key, Value: r.Value}, &ch), "%s", r.Value)
				require.Equal(t, r.Table, ch.TableName())
				require.Equal(t, r.LSN, ch.LSN)
				require.Equal(t, r.Op, ch.Op.String())
				if r.Op != OpDelete || cfg.Format == cdc.FormatDebezium {
					cols[r.Table] = max(cols[r.Table], len(ch.Row))
				}
			}
			for table, n := range cols {
				require.GreaterOrEqual(t, n, 6, table)
				require.LessOrEqual(t, n, 20, table)
			}
		})
	}
}

// payloadSize is the size of a wrapped Debezium value's payload.
func payloadSize(t *testing.T, v []byte) int {
	i := bytes.Index(v, []byte(`,"payload":`))
	require.Positive(t, i)
	return len(v) - i - len(`,"payload":`) - 1
}

func TestTypesSurviveDecoding(t *testing.T) {
	g := newGen(Config{Tables: 1}, 5)
	dec, err := cdc.NewDecoder(cdc.FormatEvoDB)
	require.NoError(t, err)
	kinds := map[codec.Kind]bool{}
	bigSeen := false
	for range 500 {
		r := g.Next()
		var ch codec.Change
		require.NoError(t, dec.Decode(codec.Record{Value: r.Value}, &ch))
		for _, f := range ch.Row {
			kinds[f.Value.Kind()] = true
			if f.Value.Kind() == codec.KindInt && f.Value.Int() > 1<<53 {
				bigSeen = true
			}
		}
	}
	for _, k := range []codec.Kind{codec.KindInt, codec.KindFloat, codec.KindBool, codec.KindString, codec.KindJSON, codec.KindNull} {
		require.True(t, kinds[k], "kind %s generated", k)
	}
	require.True(t, bigSeen, "integers beyond 2^53 generated")
}

func TestSchemaEvolution(t *testing.T) {
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			cfg := f.cfg
			cfg.Tables, cfg.EvolveAfter = 1, 10
			g := newGen(cfg, 9)
			dec, err := cdc.NewDecoder(cfg.Format)
			require.NoError(t, err)
			schema := codec.NewSchema()
			for i := range 30 {
				r := g.Next()
				var ch codec.Change
				require.NoError(t, dec.Decode(codec.Record{Topic: "x", Offset: int64(i), Key: r.Key, Value: r.Value}, &ch))
				_, err := schema.Accept(&ch)
				require.NoError(t, err)
				_, has := schema.Column(addedColumn)
				require.Equal(t, i >= 10, has, "change %d", i)
			}
		})
	}
}

func TestBadRecords(t *testing.T) {
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			cfg := f.cfg
			cfg.BadRate = 0.1
			g := newGen(cfg, 11)
			dec, err := cdc.NewDecoder(cfg.Format)
			require.NoError(t, err)
			bad := 0
			for i := range 3000 {
				r := g.Next()
				var ch codec.Change
				err := dec.Decode(codec.Record{Topic: "x", Offset: int64(i), Key: r.Key, Value: r.Value}, &ch)
				if r.Bad {
					bad++
					var de *codec.DecodeError
					require.ErrorAs(t, err, &de, "%s", r.Value)
					continue
				}
				require.NoError(t, err)
			}
			require.InDelta(t, 300, bad, 60)
		})
	}
}

func TestProduce(t *testing.T) {
	c := kafkatest.NewCluster(t, kfake.SeedTopics(4, "w"))
	cl, err := kgo.NewClient(append(ProducerOptions(), kgo.SeedBrokers(c.ListenAddrs()...))...)
	require.NoError(t, err)
	defer cl.Close()

	g := newGen(Config{Topic: "w", Partitions: 4}, 2)
	want := newGen(Config{Topic: "w", Partitions: 4}, 2)
	var calls []int
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, Produce(ctx, cl, g, 2500, func(done int) { calls = append(calls, done) }))
	require.Equal(t, []int{1000, 2000, 2500}, calls)

	// Every record arrives in its partition, in generation order there.
	perPart := map[int32][][]byte{}
	for range 2500 {
		r := want.Next()
		perPart[r.Partition] = append(perPart[r.Partition], r.Value)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("w"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cons.Close()
	got := map[int32][][]byte{}
	for n := 0; n < 2500; {
		fs := cons.PollFetches(ctx)
		require.NoError(t, fs.Err())
		fs.EachRecord(func(r *kgo.Record) {
			got[r.Partition] = append(got[r.Partition], r.Value)
			n++
		})
	}
	require.Equal(t, perPart, got)
}

func TestProduceError(t *testing.T) {
	c := kafkatest.NewCluster(t, kfake.SeedTopics(2, "w"))
	cl, err := kgo.NewClient(append(ProducerOptions(), kgo.SeedBrokers(c.ListenAddrs()...))...)
	require.NoError(t, err)
	defer cl.Close()
	// Partition 5 does not exist in a 2-partition topic.
	g := newGen(Config{Topic: "w", Partitions: 8}, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.Error(t, Produce(ctx, cl, g, 100, nil))
}

func TestSqueeze(t *testing.T) {
	g := newGen(Config{Tables: 1}, 4)
	tb := g.tables[0]
	full := appendRow(nil, g.seed, tb, 1, 0, false, size{}, format{})
	squeezed := appendRow(nil, g.seed, tb, 1, 0, false, size{squeeze: 2}, format{})
	require.Less(t, len(squeezed), len(full))
	require.Equal(t, 2, bytes.Count(squeezed, []byte("null"))-bytes.Count(full, []byte("null"))+countNullsAmongLast(full, tb, 2))
}

// countNullsAmongLast counts the nulls the full row already had among the
// last n drawn columns.
func countNullsAmongLast(row []byte, tb *table, n int) int {
	c := 0
	for _, col := range tb.cols[len(tb.cols)-1-n : len(tb.cols)-1] {
		if bytes.Contains(row, []byte(`"`+col.name+`":null`)) {
			c++
		}
	}
	return c
}

func BenchmarkNext(b *testing.B) {
	for _, f := range formats {
		b.Run(f.name, func(b *testing.B) {
			g := newGen(f.cfg, 1)
			var bytes int64
			for b.Loop() {
				bytes += int64(len(g.Next().Value))
			}
			b.SetBytes(bytes / int64(b.N))
		})
	}
}

// By default timestamps come from StartMs, one millisecond apart; with Now
// every change carries the time it was generated, in every envelope.
func TestTimestamps(t *testing.T) {
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			dec, err := cdc.NewDecoder(f.cfg.Format)
			require.NoError(t, err)
			ts := func(g *Generator) int64 {
				r := g.Next()
				var ch codec.Change
				require.NoError(t, dec.Decode(codec.Record{Key: r.Key, Value: r.Value}, &ch))
				return ch.TS
			}
			g := newGen(f.cfg, 1)
			require.Equal(t, int64(DefaultStartMs), ts(g))
			require.Equal(t, int64(DefaultStartMs+1), ts(g))

			now := time.Date(2026, 12, 6, 20, 0, 0, 0, time.UTC)
			cfg := f.cfg
			cfg.Now = func() time.Time { return now }
			g = newGen(cfg, 1)
			require.Equal(t, now.UnixMilli(), ts(g))
			now = now.Add(time.Second)
			require.Equal(t, now.UnixMilli(), ts(g))
		})
	}
}

// With DescriptiveColumns the columns are named like a real schema, an
// email column holds addresses, and every other value is the one the same
// seed gives with the short names.
func TestDescriptiveColumns(t *testing.T) {
	known := map[string]bool{"id": true, "note": true}
	for _, names := range kindNames {
		for _, n := range names {
			known[n] = true
		}
	}
	dec, err := cdc.NewDecoder(cdc.FormatEvoDB)
	require.NoError(t, err)
	short := newGen(Config{}, 9)
	descriptive := newGen(Config{DescriptiveColumns: true}, 9)
	seen := map[string]bool{}
	emails := 0
	for range 3000 {
		a, b := short.Next(), descriptive.Next()
		var ca, cb codec.Change
		require.NoError(t, dec.Decode(codec.Record{Key: a.Key, Value: a.Value}, &ca))
		require.NoError(t, dec.Decode(codec.Record{Key: b.Key, Value: b.Value}, &cb))
		require.Equal(t, ca.Op, cb.Op)
		require.Len(t, cb.Row, len(ca.Row))
		for i, f := range cb.Row {
			base := f.Name
			if i := strings.LastIndexByte(f.Name, '_'); i > 0 && strings.Trim(f.Name[i+1:], "0123456789") == "" {
				base = f.Name[:i]
			}
			require.True(t, known[f.Name] || known[base], "column %q", f.Name)
			seen[f.Name] = true
			if f.Name == "email" && f.Value.Kind() == codec.KindString {
				require.Regexp(t, `^[a-z]+\.[0-9]+@example\.com$`, f.Value.Text())
				emails++
				continue
			}
			if f.Name == "note" || ca.Row[i].Name == "note" {
				continue
			}
			if f.Value.Kind() == codec.KindNull {
				// The longer names leave less room: a wide row's
				// trailing columns may be squeezed to null.
				continue
			}
			require.Equal(t, ca.Row[i].Value, f.Value, "column %s (short name %s)", f.Name, ca.Row[i].Name)
		}
	}
	for _, name := range []string{"email", "amount", "created_at", "active", "city", "quantity"} {
		require.True(t, seen[name], "%s generated", name)
	}
	require.Positive(t, emails)
}
