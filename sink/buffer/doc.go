// Package buffer holds decoded changes in memory until they are flushed as a
// block: a Table buffer per table with flush triggers and an enforced byte
// maximum, and a Controller that keeps the total under a memory budget by
// deciding when fetching pauses and resumes. The sink owns the buffers of
// all tables, their locking, and the choice of which to flush early.
//
// Nothing here reads a clock: callers pass the current time in, so flush
// decisions are deterministic in tests.
package buffer
