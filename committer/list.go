package committer

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/evodb/sink/objstore"
)

// firstCommit is the log object every table has: version 0.
var firstCommit = "_delta_log/" + commitName(0)

// ListTables returns the roots of the tables in a bucket, sorted: every
// prefix holding a version 0 log entry ("" for a table at the bucket root).
func ListTables(ctx context.Context, b objstore.Bucket) ([]string, error) {
	var roots []string
	err := b.List(ctx, "", func(o objstore.ObjectInfo) error {
		switch {
		case o.Key == firstCommit:
			roots = append(roots, "")
		case strings.HasSuffix(o.Key, "/"+firstCommit):
			roots = append(roots, strings.TrimSuffix(o.Key, "/"+firstCommit))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	sort.Strings(roots)
	return roots, nil
}
