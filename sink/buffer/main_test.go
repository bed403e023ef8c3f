package buffer

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/evodb/sink/codec"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// changesOf returns a batch's changes, nil for an empty batch.
func changesOf(b Batch) []codec.Change {
	if b.Rows == nil {
		return nil
	}
	var out []codec.Change
	for i := range b.Rows.Len() {
		out = append(out, b.Rows.Change(i))
	}
	return out
}
