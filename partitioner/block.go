package partitioner

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Key layout inside a table root. Data file keys are relative to the table
// root, exactly as a Delta log's add.path.
const (
	dataDir       = "data/"
	dataExt       = ".parquet"
	lsnDigits     = 20 // digits of the largest uint64, 18446744073709551615
	hashHexDigits = 16 // 64 bits of SHA-256
)

// SourceRange is the span of Kafka offsets of one topic-partition that a
// block holds. Offsets within the span that belong to other tables are not
// in the block; the range still identifies it.
type SourceRange struct {
	Topic       string
	Partition   int32
	FirstOffset int64
	LastOffset  int64
}

// BlockID identifies the block one flush writes: its LSN range and the
// source offsets it came from. Its String form sorts by first LSN, so a
// table's data files list in LSN order, and is derived only from these
// coordinates, so a retry of the same flush reuses the same name.
type BlockID struct {
	FirstLSN uint64
	LastLSN  uint64
	// Sources are the topic-partition offset ranges of the block's records,
	// in any order.
	Sources []SourceRange
	// Hash is the short digest of Sources. ParseBlockID fills it, because a
	// name keeps the digest, not the ranges. When Sources is non-empty, String
	// computes the digest from Sources and ignores Hash.
	Hash string
}

// SourcesHash returns the 16-hex-digit digest of the sources, independent of
// their order. It is Hash when the id was parsed from a name.
func (id BlockID) SourcesHash() string {
	if len(id.Sources) == 0 && id.Hash != "" {
		return id.Hash
	}
	return hashSources(id.Sources)
}

// String returns the block's name: "<first LSN>-<last LSN>-<sources hash>",
// LSNs as 20-digit zero-padded decimals so that lexical order is LSN order.
func (id BlockID) String() string {
	return formatLSN(id.FirstLSN) + "-" + formatLSN(id.LastLSN) + "-" + id.SourcesHash()
}

// Validate reports whether the id describes a real block: an ordered LSN
// range and well-formed source ranges.
func (id BlockID) Validate() error {
	if id.FirstLSN > id.LastLSN {
		return fmt.Errorf("block id: first LSN %d after last LSN %d", id.FirstLSN, id.LastLSN)
	}
	for _, s := range id.Sources {
		if s.Topic == "" {
			return fmt.Errorf("block id: source range with empty topic")
		}
		if s.Partition < 0 || s.FirstOffset < 0 || s.FirstOffset > s.LastOffset {
			return fmt.Errorf("block id: bad source range %s/%d offsets %d..%d", s.Topic, s.Partition, s.FirstOffset, s.LastOffset)
		}
	}
	if len(id.Sources) == 0 && id.Hash != "" && !isHash(id.Hash) {
		return fmt.Errorf("block id: hash %q is not %d lowercase hex digits", id.Hash, hashHexDigits)
	}
	return nil
}

// ParseBlockID parses a name made by BlockID.String. The result carries the
// LSN range and Hash; the source ranges themselves are not recoverable.
func ParseBlockID(s string) (BlockID, error) {
	f, err := parseName(s)
	if err != nil {
		return BlockID{}, fmt.Errorf("parse block id %q: %w", s, err)
	}
	if f.Level != 0 {
		return BlockID{}, fmt.Errorf("parse block id %q: names a level-%d compacted file", s, f.Level)
	}
	return BlockID{FirstLSN: f.FirstLSN, LastLSN: f.LastLSN, Hash: f.Hash}, nil
}

// DataFileKey returns the key of a block's file relative to the table root:
// "data/<id>.parquet".
func DataFileKey(id BlockID) string {
	return dataDir + id.String() + dataExt
}

// PartitionFileKey returns the key of a compacted file relative to the table
// root: "data/<first LSN>-<last LSN>-L<level>-<inputs hash>.parquet". It
// sorts among blocks by LSN like them. inputsHash should come from
// InputsHash, so a retried compaction of the same inputs reuses the name; any
// other string is digested to the same 16 hex digits, so the key always
// parses. A level below 1 is recorded as 1: level 0 is reserved for blocks.
func PartitionFileKey(firstLSN, lastLSN uint64, level int, inputsHash string) string {
	if !isHash(inputsHash) {
		sum := sha256.Sum256([]byte(inputsHash))
		inputsHash = hex.EncodeToString(sum[:])[:hashHexDigits]
	}
	level = max(level, 1)
	return dataDir + formatLSN(firstLSN) + "-" + formatLSN(lastLSN) + "-L" + strconv.Itoa(level) + "-" + inputsHash + dataExt
}

// InputsHash digests the keys of a compaction's input files, independent of
// their order.
func InputsHash(keys []string) string {
	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	h := sha256.New()
	var n [8]byte
	for _, k := range sorted {
		binary.BigEndian.PutUint64(n[:], uint64(len(k)))
		h.Write(n[:])
		h.Write([]byte(k))
	}
	return hex.EncodeToString(h.Sum(nil))[:hashHexDigits]
}

// FileName is what a data file key says about the file.
type FileName struct {
	FirstLSN uint64
	LastLSN  uint64
	// Level is 0 for a block written by a flush and the compaction level for
	// a compacted file.
	Level int
	// Hash is the sources hash of a block or the inputs hash of a compacted
	// file.
	Hash string
}

// ParseFileKey parses a key made by DataFileKey or PartitionFileKey.
func ParseFileKey(key string) (FileName, error) {
	name, ok := strings.CutPrefix(key, dataDir)
	if !ok {
		return FileName{}, fmt.Errorf("parse data file key %q: not under %s", key, dataDir)
	}
	name, ok = strings.CutSuffix(name, dataExt)
	if !ok {
		return FileName{}, fmt.Errorf("parse data file key %q: no %s suffix", key, dataExt)
	}
	f, err := parseName(name)
	if err != nil {
		return FileName{}, fmt.Errorf("parse data file key %q: %w", key, err)
	}
	return f, nil
}

// parseName parses "<first>-<last>-<hash>" (a block) or
// "<first>-<last>-L<level>-<hash>" (a compacted file).
func parseName(s string) (FileName, error) {
	fields := strings.Split(s, "-")
	var f FileName
	switch len(fields) {
	case 3:
	case 4:
		lv, ok := strings.CutPrefix(fields[2], "L")
		if !ok {
			return FileName{}, fmt.Errorf("level %q does not start with L", fields[2])
		}
		level, err := strconv.Atoi(lv)
		if err != nil || level < 1 || strconv.Itoa(level) != lv {
			return FileName{}, fmt.Errorf("bad level %q", fields[2])
		}
		f.Level = level
	default:
		return FileName{}, fmt.Errorf("want 3 or 4 dash-separated fields, got %d", len(fields))
	}
	var err error
	if f.FirstLSN, err = parseLSN(fields[0]); err != nil {
		return FileName{}, fmt.Errorf("first LSN: %w", err)
	}
	if f.LastLSN, err = parseLSN(fields[1]); err != nil {
		return FileName{}, fmt.Errorf("last LSN: %w", err)
	}
	if f.FirstLSN > f.LastLSN {
		return FileName{}, fmt.Errorf("first LSN %d after last LSN %d", f.FirstLSN, f.LastLSN)
	}
	f.Hash = fields[len(fields)-1]
	if !isHash(f.Hash) {
		return FileName{}, fmt.Errorf("hash %q is not %d lowercase hex digits", f.Hash, hashHexDigits)
	}
	return f, nil
}

func formatLSN(lsn uint64) string {
	s := strconv.FormatUint(lsn, 10)
	return strings.Repeat("0", lsnDigits-len(s)) + s
}

func parseLSN(s string) (uint64, error) {
	if len(s) != lsnDigits {
		return 0, fmt.Errorf("%q is not %d digits", s, lsnDigits)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not decimal", s)
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	return v, nil
}

func isHash(s string) bool {
	if len(s) != hashHexDigits {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// hashSources digests source ranges in a canonical order with
// length-prefixed fields, so no two different sets share an encoding.
func hashSources(sources []SourceRange) string {
	sorted := slices.Clone(sources)
	slices.SortFunc(sorted, func(a, b SourceRange) int {
		return cmp.Or(
			cmp.Compare(a.Topic, b.Topic),
			cmp.Compare(a.Partition, b.Partition),
			cmp.Compare(a.FirstOffset, b.FirstOffset),
			cmp.Compare(a.LastOffset, b.LastOffset),
		)
	})
	h := sha256.New()
	var buf [8]byte
	for _, s := range sorted {
		binary.BigEndian.PutUint64(buf[:], uint64(len(s.Topic)))
		h.Write(buf[:])
		h.Write([]byte(s.Topic))
		binary.BigEndian.PutUint32(buf[:4], uint32(s.Partition))
		h.Write(buf[:4])
		binary.BigEndian.PutUint64(buf[:], uint64(s.FirstOffset))
		h.Write(buf[:])
		binary.BigEndian.PutUint64(buf[:], uint64(s.LastOffset))
		h.Write(buf[:])
	}
	return hex.EncodeToString(h.Sum(nil))[:hashHexDigits]
}
