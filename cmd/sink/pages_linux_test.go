package main

import (
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestReleaseFilePagesSkipsCopies maps a file twice: one mapping read
// only, and one written to (a private copy of its first page) before it
// was made read only, as a position-independent executable's relocated
// data is. Releasing the file's pages drops the first mapping's, which
// read back the file, and leaves the second alone: dropping its copy would
// lose the write.
func TestReleaseFilePagesSkipsCopies(t *testing.T) {
	page := os.Getpagesize()
	path := filepath.Join(t.TempDir(), "exe")
	data := make([]byte, 2*page)
	for i := range data {
		data[i] = 'a'
	}
	require.NoError(t, os.WriteFile(path, data, 0o644))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()

	clean, err := unix.Mmap(int(f.Fd()), 0, len(data), unix.PROT_READ, unix.MAP_PRIVATE)
	require.NoError(t, err)
	defer unix.Munmap(clean)
	copied, err := unix.Mmap(int(f.Fd()), 0, len(data), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	require.NoError(t, err)
	defer unix.Munmap(copied)
	copied[0] = 'z'
	require.NoError(t, unix.Mprotect(copied, unix.PROT_READ))
	var sum byte
	for i := 0; i < len(data); i += page {
		sum += clean[i] + copied[i]
	}
	require.NotZero(t, sum)

	resident := func(m []byte) int64 {
		t.Helper()
		smaps, err := os.ReadFile("/proc/self/smaps")
		require.NoError(t, err)
		for _, mp := range parseSmaps(smaps) {
			if mp.path == path && mp.start == uintptrOf(m) {
				return mp.rss
			}
		}
		t.Fatalf("no mapping of %s", path)
		return 0
	}
	require.Equal(t, int64(2*page), resident(clean))

	released, err := releaseFilePages(path)
	require.NoError(t, err)
	require.Equal(t, int64(2*page), released, "only the clean mapping's pages")
	require.Zero(t, resident(clean), "its pages are no longer resident")
	require.Equal(t, byte('z'), copied[0], "the private copy survives")
	require.Equal(t, byte('a'), clean[0], "a released page reads back the file")
	require.Equal(t, byte('a'), clean[page])
}

// uintptrOf returns the address of m's first byte, to find its mapping.
func uintptrOf(m []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(m))) }
