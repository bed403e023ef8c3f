// Package workload generates deterministic CDC traffic for demos, tests and
// benchmarks: many tables with skewed (Zipf) traffic, 6–20 columns of mixed
// types each, an op mix of about 70 % inserts, 25 % updates and 5 % deletes
// on keys that exist, LSNs that only grow, in the evodb or the Debezium JSON
// envelope (with or without the Kafka Connect schema wrapper). A table's
// first change is always an insert (there is no key to update yet), so with
// hundreds of tables and few changes the insert share runs slightly high.
// Optionally a column appears after a number of changes (schema evolution)
// and a share of records is deliberately undecodable.
//
// Everything derives from the *rand.Rand passed to New, so a seed replays
// the same records byte for byte. Rows are not stored: the values of a row
// are a pure function of (table, key, row version), drawn from a PCG seeded
// with those numbers, so before-images of updates and deletes cost one
// counter per live key rather than a copy of the row.
package workload

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
)

// Op names as they appear in Record.Op.
const (
	OpInsert = "INSERT"
	OpUpdate = "UPDATE"
	OpDelete = "DELETE"
)

// Defaults of Config fields left zero.
const (
	DefaultTables     = 8
	DefaultPartitions = 12
	DefaultZipfS      = 1.1
	// DefaultStartMs is the source timestamp of the first change
	// (2023-11-14T22:13:20Z); later changes are one millisecond apart, so
	// timestamps do not depend on the wall clock.
	DefaultStartMs = 1_700_000_000_000
	DefaultDB      = "inventory"
	DefaultSchema  = "public"
)

// Record sizes the generator aims for (the envelope without the Debezium
// schema wrapper, which alone can exceed them).
const (
	MinRecordBytes = 150
	MaxRecordBytes = 500
)

// Config describes a workload. The zero value is a valid 8-table evodb
// workload over 12 partitions.
type Config struct {
	// Format is the envelope: cdc.FormatEvoDB (default) or
	// cdc.FormatDebezium.
	Format codec.Format
	// SchemaWrapper wraps Debezium keys and values in
	// {"schema":…,"payload":…} with Kafka Connect schemas.
	SchemaWrapper bool
	// Topic is the topic every record is addressed to.
	Topic string
	// Partitions is the number of partitions records are spread over by
	// key hash; default 12.
	Partitions int32
	// Tables is the number of tables, named t0, t1, …; default 8.
	// TableNames, when set, names the tables instead.
	Tables     int
	TableNames []string
	// DB and Schema are the Debezium source.db and source.schema;
	// defaults "inventory" and "public".
	DB, Schema string
	// ZipfS is the Zipf exponent of table popularity (> 1; larger is more
	// skewed); default 1.1.
	ZipfS float64
	// StartLSN is the LSN of the first change (default 1); each change
	// takes the next one, so LSNs grow in every table.
	StartLSN uint64
	// StartMs is the source timestamp of the first change; later changes
	// are one millisecond apart. It is ignored when Now is set.
	StartMs int64
	// Now, when set, stamps each change with the time it is generated
	// instead, so that a sink's freshness (now minus the newest committed
	// source timestamp) means what it says for live traffic such as the
	// demo's. Records then depend on the clock; leave it nil wherever a
	// seed must replay the same bytes.
	Now func() time.Time
	// DescriptiveColumns names the generated columns like a real schema
	// (email, amount, created_at) instead of by kind and position (s5,
	// d2, at11), for demos whose tables people query; an "email" column
	// holds addresses. A seed draws the same values either way; the
	// records are longer, so the trailing columns of the widest rows are
	// null more often to stay within MaxRecordBytes.
	DescriptiveColumns bool
	// EvolveAfter adds a column to a table after that many changes to it
	// (0: never).
	EvolveAfter int
	// BadRate is the fraction of records that cannot be decoded (malformed
	// JSON or envelope fields of the wrong type); 0 means none.
	BadRate float64
}

// Record is one generated Kafka record.
type Record struct {
	Topic     string
	Partition int32
	Key       []byte
	Value     []byte
	// Table is the table name as the sink routes it: "t3" for evodb,
	// "inventory.public.t3" for Debezium. It is set for bad records too.
	Table string
	// LSN and Op are those of the change; zero for bad records.
	LSN uint64
	Op  string
	// Bad marks a record the sink cannot decode.
	Bad bool
}

// Generator produces records. It is not safe for concurrent use.
type Generator struct {
	cfg    Config
	rng    *rand.Rand
	zipf   *rand.Zipf
	tables []*table
	lsn    uint64
	seq    int64
	seed   uint64
	buf    []byte
	// mix holds the op shares of later changes (SetMix).
	mix opMix
}

// opMix is the share of inserts and of updates among changes to a table
// that has live keys; deletes take the rest.
type opMix struct{ insert, update float64 }

// defaultMix is the package doc's 70 % inserts, 25 % updates, 5 % deletes.
var defaultMix = opMix{insert: 0.70, update: 0.25}

// New returns a generator for cfg drawing every choice from rng.
func New(cfg Config, rng *rand.Rand) *Generator {
	if cfg.Format == "" {
		cfg.Format = cdc.FormatEvoDB
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = DefaultPartitions
	}
	if len(cfg.TableNames) == 0 {
		n := cfg.Tables
		if n <= 0 {
			n = DefaultTables
		}
		for i := range n {
			cfg.TableNames = append(cfg.TableNames, "t"+strconv.Itoa(i))
		}
	}
	cfg.Tables = len(cfg.TableNames)
	if cfg.DB == "" {
		cfg.DB = DefaultDB
	}
	if cfg.Schema == "" {
		cfg.Schema = DefaultSchema
	}
	if !(cfg.ZipfS > 1) {
		cfg.ZipfS = DefaultZipfS
	}
	if cfg.StartLSN == 0 {
		cfg.StartLSN = 1
	}
	if cfg.StartMs == 0 {
		cfg.StartMs = DefaultStartMs
	}
	g := &Generator{cfg: cfg, rng: rng, lsn: cfg.StartLSN, seed: rng.Uint64(), mix: defaultMix}
	if cfg.Tables > 1 {
		g.zipf = rand.NewZipf(rng, cfg.ZipfS, 1, uint64(cfg.Tables-1))
	}
	for i, name := range cfg.TableNames {
		g.tables = append(g.tables, newTable(i, name, rng, cfg.DescriptiveColumns))
	}
	return g
}

// SetMix sets the share of inserts and of updates (each of a uniformly
// drawn live key) among the following changes; deletes take the rest,
// 1-insert-update. A table without live keys still gets an insert. A
// benchmark loads a table with SetMix(1, 0), then measures an
// update-heavy or insert-heavy mix on it; the default is 0.70, 0.25.
func (g *Generator) SetMix(insert, update float64) { g.mix = opMix{insert: insert, update: update} }

// Config returns the configuration with defaults applied.
func (g *Generator) Config() Config { return g.cfg }

// TableNames returns the routed names of the tables (see Record.Table).
func (g *Generator) TableNames() []string {
	names := make([]string, len(g.tables))
	for i, t := range g.tables {
		names[i] = g.routedName(t)
	}
	return names
}

func (g *Generator) routedName(t *table) string {
	if g.cfg.Format == cdc.FormatDebezium {
		return g.cfg.DB + "." + g.cfg.Schema + "." + t.name
	}
	return t.name
}

// Next returns the next record.
func (g *Generator) Next() Record {
	t := g.tables[0]
	if g.zipf != nil {
		t = g.tables[g.zipf.Uint64()]
	}
	if g.cfg.BadRate > 0 && g.rng.Float64() < g.cfg.BadRate {
		return g.bad(t)
	}
	c := g.change(t)
	g.buf = g.buf[:0]
	var key []byte
	if g.cfg.Format == cdc.FormatDebezium {
		g.buf = g.appendDebezium(g.buf, t, &c)
		key = g.debeziumKey(t, c.id)
	} else {
		g.buf = g.appendEvoDB(g.buf, t, &c)
		key = fmt.Appendf(nil, `{"table":%q,"id":%d}`, t.name, c.id)
	}
	return Record{
		Topic:     g.cfg.Topic,
		Partition: g.partition(key),
		Key:       key,
		Value:     append([]byte(nil), g.buf...),
		Table:     g.routedName(t),
		LSN:       c.lsn,
		Op:        c.op,
	}
}

// partition spreads keys over partitions by FNV-1a hash, so every change
// of one key lands in one partition, in order.
func (g *Generator) partition(key []byte) int32 {
	h := fnv.New32a()
	h.Write(key)
	return int32(h.Sum32() % uint32(g.cfg.Partitions))
}

// change is one generated change before encoding.
type change struct {
	op      string
	id      int64
	version uint32 // row version of the after-image (before-image: version-1)
	lsn     uint64
	ts      int64
	evolved bool // the table has its added column
	target  int  // record size to aim for
}

// change picks an op and key for t and advances t's state.
func (g *Generator) change(t *table) change {
	c := change{
		lsn:    g.lsn,
		ts:     g.timestamp(),
		target: MinRecordBytes + g.rng.IntN(MaxRecordBytes-MinRecordBytes+1),
	}
	g.lsn++
	g.seq++
	t.changes++
	c.evolved = g.cfg.EvolveAfter > 0 && t.changes > g.cfg.EvolveAfter
	p := g.rng.Float64()
	switch {
	case len(t.live) == 0 || p < g.mix.insert:
		c.op = OpInsert
		c.id = t.nextID
		t.nextID++
		t.add(c.id)
	case p < g.mix.insert+g.mix.update:
		c.op = OpUpdate
		c.id = t.live[g.rng.IntN(len(t.live))]
		t.versions[c.id]++
		c.version = t.versions[c.id]
	default:
		c.op = OpDelete
		c.id = t.live[g.rng.IntN(len(t.live))]
		c.version = t.versions[c.id]
		t.remove(c.id)
	}
	return c
}

// timestamp is the source timestamp of the next change.
func (g *Generator) timestamp() int64 {
	if g.cfg.Now != nil {
		return g.cfg.Now().UnixMilli()
	}
	return g.cfg.StartMs + g.seq
}

// bad returns an undecodable record for table t.
func (g *Generator) bad(t *table) Record {
	id := t.nextID
	ts := g.timestamp()
	var v []byte
	switch g.rng.IntN(3) {
	case 0:
		// Truncated JSON, as a broken producer or a cut write leaves it.
		v = fmt.Appendf(nil, `{"op":"INSERT","table":%q,"data":{"id":%d,"ts":%d`, t.name, id, ts)
	case 1:
		// An ordering key of the wrong type.
		if g.cfg.Format == cdc.FormatDebezium {
			v = fmt.Appendf(nil, `{"op":"c","after":{"id":%d},"source":{"db":%q,"schema":%q,"table":%q,"lsn":"not-a-number","ts_ms":%d}}`,
				id, g.cfg.DB, g.cfg.Schema, t.name, ts)
		} else {
			v = fmt.Appendf(nil, `{"op":"INSERT","table":%q,"data":{"id":%d},"lsn":"not-a-number"}`, t.name, id)
		}
	default:
		// A row image that is not an object.
		if g.cfg.Format == cdc.FormatDebezium {
			v = fmt.Appendf(nil, `{"op":"c","after":"id=%d","source":{"db":%q,"schema":%q,"table":%q,"lsn":1,"ts_ms":%d}}`,
				id, g.cfg.DB, g.cfg.Schema, t.name, ts)
		} else {
			v = fmt.Appendf(nil, `{"op":"INSERT","table":%q,"data":"id=%d","lsn":1}`, t.name, id)
		}
	}
	key := fmt.Appendf(nil, `{"id":%d}`, id)
	return Record{Topic: g.cfg.Topic, Partition: g.partition(key), Key: key, Value: v, Table: g.routedName(t), Bad: true}
}
