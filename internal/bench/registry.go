package bench

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/codec/confluent"
	"github.com/evodb/sink/internal/workload"
)

// registryFormat turns generated evodb records into a schema-registry
// format: an in-process registry (franz-go's srfake behind the Confluent
// REST API, which a child sink reaches over HTTP), the encoder that
// registers the workload's schemas there, and a decoder for the
// decode+encode baseline.
type registryFormat struct {
	fake *srfake.Registry
	reg  *confluent.Registry
	enc  confluent.ChangeEncoder
	json cdc.Decoder
	dec  cdc.Decoder
	ch   codec.Change
}

func newRegistryFormat(f codec.Format, topic string) (*registryFormat, error) {
	fake := srfake.New()
	reg, err := confluent.NewRegistry(confluent.Options{URLs: []string{fake.URL()}})
	if err != nil {
		fake.Close()
		return nil, err
	}
	rf := &registryFormat{fake: fake, reg: reg}
	if rf.enc, err = confluent.NewChangeEncoder(reg, topic, f); err == nil {
		if rf.json, err = cdc.NewDecoder(cdc.FormatEvoDB); err == nil {
			rf.dec, err = confluent.NewDecoder(reg, confluent.DecoderOptions{Value: f})
		}
	}
	if err != nil {
		rf.close()
		return nil, err
	}
	return rf, nil
}

// transform re-encodes r, a generated evodb record, in the format. It is
// not safe for concurrent use.
func (rf *registryFormat) transform(ctx context.Context, r *workload.Record) error {
	if err := rf.json.Decode(codec.Record{Topic: r.Topic, Value: r.Value}, &rf.ch); err != nil {
		return fmt.Errorf("re-encode generated record: %w", err)
	}
	v, err := rf.enc.Append(ctx, nil, &rf.ch)
	if err != nil {
		return err
	}
	r.Value = v
	return nil
}

func (rf *registryFormat) close() {
	rf.reg.Close()
	rf.fake.Close()
}
