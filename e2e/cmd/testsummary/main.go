// Command testsummary reads the output of one or more `go test -json` runs
// and prints, in order: one line per package, the full output of every failed
// test, and a closing line of the form "N passed, N failed".
//
// Counts include top-level tests and subtests alike: each t.Run is a test
// that can pass or fail on its own, and a failing subtest also fails its
// parent, so both are counted. A package that fails without any failed test
// (a build error, a panic outside a test, a timeout) counts as one failure so
// that the closing line can never read "0 failed" for a broken run. Skipped
// tests are reported on their own line before the closing line.
//
// It exits 1 if anything failed or an input could not be read, 0 otherwise.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testsummary FILE.json... (- for stdin)")
		os.Exit(2)
	}
	s := newSummary()
	for _, name := range os.Args[1:] {
		if err := readFile(s, name); err != nil {
			fmt.Fprintf(os.Stderr, "testsummary: %v\n", err)
			s.readErrors++
		}
	}
	s.finish()
	if err := s.report(os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "testsummary: %v\n", err)
		os.Exit(1)
	}
	if s.failed() > 0 || s.readErrors > 0 {
		os.Exit(1)
	}
}

func readFile(s *summary, name string) error {
	if name == "-" {
		return s.read(os.Stdin)
	}
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("open test output: %w", err)
	}
	defer f.Close()
	if err := s.read(f); err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	return nil
}

// event is one line of `go test -json` (see `go doc test2json`).
type event struct {
	Time    time.Time
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
	// ImportPath names the package of build events (go1.24+), which have
	// no Package; FailedBuild names the package whose build failed a run.
	ImportPath  string
	FailedBuild string
}

type key struct{ pkg, test string }

type testState struct {
	action string // the last terminal action: pass, fail or skip; "" while running
	output strings.Builder
}

type pkgState struct {
	action  string // pass, fail, skip, or "" if the run ended without one
	elapsed float64
	output  strings.Builder // output not attributed to a test: panics, timeouts
	failed  int             // tests in this package that failed
	build   string          // the import path whose build failed this package's run
}

type summary struct {
	tests      map[key]*testState
	order      []key
	pkgs       map[string]*pkgState
	pkgOrder   []string
	buildOut   map[string]*strings.Builder
	pass, skip int
	fail       []key
	pkgFail    []string
	readErrors int
	badLines   int
}

func newSummary() *summary {
	return &summary{
		tests:    map[key]*testState{},
		pkgs:     map[string]*pkgState{},
		buildOut: map[string]*strings.Builder{},
	}
}

func (s *summary) pkg(name string) *pkgState {
	p, ok := s.pkgs[name]
	if !ok {
		p = &pkgState{}
		s.pkgs[name] = p
		s.pkgOrder = append(s.pkgOrder, name)
	}
	return p
}

func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if err := json.Unmarshal(line, &ev); err != nil || ev.Action == "" {
			// go test prints some things outside the JSON stream (for
			// example the linker's warnings); keep them visible.
			s.badLines++
			fmt.Fprintf(os.Stderr, "%s\n", line)
			continue
		}
		s.add(ev)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	return nil
}

func (s *summary) add(ev event) {
	if ev.Package == "" {
		// Build events (go1.24+) name the package being built in
		// ImportPath; a failed run later points at it with FailedBuild.
		if ev.Action == "build-output" {
			b, ok := s.buildOut[ev.ImportPath]
			if !ok {
				b = &strings.Builder{}
				s.buildOut[ev.ImportPath] = b
			}
			b.WriteString(ev.Output)
		}
		return
	}
	p := s.pkg(ev.Package)
	if ev.Test == "" {
		switch ev.Action {
		case "output":
			p.output.WriteString(ev.Output)
		case "pass", "fail", "skip":
			p.action = ev.Action
			p.elapsed = ev.Elapsed
			if ev.FailedBuild != "" {
				p.build = ev.FailedBuild
			}
		}
		return
	}
	k := key{ev.Package, ev.Test}
	t, ok := s.tests[k]
	if !ok {
		t = &testState{}
		s.tests[k] = t
		s.order = append(s.order, k)
	}
	switch ev.Action {
	case "output":
		t.output.WriteString(ev.Output)
	case "pass", "fail", "skip":
		t.action = ev.Action
	}
}

// skipReason is the message a skipped test gave to t.Skip: the last line
// of its output before go test's own "--- SKIP" line, without the
// "file_test.go:12: " prefix the testing package puts before it.
func skipReason(out string) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "--- SKIP") || strings.HasPrefix(l, "=== ") {
			continue
		}
		if _, rest, ok := strings.Cut(l, ": "); ok && strings.Contains(l[:len(l)-len(rest)], ".go:") {
			l = rest
		}
		return l
	}
	return "(no reason given)"
}

// reportSkipped prints how many tests were skipped and, grouped by the
// reason they gave, which packages they are in, so a run that lacked a
// service (an S3 server, the Python readers, a broker) says so at its end
// instead of passing quietly with less coverage.
func (s *summary) reportSkipped(w io.Writer) {
	fmt.Fprintf(w, "\n%d skipped\n", s.skip)
	type group struct {
		n    int
		pkgs []string
	}
	groups := map[string]*group{}
	var reasons []string
	for _, k := range s.order {
		t := s.tests[k]
		if t.action != "skip" || strings.Contains(k.test, "/") {
			// A subtest skipped for the same reason as its parent
			// would only repeat the parent's line.
			continue
		}
		r := skipReason(t.output.String())
		g, ok := groups[r]
		if !ok {
			g = &group{}
			groups[r] = g
			reasons = append(reasons, r)
		}
		g.n++
		short := k.pkg[strings.LastIndex(k.pkg, "/")+1:]
		if len(g.pkgs) == 0 || g.pkgs[len(g.pkgs)-1] != short {
			g.pkgs = append(g.pkgs, short)
		}
	}
	sort.Slice(reasons, func(i, j int) bool { return groups[reasons[i]].n > groups[reasons[j]].n })
	for _, r := range reasons {
		g := groups[r]
		fmt.Fprintf(w, "  skip %3d  %s  [%s]\n", g.n, r, strings.Join(g.pkgs, " "))
	}
}

// finish counts every test once by its final action. A test that started
// but never finished (its binary panicked or timed out) counts as failed.
func (s *summary) finish() {
	for _, k := range s.order {
		t := s.tests[k]
		switch t.action {
		case "pass":
			s.pass++
		case "skip":
			s.skip++
		default:
			s.fail = append(s.fail, k)
			s.pkg(k.pkg).failed++
		}
	}
	for _, name := range s.pkgOrder {
		p := s.pkgs[name]
		if p.action != "pass" && p.action != "skip" && p.failed == 0 {
			s.pkgFail = append(s.pkgFail, name)
		}
	}
	sort.Strings(s.pkgFail)
}

func (s *summary) failed() int { return len(s.fail) + len(s.pkgFail) }

func (s *summary) report(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, name := range s.pkgOrder {
		p := s.pkgs[name]
		switch p.action {
		case "pass":
			fmt.Fprintf(bw, "pass  %s (%.1fs)\n", name, p.elapsed)
		case "skip":
			// go test reports a package without tests as skipped.
			fmt.Fprintf(bw, "none  %s (no tests)\n", name)
		default:
			fmt.Fprintf(bw, "FAIL  %s (%.1fs)\n", name, p.elapsed)
		}
	}
	for _, k := range s.fail {
		fmt.Fprintf(bw, "\n=== FAILED %s %s\n", k.pkg, k.test)
		bw.WriteString(s.tests[k].output.String())
	}
	for _, name := range s.pkgFail {
		p := s.pkgs[name]
		fmt.Fprintf(bw, "\n=== FAILED package %s (no failed test reported)\n", name)
		if b, ok := s.buildOut[p.build]; ok {
			bw.WriteString(b.String())
		}
		bw.WriteString(p.output.String())
	}
	if s.readErrors > 0 {
		fmt.Fprintf(bw, "\n%d test output file(s) could not be read\n", s.readErrors)
	}
	if s.pass+s.failed()+s.skip == 0 {
		fmt.Fprintln(bw, "\nno test ran")
	}
	s.reportSkipped(bw)
	fmt.Fprintf(bw, "%d passed, %d failed\n", s.pass, s.failed())
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
