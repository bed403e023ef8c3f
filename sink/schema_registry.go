package sink

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/codec/confluent"
)

// NewSchemaRegistry returns the registry client the config describes.
func NewSchemaRegistry(c SchemaRegistryConfig) (*confluent.Registry, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if c.TLS.CAFile != "" || c.TLS.CertFile != "" || c.TLS.InsecureSkipVerify {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.TLS.InsecureSkipVerify} //nolint:gosec // opt-in for test registries
		if c.TLS.CAFile != "" {
			pem, err := os.ReadFile(c.TLS.CAFile)
			if err != nil {
				return nil, fmt.Errorf("schema_registry.tls.ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("schema_registry.tls.ca_file: no certificates in %s", c.TLS.CAFile)
			}
			cfg.RootCAs = pool
		}
		if c.TLS.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("schema_registry.tls.cert_file/key_file: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		tr.TLSClientConfig = cfg
	}
	opts := []sr.ClientOpt{sr.HTTPClient(&http.Client{Transport: tr, Timeout: c.RequestTimeout})}
	switch {
	case c.Username != "":
		opts = append(opts, sr.BasicAuth(c.Username, c.Password))
	case c.BearerToken != "":
		opts = append(opts, sr.BearerToken(c.BearerToken))
	}
	return confluent.NewRegistry(confluent.Options{URLs: c.URLs, ClientOpts: opts, RetryTimeout: c.RetryTimeout, CacheSize: c.CacheSize})
}

// registryDecoder returns a decoder of a schema-registry format, creating
// the registry client on first use.
func (s *Sink) registryDecoder(value, key string) (cdc.Decoder, error) {
	s.registry.mu.Lock()
	defer s.registry.mu.Unlock()
	if s.registry.client == nil {
		reg, err := NewSchemaRegistry(s.cfg.SchemaRegistry)
		if err != nil {
			return nil, err
		}
		s.registry.client = reg
	}
	return RegistryDecoder(s.cfg.SchemaRegistry, s.registry.client, value, key)
}

// closeRegistry ends the registry client's retries. A run closes it when
// it ends, so a sink runs once: its decoders keep the closed client.
func (s *Sink) closeRegistry() {
	s.registry.mu.Lock()
	defer s.registry.mu.Unlock()
	if s.registry.client != nil {
		s.registry.client.Close()
	}
}

// RegistryDecoder returns the decoder of a schema-registry value format
// and key format (empty: the value format) under the config's JSON
// envelope and plain-record fields.
func RegistryDecoder(c SchemaRegistryConfig, reg *confluent.Registry, value, key string) (cdc.Decoder, error) {
	if key == "" {
		key = value
	}
	f := c.Fields
	return confluent.NewDecoder(reg, confluent.DecoderOptions{
		Value:    codec.Format(value),
		Key:      codec.Format(key),
		Envelope: codec.Format(c.JSONEnvelope),
		Fields:   confluent.PlainFields{Op: f.Op, LSN: f.LSN, TS: f.TS, Table: f.Table},
	})
}
