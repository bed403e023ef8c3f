package delta

import (
	"testing"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/committer/committertest"
	"github.com/evodb/sink/objstore"
)

// TestConformance runs the table-format conformance test over every bucket
// the Delta format supports.
func TestConformance(t *testing.T) {
	for name, mk := range buckets() {
		t.Run(name, func(t *testing.T) {
			committertest.Run(t, func(t *testing.T) committertest.Store {
				return committertest.BucketStore(mk(t), func(b objstore.Bucket) committer.Format {
					opts := testOptions("")
					opts.MaxCommitAttempts = 1000
					return NewFormat(b, opts)
				})
			})
		})
	}
}
