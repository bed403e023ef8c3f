// Package partitioner owns the names and sizes of what the sink writes: the
// partition modes (block size and largest compacted file per table), the
// mapping from a change's database, schema and table to a table path on the
// object store, and the keys of data files inside a table.
//
// Everything here is a pure function of its inputs. In particular a block's
// key is derived from its coordinates (LSN range and source offsets), so a
// retried flush of the same records writes to the same key instead of
// leaving a second copy behind.
package partitioner
