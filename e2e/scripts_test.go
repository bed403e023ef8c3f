package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/objstore"
)

// kafka.sh produce writes one record per line of its input to a topic,
// and kafka.sh documents KAFKA_READY_TIMEOUT.
func TestKafkaScriptProduce(t *testing.T) {
	h := newHarness(t, 41)
	if h.svc.kafkaDir == "" {
		t.Skip("SINK_E2E_KAFKA_DIR is not set")
	}
	usage, _ := exec.Command("scripts/kafka.sh").CombinedOutput()
	require.Contains(t, string(usage), "KAFKA_READY_TIMEOUT")
	require.Contains(t, string(usage), "kafka.sh produce <dir> <topic>")

	topic := h.topic("console")
	h.createTopics(1, topic)
	cmd := exec.CommandContext(h.ctx(3*time.Minute), "scripts/kafka.sh", "produce", h.svc.kafkaDir, topic)
	cmd.Stdin = strings.NewReader("one\ntwo\nthree\n")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "kafka.sh produce: %s", out)

	cl, err := kgo.NewClient(kgo.SeedBrokers(h.svc.brokers), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	var got []string
	ctx := h.ctx(time.Minute)
	for len(got) < 3 {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "records read: %q", got)
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	require.Equal(t, []string{"one", "two", "three"}, got)
}

// eval "$(versitygw.sh env DIR)" is all `sink run -c config.example.yaml`
// needs to write its tables to that S3 server (config.example.yaml reads
// EVODB_*, the tests SINK_TEST_S3_*).
func TestExampleConfigWithVersitygwEnv(t *testing.T) {
	h := newHarness(t, 42)
	if h.svc.s3.DataDir == "" {
		t.Skip("SINK_E2E_S3_DATA_DIR is not set: the versitygw state dir is unknown")
	}
	out, err := exec.Command("scripts/versitygw.sh", "env", filepath.Dir(h.svc.s3.DataDir)).Output()
	require.NoError(t, err)
	// What eval would export, without a shell.
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		require.True(t, ok, line)
		env[k] = strings.Trim(v, "'")
	}
	for _, k := range []string{"EVODB_STORE_URL", "EVODB_S3_ENDPOINT", "EVODB_S3_ACCESS_KEY_ID", "EVODB_S3_SECRET_ACCESS_KEY"} {
		require.NotEmpty(t, env[k], "versitygw.sh env prints %s", k)
	}

	topic, table := h.topic("example"), strings.ReplaceAll(h.name, "-", "_")
	h.createTopics(1, topic)
	for i := 1; i <= 10; i++ {
		v := fmt.Sprintf(`{"op":"INSERT","table":%q,"data":{"id":%d},"lsn":%d}`, table, i, i)
		require.NoError(t, h.cl.ProduceSync(h.ctx(time.Minute), &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr())
	}
	cmd := exec.Command(sinkBin, "run", "-c", "../config.example.yaml")
	cmd.Env = append(os.Environ(), "KAFKA_BROKERS="+h.svc.brokers, "KAFKA_TOPIC="+topic, "EVODB_HTTP_ADDR="+freeAddr(t))
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	logPath := filepath.Join(h.dir, "example.log")
	f, err := os.Create(logPath)
	require.NoError(t, err)
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill() }()

	b, err := objstore.Open(h.ctx(time.Minute), env["EVODB_STORE_URL"], objstore.S3Config{
		Endpoint: env["EVODB_S3_ENDPOINT"], Region: env["EVODB_S3_REGION"],
		AccessKeyID: env["EVODB_S3_ACCESS_KEY_ID"], SecretAccessKey: env["EVODB_S3_SECRET_ACCESS_KEY"],
	})
	require.NoError(t, err)
	first := table + "/_delta_log/00000000000000000000.json"
	deadline := time.Now().Add(3 * time.Minute)
	for {
		_, err := b.Head(h.ctx(time.Minute), first)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("no commit of table %s in %s (last error %v); sink log:\n%s", table, env["EVODB_STORE_URL"], err, log)
		}
		time.Sleep(500 * time.Millisecond)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	werr := cmd.Wait()
	var exit *exec.ExitError
	require.False(t, errors.As(werr, &exit), "sink run exit: %v", werr)
}
