package tablefile

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/partitioner"
)

// Tags of an add action that the sink and the compactor write.
const (
	// TagMinLSN and TagMaxLSN are the first and last LSN of the file's rows.
	TagMinLSN = "evodb.minLsn"
	TagMaxLSN = "evodb.maxLsn"
	// TagSources lists the source offset ranges of the file's rows as
	// "topic:partition:first-last,...". It is informational.
	TagSources = "evodb.sources"
	// TagLevel is the file's compaction level: 0 for a block one flush
	// wrote, one above its highest input for a compacted file.
	TagLevel = "evodb.level"
	// TagRows is the number of rows of the file.
	TagRows = "evodb.rows"
)

// Tags are the evodb tags of one data file.
type Tags struct {
	MinLSN, MaxLSN uint64
	Sources        string
	Level          int
	Rows           int64
}

// Map renders the tags as an add action carries them.
func (t Tags) Map() map[string]string {
	return map[string]string{
		TagMinLSN:  strconv.FormatUint(t.MinLSN, 10),
		TagMaxLSN:  strconv.FormatUint(t.MaxLSN, 10),
		TagSources: t.Sources,
		TagLevel:   strconv.Itoa(t.Level),
		TagRows:    strconv.FormatInt(t.Rows, 10),
	}
}

// TagLSNRange returns the LSN range a file's tags name; ok is false unless
// both tags are there and parse.
func TagLSNRange(a committer.Add) (lo, hi uint64, ok bool) {
	lo, errLo := strconv.ParseUint(a.Tags[TagMinLSN], 10, 64)
	hi, errHi := strconv.ParseUint(a.Tags[TagMaxLSN], 10, 64)
	if errLo != nil || errHi != nil {
		return 0, 0, false
	}
	return lo, hi, true
}

// MaxLSN returns the last LSN a file's tags name, or 0 without the tag.
func MaxLSN(a committer.Add) uint64 {
	v, _ := strconv.ParseUint(a.Tags[TagMaxLSN], 10, 64)
	return v
}

// TagLevelOf returns the compaction level a file's tag names; ok is false
// when the tag is missing, does not parse or is negative.
func TagLevelOf(a committer.Add) (int, bool) {
	l, err := strconv.Atoi(a.Tags[TagLevel])
	if err != nil || l < 0 {
		return 0, false
	}
	return l, true
}

// TagRowsOf returns the row count a file's tag names; ok is false when the
// tag is missing or does not parse.
func TagRowsOf(a committer.Add) (int64, bool) {
	n, err := strconv.ParseInt(a.Tags[TagRows], 10, 64)
	return n, err == nil
}

// Sources returns a file's evodb.sources tag, empty without one.
func Sources(a committer.Add) string { return a.Tags[TagSources] }

// LSNRange is the LSN range of a file the sink wrote: from its tags (when
// both parse and are in order), else from its name. ok is false for any
// other file.
func LSNRange(a committer.Add) (lo, hi uint64, ok bool) {
	if lo, hi, ok := TagLSNRange(a); ok && lo <= hi {
		return lo, hi, true
	}
	if f, err := partitioner.ParseFileKey(a.Path); err == nil {
		return f.FirstLSN, f.LastLSN, true
	}
	return 0, 0, false
}

// WrittenBySink reports whether the sink (a flush or a compaction) wrote a
// file: it has the evodb.minLsn and evodb.maxLsn tags, or is named like a
// sink block or compacted file (a log rewritten by another tool may have
// dropped the tags, never the name). Another writer's files (a Spark or
// delta-rs job appending to the table) carry neither, and have no evodb
// Parquet metadata ReadFile could read them by: readers of sink files
// leave them alone.
func WrittenBySink(a committer.Add) bool {
	_, _, ok := LSNRange(a)
	return ok
}

// Level is a file's compaction level: its evodb.level tag, else the level
// in its name, else 0.
func Level(a committer.Add) int {
	if l, ok := TagLevelOf(a); ok {
		return l
	}
	if f, err := partitioner.ParseFileKey(a.Path); err == nil {
		return f.Level
	}
	return 0
}

// FormatSources renders source ranges as an evodb.sources tag:
// "topic:partition:first-last,...".
func FormatSources(rs []partitioner.SourceRange) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%s:%d:%d-%d", r.Topic, r.Partition, r.FirstOffset, r.LastOffset)
	}
	return strings.Join(parts, ",")
}

// MergeSources unions the files' evodb.sources tags into one range per
// topic-partition, sorted by topic and partition, as a compacted file's tag.
// Entries that do not parse are dropped: the tag is informational.
func MergeSources(files []committer.Add) string {
	type key struct {
		topic     string
		partition int32
	}
	ranges := map[key]partitioner.SourceRange{}
	for _, in := range files {
		for _, item := range strings.Split(Sources(in), ",") {
			r, ok := parseSource(item)
			if !ok {
				continue
			}
			k := key{r.Topic, r.Partition}
			if seen, ok := ranges[k]; ok {
				r.FirstOffset, r.LastOffset = min(r.FirstOffset, seen.FirstOffset), max(r.LastOffset, seen.LastOffset)
			}
			ranges[k] = r
		}
	}
	out := make([]partitioner.SourceRange, 0, len(ranges))
	for _, r := range ranges {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b partitioner.SourceRange) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return FormatSources(out)
}

// parseSource parses "topic:partition:first-last". Kafka topic names hold
// no colon, but the fields are taken from the right anyway.
func parseSource(s string) (partitioner.SourceRange, bool) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return partitioner.SourceRange{}, false
	}
	j := strings.LastIndexByte(s[:i], ':')
	if j <= 0 {
		return partitioner.SourceRange{}, false
	}
	p, err := strconv.ParseInt(s[j+1:i], 10, 32)
	if err != nil {
		return partitioner.SourceRange{}, false
	}
	first, last, ok := strings.Cut(s[i+1:], "-")
	if !ok {
		return partitioner.SourceRange{}, false
	}
	lo, err1 := strconv.ParseInt(first, 10, 64)
	hi, err2 := strconv.ParseInt(last, 10, 64)
	if err1 != nil || err2 != nil || lo > hi {
		return partitioner.SourceRange{}, false
	}
	return partitioner.SourceRange{Topic: s[:j], Partition: int32(p), FirstOffset: lo, LastOffset: hi}, true
}
