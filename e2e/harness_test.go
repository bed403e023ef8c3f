// Package e2e runs the sink binary against a real Kafka broker and a real
// S3 server, with crashes, rebalances and faults, and proves after each
// scenario that every produced change is in its table exactly once: with
// the verify package and with independent readers (delta-rs, pyarrow,
// DuckDB, Polars, Apache Spark with Delta Lake) that share no code with the
// sink.
//
// The services come from the environment (.ci/run starts them):
//
//	SINK_E2E_KAFKA                 broker host:port (unset: the suite skips)
//	SINK_E2E_KAFKA_DIR             the broker's state dir, for restarts (optional)
//	SINK_E2E_KAFKA_SSL, _SASL_SSL, _MTLS, _CA, ... the same broker's TLS listeners (see tls_test.go)
//	SINK_E2E_S3_ENDPOINT, _BUCKET, _ACCESS_KEY, _SECRET_KEY, _REGION
//	SINK_E2E_S3_DATA_DIR           where the S3 server keeps objects as files (optional)
//	SINK_TEST_PYTHON               the Python with the readers (optional: skipped when unset)
//	EVODB_SCHEMA_REGISTRY_URL      a Confluent-compatible schema registry (scenarios with Avro topics skip when unset)
//	EVODB_ICEBERG_REST_URL         an Iceberg REST catalog whose warehouse is on the S3 server
//	                               (optional: the Iceberg scenarios skip when unset)
package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/codec/confluent"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/committer/iceberg"
	"github.com/evodb/sink/internal/workload"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/sink"
	"github.com/evodb/sink/verify"
)

// sinkBin is the sink binary TestMain builds once.
var sinkBin string

// tableReaders is the readers' server TestMain starts once when
// SINK_TEST_PYTHON is set; nil otherwise.
var tableReaders *readerServer

// startContainers, when built with the testcontainers tag on a machine
// with a Docker engine, starts Redpanda and an S3 server in containers and
// sets the SINK_E2E_* variables; it returns a function that stops them.
var startContainers func() (stop func(), err error)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

// runMain starts containers if asked, builds the sink once and runs the
// tests; it returns the exit code so deferred cleanups run.
func runMain(m *testing.M) int {
	if os.Getenv("SINK_E2E_KAFKA") == "" && startContainers != nil {
		stop, err := startContainers()
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e: containers:", err)
			return 1
		}
		defer stop()
	}
	if os.Getenv("SINK_E2E_KAFKA") == "" {
		// Nothing to build: every test skips.
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "sink-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	sinkBin = filepath.Join(dir, "sink")
	build := exec.Command("go", "build", "-o", sinkBin, "github.com/evodb/sink/cmd/sink")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build sink:", err)
		return 1
	}
	if python := os.Getenv("SINK_TEST_PYTHON"); python != "" {
		tableReaders, err = startReaderServer(python)
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		defer tableReaders.close()
	}
	return m.Run()
}

// services are the externally provided Kafka and S3, and the optional
// schema registry.
type services struct {
	brokers  string
	kafkaDir string
	s3       s3Env
	python   string
	registry string
}

type s3Env struct {
	Endpoint, Bucket, AccessKey, SecretKey, Region, DataDir string
}

// needServices returns the services or skips the test.
func needServices(t *testing.T) *services {
	t.Helper()
	s := &services{brokers: os.Getenv("SINK_E2E_KAFKA"), kafkaDir: os.Getenv("SINK_E2E_KAFKA_DIR"), python: os.Getenv("SINK_TEST_PYTHON"),
		registry: os.Getenv("EVODB_SCHEMA_REGISTRY_URL")}
	if s.brokers == "" {
		t.Skip("SINK_E2E_KAFKA is not set: the end-to-end suite needs a Kafka broker and an S3 server (see .ci/run)")
	}
	s.s3 = s3Env{
		Endpoint: os.Getenv("SINK_E2E_S3_ENDPOINT"), Bucket: os.Getenv("SINK_E2E_S3_BUCKET"),
		AccessKey: os.Getenv("SINK_E2E_S3_ACCESS_KEY"), SecretKey: os.Getenv("SINK_E2E_S3_SECRET_KEY"),
		Region: os.Getenv("SINK_E2E_S3_REGION"), DataDir: os.Getenv("SINK_E2E_S3_DATA_DIR"),
	}
	if s.s3.Endpoint == "" || s.s3.Bucket == "" {
		t.Fatal("SINK_E2E_KAFKA is set but SINK_E2E_S3_ENDPOINT or SINK_E2E_S3_BUCKET is not")
	}
	if s.s3.Region == "" {
		s.s3.Region = "auto"
	}
	return s
}

// harness is one scenario's world: its own topics, group and bucket prefix.
type harness struct {
	t      *testing.T
	svc    *services
	name   string // unique: prefix, group and topic names derive from it
	dir    string
	rng    *rand.Rand
	cl     *kgo.Client
	mu     sync.Mutex
	sinks  []*sinkProc
	nextID int
	// storeEndpoint is what the sinks talk to: the S3 server or a proxy.
	storeEndpoint string
	// icebergURL, when set (useIceberg), makes every table an Iceberg
	// table of that REST catalog, in namespace h.name.
	icebergURL string
}

// useIceberg makes the scenario's tables Iceberg tables of the REST
// catalog EVODB_ICEBERG_REST_URL names, or skips the test.
func (h *harness) useIceberg() {
	h.t.Helper()
	h.icebergURL = os.Getenv("EVODB_ICEBERG_REST_URL")
	if h.icebergURL == "" {
		h.t.Skip("EVODB_ICEBERG_REST_URL is not set: no Iceberg REST catalog for the Iceberg scenarios (see scripts/iceberg-rest.sh)")
	}
}

// tableFormat is the format the scenario's sinks write, for verify.
func (h *harness) tableFormat() committer.Format {
	h.t.Helper()
	if h.icebergURL == "" {
		return delta.NewFormat(h.bucket(), delta.Options{})
	}
	f, err := iceberg.NewFormat(h.ctx(time.Minute), h.icebergConfig(), iceberg.Options{})
	require.NoError(h.t, err)
	return f
}

// icebergConfig is the Iceberg format of the scenario's tables.
func (h *harness) icebergConfig() iceberg.Config {
	return iceberg.Config{
		URI:       h.icebergURL,
		Namespace: h.name,
		Location:  "s3://" + h.svc.s3.Bucket + "/" + h.name,
		S3: iceberg.S3Config{
			Endpoint: h.svc.s3.Endpoint, Region: h.svc.s3.Region,
			AccessKeyID: h.svc.s3.AccessKey, SecretKey: h.svc.s3.SecretKey, PathStyle: true,
		},
	}
}

func newHarness(t *testing.T, seed uint64) *harness {
	t.Helper()
	svc := needServices(t)
	name := fmt.Sprintf("%s-%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), time.Now().UnixNano()%1e9)
	cl, err := kgo.NewClient(append(workload.ProducerOptions(), kgo.SeedBrokers(svc.brokers), kgo.ProducerLinger(5*time.Millisecond))...)
	require.NoError(t, err)
	h := &harness{t: t, svc: svc, name: name, dir: t.TempDir(), rng: rand.New(rand.NewPCG(seed, 99)), cl: cl, storeEndpoint: svc.s3.Endpoint}
	t.Cleanup(func() {
		h.mu.Lock()
		sinks := append([]*sinkProc(nil), h.sinks...)
		h.mu.Unlock()
		for _, s := range sinks {
			s.kill()
		}
		if t.Failed() {
			for _, s := range sinks {
				s.dumpLog()
			}
		}
		cl.Close()
	})
	return h
}

func (h *harness) ctx(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	h.t.Cleanup(cancel)
	return ctx
}

// topic returns the scenario's name for a topic.
func (h *harness) topic(s string) string { return h.name + "." + s }

// createTopics creates the topics with the given partition counts.
func (h *harness) createTopics(partitions int32, topics ...string) {
	h.t.Helper()
	adm := kadm.NewClient(h.cl)
	resp, err := adm.CreateTopics(h.ctx(time.Minute), partitions, 1, nil, topics...)
	require.NoError(h.t, err)
	for _, r := range resp.Sorted() {
		require.NoError(h.t, r.Err, r.Topic)
	}
}

// workloadStream is one topic's generator and what it produced.
type workloadStream struct {
	topic string
	gen   *workload.Generator
	// format is the topic's format when it differs from the generator's
	// (the generated records are re-encoded by transform); empty otherwise.
	format    codec.Format
	transform func(*workload.Record) error
	// expected maps a coordinate key "topic/partition/offset" to the
	// table of a good record ("" for a bad one).
	mu       sync.Mutex
	expected map[string]string
	bad      int
}

func (h *harness) stream(cfg workload.Config) *workloadStream {
	return &workloadStream{topic: cfg.Topic, gen: workload.New(cfg, rand.New(rand.NewPCG(h.rng.Uint64(), 1))), expected: map[string]string{}}
}

// avroStream is a stream of the evodb workload re-encoded as plain Avro
// records in the Confluent wire format, their schemas registered in the
// registry the environment names; without one the test skips.
func (h *harness) avroStream(cfg workload.Config) *workloadStream {
	h.t.Helper()
	if h.svc.registry == "" {
		h.t.Skip("EVODB_SCHEMA_REGISTRY_URL is not set: Avro topics need a schema registry (e2e/scripts/registry.sh)")
	}
	reg := h.registry()
	cfg.Format = cdc.FormatEvoDB
	ws := h.stream(cfg)
	var err error
	ws.transform, err = workload.RegistryTransform(h.ctx(30*time.Minute), confluent.NewEncoder(reg, cfg.Topic))
	require.NoError(h.t, err)
	ws.format = confluent.FormatAvro
	return ws
}

// topicFormat is the format the sink reads ws's topic in.
func (ws *workloadStream) topicFormat() codec.Format {
	if ws.format != "" {
		return ws.format
	}
	return ws.gen.Config().Format
}

// registry returns a client of the environment's schema registry, closed
// with the test.
func (h *harness) registry() *confluent.Registry {
	h.t.Helper()
	reg, err := sink.NewSchemaRegistry(h.registryConfig())
	require.NoError(h.t, err)
	h.t.Cleanup(reg.Close)
	return reg
}

// registryConfig is the schema_registry section the sinks and the
// verifier use.
func (h *harness) registryConfig() sink.SchemaRegistryConfig {
	c := sink.DefaultConfig().SchemaRegistry
	c.URLs = []string{h.svc.registry}
	return c
}

// produce writes n records of ws synchronously in batches, remembering
// each record's coordinates.
func (h *harness) produce(ctx context.Context, ws *workloadStream, n int) error {
	const batch = 500
	for done := 0; done < n; {
		m := min(batch, n-done)
		recs := make([]*kgo.Record, m)
		// Results come back in completion order, not in input order.
		meta := make(map[*kgo.Record]workload.Record, m)
		for i := range recs {
			r := ws.gen.Next()
			if ws.transform != nil {
				if err := ws.transform(&r); err != nil {
					return fmt.Errorf("produce to %s: %w", ws.topic, err)
				}
			}
			recs[i] = &kgo.Record{Topic: r.Topic, Partition: r.Partition, Key: r.Key, Value: r.Value}
			meta[recs[i]] = r
		}
		res := h.cl.ProduceSync(ctx, recs...)
		if err := res.FirstErr(); err != nil {
			// A failed batch may be partly written: remember what landed
			// and resend the rest.
			for _, pr := range res {
				if pr.Err == nil {
					ws.add(pr.Record, meta[pr.Record])
				}
			}
			return fmt.Errorf("produce to %s: %w", ws.topic, err)
		}
		for _, pr := range res {
			ws.add(pr.Record, meta[pr.Record])
		}
		done += m
	}
	return nil
}

// produceRetrying produces n records, retrying failed batches (a broker
// restart fails some): records acknowledged twice are simply two records.
func (h *harness) produceRetrying(ctx context.Context, ws *workloadStream, n int) {
	h.t.Helper()
	for n > 0 {
		before := ws.count()
		err := h.produce(ctx, ws, n)
		n -= ws.count() - before
		if err == nil {
			return
		}
		require.NoError(h.t, ctx.Err(), "producing: %v", err)
		h.t.Logf("produce: %v (retrying)", err)
		time.Sleep(500 * time.Millisecond)
	}
}

func (ws *workloadStream) add(r *kgo.Record, m workload.Record) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	table := m.Table
	if m.Bad {
		table = ""
		ws.bad++
	}
	ws.expected[fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)] = table
}

func (ws *workloadStream) count() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return len(ws.expected)
}

// sinkOptions is what a scenario sets in the sink configuration.
type sinkOptions struct {
	topics         []string
	formats        map[string]string
	flushInterval  time.Duration
	flushThreshold int
	mode           string
	sessionTimeout time.Duration
	dlq            string
	storeQuery     string // extra store URL query, e.g. request_timeout=2s
	shutdown       time.Duration
	// compactionInterval, when set, runs background compaction this often
	// (otherwise it runs at the default interval, in practice once).
	compactionInterval time.Duration
	// brokers, when set, replaces the broker address (a TLS listener).
	brokers string
	// kafka holds extra YAML lines of the kafka section (tls, sasl,
	// connect_timeout), each indented by two spaces.
	kafka string
	// mirrors are the tables (routed names) whose mirror tables the sinks
	// keep, keyed by their "id" column.
	mirrors []string
}

// config writes a configuration file for one sink process.
func (h *harness) config(o sinkOptions, httpAddr string) string {
	h.t.Helper()
	if o.flushInterval == 0 {
		o.flushInterval = time.Second
	}
	if o.flushThreshold == 0 {
		o.flushThreshold = 5000
	}
	if o.mode == "" {
		o.mode = "do-sqlite"
	}
	if o.sessionTimeout == 0 {
		o.sessionTimeout = 10 * time.Second
	}
	if o.shutdown == 0 {
		o.shutdown = 30 * time.Second
	}
	url := fmt.Sprintf("s3://%s/%s?endpoint=%s&region=%s&path_style=true", h.svc.s3.Bucket, h.name, h.storeEndpoint, h.svc.s3.Region)
	if o.storeQuery != "" {
		url += "&" + o.storeQuery
	}
	var pairs []string
	registry := ""
	for t, f := range o.formats {
		pairs = append(pairs, fmt.Sprintf("%q: %s", t, f))
		if confluent.IsFormat(codec.Format(f)) {
			registry = fmt.Sprintf("schema_registry:\n  urls: [%q]\n", h.svc.registry)
		}
	}
	sort.Strings(pairs)
	errorsCfg := "tolerance: none"
	if o.dlq != "" {
		errorsCfg = fmt.Sprintf("tolerance: all\n  dlq_topic: %q", o.dlq)
	}
	compaction := "enabled: true"
	if o.compactionInterval > 0 {
		compaction = fmt.Sprintf("enabled: true\n  interval: %s\n  min_inputs: 4", o.compactionInterval)
	}
	quoted := make([]string, len(o.topics))
	for i, t := range o.topics {
		quoted[i] = fmt.Sprintf("%q", t)
	}
	brokers := h.svc.brokers
	if o.brokers != "" {
		brokers = o.brokers
	}
	format, catalog := "delta", ""
	if h.icebergURL != "" {
		// One namespace per scenario; the tables' paths are "{table}".
		format, catalog = "iceberg", fmt.Sprintf("catalog:\n  uri: %q\n  namespace: %q\n", h.icebergURL, h.name)
	}
	mirrors := ""
	if len(o.mirrors) > 0 {
		// The default section configures the mirrors, each table's override
		// turns its mirror on (an override states Enabled itself). A short
		// interval keeps the wait for them to catch up short.
		mirrors = "    mirror:\n      enabled: false\n      key: [id]\n      interval: 300ms\n  overrides:\n"
		for _, t := range o.mirrors {
			mirrors += fmt.Sprintf("    %q:\n      mirror:\n        enabled: true\n", t)
		}
	}
	text := fmt.Sprintf(`kafka:
  brokers: [%q]
  group: %q
  topics: [%s]
  format: evodb
  formats: {%s}
  session_timeout: %s
%s%sstore:
  url: %q
  s3:
    access_key_id: %q
    secret_access_key: %q
tables:
  default:
    mode: %s
    flush_threshold: %d
    flush_interval: %s
    path: "{table}"
    format: %s
%s%serrors:
  %s
commit:
  offset_commit_interval: 200ms
  store_retry_timeout: 2m
compaction:
  %s
http:
  addr: %q
shutdown_timeout: %s
log:
  level: info
  format: text
`, brokers, h.name, strings.Join(quoted, ", "), strings.Join(pairs, ", "), o.sessionTimeout, o.kafka, registry, url,
		h.svc.s3.AccessKey, h.svc.s3.SecretKey, o.mode, o.flushThreshold, o.flushInterval, format, mirrors, catalog, errorsCfg, compaction, httpAddr, o.shutdown)
	h.nextID++
	path := filepath.Join(h.dir, fmt.Sprintf("sink-%d.yaml", h.nextID))
	require.NoError(h.t, os.WriteFile(path, []byte(text), 0o644))
	return path
}

// sinkProc is one sink process.
type sinkProc struct {
	t       *testing.T
	id      int
	cfg     string
	addr    string
	logPath string
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error
	// stopAsked is set when the test signalled the process to end, so
	// waitDone can tell a sink that exited by itself (a failure the
	// scenario would otherwise only notice at its timeout).
	stopAsked bool
}

// startSink starts a sink process with options o.
func (h *harness) startSink(o sinkOptions) *sinkProc {
	h.t.Helper()
	addr := freeAddr(h.t)
	p := &sinkProc{t: h.t, cfg: h.config(o, addr), addr: addr}
	h.mu.Lock()
	p.id = len(h.sinks)
	h.sinks = append(h.sinks, p)
	h.mu.Unlock()
	p.logPath = filepath.Join(h.dir, fmt.Sprintf("sink-%d.log", p.id))
	p.start()
	return p
}

func (p *sinkProc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(p.t, err)
	fmt.Fprintf(f, "==== start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(sinkBin, "run", "-c", p.cfg)
	dieWithTest(cmd)
	cmd.Stdout, cmd.Stderr = f, f
	require.NoError(p.t, cmd.Start())
	exited := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.exited, p.stopAsked = cmd, exited, false
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(exited)
	}()
}

func (p *sinkProc) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd := p.cmd
	if sig == syscall.SIGTERM || sig == syscall.SIGINT || sig == syscall.SIGKILL {
		p.stopAsked = true
	}
	p.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Signal(sig)
	}
}

// stop sends SIGTERM and requires a clean exit.
func (p *sinkProc) stop() {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(90 * time.Second):
		p.kill()
		p.t.Fatalf("sink %d did not stop within 90s of SIGTERM", p.id)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	require.NoError(p.t, p.exitErr, "sink %d exit (log %s)", p.id, p.logPath)
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *sinkProc) kill() {
	p.signal(syscall.SIGCONT)
	p.signal(syscall.SIGKILL)
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	if exited != nil {
		<-exited
	}
}

func (p *sinkProc) running() bool {
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// exitedUnasked reports whether the process ended without the test
// asking it to, with its exit error.
func (p *sinkProc) exitedUnasked() (bool, error) {
	if p.running() {
		return false, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.stopAsked, p.exitErr
}

func (p *sinkProc) dumpLog() {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return
	}
	const tail = 8000
	if len(data) > tail {
		data = data[len(data)-tail:]
	}
	p.t.Logf("---- sink %d log (%s), last %d bytes:\n%s", p.id, p.logPath, len(data), data)
}

// status fetches /status, nil when the process does not answer.
func (p *sinkProc) status() *sinkStatus {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + p.addr + "/status")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var st sinkStatus
	if json.NewDecoder(resp.Body).Decode(&st) != nil {
		return nil
	}
	return &st
}

type sinkStatus struct {
	Tables []struct {
		Table       string `json:"table"`
		Version     int64  `json:"version"`
		RowsWritten int64  `json:"rows_written"`
	} `json:"tables"`
	Partitions []struct {
		Topic       string `json:"topic"`
		Partition   int32  `json:"partition"`
		DurableFrom int64  `json:"durable_from"`
		HighWater   int64  `json:"high_watermark"`
		Lag         int64  `json:"lag"`
	} `json:"partitions"`
	Error string `json:"error"`
}

// waitDone waits until the running sinks together own every partition of
// topics and each is durable up to the broker's end offset.
func (h *harness) waitDone(topics []string, timeout time.Duration) {
	h.t.Helper()
	adm := kadm.NewClient(h.cl)
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ends, err := adm.ListEndOffsets(h.ctx(10*time.Second), topics...)
		if err == nil {
			want := map[string]int64{}
			ends.Each(func(o kadm.ListedOffset) { want[fmt.Sprintf("%s/%d", o.Topic, o.Partition)] = o.Offset })
			got := map[string]int64{}
			h.mu.Lock()
			sinks := append([]*sinkProc(nil), h.sinks...)
			h.mu.Unlock()
			for _, s := range sinks {
				if gone, err := s.exitedUnasked(); gone {
					s.dumpLog()
					h.t.Fatalf("sink %d exited while the scenario waited for it (exit: %v); its log is above", s.id, err)
				}
				if !s.running() {
					continue
				}
				st := s.status()
				if st == nil {
					continue
				}
				for _, p := range st.Partitions {
					if p.Lag == 0 && p.DurableFrom == p.HighWater {
						got[fmt.Sprintf("%s/%d", p.Topic, p.Partition)] = p.DurableFrom
					}
				}
			}
			missing := 0
			for k, end := range want {
				if got[k] != end {
					missing++
				}
			}
			if missing == 0 && len(want) > 0 {
				return
			}
			last = fmt.Sprintf("%d of %d partitions not yet durable to their end", missing, len(want))
		}
		time.Sleep(500 * time.Millisecond)
	}
	h.t.Fatalf("sinks did not finish within %s: %s", timeout, last)
}

// bucket opens the scenario's prefix of the S3 bucket directly.
func (h *harness) bucket() objstore.Bucket {
	h.t.Helper()
	url := fmt.Sprintf("s3://%s/%s?endpoint=%s&region=%s&path_style=true", h.svc.s3.Bucket, h.name, h.svc.s3.Endpoint, h.svc.s3.Region)
	b, err := objstore.Open(h.ctx(time.Minute), url, objstore.S3Config{AccessKeyID: h.svc.s3.AccessKey, SecretAccessKey: h.svc.s3.SecretKey})
	require.NoError(h.t, err)
	return b
}

// verdict proves exactly-once for the streams: verify.Verify over the
// topics, then the independent readers against what was produced.
func (h *harness) verdict(dlq string, streams ...*workloadStream) {
	h.t.Helper()
	start := time.Now()
	var topics []string
	formats := map[string]codec.Format{}
	for _, ws := range streams {
		topics = append(topics, ws.topic)
		formats[ws.topic] = ws.topicFormat()
	}
	// Topics in a schema-registry format are decoded as `sink verify`
	// decodes them: through the registry the sinks used.
	var reg *confluent.Registry
	newDecoder := func(topic string, f codec.Format) (cdc.Decoder, error) {
		if !confluent.IsFormat(f) {
			return cdc.NewDecoder(f)
		}
		if reg == nil {
			reg = h.registry()
		}
		return sink.RegistryDecoder(h.registryConfig(), reg, string(f), "")
	}
	rep, err := verify.Verify(h.ctx(5*time.Minute), []kgo.Opt{kgo.SeedBrokers(h.svc.brokers)}, h.bucket(),
		h.tableFormat(), verify.Options{Topics: topics, Formats: formats, NewDecoder: newDecoder, From: -1, To: -1, DLQTopic: dlq})
	require.NoError(h.t, err)
	require.True(h.t, rep.OK(), "verify:\n%s", rep)

	// Per table: the coordinates produced, from the test's own record.
	want := map[string][]string{}
	var good int64
	for _, ws := range streams {
		ws.mu.Lock()
		for c, table := range ws.expected {
			if table != "" {
				// The sinks write every table under "{table}": the last
				// part of the routed name.
				path := table[strings.LastIndex(table, ".")+1:]
				want[path] = append(want[path], c)
				good++
			}
		}
		ws.mu.Unlock()
	}
	require.Equal(h.t, good, rep.Rows, "rows the verifier read vs good records produced")
	h.t.Logf("verify: %d rows in %d tables ok (%s)", rep.Rows, len(rep.Tables), time.Since(start).Round(time.Millisecond))
	if h.icebergURL != "" {
		h.icebergReaders(want)
		return
	}
	h.readers(want)
}

// icebergReaders runs e2e/readers/iceberg_tables.py (PyIceberg, pyarrow
// over PyIceberg's plan, DuckDB's Iceberg extension through the catalog)
// and compares every reader's row count, distinct coordinates and digest
// with want.
func (h *harness) icebergReaders(want map[string][]string) {
	h.t.Helper()
	if h.svc.python == "" {
		h.t.Log("SINK_TEST_PYTHON is not set: independent readers skipped")
		return
	}
	start := time.Now()
	names := map[string]string{}
	var tables []string
	for tb := range want {
		names[h.name+"."+tb] = tb
		tables = append(tables, h.name+"."+tb)
	}
	sort.Strings(tables)
	arg, err := json.Marshal(map[string]any{
		"catalog_uri": h.icebergURL, "endpoint": h.svc.s3.Endpoint,
		"access_key": h.svc.s3.AccessKey, "secret_key": h.svc.s3.SecretKey, "region": h.svc.s3.Region,
		"tables": tables,
	})
	require.NoError(h.t, err)
	cmd := exec.CommandContext(h.ctx(10*time.Minute), h.svc.python, "readers/iceberg_tables.py", string(arg))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(h.t, err, "iceberg_tables.py: %s", stderr.String())
	var got map[string]map[string]readerResult
	require.NoError(h.t, json.Unmarshal(out, &got), string(out))
	for _, name := range tables {
		coords := append([]string(nil), want[names[name]]...)
		sort.Strings(coords)
		sum := sha256.Sum256([]byte(strings.Join(coords, "\n")))
		digest := hex.EncodeToString(sum[:])
		for _, reader := range []string{"pyiceberg", "pyarrow", "duckdb"} {
			r, ok := got[name][reader]
			require.True(h.t, ok, "table %s: no %s result", name, reader)
			require.Empty(h.t, r.Error, "table %s: %s", name, reader)
			require.Equal(h.t, int64(len(coords)), r.Rows, "table %s: %s row count", name, reader)
			require.Equal(h.t, int64(len(coords)), r.Distinct, "table %s: %s distinct coordinates", name, reader)
			require.Equal(h.t, digest, r.Digest, "table %s: %s coordinates differ from those produced", name, reader)
		}
	}
	h.t.Logf("readers: %d Iceberg tables agree in pyiceberg, pyarrow and duckdb (%s)", len(tables), time.Since(start).Round(time.Millisecond))
}

// readerResult is one reader's summary of one table.
type readerResult struct {
	Rows     int64   `json:"rows"`
	Distinct int64   `json:"distinct"`
	Digest   string  `json:"digest"`
	Mode     string  `json:"mode"`
	Error    string  `json:"error"`
	Seconds  float64 `json:"seconds"`
}

// readers runs e2e/readers/check_tables.py and compares every reader's
// row count, distinct coordinates and digest with want.
func (h *harness) readers(want map[string][]string) {
	h.t.Helper()
	if h.svc.python == "" || tableReaders == nil {
		h.t.Log("SINK_TEST_PYTHON is not set: independent readers skipped")
		return
	}
	start := time.Now()
	tables := make([]string, 0, len(want))
	for tb := range want {
		tables = append(tables, tb)
	}
	sort.Strings(tables)
	arg, err := json.Marshal(map[string]any{
		"endpoint": h.svc.s3.Endpoint, "bucket": h.svc.s3.Bucket, "prefix": h.name,
		"access_key": h.svc.s3.AccessKey, "secret_key": h.svc.s3.SecretKey, "region": h.svc.s3.Region,
		"tables": tables, "local_root": h.svc.s3.DataDir,
	})
	require.NoError(h.t, err)
	// The first check of a run includes Spark's start.
	out, err := tableReaders.check(arg, 10*time.Minute)
	require.NoError(h.t, err)
	var got map[string]map[string]readerResult
	require.NoError(h.t, json.Unmarshal(out, &got), string(out))
	duck := ""
	seconds := map[string]float64{}
	for _, tb := range tables {
		coords := append([]string(nil), want[tb]...)
		sort.Strings(coords)
		sum := sha256.Sum256([]byte(strings.Join(coords, "\n")))
		digest := hex.EncodeToString(sum[:])
		res := got[tb]
		for _, reader := range []string{"deltalake", "pyarrow", "duckdb", "polars", "spark"} {
			r, ok := res[reader]
			seconds[reader] += r.Seconds
			if reader == "duckdb" && (!ok || r.Error != "") {
				// DuckDB is a third opinion; without S3 access or a local
				// copy of the objects it cannot read the tables.
				duck = fmt.Sprintf("duckdb unavailable: %s", r.Error)
				continue
			}
			require.True(h.t, ok, "table %s: no %s result", tb, reader)
			require.Empty(h.t, r.Error, "table %s: %s", tb, reader)
			require.Equal(h.t, int64(len(coords)), r.Rows, "table %s: %s row count", tb, reader)
			require.Equal(h.t, int64(len(coords)), r.Distinct, "table %s: %s distinct coordinates", tb, reader)
			require.Equal(h.t, digest, r.Digest, "table %s: %s coordinates differ from those produced", tb, reader)
			if reader == "duckdb" {
				duck = "duckdb (" + r.Mode + ")"
			}
		}
	}
	h.t.Logf("readers: %d tables agree in deltalake, pyarrow, polars, spark and %s (%s; seconds per reader: %v)", len(tables), duck, time.Since(start).Round(time.Millisecond), seconds)
}

// freeAddr returns a free 127.0.0.1 address.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}
