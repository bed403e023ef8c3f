package mirror

import (
	"bytes"
	"cmp"
	"math/bits"
	"slices"

	"github.com/evodb/sink/codec"
)

// fileIndex is the maintainer's memory of one mirror data file: its keys,
// sorted, each with the order of its row, whether the row is a DELETE, and
// the row's position in the file. A data file never changes once written,
// so an index is valid for as long as the file is in the mirror, whatever
// its deletion vector says.
//
// It takes about 24 bytes per row plus the key's encoding: keys are
// concatenated in one slice (ends holds where each ends), the order in
// three columns, DELETE flags in a bitmap, and positions only for a file
// not written in key order (pos nil: row i is at position i).
type fileIndex struct {
	path string
	keys []byte
	ends []uint32
	lsn  []uint64
	part []int32
	off  []int64
	del  []uint64
	pos  []int32
}

// entry is one key's row in a file.
type entry struct {
	path   string
	pos    int64
	order  order
	delete bool
}

func (f *fileIndex) len() int { return len(f.ends) }

func (f *fileIndex) key(i int) []byte {
	start := uint32(0)
	if i > 0 {
		start = f.ends[i-1]
	}
	return f.keys[start:f.ends[i]]
}

func (f *fileIndex) entry(i int) entry {
	e := entry{path: f.path, pos: int64(i), order: order{lsn: f.lsn[i], partition: f.part[i], offset: f.off[i]}, delete: f.del[i/64]&(1<<(i%64)) != 0}
	if f.pos != nil {
		e.pos = int64(f.pos[i])
	}
	return e
}

// find returns the entry of key k, if the file holds k.
func (f *fileIndex) find(k []byte) (entry, bool) {
	n := f.len()
	if n == 0 || bytes.Compare(k, f.key(0)) < 0 || bytes.Compare(k, f.key(n-1)) > 0 {
		return entry{}, false
	}
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bytes.Compare(f.key(m), k) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < n && bytes.Equal(f.key(lo), k) {
		return f.entry(lo), true
	}
	return entry{}, false
}

// tombstones returns how many of the file's rows are DELETE rows.
func (f *fileIndex) tombstones() int {
	n := 0
	for _, w := range f.del {
		n += bits.OnesCount64(w)
	}
	return n
}

// bytes returns the memory the index holds, for the maintainer's gauge.
func (f *fileIndex) bytes() int64 {
	return int64(cap(f.keys) + 4*cap(f.ends) + 8*cap(f.lsn) + 4*cap(f.part) + 8*cap(f.off) + 8*cap(f.del) + 4*cap(f.pos))
}

// keyedRow is a row with its key encoding and its position in its file.
type keyedRow struct {
	key []byte
	ch  *codec.Change
	pos int
}

// newFileIndex indexes the rows of the file at path. rows must be sorted
// by key and hold each key once, except that a file another writer left
// unsorted or with a key twice is indexed too: positions are kept, and of
// a key's rows the one with the greatest order counts (the others are
// superseded, which deletion vectors must already hide).
func newFileIndex(path string, rows []keyedRow) *fileIndex {
	sorted := slices.IsSortedFunc(rows, func(a, b keyedRow) int { return bytes.Compare(a.key, b.key) })
	if !sorted {
		rows = slices.Clone(rows)
		slices.SortStableFunc(rows, func(a, b keyedRow) int {
			return cmp.Or(bytes.Compare(a.key, b.key), orderOf(a.ch).compare(orderOf(b.ch)))
		})
	}
	// Of equal keys (now adjacent), keep the last, the greatest order.
	uniq := rows[:0:0]
	for i, r := range rows {
		if i+1 < len(rows) && bytes.Equal(rows[i+1].key, r.key) {
			sorted = false
			continue
		}
		uniq = append(uniq, r)
	}
	n := len(uniq)
	size := 0
	for _, r := range uniq {
		size += len(r.key)
	}
	f := &fileIndex{
		path: path,
		keys: make([]byte, 0, size),
		ends: make([]uint32, n),
		lsn:  make([]uint64, n),
		part: make([]int32, n),
		off:  make([]int64, n),
		del:  make([]uint64, (n+63)/64),
	}
	if !sorted {
		f.pos = make([]int32, n)
	}
	for i, r := range uniq {
		f.keys = append(f.keys, r.key...)
		f.ends[i] = uint32(len(f.keys))
		f.lsn[i], f.part[i], f.off[i] = r.ch.LSN, r.ch.Partition, r.ch.Offset
		if r.ch.Op == codec.OpDelete {
			f.del[i/64] |= 1 << (i % 64)
		}
		if f.pos != nil {
			f.pos[i] = int32(r.pos)
		}
	}
	return f
}
