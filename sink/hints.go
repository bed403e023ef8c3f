package sink

import (
	"github.com/evodb/sink/codec"
)

// Sizing a new table's first batch from its topic's other tables.
//
// A table's buffer allocates its next batch at the size of its last one
// (buffer.Table.Drain), but a new table has no last batch: its arrays
// started at 64 entries and grew by half again through copies, four of
// them for a batch of 300 changes, which at hundreds of tables with one
// or two batches each is most of the copying the buffers do. Tables of one
// topic usually come from one source database and see similar traffic,
// so a new table starts at the mean of what its topic's other tables'
// next batches are sized at.

// topicHints keeps, for each topic, the latest next-batch size of every
// table that flushed changes of it, and their sum. It is guarded by
// Sink.mu.
type topicHints struct {
	topics map[string]*topicHint
}

type topicHint struct {
	// last is each table's latest contribution, by table path.
	last map[string]codec.RowsHint
	sum  codec.RowsHint
}

// note records a table's next-batch size under each topic it flushed
// changes of.
func (th *topicHints) note(table string, topics []string, h codec.RowsHint) {
	if h.Rows <= 0 {
		return
	}
	if th.topics == nil {
		th.topics = map[string]*topicHint{}
	}
	for _, topic := range topics {
		t := th.topics[topic]
		if t == nil {
			t = &topicHint{last: map[string]codec.RowsHint{}}
			th.topics[topic] = t
		}
		old := t.last[table]
		t.sum.Rows += h.Rows - old.Rows
		t.sum.Cells += h.Cells - old.Cells
		t.sum.Bytes += h.Bytes - old.Bytes
		t.last[table] = h
	}
}

// forNew returns the first-batch size of a new table of topic: the mean of
// the topic's tables' next-batch sizes, scaled down to at most share bytes
// of memory, since a guess must not claim more of the memory budget than a
// table's fair share of it. ok is false when no table of the topic has
// flushed yet.
func (th *topicHints) forNew(topic string, share int64) (codec.RowsHint, bool) {
	t := th.topics[topic]
	if t == nil || len(t.last) == 0 {
		return codec.RowsHint{}, false
	}
	n := len(t.last)
	h := codec.RowsHint{Rows: t.sum.Rows / n, Cells: t.sum.Cells / n, Bytes: t.sum.Bytes / n}
	if h.Rows <= 0 {
		return codec.RowsHint{}, false
	}
	// The memory of arrays allocated at h, as the budget counts it: an
	// empty change needs no growth of arrays with room for a row.
	if mem := h.MemFor(&codec.Change{}); share > 0 && mem > share {
		f := float64(share) / float64(mem)
		h = codec.RowsHint{Rows: int(float64(h.Rows) * f), Cells: int(float64(h.Cells) * f), Bytes: int(float64(h.Bytes) * f)}
		if h.Rows <= 0 {
			return codec.RowsHint{}, false
		}
	}
	return h, true
}
