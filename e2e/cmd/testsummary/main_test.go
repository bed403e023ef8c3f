package main

import (
	"bytes"
	"os"
	"testing"
)

// testdata/skips.json is the real `go test -json` output of two small
// packages: one with a passing test, skipped tests and a skipped subtest,
// one with a skipped and a failing test.
func TestReportGroupsSkipsByReason(t *testing.T) {
	f, err := os.Open("testdata/skips.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := newSummary()
	if err := s.read(f); err != nil {
		t.Fatal(err)
	}
	s.finish()
	var out bytes.Buffer
	if err := s.report(&out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"4 skipped\n",
		"  skip   2  SINK_TEST_S3_ENDPOINT not set: the S3 acceptance test needs a server  [a]\n",
		"  skip   1  SINK_TEST_PYTHON not set  [b]\n",
		"=== FAILED example.com/suite/b TestFails\n",
		"1 passed, 1 failed\n",
	} {
		if !bytes.Contains(out.Bytes(), []byte(want)) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if !bytes.HasSuffix(out.Bytes(), []byte("1 passed, 1 failed\n")) {
		t.Errorf("the closing line is not last:\n%s", got)
	}
}

func TestSkipReason(t *testing.T) {
	for _, tc := range []struct{ name, out, want string }{
		{"prefixed", "=== RUN   TestX\n    x_test.go:12: no broker: set SINK_E2E_KAFKA\n--- SKIP: TestX (0.00s)\n", "no broker: set SINK_E2E_KAFKA"},
		{"colon in reason", "    x_test.go:3: a: b\n--- SKIP: TestX (0.00s)\n", "a: b"},
		{"none", "=== RUN   TestX\n--- SKIP: TestX (0.00s)\n", "(no reason given)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := skipReason(tc.out); got != tc.want {
				t.Errorf("skipReason = %q, want %q", got, tc.want)
			}
		})
	}
}
