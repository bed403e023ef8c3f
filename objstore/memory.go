package objstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// Memory is an in-memory Bucket for tests.
type Memory struct {
	mu      sync.Mutex
	objects map[string]memObject
	now     func() time.Time
}

type memObject struct {
	data []byte
	etag string
	mod  time.Time
}

var _ Bucket = (*Memory)(nil)

// NewMemory returns an empty in-memory bucket.
func NewMemory() *Memory {
	return &Memory{objects: map[string]memObject{}, now: time.Now}
}

// Put implements Bucket.
func (m *Memory) Put(ctx context.Context, key string, body io.ReaderAt, size int64, opts PutOptions) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if size < 0 {
		return "", fmt.Errorf("put %s: negative size %d", key, size)
	}
	data := make([]byte, size)
	if size > 0 {
		// ReadAt may return io.EOF with a full read; a short read is an error.
		n, err := body.ReadAt(data, 0)
		if int64(n) < size {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", fmt.Errorf("read body of %s: %w", key, err)
		}
	}
	sum := md5.Sum(data)
	etag := hex.EncodeToString(sum[:])
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, exists := m.objects[key]
	if opts.IfNoneMatch && exists {
		return "", fmt.Errorf("put %s: %w", key, ErrPreconditionFailed)
	}
	if opts.IfMatch != "" && (!exists || cur.etag != opts.IfMatch) {
		return "", fmt.Errorf("put %s: %w", key, ErrPreconditionFailed)
	}
	m.objects[key] = memObject{data: data, etag: etag, mod: m.now()}
	return etag, nil
}

// Get implements Bucket.
func (m *Memory) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return m.GetRange(ctx, key, 0, -1)
}

// GetRange implements Bucket.
func (m *Memory) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	obj, ok := m.objects[key]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("get %s: %w", key, ErrNotExist)
	}
	if offset < 0 || offset > int64(len(obj.data)) {
		return nil, fmt.Errorf("get %s: offset %d out of range [0,%d]", key, offset, len(obj.data))
	}
	end := int64(len(obj.data))
	if length >= 0 && offset+length < end {
		end = offset + length
	}
	return io.NopCloser(bytes.NewReader(obj.data[offset:end])), nil
}

// Head implements Bucket.
func (m *Memory) Head(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	obj, ok := m.objects[key]
	if !ok {
		return ObjectInfo{}, fmt.Errorf("head %s: %w", key, ErrNotExist)
	}
	return ObjectInfo{Key: key, Size: int64(len(obj.data)), ETag: obj.etag, LastModified: obj.mod}, nil
}

// List implements Bucket.
func (m *Memory) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	m.mu.Lock()
	infos := make([]ObjectInfo, 0, len(m.objects))
	for k, obj := range m.objects {
		if strings.HasPrefix(k, prefix) {
			infos = append(infos, ObjectInfo{Key: k, Size: int64(len(obj.data)), ETag: obj.etag, LastModified: obj.mod})
		}
	}
	m.mu.Unlock()
	sort.Slice(infos, func(i, j int) bool { return infos[i].Key < infos[j].Key })
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements Bucket.
func (m *Memory) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.objects, key)
	m.mu.Unlock()
	return nil
}
