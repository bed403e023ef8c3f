package bench

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRunMirror runs both mirror workloads end to end at a tiny size: the
// run fails unless the mirror equals its change log's view at the end
// (mirror.Check), and every figure is filled in and consistent. It
// asserts nothing about speed.
func TestRunMirror(t *testing.T) {
	for _, w := range []string{MirrorUpdate, MirrorInsert} {
		t.Run(w, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			res, err := RunMirror(ctx, MirrorConfig{
				Workload: w, Rows: 3000, Rate: 1000, Duration: 1500 * time.Millisecond,
				Interval: 100 * time.Millisecond, FlushInterval: 200 * time.Millisecond, Seed: 1,
				TempDir: t.TempDir(),
			})
			require.NoError(t, err)
			require.Contains(t, res.Check, "equal to the view")
			require.Positive(t, res.Changes)
			require.Equal(t, res.Changes, res.Ops["INSERT"]+res.Ops["UPDATE"]+res.Ops["DELETE"])
			if w == MirrorUpdate {
				require.Greater(t, res.Ops["UPDATE"], res.Ops["INSERT"]+res.Ops["DELETE"])
			} else {
				require.Greater(t, res.Ops["INSERT"], res.Ops["UPDATE"]+res.Ops["DELETE"])
			}
			require.Equal(t, 3000+res.Ops["INSERT"]-res.Ops["DELETE"], res.LiveRows, "one visible row per live key")
			require.Positive(t, res.Lag.Versions)
			require.Positive(t, res.Lag.P50)
			require.GreaterOrEqual(t, res.Lag.Max, res.Lag.P99)
			require.GreaterOrEqual(t, res.Lag.P99, res.Lag.P50)
			require.Positive(t, res.Written.Data)
			require.Positive(t, res.Written.Log)
			require.Positive(t, res.Written.PerChange)
			require.Positive(t, res.ChangeLogBytesPerChange)
			require.Positive(t, res.MirrorCommits)
			require.Positive(t, res.Files)
			require.Positive(t, res.CPUOn)
			require.Positive(t, res.CPUOff)
		})
	}
}
