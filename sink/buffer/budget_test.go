package buffer

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBudgetValidate(t *testing.T) {
	cases := []struct {
		name    string
		b       Budget
		wantErr bool
	}{
		{name: "ok", b: Budget{Limit: 100, High: 90, Low: 60}},
		{name: "high equals limit", b: Budget{Limit: 100, High: 100, Low: 60}},
		{name: "zero", b: Budget{}, wantErr: true},
		{name: "low zero", b: Budget{Limit: 100, High: 90, Low: 0}, wantErr: true},
		{name: "low negative", b: Budget{Limit: 100, High: 90, Low: -1}, wantErr: true},
		{name: "low equals high", b: Budget{Limit: 100, High: 60, Low: 60}, wantErr: true},
		{name: "low above high", b: Budget{Limit: 100, High: 60, Low: 90}, wantErr: true},
		{name: "high above limit", b: Budget{Limit: 100, High: 101, Low: 60}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.b.Validate()
			_, cErr := NewController(tc.b)
			if tc.wantErr {
				require.Error(t, err)
				require.Error(t, cErr)
				return
			}
			require.NoError(t, err)
			require.NoError(t, cErr)
		})
	}
}

func TestBudgetFromFractions(t *testing.T) {
	cases := []struct {
		name      string
		limit     int64
		high, low float64
		want      Budget
		wantError string
	}{
		{name: "typical", limit: 1000, high: 0.9, low: 0.6, want: Budget{Limit: 1000, High: 900, Low: 600}},
		{name: "high at limit", limit: 1 << 30, high: 1, low: 0.5, want: Budget{Limit: 1 << 30, High: 1 << 30, Low: 1 << 29}},
		{name: "NaN high", limit: 1000, high: math.NaN(), low: 0.6, wantError: "not a number"},
		{name: "NaN low", limit: 1000, high: 0.9, low: math.NaN(), wantError: "not a number"},
		{name: "infinite", limit: 1000, high: math.Inf(1), low: 0.6, wantError: "not a number"},
		{name: "low above high", limit: 1000, high: 0.6, low: 0.9, wantError: "want 0 < low"},
		{name: "equal", limit: 1000, high: 0.6, low: 0.6, wantError: "want 0 < low"},
		{name: "high above one", limit: 1000, high: 1.5, low: 0.6, wantError: "want 0 < low"},
		{name: "low zero", limit: 1000, high: 0.9, low: 0, wantError: "want 0 < low"},
		{name: "zero limit", limit: 0, high: 0.9, low: 0.6, wantError: "limit 0"},
		{name: "negative limit", limit: -1, high: 0.9, low: 0.6, wantError: "limit -1"},
		{name: "rounds to zero low", limit: 1, high: 0.9, low: 0.6, wantError: "want 0 < low (0)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := BudgetFromFractions(tc.limit, tc.high, tc.low)
			if tc.wantError != "" {
				require.ErrorContains(t, err, tc.wantError)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestControllerHysteresis(t *testing.T) {
	c, err := NewController(Budget{Limit: 100, High: 90, Low: 60})
	require.NoError(t, err)
	steps := []struct {
		buffered    int64
		wantPause   bool
		wantChanged bool
	}{
		{buffered: 0},
		{buffered: 90}, // at high: not above it
		{buffered: 91, wantPause: true, wantChanged: true}, // above high
		{buffered: 95, wantPause: true},                    // stays paused
		{buffered: 75, wantPause: true},                    // between: holds, no flapping
		{buffered: 89, wantPause: true},
		{buffered: 60, wantPause: true},   // at low: not below it
		{buffered: 59, wantChanged: true}, // below low: resumes (no latch)
		{buffered: 75},                    // between: holds running
		{buffered: 89},
		{buffered: 100, wantPause: true, wantChanged: true},
		{buffered: 0, wantChanged: true},
		{buffered: 0},
	}
	for i, s := range steps {
		pause, changed := c.Update(s.buffered)
		require.Equal(t, s.wantPause, pause, "step %d (%d bytes)", i, s.buffered)
		require.Equal(t, s.wantChanged, changed, "step %d (%d bytes)", i, s.buffered)
		require.Equal(t, s.wantPause, c.Paused())
	}
}

func TestControllerWouldExceed(t *testing.T) {
	c, err := NewController(Budget{Limit: 100, High: 90, Low: 60})
	require.NoError(t, err)
	cases := []struct {
		buffered, record int64
		want             bool
	}{
		{buffered: 0, record: 10},
		{buffered: 0, record: 1000}, // an empty buffer takes any record
		{buffered: 90, record: 10},
		{buffered: 90, record: 11, want: true},
		{buffered: 100, record: 0},
		{buffered: 100, record: 1, want: true},
		{buffered: 150, record: 1, want: true},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, c.WouldExceed(tc.buffered, tc.record), "%d + %d", tc.buffered, tc.record)
	}
}

// TestControllerTablesState checks that the tables' state counted with
// AddState leaves buffers less, watermarks and limit alike, gives it back
// when tables go, and never leaves buffers less than a quarter.
func TestControllerTablesState(t *testing.T) {
	c, err := NewController(Budget{Limit: 1000, High: 900, Low: 600})
	require.NoError(t, err)
	require.Equal(t, Budget{Limit: 1000, High: 900, Low: 600}, c.Budget())

	c.AddState(100) // tables open
	require.Equal(t, Budget{Limit: 900, High: 810, Low: 540}, c.Budget())
	require.Equal(t, int64(100), c.State())
	require.True(t, c.WouldExceed(850, 100), "the limit is what the tables leave")
	pause, _ := c.Update(850)
	require.True(t, pause, "above the lowered high watermark")

	c.AddState(-100) // and close
	require.Equal(t, Budget{Limit: 1000, High: 900, Low: 600}, c.Budget())
	require.False(t, c.WouldExceed(850, 100))
	pause, _ = c.Update(850)
	require.True(t, pause, "hysteresis: still above the low watermark")

	c.AddState(5000) // more state than budget
	require.Equal(t, Budget{Limit: 250, High: 225, Low: 150}, c.Budget(), "buffers keep a quarter")
	require.Equal(t, Budget{Limit: 1000, High: 900, Low: 600}, c.Configured())
}

// TestControllerReserve checks that a fixed cost counted with Reserve
// leaves buffers less together with the tables' state, replaces what an
// earlier Reserve counted rather than adding to it, and shares the floor
// of a quarter with the state.
func TestControllerReserve(t *testing.T) {
	c, err := NewController(Budget{Limit: 1000, High: 900, Low: 600})
	require.NoError(t, err)

	c.Reserve(200) // the encoders
	require.Equal(t, Budget{Limit: 800, High: 720, Low: 480}, c.Budget())
	require.Equal(t, int64(200), c.Reserved())
	require.Equal(t, int64(0), c.State(), "a reserve is not tables' state")

	c.AddState(100)
	require.Equal(t, Budget{Limit: 700, High: 630, Low: 420}, c.Budget(), "state and reserve add up")
	require.True(t, c.WouldExceed(650, 100))

	c.Reserve(100) // replaces, does not add
	require.Equal(t, Budget{Limit: 800, High: 720, Low: 480}, c.Budget())

	c.AddState(-100)
	require.Equal(t, Budget{Limit: 900, High: 810, Low: 540}, c.Budget(), "the reserve stays when the tables go")

	c.Reserve(900)
	require.Equal(t, Budget{Limit: 250, High: 225, Low: 150}, c.Budget(), "buffers keep a quarter")
}
