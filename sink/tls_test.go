package sink

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/internal/kafkatest"
	"github.com/evodb/sink/internal/tlstest"
	"github.com/evodb/sink/objstore"
)

// tlsCluster starts a kfake cluster that speaks only TLS (and requires a
// client certificate with mutualTLS), seeded with topics.
func tlsCluster(t *testing.T, certs tlstest.Files, mutualTLS bool, topics ...string) *kfake.Cluster {
	t.Helper()
	c := kafkatest.NewCluster(t, kfake.SeedTopics(1, topics...),
		kfake.TLS(certs.ServerConfig(t, mutualTLS)))
	return c
}

// The sink consumes over TLS and mutual TLS, and its helpers' clients
// (ClientOptions: produce, verify) connect with the same settings, sending
// undecodable records to the dead-letter topic over the same connection.
func TestSinkTLS(t *testing.T) {
	certs := tlstest.New(t)
	for _, mutual := range []bool{false, true} {
		name := map[bool]string{false: "tls", true: "mutual-tls"}[mutual]
		t.Run(name, func(t *testing.T) {
			c := tlsCluster(t, certs, mutual, "cdc", "cdc.dlq")
			k := KafkaConfig{Brokers: c.ListenAddrs(), TLS: TLSConfig{CAFile: certs.CA}}
			if mutual {
				k.TLS.CertFile, k.TLS.KeyFile = certs.ClientCert, certs.ClientKey
			}
			opts, err := ClientOptions(k)
			require.NoError(t, err)
			cl, err := kgo.NewClient(opts...)
			require.NoError(t, err)
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for i := 1; i <= 20; i++ {
				v := `{"op":"INSERT","table":"users","data":{"id":1},"lsn":` + string(rune('0'+i%10)) + `}`
				if i == 20 {
					v = `not json`
				}
				require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: "cdc", Value: []byte(v)}).FirstErr())
			}

			b := objstore.NewMemory()
			cfg := testConfig(c.ListenAddrs(), "cdc")
			cfg.Kafka.TLS = k.TLS
			cfg.Errors.Tolerance, cfg.Errors.DLQTopic = "all", "cdc.dlq"
			_, stop := runSink(t, cfg, b)
			waitCommitted(t, b, 19, 30*time.Second)
			require.NoError(t, stop())

			dlq, err := kgo.NewClient(append(opts, kgo.ConsumeTopics("cdc.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
			require.NoError(t, err)
			defer dlq.Close()
			fs := dlq.PollRecords(ctx, 1)
			require.NoError(t, fs.Err())
			require.Equal(t, []byte("not json"), fs.Records()[0].Value)
		})
	}
}

// A sink whose TLS settings cannot work stops at once with an error naming
// the key to fix, instead of retrying until kafka.connect_timeout. (TLS and
// plaintext mixed up are covered against the real broker in e2e: kfake
// waits for the rest of a request a TLS handshake never completes.)
func TestSinkTLSMisconfiguredStopsWithAClearError(t *testing.T) {
	certs := tlstest.New(t)
	tlsOnly := tlsCluster(t, certs, false, "cdc")
	mutual := tlsCluster(t, certs, true, "cdc")
	for _, tc := range []struct {
		name    string
		brokers []string
		tls     TLSConfig
		want    string
	}{
		{"wrong CA", tlsOnly.ListenAddrs(), TLSConfig{CAFile: certs.OtherCA}, "kafka.tls.ca_file"},
		{"system roots for a private CA", tlsOnly.ListenAddrs(), TLSConfig{Enabled: true}, "kafka.tls.ca_file"},
		{"no client certificate for mutual TLS", mutual.ListenAddrs(), TLSConfig{CAFile: certs.CA}, "kafka.tls.cert_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(tc.brokers, "cdc")
			cfg.Kafka.TLS = tc.tls
			// Long enough that an error found only by the timeout fails
			// the test at its own deadline below.
			cfg.Kafka.ConnectTimeout = 10 * time.Minute
			s, err := newSink(cfg, objstore.NewMemory())
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err = s.Run(ctx)
			require.Error(t, err)
			require.NoError(t, ctx.Err(), "failed at once, not at the test deadline: %v", err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}
