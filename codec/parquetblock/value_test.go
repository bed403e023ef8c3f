package parquetblock

import (
	"math"
	"testing"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"
)

// TestWithData checks withData's invariant against the parquet-go in use,
// then breaks it on purpose: a template whose levels or kind differ from
// what the constructor and Level give is a different value, so a change
// of parquet.Value's layout that moved the data fields would show up in
// valueLayoutErr rather than as wrong data in blocks.
func TestWithData(t *testing.T) {
	require.NoError(t, valueLayoutErr())

	for _, x := range []int64{0, 1, -1, math.MaxInt64, math.MinInt64} {
		require.Equal(t, parquet.Int64Value(x).Level(0, 1, 3), withData(parquet.Int64Value(0).Level(0, 1, 3), nil, uint64(x)))
		require.True(t, parquet.Equal(parquet.Int64Value(x), withData(parquet.Int64Value(0), nil, uint64(x))))
	}
	s := "text"
	require.Equal(t, parquet.ByteArrayValue(bytesOf(s)).Level(0, 1, 4),
		withData(parquet.ByteArrayValue(nil).Level(0, 1, 4), unsafe.StringData(s), uint64(len(s))))

	// Broken on purpose: the data is right but the template is not.
	wrongLevel := withData(parquet.Int64Value(0).Level(0, 0, 3), nil, 5)
	require.NotEqual(t, parquet.Int64Value(5).Level(0, 1, 3), wrongLevel)
	wrongKind := withData(parquet.Int32Value(0).Level(0, 1, 3), nil, 5)
	require.NotEqual(t, parquet.Int64Value(5).Level(0, 1, 3), wrongKind)
}
