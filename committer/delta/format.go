package delta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"strconv"
	"strings"
	"time"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

var (
	_ committer.Format     = (*Format)(nil)
	_ committer.Table      = (*Table)(nil)
	_ committer.Maintainer = (*Table)(nil)
	_ committer.RowDeleter = (*Table)(nil)

	_ committer.CreateCommitter = (*Table)(nil)
)

// Format is the Delta Lake table format over one bucket: a table is the
// log under <root>/_delta_log/.
type Format struct {
	bucket objstore.Bucket
	opts   Options
}

// NewFormat returns the Delta format over b. opts apply to every table it
// opens; the Options given to Open override Instance, Now and Logger, and
// set DeleteRows.
func NewFormat(b objstore.Bucket, opts Options) *Format {
	return &Format{bucket: b, opts: opts}
}

// Open returns the table under root; see Open.
func (f *Format) Open(root string, o committer.Options) committer.Table {
	opts := f.opts
	if o.Instance != "" {
		opts.Instance = o.Instance
	}
	if o.Now != nil {
		opts.Now = o.Now
	}
	if o.Logger != nil {
		opts.Logger = o.Logger
	}
	opts.DeleteRows = o.DeleteRows
	return Open(f.bucket, root, opts)
}

// ListTables returns the roots of the tables in the bucket; see
// ListTables.
func (f *Format) ListTables(ctx context.Context) ([]string, error) {
	return ListTables(ctx, f.bucket)
}

// Marker returns FirstCommit: version 0, which every table has and log
// cleanup never deletes.
func (f *Format) Marker() string { return FirstCommit }

// Removed returns the tombstone of path in s: see Tombstone.
func (t *Table) Removed(s *committer.Snapshot, path string) (committer.Remove, bool) {
	if !ours(s) {
		return committer.Remove{}, false
	}
	return Tombstone(s, path)
}

// Removals yields every tombstone s keeps: a path once per deletion
// vector it was removed with (see Tombstones). Vacuum keeps the deletion
// vector files they name for readers of older versions.
func (t *Table) Removals(s *committer.Snapshot) (iter.Seq[committer.Remove], bool) {
	if !ours(s) {
		return nil, false
	}
	return func(yield func(committer.Remove) bool) {
		for _, r := range Tombstones(s) {
			if !yield(r) {
				return
			}
		}
	}, true
}

// ExpireHistory deletes the table's JSON commits and checkpoints that lie
// before its latest checkpoint (the one _last_checkpoint names, which must
// exist) and were written more than retention before now. The latest
// checkpoint and everything after it are kept, so every reader still
// loads the latest version; so is version 0, by which tools find tables.
// Time travel to a deleted version is no longer possible, as with Delta's
// own log cleanup. Result.Oldest is that checkpoint's version, -1 when the
// table has none (and nothing is deleted).
//
// Writers put the next version without reading the log first, which is
// safe only because no cleanup deletes a version written less than
// MinLogRetention ago (the Table doc has the proof): ExpireHistory refuses
// a shorter retention, and judges age by the store's LastModified.
func (t *Table) ExpireHistory(ctx context.Context, retention time.Duration, dryRun bool, now time.Time) (committer.ExpireResult, error) {
	res := committer.ExpireResult{Oldest: -1, DryRun: dryRun, Entries: "log entries", OldestName: "checkpoint"}
	if retention < MinLogRetention {
		return res, fmt.Errorf("vacuum log of %s: retention %s is under the 1h minimum, which writers rely on", t.Root(), retention)
	}
	logDir := t.logKey("")
	cp, err := t.lastCheckpointVersion(ctx)
	if err != nil || cp < 0 {
		return res, err
	}
	// Only trust a checkpoint that is really there.
	info, err := t.bucket.Head(ctx, t.logKey(checkpointName(cp)))
	if errors.Is(err, objstore.ErrNotExist) || (err == nil && info.Size == 0) {
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("vacuum log of %s: %w", t.Root(), err)
	}
	res.Oldest = cp
	cutoff := now.Add(-retention)
	var doomed []string
	err = t.bucket.List(ctx, logDir, func(o objstore.ObjectInfo) error {
		name := strings.TrimPrefix(o.Key, logDir)
		v, ok := logVersion(name)
		if !ok || v == 0 || v >= cp || o.LastModified.After(cutoff) {
			return nil
		}
		doomed = append(doomed, o.Key)
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("vacuum log of %s: list: %w", t.Root(), err)
	}
	for _, k := range doomed {
		if !dryRun {
			if err := t.bucket.Delete(ctx, k); err != nil {
				return res, fmt.Errorf("vacuum log of %s: delete %s: %w", t.Root(), k, err)
			}
		}
		res.Deleted = append(res.Deleted, strings.TrimPrefix(k, t.root))
	}
	return res, nil
}

// logVersion parses "<20 digits>.json" and "<20 digits>.checkpoint.parquet".
func logVersion(name string) (int64, bool) {
	digits, ok := strings.CutSuffix(name, ".json")
	if !ok {
		digits, ok = strings.CutSuffix(name, ".checkpoint.parquet")
	}
	if !ok || len(digits) != 20 {
		return 0, false
	}
	v, err := strconv.ParseInt(digits, 10, 64)
	return v, err == nil
}

// lastCheckpointVersion reads the version _last_checkpoint names, or -1;
// unlike readLastCheckpoint it reports store errors, so that log cleanup
// never mistakes a failed read for a table without checkpoints.
func (t *Table) lastCheckpointVersion(ctx context.Context) (int64, error) {
	key := t.logKey("_last_checkpoint")
	rc, err := t.bucket.Get(ctx, key)
	if errors.Is(err, objstore.ErrNotExist) {
		return -1, nil
	}
	if err != nil {
		return -1, fmt.Errorf("read %s: %w", key, err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return -1, fmt.Errorf("read %s: %w", key, err)
	}
	var lc struct {
		Version *int64 `json:"version"`
	}
	if json.Unmarshal(data, &lc) != nil || lc.Version == nil || *lc.Version < 0 {
		return -1, nil
	}
	return *lc.Version, nil
}
