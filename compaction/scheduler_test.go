package compaction

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/objstore"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestLease(t *testing.T) {
	ctx := testContext(t)
	b := objstore.NewMemory()
	clk := &clock{t: time.Now()}
	ttl := time.Minute

	a, err := AcquireLease(ctx, b, "t", "a", ttl, clk.now())
	require.NoError(t, err)
	_, err = AcquireLease(ctx, b, "t", "b", ttl, clk.now())
	var held *LeaseHeldError
	require.ErrorAs(t, err, &held)
	require.ErrorIs(t, err, ErrLeaseHeld)
	require.Equal(t, "a", held.Owner)

	clk.advance(30 * time.Second)
	require.NoError(t, a.Renew(ctx, clk.now()))
	clk.advance(45 * time.Second)
	_, err = AcquireLease(ctx, b, "t", "b", ttl, clk.now())
	require.ErrorIs(t, err, ErrLeaseHeld, "renewed, so not expired yet")

	clk.advance(time.Minute)
	bl, err := AcquireLease(ctx, b, "t", "b", ttl, clk.now())
	require.NoError(t, err, "an expired lease is taken over")
	require.ErrorIs(t, a.Renew(ctx, clk.now()), ErrLeaseLost)
	require.NoError(t, a.Release(ctx), "a stale owner's release is a no-op")
	_, err = AcquireLease(ctx, b, "t", "c", ttl, clk.now())
	require.ErrorIs(t, err, ErrLeaseHeld, "the stale release did not free b's lease")

	require.NoError(t, bl.Release(ctx))
	_, err = AcquireLease(ctx, b, "t", "c", ttl, clk.now())
	require.NoError(t, err, "a released lease is free")
}

func TestLeaseContention(t *testing.T) {
	ctx := testContext(t)
	b := objstore.NewMemory()
	now := time.Now()
	// An expired lease, then many contenders at once: exactly one wins.
	_, err := AcquireLease(ctx, b, "t", "old", time.Second, now.Add(-time.Hour))
	require.NoError(t, err)
	var wg sync.WaitGroup
	wins := make([]bool, 8)
	for i := range wins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := AcquireLease(ctx, b, "t", string(rune('a'+i)), time.Minute, now)
			wins[i] = err == nil
		}()
	}
	wg.Wait()
	n := 0
	for _, w := range wins {
		if w {
			n++
		}
	}
	require.Equal(t, 1, n)
}

func TestFailureBackoff(t *testing.T) {
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{{1, 0}, {2, 0}, {3, 8 * time.Minute}, {4, 16 * time.Minute}, {6, 64 * time.Minute}, {7, 2 * time.Hour}, {50, 2 * time.Hour}} {
		require.Equal(t, tc.want, failureBackoff(tc.failures), "failures %d", tc.failures)
	}
}

func TestConfig(t *testing.T) {
	c := Config{}
	c.ApplyDefaults()
	d := DefaultConfig()
	d.Enabled = false
	require.Equal(t, d, c)
	require.NoError(t, c.Validate())
	bad := Config{MinInputs: 1, MaxInputs: 1, LeaseTTL: time.Millisecond, Interval: -1, Retention: -1, MaxJobBytes: -1, Concurrency: -1}
	err := bad.Validate()
	for _, key := range []string{"min_inputs", "max_inputs", "lease_ttl", "interval", "retention", "max_job_bytes", "concurrency"} {
		require.ErrorContains(t, err, "compaction."+key)
	}
	short := DefaultConfig()
	short.Retention = 30 * time.Minute
	require.ErrorContains(t, short.Validate(), "compaction.retention: 30m0s is under the 1h minimum")
}

// bigBlocks appends n blocks with wide rows so that sizes vary.
func bigBlocks(t *testing.T, ctx context.Context, f *fixture, sizes ...int) {
	t.Helper()
	for _, n := range sizes {
		_, err := f.appendBlock(ctx, n, func(o int64) codec.Change {
			pad := make([]byte, 40+o%50)
			for i := range pad {
				pad[i] = byte('a' + (o*7+int64(i)*13)%26)
			}
			return row(o, codec.Field{Name: "pad", Value: codec.String(string(pad))})
		})
		require.NoError(t, err)
	}
}

// TestCompactOnceBound compacts a table of many blocks and checks the file
// count bound stated on Plan, and that every row survives.
func TestCompactOnceBound(t *testing.T) {
	ctx := testContext(t)
	b := objstore.NewMemory()
	f := newFixture(t, b, "db/users")
	var sizes []int
	for i := range 40 {
		sizes = append(sizes, 5+(i*37)%60)
	}
	bigBlocks(t, ctx, f, sizes...)
	before, _ := readRows(t, ctx, b, f.path)

	s := NewScheduler(b, tables(b), Config{}, WithInstance("one"))
	ref := TableRef{Path: f.path, Mode: testMode}
	res, err := s.CompactOnce(ctx, ref)
	require.NoError(t, err)
	require.Equal(t, 40, res.FilesBefore)
	require.Positive(t, res.Jobs)
	require.Less(t, res.FilesAfter, res.FilesBefore)

	after, snap := readRows(t, ctx, b, f.path)
	require.Equal(t, len(before), len(after))
	require.Equal(t, res.FilesAfter, len(snap.Files))
	require.Empty(t, Plan(snap, testMode, PlanOptions{}), "CompactOnce ran to a fixpoint")
	half := SizeCap(testMode, PlanOptions{}) / 2
	bound := int((res.BytesAfter+half-1)/half) + DefaultMinInputs - 1
	require.LessOrEqual(t, res.FilesAfter, bound, "%d files of %d bytes", res.FilesAfter, res.BytesAfter)

	again, err := s.CompactOnce(ctx, ref)
	require.NoError(t, err)
	require.Zero(t, again.Jobs, "nothing left to do")

	if python := os.Getenv("SINK_TEST_PYTHON"); python != "" {
		t.Run("delta-rs", func(t *testing.T) { checkDeltaRS(t, python) })
	}
}

// checkDeltaRS compacts a filesystem copy of the table and reads it with
// delta-rs.
func checkDeltaRS(t *testing.T, python string) {
	ctx := testContext(t)
	dir := t.TempDir()
	b, err := objstore.NewFilesystem(dir)
	require.NoError(t, err)
	f := newFixture(t, b, "users")
	var sizes []int
	for i := range 20 {
		sizes = append(sizes, 5+(i*37)%60)
	}
	bigBlocks(t, ctx, f, sizes...)
	want, _ := readRows(t, ctx, b, f.path)
	res, err := NewScheduler(b, tables(b), Config{}).CompactOnce(ctx, TableRef{Path: f.path, Mode: testMode})
	require.NoError(t, err)
	require.Positive(t, res.Jobs)
	cmd := exec.Command(python, filepath.Join("testdata", "read_delta.py"), filepath.Join(dir, f.path))
	out, err := cmd.Output()
	var stderr string
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = string(ee.Stderr)
	}
	require.NoError(t, err, "delta-rs: %s", stderr)
	var got struct {
		Version int64   `json:"version"`
		Files   int     `json:"files"`
		Offsets []int64 `json:"offsets"`
		LSNs    []int64 `json:"lsns"`
	}
	require.NoError(t, json.Unmarshal(out, &got), "output: %s", out)
	require.Equal(t, res.Version, got.Version)
	require.Equal(t, res.FilesAfter, got.Files)
	var offsets []int64
	for o := range want {
		offsets = append(offsets, o)
	}
	sort.Slice(offsets, func(i, j int) bool { return offsets[i] < offsets[j] })
	require.Equal(t, offsets, got.Offsets)
}

// TestTwoSchedulers runs two schedulers' CompactOnce and an appender on one
// table at once: the lease lets one compact at a time, and no row is lost
// or doubled.
func TestTwoSchedulers(t *testing.T) {
	ctx := testContext(t)
	b := objstore.NewMemory()
	f := newFixture(t, b, "db/users")
	bigBlocks(t, ctx, f, 10, 20, 30, 10, 20, 30, 10, 20, 30, 10, 20, 30)
	ref := TableRef{Path: f.path, Mode: testMode}
	scheds := []*Scheduler{NewScheduler(b, tables(b), Config{}, WithInstance("a")), NewScheduler(b, tables(b), Config{}, WithInstance("b"))}

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
			if _, err := f.appendBlock(ctx, 7, func(o int64) codec.Change { return row(o) }); err != nil {
				appendErr = err
				return
			}
		}
	}()
	results := make([]Result, 2)
	errs := make([]error, 2)
	var cwg sync.WaitGroup
	for i, s := range scheds {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			results[i], errs[i] = s.CompactOnce(ctx, ref)
		}()
	}
	cwg.Wait()
	close(stop)
	wg.Wait()
	require.NoError(t, appendErr)
	jobs := 0
	for i, err := range errs {
		if err != nil {
			require.ErrorIs(t, err, ErrLeaseHeld)
		}
		jobs += results[i].Jobs
	}
	require.Positive(t, jobs)

	rows, _ := readRows(t, ctx, b, f.path)
	f.mu.Lock()
	next := f.next
	f.mu.Unlock()
	require.Len(t, rows, int(next-1))
}

// TestSchedulerRun runs the background loop until the table is compacted.
func TestSchedulerRun(t *testing.T) {
	ctx := testContext(t)
	b := objstore.NewMemory()
	f := newFixture(t, b, "db/users")
	f.mustAppend(ctx, 3, 3, 3, 3, 3, 3)
	yields := 0
	s := NewScheduler(b, tables(b), Config{Interval: 10 * time.Millisecond}, WithYield(func(ctx context.Context) error {
		yields++
		return ctx.Err()
	}))
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- s.Run(runCtx, func() []TableRef {
			return []TableRef{{Path: f.path, Mode: testMode}, {Path: "missing", Mode: testMode}}
		})
	}()
	missingFailed := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		st := s.tables["missing"]
		return st != nil && st.failures > 0
	}
	// Both tables are visited in the same rounds, in either order: wait
	// for the compaction of one and the counted failure of the other.
	require.Eventually(t, func() bool {
		snap, err := delta.Open(b, f.path, delta.Options{}).Snapshot(ctx)
		return err == nil && len(snap.Files) == 1 && missingFailed()
	}, 20*time.Second, 10*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	require.Positive(t, yields)
	s.mu.Lock()
	defer s.mu.Unlock()
	require.Positive(t, s.tables["missing"].failures, "a failing table is counted")
	require.Zero(t, s.tables[f.path].failures)
}

// A table that allows deleted rows (a mirror table, with deletion
// vectors) is left alone: rewriting its files whole would bring deleted
// rows back. CompactOnce says so and changes nothing.
func TestCompactOnceSkipsTablesThatDeleteRows(t *testing.T) {
	ctx := testContext(t)
	b := objstore.NewMemory()
	f := newFixture(t, b, "db/users_current")
	_, err := f.table.Create(ctx, committer.Metadata{Name: "users", Schema: f.schema.Clone(), Configuration: map[string]string{"delta.enableDeletionVectors": "true"}})
	require.NoError(t, err)
	f.mustAppend(ctx, 5, 5, 5, 5, 5, 5)
	before, err := f.table.Snapshot(ctx)
	require.NoError(t, err)

	s := NewScheduler(b, tables(b), Config{}, WithInstance("one"))
	_, err = s.CompactOnce(ctx, TableRef{Path: f.path, Mode: testMode})
	require.ErrorIs(t, err, ErrDeletesRows)
	require.ErrorContains(t, err, "db/users_current")
	after, err := f.table.Snapshot(ctx)
	require.NoError(t, err)
	require.Equal(t, before.Version, after.Version)
}
