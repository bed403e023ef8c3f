package sink

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// withClock injects the clock.
func withClock(now func() time.Time) Option { return func(s *Sink) { s.now = now } }

// withKafkaOptions appends franz-go client options (hooks, protocol
// versions) to those the configuration gives.
func withKafkaOptions(opts ...kgo.Opt) Option {
	return func(s *Sink) { s.kopts = append(s.kopts, opts...) }
}
