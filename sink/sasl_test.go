package sink

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/evodb/sink/internal/kafkatest"
	"github.com/evodb/sink/objstore"
)

// The sink authenticates with each SASL mechanism it offers; a wrong
// password fails the run with an error instead of consuming nothing.
func TestSinkSASL(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			c := kafkatest.NewCluster(t, kfake.SeedTopics(1, "cdc"), kfake.EnableSASL(),
				kfake.Superuser(mech, "sink", "s3cret"), kfake.Superuser("SCRAM-SHA-256", "producer", "p"))
			cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...),
				kgo.SASL(scram.Auth{User: "producer", Pass: "p"}.AsSha256Mechanism()))
			require.NoError(t, err)
			defer cl.Close()
			for i := 0; i < 20; i++ {
				rec := &kgo.Record{Topic: "cdc", Value: []byte(`{"op":"INSERT","table":"users","data":{"id":1},"lsn":1}`)}
				require.NoError(t, cl.ProduceSync(context.Background(), rec).FirstErr())
			}

			b := objstore.NewMemory()
			cfg := testConfig(c.ListenAddrs(), "cdc")
			cfg.Kafka.SASL = SASLConfig{Mechanism: mech, Username: "sink", Password: "s3cret"}
			_, stop := runSink(t, cfg, b)
			waitCommitted(t, b, 20, 30*time.Second)
			require.NoError(t, stop())
		})
	}
}

func TestSinkWrongPasswordStopsWithAClearError(t *testing.T) {
	c := kafkatest.NewCluster(t, kfake.SeedTopics(1, "cdc"), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-256", "sink", "s3cret"))
	cfg := testConfig(c.ListenAddrs(), "cdc")
	cfg.Kafka.SASL = SASLConfig{Mechanism: "SCRAM-SHA-256", Username: "sink", Password: "wrong"}
	cfg.Kafka.ConnectTimeout = 3 * time.Second
	s, err := newSink(cfg, objstore.NewMemory())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = s.Run(ctx)
	require.Error(t, err)
	require.Contains(t, err.Error(), "kafka.sasl")
	require.NoError(t, ctx.Err(), "failed at once, not at the test deadline")
}
