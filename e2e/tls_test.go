package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// tlsListeners are the broker's TLS listeners and what clients need for
// them, from kafka.sh env.
type tlsListeners struct {
	ssl, saslSSL, mtls       string
	ca, otherCA              string
	clientCert, clientKey    string
	scramUser, scramPassword string
}

// needTLS returns the TLS listeners or skips the test.
func needTLS(t *testing.T) tlsListeners {
	t.Helper()
	l := tlsListeners{
		ssl: os.Getenv("SINK_E2E_KAFKA_SSL"), saslSSL: os.Getenv("SINK_E2E_KAFKA_SASL_SSL"), mtls: os.Getenv("SINK_E2E_KAFKA_MTLS"),
		ca: os.Getenv("SINK_E2E_KAFKA_CA"), otherCA: os.Getenv("SINK_E2E_KAFKA_OTHER_CA"),
		clientCert: os.Getenv("SINK_E2E_KAFKA_CLIENT_CERT"), clientKey: os.Getenv("SINK_E2E_KAFKA_CLIENT_KEY"),
		scramUser: os.Getenv("SINK_E2E_KAFKA_SCRAM_USER"), scramPassword: os.Getenv("SINK_E2E_KAFKA_SCRAM_PASSWORD"),
	}
	if l.ssl == "" || l.saslSSL == "" || l.mtls == "" || l.ca == "" {
		t.Skip("SINK_E2E_KAFKA_SSL, _SASL_SSL, _MTLS or _CA is not set: the broker has no TLS listeners (kafka.sh start opens them)")
	}
	return l
}

// tlsYAML is the kafka.tls section (and kafka.sasl, when user is set) of a
// sink configuration, indented for sinkOptions.kafka.
func tlsYAML(ca, cert, key, mechanism, user, password string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  tls:\n    ca_file: %q\n", ca)
	if cert != "" {
		fmt.Fprintf(&b, "    cert_file: %q\n    key_file: %q\n", cert, key)
	}
	if user != "" {
		fmt.Fprintf(&b, "  sasl:\n    mechanism: %s\n    username: %q\n    password: %q\n", mechanism, user, password)
	}
	return b.String()
}

// sinkCommand runs the sink binary to completion and returns its output.
func (h *harness) sinkCommand(timeout time.Duration, args ...string) (string, error) {
	h.t.Helper()
	out, err := exec.CommandContext(h.ctx(timeout), sinkBin, args...).CombinedOutput()
	return string(out), err
}

// TestTLSListeners runs the sink binary's produce, run (with undecodable
// records sent to the dead-letter topic) and verify over each TLS listener
// of the real broker: server-verified TLS, SASL_SSL with a SCRAM-SHA-512
// user, and mutual TLS.
func TestTLSListeners(t *testing.T) {
	l := needTLS(t)
	for _, tc := range []struct {
		name, addr, kafka string
	}{
		{"ssl", l.ssl, tlsYAML(l.ca, "", "", "", "", "")},
		{"sasl_ssl", l.saslSSL, tlsYAML(l.ca, "", "", "SCRAM-SHA-512", l.scramUser, l.scramPassword)},
		{"mtls", l.mtls, tlsYAML(l.ca, l.clientCert, l.clientKey, "", "", "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, 31)
			// The sink creates the dead-letter topic at start, over TLS.
			topic, dlq := h.topic("cdc"), h.topic("dlq")
			opts := sinkOptions{topics: []string{topic}, dlq: dlq, brokers: tc.addr, kafka: tc.kafka, flushInterval: 300 * time.Millisecond}
			cfg := h.config(opts, freeAddr(t))

			// produce creates the topic and writes over TLS.
			out, err := h.sinkCommand(3*time.Minute, "produce", "-c", cfg, "-topic", topic, "-partitions", "3",
				"-records", "3000", "-tables", "4", "-bad-rate", "0.02", "-seed", "7")
			require.NoError(t, err, "sink produce over %s:\n%s", tc.name, out)

			p := h.startSink(opts)
			h.waitDone([]string{topic}, 3*time.Minute)
			p.stop()

			out, err = h.sinkCommand(3*time.Minute, "verify", "-c", cfg)
			require.NoError(t, err, "sink verify over %s:\n%s", tc.name, out)
			t.Logf("sink verify over %s: %s", tc.name, strings.SplitN(out, "\n", 2)[0])
			require.Regexp(t, `[1-9][0-9]* in the dead-letter topic`, out, "undecodable records reached the dead-letter topic over %s", tc.name)
		})
	}
}

// TestTLSMisconfigured: a wrong CA, a wrong password, a missing client
// certificate and a plaintext client against a TLS listener each stop
// `sink run` with an error naming what to fix, at once rather than after
// kafka.connect_timeout.
func TestTLSMisconfigured(t *testing.T) {
	l := needTLS(t)
	for _, tc := range []struct {
		name, addr, kafka, want string
	}{
		{"wrong CA", l.ssl, tlsYAML(l.otherCA, "", "", "", "", ""), "kafka.tls.ca_file"},
		{"wrong password", l.saslSSL, tlsYAML(l.ca, "", "", "SCRAM-SHA-512", l.scramUser, l.scramPassword+"-wrong"), "kafka.sasl.password"},
		{"no client certificate", l.mtls, tlsYAML(l.ca, "", "", "", "", ""), "kafka.tls.cert_file"},
		{"plaintext client on a TLS listener", l.ssl, "", "kafka.tls.enabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, 32)
			topic := h.topic("cdc")
			h.createTopics(1, topic)
			// A connect timeout the test outlives: an error that only the
			// timeout ends says "unreachable within kafka.connect_timeout".
			cfg := h.config(sinkOptions{topics: []string{topic}, brokers: tc.addr, kafka: tc.kafka + "  connect_timeout: 2m\n"}, freeAddr(t))
			out, err := h.sinkCommand(4*time.Minute, "run", "-c", cfg)
			require.Error(t, err, "sink run must fail:\n%s", out)
			t.Logf("sink run: %s", strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:]))
			require.Contains(t, out, tc.want)
			require.NotContains(t, out, "unreachable within kafka.connect_timeout", "the error is known at once; waiting cannot fix it")
		})
	}
}
