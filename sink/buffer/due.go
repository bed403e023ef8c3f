package buffer

import "time"

// DueIn reports how long until the buffer's age trigger fires (zero if it
// has); ok is false for an empty buffer, which is never due. The consumer
// loop bounds its poll wait with it.
func (t *Table) DueIn(now time.Time) (d time.Duration, ok bool) {
	if t.Len() == 0 {
		return 0, false
	}
	return t.due(now), true
}
