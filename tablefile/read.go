package tablefile

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/parquetblock"
	"github.com/evodb/sink/objstore"
)

// Key is the object key of a data file of the table at root: path is the
// file's path as the log names it, relative to the table and URL-encoded
// (Delta's rule; the sink's own paths have nothing to escape).
func Key(root, path string) string {
	if u, err := url.PathUnescape(path); err == nil {
		path = u
	}
	if root == "" {
		return path
	}
	return root + "/" + path
}

// ReadFile reads a data file the sink wrote (see WrittenBySink) and
// decodes its rows, in file order, with the schema it was written with.
// It reads the object whole, with one GET: Parquet reads many small
// ranges, each a round trip to the store, so memory is the file's size
// plus its decoded rows.
func ReadFile(ctx context.Context, b objstore.Bucket, root, path string) (*codec.Schema, []codec.Change, error) {
	key := Key(root, path)
	rc, err := b.Get(ctx, key)
	if err != nil {
		return nil, nil, fmt.Errorf("read data file %s: %w", key, err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("read data file %s: %w", key, err)
	}
	s, changes, err := parquetblock.ReadBlock(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, nil, fmt.Errorf("decode data file %s: %w", key, err)
	}
	return s, changes, nil
}
