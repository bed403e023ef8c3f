package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// releaseExecutablePages drops this process's resident pages of its
// executable's read-only mappings and returns how many bytes were resident
// in them. Package initialisation reads much of the binary once (the
// Iceberg library alone loads every Substrait extension from its embedded
// YAML): without this those pages stay in the process's resident set for
// its whole life, 50 MiB or more of it, while the code the sink runs from
// then on is a fraction of that. Pages used again are mapped again from
// the page cache, or read from the file, on first touch.
//
// It relies on an invariant: a read-only mapping of the executable holds
// the file's contents, so a page dropped from it reads back the same. A
// page the process wrote to before making the mapping read-only (a
// position-independent executable's relocated data) is a private copy
// that dropping would lose, so a mapping with any such page ("Anonymous"
// above zero in smaps) is left alone. TestReleaseFilePagesSkipsCopies
// makes such a page and checks that it survives.
func releaseExecutablePages() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("find the executable: %w", err)
	}
	return releaseFilePages(exe)
}

// releaseFilePages drops this process's resident pages of the read-only
// mappings of file that hold no private copies, and returns how many bytes
// were resident in them; see releaseExecutablePages.
func releaseFilePages(file string) (int64, error) {
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return 0, fmt.Errorf("read the process's mappings: %w", err)
	}
	var released int64
	for _, m := range parseSmaps(smaps) {
		if m.path != file || m.writable || m.anonymous > 0 || m.rss == 0 {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_DONTNEED); errno != 0 {
			return released, fmt.Errorf("release pages of %s at %#x: %w", file, m.start, errno)
		}
		released += m.rss
	}
	return released, nil
}

// mapping is one entry of /proc/<pid>/smaps.
type mapping struct {
	start, end uintptr
	writable   bool
	path       string
	// rss and anonymous are the mapping's resident bytes and, of those,
	// the private copies of pages that are no longer the file's.
	rss, anonymous int64
}

// parseSmaps reads the mappings of an smaps file, skipping lines it does
// not know.
func parseSmaps(data []byte) []mapping {
	var out []mapping
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			lo, hi, _ := strings.Cut(fields[0], "-")
			start, err1 := strconv.ParseUint(lo, 16, 64)
			end, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 != nil || err2 != nil {
				continue
			}
			m := mapping{start: uintptr(start), end: uintptr(end), writable: len(fields[1]) > 1 && fields[1][1] == 'w'}
			if len(fields) >= 6 {
				m.path = strings.Join(fields[5:], " ")
			}
			out = append(out, m)
			continue
		}
		if len(out) == 0 || len(fields) < 2 {
			continue
		}
		kb, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "Rss:":
			out[len(out)-1].rss = kb << 10
		case "Anonymous:":
			out[len(out)-1].anonymous = kb << 10
		}
	}
	return out
}
