package cdc_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/internal/codectest"
)

// DecodeBorrowed decodes what Decode does, shares the record's memory and
// reuses the row array it is given.
func TestDecodeBorrowed(t *testing.T) {
	for _, f := range []codec.Format{cdc.FormatEvoDB, cdc.FormatDebezium} {
		t.Run(string(f), func(t *testing.T) {
			d, err := cdc.NewDecoder(f)
			require.NoError(t, err)
			bd, ok := d.(cdc.BorrowingDecoder)
			require.True(t, ok)
			recs := codectest.Records(50, f)
			var dst codec.Change
			for _, rec := range recs {
				var want codec.Change
				require.NoError(t, d.Decode(rec, &want))
				before := dst.Row
				require.NoError(t, bd.DecodeBorrowed(rec, &dst))
				require.Equal(t, want.Row, dst.Row)
				require.Equal(t, want.LSN, dst.LSN)
				require.Equal(t, want.Table, dst.Table)
				// Debezium's before-image may take the array instead.
				if f == cdc.FormatEvoDB && cap(before) >= len(dst.Row) && len(before) > 0 {
					require.Same(t, &before[:1][0], &dst.Row[:1][0], "the row array is reused")
				}
			}
		})
	}
}
