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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// internalPrefix starts the name of every file the Filesystem bucket keeps
// for itself (temp files, lock files). Keys with a path segment starting with
// it are refused, so internal files can never be mistaken for objects.
const internalPrefix = ".objstore-"

// lockStripes is the number of lock files guarding replacing writes. Keys are
// hashed onto a fixed set of stripes so lock files never accumulate.
const lockStripes = 64

// maxDurableDirs bounds the set of directories a Filesystem remembers as
// durable (about 100 bytes each). When it is full the set is emptied, which
// costs each directory one more fsync of its parent the next time it is
// written, and nothing else.
const maxDurableDirs = 1 << 14

// copyBufferSize is the size of the buffers Put copies bodies through.
const copyBufferSize = 256 << 10

// Filesystem is a Bucket stored as plain files under a root directory: key
// "a/b/c" is the file root/a/b/c. It is the embedded default store.
//
// Guarantees, all within one host (one kernel; not across NFS clients):
//
//   - No partial object is ever visible: every Put writes a temp file in the
//     target directory, fsyncs it, and only then links (create-only) or
//     renames (replace) it onto the key, then fsyncs the directory. A
//     create-only Put's temp file is anonymous (O_TMPFILE) where the
//     filesystem supports it, so it never has a name to create and remove.
//   - A Put that returns has made its object durable, including the
//     directories on its path: a directory this bucket creates is made
//     durable in its parent (the parent fsynced) before any Put into it
//     returns. The dirs field says how this costs nothing per object.
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
// filesystem gets new ETags.) A Put takes its ETag from the temp file it
// wrote, which is the object's inode.
//
// A key cannot be both an object and a prefix of other objects ("a" and
// "a/b"), because a path cannot be both a file and a directory; such a Put
// fails. A crash during Put can leave a temp file named ".objstore-tmp-*"
// behind; it is never listed and may be removed at any time.
type Filesystem struct {
	root    string
	lockDir string
	mu      [lockStripes]sync.Mutex

	// dirs remembers the directories under root whose entries in their
	// parents are durable, so a Put fsyncs a directory's parent once per
	// directory, not once per object.
	//
	// Invariant: a directory is in durable only if its entry and the
	// entries of all its ancestors below root were fsynced in their
	// parents after they were last created. The bucket keeps it true for
	// what it does itself: creating directories (mkdirs), syncing a
	// directory's ancestry and pruning directories (Delete) all happen
	// under dirs' lock, and a Put consults the set only after its object
	// is linked, so a directory it found by path was either already in
	// the set or is synced by the Put. A directory removed behind the
	// bucket's back is found missing by the next Put into it, which
	// creates it again through mkdirs and so forgets and re-syncs it.
	// What the bucket cannot see is a directory removed and created again
	// by another program between two Puts; a process running this code
	// syncs what it creates, so only tools outside the bucket can do
	// that, and they must not change the tree under a running writer.
	dirs struct {
		sync.RWMutex
		durable map[string]struct{}
	}
	// noTmpfile is set once anonymous temp files (O_TMPFILE, linked by
	// their /proc/self/fd name) turn out not to work here; create-only
	// Puts then use named temp files like replacing ones.
	noTmpfile atomic.Bool
	// bufs holds copyBufferSize buffers for copying bodies.
	bufs sync.Pool
	// syncDir makes a directory's entries durable; a field so tests can
	// count what is synced.
	syncDir func(dir string) error
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
	f := &Filesystem{root: abs, lockDir: lockDir, syncDir: syncDir}
	f.dirs.durable = map[string]struct{}{}
	f.bufs.New = func() any { b := make([]byte, copyBufferSize); return &b }
	return f, nil
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
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return etagOf(ino, fi.Size(), fi.ModTime().UnixNano())
}

// etagOf is fileETag of a file with inode ino, size bytes, modified at
// mtime nanoseconds since the epoch.
func etagOf(ino uint64, size, mtime int64) string {
	var buf [24]byte
	binary.LittleEndian.PutUint64(buf[0:], ino)
	binary.LittleEndian.PutUint64(buf[8:], uint64(size))
	binary.LittleEndian.PutUint64(buf[16:], uint64(mtime))
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
	if size < 0 {
		return "", fmt.Errorf("put %s: negative size %d", key, size)
	}
	path := f.path(key)
	dir := filepath.Dir(path)
	if opts.IfNoneMatch && !f.noTmpfile.Load() {
		etag, done, err := f.putAnonymous(ctx, dir, path, body, size)
		if err != nil {
			return "", fmt.Errorf("put %s: %w", key, err)
		}
		if done {
			return etag, nil
		}
	}
	tmp, etag, err := f.writeTemp(ctx, dir, body, size)
	if err != nil {
		return "", fmt.Errorf("put %s: %w", key, err)
	}

	if opts.IfNoneMatch {
		err := os.Link(tmp, path)
		// After a link the temp name is a second name of the object, and
		// after a failed one the only name of a file nobody wants.
		_ = os.Remove(tmp)
		if err != nil {
			if errors.Is(err, fs.ErrExist) {
				return "", fmt.Errorf("put %s: %w", key, ErrPreconditionFailed)
			}
			return "", fmt.Errorf("put %s: %w", key, err)
		}
	} else if err := f.replace(key, tmp, path, opts.IfMatch); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("put %s: %w", key, err)
	}
	if err := f.syncEntry(dir); err != nil {
		return "", fmt.Errorf("put %s: %w", key, err)
	}
	return etag, nil
}

// replace renames tmp onto path under key's lock, if path's ETag is ifMatch
// (when set).
func (f *Filesystem) replace(key, tmp, path, ifMatch string) error {
	unlock, err := f.lock(key)
	if err != nil {
		return err
	}
	defer unlock()
	if ifMatch != "" {
		cur, err := os.Stat(path)
		if err != nil || cur.IsDir() || fileETag(cur) != ifMatch {
			return ErrPreconditionFailed
		}
	}
	return os.Rename(tmp, path)
}

// syncEntry makes a new name in dir durable: dir's own entries, and dir's
// entry in its parent and so on up to the root where they may not be yet.
func (f *Filesystem) syncEntry(dir string) error {
	if err := f.syncAncestry(dir); err != nil {
		return err
	}
	return f.syncDir(dir)
}

// putAnonymous is a create-only Put through an anonymous temp file: it is
// written and fsynced in dir, then linked onto path, so no temp name is
// created and removed. done is false, with no error, when the filesystem
// cannot do this; the caller then uses a named temp file.
func (f *Filesystem) putAnonymous(ctx context.Context, dir, path string, body io.ReaderAt, size int64) (etag string, done bool, err error) {
	for range 10 {
		fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		switch {
		case errors.Is(err, unix.ENOENT):
			if err := f.mkdirs(dir); err != nil {
				return "", false, fmt.Errorf("create directory: %w", err)
			}
			continue
		case errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL):
			f.noTmpfile.Store(true)
			return "", false, nil
		case err != nil:
			return "", false, fmt.Errorf("create temp file in %s: %w", dir, err)
		}
		// The descriptor is used directly, not through an *os.File: a
		// regular file gains nothing from the runtime's poller, and
		// registering with it costs system calls on every Put.
		etag, err := f.fill(ctx, fd, body, size)
		if err != nil {
			_ = unix.Close(fd)
			return "", false, err
		}
		// Linking by the descriptor's /proc name needs no privilege
		// (linkat's AT_EMPTY_PATH does).
		err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
		_ = unix.Close(fd)
		switch {
		case err == nil:
			if err := f.syncEntry(dir); err != nil {
				return "", false, err
			}
			return etag, true, nil
		case errors.Is(err, unix.EEXIST):
			return "", false, ErrPreconditionFailed
		case errors.Is(err, unix.ENOENT) && !isDir(dir):
			// A Delete pruned the directory, which looked empty: the
			// anonymous file does not keep it, unlike a named one.
			continue
		case errors.Is(err, unix.ENOENT):
			// No /proc to link through.
			f.noTmpfile.Store(true)
			return "", false, nil
		default:
			return "", false, fmt.Errorf("link temp file: %w", err)
		}
	}
	return "", false, fmt.Errorf("directory %s keeps disappearing", dir)
}

// writeTemp writes body to a new fsynced temp file in dir (creating dir as
// needed) and returns its path and the ETag of the object it becomes.
func (f *Filesystem) writeTemp(ctx context.Context, dir string, body io.ReaderAt, size int64) (string, string, error) {
	var (
		tf  *os.File
		err error
	)
	// The directory usually exists: create it only when the temp file
	// cannot be. A concurrent Delete may prune dir between mkdirs and
	// CreateTemp, so retry a few times; once the temp file exists the dir
	// is not empty and will not be pruned.
	for range 10 {
		tf, err = os.CreateTemp(dir, internalPrefix+"tmp-*")
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err = f.mkdirs(dir); err != nil {
			return "", "", fmt.Errorf("create directory: %w", err)
		}
	}
	if err != nil {
		return "", "", fmt.Errorf("create temp file: %w", err)
	}
	name := tf.Name()
	etag, err := f.fill(ctx, int(tf.Fd()), body, size)
	if err != nil {
		_ = tf.Close()
		_ = os.Remove(name)
		return "", "", err
	}
	if err := tf.Close(); err != nil {
		_ = os.Remove(name)
		return "", "", fmt.Errorf("close temp file: %w", err)
	}
	return name, etag, nil
}

// fill writes body to the empty temp file fd, fsyncs it and returns the
// ETag the object will have: linking or renaming a file changes neither its
// inode, its size nor its modification time, so the temp file's are the
// object's, and no stat of the key is needed after.
func (f *Filesystem) fill(ctx context.Context, fd int, body io.ReaderAt, size int64) (string, error) {
	bp := f.bufs.Get().(*[]byte)
	defer f.bufs.Put(bp)
	buf := *bp
	var off int64
	for off < size {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		chunk := buf[:min(int64(len(buf)), size-off)]
		n, err := body.ReadAt(chunk, off)
		if n < len(chunk) {
			if err == nil || errors.Is(err, io.EOF) {
				return "", fmt.Errorf("body has %d bytes, want %d", off+int64(n), size)
			}
			return "", fmt.Errorf("read body: %w", err)
		}
		if err := writeAll(fd, chunk); err != nil {
			return "", fmt.Errorf("write temp file: %w", err)
		}
		off += int64(n)
	}
	if err := ignoringEINTR(func() error { return unix.Fsync(fd) }); err != nil {
		return "", fmt.Errorf("sync temp file: %w", err)
	}
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstat(fd, &st) }); err != nil {
		return "", fmt.Errorf("stat temp file: %w", err)
	}
	return etagOf(st.Ino, st.Size, st.Mtim.Nano()), nil
}

// writeAll writes all of p to fd.
func writeAll(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Write(fd, p)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		p = p[n:]
	}
	return nil
}

// ignoringEINTR calls fn until it is not interrupted by a signal.
func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// mkdirs creates dir and its missing ancestors and makes each one it
// creates durable in its parent before returning. It holds dirs' lock
// throughout, so no Put can find a directory it created in the durable set
// before its entry is synced (see the dirs field).
func (f *Filesystem) mkdirs(dir string) error {
	f.dirs.Lock()
	defer f.dirs.Unlock()
	// Find the deepest existing ancestor; everything below it is new.
	var missing []string
	for d := dir; d != f.root && strings.HasPrefix(d, f.root); d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s is a file, not a directory", d)
			}
			break
		}
		if !notExist(err) {
			return err
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		// Whoever created it before (another process, or this one before
		// it was removed behind our back) no longer vouches for it.
		delete(f.dirs.durable, d)
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := f.syncDir(filepath.Dir(d)); err != nil {
			return err
		}
		f.rememberLocked(d)
	}
	return nil
}

// syncAncestry makes dir's entry, and its ancestors' entries, durable in
// their parents unless the durable set says they are (see the dirs field).
func (f *Filesystem) syncAncestry(dir string) error {
	// The common case, a known directory, shares the lock: a Put waits
	// only for directories being created or synced (which hold it
	// exclusively), as the invariant needs, not for other Puts.
	f.dirs.RLock()
	_, known := f.dirs.durable[dir]
	f.dirs.RUnlock()
	if known {
		return nil
	}
	f.dirs.Lock()
	defer f.dirs.Unlock()
	var todo []string
	for d := dir; d != f.root && strings.HasPrefix(d, f.root); d = filepath.Dir(d) {
		if _, ok := f.dirs.durable[d]; ok {
			break
		}
		todo = append(todo, d)
	}
	for _, d := range todo {
		if err := f.syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	for _, d := range todo {
		f.rememberLocked(d)
	}
	return nil
}

// rememberLocked adds d to the durable set, emptying the set first when it
// is full. dirs' lock is held.
func (f *Filesystem) rememberLocked(d string) {
	if len(f.dirs.durable) >= maxDurableDirs {
		clear(f.dirs.durable)
	}
	f.dirs.durable[d] = struct{}{}
}

// syncDir makes a directory's entries (a new link or rename) durable.
// It uses the descriptor directly for the reason putAnonymous does.
func syncDir(dir string) error {
	var d int
	err := ignoringEINTR(func() (err error) {
		d, err = unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer func() { _ = unix.Close(d) }()
	if err := ignoringEINTR(func() error { return unix.Fsync(d) }); err != nil {
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
	// Pruning holds dirs' lock so a directory leaves the durable set as it
	// leaves the disk (see the dirs field).
	f.dirs.Lock()
	defer f.dirs.Unlock()
	for dir := filepath.Dir(path); dir != f.root && strings.HasPrefix(dir, f.root); dir = filepath.Dir(dir) {
		// Rmdir fails on a non-empty directory, which ends the pruning.
		if syscall.Rmdir(dir) != nil {
			break
		}
		delete(f.dirs.durable, dir)
	}
	return nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
