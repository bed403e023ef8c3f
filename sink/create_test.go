package sink

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/internal/tabletest"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/tablefile"
)

// A new table is created by its first commit: version 0 holds the block.
// Two members that both found the table absent race to create it. The
// loser of version 0 commits after it: at once when the schemas are the
// same, and after reading the winner's schema and merging its own into it
// (its first commit refused with ErrMetadataChanged) when they differ.
// Every record lands once, in one table.
func TestWriterCreateRace(t *testing.T) {
	for _, tc := range []struct {
		name        string
		colA, colB  codec.Field // one extra column each member's changes hold
		wantColumns []string
		wantFiles   int // data files uploaded, orphans included
		wantRefused float64
	}{
		{name: "same schema", colA: field("x", codec.String("a")), colB: field("x", codec.String("b")),
			wantColumns: []string{"id", "x"}, wantFiles: 2},
		{name: "other schema", colA: field("a", codec.Int(7)), colB: field("b", codec.String("b")),
			wantColumns: []string{"id", "b", "a"}, wantFiles: 3, wantRefused: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			b := objstore.NewMemory()
			a := openWriter(t, testWriterEnv(b, nil))
			bw := openWriter(t, testWriterEnv(b, nil))
			require.Nil(t, a.snapshot(), "both found the table absent")
			require.Nil(t, bw.snapshot())

			var changesA, changesB []codec.Change
			for o := range int64(3) {
				changesA = append(changesA, change(0, o, uint64(100+o), field("id", codec.Int(o)), tc.colA))
				changesB = append(changesB, change(1, o, uint64(200+o), field("id", codec.Int(10+o)), tc.colB))
			}
			offer(t, a, changesA...)
			offer(t, bw, changesB...)
			resB, err := flushOnce(t, bw)
			require.NoError(t, err)
			require.Equal(t, int64(0), resB.event.Version, "B created the table with its block")
			resA, err := flushOnce(t, a)
			require.NoError(t, err)
			require.Equal(t, int64(1), resA.event.Version, "A committed right after B's version 0")
			require.Equal(t, map[topicPartition]int64{{"cdc", 0}: 2}, resA.durable)
			require.Equal(t, tc.wantRefused, counterValue(t, a.env.metrics.commitConflicts.WithLabelValues("users")))

			snap, err := delta.Open(b, "users", delta.Options{}).Snapshot(ctx)
			require.NoError(t, err)
			require.Equal(t, int64(1), snap.Version, "two log versions, no empty version 0")
			require.Len(t, snap.Files, 2)
			schema, err := tablefile.TableSchema(snap)
			require.NoError(t, err)
			var cols []string
			for _, c := range schema.Columns() {
				if !strings.HasPrefix(c.Name, "_") {
					cols = append(cols, c.Name)
				}
			}
			require.Equal(t, tc.wantColumns, cols)
			require.Len(t, tabletest.Changes(t, ctx, b), 6, "every record once")

			files := 0
			require.NoError(t, b.List(ctx, "users/data/", func(objstore.ObjectInfo) error { files++; return nil }))
			require.Equal(t, tc.wantFiles, files, "A's block is uploaded again only when its schema changed")
		})
	}
}

// The put of version 0 lands but reports a failure, and the log cannot be
// read right after it: the committer gives up with the outcome unknown.
// The flush run again commits the same table creation under the same id,
// finds it landed, and reports it; the table has one log version.
func TestWriterAmbiguousCreateRetried(t *testing.T) {
	mem := objstore.NewMemory()
	faulty := objstore.NewFaulty(mem, 1)
	env := testWriterEnv(faulty, nil)
	env.format = delta.NewFormat(env.bucket, delta.Options{MaxCommitAttempts: 2, RetryInitialInterval: time.Millisecond})
	w := openWriter(t, env)
	faulty.Add(objstore.Fault{Op: objstore.OpPut, KeySuffix: "_delta_log/" + commitKey(0), Nth: 1, Ambiguous: true})
	faulty.Add(objstore.Fault{Op: objstore.OpList, KeyPrefix: "users/_delta_log", Nth: 1})
	offer(t, w, rowsAt(0, 0, 2)...)
	job := w.takeFlush("test", true)
	require.NotNil(t, job)
	ctx := context.Background()
	res, err := w.flush(ctx, job)
	require.Error(t, err)
	require.True(t, retryable(err), "the outcome is unknown: %v", err)
	require.NotNil(t, job.pending, "the unresolved commit is kept")
	require.NotNil(t, job.pending.create, "with the table it creates")
	for attempt := 0; err != nil; attempt++ {
		require.Less(t, attempt, 5, "the flush does not succeed: %v", err)
		res, err = w.flush(ctx, job)
	}
	w.finishFlush(job, nil, time.Now())
	require.NotNil(t, res.event, "the landed commit is reported")
	require.Equal(t, int64(0), res.event.Version)
	snap, err := delta.Open(mem, "users", delta.Options{}).Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(0), snap.Version, "one log version for the flush")
	require.Equal(t, offsets(0, 2), storedOffsets(t, mem))
}
