package objstore

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
)

// internalPrefix starts the name of every file the Filesystem bucket keeps
// for itself (temp files, lock files). Keys with a path segment starting with
// it are refused, so internal files can never be mistaken for objects.
const internalPrefix = ".objstore-"

// lockStripes is the number of lock files guarding replacing writes. Keys are
// hashed onto a fixed set of stripes so lock files never accumulate.
const lockStripes = 64

// Filesystem is a Bucket stored as plain files under a root directory: key
// "a/b/c" is the file root/a/b/c. It is the embedded default store.
//
// Guarantees, all within one host (one kernel; not across NFS clients):
//
//   - No partial object is ever visible: every Put writes a temp file in the
//     target directory, fsyncs it, and only then links (create-only) or
//     renames (replace) it onto the key, then fsyncs the directory.
//   - Create-only Puts are atomic through link(2), which fails if the name
//     exists; of many concurrent creators exactly one wins.
//   - IfMatch Puts, unconditional Puts and Deletes of a key are serialized by
//     an exclusive flock(2) on one of a fixed set of lock files (plus an
//     in-process mutex), so a compare-and-swap cannot interleave with another
//     replacing write, from this process or another one.
//
// The ETag is derived from the file's inode number, size and modification
// time in nanoseconds: it survives process restarts, needs no read of the
// data, and changes on every write because each write creates a new inode
// while the old one is still linked. (A copy of the directory tree to another
// filesystem gets new ETags.)
//
// A key cannot be both an object and a prefix of other objects ("a" and
// "a/b"), because a path cannot be both a file and a directory; such a Put
// fails. A crash during Put can leave a temp file named ".objstore-tmp-*"
// behind; it is never listed and may be removed at any time.
type Filesystem struct {
	root    string
	lockDir string
	mu      [lockStripes]sync.Mutex
}

var _ Bucket = (*Filesystem)(nil)

// NewFilesystem opens (creating it if needed) a bucket rooted at root.
func NewFilesystem(root string) (*Filesystem, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("resolve store root %s: %w", root, err)
	}
	lockDir := filepath.Join(abs, internalPrefix+"locks")
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return nil, fmt.Errorf("create store root %s: %w", abs, err)
	}
	return &Filesystem{root: abs, lockDir: lockDir}, nil
}

// Root returns the absolute directory the bucket stores objects under.
func (f *Filesystem) Root() string { return f.root }

// checkKey refuses keys that do not map to exactly one file under the root.
func checkKey(key string) error {
	if key == "" {
		return errors.New("empty key")
	}
	if strings.ContainsRune(key, 0) {
		return fmt.Errorf("key %q contains a NUL byte", key)
	}
	for _, seg := range strings.Split(key, "/") {
		switch {
		case seg == "" || seg == "." || seg == "..":
			return fmt.Errorf("key %q has an empty, . or .. path segment", key)
		case strings.HasPrefix(seg, internalPrefix):
			return fmt.Errorf("key %q has a segment starting with the reserved %q", key, internalPrefix)
		}
	}
	return nil
}

func (f *Filesystem) path(key string) string {
	return filepath.Join(f.root, filepath.FromSlash(key))
}

// fileETag derives an ETag from a file's identity and version; see the
// Filesystem doc comment for why this is sufficient.
func fileETag(fi fs.FileInfo) string {
	var buf [24]byte
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		binary.LittleEndian.PutUint64(buf[0:], uint64(st.Ino))
	}
	binary.LittleEndian.PutUint64(buf[8:], uint64(fi.Size()))
	binary.LittleEndian.PutUint64(buf[16:], uint64(fi.ModTime().UnixNano()))
	sum := md5.Sum(buf[:])
	return hex.EncodeToString(sum[:])
}

// lock serializes replacing writes of key across goroutines (mutex) and
// processes (flock). It returns the unlock function.
func (f *Filesystem) lock(key string) (func(), error) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	stripe := h.Sum32() % lockStripes
	f.mu[stripe].Lock()
	name := filepath.Join(f.lockDir, fmt.Sprintf("%02d", stripe))
	lf, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		f.mu[stripe].Unlock()
		return nil, fmt.Errorf("open lock file %s: %w", name, err)
	}
	for {
		err = syscall.Flock(int(lf.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		_ = lf.Close()
		f.mu[stripe].Unlock()
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return func() {
		// Closing the descriptor releases the flock.
		_ = lf.Close()
		f.mu[stripe].Unlock()
	}, nil
}

// Put implements Bucket.
func (f *Filesystem) Put(ctx context.Context, key string, body io.ReaderAt, size int64, opts PutOptions) (string, error) {
	if err := checkKey(key); err != nil {
		return "", fmt.Errorf("put: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("put %s: %w", key, err)
	}
	path := f.path(key)
	dir := filepath.Dir(path)
	tmp, err := f.writeTemp(ctx, dir, body, size)
	if err != nil {
		return "", fmt.Errorf("put %s: %w", key, err)
	}
	// After a successful link or rename the temp name is gone or is a second
	// name of the object; removing it is right in every case.
	defer func() { _ = os.Remove(tmp) }()

	if opts.IfNoneMatch {
		if err := os.Link(tmp, path); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return "", fmt.Errorf("put %s: %w", key, ErrPreconditionFailed)
			}
			return "", fmt.Errorf("put %s: %w", key, err)
		}
	} else {
		unlock, err := f.lock(key)
		if err != nil {
			return "", fmt.Errorf("put %s: %w", key, err)
		}
		defer unlock()
		if opts.IfMatch != "" {
			cur, err := os.Stat(path)
			if err != nil || cur.IsDir() || fileETag(cur) != opts.IfMatch {
				return "", fmt.Errorf("put %s: %w", key, ErrPreconditionFailed)
			}
		}
		if err := os.Rename(tmp, path); err != nil {
			return "", fmt.Errorf("put %s: %w", key, err)
		}
	}
	if err := syncDir(dir); err != nil {
		return "", fmt.Errorf("put %s: %w", key, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("put %s: %w", key, err)
	}
	return fileETag(fi), nil
}

// writeTemp writes body to a new fsynced temp file in dir (creating dir as
// needed) and returns its path.
func (f *Filesystem) writeTemp(ctx context.Context, dir string, body io.ReaderAt, size int64) (string, error) {
	var (
		tf  *os.File
		err error
	)
	// The directory usually exists: create it only when the temp file
	// cannot be. A concurrent Delete may prune dir between MkdirAll and
	// CreateTemp, so retry a few times; once the temp file exists the dir
	// is not empty and will not be pruned.
	for range 10 {
		tf, err = os.CreateTemp(dir, internalPrefix+"tmp-*")
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err = os.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("create directory: %w", err)
		}
	}
	if err != nil {
		return "", fmt.Errorf("create temp file: %w", err)
	}
	name := tf.Name()
	fail := func(err error) (string, error) {
		_ = tf.Close()
		_ = os.Remove(name)
		return "", err
	}
	n, err := io.Copy(tf, &ctxReader{ctx: ctx, r: io.NewSectionReader(body, 0, size)})
	if err != nil {
		return fail(fmt.Errorf("write temp file: %w", err))
	}
	if n != size {
		return fail(fmt.Errorf("body has %d bytes, want %d", n, size))
	}
	if err := tf.Sync(); err != nil {
		return fail(fmt.Errorf("sync temp file: %w", err))
	}
	if err := tf.Close(); err != nil {
		_ = os.Remove(name)
		return "", fmt.Errorf("close temp file: %w", err)
	}
	return name, nil
}

// ctxReader stops a copy when its context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// syncDir makes a directory's entries (a new link or rename) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer func() { _ = d.Close() }()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// notExist reports whether err means there is no object at a path: the file
// is missing, or a path segment is a file rather than a directory.
func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Get implements Bucket.
func (f *Filesystem) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return f.GetRange(ctx, key, 0, -1)
}

// GetRange implements Bucket.
func (f *Filesystem) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	file, err := os.Open(f.path(key))
	if err != nil {
		if notExist(err) {
			return nil, fmt.Errorf("get %s: %w", key, ErrNotExist)
		}
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	fi, err := file.Stat()
	if err != nil {
		_ = file.Close()
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if fi.IsDir() {
		_ = file.Close()
		return nil, fmt.Errorf("get %s: %w", key, ErrNotExist)
	}
	if offset < 0 || offset > fi.Size() {
		_ = file.Close()
		return nil, fmt.Errorf("get %s: offset %d out of range [0,%d]", key, offset, fi.Size())
	}
	n := fi.Size() - offset
	if length >= 0 && length < n {
		n = length
	}
	return &sectionFile{Reader: io.NewSectionReader(file, offset, n), file: file}, nil
}

// sectionFile reads a section of a file and closes the file.
type sectionFile struct {
	io.Reader
	file *os.File
}

func (s *sectionFile) Close() error { return s.file.Close() }

// Head implements Bucket.
func (f *Filesystem) Head(ctx context.Context, key string) (ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return ObjectInfo{}, fmt.Errorf("head: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, fmt.Errorf("head %s: %w", key, err)
	}
	fi, err := os.Stat(f.path(key))
	if err != nil {
		if notExist(err) {
			return ObjectInfo{}, fmt.Errorf("head %s: %w", key, ErrNotExist)
		}
		return ObjectInfo{}, fmt.Errorf("head %s: %w", key, err)
	}
	if fi.IsDir() {
		return ObjectInfo{}, fmt.Errorf("head %s: %w", key, ErrNotExist)
	}
	return ObjectInfo{Key: key, Size: fi.Size(), ETag: fileETag(fi), LastModified: fi.ModTime()}, nil
}

// List implements Bucket. It walks only the directories that can hold keys
// with the prefix, visiting entries in key order (a directory "a" sorts as
// "a/", so "a-b" comes before "a/c").
func (f *Filesystem) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	// Start at the deepest directory wholly named by the prefix.
	start := ""
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = prefix[:i+1]
	}
	if err := f.walk(ctx, start, prefix, fn); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	return nil
}

// walk lists directory dirKey (a key prefix ending in "/", or "" for the
// root) recursively.
func (f *Filesystem) walk(ctx context.Context, dirKey, prefix string, fn func(ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := os.ReadDir(filepath.Join(f.root, filepath.FromSlash(dirKey)))
	if err != nil {
		if notExist(err) {
			return nil
		}
		return err
	}
	type entry struct {
		key string
		dir bool
		d   fs.DirEntry
	}
	list := make([]entry, 0, len(entries))
	for _, d := range entries {
		if strings.HasPrefix(d.Name(), internalPrefix) {
			continue
		}
		e := entry{key: dirKey + d.Name(), dir: d.IsDir(), d: d}
		if e.dir {
			e.key += "/"
			// Descend only where keys with the prefix can be.
			if !strings.HasPrefix(e.key, prefix) && !strings.HasPrefix(prefix, e.key) {
				continue
			}
		} else if !strings.HasPrefix(e.key, prefix) || !d.Type().IsRegular() {
			continue
		}
		list = append(list, e)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].key < list[j].key })
	for _, e := range list {
		if e.dir {
			if err := f.walk(ctx, e.key, prefix, fn); err != nil {
				return err
			}
			continue
		}
		fi, err := e.d.Info()
		if err != nil {
			if notExist(err) {
				continue // Deleted since ReadDir.
			}
			return err
		}
		if err := fn(ObjectInfo{Key: e.key, Size: fi.Size(), ETag: fileETag(fi), LastModified: fi.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements Bucket. It prunes directories left empty, up to the root.
func (f *Filesystem) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	unlock, err := f.lock(key)
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	defer unlock()
	path := f.path(key)
	// Unlink, unlike os.Remove, never removes a directory: a key naming a
	// directory is a missing object.
	if err := syscall.Unlink(path); err != nil {
		if notExist(err) || errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.EPERM) && isDir(path) {
			return nil
		}
		return fmt.Errorf("delete %s: %w", key, err)
	}
	for dir := filepath.Dir(path); dir != f.root && strings.HasPrefix(dir, f.root); dir = filepath.Dir(dir) {
		// Rmdir fails on a non-empty directory, which ends the pruning.
		if syscall.Rmdir(dir) != nil {
			break
		}
	}
	return nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
