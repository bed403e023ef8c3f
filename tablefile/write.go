package tablefile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/parquetblock"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

// maxRenames bounds how often WriteBlock names a file afresh after its name
// was taken.
const maxRenames = 3

// Block is a data file to write: rows in the order the file keeps them
// (LSN order, so readers skip by _lsn and compaction merges sorted runs),
// and what its add action says of them.
type Block struct {
	Schema *codec.Schema
	// Rows or Changes holds the rows; Rows when set.
	Rows    *codec.Rows
	Changes []codec.Change
	// Encode sets compression, row-group size and the Kafka columns.
	Encode parquetblock.EncodeOptions
	// Name returns the file's path relative to the table, from the block's
	// stats. A name already taken in the store is never overwritten: Name
	// is then called again with the number of names tried so far and must
	// return a fresh one.
	Name func(stats codec.BlockStats, attempt int) string
	// Level is the compaction level (0 for a flush), Sources the
	// evodb.sources tag, DataChange the add action's dataChange (false for
	// a rewrite of rows the table already holds), ModTime its
	// modificationTime (default: now).
	Level      int
	Sources    string
	DataChange bool
	ModTime    time.Time
}

// ErrEncode marks a block that could not be encoded: the rows or the
// schema are at fault, not the store, so running the write again cannot
// help.
var ErrEncode = errors.New("encode block")

// Written is a data file WriteBlock wrote: its add action and the stats of
// its rows.
type Written struct {
	Add   committer.Add
	Stats codec.BlockStats
}

// WriteBlock encodes a block as a Parquet data file, writes it create-only
// under the table at root, and returns the add action that names it, with
// its stats and evodb tags. Nothing exists for readers until a commit
// names the file; a crash or a refused commit leaves an orphan that vacuum
// deletes.
//
// If an object already holds the name (an earlier attempt of ours, a
// zombie's or a concurrent compaction of the same inputs), its contents
// cannot be vouched for and it may or may not be committed: the file is
// written under a fresh name instead, at most maxRenames times.
func WriteBlock(ctx context.Context, b objstore.Bucket, root string, blk Block) (Written, error) {
	var buf bytes.Buffer
	var stats codec.BlockStats
	var err error
	if blk.Rows != nil {
		stats, err = parquetblock.EncodeRows(&buf, blk.Schema, blk.Rows, blk.Encode)
	} else {
		stats, err = parquetblock.EncodeBlock(&buf, blk.Schema, blk.Changes, blk.Encode)
	}
	if err != nil {
		return Written{}, fmt.Errorf("%w: %w", ErrEncode, err)
	}
	if blk.ModTime.IsZero() {
		blk.ModTime = time.Now()
	}
	data := buf.Bytes()
	attempt := 0
	rel := blk.Name(stats, attempt)
	upload := func() error {
		for {
			_, err := b.Put(ctx, Key(root, rel), bytes.NewReader(data), int64(len(data)), objstore.PutOptions{IfNoneMatch: true})
			if !errors.Is(err, objstore.ErrPreconditionFailed) || attempt >= maxRenames {
				return err
			}
			attempt++
			rel = blk.Name(stats, attempt)
		}
	}
	// One try: the bucket retries its own transient errors, and the
	// caller decides whether the whole operation runs again.
	if err := upload(); err != nil {
		return Written{}, fmt.Errorf("upload block %s: %w", Key(root, rel), err)
	}
	return Written{
		Add: committer.Add{
			Path:             rel,
			Size:             int64(len(data)),
			ModificationTime: blk.ModTime.UnixMilli(),
			DataChange:       blk.DataChange,
			Stats:            &stats,
			Tags: Tags{
				MinLSN:  stats.MinLSN,
				MaxLSN:  stats.MaxLSN,
				Sources: blk.Sources,
				Level:   blk.Level,
				Rows:    stats.Rows,
			}.Map(),
		},
		Stats: stats,
	}, nil
}
