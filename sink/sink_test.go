package sink

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/internal/kafkatest"
	"github.com/evodb/sink/internal/leaktest"
	"github.com/evodb/sink/internal/tabletest"
	"github.com/evodb/sink/objstore"
)

func TestMain(m *testing.M) {
	leaktest.VerifyTestMain(m,
		// kfake and franz-go keep process-wide helpers alive briefly.
		goleak.IgnoreTopFunction("github.com/twmb/franz-go/pkg/kgo.(*Client).reapConnectionsLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("time.Sleep"),
	)
}

type coord struct {
	topic     string
	partition int32
	offset    int64
}

// produced is what a test producer wrote: coordinates to (table, lsn).
type produced struct {
	mu   sync.Mutex
	recs map[coord]producedRec
}

type producedRec struct {
	table string
	lsn   uint64
	id    int64
	bad   bool
}

// newCluster starts the cluster of the sink's tests: topics seeded with
// partitions each, and topic auto-creation.
func newCluster(t *testing.T, partitions int32, topics ...string) *kfake.Cluster {
	t.Helper()
	return kafkatest.NewCluster(t, kfake.SeedTopics(partitions, topics...), kfake.AllowAutoTopicCreation())
}

// produceEvoDB writes n evodb changes over the given tables and partitions
// with a manual partitioner; badEvery > 0 makes every badEvery-th record
// malformed.
func produceEvoDB(t *testing.T, brokers []string, topic string, partitions int32, tables, n, badEvery int, seed uint64, lsnBase uint64, out *produced) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond))
	require.NoError(t, err)
	defer cl.Close()
	rng := rand.New(rand.NewPCG(seed, 7))
	var wg sync.WaitGroup
	var perr error
	var emu sync.Mutex
	for i := 0; i < n; i++ {
		table := fmt.Sprintf("t%02d", rng.IntN(tables))
		lsn := lsnBase + uint64(i) + 1
		id := rng.Int64N(1 << 40)
		ops := []string{"INSERT", "INSERT", "INSERT", "UPDATE", "DELETE"}
		op := ops[rng.IntN(len(ops))]
		bad := badEvery > 0 && i%badEvery == badEvery-1
		var val []byte
		switch {
		case bad && i%2 == 0:
			val = []byte(`{"op":"INSERT","table":` + table) // malformed JSON
		case bad:
			val = []byte(fmt.Sprintf(`{"op":"INSERT","table":%q,"data":{"id":"not-a-number-%d","name":{"nested":true}},"lsn":-5}`, table, i))
		default:
			val = []byte(fmt.Sprintf(`{"op":%q,"table":%q,"data":{"id":%d,"name":"user-%d","score":%d.5,"active":%t,"note":"ünïcode ✓"},"lsn":%d,"ts":%d}`,
				op, table, id, i, rng.IntN(1000), rng.IntN(2) == 0, lsn, time.Now().UnixMilli()))
		}
		rec := &kgo.Record{Topic: topic, Partition: int32(rng.IntN(int(partitions))), Value: val}
		wg.Add(1)
		cl.Produce(context.Background(), rec, func(r *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				emu.Lock()
				perr = err
				emu.Unlock()
				return
			}
			out.mu.Lock()
			out.recs[coord{r.Topic, r.Partition, r.Offset}] = producedRec{table: table, lsn: lsn, id: id, bad: bad}
			out.mu.Unlock()
		})
	}
	wg.Wait()
	require.NoError(t, perr)
}

// readTables reads every table in the bucket through its Delta log and
// returns the rows by Kafka coordinates, with their count (duplicates show
// as counts above one).
func readTables(t *testing.T, b objstore.Bucket) (map[coord]codec.Change, map[coord]int) {
	t.Helper()
	rows := map[coord]codec.Change{}
	counts := map[coord]int{}
	for _, ch := range tabletest.Changes(t, context.Background(), b) {
		k := coord{ch.Topic, ch.Partition, ch.Offset}
		counts[k]++
		rows[k] = ch
	}
	return rows, counts
}

// requireExactlyOnce checks every good produced record is in its table
// exactly once with its values, and nothing else is there.
func requireExactlyOnce(t *testing.T, b objstore.Bucket, want *produced) {
	t.Helper()
	rows, counts := readTables(t, b)
	var missing, dups, wrong []string
	good := 0
	for k, p := range want.recs {
		if p.bad {
			if counts[k] > 0 {
				wrong = append(wrong, fmt.Sprintf("bad record %v stored", k))
			}
			continue
		}
		good++
		switch n := counts[k]; {
		case n == 0:
			missing = append(missing, fmt.Sprint(k))
		case n > 1:
			dups = append(dups, fmt.Sprintf("%v x%d", k, n))
		default:
			ch := rows[k]
			if ch.LSN != p.lsn || ch.Table != p.table {
				wrong = append(wrong, fmt.Sprintf("%v: got table %s lsn %d, want %s %d", k, ch.Table, ch.LSN, p.table, p.lsn))
			}
		}
	}
	for k := range counts {
		if _, ok := want.recs[k]; !ok {
			wrong = append(wrong, fmt.Sprintf("unexpected row %v", k))
		}
	}
	require.Empty(t, missing, "missing %d of %d", len(missing), good)
	require.Empty(t, dups, "duplicated")
	require.Empty(t, wrong)
}

func testConfig(brokers []string, topics ...string) Config {
	cfg := Config{}
	cfg.Kafka.Brokers = brokers
	cfg.Kafka.Group = "test-group"
	cfg.Kafka.Topics = topics
	cfg.Kafka.SessionTimeout = 6 * time.Second
	cfg.Tables.Default.FlushInterval = 200 * time.Millisecond
	cfg.Tables.Default.FlushThreshold = 2000
	cfg.Tables.Default.Mode = "do-sqlite"
	cfg.Commit.OffsetCommitInterval = 50 * time.Millisecond
	cfg.Commit.StoreRetryTimeout = 30 * time.Second
	cfg.ShutdownTimeout = 20 * time.Second
	return cfg
}

// runSink starts a sink and returns it with a function that stops it
// gracefully and returns Run's error.
func runSink(t *testing.T, cfg Config, b objstore.Bucket, opts ...Option) (*Sink, func() error) {
	t.Helper()
	s, err := newSink(cfg, b, opts...)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return s, stop
}

// waitCommitted waits until the tables hold n distinct rows.
func waitCommitted(t *testing.T, b objstore.Bucket, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rows, _ := readTables(t, b)
		if len(rows) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tables hold %d of %d rows after %s", len(rows), n, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func countGood(p *produced) int {
	n := 0
	for _, r := range p.recs {
		if !r.bad {
			n++
		}
	}
	return n
}

func TestSinkWritesEveryChangeOnce(t *testing.T) {
	c := newCluster(t, 4, "cdc")
	want := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "cdc", 4, 5, 3000, 0, 1, 0, want)
	b := objstore.NewMemory()
	_, stop := runSink(t, testConfig(c.ListenAddrs(), "cdc"), b)
	waitCommitted(t, b, 3000, 60*time.Second)
	require.NoError(t, stop())
	requireExactlyOnce(t, b, want)

	// A restart with the same group reads nothing twice: the group offsets
	// were committed on shutdown, and the tables' txn versions fence any
	// replay.
	produceEvoDB(t, c.ListenAddrs(), "cdc", 4, 5, 500, 0, 2, 10_000, want)
	_, stop = runSink(t, testConfig(c.ListenAddrs(), "cdc"), b)
	waitCommitted(t, b, 3500, 60*time.Second)
	require.NoError(t, stop())
	requireExactlyOnce(t, b, want)
}

func TestSinkReplayFromZeroWritesNothingTwice(t *testing.T) {
	c := newCluster(t, 3, "cdc")
	want := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "cdc", 3, 4, 2000, 0, 3, 0, want)
	b := objstore.NewMemory()
	_, stop := runSink(t, testConfig(c.ListenAddrs(), "cdc"), b)
	waitCommitted(t, b, 2000, 60*time.Second)
	require.NoError(t, stop())

	// A new group starts at offset 0 but its txn ids differ, so it would
	// write everything again: that is a different pipeline. The same group
	// with its offsets lost (reset) must write nothing twice.
	cfg := testConfig(c.ListenAddrs(), "cdc")
	adm, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	defer adm.Close()
	deleteGroupOffsets(t, adm, cfg.Kafka.Group)
	produceEvoDB(t, c.ListenAddrs(), "cdc", 3, 4, 300, 0, 4, 50_000, want)
	_, stop = runSink(t, cfg, b)
	waitCommitted(t, b, 2300, 60*time.Second)
	require.NoError(t, stop())
	requireExactlyOnce(t, b, want)
}

func TestSinkExactlyOnceUnderChurn(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 30_000
	}
	const partitions, tables = 12, 20
	c := newCluster(t, partitions, "cdc")
	want := &produced{recs: map[coord]producedRec{}}
	b := objstore.NewMemory()
	cfg := testConfig(c.ListenAddrs(), "cdc")
	cfg.Tables.Default.FlushInterval = 300 * time.Millisecond

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 10; i++ {
			produceEvoDB(t, c.ListenAddrs(), "cdc", partitions, tables, n/10, 0, uint64(100+i), uint64(i*n), want)
		}
	}()

	rng := rand.New(rand.NewPCG(42, 42))
	type member struct {
		s    *Sink
		stop func() error
	}
	var members []member
	start := func() {
		s, stop := runSink(t, cfg, b)
		members = append(members, member{s, stop})
	}
	start()
	start()
	for round := 0; round < 12; round++ {
		time.Sleep(time.Duration(300+rng.IntN(700)) * time.Millisecond)
		switch {
		case len(members) < 3 && rng.IntN(2) == 0:
			start()
		case len(members) > 1:
			i := rng.IntN(len(members))
			m := members[i]
			members = append(members[:i], members[i+1:]...)
			if rng.IntN(2) == 0 {
				m.s.Kill() // a crash: no flush, no offset commit
				err := m.stop()
				require.True(t, err == nil || errors.Is(err, ErrKilled), "stop: %v", err)
			} else {
				require.NoError(t, m.stop())
			}
		default:
			start()
		}
	}
	wg.Wait()
	if len(members) == 0 {
		start()
	}
	waitCommitted(t, b, n, 120*time.Second)
	for _, m := range members {
		require.NoError(t, m.stop())
	}
	requireExactlyOnce(t, b, want)
}

func TestSinkDeadLetterTopic(t *testing.T) {
	c := newCluster(t, 2, "cdc", "cdc.dlq")
	want := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "cdc", 2, 3, 1000, 50, 7, 0, want)
	b := objstore.NewMemory()
	cfg := testConfig(c.ListenAddrs(), "cdc")
	cfg.Errors.Tolerance = "all"
	cfg.Errors.DLQTopic = "cdc.dlq"
	_, stop := runSink(t, cfg, b)
	waitCommitted(t, b, countGood(want), 60*time.Second)
	require.NoError(t, stop())
	requireExactlyOnce(t, b, want)

	// Every bad record is in the DLQ, with headers naming it and the error.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("cdc.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	bad := 1000 - countGood(want)
	got := map[coord]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for len(got) < bad && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			require.NotEmpty(t, h["evodb.error"])
			var k coord
			k.topic = h["evodb.source.topic"]
			_, err := fmt.Sscan(h["evodb.source.partition"], &k.partition)
			require.NoError(t, err)
			_, err = fmt.Sscan(h["evodb.source.offset"], &k.offset)
			require.NoError(t, err)
			require.True(t, want.recs[k].bad, "DLQ holds good record %v", k)
			got[k] = true
		})
	}
	require.Len(t, got, bad)
}

func TestSinkToleranceNoneStopsNamingTheRecord(t *testing.T) {
	c := newCluster(t, 1, "cdc")
	want := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "cdc", 1, 2, 100, 40, 8, 0, want)
	b := objstore.NewMemory()
	s, err := newSink(testConfig(c.ListenAddrs(), "cdc"), b)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = s.Run(ctx)
	var rerr *RecordError
	require.ErrorAs(t, err, &rerr)
	require.Equal(t, "cdc", rerr.Topic)
	require.Equal(t, int64(39), rerr.Offset)
	require.Contains(t, err.Error(), "errors.tolerance")
}

func TestSinkGracefulShutdownCommitsOffsets(t *testing.T) {
	c := newCluster(t, 3, "cdc")
	want := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "cdc", 3, 3, 1500, 0, 9, 0, want)
	b := objstore.NewMemory()
	cfg := testConfig(c.ListenAddrs(), "cdc")
	cfg.Tables.Default.FlushInterval = time.Hour // only the shutdown flushes
	cfg.Tables.Default.FlushThreshold = 1_000_000
	cfg.Tables.Default.Mode = "enterprise"
	s, stop := runSink(t, cfg, b)
	require.Eventually(t, func() bool {
		st := s.Status()
		n := 0
		for _, tb := range st.Tables {
			n += tb.BufferedRecords
		}
		return n == 1500
	}, 30*time.Second, 50*time.Millisecond)
	require.NoError(t, stop())
	requireExactlyOnce(t, b, want)
	ends := map[int32]int64{}
	for k := range want.recs {
		ends[k.partition] = max(ends[k.partition], k.offset+1)
	}
	committed := fetchGroupOffsets(t, c.ListenAddrs(), cfg.Kafka.Group, "cdc")
	require.Equal(t, ends, committed)
}

func TestConfigValidateNamesKeys(t *testing.T) {
	cfg := Config{}
	cfg.ApplyDefaults()
	cfg.Tables.Default.Mode = "huge"
	cfg.Errors.Tolerance = "all"
	cfg.Memory.LowWatermark = 0.95
	cfg.Kafka.FetchMaxBytes = -1
	err := cfg.Validate()
	require.Error(t, err)
	for _, key := range []string{"kafka.brokers", "kafka.topics", "tables.default.mode", "errors.dlq_topic", "memory", "kafka.fetch_max_bytes"} {
		require.Contains(t, err.Error(), key)
	}
}

// The fetches' reserve is taken from the memory budget: a budget it would
// take more than half of is refused naming the keys, and a sink's buffers
// get what it leaves.
func TestConfigFetchReserve(t *testing.T) {
	cfg := testConfig([]string{"127.0.0.1:9092"}, "cdc")
	cfg.ApplyDefaults()
	require.Equal(t, int64(24<<20), cfg.Kafka.FetchReserve(), "defaults: 8 MiB for each of two fetches, half as much again once decoded")

	cfg.Memory.Budget = 24 << 20
	err := cfg.Validate()
	require.ErrorContains(t, err, "memory.budget_bytes")
	require.ErrorContains(t, err, "kafka.max_concurrent_fetches")

	cfg.Kafka.MaxConcurrentFetches = 0
	cfg.ApplyDefaults()
	require.Equal(t, 2, cfg.Kafka.MaxConcurrentFetches)
	cfg.Kafka.MaxConcurrentFetches = -1
	require.ErrorContains(t, cfg.Validate(), "kafka.max_concurrent_fetches")

	cfg.Memory.Budget = 64 << 20
	cfg.Kafka.MaxConcurrentFetches = 1
	require.NoError(t, cfg.Validate())
	s, err := newSink(cfg, objstore.NewMemory())
	require.NoError(t, err)
	require.Equal(t, int64(64<<20-12<<20)-encoderReserve(4), s.ctrl.Budget().Limit, "the buffers share the budget less one fetch and the encoders")
}

// The encoders' memory is part of the budget: the zstd states the process
// keeps and a Parquet writer for each concurrent flush, so buffers get
// less as more flushes may run at once, and never less than a quarter.
func TestEncodersCountAgainstBudget(t *testing.T) {
	cfg := testConfig([]string{"127.0.0.1:9092"}, "cdc")
	cfg.Memory.Budget = 128 << 20
	cfg.ApplyDefaults()
	require.Equal(t, 4, cfg.Commit.MaxConcurrentFlushes)
	require.GreaterOrEqual(t, encoderReserve(4), int64(12<<20), "four zstd states of 2 MiB and four writers of 1.5 MiB at least")

	s, err := newSink(cfg, objstore.NewMemory())
	require.NoError(t, err)
	rest := cfg.Memory.Budget - cfg.Kafka.FetchReserve()
	require.Equal(t, encoderReserve(4), s.ctrl.Reserved())
	require.Equal(t, rest-encoderReserve(4), s.ctrl.Budget().Limit)
	require.Zero(t, s.ctrl.State(), "no table is open yet")

	cfg.Commit.MaxConcurrentFlushes = 8
	s, err = newSink(cfg, objstore.NewMemory())
	require.NoError(t, err)
	require.Equal(t, rest-encoderReserve(4)-4*flushEncoderBytes, s.ctrl.Budget().Limit, "four more flushes, four more writers")

	cfg.Commit.MaxConcurrentFlushes = 1000
	s, err = newSink(cfg, objstore.NewMemory())
	require.NoError(t, err)
	require.Equal(t, rest/4, s.ctrl.Budget().Limit, "the buffers keep a quarter")
}

// expiringContext is a context with a deadline that the test makes pass
// when it chooses, so the test does not race a clock: its Err is
// context.DeadlineExceeded once expire is called, as a real deadline's is.
type expiringContext struct {
	context.Context
	deadline time.Time
	done     chan struct{}
	once     sync.Once
}

func newExpiringContext() *expiringContext {
	return &expiringContext{Context: context.Background(), deadline: time.Now().Add(time.Hour), done: make(chan struct{})}
}

func (c *expiringContext) expire()                     { c.once.Do(func() { close(c.done) }) }
func (c *expiringContext) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *expiringContext) Done() <-chan struct{}       { return c.done }
func (c *expiringContext) Value(key any) any           { return c.Context.Value(key) }
func (c *expiringContext) String() string              { return "expiringContext" }
func (c *expiringContext) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// A run whose context reaches its deadline stops as gracefully as one whose
// context is cancelled: it flushes what is buffered, commits the group
// offsets and returns no error.
func TestSinkDeadlineIsAGracefulStop(t *testing.T) {
	c := newCluster(t, 2, "cdc")
	want := &produced{recs: map[coord]producedRec{}}
	produceEvoDB(t, c.ListenAddrs(), "cdc", 2, 3, 600, 0, 19, 0, want)
	b := objstore.NewMemory()
	cfg := testConfig(c.ListenAddrs(), "cdc")
	cfg.Tables.Default.FlushInterval = time.Hour // only the shutdown flushes
	cfg.Tables.Default.FlushThreshold = 1_000_000
	cfg.Tables.Default.Mode = "enterprise"
	s, err := newSink(cfg, b)
	require.NoError(t, err)
	ctx := newExpiringContext()
	defer ctx.expire()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	require.Eventually(t, func() bool {
		n := 0
		for _, tb := range s.Status().Tables {
			n += tb.BufferedRecords
		}
		return n == 600
	}, 30*time.Second, 50*time.Millisecond)
	ctx.expire()
	require.NoError(t, <-done)
	requireExactlyOnce(t, b, want)
	ends := map[int32]int64{}
	for k := range want.recs {
		ends[k.partition] = max(ends[k.partition], k.offset+1)
	}
	require.Equal(t, ends, fetchGroupOffsets(t, c.ListenAddrs(), cfg.Kafka.Group, "cdc"))
}

// A run whose context ends before it has reached its brokers (here: there
// are none) stops as asked instead of reporting them unreachable.
func TestSinkContextEndingAtStartIsAGracefulStop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	cfg := testConfig([]string{addr}, "cdc")
	s, err := newSink(cfg, objstore.NewMemory())
	require.NoError(t, err)
	ctx := newExpiringContext()
	ctx.expire()
	require.NoError(t, s.Run(ctx))
}
