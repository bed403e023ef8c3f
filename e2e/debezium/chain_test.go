package debezium

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/mirror"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/sink"
)

// ccompatPath is where Apicurio Registry serves the Confluent-compatible
// API; its own API, which Apicurio's converter speaks, is beside it.
const (
	ccompatPath  = "/apis/ccompat/v7"
	apicurioPath = "/apis/registry/v3"
)

// tables are the captured tables, in schema.sql.
var tables = []string{"accounts", "events", "docs", "orders", "metrics", "fence"}

// env is what the test needs from its environment.
type env struct {
	kafka, python, connectPort      string
	registry                        string // Confluent-compatible API; empty: no Avro mode
	pgHost, pgPort, pgUser, pgDB    string
	root, scripts, work, sinkBinary string
}

func loadEnv(t *testing.T) env {
	t.Helper()
	if os.Getenv("SINK_E2E_DEBEZIUM") != "1" {
		t.Skip("the CDC chain test needs PostgreSQL, Kafka, Kafka Connect with Debezium and the Python readers: " +
			"set SINK_E2E_DEBEZIUM=1 with SINK_E2E_KAFKA, SINK_E2E_PG_* and SINK_TEST_PYTHON (see .ci/run)")
	}
	e := env{
		kafka:       os.Getenv("SINK_E2E_KAFKA"),
		python:      os.Getenv("SINK_TEST_PYTHON"),
		connectPort: os.Getenv("SINK_E2E_CONNECT_PORT"),
		pgHost:      os.Getenv("SINK_E2E_PG_HOST"),
		pgPort:      os.Getenv("SINK_E2E_PG_PORT"),
		pgUser:      os.Getenv("SINK_E2E_PG_USER"),
		pgDB:        os.Getenv("SINK_E2E_PG_DB"),
		registry:    os.Getenv("EVODB_SCHEMA_REGISTRY_URL"),
	}
	if e.connectPort == "" {
		e.connectPort = "28083"
	}
	for name, v := range map[string]string{"SINK_E2E_KAFKA": e.kafka, "SINK_TEST_PYTHON": e.python,
		"SINK_E2E_PG_HOST": e.pgHost, "SINK_E2E_PG_PORT": e.pgPort, "SINK_E2E_PG_USER": e.pgUser, "SINK_E2E_PG_DB": e.pgDB} {
		if v == "" {
			t.Fatalf("SINK_E2E_DEBEZIUM=1 but %s is unset", name)
		}
	}
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	e.root = root
	e.scripts = filepath.Join(root, "e2e", "scripts")
	e.work = t.TempDir()
	e.sinkBinary = filepath.Join(e.work, "sink")
	build := exec.Command("go", "build", "-o", e.sinkBinary, "./cmd/sink")
	build.Dir = root
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build ./cmd/sink: %s", out)
	return e
}

// mode is one converter setting: one connector, its topics, and one sink
// writing its own store.
type mode struct {
	name    string // "schemas", "plain" or "avro"
	schemas bool
	// avro: Apicurio's Avro converter writes the Confluent wire format to
	// the schema registry, and the sink reads it with format: avro.
	avro    bool
	decoder cdc.Decoder // the Avro records' decoder (avro only)
	prefix  string      // Debezium topic prefix
	slot    string      // replication slot and publication
	store   string      // store directory
	group   string
}

// TestChain runs PostgreSQL → Debezium → Kafka → sink → Delta and checks
// the tables against the database: after the snapshot, streamed changes
// and a mid-stream ALTER TABLE; and again after a graceful and a killed
// Kafka Connect restart (whose replays the sink's dedupe: lsn drops).
// Each time both the current-state view over the change log and the
// mirror table the sink keeps beside it (read as it is) equal the
// database, value by value.
func TestChain(t *testing.T) {
	e := loadEnv(t)
	start := time.Now()
	id := strconv.FormatInt(time.Now().UnixNano()/1e6%1e9, 36)
	modes := []*mode{
		{name: "schemas", schemas: true, prefix: "dbz" + id + "s", slot: "evodb_" + id + "_s"},
		{name: "plain", schemas: false, prefix: "dbz" + id + "n", slot: "evodb_" + id + "_n"},
	}
	switch {
	case e.registry == "":
		t.Log("EVODB_SCHEMA_REGISTRY_URL is not set: the chain runs without its Avro mode")
	case !strings.HasSuffix(e.registry, ccompatPath):
		t.Logf("EVODB_SCHEMA_REGISTRY_URL %s is not Apicurio Registry's %s: the chain runs without its Avro mode "+
			"(its converter needs Apicurio's own API)", e.registry, ccompatPath)
	default:
		avro := &mode{name: "avro", schemas: true, avro: true, prefix: "dbz" + id + "a", slot: "evodb_" + id + "_a"}
		avro.decoder = e.avroDecoder(t)
		modes = append(modes, avro)
	}
	for _, m := range modes {
		m.store = filepath.Join(e.work, "store-"+m.name)
		m.group = "evodb-" + m.prefix
	}

	kcl, err := kgo.NewClient(kgo.SeedBrokers(e.kafka))
	require.NoError(t, err)
	t.Cleanup(kcl.Close)
	adm := kadm.NewClient(kcl)

	e.psqlFile(t, "schema.sql")
	var configs []string
	for _, m := range modes {
		configs = append(configs, e.connectorConfig(t, m))
	}
	// CI names the worker's directory so that its stop step can end a
	// worker an interrupted run left behind.
	connectDir := filepath.Join(e.work, "connect")
	if d := os.Getenv("SINK_E2E_CONNECT_DIR"); d != "" {
		connectDir = d
		require.NoError(t, os.RemoveAll(connectDir))
	}
	e.script(t, "debezium.sh", append([]string{"start", connectDir, e.connectPort}, configs...)...)
	t.Cleanup(func() {
		_ = exec.Command(filepath.Join(e.scripts, "debezium.sh"), "stop", connectDir, "kill").Run()
		for _, m := range modes {
			_, _ = e.psql("SELECT pg_drop_replication_slot('" + m.slot + "'); DROP PUBLICATION IF EXISTS " + m.slot)
		}
	})
	t.Logf("[%5.1fs] Kafka Connect running %d connectors", time.Since(start).Seconds(), len(modes))

	dedupe := true
	phase := func(n int) (replayed int) {
		e.fence(t, n)
		for _, m := range modes {
			ends := waitFence(t, adm, e.kafka, m, n)
			dedupe = e.runSink(t, m, ends, dedupe)
			replayed += e.verify(t, adm, m, dedupe, fmt.Sprintf("phase %d", n))
		}
		t.Logf("[%5.1fs] phase %d verified", time.Since(start).Seconds(), n)
		return replayed
	}

	// Phase 1: snapshot, streamed transactions, then ADD COLUMN and changes
	// that use the new columns.
	e.psqlFile(t, "changes-1.sql")
	e.psqlFile(t, "alter.sql")
	phase(1)
	// In the Avro mode the ALTERs reached the sink as new schema versions.
	for _, m := range modes {
		if m.avro {
			for _, table := range []string{"accounts", "events", "docs"} {
				subject := m.prefix + ".public." + table + "-value"
				require.GreaterOrEqual(t, e.schemaVersions(t, subject), 2, "schema versions of %s after ALTER TABLE %s", subject, table)
			}
		}
	}

	// Phase 2: a graceful restart flushes Connect's offsets; the changes
	// after it are then replayed by the restart that follows a SIGKILL.
	e.script(t, "debezium.sh", "restart", connectDir)
	e.psqlFile(t, "changes-2.sql")
	e.fence(t, 2)
	for _, m := range modes {
		waitFence(t, adm, e.kafka, m, 2)
	}
	e.script(t, "debezium.sh", "restart", connectDir, "kill")
	t.Logf("[%5.1fs] Kafka Connect killed and restarted", time.Since(start).Seconds())
	_, err = e.psql("UPDATE accounts SET name = name || ' (after kill)' WHERE id BETWEEN 1 AND 5; DELETE FROM orders WHERE order_no = 999")
	require.NoError(t, err)
	// The killed worker had flushed no offsets since the graceful restart,
	// so it must have replayed what it sent after it.
	require.Positive(t, phase(3), "no Debezium replays after the killed restart")
	if !dedupe {
		t.Log("NOTE: the sink has no dedupe: lsn yet; ran without it, so the tables hold Debezium's replays " +
			"(row counts checked against all non-tombstone records instead of distinct changes)")
	}
	t.Logf("CDC chain verified in %.1fs", time.Since(start).Seconds())
}

func (e env) script(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(e.scripts, name), args...)
	cmd.Env = append(os.Environ(), "DEBEZIUM_KAFKA="+e.kafka,
		// Offsets are flushed only on a graceful stop, so a killed worker
		// deterministically replays everything since.
		"DEBEZIUM_OFFSET_FLUSH_MS=600000")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s %s: %s", name, strings.Join(args, " "), out)
}

func (e env) psqlArgs(extra ...string) []string {
	return append([]string{"-h", e.pgHost, "-p", e.pgPort, "-U", e.pgUser, "-d", e.pgDB,
		"-v", "ON_ERROR_STOP=1", "-q", "-X", "-At"}, extra...)
}

func (e env) psql(sql string) (string, error) {
	cmd := exec.Command("psql", e.psqlArgs("-c", sql)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("psql %q: %w: %s", sql, err, stderr.String())
	}
	return string(out), nil
}

func (e env) psqlFile(t *testing.T, name string) {
	t.Helper()
	cmd := exec.Command("psql", e.psqlArgs("-f", name)...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "psql -f %s: %s", name, out)
}

// fence writes the marker row of phase n: once Debezium has emitted it,
// it has emitted every change committed before.
func (e env) fence(t *testing.T, n int) {
	t.Helper()
	_, err := e.psql(fmt.Sprintf("INSERT INTO fence (id) VALUES (%d)", n))
	require.NoError(t, err)
}

func (e env) connectorConfig(t *testing.T, m *mode) string {
	t.Helper()
	tmpl, err := os.ReadFile("connector.properties")
	require.NoError(t, err)
	vars := map[string]string{
		"CONNECTOR": "evodb-" + m.name, "PG_HOST": e.pgHost, "PG_PORT": e.pgPort, "PG_USER": e.pgUser,
		"PG_DB": e.pgDB, "PREFIX": m.prefix, "SLOT": m.slot,
		"DECIMAL_MODE": map[bool]string{true: "precise", false: "string"}[m.schemas],
		"CONVERTERS":   e.converters(m),
	}
	text := os.Expand(string(tmpl), func(k string) string { return vars[k] })
	path := filepath.Join(e.work, "connector-"+m.name+".properties")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	return path
}

// converters are the key and value converter settings of m's connector.
// The Avro ones register schemas in Apicurio Registry and write the
// Confluent wire format: magic byte and the 4-byte content ID, which the
// registry's Confluent-compatible API resolves.
func (e env) converters(m *mode) string {
	var b strings.Builder
	for _, side := range []string{"key", "value"} {
		if !m.avro {
			fmt.Fprintf(&b, "%s.converter=org.apache.kafka.connect.json.JsonConverter\n", side)
			fmt.Fprintf(&b, "%s.converter.schemas.enable=%t\n", side, m.schemas)
			continue
		}
		fmt.Fprintf(&b, "%s.converter=io.apicurio.registry.utils.converter.AvroConverter\n", side)
		fmt.Fprintf(&b, "%s.converter.apicurio.registry.url=%s\n", side, strings.TrimSuffix(e.registry, ccompatPath)+apicurioPath)
		fmt.Fprintf(&b, "%s.converter.apicurio.registry.auto-register=true\n", side)
		fmt.Fprintf(&b, "%s.converter.apicurio.registry.headers.enabled=false\n", side)
		fmt.Fprintf(&b, "%s.converter.apicurio.registry.id-handler=io.apicurio.registry.serde.Default4ByteIdHandler\n", side)
		fmt.Fprintf(&b, "%s.converter.apicurio.registry.use-id=contentId\n", side)
		// One self-contained schema per record. By default the converter
		// registers each nested record (before/after, source) as a schema
		// of its own and refers to it; the sink resolves such references,
		// but after an ALTER TABLE this converter registers the row's new
		// version and keeps writing the envelope's first version, whose
		// reference names the old row schema: the added columns are
		// dropped before the records reach Kafka.
		fmt.Fprintf(&b, "%s.converter.apicurio.registry.dereference-schema=true\n", side)
	}
	return b.String()
}

// schemaVersions returns how many versions the registry holds of subject.
func (e env) schemaVersions(t *testing.T, subject string) int {
	t.Helper()
	resp, err := http.Get(e.registry + "/subjects/" + subject + "/versions")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "versions of %s", subject)
	var versions []int
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&versions))
	return len(versions)
}

// avroDecoder is the sink's decoder of Avro keys and values through the
// registry, for reading the Avro mode's topics.
func (e env) avroDecoder(t *testing.T) cdc.Decoder {
	t.Helper()
	cfg := sink.DefaultConfig().SchemaRegistry
	cfg.URLs = []string{e.registry}
	reg, err := sink.NewSchemaRegistry(cfg)
	require.NoError(t, err)
	t.Cleanup(reg.Close)
	d, err := sink.RegistryDecoder(cfg, reg, "avro", "avro")
	require.NoError(t, err)
	return d
}

// waitFence waits until fence row n is in m's fence topic and the end
// offsets of m's topics stop moving, and returns those end offsets.
func waitFence(t *testing.T, adm *kadm.Client, brokers string, m *mode, n int) map[string]int64 {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		evs := readTopic(t, adm, brokers, m.prefix+".public.fence", m)
		if slices.ContainsFunc(evs, func(ev event) bool { return string(ev.key) == fmt.Sprintf(`{"id":%d}`, n) }) {
			break
		}
		require.True(t, time.Now().Before(deadline), "fence %d never reached %s.public.fence", n, m.prefix)
		time.Sleep(300 * time.Millisecond)
	}
	// The producer may still be delivering earlier records to other topics:
	// wait until two reads a second apart agree.
	prev := endOffsets(t, adm, m.prefix)
	for {
		time.Sleep(time.Second)
		cur := endOffsets(t, adm, m.prefix)
		if fmt.Sprint(cur) == fmt.Sprint(prev) {
			return cur
		}
		require.True(t, time.Now().Before(deadline), "topics of %s never settled", m.prefix)
		prev = cur
	}
}

// endOffsets returns the end offset of partition 0 of each of prefix's
// table topics (Debezium's topics have one partition here).
func endOffsets(t *testing.T, adm *kadm.Client, prefix string) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	topics := make([]string, 0, len(tables))
	for _, tb := range tables {
		topics = append(topics, prefix+".public."+tb)
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	require.NoError(t, err)
	out := map[string]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			out[o.Topic] = o.Offset
		}
	})
	return out
}

// event is one Debezium record as Kafka holds it.
type event struct {
	tombstone bool
	op        string
	lsn       string
	key       json.RawMessage // the key's payload, compacted
}

// readTopic reads a whole topic from its start to its current end.
func readTopic(t *testing.T, adm *kadm.Client, brokers, topic string, m *mode) []event {
	t.Helper()
	ends := map[string]int64{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	listed, err := adm.ListEndOffsets(ctx, topic)
	require.NoError(t, err)
	listed.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			ends[o.Topic] = o.Offset
		}
	})
	if ends[topic] == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	require.NoError(t, err)
	defer cl.Close()
	var evs []event
	for int64(len(evs)) < ends[topic] {
		fetches := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "reading %s", topic)
		fetches.EachError(func(_ string, _ int32, err error) { require.NoError(t, err) })
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Offset >= ends[topic] {
				return
			}
			if m.avro {
				evs = append(evs, parseAvroEvent(t, m.decoder, r))
			} else {
				evs = append(evs, parseEvent(t, r, m.schemas))
			}
		})
	}
	return evs
}

func parseEvent(t *testing.T, r *kgo.Record, schemas bool) event {
	t.Helper()
	var ev event
	key := r.Key
	if schemas {
		var w struct{ Payload json.RawMessage }
		require.NoError(t, json.Unmarshal(r.Key, &w), "key at %s/%d", r.Topic, r.Offset)
		key = w.Payload
	}
	var buf bytes.Buffer
	require.NoError(t, json.Compact(&buf, key))
	ev.key = buf.Bytes()
	if len(r.Value) == 0 {
		ev.tombstone = true
		return ev
	}
	value := r.Value
	if schemas {
		var w struct{ Payload json.RawMessage }
		require.NoError(t, json.Unmarshal(r.Value, &w), "value at %s/%d", r.Topic, r.Offset)
		value = w.Payload
	}
	var p struct {
		Op     string
		Source struct{ LSN json.Number }
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&p), "value at %s/%d", r.Topic, r.Offset)
	ev.op, ev.lsn = p.Op, p.Source.LSN.String()
	return ev
}

// parseAvroEvent reads a record of the Avro mode with the sink's own
// decoder; the key is rendered as the JSON converter would (without
// schemas), so fence keys read the same in every mode.
func parseAvroEvent(t *testing.T, d cdc.Decoder, r *kgo.Record) event {
	t.Helper()
	if len(r.Value) == 0 {
		return event{tombstone: true}
	}
	var ch codec.Change
	require.NoError(t, d.Decode(codec.Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value}, &ch),
		"record at %s/%d", r.Topic, r.Offset)
	key := map[string]any{}
	for _, f := range ch.Key {
		if f.Value.Kind() == codec.KindInt {
			key[f.Name] = f.Value.Int()
		} else {
			key[f.Name] = f.Value.Text()
		}
	}
	b, err := json.Marshal(key)
	require.NoError(t, err)
	return event{op: ch.Op.String(), lsn: strconv.FormatUint(ch.LSN, 10), key: b}
}

// runSink runs the sink over m's topics until every partition is durable
// up to ends, then stops it with SIGTERM. It returns whether it ran with
// dedupe: lsn, which it tries first and drops only if the sink rejects it.
func (e env) runSink(t *testing.T, m *mode, ends map[string]int64, dedupe bool) bool {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	format, registry := "debezium", ""
	if m.avro {
		format, registry = "avro", fmt.Sprintf("schema_registry:\n  urls: [%q]\n", e.registry)
	}
	cfg := fmt.Sprintf(`kafka:
  brokers: [%q]
  group: %s
  topic_regex: %q
  format: %s
  start_from: earliest
%sstore:
  url: file://%s
tables:
  default:
    path: "{db}/{schema}/{table}"
    flush_interval: 1s
    flush_threshold: 40
    mirror:
      enabled: true
      interval: 300ms
http:
  addr: %s
shutdown_timeout: 30s
log:
  level: warn
`, e.kafka, m.group, "^"+regexp.QuoteMeta(m.prefix)+`\.public\..*`, format, registry, m.store, addr)
	if dedupe {
		cfg += "dedupe: lsn\n"
	}
	path := filepath.Join(e.work, "sink-"+m.name+".yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o644))
	cmd := exec.Command(e.sinkBinary, "run", "-c", path)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	deadline := time.Now().Add(3 * time.Minute)
	for {
		select {
		case err := <-exited:
			if dedupe && strings.Contains(stderr.String(), "dedupe") {
				t.Logf("sink rejects dedupe: lsn (%s); running without it", strings.TrimSpace(stderr.String()))
				return e.runSink(t, m, ends, false)
			}
			t.Fatalf("sink exited early: %v\n%s", err, stderr.String())
		case <-time.After(300 * time.Millisecond):
		}
		if caughtUp(addr, ends) && e.mirrorsCaughtUp(t, m) == "" {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			t.Fatalf("sink %s did not catch up to %v (mirrors: %s)\n%s", m.name, ends, e.mirrorsCaughtUp(t, m), stderr.String())
		}
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err, "sink exit after SIGTERM:\n%s", stderr.String())
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("sink did not stop within a minute of SIGTERM\n%s", stderr.String())
	}
	return dedupe
}

// mirrorsCaughtUp says which mirror tables of m's store do not hold their
// change log's latest version yet; "" when every one does.
func (e env) mirrorsCaughtUp(t *testing.T, m *mode) string {
	t.Helper()
	b, err := objstore.NewFilesystem(m.store)
	require.NoError(t, err)
	ctx := context.Background()
	var lag []string
	for _, table := range tables {
		root := e.pgDB + "/public/" + table
		logSnap, err := delta.Open(b, root, delta.Options{}).Snapshot(ctx)
		if err != nil {
			lag = append(lag, fmt.Sprintf("%s: %v", root, err))
			continue
		}
		snap, err := delta.Open(b, root+"_current", delta.Options{}).Snapshot(ctx)
		if err != nil {
			lag = append(lag, fmt.Sprintf("%s_current: %v", root, err))
			continue
		}
		if w, ok := snap.TxnVersion(mirror.AppID(logSnap.Metadata.ID)); !ok || w != logSnap.Version {
			lag = append(lag, fmt.Sprintf("%s_current holds change-log version %d (%v) of %d", root, w, ok, logSnap.Version))
		}
	}
	return strings.Join(lag, "; ")
}

func caughtUp(addr string, ends map[string]int64) bool {
	resp, err := http.Get("http://" + addr + "/status")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var st struct {
		Partitions []struct {
			Topic       string `json:"topic"`
			Partition   int32  `json:"partition"`
			DurableFrom int64  `json:"durable_from"`
		} `json:"partitions"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) != nil {
		return false
	}
	durable := map[string]int64{}
	for _, p := range st.Partitions {
		if p.Partition == 0 {
			durable[p.Topic] = p.DurableFrom
		}
	}
	for topic, end := range ends {
		if end > 0 && durable[topic] < end {
			return false
		}
	}
	return true
}

// verify checks every table of m against Kafka (row counts) and
// PostgreSQL (current state, value by value): the view over the change
// log, and the mirror table, which runSink waited for to hold the change
// log's latest version.
func (e env) verify(t *testing.T, adm *kadm.Client, m *mode, dedupe bool, when string) (replayed int) {
	t.Helper()
	for _, table := range tables {
		evs := readTopic(t, adm, e.kafka, m.prefix+".public."+table, m)
		var records, tombstones int
		distinct := map[string]bool{}
		for _, ev := range evs {
			if ev.tombstone {
				tombstones++
				continue
			}
			records++
			distinct[ev.lsn+"|"+string(ev.key)] = true
		}
		cols, keys := e.columns(t, table)
		path := filepath.Join(m.store, e.pgDB, "public", table)
		st := e.state(t, path, keys, cols, path+"_current")
		want := len(distinct)
		if !dedupe {
			want = records
		}
		require.Equal(t, want, st.Rows, "%s %s %s: rows in the change log (%d records, %d distinct changes, %d tombstones)",
			when, m.name, table, records, len(distinct), tombstones)
		if dedupe {
			require.NotNil(t, st.PrimaryKey, "%s %s %s: no evodb.primaryKey in the table's metadata", when, m.name, table)
			require.Equal(t, strings.Join(keys, ","), *st.PrimaryKey, "%s %s %s: evodb.primaryKey", when, m.name, table)
		}
		require.Empty(t, st.Unknown, "%s %s %s: columns not in PostgreSQL", when, m.name, table)

		pg := e.pgState(t, table, cols)
		values := 0
		// compare checks rows, a current state, against PostgreSQL's,
		// value by value.
		compare := func(what string, rows []map[string]any) {
			got := keyed(t, rows, keys)
			require.Len(t, got, len(rows), "%s %s %s: duplicate keys in the %s", when, m.name, table, what)
			require.Equal(t, sortedKeys(pg), sortedKeys(got), "%s %s %s: keys of the %s", when, m.name, table, what)
			for k, prow := range pg {
				grow := got[k]
				for _, c := range cols {
					values++
					if !sameValue(prow[c.name], grow[c.name]) {
						t.Errorf("%s %s %s key %s column %s (%s): postgres %s, %s %s", when, m.name, table, k,
							c.name, c.typ, show(prow[c.name]), what, show(grow[c.name]))
					}
				}
			}
		}
		compare("current-state view", st.State)
		// The mirror table itself, read as any reader reads it.
		require.NotNil(t, st.Mirror, "%s %s %s: no mirror table read", when, m.name, table)
		require.Empty(t, st.Mirror.Unknown, "%s %s %s: mirror columns not in PostgreSQL", when, m.name, table)
		require.Equal(t, len(pg), st.Mirror.Rows, "%s %s %s: rows of the mirror table", when, m.name, table)
		compare("mirror table", st.Mirror.State)
		replayed += records - len(distinct)
		names := make([]string, len(cols))
		for i, c := range cols {
			names[i] = c.name
		}
		t.Logf("%s %-7s %-8s %3d records (%d replayed, %d tombstones) -> %3d log rows; view and mirror: %3d rows x %d columns, %4d values equal to PostgreSQL [%s]",
			when, m.name, table, records, records-len(distinct), tombstones, st.Rows, len(pg), len(cols), values,
			strings.Join(names, ","))
	}
	return replayed
}

type column struct{ name, typ string }

// columns returns table's columns with their information_schema data
// types, and its primary key columns.
func (e env) columns(t *testing.T, table string) ([]column, []string) {
	t.Helper()
	out, err := e.psql("SELECT column_name || '|' || data_type FROM information_schema.columns " +
		"WHERE table_schema = 'public' AND table_name = '" + table + "' ORDER BY ordinal_position")
	require.NoError(t, err)
	var cols []column
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		name, typ, _ := strings.Cut(line, "|")
		cols = append(cols, column{name, typ})
	}
	out, err = e.psql("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid " +
		"AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'public." + table + "'::regclass AND i.indisprimary ORDER BY a.attnum")
	require.NoError(t, err)
	return cols, strings.Fields(out)
}

// pgExpr is a column's value in the canonical form state.py documents.
func pgExpr(c column) string {
	q := `"` + c.name + `"`
	switch {
	case c.typ == "numeric" || c.typ == "date":
		return q + "::text"
	case c.typ == "real" || c.typ == "double precision":
		return "to_jsonb(" + q + "::float8)"
	case strings.HasPrefix(c.typ, "timestamp"):
		return "floor(extract(epoch FROM " + q + ") * 1000)::bigint"
	case strings.HasPrefix(c.typ, "time"):
		return "(extract(epoch FROM " + q + ") * 1000000)::bigint"
	case c.typ == "bytea":
		return "encode(" + q + ", 'hex')"
	default:
		return "to_jsonb(" + q + ")"
	}
}

// pgState returns SELECT * FROM table, canonical, by primary key.
func (e env) pgState(t *testing.T, table string, cols []column) map[string]map[string]any {
	t.Helper()
	parts := make([]string, 0, 2*len(cols))
	for _, c := range cols {
		parts = append(parts, "'"+c.name+"'", pgExpr(c))
	}
	out, err := e.psql("SELECT jsonb_build_object(" + strings.Join(parts, ", ") + ") FROM public." + table)
	require.NoError(t, err)
	var rows []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		rows = append(rows, decode(t, []byte(line)))
	}
	_, keys := e.columns(t, table)
	return keyed(t, rows, keys)
}

type state struct {
	Rows       int              `json:"rows"`
	PrimaryKey *string          `json:"primary_key"`
	Columns    []string         `json:"columns"`
	Unknown    []string         `json:"unknown"`
	State      []map[string]any `json:"state"`
	// Mirror is the mirror table's rows, as they are.
	Mirror *struct {
		Rows    int              `json:"rows"`
		Columns []string         `json:"columns"`
		Unknown []string         `json:"unknown"`
		State   []map[string]any `json:"state"`
	} `json:"mirror"`
}

// state runs state.py over one Delta table, and over its mirror table
// at mirrorPath.
func (e env) state(t *testing.T, path string, keys []string, cols []column, mirrorPath string) state {
	t.Helper()
	types := map[string]string{}
	for _, c := range cols {
		types[c.name] = c.typ
	}
	typesJSON, err := json.Marshal(types)
	require.NoError(t, err)
	cmd := exec.Command(e.python, "state.py", path, strings.Join(keys, ","), string(typesJSON), mirrorPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "state.py %s: %s", path, stderr.String())
	var st state
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&st), "state.py output: %s", out)
	return st
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&m), "%s", b)
	return m
}

func keyed(t *testing.T, rows []map[string]any, keys []string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, r := range rows {
		k := make([]any, len(keys))
		for i, c := range keys {
			k[i] = r[c]
		}
		b, err := json.Marshal(k)
		require.NoError(t, err)
		out[string(b)] = r
	}
	return out
}

func sortedKeys(m map[string]map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sameValue compares canonical values: numbers by value (so 1.0 and 1,
// -0 and 0 agree), everything else structurally.
func sameValue(a, b any) bool {
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		if x == y {
			return true
		}
		fx, err1 := x.Float64()
		fy, err2 := y.Float64()
		return err1 == nil && err2 == nil && (fx == fy || math.IsNaN(fx) && math.IsNaN(fy))
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameValue(x[i], y[i]) {
				return false
			}
		}
		return true
	default:
		return a == b
	}
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
