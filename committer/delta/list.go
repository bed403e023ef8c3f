package delta

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/evodb/sink/objstore"
)

// FirstCommit is the key, relative to a table's root, of the log object
// every table has: version 0, which log cleanup never deletes.
const FirstCommit = "_delta_log/00000000000000000000.json"

// ListTables returns the roots of the tables in a bucket, sorted: every
// prefix holding a version 0 log entry ("" for a table at the bucket root).
func ListTables(ctx context.Context, b objstore.Bucket) ([]string, error) {
	var roots []string
	err := b.List(ctx, "", func(o objstore.ObjectInfo) error {
		switch {
		case o.Key == FirstCommit:
			roots = append(roots, "")
		case strings.HasSuffix(o.Key, "/"+FirstCommit):
			roots = append(roots, strings.TrimSuffix(o.Key, "/"+FirstCommit))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	sort.Strings(roots)
	return roots, nil
}
