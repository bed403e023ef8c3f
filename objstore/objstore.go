// Package objstore is the narrow object-store interface the sink writes
// through, with memory, filesystem and S3 (R2, AWS S3, S3-compatible)
// implementations that all pass one acceptance test.
//
// The interface is deliberately small: conditional writes (create-only and
// compare-and-swap by ETag) are the only coordination primitive the table log
// needs, so every backend must implement them exactly.
package objstore

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotExist is returned (wrapped) when an object does not exist.
var ErrNotExist = errors.New("object does not exist")

// ErrPreconditionFailed is returned (wrapped) when a conditional Put's
// precondition does not hold: the key already exists for IfNoneMatch, or its
// ETag differs for IfMatch. It is never retried.
var ErrPreconditionFailed = errors.New("precondition failed")

// PutOptions makes a Put conditional. At most one of the fields is set.
type PutOptions struct {
	// IfNoneMatch makes the Put create-only: it fails with
	// ErrPreconditionFailed if the key exists.
	IfNoneMatch bool
	// IfMatch makes the Put a compare-and-swap: it fails with
	// ErrPreconditionFailed unless the current ETag equals IfMatch.
	IfMatch string
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key          string
	Size         int64
	ETag         string
	LastModified time.Time
}

// Bucket is an object store. Keys are slash-separated and relative to the
// bucket's own prefix. Implementations are safe for concurrent use.
type Bucket interface {
	// Put stores size bytes read from body under key and returns the new
	// ETag. Body is an io.ReaderAt so that retries and multipart uploads can
	// re-read it.
	Put(ctx context.Context, key string, body io.ReaderAt, size int64, opts PutOptions) (etag string, err error)
	// Get opens the whole object.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// GetRange opens length bytes from offset; length < 0 means to the end.
	GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	// Head describes an object without reading it.
	Head(ctx context.Context, key string) (ObjectInfo, error)
	// List calls fn for every object whose key starts with prefix, in
	// lexical key order. An error from fn stops the listing and is returned.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	// Delete removes an object. Deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error
}
