package objstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// acceptancePrefix holds every key AcceptanceTest writes, so it cleans up
// only what it wrote.
const acceptancePrefix = "acceptance/"

// AcceptanceTest checks that b behaves as the Bucket contract says. Every
// implementation (and every wrapper) must pass it. It writes only keys under
// "acceptance/" and deletes them when it ends; give it an otherwise unused
// bucket or prefix, since concurrent writers under "acceptance/" would
// disturb the listing checks.
func AcceptanceTest(t *testing.T, b Bucket) {
	t.Helper()
	ctx := context.Background()
	t.Cleanup(func() {
		var keys []string
		_ = b.List(ctx, acceptancePrefix, func(info ObjectInfo) error {
			keys = append(keys, info.Key)
			return nil
		})
		for _, k := range keys {
			_ = b.Delete(ctx, k)
		}
	})
	k := func(name string) string { return acceptancePrefix + name }

	t.Run("round trip", func(t *testing.T) {
		for _, size := range []int{0, 1, 5 << 20} {
			t.Run(fmt.Sprintf("%d bytes", size), func(t *testing.T) {
				key := k(fmt.Sprintf("roundtrip/%d", size))
				data := randomBytes(size, uint64(size))
				etag, err := b.Put(ctx, key, bytes.NewReader(data), int64(size), PutOptions{})
				require.NoError(t, err)
				require.NotEmpty(t, etag)
				require.Equal(t, data, readAll(t, b, key))
				info, err := b.Head(ctx, key)
				require.NoError(t, err)
				require.Equal(t, key, info.Key)
				require.Equal(t, int64(size), info.Size)
				require.Equal(t, etag, info.ETag)
				require.False(t, info.LastModified.IsZero())
				// The table log takes the ETags of its anchor objects from
				// a listing and compares them with a HEAD's later.
				var listed []ObjectInfo
				require.NoError(t, b.List(ctx, key, func(o ObjectInfo) error {
					listed = append(listed, o)
					return nil
				}))
				require.Len(t, listed, 1)
				require.Equal(t, etag, listed[0].ETag, "a listing reports the ETag a HEAD does")
				require.Equal(t, int64(size), listed[0].Size)
			})
		}
	})

	t.Run("key characters", func(t *testing.T) {
		// Characters a request path must escape, which a signature must
		// cover exactly once (S3 does not double-encode).
		key := k("chars/a b=c+d%e,f;g@h:i'j(k)l!m~n.parquet")
		data := []byte("odd name")
		_, err := b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), PutOptions{IfNoneMatch: true})
		require.NoError(t, err)
		require.Equal(t, data, readAll(t, b, key))
		var listed []string
		require.NoError(t, b.List(ctx, k("chars/"), func(info ObjectInfo) error {
			listed = append(listed, info.Key)
			return nil
		}))
		require.Equal(t, []string{key}, listed)
		require.NoError(t, b.Delete(ctx, key))
	})

	t.Run("overwrite", func(t *testing.T) {
		key := k("overwrite")
		etag1, err := b.Put(ctx, key, bytes.NewReader([]byte("first")), 5, PutOptions{})
		require.NoError(t, err)
		etag2, err := b.Put(ctx, key, bytes.NewReader([]byte("second!")), 7, PutOptions{})
		require.NoError(t, err)
		require.NotEqual(t, etag1, etag2)
		require.Equal(t, []byte("second!"), readAll(t, b, key))
		info, err := b.Head(ctx, key)
		require.NoError(t, err)
		require.Equal(t, etag2, info.ETag)
		require.Equal(t, int64(7), info.Size)
	})

	t.Run("list", func(t *testing.T) {
		// "a-b" sorts before "a/..." ('-' < '/'), which a naive directory
		// walk gets wrong.
		names := []string{"list/b", "list/a/c/d", "list/a-b", "list/ab", "list/a/b", "list/a/c/e", "listx"}
		for i, name := range names {
			data := bytes.Repeat([]byte{'x'}, i)
			_, err := b.Put(ctx, k(name), bytes.NewReader(data), int64(i), PutOptions{})
			require.NoError(t, err)
		}
		for _, tc := range []struct {
			prefix string
			want   []string
		}{
			{"list/", []string{"list/a-b", "list/a/b", "list/a/c/d", "list/a/c/e", "list/ab", "list/b"}},
			{"list", []string{"list/a-b", "list/a/b", "list/a/c/d", "list/a/c/e", "list/ab", "list/b", "listx"}},
			{"list/a", []string{"list/a-b", "list/a/b", "list/a/c/d", "list/a/c/e", "list/ab"}},
			{"list/a/", []string{"list/a/b", "list/a/c/d", "list/a/c/e"}},
			{"list/a/c/d", []string{"list/a/c/d"}},
			{"list/zz", nil},
			{"nothing/", nil},
		} {
			t.Run(tc.prefix, func(t *testing.T) {
				var got []string
				err := b.List(ctx, k(tc.prefix), func(info ObjectInfo) error {
					got = append(got, info.Key[len(acceptancePrefix):])
					require.NotEmpty(t, info.ETag)
					return nil
				})
				require.NoError(t, err)
				require.Equal(t, tc.want, got)
			})
		}
		t.Run("sizes", func(t *testing.T) {
			sizes := map[string]int64{}
			require.NoError(t, b.List(ctx, k(""), func(info ObjectInfo) error {
				sizes[info.Key] = info.Size
				return nil
			}))
			for i, name := range names {
				require.Equal(t, int64(i), sizes[k(name)], name)
			}
		})
		t.Run("stop", func(t *testing.T) {
			stop := errors.New("stop")
			calls := 0
			err := b.List(ctx, k("list/"), func(ObjectInfo) error {
				calls++
				return stop
			})
			require.ErrorIs(t, err, stop)
			require.Equal(t, 1, calls)
		})
	})

	t.Run("get range", func(t *testing.T) {
		key := k("range")
		data := []byte("0123456789")
		_, err := b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), PutOptions{})
		require.NoError(t, err)
		for _, tc := range []struct {
			name           string
			offset, length int64
			want           string
		}{
			{"whole", 0, -1, "0123456789"},
			{"middle", 3, 4, "3456"},
			{"to end", 6, -1, "6789"},
			{"exact end", 6, 4, "6789"},
			{"past end", 8, 100, "89"},
			{"zero length", 2, 0, ""},
			{"at end", 10, -1, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				rc, err := b.GetRange(ctx, key, tc.offset, tc.length)
				require.NoError(t, err)
				got, err := io.ReadAll(rc)
				require.NoError(t, err)
				require.NoError(t, rc.Close())
				require.Equal(t, tc.want, string(got))
			})
		}
	})

	t.Run("not found", func(t *testing.T) {
		key := k("missing")
		_, err := b.Get(ctx, key)
		require.ErrorIs(t, err, ErrNotExist)
		_, err = b.GetRange(ctx, key, 1, 2)
		require.ErrorIs(t, err, ErrNotExist)
		_, err = b.Head(ctx, key)
		require.ErrorIs(t, err, ErrNotExist)
	})

	t.Run("delete", func(t *testing.T) {
		key := k("delete/nested/object")
		_, err := b.Put(ctx, key, bytes.NewReader([]byte("x")), 1, PutOptions{})
		require.NoError(t, err)
		require.NoError(t, b.Delete(ctx, key))
		_, err = b.Head(ctx, key)
		require.ErrorIs(t, err, ErrNotExist)
		_, err = b.Get(ctx, key)
		require.ErrorIs(t, err, ErrNotExist)
		require.NoError(t, b.Delete(ctx, key), "deleting a missing object")
		require.NoError(t, b.List(ctx, k("delete/"), func(info ObjectInfo) error {
			return fmt.Errorf("listed deleted %s", info.Key)
		}))
		// The key is free again for a create-only put.
		_, err = b.Put(ctx, key, bytes.NewReader([]byte("y")), 1, PutOptions{IfNoneMatch: true})
		require.NoError(t, err)
	})

	t.Run("if none match", func(t *testing.T) {
		key := k("create-only")
		etag, err := b.Put(ctx, key, bytes.NewReader([]byte("one")), 3, PutOptions{IfNoneMatch: true})
		require.NoError(t, err)
		_, err = b.Put(ctx, key, bytes.NewReader([]byte("two")), 3, PutOptions{IfNoneMatch: true})
		require.ErrorIs(t, err, ErrPreconditionFailed)
		require.Equal(t, []byte("one"), readAll(t, b, key))
		info, err := b.Head(ctx, key)
		require.NoError(t, err)
		require.Equal(t, etag, info.ETag)
	})

	t.Run("if match", func(t *testing.T) {
		key := k("cas")
		etag1, err := b.Put(ctx, key, bytes.NewReader([]byte("v1")), 2, PutOptions{})
		require.NoError(t, err)
		etag2, err := b.Put(ctx, key, bytes.NewReader([]byte("v2")), 2, PutOptions{IfMatch: etag1})
		require.NoError(t, err)
		require.NotEqual(t, etag1, etag2)
		_, err = b.Put(ctx, key, bytes.NewReader([]byte("v3")), 2, PutOptions{IfMatch: etag1})
		require.ErrorIs(t, err, ErrPreconditionFailed, "stale etag")
		require.Equal(t, []byte("v2"), readAll(t, b, key))
		_, err = b.Put(ctx, k("cas-missing"), bytes.NewReader([]byte("v1")), 2, PutOptions{IfMatch: etag2})
		require.ErrorIs(t, err, ErrPreconditionFailed, "missing object")
		require.NotErrorIs(t, err, ErrNotExist, "missing object")
	})

	t.Run("create race", func(t *testing.T) {
		const n = 16
		key := k("race")
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners []int
			losers  int
			others  []error
		)
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				body := []byte(fmt.Sprintf("writer %02d", i))
				<-start
				_, err := b.Put(ctx, key, bytes.NewReader(body), int64(len(body)), PutOptions{IfNoneMatch: true})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					winners = append(winners, i)
				case errors.Is(err, ErrPreconditionFailed):
					losers++
				default:
					others = append(others, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		require.Empty(t, others)
		require.Len(t, winners, 1)
		require.Equal(t, n-1, losers)
		require.Equal(t, fmt.Sprintf("writer %02d", winners[0]), string(readAll(t, b, key)))
	})
}

func readAll(t *testing.T, b Bucket, key string) []byte {
	t.Helper()
	rc, err := b.Get(context.Background(), key)
	require.NoError(t, err)
	defer func() { require.NoError(t, rc.Close()) }()
	data, err := io.ReadAll(rc)
	require.NoError(t, err)
	return data
}

func randomBytes(n int, seed uint64) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	data := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(data)
	return data
}
