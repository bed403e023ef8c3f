// Package verify proves that the tables of a bucket hold every change of a
// set of Kafka topics exactly once. It reads each topic up to its high
// watermark, decodes every record with the topic's input format, reads every
// table through its Delta log, and matches both sides by Kafka coordinates
// (topic, partition, offset): a produced change missing from the tables is a
// gap, a coordinate present more than once is a duplicate, a row whose table,
// LSN, op or column values differ from its record is a mismatch, and a row
// at a coordinate no change was produced at is unexpected. Records that do
// not decode must be in the dead-letter topic, with the headers that name
// their source.
//
// It shares the codec and the table files with the sink (to decode the
// records and read the blocks) but none of the sink's buffering, routing or
// commit logic, so a bug there shows up as a precise list of coordinates.
// Files another Delta writer appended to a table are counted as skipped,
// not read: they hold no change of the topics.
package verify

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/big"
	"sort"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/mirror"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/tablefile"
)

// Options selects what Verify reads.
type Options struct {
	// Topics are the source topics; every partition of each is verified.
	Topics []string
	// Format is the input format of topics missing from Formats (default
	// evodb).
	Format codec.Format
	// Formats maps a topic to its input format.
	Formats map[string]codec.Format
	// NewDecoder returns a topic's decoder for its format; nil means
	// cdc.NewDecoder, which knows the JSON formats only.
	NewDecoder func(topic string, f codec.Format) (cdc.Decoder, error)
	// From and To bound the offsets verified in every partition: From is
	// the first offset (negative: the log start), To the first offset not
	// verified (negative: the high watermark when Verify starts).
	From, To int64
	// DLQTopic is the dead-letter topic undecodable records must be in;
	// empty means they are only counted.
	DLQTopic string
	// MaxProblems caps how many problems the report lists one by one
	// (default 50); the counts are always complete.
	MaxProblems int
}

// Kind is a kind of problem.
type Kind string

// Problem kinds.
const (
	// Gap: a change was produced but no table holds it.
	Gap Kind = "gap"
	// Duplicate: a coordinate is held by more than one row.
	Duplicate Kind = "duplicate"
	// Mismatch: the row at a coordinate differs from its record.
	Mismatch Kind = "mismatch"
	// Unexpected: a row's coordinate has no change behind it.
	Unexpected Kind = "unexpected"
	// MissingDLQ: an undecodable record is not in the dead-letter topic.
	MissingDLQ Kind = "missing-dlq"
)

// Problem is one thing wrong at one coordinate.
type Problem struct {
	Kind      Kind
	Topic     string
	Partition int32
	Offset    int64
	Detail    string
}

func (p Problem) String() string {
	return fmt.Sprintf("%-11s %s/%d@%d: %s", p.Kind, p.Topic, p.Partition, p.Offset, p.Detail)
}

// PartitionReport counts what was found in one source partition.
type PartitionReport struct {
	Topic     string
	Partition int32
	// From and To are the verified offsets [From, To).
	From, To int64
	// Records read; Changes decoded among them; Tombstones skipped;
	// Undecodable records; InDLQ of the records (undecodable or rejected
	// by the table schema) found in the dead-letter topic.
	Records, Changes, Tombstones, Undecodable, InDLQ int64
	// Problems by kind.
	Counts map[Kind]int64
}

// TableReport describes one table as read.
type TableReport struct {
	Path    string
	Version int64
	Files   int
	Rows    int64
	// Skipped counts the files another writer (a Spark or delta-rs job)
	// appended to the table: they hold no change of the topics and are
	// not read (see tablefile.WrittenBySink). Files counts them too.
	Skipped int
}

// Report is the result of Verify.
type Report struct {
	Partitions []PartitionReport
	Tables     []TableReport
	// Rows is the number of table rows of the verified topics.
	Rows int64
	// Problems lists up to Options.MaxProblems problems in coordinate
	// order; Counts has them all.
	Problems []Problem
	Counts   map[Kind]int64
}

// OK reports whether no problem was found.
func (r *Report) OK() bool {
	for _, n := range r.Counts {
		if n > 0 {
			return false
		}
	}
	return true
}

// String is the report for a person: a verdict, per-partition counts, the
// tables and the listed problems.
func (r *Report) String() string {
	var b strings.Builder
	var records, changes, undecodable, dlq int64
	for _, p := range r.Partitions {
		records += p.Records
		changes += p.Changes
		undecodable += p.Undecodable
		dlq += p.InDLQ
	}
	if r.OK() {
		fmt.Fprintf(&b, "OK: %d records in %d partitions, %d changes each held exactly once by %d rows in %d tables",
			records, len(r.Partitions), changes, r.Rows, len(r.Tables))
	} else {
		fmt.Fprintf(&b, "FAILED: %d records in %d partitions, %d changes, %d rows in %d tables; %s",
			records, len(r.Partitions), changes, r.Rows, len(r.Tables), formatCounts(r.Counts))
	}
	if undecodable > 0 || dlq > 0 {
		fmt.Fprintf(&b, " (%d undecodable, %d in the dead-letter topic)", undecodable, dlq)
	}
	b.WriteString("\n")
	b.WriteString("partitions:\n")
	for _, p := range r.Partitions {
		status := "ok"
		if c := formatCounts(p.Counts); c != "" {
			status = c
		}
		fmt.Fprintf(&b, "  %s/%d [%d,%d) records=%d changes=%d tombstones=%d undecodable=%d dlq=%d: %s\n",
			p.Topic, p.Partition, p.From, p.To, p.Records, p.Changes, p.Tombstones, p.Undecodable, p.InDLQ, status)
	}
	b.WriteString("tables:\n")
	for _, t := range r.Tables {
		fmt.Fprintf(&b, "  %s version=%d files=%d rows=%d", tableName(t.Path), t.Version, t.Files, t.Rows)
		if t.Skipped > 0 {
			fmt.Fprintf(&b, " skipped=%d (files another writer appended)", t.Skipped)
		}
		b.WriteString("\n")
	}
	if len(r.Problems) > 0 {
		var total int64
		for _, n := range r.Counts {
			total += n
		}
		fmt.Fprintf(&b, "problems (%d of %d listed):\n", len(r.Problems), total)
		for _, p := range r.Problems {
			b.WriteString("  " + p.String() + "\n")
		}
	}
	return b.String()
}

func tableName(path string) string {
	if path == "" {
		return "(root)"
	}
	return path
}

// formatCounts lists non-zero problem counts in a fixed order.
func formatCounts(c map[Kind]int64) string {
	var parts []string
	for _, k := range []Kind{Gap, Duplicate, Mismatch, Unexpected, MissingDLQ} {
		if c[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c[k], k))
		}
	}
	return strings.Join(parts, ", ")
}

// coord is a Kafka record coordinate.
type coord struct {
	topic     string
	partition int32
	offset    int64
}

// row is what Verify keeps of a table row: enough to compare it with its
// record and to point at it.
type row struct {
	table  string // routed name from the block's metadata
	path   string // table path
	file   string
	op     codec.Op
	lsn    uint64
	digest uint64
	n      int // how many rows hold the coordinate
	// other is a file holding a copy that differs from this one.
	other string
}

// Verify reads the topics through a client built from kopts and the tables
// that tables finds in bucket, and reports every difference. An error means the verification
// itself could not run (unreachable broker or store, unreadable table).
func Verify(ctx context.Context, kopts []kgo.Opt, bucket objstore.Bucket, tables committer.Format, opts Options) (*Report, error) {
	if len(opts.Topics) == 0 {
		return nil, errors.New("verify: no topics")
	}
	if opts.MaxProblems <= 0 {
		opts.MaxProblems = 50
	}
	decoders := map[string]cdc.Decoder{}
	for _, t := range opts.Topics {
		f := opts.Format
		if tf, ok := opts.Formats[t]; ok {
			f = tf
		}
		if f == "" {
			f = cdc.FormatEvoDB
		}
		var d cdc.Decoder
		var err error
		if opts.NewDecoder != nil {
			d, err = opts.NewDecoder(t, f)
		} else {
			d, err = cdc.NewDecoder(f)
		}
		if err != nil {
			return nil, fmt.Errorf("verify topic %s: %w", t, err)
		}
		decoders[t] = d
	}

	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("verify: kafka client: %w", err)
	}
	defer cl.Close()
	ranges, err := partitionRanges(ctx, cl, opts)
	if err != nil {
		return nil, err
	}

	rep := &Report{Counts: map[Kind]int64{}}
	rows, err := readTables(ctx, bucket, tables, opts.Topics, rep)
	if err != nil {
		return nil, err
	}
	var dlq map[coord]bool
	if opts.DLQTopic != "" {
		if dlq, err = readDLQ(ctx, cl, opts.DLQTopic); err != nil {
			return nil, err
		}
	}

	v := &verifier{rep: rep, rows: rows, dlq: dlq, seen: map[coord]bool{}, max: opts.MaxProblems, parts: map[coord]*PartitionReport{}}
	for _, pr := range ranges {
		p := pr
		p.Counts = map[Kind]int64{}
		rep.Partitions = append(rep.Partitions, p)
	}
	for i := range rep.Partitions {
		p := &rep.Partitions[i]
		v.parts[coord{topic: p.Topic, partition: p.Partition}] = p
	}
	if err := v.consume(ctx, cl, decoders); err != nil {
		return nil, err
	}
	v.leftovers()
	v.finish(ctx, bucket, decoders)
	return rep, nil
}

// partitionRanges resolves the offsets to verify in every partition.
func partitionRanges(ctx context.Context, cl *kgo.Client, opts Options) ([]PartitionReport, error) {
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, opts.Topics...)
	if err != nil {
		return nil, fmt.Errorf("verify: list start offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, opts.Topics...)
	if err != nil {
		return nil, fmt.Errorf("verify: list end offsets: %w", err)
	}
	var out []PartitionReport
	var ferr error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			ferr = errors.Join(ferr, fmt.Errorf("verify: end offset of %s/%d: %w", o.Topic, o.Partition, o.Err))
			return
		}
		from, to := opts.From, opts.To
		if s, ok := starts.Lookup(o.Topic, o.Partition); ok && (from < 0 || from < s.Offset) {
			from = s.Offset
		}
		if to < 0 || to > o.Offset {
			to = o.Offset
		}
		if from > to {
			from = to
		}
		out = append(out, PartitionReport{Topic: o.Topic, Partition: o.Partition, From: from, To: to})
	})
	if ferr != nil {
		return nil, ferr
	}
	for _, t := range opts.Topics {
		if ts, ok := ends[t]; !ok || len(ts) == 0 {
			return nil, fmt.Errorf("verify: topic %s does not exist", t)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out, nil
}

// readTables reads every table of bucket and indexes the rows of topics by
// coordinate.
func readTables(ctx context.Context, bucket objstore.Bucket, tables committer.Format, topics []string, rep *Report) (map[coord]*row, error) {
	paths, err := tables.ListTables(ctx)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	wanted := map[string]bool{}
	for _, t := range topics {
		wanted[t] = true
	}
	rows := map[coord]*row{}
	for _, path := range paths {
		snap, err := tables.Open(path, committer.Options{}).Snapshot(ctx)
		if err != nil {
			return nil, fmt.Errorf("verify: read table %s: %w", tableName(path), err)
		}
		if snap.Metadata.Configuration[mirror.ConfigMirrorOf] != "" {
			// A mirror holds copies of its change log's rows; the
			// mirror checker verifies it against the change log.
			continue
		}
		tr := TableReport{Path: path, Version: snap.Version, Files: len(snap.Files)}
		files := make([]string, 0, len(snap.Files))
		for f := range snap.Files {
			files = append(files, f)
		}
		sort.Strings(files)
		for _, f := range files {
			if !tablefile.WrittenBySink(snap.Files[f]) {
				tr.Skipped++
				continue
			}
			changes, err := readFile(ctx, bucket, path, f)
			if err != nil {
				return nil, err
			}
			tr.Rows += int64(len(changes))
			for i := range changes {
				ch := &changes[i]
				if !wanted[ch.Topic] {
					continue
				}
				rep.Rows++
				c := coord{topic: ch.Topic, partition: ch.Partition, offset: ch.Offset}
				if r, ok := rows[c]; ok {
					r.n++
					if r.other == "" && (r.table != ch.TableName() || r.op != ch.Op || r.lsn != ch.LSN || r.digest != digest(ch.Row)) {
						r.other = path + "/" + f
					}
					continue
				}
				rows[c] = &row{table: ch.TableName(), path: path, file: f, op: ch.Op, lsn: ch.LSN, digest: digest(ch.Row), n: 1}
			}
		}
		rep.Tables = append(rep.Tables, tr)
	}
	return rows, nil
}

// readFile reads one data file of a table.
func readFile(ctx context.Context, bucket objstore.Bucket, path, file string) ([]codec.Change, error) {
	_, changes, err := tablefile.ReadFile(ctx, bucket, path, file)
	if err != nil {
		return nil, fmt.Errorf("verify: table %s file %s: %w", tableName(path), file, err)
	}
	return changes, nil
}

// readDLQ reads the whole dead-letter topic and returns the source
// coordinates its records name in their headers (records missing the
// headers are ignored: they cannot be matched).
func readDLQ(ctx context.Context, cl *kgo.Client, topic string) (map[coord]bool, error) {
	out := map[coord]bool{}
	err := readTopic(ctx, cl, []string{topic}, -1, -1, func(r *kgo.Record) {
		var c coord
		var ok, hasErr bool
		var n int
		for _, h := range r.Headers {
			switch h.Key {
			case "evodb.source.topic":
				c.topic, n = string(h.Value), n+1
			case "evodb.source.partition":
				p, err := strconv.ParseInt(string(h.Value), 10, 32)
				c.partition, ok = int32(p), err == nil
				n++
			case "evodb.source.offset":
				o, err := strconv.ParseInt(string(h.Value), 10, 64)
				c.offset = o
				if err != nil {
					ok = false
				}
				n++
			case "evodb.error":
				hasErr = len(h.Value) > 0
			}
		}
		if ok && n == 3 && hasErr {
			out[c] = true
		}
	})
	if err != nil {
		return nil, fmt.Errorf("verify: read dead-letter topic %s: %w", topic, err)
	}
	return out, nil
}

// readTopic calls fn for every record of topics in [from, to) of each
// partition (negative: log start, high watermark).
func readTopic(ctx context.Context, base *kgo.Client, topics []string, from, to int64, fn func(*kgo.Record)) error {
	ranges, err := partitionRanges(ctx, base, Options{Topics: topics, From: from, To: to})
	if err != nil {
		return err
	}
	return readRanges(ctx, base, ranges, fn)
}

// readRanges calls fn for every record in the given partition ranges, in
// offset order per partition.
func readRanges(ctx context.Context, base *kgo.Client, ranges []PartitionReport, fn func(*kgo.Record)) error {
	parts := map[string]map[int32]kgo.Offset{}
	remaining := map[coord]int64{} // partition → end offset
	for _, r := range ranges {
		if r.From >= r.To {
			continue
		}
		if parts[r.Topic] == nil {
			parts[r.Topic] = map[int32]kgo.Offset{}
		}
		parts[r.Topic][r.Partition] = kgo.NewOffset().At(r.From)
		remaining[coord{topic: r.Topic, partition: r.Partition}] = r.To
	}
	if len(remaining) == 0 {
		return nil
	}
	opts := append(base.Opts(), kgo.ConsumePartitions(parts))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	for len(remaining) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			ferr = errors.Join(ferr, fmt.Errorf("fetch %s/%d: %w", t, p, err))
		})
		if ferr != nil {
			return ferr
		}
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			k := coord{topic: fp.Topic, partition: fp.Partition}
			end, ok := remaining[k]
			if !ok {
				return
			}
			for _, r := range fp.Records {
				if r.Offset >= end {
					break
				}
				fn(r)
			}
			// Control records (transaction markers) occupy offsets
			// without being returned, so the high watermark the broker
			// reports for the fetch also proves the end was passed.
			last := int64(-1)
			if n := len(fp.Records); n > 0 {
				last = fp.Records[n-1].Offset
			}
			if last+1 >= end || (fp.HighWatermark >= end && fp.LastStableOffset >= end && last+1 >= fp.HighWatermark) {
				delete(remaining, k)
			}
		})
	}
	return nil
}

// verifier matches records with rows.
type verifier struct {
	rep   *Report
	rows  map[coord]*row
	dlq   map[coord]bool
	seen  map[coord]bool
	parts map[coord]*PartitionReport
	max   int
	// diffs are mismatches whose values differ, re-read at the end to
	// list the differing columns.
	diffs []pendingDiff
}

type pendingDiff struct {
	problem    int // index in rep.Problems
	path, file string
	change     codec.Change
}

func (v *verifier) add(p Problem) int {
	v.rep.Counts[p.Kind]++
	if pr := v.parts[coord{topic: p.Topic, partition: p.Partition}]; pr != nil {
		pr.Counts[p.Kind]++
	}
	if len(v.rep.Problems) >= v.max {
		return -1
	}
	v.rep.Problems = append(v.rep.Problems, p)
	return len(v.rep.Problems) - 1
}

// consume reads every verified record and checks its row.
func (v *verifier) consume(ctx context.Context, cl *kgo.Client, decoders map[string]cdc.Decoder) error {
	err := readRanges(ctx, cl, v.rep.Partitions, func(r *kgo.Record) {
		v.record(r, decoders[r.Topic])
	})
	if err != nil {
		return fmt.Errorf("verify: read topics: %w", err)
	}
	return nil
}

func (v *verifier) record(r *kgo.Record, dec cdc.Decoder) {
	c := coord{topic: r.Topic, partition: r.Partition, offset: r.Offset}
	pr := v.parts[coord{topic: r.Topic, partition: r.Partition}]
	pr.Records++
	v.seen[c] = true
	var ch codec.Change
	err := dec.Decode(codec.Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, TimestampMs: r.Timestamp.UnixMilli()}, &ch)
	got := v.rows[c]
	switch {
	case errors.Is(err, cdc.ErrTombstone):
		pr.Tombstones++
		if got != nil {
			v.add(Problem{Kind: Unexpected, Topic: c.topic, Partition: c.partition, Offset: c.offset,
				Detail: fmt.Sprintf("tombstone record is a row of table %s (file %s)", tableName(got.path), got.file)})
		}
		return
	case err != nil:
		pr.Undecodable++
		if v.dlq != nil {
			if v.dlq[c] {
				pr.InDLQ++
			} else {
				v.add(Problem{Kind: MissingDLQ, Topic: c.topic, Partition: c.partition, Offset: c.offset,
					Detail: fmt.Sprintf("undecodable record (%v) is not in the dead-letter topic", err)})
			}
		}
		if got != nil {
			v.add(Problem{Kind: Unexpected, Topic: c.topic, Partition: c.partition, Offset: c.offset,
				Detail: fmt.Sprintf("undecodable record is a row of table %s (file %s)", tableName(got.path), got.file)})
		}
		return
	}
	pr.Changes++
	if got == nil {
		if v.dlq[c] {
			// The table schema rejected the change (a wrongly typed
			// value) and the sink sent it to the dead-letter topic.
			pr.InDLQ++
			return
		}
		v.add(Problem{Kind: Gap, Topic: c.topic, Partition: c.partition, Offset: c.offset,
			Detail: fmt.Sprintf("%s change of table %s at LSN %d is in no table", ch.Op, ch.TableName(), ch.LSN)})
		return
	}
	if got.n > 1 {
		v.add(Problem{Kind: Duplicate, Topic: c.topic, Partition: c.partition, Offset: c.offset,
			Detail: fmt.Sprintf("held by %d rows (first in table %s file %s)", got.n, tableName(got.path), got.file)})
	}
	var diffs []string
	if got.table != ch.TableName() {
		diffs = append(diffs, fmt.Sprintf("table %s, want %s", got.table, ch.TableName()))
	}
	if got.op != ch.Op {
		diffs = append(diffs, fmt.Sprintf("op %s, want %s", got.op, ch.Op))
	}
	if got.lsn != ch.LSN {
		diffs = append(diffs, fmt.Sprintf("lsn %d, want %d", got.lsn, ch.LSN))
	}
	if got.other != "" {
		diffs = append(diffs, fmt.Sprintf("another copy in %s differs", got.other))
	}
	valuesDiffer := got.digest != digest(ch.Row)
	if valuesDiffer {
		diffs = append(diffs, "column values differ")
	}
	if len(diffs) == 0 {
		return
	}
	i := v.add(Problem{Kind: Mismatch, Topic: c.topic, Partition: c.partition, Offset: c.offset,
		Detail: fmt.Sprintf("row in table %s file %s: %s", tableName(got.path), got.file, strings.Join(diffs, "; "))})
	switch {
	case i < 0:
	case valuesDiffer:
		v.diffs = append(v.diffs, pendingDiff{problem: i, path: got.path, file: got.file, change: ch})
	case got.other != "":
		v.diffs = append(v.diffs, pendingDiff{problem: i, path: got.path, file: strings.TrimPrefix(got.other, got.path+"/"), change: ch})
	}
}

// leftovers reports rows at coordinates of verified ranges that no record
// was read at.
func (v *verifier) leftovers() {
	var extra []coord
	for c := range v.rows {
		pr := v.parts[coord{topic: c.topic, partition: c.partition}]
		if v.seen[c] {
			continue
		}
		// Rows past the verified range were produced after Verify
		// started, rows before it are outside what was asked.
		if pr == nil || (c.offset >= pr.From && c.offset < pr.To) {
			extra = append(extra, c)
		}
	}
	sort.Slice(extra, func(i, j int) bool { return less(extra[i], extra[j]) })
	for _, c := range extra {
		r := v.rows[c]
		v.add(Problem{Kind: Unexpected, Topic: c.topic, Partition: c.partition, Offset: c.offset,
			Detail: fmt.Sprintf("row of table %s (file %s, %d rows) has no record at this coordinate", tableName(r.path), r.file, r.n)})
	}
}

func less(a, b coord) bool {
	if a.topic != b.topic {
		return a.topic < b.topic
	}
	if a.partition != b.partition {
		return a.partition < b.partition
	}
	return a.offset < b.offset
}

// finish sorts the problems and details the first value mismatches by
// re-reading their rows.
func (v *verifier) finish(ctx context.Context, bucket objstore.Bucket, _ map[string]cdc.Decoder) {
	for _, d := range v.diffs {
		changes, err := readFile(ctx, bucket, d.path, d.file)
		if err != nil {
			continue
		}
		for i := range changes {
			ch := &changes[i]
			if ch.Topic == d.change.Topic && ch.Partition == d.change.Partition && ch.Offset == d.change.Offset {
				if diff := diffRows(d.change.Row, ch.Row); diff != "" {
					v.rep.Problems[d.problem].Detail += ": " + d.file + " has " + diff
				}
				break
			}
		}
	}
	sort.SliceStable(v.rep.Problems, func(i, j int) bool {
		a, b := v.rep.Problems[i], v.rep.Problems[j]
		return less(coord{a.Topic, a.Partition, a.Offset}, coord{b.Topic, b.Partition, b.Offset})
	})
}

// diffRows lists the columns whose values differ between a decoded row
// (want) and a stored row (got).
func diffRows(want, got []codec.Field) string {
	w, g := normalize(want), normalize(got)
	names := map[string]bool{}
	for n := range w {
		names[n] = true
	}
	for n := range g {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	var parts []string
	for _, n := range sorted {
		if w[n] != g[n] {
			parts = append(parts, fmt.Sprintf("%s=%s want %s", n, orNull(g[n]), orNull(w[n])))
		}
	}
	return strings.Join(parts, ", ")
}

func orNull(s string) string {
	if s == "" {
		return "null"
	}
	return s
}

// digest hashes a row's normalized non-null values.
func digest(fields []codec.Field) uint64 {
	m := normalize(fields)
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	h := fnv.New64a()
	for _, n := range names {
		h.Write([]byte(n))
		h.Write([]byte{0})
		h.Write([]byte(m[n]))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// normalize maps each column with a non-null value (the last occurrence
// of a name wins) to a text that is equal for a decoded value and the
// value a table column stores for it: numbers as exact rationals (an
// integer in a double or decimal column is the same number), everything
// else as its text (a string column stores other kinds as their text).
func normalize(fields []codec.Field) map[string]string {
	m := make(map[string]string, len(fields))
	for _, f := range fields {
		v := f.Value
		if v.IsNull() {
			delete(m, f.Name)
			continue
		}
		m[f.Name] = canonical(v)
	}
	return m
}

func canonical(v codec.Value) string {
	switch v.Kind() {
	case codec.KindInt:
		return new(big.Rat).SetInt64(v.Int()).RatString()
	case codec.KindFloat:
		if r, ok := new(big.Rat).SetString(strconv.FormatFloat(v.Float(), 'g', -1, 64)); ok {
			return r.RatString()
		}
		return v.Text()
	case codec.KindDecimal:
		r := new(big.Rat).SetInt(v.Unscaled())
		if s := v.Scale(); s > 0 {
			r.Quo(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(s)), nil)))
		}
		return r.RatString()
	}
	return v.Text()
}
