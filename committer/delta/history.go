package delta

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

var _ committer.History = (*Table)(nil)

// historyReads bounds the commit files Changes reads at once: a follower
// that fell behind by many versions catches up in a few round trips
// instead of one per version, without flooding the store.
const historyReads = 8

// Changes returns what the commits after..to did, read from their JSON
// commit files (never from a checkpoint, which keeps no per-version
// record). A version whose commit file is gone, deleted by log cleanup
// (or never written: the table was replaced by a shorter one), fails the
// call with an error wrapping committer.ErrHistoryExpired; the caller then
// reads a snapshot instead.
//
// Each VersionChange lists the adds and removes as the commit recorded
// them, the commit's operation from its commitInfo, its metaData as
// committer.Metadata (nil if it set none), its txn versions, and its
// commitInfo timestamp.
func (t *Table) Changes(ctx context.Context, after, to int64) ([]committer.VersionChange, error) {
	if after < -1 || to < after {
		return nil, fmt.Errorf("changes of table %s: versions (%d, %d] are not a range", t.Root(), after, to)
	}
	out := make([]committer.VersionChange, to-after)
	// missing[i] records that version after+1+i is gone; the lowest one
	// is reported, whichever read finished first.
	missing := make([]bool, to-after)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(historyReads)
	for v := after + 1; v <= to; v++ {
		g.Go(func() error {
			e, err := t.readCommit(gctx, v)
			switch {
			case errors.Is(err, objstore.ErrNotExist):
				missing[v-after-1] = true
				return nil
			case err != nil:
				return fmt.Errorf("changes of table %s: read version %d: %w", t.Root(), v, err)
			}
			out[v-after-1] = versionChange(v, e)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i, gone := range missing {
		if gone {
			v := after + 1 + int64(i)
			return nil, fmt.Errorf("changes of table %s: log version %d (%s) is no longer in the log: %w",
				t.Root(), v, t.logKey(commitName(v)), committer.ErrHistoryExpired)
		}
	}
	return out, nil
}

// versionChange maps one parsed commit onto the seam's VersionChange.
func versionChange(v int64, e *logEntry) committer.VersionChange {
	vc := committer.VersionChange{Version: v, Adds: e.adds, Removes: e.removes}
	vc.Operation, _ = e.commitInfo["operation"].(string)
	vc.Timestamp = infoTimestamp(e.commitInfo)
	if e.metadata != nil {
		md := neutralMetadata(*e.metadata)
		vc.Metadata = &md
	}
	if len(e.txns) > 0 {
		vc.Txns = make(map[string]int64, len(e.txns))
		for _, tx := range e.txns {
			vc.Txns[tx.AppID] = tx.Version
		}
	}
	return vc
}

// infoTimestamp returns commitInfo.timestamp (Unix milliseconds), 0 when
// the commit recorded none or not as an integer.
func infoTimestamp(info map[string]any) int64 {
	switch ts := info["timestamp"].(type) {
	case interface{ Int64() (int64, error) }:
		n, err := ts.Int64()
		if err != nil {
			return 0
		}
		return n
	case float64:
		return int64(ts)
	}
	return 0
}
