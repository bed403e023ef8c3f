package delta

import (
	"iter"
	"maps"

	"github.com/evodb/sink/committer"
)

// tombstoneShards is how many shards a tombstoneSet splits its files into.
// A change copies one shard, so at 100,000 tombstones a commit that removes
// one file copies about 400 entries instead of 100,000.
const tombstoneShards = 256

// tombstoneSet holds the removed files a snapshot keeps for vacuum and for
// checkpoints, by their logical identity (tombKey): the path, and the
// deletion vector the file had when it was removed. A file whose deletion
// vector changed was removed with its old vector and added with the new one
// in one commit, so it is active and has a tombstone at once; the tombstone
// keeps the old vector's file for readers of older versions. It is copy-on-write, so that a commit does not copy
// every tombstone the table has: share returns a set that uses the same
// shards, and the first change to a shard copies that shard (and, once, the
// array of shards). The zero value is an empty set.
//
// The shortcut relies on this invariant: a set is changed only through the
// snapshot that owns it, and a snapshot is never changed once it has been
// returned to a caller or shared (Snapshot's immutability). A set may
// change in place the shards that owned marks; every other shard may be
// shared with other snapshots. TestTombstonesAreCopiedOnWrite changes a
// clone and checks its source is untouched, which breaks if the set ever
// writes to a shard it does not own.
type tombstoneSet struct {
	shards *[tombstoneShards]map[string]committer.Remove
	// owned marks the shards this set created or copied; nil means none,
	// and that the array of shards is shared too.
	owned *[tombstoneShards]bool
	n     int
	// oldest is at most the smallest DeletionTimestamp in the set, so that
	// expiry can skip the scan when nothing can have expired.
	oldest int64
}

// share returns a set with the same contents that copies whatever it
// changes. After share, neither set may change the shards they share,
// which holds because the source belongs to a snapshot that is no longer
// changed.
func (ts tombstoneSet) share() tombstoneSet {
	ts.owned = nil
	return ts
}

// shardOf returns the shard of path (FNV-1a).
func shardOf(path string) int {
	h := uint32(2166136261)
	for i := 0; i < len(path); i++ {
		h ^= uint32(path[i])
		h *= 16777619
	}
	return int(h % tombstoneShards)
}

// tombKey is the key of a file's removal in a tombstoneSet: its path, and
// the identity of the deletion vector it was removed with, if any. A
// path holds no NUL byte, so keys of distinct identities differ.
func tombKey(path string, d *committer.DeletedRows) string {
	if d == nil {
		return path
	}
	if dv, ok := d.Sys.(DeletionVector); ok {
		return path + "\x00" + dv.id()
	}
	return path
}

// get returns the latest removal of path, with whichever deletion vector
// (the one with the greatest deletion timestamp).
func (ts *tombstoneSet) get(path string) (committer.Remove, bool) {
	if ts.shards == nil {
		return committer.Remove{}, false
	}
	m := ts.shards[shardOf(path)]
	r, ok := m[path]
	// Removals with a deletion vector are keyed by path and vector; they
	// share path's shard, so only that shard is searched.
	for k, c := range m {
		if c.Path == path && k != path && (!ok || c.DeletionTimestamp > r.DeletionTimestamp) {
			r, ok = c, true
		}
	}
	return r, ok
}

// ownArray makes the array of shards this set's own, copying it if shared.
func (ts *tombstoneSet) ownArray() {
	if ts.owned != nil {
		return
	}
	ts.owned = new([tombstoneShards]bool)
	if ts.shards == nil {
		ts.shards = new([tombstoneShards]map[string]committer.Remove)
	} else {
		shards := *ts.shards
		ts.shards = &shards
	}
}

// writable returns shard i, copied first unless this set owns it.
func (ts *tombstoneSet) writable(i int) map[string]committer.Remove {
	ts.ownArray()
	if !ts.owned[i] {
		m := maps.Clone(ts.shards[i])
		if m == nil {
			m = map[string]committer.Remove{}
		}
		ts.shards[i] = m
		ts.owned[i] = true
	}
	return ts.shards[i]
}

func (ts *tombstoneSet) put(r committer.Remove) {
	m := ts.writable(shardOf(r.Path))
	k := tombKey(r.Path, r.Deleted)
	if _, ok := m[k]; !ok {
		ts.n++
	}
	m[k] = r
	if ts.n == 1 || r.DeletionTimestamp < ts.oldest {
		ts.oldest = r.DeletionTimestamp
	}
}

// remove drops the removal of path with the deletion vector d (nil for
// none): the file was added again with it, as Delta's reconciliation by
// (path, deletion vector) requires. Removals of path with other vectors
// stay: their vectors' files are still read by older versions.
func (ts *tombstoneSet) remove(path string, d *committer.DeletedRows) {
	if ts.shards == nil {
		return
	}
	k := tombKey(path, d)
	if _, ok := ts.shards[shardOf(path)][k]; !ok {
		return
	}
	delete(ts.writable(shardOf(path)), k)
	ts.n--
}

// expire drops the tombstones deleted before cutoff (Unix milliseconds).
// It scans the set only when the oldest tombstone is more than slack past
// the cutoff, so a table removing files steadily pays one scan per slack,
// and a tombstone outlives its retention by at most slack.
func (ts *tombstoneSet) expire(cutoff, slack int64) {
	if ts.n == 0 || ts.oldest >= cutoff-slack {
		return
	}
	oldest := int64(0)
	first := true
	for i := range tombstoneShards {
		expired := false
		for _, r := range ts.shards[i] {
			if r.DeletionTimestamp < cutoff {
				expired = true
				continue
			}
			if first || r.DeletionTimestamp < oldest {
				oldest, first = r.DeletionTimestamp, false
			}
		}
		if !expired {
			continue
		}
		// A new map rather than deletes: a Go map never shrinks, so the
		// memory of expired tombstones is only freed with their map.
		kept := map[string]committer.Remove{}
		for k, r := range ts.shards[i] {
			if r.DeletionTimestamp >= cutoff {
				kept[k] = r
			}
		}
		ts.n -= len(ts.shards[i]) - len(kept)
		ts.ownArray()
		ts.shards[i] = kept
		ts.owned[i] = true
	}
	ts.oldest = oldest
}

func (ts *tombstoneSet) all() iter.Seq2[string, committer.Remove] {
	return func(yield func(string, committer.Remove) bool) {
		if ts.shards == nil {
			return
		}
		for _, m := range ts.shards {
			for _, r := range m {
				if !yield(r.Path, r) {
					return
				}
			}
		}
	}
}
