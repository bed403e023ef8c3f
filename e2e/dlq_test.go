package e2e

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A bad record larger than the dead-letter topic's max.message.bytes goes
// there as a pointer (its coordinates, the error, its size and the start of
// its value) on the real broker, and the partition moves on past it.
func TestDLQPointerForOversizedRecord(t *testing.T) {
	h := newHarness(t, 43)
	topic, dlq := h.topic("cdc"), h.topic("dlq")
	h.createTopics(1, topic)
	resp, err := kadm.NewClient(h.cl).CreateTopic(h.ctx(time.Minute), 1, 1,
		map[string]*string{"max.message.bytes": kmsg.StringPtr("65536")}, dlq)
	require.NoError(t, err)
	require.NoError(t, resp.Err)

	big := make([]byte, 300<<10)
	rng := rand.New(rand.NewPCG(4, 3))
	for i := range big {
		big[i] = byte(rng.Uint32()) // incompressible, and not JSON
	}
	good := []byte(`{"op":"INSERT","table":"after_big","data":{"id":1},"lsn":1}`)
	require.NoError(t, h.cl.ProduceSync(h.ctx(time.Minute), &kgo.Record{Topic: topic, Value: big}, &kgo.Record{Topic: topic, Value: good}).FirstErr())

	p := h.startSink(sinkOptions{topics: []string{topic}, dlq: dlq, flushInterval: 300 * time.Millisecond})
	h.waitDone([]string{topic}, 3*time.Minute)
	p.stop()

	cl, err := kgo.NewClient(kgo.SeedBrokers(h.svc.brokers), kgo.ConsumeTopics(dlq), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	fs := cl.PollRecords(h.ctx(time.Minute), 1)
	require.NoError(t, fs.Err())
	rec := fs.Records()[0]
	headers := map[string]string{}
	for _, hd := range rec.Headers {
		headers[hd.Key] = string(hd.Value)
	}
	require.Equal(t, "true", headers["evodb.truncated"])
	require.Equal(t, fmt.Sprint(len(big)), headers["evodb.original.size"])
	require.Equal(t, topic, headers["evodb.source.topic"])
	require.Equal(t, "0", headers["evodb.source.offset"])
	require.NotEmpty(t, rec.Value)
	require.Equal(t, big[:len(rec.Value)], rec.Value)
}
