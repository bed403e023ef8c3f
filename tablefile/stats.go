package tablefile

import (
	"github.com/evodb/sink/committer"
)

// Rows is a file's row count: its evodb.rows tag, else the row count of
// its stats, else 0 (another writer may write no stats).
func Rows(a committer.Add) int64 {
	if n, ok := TagRowsOf(a); ok {
		return n
	}
	return a.Rows()
}

// NumRecords sums the row counts of a snapshot's active files' stats;
// files without stats count as zero.
func NumRecords(snap *committer.Snapshot) int64 {
	var n int64
	for _, a := range snap.Files {
		n += a.Rows()
	}
	return n
}
