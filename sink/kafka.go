package sink

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/twmb/franz-go/plugin/kprom"
)

// newKafkaMetrics exports franz-go's client metrics on reg.
func newKafkaMetrics(reg prometheus.Registerer) kgo.Hook {
	return kprom.NewMetrics("evodb_sink_kafka", kprom.Registerer(reg))
}

// ClientOptions returns the franz-go options for brokers, TLS and SASL of
// a Kafka config, for the sink's helpers (DLQ readers, producers, verify).
func ClientOptions(k KafkaConfig) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}
	sec, err := securityOptions(k)
	if err != nil {
		return nil, err
	}
	return append(opts, sec...), nil
}

// securityOptions builds TLS and SASL options.
func securityOptions(k KafkaConfig) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if k.TLS.Enabled || k.TLS.CAFile != "" || k.TLS.CertFile != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: k.TLS.InsecureSkipVerify} //nolint:gosec // opt-in for test clusters
		if k.TLS.CAFile != "" {
			pem, err := os.ReadFile(k.TLS.CAFile)
			if err != nil {
				return nil, fmt.Errorf("kafka.tls.ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kafka.tls.ca_file: no certificates in %s", k.TLS.CAFile)
			}
			cfg.RootCAs = pool
		}
		if k.TLS.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(k.TLS.CertFile, k.TLS.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("kafka.tls.cert_file/key_file: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, kgo.DialTLSConfig(cfg), kgo.Dialer((&net.Dialer{Timeout: 10 * time.Second}).DialContext))
	}
	switch k.SASL.Mechanism {
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: k.SASL.Username, Pass: k.SASL.Password}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: k.SASL.Username, Pass: k.SASL.Password}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: k.SASL.Username, Pass: k.SASL.Password}.AsSha512Mechanism()))
	}
	return opts, nil
}
