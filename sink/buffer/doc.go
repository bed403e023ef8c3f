// Package buffer holds decoded changes in memory until they are flushed as a
// block: a Table buffer per table with flush triggers and an enforced byte
// maximum, a Multi buffer over all tables, and a Controller that keeps the
// total under a memory budget by asking for early flushes and for fetching
// to pause.
//
// Nothing here reads a clock: callers pass the current time in, so flush
// decisions are deterministic in tests.
package buffer
