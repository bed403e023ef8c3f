package workload

import (
	"context"
	"fmt"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/codec/confluent"
)

// RegistryTransform returns a transform for ProduceTransformed that
// re-encodes generated evodb records as plain Avro or Protobuf records in
// the Confluent wire format through enc, which registers their schemas.
// Bad records stay as they are: without the wire-format header they are
// bad for a registry-format topic too. The generator must produce the evodb format.
func RegistryTransform(ctx context.Context, enc confluent.ChangeEncoder) (func(*Record) error, error) {
	dec, err := cdc.NewDecoder(cdc.FormatEvoDB)
	if err != nil {
		return nil, err
	}
	var ch codec.Change
	return func(r *Record) error {
		if r.Bad {
			return nil
		}
		if err := dec.Decode(codec.Record{Topic: r.Topic, Value: r.Value}, &ch); err != nil {
			return fmt.Errorf("re-encode generated record of %s: %w", r.Topic, err)
		}
		v, err := enc.Append(ctx, nil, &ch)
		if err != nil {
			return err
		}
		r.Value = v
		return nil
	}, nil
}
