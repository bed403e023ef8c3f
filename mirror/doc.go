// Package mirror maintains mirror tables: beside a change log (a table
// holding one row per change, docs/current-state.md), a Delta table
// holding the change log's current state, one row per primary key, kept up
// to date from the change log exactly once.
//
// # The rule
//
// The mirror at version V, read with its deletion vectors, equals the
// current-state view of the change log at version W, row for row and in
// every column (the metadata columns _op, _lsn, _ts, _topic, _partition
// and _offset included), where W is the mirror's txn version for the
// appId AppID(change log's table id) at V. The view is the latest change
// per primary key by (_lsn, _partition, _offset), without the keys whose
// latest change is a DELETE. Check verifies the rule.
//
// # Layout
//
// A mirror's data files hold change-log rows unchanged. For each key the
// mirror holds physically the change-log row that is the key's latest
// change, and may hold older, superseded rows of the key, which deletion
// vectors delete. The latest row is visible unless it is a DELETE: a
// delete (a tombstone) is written and deleted at once, so readers never
// see it but the maintainer does, and an older change arriving later for
// the deleted key is ignored because the tombstone's order is greater. A
// key's state is therefore the physical row with the greatest order,
// whatever the deletion vectors say; the mirror needs no side files.
//
// Every file the maintainer writes is sorted by key (the key's canonical
// encoding, see keyOf) and holds each key once, so a key is found in a
// file by binary search over the file's keys, which the maintainer keeps
// in memory (fileIndex).
//
// Keys are compared by value, column by column, as the view's PARTITION
// BY compares them; a null key column is a value like any other (the view
// puts all nulls of a column in one partition), so rows with a null key
// are mirrored, one per distinct key.
//
// # Maintenance
//
// One Maintainer per mirror at a time (Scheduler takes a lease) applies
// the change log's commits in order, a bounded batch per Step: it reads
// the files the commits added with dataChange=true, reduces them to the
// latest change per key, keeps the changes newer than the mirror's row of
// the key, writes them as one key-sorted file, deletes the rows they
// supersede, and commits all of it with the txn version of the last
// change-log version applied. Compaction of the change log
// (dataChange=false) changes no row and is skipped: that is what Delta
// defines the flag to mean, and the maintainer relies on it. A writer that
// rewrites rows under dataChange=false is not followed; Check, which reads
// the change log's files, reports the mirror unequal to the view. Anything else the
// maintainer cannot follow (a dataChange removal, a version log cleanup
// deleted, a file vacuum deleted, a replaced change log, another key)
// makes it rebuild the mirror from a change-log snapshot.
//
// Txns fence the maintainer. A step's commit sets W on the condition
// that the mirror's W is still the one the step started from, and every
// commit (steps, rebuilds, compactions) also advances a sequence txn on
// the condition that it is still the one its snapshot held: a
// compare-and-swap that orders all commits to the mirror. Two maintainers
// racing (a lease that expired under a paused process) therefore never
// both apply a version, and a compaction never rewrites rows that a
// concurrent step superseded. A commit whose outcome is unknown is retried
// with its commit id; a crash at any point leaves orphan files at most,
// and the next step starts from the mirror's W.
package mirror
