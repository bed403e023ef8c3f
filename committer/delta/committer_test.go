package delta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/internal/leaktest"
	"github.com/evodb/sink/objstore"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

const (
	testRoot   = "sales/public/orders"
	schemaV1   = `{"type":"struct","fields":[{"name":"id","type":"long","nullable":false,"metadata":{}},{"name":"name","type":"string","nullable":true,"metadata":{}}]}`
	schemaV2   = `{"type":"struct","fields":[{"name":"id","type":"long","nullable":false,"metadata":{}},{"name":"name","type":"string","nullable":true,"metadata":{}},{"name":"email","type":"string","nullable":true,"metadata":{}}]}`
	schemaV2b  = `{"type":"struct","fields":[{"name":"id","type":"long","nullable":false,"metadata":{}},{"name":"name","type":"string","nullable":true,"metadata":{}},{"name":"age","type":"long","nullable":true,"metadata":{}}]}`
	testAppID  = "group-orders-topic-0"
	testAppID2 = "group-orders-topic-1"
)

// buckets returns the bucket implementations every test runs against: memory
// and filesystem always, and a real S3 server when the SINK_TEST_S3_*
// variables name one.
func buckets() map[string]func(t *testing.T) objstore.Bucket {
	bs := map[string]func(t *testing.T) objstore.Bucket{
		"memory": func(t *testing.T) objstore.Bucket { return objstore.NewMemory() },
		"filesystem": func(t *testing.T) objstore.Bucket {
			b, err := objstore.NewFilesystem(t.TempDir())
			require.NoError(t, err)
			return b
		},
	}
	cfg := objstore.S3Config{
		Endpoint:        os.Getenv("SINK_TEST_S3_ENDPOINT"),
		Bucket:          os.Getenv("SINK_TEST_S3_BUCKET"),
		AccessKeyID:     os.Getenv("SINK_TEST_S3_ACCESS_KEY"),
		SecretAccessKey: os.Getenv("SINK_TEST_S3_SECRET_KEY"),
		Region:          os.Getenv("SINK_TEST_S3_REGION"),
		PathStyle:       true,
	}
	if cfg.Endpoint != "" && cfg.Bucket != "" && cfg.AccessKeyID != "" && cfg.SecretAccessKey != "" {
		if cfg.Region == "" {
			cfg.Region = "auto"
		}
		bs["s3"] = func(t *testing.T) objstore.Bucket {
			cfg := cfg
			cfg.Prefix = "committer-test-" + newUUID()
			b, err := objstore.NewS3(context.Background(), cfg)
			require.NoError(t, err)
			return b
		}
	}
	return bs
}

func forEachBucket(t *testing.T, fn func(t *testing.T, b objstore.Bucket)) {
	for name, mk := range buckets() {
		t.Run(name, func(t *testing.T) { fn(t, mk(t)) })
	}
}

// testClock is a deterministic clock advancing one millisecond per reading.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock {
	return &testClock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Millisecond)
	return c.now
}

// advance moves the clock d forward.
func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func testOptions(instance string) Options {
	return Options{
		Instance:             instance,
		Now:                  newTestClock().Now,
		RetryInitialInterval: time.Millisecond,
		RetryMaxInterval:     5 * time.Millisecond,
	}
}

func createTable(t *testing.T, b objstore.Bucket) *Table {
	t.Helper()
	tbl := Open(b, testRoot, testOptions("test"))
	_, err := tbl.Create(context.Background(), committer.Metadata{Name: "orders", Schema: mustSchema(t, schemaV1)})
	require.NoError(t, err)
	return tbl
}

func block(path string, rows int64) committer.Add {
	return committer.Add{
		Path:       path,
		Size:       100 + rows,
		DataChange: true,
		Sys:        RawStats(fmt.Sprintf(`{"numRecords":%d,"minValues":{"id":0},"maxValues":{"id":%d},"nullCount":{"id":0}}`, rows, rows)),
		Tags:       map[string]string{"evodb.level": "0"},
	}
}

func appendCommit(path string, app string, first, last int64) committer.Commit {
	return committer.Commit{
		Operation:   committer.OpStreamingUpdate,
		Adds:        []committer.Add{block(path, last-first+1)},
		Txns:        []committer.TxnCondition{{AppID: app, FirstOffset: first, LastOffset: last}},
		ReadVersion: -1,
	}
}

// readLog returns every commit of the table in version order.
func readLog(t *testing.T, b objstore.Bucket, root string) []*logEntry {
	t.Helper()
	tbl := Open(b, root, Options{})
	var out []*logEntry
	for v := int64(0); ; v++ {
		e, err := tbl.readCommit(context.Background(), v)
		if errors.Is(err, objstore.ErrNotExist) {
			return out
		}
		require.NoError(t, err)
		out = append(out, e)
	}
}

// replay builds the latest snapshot from the JSON commits alone.
func replay(t *testing.T, b objstore.Bucket) *committer.Snapshot {
	t.Helper()
	tbl := Open(b, testRoot, Options{})
	s, err := tbl.update(context.Background(), emptySnapshot())
	require.NoError(t, err)
	return s
}

// exported is the comparable, exported state of a snapshot with nil and
// empty maps made equal.
type exported struct {
	Version    int64
	Protocol   Protocol
	Metadata   committer.Metadata
	Schema     string
	Files      map[string]committer.Add
	Txns       map[string]int64
	Tombstones map[string]committer.Remove
}

func exportedState(s *committer.Snapshot) exported {
	e := exported{Version: s.Version, Protocol: ProtocolOf(s), Metadata: s.Metadata, Schema: SchemaString(s), Txns: s.Txns,
		Files: map[string]committer.Add{}, Tombstones: map[string]committer.Remove{}}
	if len(e.Metadata.Configuration) == 0 {
		e.Metadata.Configuration = nil
	}
	if len(e.Metadata.PartitionColumns) == 0 {
		e.Metadata.PartitionColumns = nil
	}
	for p, a := range s.Files {
		if len(a.PartitionValues) == 0 {
			a.PartitionValues = nil
		}
		if len(a.Tags) == 0 {
			a.Tags = nil
		}
		e.Files[p] = a
	}
	for p, r := range Tombstones(s) {
		if len(r.PartitionValues) == 0 {
			r.PartitionValues = nil
		}
		e.Tombstones[tombKey(p, r.Deleted)] = r
	}
	return e
}

func TestCreateAndSnapshot(t *testing.T) {
	forEachBucket(t, func(t *testing.T, b objstore.Bucket) {
		ctx := context.Background()
		tbl := Open(b, testRoot, testOptions("a"))
		_, err := tbl.Snapshot(ctx)
		require.ErrorIs(t, err, committer.ErrNoTable)
		_, err = tbl.Commit(ctx, appendCommit("data/a.parquet", testAppID, 0, 9))
		require.ErrorIs(t, err, committer.ErrNoTable)

		s, err := tbl.Create(ctx, committer.Metadata{Name: "orders", Schema: mustSchema(t, schemaV1), Configuration: map[string]string{"delta.appendOnly": "false"}})
		require.NoError(t, err)
		require.Equal(t, int64(0), s.Version)
		require.Equal(t, Protocol{MinReaderVersion: 1, MinWriterVersion: 2}, ProtocolOf(s))
		require.NotEmpty(t, s.Metadata.ID)
		require.Equal(t, rendered(t, schemaV1), SchemaString(s))
		require.Equal(t, "sales/public/orders", tbl.Root())

		loaded, err := Open(b, testRoot, Options{}).Snapshot(ctx)
		require.NoError(t, err)
		require.Equal(t, exportedState(s), exportedState(loaded))

		again, err := tbl.Create(ctx, committer.Metadata{Schema: mustSchema(t, schemaV2)})
		require.NoError(t, err)
		require.Equal(t, s.Metadata.ID, again.Metadata.ID, "Create of an existing table returns it")

		log := readLog(t, b, testRoot)
		require.Len(t, log, 1)
		require.Equal(t, committer.OpCreateTable, log[0].commitInfo["operation"])
		require.Equal(t, EngineInfo, log[0].commitInfo["engineInfo"])
	})
}

func TestAmbiguousPutFailure(t *testing.T) {
	version1 := "_delta_log/" + commitName(1)
	cases := []struct {
		name string
		// competitor commits version 1 unseen: our first listing of the
		// log lags and misses it, our put of it fails ambiguously.
		competitor      bool
		faults          []objstore.Fault
		wantVersion     int64
		wantAlready     bool
		wantMinAttempts int
		wantCommits     int
	}{
		{
			name:        "written then timed out",
			faults:      []objstore.Fault{{Op: objstore.OpPut, KeySuffix: version1, Nth: 1, Ambiguous: true}},
			wantVersion: 1, wantAlready: true, wantMinAttempts: 1, wantCommits: 2,
		},
		{
			name:        "not written",
			faults:      []objstore.Fault{{Op: objstore.OpPut, KeySuffix: version1, Nth: 1}},
			wantVersion: 1, wantMinAttempts: 2, wantCommits: 2,
		},
		{
			name: "written, read-back fails, found by id on the next put",
			faults: []objstore.Fault{
				{Op: objstore.OpPut, KeySuffix: version1, Nth: 1, Ambiguous: true},
				{Op: objstore.OpGet, KeySuffix: version1, Nth: 1},
			},
			wantVersion: 1, wantAlready: true, wantMinAttempts: 2, wantCommits: 2,
		},
		{
			name:        "log read fails before the put",
			faults:      []objstore.Fault{{Op: objstore.OpList, KeySuffix: "_delta_log/", Nth: 1}},
			wantVersion: 1, wantMinAttempts: 1, wantCommits: 2,
		},
		{
			name:       "competitor took the version",
			competitor: true,
			faults: []objstore.Fault{
				{Op: objstore.OpPut, KeySuffix: version1, Nth: 1, Ambiguous: true},
			},
			wantVersion: 2, wantMinAttempts: 2, wantCommits: 3,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forEachBucket(t, func(t *testing.T, b objstore.Bucket) {
				ctx := context.Background()
				createTable(t, b)
				if tc.competitor {
					_, err := Open(b, testRoot, testOptions("competitor")).Commit(ctx, appendCommit("data/other.parquet", testAppID2, 0, 4))
					require.NoError(t, err)
				}
				var under objstore.Bucket = b
				if tc.competitor {
					under = &laggingBucket{Bucket: b, hide: version1, times: 1}
				}
				fb := objstore.NewFaulty(under, 1)
				for _, f := range tc.faults {
					fb.Add(f)
				}
				tbl := Open(fb, testRoot, testOptions("a"))
				res, err := tbl.Commit(ctx, appendCommit("data/a.parquet", testAppID, 0, 9))
				require.NoError(t, err)
				require.Equal(t, int64(len(tc.faults)), fb.InjectedTotal())
				require.Equal(t, tc.wantVersion, res.Version)
				require.Equal(t, tc.wantAlready, res.AlreadyCommitted)
				require.GreaterOrEqual(t, res.Attempts, tc.wantMinAttempts)
				require.Contains(t, res.Snapshot.Files, "data/a.parquet")

				require.Len(t, readLog(t, b, testRoot), tc.wantCommits, "the commit landed exactly once")
				v, _ := res.Snapshot.TxnVersion(testAppID)
				require.Equal(t, int64(9), v)
			})
		})
	}
}

func TestConflictingRemove(t *testing.T) {
	forEachBucket(t, func(t *testing.T, b objstore.Bucket) {
		ctx := context.Background()
		tbl := createTable(t, b)
		for _, p := range []string{"data/a.parquet", "data/b.parquet", "data/c.parquet"} {
			_, err := tbl.Commit(ctx, committer.Commit{Adds: []committer.Add{block(p, 10)}, ReadVersion: -1})
			require.NoError(t, err)
		}
		other := Open(b, testRoot, testOptions("other"))
		_, err := other.Snapshot(ctx)
		require.NoError(t, err)

		compact := func(out string, inputs ...string) committer.Commit {
			c := committer.Commit{Operation: committer.OpOptimize, ReadVersion: 3}
			for _, in := range inputs {
				c.Removes = append(c.Removes, committer.Remove{Path: in})
			}
			add := block(out, 20)
			add.DataChange = false
			c.Adds = []committer.Add{add}
			return c
		}
		res, err := tbl.Commit(ctx, compact("data/ab.parquet", "data/a.parquet", "data/b.parquet"))
		require.NoError(t, err)
		require.Equal(t, int64(4), res.Version)
		require.NotContains(t, res.Snapshot.Files, "data/a.parquet")
		tomb, ok := Tombstone(res.Snapshot, "data/a.parquet")
		require.True(t, ok)
		require.Equal(t, int64(110), tomb.Size, "tombstone completed from the add")

		// other's snapshot still has b active; its commit must be refused.
		_, err = other.Commit(ctx, compact("data/bc.parquet", "data/b.parquet", "data/c.parquet"))
		require.ErrorIs(t, err, committer.ErrFileRemoved)
		var removed *committer.FileRemovedError
		require.ErrorAs(t, err, &removed)
		require.Equal(t, "data/b.parquet", removed.Path)
		require.Contains(t, err.Error(), "data/b.parquet")

		_, err = tbl.Commit(ctx, committer.Commit{Adds: []committer.Add{block("data/c.parquet", 1)}})
		require.ErrorIs(t, err, committer.ErrFileExists)

		s := replay(t, b)
		require.Equal(t, int64(4), s.Version)
		require.Len(t, s.Files, 2)
	})
}

func TestSchemaEvolution(t *testing.T) {
	forEachBucket(t, func(t *testing.T, b objstore.Bucket) {
		ctx := context.Background()
		tbl := createTable(t, b)
		base, err := tbl.Snapshot(ctx)
		require.NoError(t, err)

		c := appendCommit("data/1.parquet", testAppID, 0, 9)
		c.Metadata = &committer.Metadata{Schema: mustSchema(t, schemaV2), Name: "orders"}
		c.ReadVersion = base.Version
		res, err := tbl.Commit(ctx, c)
		require.NoError(t, err)
		require.Equal(t, rendered(t, schemaV2), SchemaString(res.Snapshot))
		require.Equal(t, base.Metadata.ID, res.Snapshot.Metadata.ID, "the table id survives a schema change")
		require.Equal(t, base.Metadata.CreatedTime, res.Snapshot.Metadata.CreatedTime)

		// A writer that read version 0 and widened the schema differently
		// must merge again rather than drop the other column.
		stale := appendCommit("data/2.parquet", testAppID2, 0, 9)
		stale.Metadata = &committer.Metadata{Schema: mustSchema(t, schemaV2b)}
		stale.ReadVersion = base.Version
		_, err = Open(b, testRoot, testOptions("stale")).Commit(ctx, stale)
		require.ErrorIs(t, err, committer.ErrMetadataChanged)

		// The same widening from a stale read is harmless.
		same := appendCommit("data/3.parquet", testAppID2, 0, 9)
		same.Metadata = &committer.Metadata{Schema: mustSchema(t, schemaV2)}
		same.ReadVersion = base.Version
		_, err = Open(b, testRoot, testOptions("same")).Commit(ctx, same)
		require.NoError(t, err)

		_, err = tbl.Commit(ctx, appendCommit("data/4.parquet", testAppID, 10, 19))
		require.NoError(t, err)

		s := replay(t, b)
		require.Equal(t, rendered(t, schemaV2), SchemaString(s))
		require.Equal(t, int64(1), st(s).metadataVersion)
		log := readLog(t, b, testRoot)
		require.Len(t, log, 4)
		require.NotNil(t, log[1].metadata)
		require.Nil(t, log[2].metadata, "an unchanged schema is not committed again")
		require.Nil(t, log[3].metadata)
	})
}

func TestCommitFileFormat(t *testing.T) {
	b := objstore.NewMemory()
	tbl := createTable(t, b)
	c := appendCommit("data/1.parquet", testAppID, 0, 9)
	c.Info = map[string]string{"sinkGroup": "g1", "sourceOffsets": "orders/0:0-9"}
	_, err := tbl.Commit(context.Background(), c)
	require.NoError(t, err)

	rc, err := b.Get(context.Background(), testRoot+"/_delta_log/"+commitName(1))
	require.NoError(t, err)
	data, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	require.Len(t, lines, 3)
	require.True(t, strings.HasPrefix(lines[0], `{"commitInfo":`))
	require.Contains(t, lines[0], `"operation":"STREAMING UPDATE"`)
	require.Contains(t, lines[0], `"engineInfo":"evodb-sink"`)
	require.Contains(t, lines[0], `"evodbInstance":"test"`)
	require.Contains(t, lines[0], `"evodbCommitId":"`)
	require.Contains(t, lines[0], `"evodbInfo":{"sinkGroup":"g1","sourceOffsets":"orders/0:0-9"}`)
	require.Contains(t, lines[0], `"isBlindAppend":true`)
	require.True(t, strings.HasPrefix(lines[1], `{"txn":{"appId":"group-orders-topic-0","version":9,`))
	require.True(t, strings.HasPrefix(lines[2], `{"add":{"path":"data/1.parquet","partitionValues":{},`))
}

func TestCheckpointRoundTrip(t *testing.T) {
	forEachBucket(t, func(t *testing.T, b objstore.Bucket) {
		ctx := context.Background()
		tbl := createTable(t, b)
		for i := range 24 {
			c := appendCommit(fmt.Sprintf("data/%03d.parquet", i), []string{testAppID, testAppID2}[i%2], int64(i*10), int64(i*10+9))
			c.Adds[0].PartitionValues = map[string]string{"day": fmt.Sprint("2025-03-0", 1+i%3)}
			if i == 5 {
				c.Metadata = &committer.Metadata{Schema: mustSchema(t, schemaV2), Configuration: map[string]string{"delta.logRetentionDuration": "interval 30 days"}}
			}
			if i == 12 {
				c = committer.Commit{Operation: committer.OpOptimize, Removes: []committer.Remove{{Path: "data/000.parquet"}, {Path: "data/001.parquet"}},
					Adds: []committer.Add{{Path: "data/000-001.parquet", Size: 300, DataChange: false, Sys: RawStats(`{"numRecords":20}`)}}}
			}
			_, err := tbl.Commit(ctx, c)
			require.NoError(t, err)
		}
		want := replay(t, b)
		require.Equal(t, int64(24), want.Version)

		lc, err := b.Get(ctx, testRoot+"/_delta_log/_last_checkpoint")
		require.NoError(t, err)
		hint, err := io.ReadAll(lc)
		require.NoError(t, err)
		require.NoError(t, lc.Close())
		at20 := emptySnapshotUpTo(t, b, 20)
		require.Equal(t, 2, NumTombstones(at20))
		require.JSONEq(t, fmt.Sprintf(`{"version":20,"size":%d}`, 2+len(at20.Txns)+len(at20.Files)+NumTombstones(at20)), string(hint),
			"a checkpoint holds protocol, metaData, txns, active files and tombstones")

		checks := []struct {
			name  string
			setup func(t *testing.T)
		}{
			{name: "via _last_checkpoint", setup: func(t *testing.T) {}},
			{name: "stale _last_checkpoint", setup: func(t *testing.T) {
				putString(t, b, testRoot+"/_delta_log/_last_checkpoint", `{"version":10,"size":1}`)
			}},
			{name: "corrupt _last_checkpoint", setup: func(t *testing.T) {
				putString(t, b, testRoot+"/_delta_log/_last_checkpoint", `{"vers`)
			}},
			{name: "corrupt newest checkpoint", setup: func(t *testing.T) {
				require.NoError(t, b.Delete(ctx, testRoot+"/_delta_log/"+checkpointName(20)))
				putString(t, b, testRoot+"/_delta_log/"+checkpointName(20), "not parquet")
			}},
			{name: "no checkpoints", setup: func(t *testing.T) {
				require.NoError(t, b.Delete(ctx, testRoot+"/_delta_log/"+checkpointName(20)))
				require.NoError(t, b.Delete(ctx, testRoot+"/_delta_log/"+checkpointName(10)))
				require.NoError(t, b.Delete(ctx, testRoot+"/_delta_log/_last_checkpoint"))
			}},
		}
		for _, ck := range checks {
			t.Run(ck.name, func(t *testing.T) {
				ck.setup(t)
				got, err := Open(b, testRoot, Options{}).Snapshot(ctx)
				require.NoError(t, err)
				require.Equal(t, exportedState(want), exportedState(got))
			})
		}
	})
}

// emptySnapshotUpTo replays the JSON commits up to version v.
func emptySnapshotUpTo(t *testing.T, b objstore.Bucket, v int64) *committer.Snapshot {
	t.Helper()
	tbl := Open(b, testRoot, Options{})
	s := emptySnapshot()
	for i := int64(0); i <= v; i++ {
		e, err := tbl.readCommit(context.Background(), i)
		require.NoError(t, err)
		apply(s, i, e)
	}
	return s
}

func putString(t *testing.T, b objstore.Bucket, key, body string) {
	t.Helper()
	_, err := b.Put(context.Background(), key, bytes.NewReader([]byte(body)), int64(len(body)), objstore.PutOptions{})
	require.NoError(t, err)
}

func TestCheckpointEqualsReplayAtItsVersion(t *testing.T) {
	b := objstore.NewMemory()
	ctx := context.Background()
	tbl := createTable(t, b)
	for i := range 10 {
		c := appendCommit(fmt.Sprintf("data/%03d.parquet", i), testAppID, int64(i*10), int64(i*10+9))
		if i == 7 {
			c.Removes = []committer.Remove{{Path: "data/003.parquet", DataChange: true}}
		}
		_, err := tbl.Commit(ctx, c)
		require.NoError(t, err)
	}
	cp, err := tbl.readCheckpoint(ctx, 10)
	require.NoError(t, err)
	want := emptySnapshotUpTo(t, b, 10)
	require.Equal(t, exportedState(want), exportedState(cp))
	require.Equal(t, st(want).txnUpdated, st(cp).txnUpdated)
	require.True(t, maps.Equal(want.Txns, cp.Txns))
}

func TestCheckpointExpiresTombstones(t *testing.T) {
	ctx := context.Background()
	b := objstore.NewMemory()
	clock := newTestClock()
	opts := testOptions("a")
	opts.Now = clock.Now
	opts.CheckpointInterval = 3
	tbl := Open(b, testRoot, opts)
	_, err := tbl.Create(ctx, committer.Metadata{Schema: mustSchema(t, schemaV1)})
	require.NoError(t, err)
	_, err = tbl.Commit(ctx, committer.Commit{Adds: []committer.Add{block("data/old.parquet", 1), block("data/new.parquet", 1)}})
	require.NoError(t, err)
	_, err = tbl.Commit(ctx, committer.Commit{Operation: committer.OpDelete, Removes: []committer.Remove{{Path: "data/old.parquet", DataChange: true}}})
	require.NoError(t, err)
	clock.mu.Lock()
	clock.now = clock.now.Add(8 * 24 * time.Hour)
	clock.mu.Unlock()
	_, err = tbl.Commit(ctx, committer.Commit{Operation: committer.OpDelete, Removes: []committer.Remove{{Path: "data/new.parquet", DataChange: true}}})
	require.NoError(t, err)

	cp, err := tbl.readCheckpoint(ctx, 3)
	require.NoError(t, err)
	require.Empty(t, cp.Files)
	_, ok := Tombstone(cp, "data/new.parquet")
	require.True(t, ok)
	_, ok = Tombstone(cp, "data/old.parquet")
	require.False(t, ok, "a tombstone past retention has expired")
}

func TestCheckpointFailureIsNotFatal(t *testing.T) {
	ctx := context.Background()
	mem := objstore.NewMemory()
	fb := objstore.NewFaulty(mem, 1)
	fb.Add(objstore.Fault{Op: objstore.OpPut, KeySuffix: ".checkpoint.parquet", Rate: 1})
	opts := testOptions("a")
	opts.CheckpointInterval = 2
	tbl := Open(fb, testRoot, opts)
	_, err := tbl.Create(ctx, committer.Metadata{Schema: mustSchema(t, schemaV1)})
	require.NoError(t, err)
	for i := range 3 {
		_, err := tbl.Commit(ctx, committer.Commit{Adds: []committer.Add{block(fmt.Sprint("data/", i), 1)}})
		require.NoError(t, err)
	}
	_, err = mem.Head(ctx, testRoot+"/_delta_log/_last_checkpoint")
	require.ErrorIs(t, err, objstore.ErrNotExist)
	s, err := Open(mem, testRoot, Options{}).Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(3), s.Version)
}

func TestCommitGivesUp(t *testing.T) {
	ctx := context.Background()
	mem := objstore.NewMemory()
	createTable(t, mem)
	fb := objstore.NewFaulty(mem, 1)
	fb.Add(objstore.Fault{Op: objstore.OpPut, KeySuffix: commitName(1), Rate: 1})
	opts := testOptions("a")
	opts.MaxCommitAttempts = 3
	_, err := Open(fb, testRoot, opts).Commit(ctx, appendCommit("data/a", testAppID, 0, 1))
	require.ErrorIs(t, err, committer.ErrTooManyAttempts)
	require.ErrorIs(t, err, objstore.ErrInjected)
	require.Equal(t, int64(3), fb.Injected(objstore.OpPut))

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = Open(fb, testRoot, opts).Commit(cctx, appendCommit("data/a", testAppID, 0, 1))
	require.ErrorIs(t, err, context.Canceled)
}

func TestCreateAfterAmbiguousFailure(t *testing.T) {
	forEachBucket(t, func(t *testing.T, b objstore.Bucket) {
		fb := objstore.NewFaulty(b, 1)
		fb.Add(objstore.Fault{Op: objstore.OpPut, KeySuffix: commitName(0), Nth: 1, Ambiguous: true})
		s, err := Open(fb, testRoot, testOptions("a")).Create(context.Background(), committer.Metadata{ID: "mine", Schema: mustSchema(t, schemaV1)})
		require.NoError(t, err)
		require.Equal(t, "mine", s.Metadata.ID)
		require.Equal(t, int64(1), fb.Calls(objstore.OpPut), "the table was found, not created twice")
	})
}

// countingBucket counts the requests that reach a bucket.
type countingBucket struct {
	objstore.Bucket
	mu    sync.Mutex
	calls map[string]int
	// errs counts the calls the store answered with an error, missing
	// objects and failed preconditions included ("get 404", "put 412"):
	// answers after which versitygw closes the connection.
	errs map[string]int
}

func newCountingBucket(b objstore.Bucket) *countingBucket {
	return &countingBucket{Bucket: b, calls: map[string]int{}, errs: map[string]int{}}
}

func (b *countingBucket) count(op string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls[op]++
	switch {
	case err == nil:
	case errors.Is(err, objstore.ErrNotExist):
		b.errs[op+" 404"]++
	case errors.Is(err, objstore.ErrPreconditionFailed):
		b.errs[op+" 412"]++
	default:
		b.errs[op+" error"]++
	}
}

// reset clears the counts.
func (b *countingBucket) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.calls)
	clear(b.errs)
}

func (b *countingBucket) Put(ctx context.Context, key string, body io.ReaderAt, size int64, opts objstore.PutOptions) (string, error) {
	etag, err := b.Bucket.Put(ctx, key, body, size, opts)
	b.count("put", err)
	return etag, err
}

func (b *countingBucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := b.Bucket.Get(ctx, key)
	b.count("get", err)
	return rc, err
}

func (b *countingBucket) List(ctx context.Context, prefix string, fn func(objstore.ObjectInfo) error) error {
	var stopped error
	err := b.Bucket.List(ctx, prefix, func(info objstore.ObjectInfo) error {
		stopped = fn(info)
		return stopped
	})
	if err != nil && errors.Is(err, stopped) {
		// The caller stopped the listing; the store did not fail.
		b.count("list", nil)
	} else {
		b.count("list", err)
	}
	return err
}

func (b *countingBucket) Head(ctx context.Context, key string) (objstore.ObjectInfo, error) {
	info, err := b.Bucket.Head(ctx, key)
	b.count("head", err)
	return info, err
}

// laggingBucket's listings leave out the keys ending in hide, the first
// times listings: a store whose listings lag behind its writes.
type laggingBucket struct {
	objstore.Bucket
	hide  string
	mu    sync.Mutex
	times int
}

func (b *laggingBucket) List(ctx context.Context, prefix string, fn func(objstore.ObjectInfo) error) error {
	b.mu.Lock()
	lag := b.times > 0
	b.times--
	b.mu.Unlock()
	return b.Bucket.List(ctx, prefix, func(info objstore.ObjectInfo) error {
		if lag && strings.HasSuffix(info.Key, b.hide) {
			return nil
		}
		return fn(info)
	})
}

// TestOpenRequests counts the store requests of loading a table, new or
// existing, and of the commits after it, and the answers that are errors
// (404, 412). A log of up to one listing page is loaded from one listing
// with no error answer and no HEAD; a longer one through _last_checkpoint.
func TestOpenRequests(t *testing.T) {
	ctx := context.Background()
	type counts struct{ calls, errs map[string]int }
	none := map[string]int{}
	forEachBucket(t, func(t *testing.T, under objstore.Bucket) {
		b := newCountingBucket(under)
		expect := func(t *testing.T, want counts, what string) {
			t.Helper()
			require.Equal(t, want.calls, b.calls, what)
			require.Equal(t, want.errs, b.errs, what+": answers that are errors")
			b.reset()
		}
		commitN := func(t *testing.T, tbl *Table, n int) {
			t.Helper()
			for range n {
				v := tbl.cached().Version
				_, err := tbl.Commit(ctx, appendCommit(fmt.Sprintf("data/%d.parquet", v+1), testAppID, 10*v, 10*v+9))
				require.NoError(t, err)
			}
		}

		t.Run("new table", func(t *testing.T) {
			b.reset()
			tbl := Open(b, testRoot, testOptions("a"))
			_, err := tbl.Snapshot(ctx)
			require.ErrorIs(t, err, committer.ErrNoTable)
			expect(t, counts{map[string]int{"list": 1}, none}, "look for the table")
			_, err = tbl.Create(ctx, committer.Metadata{Schema: mustSchema(t, schemaV1)})
			require.NoError(t, err)
			expect(t, counts{map[string]int{"put": 1}, none}, "create it: version 0 only")
			commitN(t, tbl, 1)
			expect(t, counts{map[string]int{"put": 1, "head": 1}, none}, "first commit")
			commitN(t, tbl, 2)
			b.reset()
		})
		t.Run("existing table", func(t *testing.T) {
			tbl := Open(b, testRoot, testOptions("b"))
			s, err := tbl.Snapshot(ctx)
			require.NoError(t, err)
			require.Equal(t, int64(3), s.Version)
			expect(t, counts{map[string]int{"list": 1, "get": 4}, none}, "one listing, versions 0 to 3")
			commitN(t, tbl, 1)
			expect(t, counts{map[string]int{"put": 1, "head": 1}, none}, "commit after the load")
			commitN(t, tbl, 5)
			b.reset()
			commitN(t, tbl, 1)
			require.Equal(t, int64(10), tbl.cached().Version)
			expect(t, counts{map[string]int{"put": 3, "head": 1}, none}, "commit with a checkpoint and _last_checkpoint")
			commitN(t, tbl, 2)
			b.reset()
		})
		t.Run("existing table with a checkpoint", func(t *testing.T) {
			tbl := Open(b, testRoot, testOptions("c"))
			s, err := tbl.Snapshot(ctx)
			require.NoError(t, err)
			require.Equal(t, int64(12), s.Version)
			expect(t, counts{map[string]int{"list": 1, "get": 3}, none}, "one listing, checkpoint 10, versions 11 and 12")
			commitN(t, tbl, 1)
			expect(t, counts{map[string]int{"put": 1, "head": 1}, none}, "commit after the load, anchored at the checkpoint")
		})
		if _, ok := under.(*objstore.Memory); !ok {
			return
		}
		t.Run("log longer than one listing page", func(t *testing.T) {
			for i := range listBudget {
				_, err := under.Put(ctx, fmt.Sprintf("%s/_delta_log/%020d.crc", testRoot, i), bytes.NewReader(nil), 0, objstore.PutOptions{})
				require.NoError(t, err)
			}
			b.reset()
			tbl := Open(b, testRoot, testOptions("d"))
			s, err := tbl.Snapshot(ctx)
			require.NoError(t, err)
			require.Equal(t, int64(13), s.Version)
			expect(t, counts{map[string]int{"list": 1, "get": 6, "head": 1}, map[string]int{"get 404": 1}},
				"a listing page, _last_checkpoint, checkpoint 10, versions 11 to 13, a probe of 14, the anchor's HEAD")
		})
	})
}

// TestLoadFromLaggingListing breaks what a load from one listing relies on,
// a listing that names every version created before it: the listing misses
// the newest version, then a version in the middle of the log.
func TestLoadFromLaggingListing(t *testing.T) {
	forEachBucket(t, func(t *testing.T, b objstore.Bucket) {
		ctx := context.Background()
		a := createTable(t, b)
		for i := range 3 {
			_, err := a.Commit(ctx, appendCommit(fmt.Sprintf("data/a%d.parquet", i), testAppID, int64(10*i), int64(10*i+9)))
			require.NoError(t, err)
		}

		// The newest version is missing: the snapshot is one version old,
		// and the next commit loses its put, reads version 3 and lands
		// after it.
		lag := newCountingBucket(&laggingBucket{Bucket: b, hide: commitName(3), times: 1})
		w := Open(lag, testRoot, testOptions("w"))
		s, err := w.Snapshot(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(2), s.Version)
		res, err := w.Commit(ctx, appendCommit("data/w.parquet", testAppID2, 0, 9))
		require.NoError(t, err)
		require.Equal(t, int64(4), res.Version)
		require.Equal(t, 1, lag.errs["put 412"], "the put of version 3 lost")
		require.Len(t, res.Snapshot.Files, 4)
		v, _ := res.Snapshot.TxnVersion(testAppID)
		require.Equal(t, int64(29), v, "version 3's txn is seen")

		// A version in the middle is missing: the load notices the gap and
		// reads the log version by version.
		gap := newCountingBucket(&laggingBucket{Bucket: b, hide: commitName(2), times: 1})
		g := Open(gap, testRoot, testOptions("g"))
		s, err = g.Snapshot(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(4), s.Version)
		require.Equal(t, exportedState(res.Snapshot), exportedState(s))
		require.Equal(t, 2, gap.calls["list"], "the listing, then the full listing for checkpoints")
	})
}

// TestCreateAfterAbsent: a Table that saw no table puts version 0 without
// looking again, and converges with a creator that came in between; one
// whose look is older than maxSnapshotAge looks again first.
func TestCreateAfterAbsent(t *testing.T) {
	ctx := context.Background()
	b := newCountingBucket(objstore.NewMemory())
	clock := newTestClock()
	opts := testOptions("a")
	opts.Now = clock.Now
	a := Open(b, testRoot, opts)
	_, err := a.Snapshot(ctx)
	require.ErrorIs(t, err, committer.ErrNoTable)
	other := createTable(t, b)
	b.reset()
	s, err := a.Create(ctx, committer.Metadata{Schema: mustSchema(t, schemaV2)})
	require.NoError(t, err)
	require.Equal(t, other.cached().Metadata.ID, s.Metadata.ID, "the other creator's table")
	require.Equal(t, rendered(t, schemaV1), SchemaString(s))
	require.Equal(t, 1, b.errs["put 412"], "the put of version 0 found it taken")
	require.Equal(t, 1, b.calls["list"], "then the table was loaded")

	c := Open(b, "other/table", opts)
	_, err = c.Snapshot(ctx)
	require.ErrorIs(t, err, committer.ErrNoTable)
	clock.advance(maxSnapshotAge + time.Second)
	b.reset()
	_, err = c.Create(ctx, committer.Metadata{Schema: mustSchema(t, schemaV1)})
	require.NoError(t, err)
	require.Equal(t, map[string]int{"list": 1, "put": 1}, b.calls, "an old look is not trusted")
}

// TestCommitRequests: a writer alone on its table commits with one put and
// no read; a writer whose view is stale finds out from its put, reads the
// versions it missed, and lands after them.
func TestCommitRequests(t *testing.T) {
	ctx := context.Background()
	b := newCountingBucket(objstore.NewMemory())
	a := createTable(t, b)
	b.reset()
	res, err := a.Commit(ctx, appendCommit("data/a1.parquet", testAppID, 0, 9))
	require.NoError(t, err)
	require.Equal(t, int64(1), res.Version)
	require.Equal(t, map[string]int{"put": 1, "head": 1}, b.calls, "one put, and one HEAD of the anchor")
	require.Empty(t, b.errs, "no answer is an error")

	other := Open(b, testRoot, testOptions("other"))
	_, err = other.Commit(ctx, appendCommit("data/b1.parquet", testAppID2, 0, 9))
	require.NoError(t, err)

	b.reset()
	res, err = a.Commit(ctx, appendCommit("data/a2.parquet", testAppID, 10, 19))
	require.NoError(t, err)
	require.Equal(t, int64(3), res.Version)
	require.Equal(t, map[string]int{"put": 2, "get": 2, "head": 1}, b.calls, "a lost put, version 2 read, version 3 found free, a second put, the anchor's HEAD")
	require.Equal(t, map[string]int{"put 412": 1, "get 404": 1}, b.errs, "the lost put, and the probe past version 2")
	paths := map[string]bool{}
	for path := range res.Snapshot.Files {
		paths[path] = true
	}
	require.Equal(t, map[string]bool{"data/a1.parquet": true, "data/b1.parquet": true, "data/a2.parquet": true}, paths)
}

// A txn condition with a lineage records it next to the appId's version,
// in a txn action checkpoints keep, and an append of another lineage's
// offsets is refused however the offsets compare: also when it races the
// commit that recorded the first lineage, and also after a checkpoint.
func TestTxnLineage(t *testing.T) {
	forEachBucket(t, func(t *testing.T, b objstore.Bucket) {
		ctx := context.Background()
		createTable(t, b)
		withLineage := func(c committer.Commit, lineage string) committer.Commit {
			c.Txns[0].Lineage = lineage
			return c
		}
		opts := testOptions("a")
		opts.CheckpointInterval = 2
		a := Open(b, testRoot, opts)
		other := Open(b, testRoot, testOptions("other"))
		// A table written without lineages (by an earlier version).
		_, err := a.Commit(ctx, appendCommit("data/0.parquet", testAppID, 0, 9))
		require.NoError(t, err)
		_, err = other.Snapshot(ctx)
		require.NoError(t, err)

		// The first lineage is recorded; the legacy version still fences.
		_, err = a.Commit(ctx, withLineage(appendCommit("data/1.parquet", testAppID, 10, 19), "AAAAAAAAAAAAAAAAAAAAAQ"))
		require.NoError(t, err)
		var conflict *committer.TxnConflictError
		_, err = a.Commit(ctx, withLineage(appendCommit("data/x.parquet", testAppID, 15, 30), "AAAAAAAAAAAAAAAAAAAAAQ"))
		require.ErrorAs(t, err, &conflict)

		// other still holds the snapshot from before the lineage: its put
		// loses the race, and the re-check refuses it although its offsets
		// are past the table's.
		_, err = other.Commit(ctx, withLineage(appendCommit("data/y.parquet", testAppID, 500, 600), "BBBBBBBBBBBBBBBBBBBBBQ"))
		var lc *committer.LineageConflictError
		require.ErrorAs(t, err, &lc)
		require.Equal(t, testAppID, lc.AppID)
		require.Equal(t, "AAAAAAAAAAAAAAAAAAAAAQ", lc.TableLineage)
		require.Equal(t, "BBBBBBBBBBBBBBBBBBBBBQ", lc.Lineage)

		// A writer that records no lineage (an earlier version, during an
		// upgrade) is fenced by the version alone.
		_, err = other.Commit(ctx, appendCommit("data/2.parquet", testAppID, 20, 29))
		require.NoError(t, err)

		// Read back through the checkpoint (version 2 was checkpointed).
		_, err = b.Head(ctx, testRoot+"/_delta_log/"+fmt.Sprintf("%020d.checkpoint.parquet", 2))
		require.NoError(t, err)
		s, err := Open(b, testRoot, Options{}).Snapshot(ctx)
		require.NoError(t, err)
		v, ok := s.TxnVersion(committer.LineageAppID(testAppID, "AAAAAAAAAAAAAAAAAAAAAQ"))
		require.True(t, ok)
		require.Equal(t, int64(19), v)
		v, _ = s.TxnVersion(testAppID)
		require.Equal(t, int64(29), v)
		_, err = Open(b, testRoot, testOptions("late")).Commit(ctx, withLineage(appendCommit("data/z.parquet", testAppID, 30, 40), "BBBBBBBBBBBBBBBBBBBBBQ"))
		require.ErrorAs(t, err, &lc)
		_, err = Open(b, testRoot, testOptions("late")).Commit(ctx, withLineage(appendCommit("data/3.parquet", testAppID, 30, 40), "AAAAAAAAAAAAAAAAAAAAAQ"))
		require.NoError(t, err)
	})
}

// mustSchema parses a Delta schemaString.
func mustSchema(t testing.TB, text string) *codec.Schema {
	t.Helper()
	s, err := ParseSchema(text)
	require.NoError(t, err)
	return s
}

// rendered is the schemaString the format writes for a Delta schemaString:
// the metadata columns first, then the data columns.
func rendered(t testing.TB, text string) string {
	t.Helper()
	out, err := SchemaJSON(mustSchema(t, text))
	require.NoError(t, err)
	return out
}
