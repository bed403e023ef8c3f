package objstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFilesystemETagStableAcrossReopen(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	b, err := NewFilesystem(root)
	require.NoError(t, err)
	etag, err := b.Put(ctx, "a/b", bytes.NewReader([]byte("same")), 4, PutOptions{})
	require.NoError(t, err)

	reopened, err := NewFilesystem(root)
	require.NoError(t, err)
	info, err := reopened.Head(ctx, "a/b")
	require.NoError(t, err)
	require.Equal(t, etag, info.ETag)

	// Rewriting identical bytes is still a new version.
	etag2, err := reopened.Put(ctx, "a/b", bytes.NewReader([]byte("same")), 4, PutOptions{IfMatch: etag})
	require.NoError(t, err)
	require.NotEqual(t, etag, etag2)
}

func TestFilesystemHidesTempFilesAndPrunesDirs(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	b, err := NewFilesystem(root)
	require.NoError(t, err)
	_, err = b.Put(ctx, "t/x/y/z", bytes.NewReader([]byte("1")), 1, PutOptions{})
	require.NoError(t, err)
	_, err = b.Put(ctx, "t/keep", bytes.NewReader([]byte("1")), 1, PutOptions{})
	require.NoError(t, err)
	// A temp file left behind by a crashed writer.
	require.NoError(t, os.WriteFile(filepath.Join(root, "t", "x", internalPrefix+"tmp-123"), []byte("partial"), 0o644))

	var keys []string
	require.NoError(t, b.List(ctx, "", func(info ObjectInfo) error {
		keys = append(keys, info.Key)
		return nil
	}))
	require.Equal(t, []string{"t/keep", "t/x/y/z"}, keys)

	require.NoError(t, os.Remove(filepath.Join(root, "t", "x", internalPrefix+"tmp-123")))
	require.NoError(t, b.Delete(ctx, "t/x/y/z"))
	_, err = os.Stat(filepath.Join(root, "t", "x"))
	require.True(t, errors.Is(err, os.ErrNotExist), "empty directories are pruned: %v", err)
	_, err = os.Stat(filepath.Join(root, "t", "keep"))
	require.NoError(t, err)
}

func TestFilesystemRejectsBadKeys(t *testing.T) {
	ctx := context.Background()
	b, err := NewFilesystem(t.TempDir())
	require.NoError(t, err)
	for _, key := range []string{"", "/abs", "a//b", "a/../b", "..", "a/./b", "trailing/", internalPrefix + "locks/00", "a/" + internalPrefix + "tmp-1"} {
		t.Run(key, func(t *testing.T) {
			_, err := b.Put(ctx, key, bytes.NewReader(nil), 0, PutOptions{})
			require.Error(t, err)
			_, err = b.Get(ctx, key)
			require.Error(t, err)
			require.NotErrorIs(t, err, ErrNotExist)
			require.Error(t, b.Delete(ctx, key))
		})
	}
}

// TestCompareAndSwapCounter increments a counter object with IfMatch from
// many goroutines and two bucket instances (as two processes would have):
// no increment may be lost.
func TestCompareAndSwapCounter(t *testing.T) {
	root := t.TempDir()
	b1, err := NewFilesystem(root)
	require.NoError(t, err)
	b2, err := NewFilesystem(root)
	require.NoError(t, err)
	for name, buckets := range map[string][]Bucket{
		"memory":     {NewMemory()},
		"filesystem": {b1, b2},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			_, err := buckets[0].Put(ctx, "counter", bytes.NewReader([]byte("0")), 1, PutOptions{IfNoneMatch: true})
			require.NoError(t, err)
			const workers, increments = 8, 10
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					b := buckets[w%len(buckets)]
					for range increments {
						if err := increment(ctx, b, "counter"); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			require.Equal(t, strconv.Itoa(workers*increments), string(readAll(t, buckets[0], "counter")))
		})
	}
}

func increment(ctx context.Context, b Bucket, key string) error {
	for {
		info, err := b.Head(ctx, key)
		if err != nil {
			return err
		}
		rc, err := b.Get(ctx, key)
		if err != nil {
			return err
		}
		data, err := io.ReadAll(rc)
		_ = rc.Close()
		if err != nil {
			return err
		}
		// The ETag was read before the data, so a stale read fails the CAS.
		n, err := strconv.Atoi(string(data))
		if err != nil {
			continue
		}
		next := []byte(strconv.Itoa(n + 1))
		_, err = b.Put(ctx, key, bytes.NewReader(next), int64(len(next)), PutOptions{IfMatch: info.ETag})
		if errors.Is(err, ErrPreconditionFailed) {
			continue
		}
		return err
	}
}

func TestShortAndNegativeBodies(t *testing.T) {
	ctx := context.Background()
	fsb, err := NewFilesystem(t.TempDir())
	require.NoError(t, err)
	for name, b := range map[string]Bucket{"memory": NewMemory(), "filesystem": fsb} {
		t.Run(name, func(t *testing.T) {
			_, err := b.Put(ctx, "short", bytes.NewReader([]byte("abc")), 10, PutOptions{})
			require.Error(t, err)
			_, err = b.Put(ctx, "negative", bytes.NewReader(nil), -1, PutOptions{})
			require.Error(t, err)
			for _, key := range []string{"short", "negative"} {
				_, err = b.Head(ctx, key)
				require.ErrorIs(t, err, ErrNotExist, "a failed put leaves nothing visible")
			}
		})
	}
}
