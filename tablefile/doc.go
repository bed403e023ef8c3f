// Package tablefile is the contract of a table's data files, between the
// row codec and the table log: the evodb tags a data file's add action
// carries and their typed accessors, the Delta statistics of a file, and
// which files the sink wrote. The sink, compaction, verification and the
// command line read and write data files only through it, so a tag name
// or a stats field is spelt in one place.
package tablefile
