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
	_, err := tbl.Create(context.Background(), Metadata{Name: "orders", SchemaString: schemaV1})
	require.NoError(t, err)
	return tbl
}

func block(path string, rows int64) Add {
	return Add{
		Path:       path,
		Size:       100 + rows,
		DataChange: true,
		Stats:      fmt.Sprintf(`{"numRecords":%d,"minValues":{"id":0},"maxValues":{"id":%d},"nullCount":{"id":0}}`, rows, rows),
		Tags:       map[string]string{"evodb.level": "0"},
	}
}

func appendCommit(path string, app string, first, last int64) Commit {
	return Commit{
		Operation:   OpStreamingUpdate,
		Adds:        []Add{block(path, last-first+1)},
		Txns:        []TxnCondition{{AppID: app, FirstOffset: first, LastOffset: last}},
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
func replay(t *testing.T, b objstore.Bucket) *Snapshot {
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
	Metadata   Metadata
	Files      map[string]Add
	Txns       map[string]int64
	Tombstones map[string]Remove
}

func exportedState(s *Snapshot) exported {
	e := exported{Version: s.Version, Protocol: s.Protocol, Metadata: s.Metadata, Txns: s.Txns,
		Files: map[string]Add{}, Tombstones: map[string]Remove{}}
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
	for p, r := range s.Tombstones() {
		if len(r.PartitionValues) == 0 {
			r.PartitionValues = nil
		}
		e.Tombstones[p] = r
	}
	return e
}

func TestCreateAndSnapshot(t *testing.T) {
	forEachBucket(t, func(t *testing.T, b objstore.Bucket) {
		ctx := context.Background()
		tbl := Open(b, testRoot, testOptions("a"))
		_, err := tbl.Snapshot(ctx)
		require.ErrorIs(t, err, ErrNoTable)
		_, err = tbl.Commit(ctx, appendCommit("data/a.parquet", testAppID, 0, 9))
		require.ErrorIs(t, err, ErrNoTable)

		s, err := tbl.Create(ctx, Metadata{Name: "orders", SchemaString: schemaV1, Configuration: map[string]string{"delta.appendOnly": "false"}})
		require.NoError(t, err)
		require.Equal(t, int64(0), s.Version)
		require.Equal(t, Protocol{MinReaderVersion: 1, MinWriterVersion: 2}, s.Protocol)
		require.NotEmpty(t, s.Metadata.ID)
		require.Equal(t, schemaV1, s.Metadata.SchemaString)
		require.Equal(t, "sales/public/orders", tbl.Root())

		loaded, err := Open(b, testRoot, Options{}).Snapshot(ctx)
		require.NoError(t, err)
		require.Equal(t, exportedState(s), exportedState(loaded))

		again, err := tbl.Create(ctx, Metadata{SchemaString: schemaV2})
		require.NoError(t, err)
		require.Equal(t, s.Metadata.ID, again.Metadata.ID, "Create of an existing table returns it")

		log := readLog(t, b, testRoot)
		require.Len(t, log, 1)
		require.Equal(t, OpCreateTable, log[0].commitInfo["operation"])
		require.Equal(t, EngineInfo, log[0].commitInfo["engineInfo"])
	})
}

func TestCreateConvergence(t *testing.T) {
	forEachBucket(t, func(t *testing.T, b objstore.Bucket) {
		const creators = 8
		ids := make([]string, creators)
		var wg sync.WaitGroup
		for i := range creators {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tbl := Open(b, testRoot, testOptions(fmt.Sprint("creator-", i)))
				s, err := tbl.Create(context.Background(), Metadata{ID: fmt.Sprint("table-id-", i), SchemaString: schemaV1})
				if err == nil {
					ids[i] = s.Metadata.ID
				}
			}()
		}
		wg.Wait()
		for i := range creators {
			require.NotEmpty(t, ids[i], "creator %d failed", i)
			require.Equal(t, ids[0], ids[i], "creator %d sees another table", i)
		}
		require.Len(t, readLog(t, b, testRoot), 1)
	})
}

func TestConcurrentCommitters(t *testing.T) {
	forEachBucket(t, func(t *testing.T, b objstore.Bucket) {
		createTable(t, b)
		const writers, perWriter = 8, 6
		versions := make([][]int64, writers)
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				opts := testOptions(fmt.Sprint("writer-", w))
				opts.MaxCommitAttempts = 1000
				tbl := Open(b, testRoot, opts)
				app := fmt.Sprint("group-orders-topic-", w)
				for i := range perWriter {
					res, err := tbl.Commit(context.Background(),
						appendCommit(fmt.Sprintf("data/w%d-%03d.parquet", w, i), app, int64(i*10), int64(i*10+9)))
					if err != nil {
						errs[w] = err
						return
					}
					versions[w] = append(versions[w], res.Version)
				}
			}()
		}
		wg.Wait()
		seen := map[int64]bool{}
		for w := range writers {
			require.NoError(t, errs[w])
			for _, v := range versions[w] {
				require.False(t, seen[v], "version %d returned twice", v)
				seen[v] = true
			}
		}
		const total = writers * perWriter
		log := readLog(t, b, testRoot)
		require.Len(t, log, total+1, "versions are contiguous from 0")
		ids := map[string]bool{}
		for _, e := range log[1:] {
			require.Len(t, e.adds, 1)
			require.False(t, ids[e.commitID()])
			ids[e.commitID()] = true
		}
		s := replay(t, b)
		require.Equal(t, int64(total), s.Version)
		require.Len(t, s.Files, total, "no commit lost")
		for w := range writers {
			v, ok := s.TxnVersion(fmt.Sprint("group-orders-topic-", w))
			require.True(t, ok)
			require.Equal(t, int64((perWriter-1)*10+9), v)
		}
		loaded, err := Open(b, testRoot, Options{}).Snapshot(context.Background())
		require.NoError(t, err)
		require.Equal(t, exportedState(s), exportedState(loaded))
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

func TestCommitIDIsIdempotent(t *testing.T) {
	forEachBucket(t, func(t *testing.T, b objstore.Bucket) {
		tbl := createTable(t, b)
		ctx := context.Background()
		c := Commit{ID: "commit-1", Operation: OpOptimize, Adds: []Add{block("data/x.parquet", 3)}, ReadVersion: -1}
		first, err := tbl.Commit(ctx, c)
		require.NoError(t, err)
		require.False(t, first.AlreadyCommitted)
		second, err := tbl.Commit(ctx, c)
		require.NoError(t, err)
		require.True(t, second.AlreadyCommitted)
		require.Equal(t, first.Version, second.Version)
		require.Len(t, readLog(t, b, testRoot), 2)
	})
}

func TestTxnFencing(t *testing.T) {
	// A zombie (stale owner) and the partition's new owner both try to
	// commit offsets from the same source partition. Whichever lands first,
	// the other is refused: nothing is written twice.
	cases := []struct {
		name                string
		zombieFirst         bool
		wantTxn             int64
		wantRefusedFirstOff int64
		wantRefusedTableTxn int64
	}{
		{name: "zombie commits first", zombieFirst: true, wantTxn: 19, wantRefusedFirstOff: 10, wantRefusedTableTxn: 19},
		{name: "new owner commits first", zombieFirst: false, wantTxn: 24, wantRefusedFirstOff: 10, wantRefusedTableTxn: 24},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forEachBucket(t, func(t *testing.T, b objstore.Bucket) {
				ctx := context.Background()
				createTable(t, b)
				zombie := Open(b, testRoot, testOptions("zombie"))
				owner := Open(b, testRoot, testOptions("owner"))
				_, err := zombie.Commit(ctx, appendCommit("data/z0.parquet", testAppID, 0, 9))
				require.NoError(t, err)
				// Both loaded the table at txn 9 and hold records from offset 10.
				_, err = owner.Snapshot(ctx)
				require.NoError(t, err)

				zc := appendCommit("data/z1.parquet", testAppID, 10, 19)
				oc := appendCommit("data/o1.parquet", testAppID, 10, 24)
				first, second := zombie, owner
				fc, sc := zc, oc
				if !tc.zombieFirst {
					first, second, fc, sc = owner, zombie, oc, zc
				}
				_, err = first.Commit(ctx, fc)
				require.NoError(t, err)
				_, err = second.Commit(ctx, sc)
				var conflict *TxnConflictError
				require.ErrorAs(t, err, &conflict)
				require.Equal(t, testAppID, conflict.AppID)
				require.Equal(t, tc.wantRefusedFirstOff, conflict.FirstOffset)
				require.Equal(t, tc.wantRefusedTableTxn, conflict.TableTxnVersion)
				require.Equal(t, int64(2), conflict.TableVersion)
				require.Contains(t, err.Error(), testAppID)

				s := replay(t, b)
				require.Equal(t, int64(2), s.Version)
				require.Len(t, s.Files, 2)
				v, _ := s.TxnVersion(testAppID)
				require.Equal(t, tc.wantTxn, v)
			})
		})
	}
}

func TestTxnVersionsMonotonic(t *testing.T) {
	forEachBucket(t, func(t *testing.T, b objstore.Bucket) {
		ctx := context.Background()
		tbl := createTable(t, b)
		steps := []struct {
			first, last int64
			wantErr     bool
		}{
			{0, 9, false},
			{10, 10, false},
			{5, 30, true},   // overlaps what the table holds
			{10, 12, true},  // starts at the held offset
			{11, 40, false}, // the first offset past the table's
			{41, 41, false},
			{0, 100, true},
		}
		prev := int64(-1)
		for i, st := range steps {
			_, err := tbl.Commit(ctx, appendCommit(fmt.Sprintf("data/%03d.parquet", i), testAppID, st.first, st.last))
			if st.wantErr {
				var conflict *TxnConflictError
				require.ErrorAs(t, err, &conflict, "step %d", i)
			} else {
				require.NoError(t, err, "step %d", i)
			}
			s, err := tbl.Snapshot(ctx)
			require.NoError(t, err)
			v, _ := s.TxnVersion(testAppID)
			require.GreaterOrEqual(t, v, prev, "step %d lowered the txn version", i)
			prev = v
		}
		require.Equal(t, int64(41), prev)

		_, err := tbl.Commit(ctx, appendCommit("data/bad.parquet", testAppID, 60, 50))
		require.Error(t, err, "a reversed offset range is refused")
		_, err = tbl.Commit(ctx, Commit{Txns: []TxnCondition{{AppID: testAppID, FirstOffset: 100, LastOffset: 101}, {AppID: testAppID, FirstOffset: 102, LastOffset: 103}}})
		require.Error(t, err, "a partition twice in one commit is refused")
	})
}

func TestConflictingRemove(t *testing.T) {
	forEachBucket(t, func(t *testing.T, b objstore.Bucket) {
		ctx := context.Background()
		tbl := createTable(t, b)
		for _, p := range []string{"data/a.parquet", "data/b.parquet", "data/c.parquet"} {
			_, err := tbl.Commit(ctx, Commit{Adds: []Add{block(p, 10)}, ReadVersion: -1})
			require.NoError(t, err)
		}
		other := Open(b, testRoot, testOptions("other"))
		_, err := other.Snapshot(ctx)
		require.NoError(t, err)

		compact := func(out string, inputs ...string) Commit {
			c := Commit{Operation: OpOptimize, ReadVersion: 3}
			for _, in := range inputs {
				c.Removes = append(c.Removes, Remove{Path: in})
			}
			add := block(out, 20)
			add.DataChange = false
			c.Adds = []Add{add}
			return c
		}
		res, err := tbl.Commit(ctx, compact("data/ab.parquet", "data/a.parquet", "data/b.parquet"))
		require.NoError(t, err)
		require.Equal(t, int64(4), res.Version)
		require.NotContains(t, res.Snapshot.Files, "data/a.parquet")
		tomb, ok := res.Snapshot.Tombstone("data/a.parquet")
		require.True(t, ok)
		require.Equal(t, int64(110), tomb.Size, "tombstone completed from the add")

		// other's snapshot still has b active; its commit must be refused.
		_, err = other.Commit(ctx, compact("data/bc.parquet", "data/b.parquet", "data/c.parquet"))
		require.ErrorIs(t, err, ErrFileRemoved)
		var removed *FileRemovedError
		require.ErrorAs(t, err, &removed)
		require.Equal(t, "data/b.parquet", removed.Path)
		require.Contains(t, err.Error(), "data/b.parquet")

		_, err = tbl.Commit(ctx, Commit{Adds: []Add{block("data/c.parquet", 1)}})
		require.ErrorIs(t, err, ErrFileExists)

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
		c.Metadata = &Metadata{SchemaString: schemaV2, Name: "orders"}
		c.ReadVersion = base.Version
		res, err := tbl.Commit(ctx, c)
		require.NoError(t, err)
		require.Equal(t, schemaV2, res.Snapshot.Metadata.SchemaString)
		require.Equal(t, base.Metadata.ID, res.Snapshot.Metadata.ID, "the table id survives a schema change")
		require.Equal(t, base.Metadata.CreatedTime, res.Snapshot.Metadata.CreatedTime)

		// A writer that read version 0 and widened the schema differently
		// must merge again rather than drop the other column.
		stale := appendCommit("data/2.parquet", testAppID2, 0, 9)
		stale.Metadata = &Metadata{SchemaString: schemaV2b}
		stale.ReadVersion = base.Version
		_, err = Open(b, testRoot, testOptions("stale")).Commit(ctx, stale)
		require.ErrorIs(t, err, ErrMetadataChanged)

		// The same widening from a stale read is harmless.
		same := appendCommit("data/3.parquet", testAppID2, 0, 9)
		same.Metadata = &Metadata{SchemaString: schemaV2}
		same.ReadVersion = base.Version
		_, err = Open(b, testRoot, testOptions("same")).Commit(ctx, same)
		require.NoError(t, err)

		_, err = tbl.Commit(ctx, appendCommit("data/4.parquet", testAppID, 10, 19))
		require.NoError(t, err)

		s := replay(t, b)
		require.Equal(t, schemaV2, s.Metadata.SchemaString)
		require.Equal(t, int64(1), s.metadataVersion)
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
				c.Metadata = &Metadata{SchemaString: schemaV2, Configuration: map[string]string{"delta.logRetentionDuration": "interval 30 days"}}
			}
			if i == 12 {
				c = Commit{Operation: OpOptimize, Removes: []Remove{{Path: "data/000.parquet"}, {Path: "data/001.parquet"}},
					Adds: []Add{{Path: "data/000-001.parquet", Size: 300, DataChange: false, Stats: `{"numRecords":20}`}}}
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
		require.Equal(t, 2, at20.NumTombstones())
		require.JSONEq(t, fmt.Sprintf(`{"version":20,"size":%d}`, 2+len(at20.Txns)+len(at20.Files)+at20.NumTombstones()), string(hint),
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
func emptySnapshotUpTo(t *testing.T, b objstore.Bucket, v int64) *Snapshot {
	t.Helper()
	tbl := Open(b, testRoot, Options{})
	s := emptySnapshot()
	for i := int64(0); i <= v; i++ {
		e, err := tbl.readCommit(context.Background(), i)
		require.NoError(t, err)
		s.apply(i, e)
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
			c.Removes = []Remove{{Path: "data/003.parquet", DataChange: true}}
		}
		_, err := tbl.Commit(ctx, c)
		require.NoError(t, err)
	}
	cp, err := tbl.readCheckpoint(ctx, 10)
	require.NoError(t, err)
	want := emptySnapshotUpTo(t, b, 10)
	require.Equal(t, exportedState(want), exportedState(cp))
	require.Equal(t, want.txnUpdated, cp.txnUpdated)
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
	_, err := tbl.Create(ctx, Metadata{SchemaString: schemaV1})
	require.NoError(t, err)
	_, err = tbl.Commit(ctx, Commit{Adds: []Add{block("data/old.parquet", 1), block("data/new.parquet", 1)}})
	require.NoError(t, err)
	_, err = tbl.Commit(ctx, Commit{Operation: OpDelete, Removes: []Remove{{Path: "data/old.parquet", DataChange: true}}})
	require.NoError(t, err)
	clock.mu.Lock()
	clock.now = clock.now.Add(8 * 24 * time.Hour)
	clock.mu.Unlock()
	_, err = tbl.Commit(ctx, Commit{Operation: OpDelete, Removes: []Remove{{Path: "data/new.parquet", DataChange: true}}})
	require.NoError(t, err)

	cp, err := tbl.readCheckpoint(ctx, 3)
	require.NoError(t, err)
	require.Empty(t, cp.Files)
	_, ok := cp.Tombstone("data/new.parquet")
	require.True(t, ok)
	_, ok = cp.Tombstone("data/old.parquet")
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
	_, err := tbl.Create(ctx, Metadata{SchemaString: schemaV1})
	require.NoError(t, err)
	for i := range 3 {
		_, err := tbl.Commit(ctx, Commit{Adds: []Add{block(fmt.Sprint("data/", i), 1)}})
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
	require.ErrorIs(t, err, ErrTooManyAttempts)
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
		s, err := Open(fb, testRoot, testOptions("a")).Create(context.Background(), Metadata{ID: "mine", SchemaString: schemaV1})
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
			require.ErrorIs(t, err, ErrNoTable)
			expect(t, counts{map[string]int{"list": 1}, none}, "look for the table")
			_, err = tbl.Create(ctx, Metadata{SchemaString: schemaV1})
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
	require.ErrorIs(t, err, ErrNoTable)
	other := createTable(t, b)
	b.reset()
	s, err := a.Create(ctx, Metadata{SchemaString: schemaV2})
	require.NoError(t, err)
	require.Equal(t, other.cached().Metadata.ID, s.Metadata.ID, "the other creator's table")
	require.Equal(t, schemaV1, s.Metadata.SchemaString)
	require.Equal(t, 1, b.errs["put 412"], "the put of version 0 found it taken")
	require.Equal(t, 1, b.calls["list"], "then the table was loaded")

	c := Open(b, "other/table", opts)
	_, err = c.Snapshot(ctx)
	require.ErrorIs(t, err, ErrNoTable)
	clock.advance(maxSnapshotAge + time.Second)
	b.reset()
	_, err = c.Create(ctx, Metadata{SchemaString: schemaV1})
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
		withLineage := func(c Commit, lineage string) Commit {
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
		var conflict *TxnConflictError
		_, err = a.Commit(ctx, withLineage(appendCommit("data/x.parquet", testAppID, 15, 30), "AAAAAAAAAAAAAAAAAAAAAQ"))
		require.ErrorAs(t, err, &conflict)

		// other still holds the snapshot from before the lineage: its put
		// loses the race, and the re-check refuses it although its offsets
		// are past the table's.
		_, err = other.Commit(ctx, withLineage(appendCommit("data/y.parquet", testAppID, 500, 600), "BBBBBBBBBBBBBBBBBBBBBQ"))
		var lc *LineageConflictError
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
		v, ok := s.TxnVersion(LineageAppID(testAppID, "AAAAAAAAAAAAAAAAAAAAAQ"))
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

func TestSplitLineage(t *testing.T) {
	for _, tc := range []struct {
		app, id, lineage string
		ok               bool
	}{
		{app: LineageAppID("evodb-sink/g/t/0", "vJZ6j9qWQ7qY8Yd8Z5C3Hw"), id: "evodb-sink/g/t/0", lineage: "vJZ6j9qWQ7qY8Yd8Z5C3Hw", ok: true},
		{app: "evodb-sink/g/t/0"},
		{app: "evodb-sink/team@x/t/0"}, // an '@' in the group is not a lineage
		{app: "evodb-sink/g/t/0@"},
		{app: "@x"},
	} {
		id, lineage, ok := SplitLineage(tc.app)
		require.Equal(t, tc.ok, ok, tc.app)
		require.Equal(t, tc.id, id, tc.app)
		require.Equal(t, tc.lineage, lineage, tc.app)
	}
}
