// Package compaction merges a table's small files into few large ones and
// deletes what no reader needs any more.
//
// The planner (Plan) is a pure function of a table snapshot: tiered,
// LSN-adjacent merges up to the partition mode's largest file, with a file
// count bound stated on Plan. The executor (Execute) reads a job's inputs,
// merges their rows in _lsn order under the union of their schemas, uploads
// one file and commits remove(inputs) + add(output) with dataChange=false in
// one OPTIMIZE commit, failing cleanly if an input is already gone. The
// Scheduler runs both per table under a lease object (one compactor per
// table across all sink instances) in the background or once, and Vacuum
// deletes removed and orphaned data files after a retention period, the
// only way inputs ever leave the store.
//
// Crash safety follows from the order of writes: the output is uploaded
// before the commit names it, and inputs are deleted only by Vacuum, long
// after the commit that removed them. A crash at any step leaves at worst
// an orphan output, which Vacuum deletes once it is older than the
// retention.
package compaction
