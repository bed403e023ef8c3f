package sink

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/objstore"
)

// withClock injects the clock.
func withClock(now func() time.Time) Option { return func(s *Sink) { s.now = now } }

// withKafkaOptions appends franz-go client options (hooks, protocol
// versions) to those the configuration gives.
func withKafkaOptions(opts ...kgo.Opt) Option {
	return func(s *Sink) { s.kopts = append(s.kopts, opts...) }
}

// newSink is New with the tables in b kept as cmd/sink keeps them: Delta,
// checkpointed every commit.checkpoint_interval commits.
func newSink(cfg Config, b objstore.Bucket, opts ...Option) (*Sink, error) {
	return New(cfg, b, delta.NewFormat(b, delta.Options{CheckpointInterval: cfg.Commit.CheckpointInterval}), opts...)
}
