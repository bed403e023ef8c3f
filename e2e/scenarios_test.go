package e2e

import (
	"context"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/internal/workload"
)

// Record counts are scaled so the whole suite stays within about twelve
// minutes on two shared cores.
const (
	baselineRecords = 200_000 // over three topics
	loadRecords     = 20_000  // per scenario under faults
)

// background produces n records of ws in the background; wait returns
// once all are acknowledged.
func (h *harness) background(ws *workloadStream, n int) (wait func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	ctx := h.ctx(10 * time.Minute)
	go func() {
		defer wg.Done()
		// Chunks with pauses spread the load over the scenario's events.
		for done := 0; done < n; {
			m := min(2000, n-done)
			h.produceRetrying(ctx, ws, m)
			done += m
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return wg.Wait
}

// mirrorTables returns tables when the scenario writes Delta tables, whose
// mirrors the chaos scenarios keep too, and none for Iceberg tables, which
// have no mirrors.
func (h *harness) mirrorTables(tables ...string) []string {
	if h.icebergURL != "" {
		return nil
	}
	return tables
}

// mirrorsDone waits for the mirrors of tables to hold their change logs'
// latest versions, while the sinks still run them; checkMirrors, after the
// sinks stopped, proves them right.
func (h *harness) mirrorsDone(tables []string) {
	if len(tables) > 0 {
		h.waitMirrors(mirrorPairs(tables...), 3*time.Minute)
	}
}

// checkMirrors proves the mirrors of o's sinks right, if they keep any.
func (h *harness) checkMirrors(o sinkOptions) {
	if len(o.mirrors) > 0 {
		h.mirrorVerdict(o)
	}
}

// singleTopic is the setup most scenarios share: one evodb topic with six
// partitions and eight tables.
func (h *harness) singleTopic(cfg workload.Config) *workloadStream {
	cfg.Topic = h.topic("cdc")
	if cfg.Partitions == 0 {
		cfg.Partitions = 6
	}
	h.createTopics(cfg.Partitions, cfg.Topic)
	return h.stream(cfg)
}

// TestBaseline: three topics of six partitions (evodb, Debezium, Debezium
// with the schema wrapper), twenty tables, two sink processes.
func TestBaseline(t *testing.T) {
	h := newHarness(t, 1)
	formats := []struct {
		f       codec.Format
		wrapper bool
	}{{cdc.FormatEvoDB, false}, {cdc.FormatDebezium, false}, {cdc.FormatDebezium, true}}
	var streams []*workloadStream
	opts := sinkOptions{formats: map[string]string{}}
	names := make([]string, 20)
	for i := range names {
		names[i] = "b" + string(rune('a'+i))
	}
	for i, f := range formats {
		topic := h.topic([]string{"evodb", "dbz", "dbzwrapped"}[i])
		h.createTopics(6, topic)
		// The tables split over the topics, Debezium ones in their own DB.
		cfg := workload.Config{Topic: topic, Partitions: 6, Format: f.f, SchemaWrapper: f.wrapper, DB: "db" + string(rune('0'+i))}
		switch i {
		case 0:
			cfg.TableNames = names[:8]
		case 1:
			cfg.TableNames = names[8:14]
		default:
			cfg.TableNames = names[14:]
		}
		streams = append(streams, h.stream(cfg))
		opts.topics = append(opts.topics, topic)
		opts.formats[topic] = string(f.f)
	}
	ctx := h.ctx(10 * time.Minute)
	for _, ws := range streams {
		require.NoError(t, h.produce(ctx, ws, baselineRecords/len(streams)))
	}
	a, b := h.startSink(opts), h.startSink(opts)
	h.waitDone(opts.topics, 5*time.Minute)
	a.stop()
	b.stop()
	h.verdict("", streams...)
}

// TestCrash kills a sink process with SIGKILL at random moments, ten times,
// restarting it each time; short flush intervals put the kills inside
// uploads, commits and offset commits.
func TestCrash(t *testing.T) { crashScenario(t, newHarness(t, 2)) }

// TestIcebergCrash is TestCrash with Iceberg tables of a REST catalog:
// the kills land inside catalog commits too.
func TestIcebergCrash(t *testing.T) {
	h := newHarness(t, 12)
	h.useIceberg()
	crashScenario(t, h)
}

func crashScenario(t *testing.T, h *harness) {
	ws := h.singleTopic(workload.Config{})
	// Mirrors of some tables: their maintainers are killed too, between
	// upload and commit, mid rebuild, holding their leases.
	mirrored := h.mirrorTables("t0", "t3", "t6")
	opts := sinkOptions{topics: []string{ws.topic}, flushInterval: 150 * time.Millisecond, flushThreshold: 500, mirrors: mirrored}
	sinks := []*sinkProc{h.startSink(opts), h.startSink(opts)}
	wait := h.background(ws, loadRecords)
	for i := range 10 {
		time.Sleep(time.Duration(300+h.rng.IntN(1500)) * time.Millisecond)
		victim := sinks[h.rng.IntN(len(sinks))]
		victim.kill()
		t.Logf("kill %d: sink %d", i+1, victim.id)
		victim.start()
	}
	wait()
	h.waitDone(opts.topics, 5*time.Minute)
	h.mirrorsDone(mirrored)
	for _, s := range sinks {
		s.stop()
	}
	h.verdict("", ws)
	h.checkMirrors(opts)
}

// TestCrashAvro is TestCrash with an Avro topic beside the JSON one: plain
// Avro records in the Confluent wire format whose schemas live in a real
// schema registry, with columns added mid-stream so that new schema
// versions arrive while sinks are being killed.
func TestCrashAvro(t *testing.T) {
	h := newHarness(t, 11)
	avro := h.avroStream(workload.Config{Topic: h.topic("avro"), Partitions: 3, EvolveAfter: 300,
		// Names apart from the evodb topic's t0…t7: both write "{table}".
		TableNames: []string{"a0", "a1", "a2", "a3", "a4"}})
	ws := h.singleTopic(workload.Config{Partitions: 3})
	h.createTopics(3, avro.topic)
	opts := sinkOptions{topics: []string{ws.topic, avro.topic}, formats: map[string]string{avro.topic: string(avro.format)},
		flushInterval: 150 * time.Millisecond, flushThreshold: 500}
	sinks := []*sinkProc{h.startSink(opts), h.startSink(opts)}
	w1, w2 := h.background(ws, loadRecords/2), h.background(avro, loadRecords/2)
	for i := range 6 {
		time.Sleep(time.Duration(300+h.rng.IntN(1500)) * time.Millisecond)
		victim := sinks[h.rng.IntN(len(sinks))]
		victim.kill()
		t.Logf("kill %d: sink %d", i+1, victim.id)
		victim.start()
	}
	w1()
	w2()
	h.waitDone(opts.topics, 5*time.Minute)
	for _, s := range sinks {
		s.stop()
	}
	h.verdict("", ws, avro)
}

// TestScale goes from one process to three and back to one during load.
func TestScale(t *testing.T) { scaleScenario(newHarness(t, 3)) }

// TestIcebergScale is TestScale with Iceberg tables of a REST catalog:
// the members' commits race on the catalog's assert-ref-snapshot-id.
func TestIcebergScale(t *testing.T) {
	h := newHarness(t, 13)
	h.useIceberg()
	scaleScenario(h)
}

func scaleScenario(h *harness) {
	ws := h.singleTopic(workload.Config{})
	// Mirrors move with the tables' writers: a maintainer's lease is
	// released when its member stops and taken by another.
	mirrored := h.mirrorTables("t1", "t4", "t7")
	opts := sinkOptions{topics: []string{ws.topic}, flushInterval: 300 * time.Millisecond, mirrors: mirrored}
	first := h.startSink(opts)
	wait := h.background(ws, loadRecords)
	time.Sleep(3 * time.Second)
	second, third := h.startSink(opts), h.startSink(opts)
	time.Sleep(6 * time.Second)
	second.stop()
	third.stop()
	wait()
	h.waitDone(opts.topics, 5*time.Minute)
	h.mirrorsDone(mirrored)
	first.stop()
	h.verdict("", ws)
	h.checkMirrors(opts)
}

// TestBrokerRestart restarts the Kafka broker during load.
func TestBrokerRestart(t *testing.T) { brokerRestartScenario(t, newHarness(t, 4)) }

// TestIcebergBrokerRestart is TestBrokerRestart with Iceberg tables.
func TestIcebergBrokerRestart(t *testing.T) {
	h := newHarness(t, 13)
	h.useIceberg()
	brokerRestartScenario(t, h)
}

func brokerRestartScenario(t *testing.T, h *harness) {
	if h.svc.kafkaDir == "" {
		t.Skip("SINK_E2E_KAFKA_DIR is not set: cannot restart the broker")
	}
	ws := h.singleTopic(workload.Config{})
	opts := sinkOptions{topics: []string{ws.topic}, flushInterval: 300 * time.Millisecond}
	a, b := h.startSink(opts), h.startSink(opts)
	wait := h.background(ws, loadRecords)
	time.Sleep(3 * time.Second)
	// A session of its own, so the broker outlives this test process
	// whatever signal ends it.
	cmd := exec.Command("scripts/kafka.sh", "restart", h.svc.kafkaDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "kafka.sh restart: %s", out)
	t.Logf("broker restarted: %s", out)
	wait()
	h.waitDone(opts.topics, 5*time.Minute)
	a.stop()
	b.stop()
	h.verdict("", ws)
}

// TestStoreFaults puts a fault-injecting proxy between the sinks and the
// S3 server: 500, 503 and 429 answers, dropped connections, and answers
// delayed past the client's request timeout after the write happened.
func TestStoreFaults(t *testing.T) { storeFaultsScenario(t, newHarness(t, 5)) }

// TestIcebergStoreFaults is TestStoreFaults with Iceberg tables: the
// faults hit the sinks' data files and the manifests they write through
// iceberg-go's S3 client; the catalog writes its metadata files through
// its own S3 client, straight to the S3 server.
func TestIcebergStoreFaults(t *testing.T) {
	h := newHarness(t, 14)
	h.useIceberg()
	storeFaultsScenario(t, h)
}

func storeFaultsScenario(t *testing.T, h *harness) {
	p := newFaultProxy(t, h.svc.s3.Endpoint, 6, 0.06, 3*time.Second)
	h.storeEndpoint = p.URL()
	ws := h.singleTopic(workload.Config{})
	// The mirrors' uploads, deletion vector files and commits meet the
	// faults too: ambiguous commits are resolved by their txn.
	mirrored := h.mirrorTables("t2", "t5")
	opts := sinkOptions{topics: []string{ws.topic}, flushInterval: 300 * time.Millisecond, storeQuery: "request_timeout=2s&max_retries=20", mirrors: mirrored}
	a, b := h.startSink(opts), h.startSink(opts)
	wait := h.background(ws, loadRecords/2)
	wait()
	if len(mirrored) > 0 {
		// A second round once the mirrors hold the first: they then follow
		// the change logs step by step, deleting superseded rows, under
		// the faults, instead of being built once from a snapshot.
		h.waitDone(opts.topics, 6*time.Minute)
		h.mirrorsDone(mirrored)
		h.background(ws, loadRecords/4)()
	}
	h.waitDone(opts.topics, 6*time.Minute)
	h.mirrorsDone(mirrored)
	p.disable()
	a.stop()
	b.stop()
	t.Logf("store faults injected: %s", p.summary())
	require.Positive(t, p.injected(), "the proxy injected no fault")
	h.verdict("", ws)
	h.checkMirrors(opts)
}

// TestZombie stops a sink with SIGSTOP past the group session timeout, lets
// the other take its partitions, and resumes it: its late work must not
// duplicate anything.
func TestZombie(t *testing.T) { zombieScenario(t, newHarness(t, 6)) }

// TestIcebergZombie is TestZombie with Iceberg tables: the resumed
// zombie's commits are fenced by the txn map in the snapshot summary.
func TestIcebergZombie(t *testing.T) {
	h := newHarness(t, 16)
	h.useIceberg()
	zombieScenario(t, h)
}

func zombieScenario(t *testing.T, h *harness) {
	ws := h.singleTopic(workload.Config{})
	opts := sinkOptions{topics: []string{ws.topic}, flushInterval: 300 * time.Millisecond, sessionTimeout: 6 * time.Second}
	a, b := h.startSink(opts), h.startSink(opts)
	wait := h.background(ws, loadRecords)
	time.Sleep(3 * time.Second)
	a.signal(syscall.SIGSTOP)
	t.Log("sink 0 stopped")
	time.Sleep(12 * time.Second)
	a.signal(syscall.SIGCONT)
	t.Log("sink 0 resumed")
	wait()
	h.waitDone(opts.topics, 5*time.Minute)
	a.stop()
	b.stop()
	h.verdict("", ws)
}

// TestSchemaEvolution adds columns mid-stream while background
// compaction merges the tables' small files.
func TestSchemaEvolution(t *testing.T) { schemaEvolutionScenario(t, newHarness(t, 7)) }

// TestIcebergSchemaEvolution is TestSchemaEvolution with Iceberg tables:
// new columns arrive through update-schema, compaction through replace
// snapshots.
func TestIcebergSchemaEvolution(t *testing.T) {
	h := newHarness(t, 17)
	h.useIceberg()
	schemaEvolutionScenario(t, h)
}

func schemaEvolutionScenario(t *testing.T, h *harness) {
	ws := h.singleTopic(workload.Config{EvolveAfter: 300})
	dbz := h.stream(workload.Config{Topic: h.topic("dbz"), Partitions: 3, Format: cdc.FormatDebezium, SchemaWrapper: true, EvolveAfter: 200,
		// Under the "{table}" path template names must differ from the
		// evodb topic's t0…t7, or both would write the same table.
		TableNames: []string{"d0", "d1", "d2", "d3"}})
	h.createTopics(3, dbz.topic)
	// Mirrors of tables whose change logs are compacted while they follow
	// them and whose columns are added mid-stream, evodb and Debezium.
	mirrored := h.mirrorTables("t0", "t5", workload.DefaultDB+"."+workload.DefaultSchema+".d1")
	opts := sinkOptions{topics: []string{ws.topic, dbz.topic}, formats: map[string]string{dbz.topic: "debezium"},
		flushInterval: 300 * time.Millisecond, compactionInterval: time.Second, mirrors: mirrored}
	a := h.startSink(opts)
	w1, w2 := h.background(ws, loadRecords/2), h.background(dbz, loadRecords/4)
	w1()
	w2()
	h.waitDone(opts.topics, 5*time.Minute)
	h.mirrorsDone(mirrored)
	// Compaction ran while the sink ran: some active file is a merge. A
	// fast load can end before the first job, so the sink keeps running
	// (its interval is 1 s) until one is seen, up to a minute.
	deadline := time.Now().Add(time.Minute)
	compacted := compactedFiles(t, h)
	for compacted == 0 && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		compacted = compactedFiles(t, h)
	}
	a.stop()
	t.Logf("compacted files active after the run: %d", compacted)
	require.Positive(t, compacted, "no compaction ran within a minute of the sink running with min_inputs 4 and a 1 s interval")
	h.verdict("", ws, dbz)
	h.checkMirrors(opts)
}

// compactedFiles counts the active files of every table that are merges
// (level above 0).
func compactedFiles(t *testing.T, h *harness) int {
	t.Helper()
	n := 0
	tf := h.tableFormat()
	roots, err := tf.ListTables(context.Background())
	require.NoError(t, err)
	for _, root := range roots {
		snap, err := tf.Open(root, committer.Options{}).Snapshot(context.Background())
		require.NoError(t, err)
		for _, add := range snap.Files {
			if lvl := add.Tags["evodb.level"]; lvl != "" && lvl != "0" {
				n++
			}
		}
	}
	return n
}

// TestBadInput sends malformed and wrongly typed records: they go to the
// dead-letter topic with their source headers, and nothing else is lost.
func TestBadInput(t *testing.T) { badInputScenario(t, newHarness(t, 8)) }

// TestIcebergBadInput is TestBadInput with Iceberg tables.
func TestIcebergBadInput(t *testing.T) {
	h := newHarness(t, 15)
	h.useIceberg()
	badInputScenario(t, h)
}

func badInputScenario(t *testing.T, h *harness) {
	ws := h.singleTopic(workload.Config{BadRate: 0.03})
	dlq := h.topic("dlq")
	h.createTopics(1, dlq)
	opts := sinkOptions{topics: []string{ws.topic}, dlq: dlq, flushInterval: 300 * time.Millisecond}
	a, b := h.startSink(opts), h.startSink(opts)
	require.NoError(t, h.produce(context.Background(), ws, loadRecords/2))
	h.waitDone(opts.topics, 5*time.Minute)
	a.stop()
	b.stop()
	require.Positive(t, ws.bad)
	h.verdict(dlq, ws)
}
