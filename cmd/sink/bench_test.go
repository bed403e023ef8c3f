package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBench runs a tiny benchmark in-process and checks the table and the
// JSON it writes; it asserts nothing about speed.
func TestBench(t *testing.T) {
	ctx := testContext(t)
	out := filepath.Join(t.TempDir(), "bench.json")
	e, stdout, stderr := testEnv(nil)
	code := runMain(ctx, e, []string{"bench", "-records", "2000", "-runs", "1", "-latency", "0",
		"-format", "evodb,debezium,protobuf", "-json-out", out})
	require.Equal(t, 0, code, stderr.String())
	require.Contains(t, stdout.String(), "sink records/CPU-s")
	require.Contains(t, stdout.String(), "8 tables debezium")
	require.Contains(t, stdout.String(), "8 tables protobuf")
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	var res []map[string]any
	require.NoError(t, json.Unmarshal(b, &res))
	require.Len(t, res, 3)

	for _, args := range [][]string{
		{"bench", "-tables", "x"},
		{"bench", "-format", "thrift"},
		{"bench", "-records", "0"},
	} {
		e, _, _ := testEnv(nil)
		require.Equal(t, 2, runMain(ctx, e, args), args)
	}
}
