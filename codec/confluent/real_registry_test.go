package confluent

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
)

// realRegistry returns a client of the registry EVODB_SCHEMA_REGISTRY_URL
// names (CI starts Apicurio Registry), and a name no earlier run used.
func realRegistry(t *testing.T) (*Registry, string) {
	t.Helper()
	url := os.Getenv("EVODB_SCHEMA_REGISTRY_URL")
	if url == "" {
		t.Skip("EVODB_SCHEMA_REGISTRY_URL is not set")
	}
	reg, err := NewRegistry(Options{URLs: []string{url}, RetryTimeout: 10 * time.Second})
	require.NoError(t, err)
	t.Cleanup(reg.Close)
	return reg, "rr-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + time.Now().Format("150405.000000000")
}

// Protobuf records whose schemas the encoder registered in the real
// registry, and a JSON Schema record, decode as the changes they came from.
func TestRealRegistryProtobufAndJSONSchema(t *testing.T) {
	reg, name := realRegistry(t)
	f := &fixture{t: t, reg: reg}

	jd, err := cdc.NewDecoder(cdc.FormatEvoDB)
	require.NoError(t, err)
	enc := NewProtoEncoder(reg, name)
	d := f.decoder(DecoderOptions{Value: FormatProtobuf})
	for _, r := range evodbRecords(20) {
		r.Topic = name
		var want, got codec.Change
		require.NoError(t, jd.Decode(r, &want))
		v, err := enc.Append(context.Background(), nil, &want)
		require.NoError(t, err)
		r.Value = v
		require.NoError(t, d.Decode(r, &got))
		requireSameChange(t, &want, &got)
	}

	ss, err := reg.Client().CreateSchema(t.Context(), name+"-json-value", sr.Schema{Schema: `{"$schema":"http://json-schema.org/draft-07/schema#","title":"change","type":"object"}`, Type: sr.TypeJSON})
	require.NoError(t, err)
	var h sr.ConfluentHeader
	value, _ := h.AppendEncode(nil, ss.ID, nil)
	value = append(value, `{"op":"INSERT","table":"users","data":{"id":1,"name":"a"},"lsn":10}`...)
	var ch codec.Change
	require.NoError(t, f.decoder(DecoderOptions{Value: FormatJSONSchema}).Decode(codec.Record{Topic: name, Offset: 1, Value: value}, &ch))
	require.Equal(t, "users", ch.Table)
	require.Equal(t, uint64(10), ch.LSN)
	require.Equal(t, codec.String("a"), ch.Get("name"))
}
