package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

// syncCounter records the directories a Filesystem fsyncs.
type syncCounter struct {
	mu    sync.Mutex
	dirs  []string
	root  string
	inner func(string) error
}

func countSyncs(t *testing.T, b *Filesystem) *syncCounter {
	t.Helper()
	c := &syncCounter{root: b.Root(), inner: b.syncDir}
	b.syncDir = func(dir string) error {
		c.mu.Lock()
		rel, err := filepath.Rel(c.root, dir)
		require.NoError(t, err)
		c.dirs = append(c.dirs, filepath.ToSlash(rel))
		c.mu.Unlock()
		return c.inner(dir)
	}
	return c
}

func (c *syncCounter) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.dirs
	c.dirs = nil
	return d
}

// TestFilesystemSyncsDirectoriesOnce checks that a new directory is made
// durable in its parent once, and that later objects in it cost one sync
// of the directory itself, for both kinds of temp file.
func TestFilesystemSyncsDirectoriesOnce(t *testing.T) {
	for _, named := range []bool{false, true} {
		t.Run(fmt.Sprintf("named=%v", named), func(t *testing.T) {
			ctx := context.Background()
			b, err := NewFilesystem(t.TempDir())
			require.NoError(t, err)
			b.noTmpfile.Store(named)
			syncs := countSyncs(t, b)
			for _, opts := range []PutOptions{{IfNoneMatch: true}, {}} {
				_, err = b.Put(ctx, "t/a/x", bytes.NewReader([]byte("1")), 1, opts)
				require.NoError(t, err)
				require.ElementsMatch(t, []string{".", "t", "t/a"}, syncs.take(),
					"a new directory's entry is synced in its parent, up to the root")
				_, err = b.Put(ctx, "t/a/y", bytes.NewReader([]byte("1")), 1, opts)
				require.NoError(t, err)
				require.Equal(t, []string{"t/a"}, syncs.take(), "a known directory costs only its own sync")
				require.NoError(t, b.Delete(ctx, "t/a/x"))
				require.NoError(t, b.Delete(ctx, "t/a/y"))
			}
		})
	}
}

// TestFilesystemDirectoryRemovedBehindItsBack breaks the durable set's
// invariant on purpose: the directories it remembers are removed (and one
// created again) by something other than the bucket. A Put into them must
// still succeed and must sync the new directories' entries again.
func TestFilesystemDirectoryRemovedBehindItsBack(t *testing.T) {
	for _, named := range []bool{false, true} {
		t.Run(fmt.Sprintf("named=%v", named), func(t *testing.T) {
			ctx := context.Background()
			root := t.TempDir()
			b, err := NewFilesystem(root)
			require.NoError(t, err)
			b.noTmpfile.Store(named)
			syncs := countSyncs(t, b)
			_, err = b.Put(ctx, "t/a/x", bytes.NewReader([]byte("1")), 1, PutOptions{IfNoneMatch: true})
			require.NoError(t, err)
			syncs.take()

			require.NoError(t, os.RemoveAll(filepath.Join(root, "t")))
			for _, opts := range []PutOptions{{IfNoneMatch: true}, {}} {
				_, err = b.Put(ctx, "t/a/x", bytes.NewReader([]byte("2")), 1, opts)
				require.NoError(t, err)
				require.ElementsMatch(t, []string{".", "t", "t/a"}, syncs.take(),
					"directories created again are synced in their parents again")
				rc, err := b.Get(ctx, "t/a/x")
				require.NoError(t, err)
				got, err := io.ReadAll(rc)
				require.NoError(t, err)
				require.NoError(t, rc.Close())
				require.Equal(t, "2", string(got))
				require.NoError(t, os.RemoveAll(filepath.Join(root, "t")))
			}

			// Removed, and the parent created again by another program:
			// only the missing directory is created (and synced) here.
			_, err = b.Put(ctx, "t/a/x", bytes.NewReader([]byte("3")), 1, PutOptions{IfNoneMatch: true})
			require.NoError(t, err)
			syncs.take()
			require.NoError(t, os.RemoveAll(filepath.Join(root, "t", "a")))
			_, err = b.Put(ctx, "t/a/x", bytes.NewReader([]byte("4")), 1, PutOptions{IfNoneMatch: true})
			require.NoError(t, err)
			require.ElementsMatch(t, []string{"t", "t/a"}, syncs.take())
		})
	}
}

// TestFilesystemDeleteForgetsPrunedDirectories checks that directories a
// Delete prunes leave the durable set, so the next Put syncs them again.
func TestFilesystemDeleteForgetsPrunedDirectories(t *testing.T) {
	ctx := context.Background()
	b, err := NewFilesystem(t.TempDir())
	require.NoError(t, err)
	syncs := countSyncs(t, b)
	_, err = b.Put(ctx, "t/a/x", bytes.NewReader([]byte("1")), 1, PutOptions{IfNoneMatch: true})
	require.NoError(t, err)
	require.NoError(t, b.Delete(ctx, "t/a/x"))
	syncs.take()
	_, err = b.Put(ctx, "t/a/x", bytes.NewReader([]byte("1")), 1, PutOptions{IfNoneMatch: true})
	require.NoError(t, err)
	require.ElementsMatch(t, []string{".", "t", "t/a"}, syncs.take())
}

// TestAcceptanceFilesystemNamedTemp runs the acceptance test with named temp
// files only, as on filesystems without O_TMPFILE.
func TestAcceptanceFilesystemNamedTemp(t *testing.T) {
	b, err := NewFilesystem(t.TempDir())
	require.NoError(t, err)
	b.noTmpfile.Store(true)
	AcceptanceTest(t, b)
}
