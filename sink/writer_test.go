package sink

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/internal/tabletest"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/tablefile"
)

// Table writers over a memory bucket, without a broker: what one table
// does with the changes it is given, and with other writers of the table.

const writerGroup = "g"

// refusals collects the misfits a writer hands to its env.refuse.
type refusals struct {
	mu  sync.Mutex
	got []misfit
	err error // returned by refuse, as errors.tolerance none does
}

func (r *refusals) refuse(_ context.Context, _ string, m []misfit) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.got = append(r.got, m...)
	return nil
}

func testWriterEnv(b objstore.Bucket, r *refusals) *writerEnv {
	if r == nil {
		r = &refusals{}
	}
	return &writerEnv{
		bucket: b, group: writerGroup, instance: "test", now: time.Now,
		log: slog.New(slog.DiscardHandler), metrics: newMetrics(prometheus.NewRegistry()),
		format: delta.NewFormat(b, delta.Options{CheckpointInterval: 10}), refuse: r.refuse,
	}
}

// openWriter opens the writer of table "users" as the Sink does.
func openWriter(t *testing.T, env *writerEnv) *tableWriter {
	t.Helper()
	ctx := context.Background()
	def := DefaultConfig()
	def.ApplyDefaults()
	cfg := def.TableConfig("users")
	w, err := newTableWriter(env, "users", "users", cfg)
	require.NoError(t, err)
	snap, err := w.load(ctx)
	require.NoError(t, err)
	require.NoError(t, w.seedDedupe(ctx, snap))
	require.NoError(t, w.adopt(snap, false))
	return w
}

// change is an evodb change of table users at a source coordinate.
func change(partition int32, offset int64, lsn uint64, row ...codec.Field) codec.Change {
	return codec.Change{Topic: "cdc", Partition: partition, Offset: offset, Table: "users", Op: codec.OpInsert, LSN: lsn, TS: 1, Row: row}
}

func field(name string, v codec.Value) codec.Field { return codec.Field{Name: name, Value: v} }

// offer admits and buffers changes as the poll loop does, and returns
// what the writer said of each.
func offer(t *testing.T, w *tableWriter, changes ...codec.Change) []admission {
	t.Helper()
	var out []admission
	for i := range changes {
		ch := &changes[i]
		tp := topicPartition{ch.Topic, ch.Partition}
		adm, err := w.admit(tp, appIDOf(writerGroup, tp), "", -1, ch.Offset, ch)
		require.NoError(t, err)
		out = append(out, adm)
		if adm == admit {
			_, err := w.add(tp, ch, time.Now())
			require.NoError(t, err)
		}
	}
	return out
}

// flushOnce drains w and runs its flush once, as a flush goroutine does.
func flushOnce(t *testing.T, w *tableWriter) (flushResult, error) {
	t.Helper()
	job := w.takeFlush("test", true)
	require.NotNil(t, job, "nothing buffered")
	res, err := w.flush(context.Background(), job)
	w.finishFlush(job, err, time.Now())
	return res, err
}

// storedOffsets returns the source offsets of partition 0 the bucket's
// tables hold, sorted, with repeats.
func storedOffsets(t *testing.T, b objstore.Bucket) []int64 {
	t.Helper()
	var out []int64
	for _, ch := range tabletest.Changes(t, context.Background(), b) {
		out = append(out, ch.Offset)
	}
	slices.Sort(out)
	return out
}

func offsets(from, to int64) []int64 {
	var out []int64
	for o := from; o <= to; o++ {
		out = append(out, o)
	}
	return out
}

func rowsAt(partition int32, from, to int64) []codec.Change {
	var out []codec.Change
	for o := from; o <= to; o++ {
		out = append(out, change(partition, o, uint64(100+o), field("id", codec.Int(o))))
	}
	return out
}

func TestWriterFlushCommits(t *testing.T) {
	tests := []struct {
		name        string
		changes     []codec.Change
		wantRows    int64
		wantDurable map[topicPartition]int64
	}{
		{"one partition", rowsAt(0, 0, 2), 3, map[topicPartition]int64{{"cdc", 0}: 2}},
		{"two partitions", append(rowsAt(0, 0, 1), rowsAt(1, 5, 6)...), 4, map[topicPartition]int64{{"cdc", 0}: 1, {"cdc", 1}: 6}},
		{"an offset buffered twice is stored once", append(rowsAt(0, 0, 1), rowsAt(0, 1, 1)...), 2, map[topicPartition]int64{{"cdc", 0}: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := objstore.NewMemory()
			w := openWriter(t, testWriterEnv(b, nil))
			offer(t, w, tt.changes...)
			res, err := flushOnce(t, w)
			require.NoError(t, err)
			require.NotNil(t, res.event)
			require.Equal(t, tt.wantRows, res.event.Rows)
			require.Equal(t, int64(0), res.event.Version, "version 0 creates the table holding the block")
			require.Equal(t, tt.wantDurable, res.durable)
			require.Len(t, storedOffsets(t, b), int(tt.wantRows))
			require.Equal(t, tt.wantRows, w.committedRows())
			require.False(t, w.busy())
			snap := w.snapshot()
			for tp, last := range tt.wantDurable {
				v, ok := snap.TxnVersion(appIDOf(writerGroup, tp))
				require.True(t, ok)
				require.Equal(t, last, v)
			}
		})
	}
}

// A zombie (a member that lost its partitions but still flushes) and the
// partitions' new owner write the same offsets: the table holds each once.
func TestWriterZombie(t *testing.T) {
	tests := []struct {
		name       string
		first      [2]int64 // offsets the new owner commits first
		zombie     [2]int64 // offsets the zombie then flushes
		wantCommit int64    // rows the zombie commits
	}{
		{"all durable already", [2]int64{0, 9}, [2]int64{0, 9}, 0},
		{"partly durable", [2]int64{0, 4}, [2]int64{0, 9}, 5},
		{"nothing durable", [2]int64{0, 4}, [2]int64{5, 9}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := objstore.NewMemory()
			env := testWriterEnv(b, nil)
			owner := openWriter(t, env)
			// The table exists before the zombie loads it, so its commit
			// is refused by the committer, not filtered at creation.
			offer(t, owner, rowsAt(1, 0, 0)...)
			_, err := flushOnce(t, owner)
			require.NoError(t, err)
			zombie := openWriter(t, env)

			offer(t, owner, rowsAt(0, tt.first[0], tt.first[1])...)
			_, err = flushOnce(t, owner)
			require.NoError(t, err)
			offer(t, zombie, rowsAt(0, tt.zombie[0], tt.zombie[1])...)
			res, err := flushOnce(t, zombie)
			require.NoError(t, err)
			require.Equal(t, map[topicPartition]int64{{"cdc", 0}: tt.zombie[1]}, res.durable)
			if tt.wantCommit == 0 {
				require.Nil(t, res.event)
			} else {
				require.NotNil(t, res.event)
				require.Equal(t, tt.wantCommit, res.event.Rows)
			}
			if tt.first[1] >= tt.zombie[0] {
				require.Equal(t, 1.0, counterValue(t, env.metrics.commitConflicts.WithLabelValues("users")), "the zombie's first commit is refused")
			}
			want := append(offsets(0, 0), offsets(min(tt.first[0], tt.zombie[0]), max(tt.first[1], tt.zombie[1]))...)
			slices.Sort(want)
			require.Equal(t, want, storedOffsets(t, b), "every offset once")
		})
	}
}

// A change whose value does not fit the type another writer committed for
// its column first is refused (to the dead-letter topic, or stopping the
// sink), and the rest of its flush is committed.
func TestWriterRefusesMisfits(t *testing.T) {
	stop := &RecordError{Topic: "cdc", Partition: 0, Offset: 0, Err: errors.New("misfit")}
	tests := []struct {
		name      string
		refuseErr error
		want      []int64 // ids stored
	}{
		{"sent to the dead-letter topic", nil, []int64{1, 3}},
		{"stops the sink", stop, []int64{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := objstore.NewMemory()
			r := &refusals{err: tt.refuseErr}
			first := openWriter(t, testWriterEnv(b, nil))
			late := openWriter(t, testWriterEnv(b, r))
			offer(t, first, change(1, 0, 1, field("id", codec.Int(1)), field("v", codec.Int(5))))
			offer(t, late,
				change(0, 0, 2, field("id", codec.Int(2)), field("v", codec.String("not a number"))),
				change(0, 1, 3, field("id", codec.Int(3)), field("v", codec.Int(7))))
			_, err := flushOnce(t, first)
			require.NoError(t, err)
			res, err := flushOnce(t, late)
			if tt.refuseErr != nil {
				require.ErrorIs(t, err, tt.refuseErr)
				require.False(t, retryable(err), "a record error is not retried")
			} else {
				require.NoError(t, err)
				require.Equal(t, int64(1), res.event.Rows)
				require.Len(t, r.got, 1)
				require.Equal(t, int64(0), r.got[0].change.Offset)
				require.Equal(t, map[topicPartition]int64{{"cdc", 0}: 1}, res.durable, "the refused change's offset passes too")
			}
			var ids []int64
			for _, ch := range tabletest.Changes(t, context.Background(), b) {
				ids = append(ids, ch.Get("id").Int())
			}
			slices.Sort(ids)
			require.Equal(t, tt.want, ids)
		})
	}
}

// TestWriterMisfitCheckSkipped breaks the invariant refuseMisfits skips its
// check on: a job holds a change that does not fit the job's own schema,
// which is the table's. The check is skipped, as the schema's types are
// the committed ones, and the upload refuses the block instead: the flush
// stops with the encoding error, nothing is committed and nothing is
// handed to the dead-letter path. With the invariant intact (the buffer's
// schema took the change's type, TestWriterRefusesMisfits) the change is
// refused on its own.
func TestWriterMisfitCheckSkipped(t *testing.T) {
	b := objstore.NewMemory()
	r := &refusals{}
	first := openWriter(t, testWriterEnv(b, nil))
	late := openWriter(t, testWriterEnv(b, r))
	offer(t, first, change(1, 0, 1, field("id", codec.Int(1)), field("v", codec.Int(5))))
	_, err := flushOnce(t, first)
	require.NoError(t, err)
	committed, err := tablefile.TableSchema(first.snapshot())
	require.NoError(t, err)

	offer(t, late, change(0, 0, 2, field("id", codec.Int(2)), field("v", codec.String("not a number"))))
	job := late.takeFlush("test", true)
	require.NotNil(t, job)
	// The buffer gave v the type string; the job now claims the table's
	// long, as if the buffer had accepted the change under it.
	job.schema = committed.Clone()
	require.NoError(t, late.reload(context.Background()))
	_, err = late.flush(context.Background(), job)
	late.finishFlush(job, err, time.Now())
	require.ErrorIs(t, err, tablefile.ErrEncode)
	require.False(t, retryable(err))
	require.Empty(t, r.got, "the check was skipped: nothing was refused")
	require.Equal(t, []int64{0}, storedOffsets(t, b), "only the first writer's change is stored")
}

// With `dedupe: lsn`, a change whose (LSN, key) is buffered or committed is
// dropped, also by a writer that loads the table afterwards.
func TestWriterDedupe(t *testing.T) {
	keyed := func(offset int64, lsn uint64, id int64) codec.Change {
		ch := change(0, offset, lsn, field("id", codec.Int(id)))
		ch.Key = []codec.Field{field("id", codec.Int(id))}
		return ch
	}
	b := objstore.NewMemory()
	env := testWriterEnv(b, nil)
	env.dedupeWindow = 100
	w := openWriter(t, env)
	require.Equal(t, []admission{admit, admit, skipDuplicate, admit},
		offer(t, w, keyed(0, 10, 1), keyed(1, 11, 1), keyed(2, 10, 1), keyed(3, 10, 2)),
		"a replay of a buffered change is dropped; the same LSN with another key is not")
	_, err := flushOnce(t, w)
	require.NoError(t, err)

	tests := []struct {
		name   string
		lsn    uint64
		id     int64
		expect admission
	}{
		{"committed by this writer", 11, 1, skipDuplicate},
		{"new LSN", 12, 1, admit},
		{"new key", 11, 3, admit},
	}
	reloaded := openWriter(t, env)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, wr := range []*tableWriter{w, reloaded} {
				ch := keyed(int64(10+i), tt.lsn, tt.id)
				adm, err := wr.admit(topicPartition{"cdc", 0}, appIDOf(writerGroup, topicPartition{"cdc", 0}), "", -1, ch.Offset, &ch)
				require.NoError(t, err)
				require.Equal(t, tt.expect, adm)
			}
		})
	}
	// Offsets at or below the table's txn version are durable already.
	ch := keyed(1, 99, 9)
	adm, err := reloaded.admit(topicPartition{"cdc", 0}, appIDOf(writerGroup, topicPartition{"cdc", 0}), "", -1, ch.Offset, &ch)
	require.NoError(t, err)
	require.Equal(t, skipDurable, adm)
}

// A change with a new column widens the table's schema in the commit of
// the block that holds it; changes dropped with their partition do not.
func TestWriterSchemaEvolution(t *testing.T) {
	b := objstore.NewMemory()
	w := openWriter(t, testWriterEnv(b, nil))
	columns := func() []string {
		s, err := tablefile.TableSchema(w.snapshot())
		require.NoError(t, err)
		var out []string
		for _, c := range s.Columns() {
			out = append(out, c.Name)
		}
		return out
	}
	steps := []struct {
		name    string
		changes []codec.Change
		drop    *topicPartition
		want    []string
	}{
		{"first block", []codec.Change{change(0, 0, 1, field("id", codec.Int(1)))}, nil, []string{"id"}},
		{"new column", []codec.Change{change(0, 1, 2, field("id", codec.Int(2)), field("name", codec.String("a")))}, nil, []string{"id", "name"}},
		{"a dropped partition's column is not committed", []codec.Change{
			change(1, 0, 3, field("id", codec.Int(3)), field("gone", codec.Int(1))),
			change(0, 2, 4, field("id", codec.Int(4)), field("name", codec.String("b")), field("kept", codec.Bool(true))),
		}, &topicPartition{"cdc", 1}, []string{"id", "name", "kept"}},
	}
	for _, st := range steps {
		offer(t, w, st.changes...)
		if st.drop != nil {
			require.Positive(t, w.dropPartition(*st.drop))
		}
		_, err := flushOnce(t, w)
		require.NoError(t, err, st.name)
		require.Equal(t, st.want, columns(), st.name)
	}
	require.Equal(t, []int64{0, 1, 2}, storedOffsets(t, b))
}

// A commit that landed although its put reported a failure, which the
// committer gave up on, is found when the flush runs again: its commit id
// is the first attempt's, so the table gets one log entry and the records
// once, and the flush reports that commit.
func TestWriterAmbiguousCommitRetried(t *testing.T) {
	mem := objstore.NewMemory()
	faulty := objstore.NewFaulty(mem, 1)
	env := testWriterEnv(faulty, nil)
	env.format = delta.NewFormat(env.bucket, delta.Options{CheckpointInterval: 10, MaxCommitAttempts: 2})
	w := openWriter(t, env)
	offer(t, w, rowsAt(0, 0, 0)...)
	_, err := flushOnce(t, w)
	require.NoError(t, err)

	// Version 1's put lands but reports a failure, and the log cannot be
	// read right after it: the committer runs out of attempts without
	// knowing the outcome.
	faulty.Add(objstore.Fault{Op: objstore.OpPut, KeySuffix: "_delta_log/" + commitKey(1), Nth: 1, Ambiguous: true})
	faulty.Add(objstore.Fault{Op: objstore.OpList, KeyPrefix: "users/_delta_log", Nth: 1})
	faulty.Add(objstore.Fault{Op: objstore.OpGet, KeyPrefix: "users/_delta_log", Nth: 1})
	offer(t, w, rowsAt(0, 1, 3)...)
	job := w.takeFlush("test", true)
	require.NotNil(t, job)
	ctx := context.Background()
	res, err := w.flush(ctx, job)
	require.Error(t, err)
	require.True(t, retryable(err), "the outcome is unknown: %v", err)
	require.NotNil(t, job.pending, "the unresolved commit is kept")
	for attempt := 0; err != nil; attempt++ {
		require.Less(t, attempt, 5, "the flush does not succeed: %v", err)
		res, err = w.flush(ctx, job)
	}
	w.finishFlush(job, nil, time.Now())

	require.NotNil(t, res.event, "the landed commit is reported")
	require.Equal(t, int64(1), res.event.Version)
	require.Equal(t, int64(3), res.event.Rows)
	snap, err := delta.Open(mem, "users", delta.Options{}).Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), snap.Version, "one log entry for the flush")
	require.Contains(t, snap.Files, res.event.FilesAdded[0])
	require.Equal(t, offsets(0, 3), storedOffsets(t, mem))
}

// commitKey is the name of a log version's commit file.
func commitKey(v int64) string {
	s := strconv.FormatInt(v, 10)
	for len(s) < 20 {
		s = "0" + s
	}
	return s + ".json"
}
