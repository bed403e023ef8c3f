package bench

import (
	"fmt"
	"strings"
	"time"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/codec/parquetblock"
	"github.com/evodb/sink/internal/workload"
	"github.com/evodb/sink/partitioner"
	"github.com/evodb/sink/sink"
)

// EncodeConfig sets up the decode+encode baseline.
type EncodeConfig struct {
	Format codec.Format
	// Decoder, when set, decodes instead of codec's decoder of Format (a
	// schema-registry format's decoder).
	Decoder cdc.Decoder
	// Mode is the partition mode whose block size closes a block, as the
	// sink's buffers do; FlushThreshold (default the sink's) closes a block
	// at that many records.
	Mode           string
	FlushThreshold int
}

// EncodeResult is the decode+encode baseline's outcome.
type EncodeResult struct {
	Throughput
	// Bytes is the Parquet bytes written, Blocks the number of blocks.
	Bytes  int64
	Blocks int
}

// DecodeEncode is baseline (b): it decodes every record, fits it to its
// table's schema and encodes per-table blocks closed at the sink's flush
// threshold or block size — the format work the sink cannot avoid, with no
// Kafka, no buffer bookkeeping and no store. Blocks go to a byte counter.
// It runs on one goroutine, so its CPU time is its wall time.
func DecodeEncode(recs []workload.Record, cfg EncodeConfig) (EncodeResult, error) {
	def := sink.DefaultConfig().Tables.Default
	if cfg.Mode == "" {
		cfg.Mode = def.Mode
	}
	if cfg.FlushThreshold <= 0 {
		cfg.FlushThreshold = def.FlushThreshold
	}
	mode, err := partitioner.ModeByName(cfg.Mode)
	if err != nil {
		return EncodeResult{}, err
	}
	d := cfg.Decoder
	if d == nil {
		if d, err = cdc.NewDecoder(cfg.Format); err != nil {
			return EncodeResult{}, err
		}
	}
	// The cheapest decode: no copy of the record, one row array reused.
	dec, ok := d.(cdc.BorrowingDecoder)
	if !ok {
		return EncodeResult{}, fmt.Errorf("decoder of %s cannot borrow", cfg.Format)
	}
	var ch codec.Change
	type tableBuf struct {
		schema *codec.Schema
		rows   *codec.Rows
	}
	var (
		res    EncodeResult
		input  int64
		tables = map[tableKey]*tableBuf{}
		w      countingWriter
	)
	flush := func(t *tableBuf) error {
		if t.rows.Len() == 0 {
			return nil
		}
		_, err := parquetblock.EncodeRows(&w, t.schema, t.rows, parquetblock.EncodeOptions{
			Compression: def.Compression, RowGroupBytes: mode.BlockSize, KafkaColumns: true,
		})
		if err != nil {
			return fmt.Errorf("encode block: %w", err)
		}
		res.Blocks++
		// The next block's arrays are sized as the sink's buffers size
		// theirs (buffer.Table.Drain): the last block's size and a
		// sixteenth more, so a block that outgrows its predecessor by a
		// few cells does not copy all of its arrays near the end, which
		// the exact size made this baseline do at almost every block.
		h := t.rows.Hint()
		t.rows = codec.NewRows(codec.RowsHint{Rows: h.Rows * 17 / 16, Cells: h.Cells * 17 / 16, Bytes: h.Bytes * 17 / 16})
		return nil
	}
	start, cpu0 := time.Now(), selfCPU()
	for i, r := range recs {
		input += int64(len(r.Value))
		if r.Bad {
			continue
		}
		err := dec.DecodeBorrowed(codec.Record{
			Topic: r.Topic, Partition: r.Partition, Offset: int64(i), Key: r.Key, Value: r.Value,
		}, &ch)
		if err != nil {
			return EncodeResult{}, fmt.Errorf("decode record %d: %w", i, err)
		}
		// Keyed by the name's parts: TableName joins them into a new
		// string for every Debezium record.
		key := tableKey{ch.DB, ch.Schema, ch.Table}
		t := tables[key]
		if t == nil {
			t = &tableBuf{schema: codec.NewSchema(), rows: codec.NewRows(codec.RowsHint{})}
			t.schema.SetKafkaColumns(true)
			key = tableKey{strings.Clone(ch.DB), strings.Clone(ch.Schema), strings.Clone(ch.Table)}
			tables[key] = t
		}
		if _, err := t.schema.Accept(&ch); err != nil {
			return EncodeResult{}, fmt.Errorf("record %d: %w", i, err)
		}
		if _, err := t.rows.Append(&ch); err != nil {
			return EncodeResult{}, fmt.Errorf("record %d: %w", i, err)
		}
		if t.rows.Len() >= cfg.FlushThreshold || t.rows.Bytes() >= mode.BlockSize {
			if err := flush(t); err != nil {
				return EncodeResult{}, err
			}
		}
	}
	for _, t := range tables {
		if err := flush(t); err != nil {
			return EncodeResult{}, err
		}
	}
	res.Throughput = newThroughput(len(recs), input, time.Since(start), selfCPU()-cpu0)
	res.Bytes = w.n
	return res, nil
}

// tableKey names a table by the parts of Change.TableName.
type tableKey struct{ db, schema, table string }

// countingWriter counts and discards.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}
