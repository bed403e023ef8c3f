package sink

import (
	"container/heap"
	"time"
)

// dueQueue holds the times the tables' age triggers fire, earliest first,
// so that a poll visits only the tables that are due instead of walking
// every table twice (once for how long to block, once for what to flush).
// The size and record-count triggers need no queue: addLocked checks them
// as it buffers each change.
//
// Invariant: a table whose buffer holds changes has an entry at or before
// the time its age trigger fires, unless a flush of the buffer was asked
// for (then the buffer is draining, or drains when the table's running
// flush ends: flushWanted, finishFlush). addLocked queues a table whose
// buffer it adds to and that has no entry; a due entry is taken off and,
// unless its buffer's flush is asked for then, queued again at the
// buffer's own due time (so entries may be early, never late). That holds
// while a flush of the table runs too: the buffer that took changes since
// is not due when the entry fires, and the running flush, when it ends,
// starts another only if that buffer is due by then. A flush drains the
// buffer and leaves the entry behind: it fires early, finds the buffer
// empty or not due yet, and is dropped or queued again. Only addLocked
// fills buffers, so no other path can leave a buffer without an entry.
// Guarded by Sink.mu.
type dueQueue struct {
	items []dueItem
	// queued holds the tables with an entry.
	queued map[*tableWriter]bool
}

type dueItem struct {
	at time.Time
	w  *tableWriter
}

// push queues w at at unless it has an entry.
func (q *dueQueue) push(w *tableWriter, at time.Time) {
	if q.queued[w] {
		return
	}
	if q.queued == nil {
		q.queued = map[*tableWriter]bool{}
	}
	q.queued[w] = true
	heap.Push((*dueHeap)(&q.items), dueItem{at: at, w: w})
}

// popDue takes off the earliest entry if it is due at now.
func (q *dueQueue) popDue(now time.Time) (*tableWriter, bool) {
	if len(q.items) == 0 || q.items[0].at.After(now) {
		return nil, false
	}
	it := heap.Pop((*dueHeap)(&q.items)).(dueItem)
	delete(q.queued, it.w)
	return it.w, true
}

// next is the earliest entry's time.
func (q *dueQueue) next() (time.Time, bool) {
	if len(q.items) == 0 {
		return time.Time{}, false
	}
	return q.items[0].at, true
}

// dueHeap orders entries by time for container/heap.
type dueHeap []dueItem

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueItem)) }
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = dueItem{}
	*h = old[:len(old)-1]
	return it
}

// visitDue notes that the poll visits w for its age trigger.
func (s *Sink) visitDue(w *tableWriter) {
	if s.visitDueHook != nil {
		s.visitDueHook(w)
	}
}
