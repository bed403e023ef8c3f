package sink

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// progressEvery is how often a running sink logs a progress line.
const progressEvery = 30 * time.Second

// progressInterval is what the sink did since its last progress line: the
// cumulative totals alone cannot tell a sink that writes from one that is
// stuck, so each line also states the interval's rates. Its fields are
// guarded by Sink.mu.
type progressInterval struct {
	start   time.Time
	rows    int64
	bytes   int64
	commits int
	// tables are the paths of the tables that committed in the interval.
	tables map[string]struct{}
	// reasons counts the flushes started in the interval by reason.
	reasons map[string]int
}

// reset starts a new interval at now.
func (iv *progressInterval) reset(now time.Time) {
	*iv = progressInterval{start: now, tables: map[string]struct{}{}, reasons: map[string]int{}}
}

// noteFlushLocked counts a flush started for reason.
func (s *Sink) noteFlushLocked(reason string) {
	if s.progress.reasons == nil {
		s.progress.reset(s.now())
	}
	s.progress.reasons[reason]++
}

// noteCommitLocked counts a block of rows and bytes committed to table.
func (s *Sink) noteCommitLocked(table string, rows int, bytes int64) {
	if s.progress.tables == nil {
		s.progress.reset(s.now())
	}
	s.progress.rows += int64(rows)
	s.progress.bytes += bytes
	s.progress.commits++
	s.progress.tables[table] = struct{}{}
}

// logProgressLocked logs, every progressEvery, what the sink has done, so
// a long run shows its progress without scraping metrics: the interval's
// row and byte rates, commits, tables that advanced and flush reasons, and
// the totals and the current lag.
func (s *Sink) logProgressLocked() {
	now := s.now()
	if now.Sub(s.lastProgress) < progressEvery {
		return
	}
	s.lastProgress = now
	var rows, lag int64
	for _, w := range s.tables {
		rows += w.committedRows()
	}
	for _, p := range s.parts {
		if p.hwm >= 0 {
			lag += max(0, p.hwm-p.durableFrom())
		}
	}
	iv := s.progress
	if iv.start.IsZero() {
		iv.start = now
	}
	secs := now.Sub(iv.start).Seconds()
	var rowsPerSec, mbPerSec float64
	if secs > 0 {
		rowsPerSec = float64(iv.rows) / secs
		mbPerSec = float64(iv.bytes) / secs / 1e6
	}
	s.log.Info("progress",
		"interval", now.Sub(iv.start).Round(time.Second).String(),
		"rows_per_sec", round1(rowsPerSec), "mb_per_sec", round2(mbPerSec),
		"commits", iv.commits, "tables_advanced", len(iv.tables), "flush_reasons", formatCounts(iv.reasons),
		"lag_records", lag, "rows_committed", rows, "tables", len(s.tables), "partitions", len(s.parts),
		"buffered_bytes", s.buffered, "paused", s.ctrl.Paused())
	s.progress.reset(now)
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// formatCounts renders counts as "a=1,b=2" in key order, "none" if empty.
func formatCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}

// formatPartitions renders partitions per topic as "orders:0-3,7 users:1"
// (topics sorted, runs of partitions as ranges), "none" if empty, so a
// rebalance of hundreds of partitions is still one readable line.
func formatPartitions(m map[string][]int32) string {
	var b strings.Builder
	for _, topic := range slices.Sorted(maps.Keys(m)) {
		ps := slices.Clone(m[topic])
		if len(ps) == 0 {
			continue
		}
		slices.Sort(ps)
		ps = slices.Compact(ps)
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(topic)
		b.WriteByte(':')
		for i := 0; i < len(ps); {
			j := i
			for j+1 < len(ps) && ps[j+1] == ps[j]+1 {
				j++
			}
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(int(ps[i])))
			if j > i {
				b.WriteByte('-')
				b.WriteString(strconv.Itoa(int(ps[j])))
			}
			i = j + 1
		}
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

// addPartitions merges src into dst.
func addPartitions(dst map[string][]int32, src map[string][]int32) {
	for topic, ps := range src {
		dst[topic] = append(dst[topic], ps...)
	}
}
