package compaction

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/parquetblock"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/partitioner"
	"github.com/evodb/sink/tablefile"
)

// ExecOptions configures Execute.
type ExecOptions struct {
	Mode partitioner.Mode
	// Compression of the output: "zstd" (default), "snappy" or "none".
	Compression string
	// Now stamps the output's modification time; default time.Now.
	Now func() time.Time
}

// Output describes a committed compaction.
type Output struct {
	Add      committer.Add
	Version  int64
	Snapshot *committer.Snapshot
	// BytesRead is the summed size of the inputs.
	BytesRead int64
}

// maxMetadataRetries bounds how often a commit is retried after a
// concurrent schema change.
const maxMetadataRetries = 5

// Execute runs one job against the table t (whose root is tablePath in b),
// planned from snap:
//
//  1. It reads every input fully (tablefile.ReadFile): memory is
//     about the decoded size of Job.Bytes, which PlanOptions.MaxJobBytes
//     bounds.
//  2. It unions the table's schema with the inputs' (columns missing from an
//     input are null in its rows, matched by name, never by position) and
//     orders the rows by _lsn, then topic, partition and offset.
//  3. It writes one Parquet file with row groups of about the mode's block
//     size, create-only, under partitioner.PartitionFileKey
//     (tablefile.WriteBlock).
//  4. It commits remove(inputs) and add(output), both dataChange=false, as
//     one OPTIMIZE commit, with the widened schema if the inputs' schema is
//     wider than the table's.
//
// Concurrent appends do not disturb it: the committer re-checks the removes
// at each new version and commits on top. If an input was removed meanwhile
// (another compactor won), the commit is refused with an error matching
// committer.ErrFileRemoved, the table is unchanged, and the uploaded output
// is an orphan that Vacuum deletes after the retention period. A crash
// leaves the same orphan and nothing else.
func Execute(ctx context.Context, b objstore.Bucket, t committer.Table, snap *committer.Snapshot, job Job, opts ExecOptions) (*Output, error) {
	if len(job.Inputs) < 2 {
		return nil, fmt.Errorf("compact %s: a job needs at least two inputs, has %d", t.Root(), len(job.Inputs))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	root := t.Root()
	schema, err := tablefile.TableSchema(snap)
	if err != nil {
		return nil, fmt.Errorf("compact %s: %w", root, err)
	}
	var rows []codec.Change
	var read int64
	for _, in := range job.Inputs {
		s, changes, err := tablefile.ReadFile(ctx, b, root, in.Path)
		if err != nil {
			return nil, fmt.Errorf("compact %s: %w", root, err)
		}
		if err := schema.Merge(s); err != nil {
			return nil, fmt.Errorf("compact %s: merge schema of %s: %w", root, in.Path, err)
		}
		rows = append(rows, changes...)
		read += in.Size
	}
	slices.SortStableFunc(rows, func(a, b codec.Change) int {
		return cmp.Or(
			cmp.Compare(a.LSN, b.LSN),
			cmp.Compare(a.Topic, b.Topic),
			cmp.Compare(a.Partition, b.Partition),
			cmp.Compare(a.Offset, b.Offset),
		)
	})
	paths := job.Paths()
	ids := snap.Metadata.FieldIDsFor(schema)
	w, err := tablefile.WriteBlock(ctx, b, root, tablefile.Block{
		Schema:  schema,
		Changes: rows,
		Encode: parquetblock.EncodeOptions{
			Compression:   opts.Compression,
			RowGroupBytes: opts.Mode.BlockSize,
			KafkaColumns:  schema.KafkaColumns(),
			FieldIDs:      ids,
		},
		// A crashed or concurrent compaction of the same inputs may have
		// left an object under the name: a fresh inputs hash names the
		// output instead.
		Name: func(stats codec.BlockStats, attempt int) string {
			keys := paths
			if attempt > 0 {
				var nonce [8]byte
				_, _ = rand.Read(nonce[:]) // crypto/rand.Read never returns an error.
				keys = append(slices.Clone(paths), hex.EncodeToString(nonce[:]))
			}
			return partitioner.PartitionFileKey(stats.MinLSN, stats.MaxLSN, job.Level, partitioner.InputsHash(keys))
		},
		Level:      job.Level,
		Sources:    tablefile.MergeSources(job.Inputs),
		DataChange: false,
		ModTime:    opts.Now(),
	})
	if err != nil {
		return nil, fmt.Errorf("compact %s: %w", root, err)
	}
	add, rel := w.Add, w.Add.Path
	removes := make([]committer.Remove, len(job.Inputs))
	for i, in := range job.Inputs {
		removes[i] = committer.Remove{Path: in.Path, DataChange: false, Size: in.Size, PartitionValues: in.PartitionValues}
	}
	for attempt := 1; ; attempt++ {
		c := committer.Commit{
			Operation:   committer.OpOptimize,
			Removes:     removes,
			Adds:        []committer.Add{add},
			ReadVersion: snap.Version,
			FieldIDs:    ids,
			Info: map[string]string{
				"inputs": strconv.Itoa(len(job.Inputs)),
				"level":  strconv.Itoa(job.Level),
			},
		}
		md, err := tablefile.WidenedMetadata(snap, schema)
		if err != nil {
			return nil, fmt.Errorf("compact %s: %w", root, err)
		}
		c.Metadata = md
		res, err := t.Commit(ctx, c)
		if err == nil {
			return &Output{Add: add, Version: res.Version, Snapshot: res.Snapshot, BytesRead: read}, nil
		}
		if !errors.Is(err, committer.ErrMetadataChanged) || attempt >= maxMetadataRetries {
			return nil, fmt.Errorf("compact %s into %s: %w", root, rel, err)
		}
		// Another writer widened the schema after our snapshot: fold its
		// schema into ours and commit again. The output file itself stays
		// valid: columns it lacks read as null.
		if snap, err = t.Update(ctx, snap); err != nil {
			return nil, fmt.Errorf("compact %s into %s: %w", root, rel, err)
		}
	}
}

// joinKey joins a table root and a path relative to it.
func joinKey(root, rel string) string {
	if root == "" {
		return rel
	}
	return root + "/" + rel
}
