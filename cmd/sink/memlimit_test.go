package main

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// The soft memory limit is the budget plus 16 MiB for the runtime, with
// the collector's growth target raised under it; GOMEMLIMIT in the
// environment leaves both alone, GOGC the growth target.
func TestSetMemoryLimit(t *testing.T) {
	oldLimit, oldPercent := debug.SetMemoryLimit(-1), debug.SetGCPercent(100)
	t.Cleanup(func() {
		debug.SetMemoryLimit(oldLimit)
		debug.SetGCPercent(oldPercent)
	})
	const budget = 128 << 20
	require.Equal(t, int64(144<<20), softMemoryLimit(budget))

	e, _, _ := testEnv(nil)
	setMemoryLimit(e, budget)
	require.Equal(t, softMemoryLimit(budget), debug.SetMemoryLimit(-1))
	require.Equal(t, gcPercent, debug.SetGCPercent(100))

	debug.SetMemoryLimit(1 << 40)
	e, _, _ = testEnv(map[string]string{"GOGC": "200"})
	setMemoryLimit(e, budget)
	require.Equal(t, softMemoryLimit(budget), debug.SetMemoryLimit(-1))
	require.Equal(t, 100, debug.SetGCPercent(100), "GOGC set: the growth target is the environment's")

	debug.SetMemoryLimit(1 << 40)
	e, _, _ = testEnv(map[string]string{"GOMEMLIMIT": "1GiB"})
	setMemoryLimit(e, budget)
	require.Equal(t, int64(1<<40), debug.SetMemoryLimit(-1), "GOMEMLIMIT set: the limit is the environment's")
	require.Equal(t, 100, debug.SetGCPercent(100))
}
