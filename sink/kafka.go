package sink

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
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
		// franz-go refuses a custom Dialer together with DialTLSConfig; its
		// own dialer applies the dial timeout and sets each broker's host
		// as the server name to verify.
		opts = append(opts, kgo.DialTLSConfig(cfg))
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

// connectProblem explains an error from the first requests to the brokers,
// naming the configuration keys to check. Permanent is true when waiting
// cannot help: the brokers' certificate is not trusted, one side speaks TLS
// and the other does not, or the broker refused the credentials. Anything
// else (a broker still starting, a network that is down, a connection
// closed at once) is retried until kafka.connect_timeout, because a broker
// that is restarting produces it too.
func connectProblem(err error) (hint string, permanent bool) {
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var header tls.RecordHeaderError
	var op *net.OpError
	var firstEOF *kgo.ErrFirstReadEOF
	switch {
	case err == nil:
		return "", false
	case errors.As(err, &unknownCA):
		return "the brokers' certificate is not signed by a CA in kafka.tls.ca_file (or, when it is empty, the system's roots): set kafka.tls.ca_file to the CA that signed it", true
	case errors.As(err, &hostname):
		return "the brokers' certificate does not name the address in kafka.brokers: use the host name the certificate names", true
	case errors.As(err, &invalid):
		return "the brokers' certificate is not valid (expired, not yet valid or not for servers)", true
	case errors.As(err, &header):
		return "the broker does not speak TLS on this port: use its TLS listener's port in kafka.brokers, or turn kafka.tls off for a plaintext listener", true
	case strings.Contains(err.Error(), "plaintext connection speaking to a tls endpoint"):
		return "the broker expects TLS on this port: set kafka.tls.enabled (and kafka.tls.ca_file for a private CA)", true
	case errors.As(err, &op) && op.Op == "remote error":
		return "the broker ended the TLS handshake (" + op.Err.Error() + "): if it requires mutual TLS, set kafka.tls.cert_file and kafka.tls.key_file to a client certificate it trusts", true
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		return "the broker refused the credentials: check kafka.sasl.username, kafka.sasl.password and kafka.sasl.mechanism", true
	case errors.Is(err, kerr.UnsupportedSaslMechanism), errors.Is(err, kerr.IllegalSaslState):
		return "the broker does not accept kafka.sasl.mechanism on this listener", true
	case errors.Is(err, kerr.ClusterAuthorizationFailed):
		return "the user in kafka.sasl.username may not describe the cluster: grant it access", true
	case errors.As(err, &firstEOF):
		return "check that kafka.tls and kafka.sasl match the broker's listener", false
	}
	return "", false
}
