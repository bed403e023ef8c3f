package buffer

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
)

// Budget bounds the bytes buffered across all tables. Fetching pauses above
// High and resumes below Low; the gap between them keeps the consumer from
// pausing and resuming on every record.
type Budget struct {
	Limit int64 `yaml:"limit"`
	High  int64 `yaml:"high"`
	Low   int64 `yaml:"low"`
}

// Validate requires 0 < Low < High ≤ Limit.
func (b Budget) Validate() error {
	if !(0 < b.Low && b.Low < b.High && b.High <= b.Limit) {
		return fmt.Errorf("memory budget: want 0 < low (%d) < high (%d) <= limit (%d)", b.Low, b.High, b.Limit)
	}
	return nil
}

// BudgetFromFractions derives the watermarks from fractions of limit, such
// as 0.9 and 0.6. The fractions must satisfy 0 < low < high ≤ 1 and be
// finite, and the resulting byte values must still be ordered.
func BudgetFromFractions(limit int64, high, low float64) (Budget, error) {
	for _, f := range []float64{high, low} {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return Budget{}, fmt.Errorf("memory budget: watermark fraction %v is not a number", f)
		}
	}
	if !(0 < low && low < high && high <= 1) {
		return Budget{}, fmt.Errorf("memory budget: want 0 < low (%v) < high (%v) <= 1", low, high)
	}
	if limit <= 0 {
		return Budget{}, fmt.Errorf("memory budget: limit %d must be positive", limit)
	}
	b := Budget{
		Limit: limit,
		High:  int64(float64(limit) * high),
		Low:   int64(float64(limit) * low),
	}
	b.High = min(b.High, limit)
	if err := b.Validate(); err != nil {
		return Budget{}, err
	}
	return b, nil
}

// Controller decides when fetching pauses and resumes. It is safe for
// concurrent use.
//
// Unlike a one-shot flag, the decision is recomputed from the buffered bytes
// on every Update: call it after each Add batch and after each flush, and a
// paused consumer resumes as soon as usage falls below Low.
//
// The budget is shared with the open tables' own state (their snapshots,
// schemas, metrics series: what a table costs while its buffer is empty),
// which AddState counts, and with fixed costs of the process that grow
// with its configuration rather than its data (the encoders of concurrent
// flushes), which Reserve counts: buffers get what they leave, so a
// process that opens more tables buffers less, and its memory stays within
// the budget as the tables grow in number.
type Controller struct {
	budget Budget
	// avail is what buffers may use now (Budget), recomputed by AddState:
	// it is read for every change buffered, the state changes per commit.
	avail atomic.Pointer[Budget]

	mu struct {
		sync.Mutex
		paused bool
		// state is what AddState counted.
		state int64
		// reserved is what Reserve counted.
		reserved int64
	}
}

// minBufferShare is the part of the configured budget buffers keep however
// much the tables' state takes: with less, every table would flush a file
// per handful of changes. A process whose tables' state takes more than the
// rest goes over its budget by the difference; the memory.budget_bytes
// doc says to raise it then.
const minBufferShare = 4 // a quarter

// NewController returns a controller for a valid budget, not paused.
func NewController(b Budget) (*Controller, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	c := &Controller{budget: b}
	c.avail.Store(&b)
	return c, nil
}

// Budget returns what buffers may use now: the configured budget less the
// tables' state and the reserved fixed costs (at least a quarter of it is
// left), its watermarks
// lowered in proportion.
func (c *Controller) Budget() Budget { return *c.avail.Load() }

// available returns what buffers may use with state bytes of tables'
// state and fixed costs counted.
func (c *Controller) available(state int64) Budget {
	b := c.budget
	limit := max(b.Limit-state, b.Limit/minBufferShare)
	if limit == b.Limit {
		return b
	}
	scale := float64(limit) / float64(b.Limit)
	return Budget{
		Limit: limit,
		High:  max(int64(float64(b.High)*scale), 2),
		Low:   max(int64(float64(b.Low)*scale), 1),
	}
}

// Configured returns the budget the controller was made with.
func (c *Controller) Configured() Budget { return c.budget }

// AddState counts delta more bytes (or fewer, if negative) of the open
// tables' own state against the budget.
func (c *Controller) AddState(delta int64) {
	if delta == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.state += delta
	b := c.available(c.mu.state + c.mu.reserved)
	c.avail.Store(&b)
}

// Reserve counts n bytes of fixed cost against the budget, in place of
// what an earlier Reserve counted: memory the process holds whatever it
// buffers, such as its encoders. Like the tables' state it leaves the
// buffers at least a quarter of the budget.
func (c *Controller) Reserve(n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.reserved = n
	b := c.available(c.mu.state + c.mu.reserved)
	c.avail.Store(&b)
}

// Reserved returns what Reserve counted.
func (c *Controller) Reserved() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.reserved
}

// State returns the bytes of tables' state counted against the budget.
func (c *Controller) State() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.state
}

// Update records the buffered bytes and returns whether fetching should be
// paused and whether that changed with this call. It pauses when buffered
// exceeds High and resumes only when buffered falls below Low; in between
// the previous state holds.
func (c *Controller) Update(buffered int64) (pause, changed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.Budget()
	was := c.mu.paused
	switch {
	case buffered > b.High:
		c.mu.paused = true
	case buffered < b.Low:
		c.mu.paused = false
	}
	return c.mu.paused, c.mu.paused != was
}

// Paused returns the state the last Update decided.
func (c *Controller) Paused() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.paused
}

// WouldExceed reports whether adding a record of record bytes to buffered
// bytes would go over the limit. When it does, the caller pauses fetching
// and flushes before adding. An empty buffer takes any record, or a record
// larger than the whole budget could never be added, so buffered bytes stay
// within the limit or, at most, at one record.
func (c *Controller) WouldExceed(buffered, record int64) bool {
	return buffered > 0 && buffered+record > c.Budget().Limit
}
