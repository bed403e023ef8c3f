package codec

// ColumnStats are the statistics of one column in a block. Min and Max are
// null when the column has no non-null value or its type has no order
// (binary, JSON, boolean); NaN doubles are ignored.
type ColumnStats struct {
	Type      Type
	Min, Max  Value
	NullCount int64
}

// BlockStats describe an encoded block.
type BlockStats struct {
	Rows           int64
	Bytes          int64
	MinLSN, MaxLSN uint64
	MinTS, MaxTS   int64
	// Columns holds every column, metadata columns included.
	Columns map[string]ColumnStats
}
