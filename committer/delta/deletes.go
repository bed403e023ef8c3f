package delta

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"maps"

	"github.com/RoaringBitmap/roaring/v2/roaring64"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

// deletionVectors computes the deletion vector each file c.Deletes names
// gets when c commits on top of s: the rows s already has deleted from the
// file (none for a file c adds), with c's rows added. It puts them, in one
// new deletion vector file, before the log entry that names them, and
// returns them by path; a file whose rows were all deleted already gets
// none. Each commit attempt computes them again from the snapshot it
// builds on, since a concurrent commit may have deleted rows of the same
// files, and writes a file of its own: a file an attempt that did not land
// wrote is an orphan, which vacuum deletes.
func (t *Table) deletionVectors(ctx context.Context, c *committer.Commit, s *committer.Snapshot) (map[string]DeletionVector, error) {
	if len(c.Deletes) == 0 {
		return nil, nil
	}
	added := make(map[string]committer.Add, len(c.Adds))
	for _, a := range c.Adds {
		added[a.Path] = a
	}
	type vector struct {
		path string
		bm   *roaring64.Bitmap
	}
	var vectors []vector
	for _, d := range c.Deletes {
		base, isNew := added[d.Path]
		if !isNew {
			var ok bool
			if base, ok = s.Files[d.Path]; !ok {
				return nil, &committer.FileRemovedError{Path: d.Path, TableVersion: s.Version}
			}
		}
		if base.Stats == nil {
			return nil, fmt.Errorf("delete rows of %s: the file's row count is unknown (its add has no numRecords stats), which a deletion vector needs", d.Path)
		}
		bm := roaring64.New()
		if base.Deleted != nil {
			dv, ok := base.Deleted.Sys.(DeletionVector)
			if !ok {
				return nil, fmt.Errorf("delete rows of %s: its deleted rows were not read from a Delta log", d.Path)
			}
			var err error
			if bm, err = readDV(ctx, t.bucket, t.root, dv); err != nil {
				return nil, fmt.Errorf("delete rows of %s at table version %d: %w", d.Path, s.Version, err)
			}
		}
		before := bm.GetCardinality()
		for _, r := range d.Rows {
			if r < 0 || r >= base.Stats.Rows {
				return nil, fmt.Errorf("delete row %d of %s: the file has %d rows (0 to %d)", r, d.Path, base.Stats.Rows, base.Stats.Rows-1)
			}
			bm.Add(uint64(r))
		}
		if bm.GetCardinality() == before {
			continue
		}
		vectors = append(vectors, vector{path: d.Path, bm: bm})
	}
	if len(vectors) == 0 {
		return nil, nil
	}
	var uuid [16]byte
	_, _ = rand.Read(uuid[:]) // crypto/rand.Read never returns an error.
	uuid[6] = uuid[6]&0x0f | 0x40
	uuid[8] = uuid[8]&0x3f | 0x80
	name := z85Encode(uuid[:])
	var f dvFile
	out := make(map[string]DeletionVector, len(vectors))
	for _, v := range vectors {
		data, err := encodeBitmap(v.bm)
		if err != nil {
			return nil, fmt.Errorf("delete rows of %s: %w", v.path, err)
		}
		off := f.add(data)
		out[v.path] = DeletionVector{StorageType: dvUUID, PathOrInlineDv: name, Offset: &off, SizeInBytes: int32(len(data)), Cardinality: int64(v.bm.GetCardinality())}
	}
	rel, err := DeletionVector{StorageType: dvUUID, PathOrInlineDv: name}.relPath(t.root)
	if err != nil {
		return nil, err
	}
	key := t.root + rel
	body := f.buf.Bytes()
	if _, err := t.bucket.Put(ctx, key, bytes.NewReader(body), int64(len(body)), objstore.PutOptions{IfNoneMatch: true}); err != nil {
		return nil, &dvPutError{key: key, err: err}
	}
	return out, nil
}

// dvPutError is a failed put of a deletion vector file. The commit attempt
// has not been put, so the commit retries it with another file.
type dvPutError struct {
	key string
	err error
}

func (e *dvPutError) Error() string {
	return fmt.Sprintf("put deletion vector file %s: %v", e.key, e.err)
}
func (e *dvPutError) Unwrap() error { return e.err }

// deletionEntries adds to e the actions that give the files of dvs their
// new deletion vectors, on top of s: a file e adds gets its vector on its
// add; a file the table keeps is removed with its old vector and added
// again, unchanged but for the new vector, as Delta changes a file's
// vector.
func (t *Table) deletionEntries(e *logEntry, c *committer.Commit, s *committer.Snapshot, dvs map[string]DeletionVector, now int64) {
	if len(dvs) == 0 {
		return
	}
	for i, a := range e.adds {
		if dv, ok := dvs[a.Path]; ok {
			e.adds[i] = t.withVector(a, dv)
		}
	}
	added := make(map[string]bool, len(c.Adds))
	for _, a := range c.Adds {
		added[a.Path] = true
	}
	for _, d := range c.Deletes {
		dv, ok := dvs[d.Path]
		if !ok || added[d.Path] {
			continue
		}
		// One entry per path: Validate refuses a path deleted twice.
		old := s.Files[d.Path]
		e.removes = append(e.removes, committer.Remove{
			Path:              old.Path,
			DeletionTimestamp: now,
			DataChange:        true,
			Size:              old.Size,
			PartitionValues:   maps.Clone(old.PartitionValues),
			Deleted:           old.Deleted,
		})
		a := t.withVector(old, dv)
		a.DataChange = true
		e.adds = append(e.adds, a)
	}
}

// withVector returns a with the deletion vector dv, and its stats as the
// log then records them (looseBounds), so that the snapshot holds the add
// as a reader of the log reads it.
func (t *Table) withVector(a committer.Add, dv DeletionVector) committer.Add {
	a.Deleted = dv.deleted(t.root)
	if stats, ok := a.Sys.(RawStats); ok {
		a.Sys = looseBounds(stats)
	}
	return a
}
