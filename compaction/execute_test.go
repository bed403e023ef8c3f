package compaction

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/tablefile"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// allJob is a job merging every active file.
func allJob(snap *committer.Snapshot) Job {
	var adds []committer.Add
	for _, a := range snap.Files {
		adds = append(adds, a)
	}
	j := newJob(refs(adds))
	return j
}

func refs(adds []committer.Add) []fileRef {
	var out []fileRef
	for _, a := range adds {
		lo, hi, _ := tablefile.LSNRange(a)
		out = append(out, fileRef{add: a, minLSN: lo, maxLSN: hi, level: tablefile.Level(a)})
	}
	return out
}

func TestExecuteMergesRows(t *testing.T) {
	ctx := testContext(t)
	b := objstore.NewMemory()
	f := newFixture(t, b, "db/users")
	f.mustAppend(ctx, 5, 7)
	// Schema evolution: a new string column, then a new double column the
	// table's schema does not have yet.
	_, err := f.appendBlock(ctx, 4, func(o int64) codec.Change {
		return row(o, codec.Field{Name: "email", Value: codec.String("u@example.com")})
	})
	require.NoError(t, err)
	_, err = f.appendBlock(ctx, 3, func(o int64) codec.Change {
		return row(o, codec.Field{Name: "score", Value: codec.Float(float64(o) / 2)})
	})
	require.NoError(t, err)

	before, snap := readRows(t, ctx, b, f.path)
	require.Len(t, before, 19)
	// Narrow the table's schema back to the first block's, as if the wider
	// files had been committed by a writer that did not widen it: the
	// compaction must widen it.
	narrow := codec.NewSchema()
	narrow.SetKafkaColumns(true)
	ch := row(1)
	_, err = narrow.Accept(&ch)
	require.NoError(t, err)
	md := snap.Metadata
	md.Schema = narrow
	_, err = f.table.Commit(ctx, committer.Commit{Metadata: &md, ReadVersion: snap.Version})
	require.NoError(t, err)
	snap, err = f.table.Snapshot(ctx)
	require.NoError(t, err)

	job := allJob(snap)
	out, err := Execute(ctx, b, f.table, snap, job, ExecOptions{Mode: testMode})
	require.NoError(t, err)

	after, snap := readRows(t, ctx, b, f.path)
	require.Len(t, snap.Files, 1)
	require.Equal(t, len(before), len(after))
	for o, want := range before {
		got := after[o]
		require.Equal(t, want.LSN, got.LSN)
		require.Equal(t, want.Topic, got.Topic)
		require.Equal(t, want.Partition, got.Partition)
		require.Equal(t, want.Op, got.Op)
		require.Equal(t, want.TS, got.TS)
		// Columns an input lacked are null; every other value is kept.
		values := map[string]codec.Value{}
		for _, fl := range got.Row {
			values[fl.Name] = fl.Value
		}
		for _, fl := range want.Row {
			require.True(t, fl.Value.Equal(values[fl.Name]), "offset %d column %s: %#v != %#v", o, fl.Name, fl.Value, values[fl.Name])
		}
		for _, name := range []string{"email", "score"} {
			if !hasColumn(want, name) {
				require.True(t, values[name].IsNull(), "offset %d column %s", o, name)
			}
		}
	}

	add := snap.Files[out.Add.Path]
	require.False(t, add.DataChange)
	require.Equal(t, "1", add.Tags[tablefile.TagMinLSN])
	require.Equal(t, "19", add.Tags[tablefile.TagMaxLSN])
	require.Equal(t, "1", add.Tags[tablefile.TagLevel])
	require.Equal(t, "19", add.Tags[tablefile.TagRows])
	require.Equal(t, "cdc:0:1-19", add.Tags[tablefile.TagSources])
	require.JSONEq(t, `{"_lsn":1,"id":1,"name":"user-1","email":"u@example.com","score":8.5,"_partition":0,"_offset":1,"_topic":"cdc","_op":"INSERT","_ts":"2023-11-14T22:13:20.001Z"}`,
		mustJSON(t, string(add.Sys.(delta.RawStats)), "minValues"))
	_, ok := snap.Metadata.Schema.Column("score")
	require.True(t, ok, "the table schema was widened")
	for _, in := range job.Inputs {
		r, ok := delta.Tombstone(snap, in.Path)
		require.True(t, ok)
		require.False(t, r.DataChange)
	}
}

func hasColumn(ch codec.Change, name string) bool {
	for _, f := range ch.Row {
		if f.Name == name {
			return true
		}
	}
	return false
}

// TestExecuteRace runs an appender and two compactions of the same files
// at once: one compaction wins, the other is refused cleanly, appends are
// never refused, and no row is lost or doubled.
func TestExecuteRace(t *testing.T) {
	for round := range 4 {
		ctx := testContext(t)
		b := objstore.NewMemory()
		f := newFixture(t, b, "db/users")
		f.mustAppend(ctx, 3, 4, 5, 6, 2)
		snap, err := f.table.Snapshot(ctx)
		require.NoError(t, err)
		job := allJob(snap)

		var wg sync.WaitGroup
		stop := make(chan struct{})
		var appendErr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := f.appendBlock(ctx, 3, func(o int64) codec.Change { return row(o) }); err != nil {
					appendErr = err
					return
				}
			}
		}()
		errs := make([]error, 2)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Each compactor has its own view of the table, as two
				// sink instances would.
				table := delta.Open(b, f.path, delta.Options{Instance: "c" + string(rune('a'+i))})
				_, errs[i] = Execute(ctx, b, table, snap, job, ExecOptions{Mode: testMode})
			}()
		}
		time.Sleep(time.Duration(round) * 5 * time.Millisecond)
		close(stop)
		wg.Wait()
		require.NoError(t, appendErr)
		won := 0
		for _, err := range errs {
			if err == nil {
				won++
				continue
			}
			require.ErrorIs(t, err, committer.ErrFileRemoved)
		}
		require.Equal(t, 1, won, "errors: %v", errs)

		rows, _ := readRows(t, ctx, b, f.path)
		f.mu.Lock()
		next := f.next
		f.mu.Unlock()
		require.Len(t, rows, int(next-1))
		for o := int64(1); o < next; o++ {
			require.Contains(t, rows, o)
		}
	}
}

// TestExecuteCrashBeforeCommit fails every commit put: the table keeps its
// data, the output is an orphan, and Vacuum removes it only after the
// retention.
func TestExecuteCrashBeforeCommit(t *testing.T) {
	ctx := testContext(t)
	mem := objstore.NewMemory()
	f := newFixture(t, mem, "db/users")
	f.mustAppend(ctx, 3, 4, 5, 6)
	before, snap := readRows(t, ctx, mem, f.path)

	faulty := objstore.NewFaulty(mem, 1)
	faulty.Add(objstore.Fault{Op: objstore.OpPut, KeyPrefix: f.path + "/_delta_log/", KeySuffix: ".json", Rate: 1})
	table := delta.Open(faulty, f.path, fastOptions())
	_, err := Execute(ctx, faulty, table, snap, allJob(snap), ExecOptions{Mode: testMode})
	require.ErrorIs(t, err, objstore.ErrInjected)

	after, snap2 := readRows(t, ctx, mem, f.path)
	require.Equal(t, snap.Version, snap2.Version)
	require.Equal(t, len(before), len(after))
	var orphans []string
	require.NoError(t, mem.List(ctx, f.path+"/data/", func(o objstore.ObjectInfo) error {
		rel := o.Key[len(f.path)+1:]
		if _, ok := snap2.Files[rel]; !ok {
			orphans = append(orphans, rel)
		}
		return nil
	}))
	require.Len(t, orphans, 1)

	week := 7 * 24 * time.Hour
	res, err := Vacuum(ctx, mem, tables(mem), f.path, week, false, time.Now())
	require.NoError(t, err)
	require.Empty(t, res.Orphans, "a young orphan is kept")
	res, err = Vacuum(ctx, mem, tables(mem), f.path, week, true, time.Now().Add(week+time.Minute))
	require.NoError(t, err)
	require.Equal(t, orphans, res.Orphans)
	require.True(t, res.DryRun)
	_, err = mem.Head(ctx, f.path+"/"+orphans[0])
	require.NoError(t, err, "a dry run deletes nothing")
	res, err = Vacuum(ctx, mem, tables(mem), f.path, week, false, time.Now().Add(week+time.Minute))
	require.NoError(t, err)
	require.Equal(t, orphans, res.Orphans)
	require.Empty(t, res.Removed)
	_, err = mem.Head(ctx, f.path+"/"+orphans[0])
	require.ErrorIs(t, err, objstore.ErrNotExist)
	after, _ = readRows(t, ctx, mem, f.path)
	require.Equal(t, len(before), len(after), "vacuum never deletes an active file")
}

func TestExecuteRefusesRemovedInput(t *testing.T) {
	ctx := testContext(t)
	b := objstore.NewMemory()
	f := newFixture(t, b, "t")
	f.mustAppend(ctx, 2, 2, 2, 2)
	snap, err := f.table.Snapshot(ctx)
	require.NoError(t, err)
	job := allJob(snap)
	_, err = f.table.Commit(ctx, committer.Commit{Operation: committer.OpDelete, Removes: []committer.Remove{{Path: job.Inputs[0].Path}}, ReadVersion: -1})
	require.NoError(t, err)
	_, err = Execute(ctx, b, f.table, snap, job, ExecOptions{Mode: testMode})
	var fr *committer.FileRemovedError
	require.True(t, errors.As(err, &fr), "err: %v", err)
	require.Equal(t, job.Inputs[0].Path, fr.Path)
}
