package tablefile

import (
	"encoding/json"
	"fmt"

	"github.com/evodb/sink/committer/delta"
)

// Stats are the Delta statistics of a data file, the "stats" JSON of its
// add action. Values stay raw JSON: their type is the column's.
type Stats struct {
	NumRecords int64                      `json:"numRecords"`
	MinValues  map[string]json.RawMessage `json:"minValues,omitempty"`
	MaxValues  map[string]json.RawMessage `json:"maxValues,omitempty"`
	NullCount  map[string]json.RawMessage `json:"nullCount,omitempty"`
}

// ParseStats parses a file's Delta stats JSON. Empty text is empty stats:
// Delta makes stats optional.
func ParseStats(text string) (Stats, error) {
	var st Stats
	if text == "" {
		return st, nil
	}
	if err := json.Unmarshal([]byte(text), &st); err != nil {
		return Stats{}, fmt.Errorf("parse file stats: %w", err)
	}
	return st, nil
}

// Rows is a file's row count: its evodb.rows tag, else the numRecords of
// its stats, else 0 (another writer may write no stats).
func Rows(a delta.Add) int64 {
	if n, ok := TagRowsOf(a); ok {
		return n
	}
	st, _ := ParseStats(a.Stats)
	return st.NumRecords
}

// NumRecords sums numRecords over a snapshot's active files' stats; files
// without stats count as zero.
func NumRecords(snap *delta.Snapshot) int64 {
	var n int64
	for _, a := range snap.Files {
		st, _ := ParseStats(a.Stats)
		n += st.NumRecords
	}
	return n
}
