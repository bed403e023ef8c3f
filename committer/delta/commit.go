package delta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/cenkalti/backoff/v4"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

// commitInfo keys of our own, next to Delta's standard ones. Readers ignore
// unknown commitInfo fields.
const (
	infoCommitID = "evodbCommitId"
	infoInstance = "evodbInstance"
	infoExtra    = "evodbInfo"
)

// check returns why c cannot be committed on top of s, or nil. schema is
// c.Metadata's schema as a schemaString ("" without Metadata).
func (t *Table) check(c *committer.Commit, s *committer.Snapshot, schema string) error {
	ss := st(s)
	if err := t.writable(ss.protocol, ss.metadata); err != nil {
		return err
	}
	if err := t.checkChanges(c, ss.protocol, ss.metadata); err != nil {
		return err
	}
	if err := c.CheckTxns(s); err != nil {
		return err
	}
	if err := c.CheckFiles(s); err != nil {
		return err
	}
	if err := checkRemovedVectors(c, s); err != nil {
		return err
	}
	if c.Metadata != nil && c.ReadVersion >= 0 && ss.metadataVersion > c.ReadVersion &&
		ss.metadata.SchemaString != schema {
		return fmt.Errorf("schema changed at version %d, after read version %d: %w",
			ss.metadataVersion, c.ReadVersion, committer.ErrMetadataChanged)
	}
	return nil
}

// checkRemovedVectors refuses c on top of s if it removes a file with the
// deleted rows it read (Remove.Deleted set) and the file has other deleted
// rows in s: rows were deleted from it since, which a rewrite of the file
// made from what the writer read would bring back. The file the writer
// read is no longer active, as Delta's (path, deletion vector) identity
// says, hence a *committer.FileRemovedError.
func checkRemovedVectors(c *committer.Commit, s *committer.Snapshot) error {
	for _, r := range c.Removes {
		if r.Deleted == nil {
			continue
		}
		a := s.Files[r.Path]
		if a.Deleted == nil || tombKey(r.Path, r.Deleted) != tombKey(a.Path, a.Deleted) {
			return &committer.FileRemovedError{Path: r.Path, TableVersion: s.Version}
		}
	}
	return nil
}

// metadataAction returns the metaData action of md, whose schema is the
// schemaString schema.
func metadataAction(md committer.Metadata, schema string) metadata {
	return metadata{
		ID:               md.ID,
		Name:             md.Name,
		SchemaString:     schema,
		PartitionColumns: md.PartitionColumns,
		Configuration:    md.Configuration,
		CreatedTime:      md.CreatedTime,
	}
}

// entry builds the log entry that commits c on top of s, with dvs the
// deletion vectors of the files c deletes rows of (deletionVectors).
func (t *Table) entry(c *committer.Commit, s *committer.Snapshot, schema string, dvs map[string]DeletionVector) *logEntry {
	now := t.opts.Now().UnixMilli()
	readVersion := c.ReadVersion
	if readVersion < 0 {
		readVersion = s.Version
	}
	info := map[string]any{
		"timestamp":           now,
		"operation":           c.Operation,
		"operationParameters": map[string]string{},
		"readVersion":         readVersion,
		"isolationLevel":      "Serializable",
		"isBlindAppend":       len(c.Removes) == 0 && len(c.Deletes) == 0 && c.Metadata == nil,
		"engineInfo":          EngineInfo,
		infoCommitID:          c.ID,
		infoInstance:          t.opts.Instance,
	}
	switch c.Operation {
	case committer.OpStreamingUpdate:
		info["operationParameters"] = map[string]string{"outputMode": "Append"}
	case committer.OpWrite:
		info["operationParameters"] = map[string]string{"mode": "Append"}
	}
	if len(c.Info) > 0 {
		info[infoExtra] = maps.Clone(c.Info)
	}
	e := &logEntry{commitInfo: info}
	cur := st(s).metadata
	if c.Metadata != nil && !sameMetadata(metadataAction(*c.Metadata, schema), cur) {
		md := cloneMetadata(metadataAction(*c.Metadata, schema))
		if md.ID == "" {
			md.ID = cur.ID
		}
		if md.CreatedTime == 0 {
			md.CreatedTime = cur.CreatedTime
		}
		if md.Name == "" {
			md.Name = cur.Name
		}
		if md.PartitionColumns == nil {
			md.PartitionColumns = slices.Clone(cur.PartitionColumns)
		}
		if md.Configuration == nil {
			md.Configuration = maps.Clone(cur.Configuration)
		}
		e.metadata = &md
	}
	for _, tc := range c.Txns {
		e.txns = append(e.txns, Txn{AppID: tc.AppID, Version: tc.LastOffset, LastUpdated: now})
		if tc.Lineage != "" {
			e.txns = append(e.txns, Txn{AppID: committer.LineageAppID(tc.AppID, tc.Lineage), Version: tc.LastOffset, LastUpdated: now})
		}
	}
	for _, r := range c.Removes {
		// Complete the tombstone from the add it removes, so vacuum and other
		// engines see its size and partition.
		if a, ok := s.Files[r.Path]; ok {
			if r.Size == 0 {
				r.Size = a.Size
			}
			if r.PartitionValues == nil {
				r.PartitionValues = a.PartitionValues
			}
			// The file is removed with its deletion vector: a removal is
			// of a (path, vector) pair, and vacuum keeps the vector's file
			// as long as the removal.
			r.Deleted = a.Deleted
		}
		r.PartitionValues = maps.Clone(r.PartitionValues)
		if r.DeletionTimestamp == 0 {
			r.DeletionTimestamp = now
		}
		e.removes = append(e.removes, r)
	}
	for _, a := range c.Adds {
		if a.ModificationTime == 0 {
			a.ModificationTime = now
		}
		// The snapshot keeps the add, so it must not share maps the caller
		// may reuse.
		a.Tags = maps.Clone(a.Tags)
		a.PartitionValues = maps.Clone(a.PartitionValues)
		e.adds = append(e.adds, a)
	}
	t.deletionEntries(e, c, s, dvs, now)
	return e
}

// Commit commits c as the next version of the table, retrying lost races and
// ambiguous store failures as the Table doc describes. It refuses with a
// *TxnConflictError, a *LineageConflictError, a *FileRemovedError, or an
// error wrapping committer.ErrFileExists, committer.ErrMetadataChanged, ErrUnsupportedProtocol,
// committer.ErrNoTable or committer.ErrTableReplaced; the table is then unchanged by the commit. An error
// wrapping committer.ErrTooManyAttempts or the context's error can follow an
// ambiguous put, so the commit may have landed: calling Commit again with
// the same ID on the same Table finds it (AlreadyCommitted), and for an
// append the txn fencing refuses a second landing in any case.
func (t *Table) Commit(ctx context.Context, c committer.Commit) (*committer.CommitResult, error) {
	return t.commit(ctx, c, nil)
}

// CreateCommit commits c, creating the table with cmd in the same commit
// if it does not exist: version 0 then holds protocol, metaData and c's
// actions, one create-only put where Create and Commit take two (see
// committer.CreateCommit for the contract). A new table's first commit
// therefore costs one put and no other request after the look that found
// no table. It needs no HEAD of the anchor ("Deleted tables" in the Table
// doc): that HEAD guards a put made from a snapshot a deletion may have
// outdated, and a put of version 0 is made from none; the object it
// creates is the anchor readers start from.
//
// Like Create, a Table whose Snapshot found no table less than
// maxSnapshotAge ago puts version 0 without looking again, and otherwise
// loads the table first. If version 0 is taken (a concurrent creator, or
// an earlier attempt whose put failed ambiguously), the table is loaded
// and c goes on as in Commit: found by its id, or checked against the
// table and put at the next version, unless the table's schema is not
// cmd's, when c is refused with committer.ErrMetadataChanged. The schemas
// are compared as schemaStrings, so a table another engine wrote with the
// same columns but another rendering refuses c too: the caller then merges
// and commits with Commit, which is correct, only slower. The
// conformance test's CreateCommit/Race races creators of two schemas.
func (t *Table) CreateCommit(ctx context.Context, cmd committer.Metadata, c committer.Commit) (*committer.CommitResult, error) {
	if c.Metadata != nil {
		return nil, fmt.Errorf("create table %s with its first commit: the commit carries metadata of its own; the table's is md", t.root)
	}
	return t.commit(ctx, c, &cmd)
}

// creation is the metaData action a CreateCommit creates its table with,
// and its schemaString.
type creation struct {
	md     metadata
	schema string
}

// newCreation builds the metaData action of cmd, with an empty ID and
// CreatedTime filled in.
func (t *Table) newCreation(cmd committer.Metadata) (*creation, error) {
	var schema string
	if cmd.Schema != nil {
		var err error
		if schema, err = SchemaJSON(cmd.Schema); err != nil {
			return nil, err
		}
	}
	md := cloneMetadata(metadataAction(cmd, schema))
	md.Configuration = t.newConfiguration(md.Configuration)
	if md.ID == "" {
		md.ID = newUUID()
	}
	if md.CreatedTime == 0 {
		md.CreatedTime = t.opts.Now().UnixMilli()
	}
	return &creation{md: md, schema: schema}, nil
}

// commit is Commit, and with create CreateCommit.
func (t *Table) commit(ctx context.Context, c committer.Commit, create *committer.Metadata) (*committer.CommitResult, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("commit to table %s: %w", t.root, err)
	}
	if len(c.Deletes) > 0 && !t.opts.DeleteRows {
		return nil, fmt.Errorf("commit to table %s: the commit deletes rows, which only a table opened with DeleteRows does", t.root)
	}
	for _, a := range c.Adds {
		if a.Deleted != nil {
			return nil, fmt.Errorf("commit to table %s: add %s has deleted rows; a writer deletes rows with Commit.Deletes", t.root, a.Path)
		}
	}
	var schema string
	if c.Metadata != nil {
		var err error
		if schema, err = SchemaJSON(c.Metadata.Schema); err != nil {
			return nil, fmt.Errorf("commit to table %s: %w", t.root, err)
		}
	}
	var cr *creation
	if create != nil {
		var err error
		if cr, err = t.newCreation(*create); err != nil {
			return nil, fmt.Errorf("create table %s: %w", t.root, err)
		}
	}
	// Snapshots hold the adds as the log records them, whether they
	// were read back or committed by this Table.
	adds := make([]committer.Add, len(c.Adds))
	for i, a := range c.Adds {
		var err error
		if adds[i], err = logged(a); err != nil {
			return nil, fmt.Errorf("commit to table %s: %w", t.root, err)
		}
	}
	c.Adds = adds
	if c.ID == "" {
		c.ID = newUUID()
	}
	if c.Operation == "" {
		c.Operation = committer.OpWrite
	}
	bo := t.newBackoff()
	// An attempt goes out against the snapshot this Table last saw, without
	// reading the log for newer versions: the put of the next version is
	// conditional, so it can only land if that snapshot is still the latest
	// (and the checks below held against the table as it is); otherwise it
	// fails, and the log is read then. Uncontended, a commit costs one put
	// and the HEAD that checks the anchor, instead of also reading a version
	// that does not exist yet. The invariant this relies on, that no version
	// after the snapshot's was deleted by log cleanup, holds while the
	// snapshot is fresh; an older one is loaded again first (Table doc).
	s := t.cached()
	for attempt := 1; ; attempt++ {
		if cr != nil && s == nil && t.seenAbsent() {
			res, err := t.putFirst(ctx, bo, &c, cr, attempt)
			if res != nil || err != nil {
				return res, err
			}
			// Version 0 is taken, or the put's outcome is unknown: the
			// top of the loop loads the table, or finds it absent and
			// puts version 0 again.
			if attempt >= t.opts.MaxCommitAttempts {
				return nil, fmt.Errorf("commit %s to table %s: %w (%d) creating it", c.ID, t.root, committer.ErrTooManyAttempts, attempt)
			}
			if s, err = t.Snapshot(ctx); err != nil {
				s = nil
				if !errors.Is(err, committer.ErrNoTable) {
					t.logger.Warn("create table: read log after failed put", "attempt", attempt, "err", err)
					if err := sleep(ctx, bo.NextBackOff()); err != nil {
						return nil, fmt.Errorf("commit %s to table %s: outcome unknown: %w", c.ID, t.root, err)
					}
				}
				continue
			}
		}
		if s == nil || !t.fresh(s) {
			var err error
			if s, err = t.reload(ctx, bo, c.ID); err != nil {
				if cr != nil && errors.Is(err, committer.ErrNoTable) {
					// The load found no table and recorded it: the next
					// round creates it.
					s = nil
					continue
				}
				return nil, err
			}
		}
		if v, ok := committedAt(s, c.ID); ok {
			// An earlier attempt, or an earlier call that failed after its
			// put, landed. Readers must reach it before it counts.
			if err := t.confirm(ctx, bo, v, c.ID); err != nil {
				return nil, err
			}
			return &committer.CommitResult{Version: v, Snapshot: s, Attempts: attempt - 1, AlreadyCommitted: true}, nil
		}
		if cr != nil && st(s).metadata.SchemaString != cr.schema {
			return nil, fmt.Errorf("commit %s to table %s: the table exists, with another schema than the one the commit would create it with (set at version %d): %w",
				c.ID, t.root, st(s).metadataVersion, committer.ErrMetadataChanged)
		}
		if err := t.check(&c, s, schema); err != nil {
			return nil, fmt.Errorf("commit %s to table %s: %w", c.ID, t.root, err)
		}
		version := s.Version + 1
		dvs, err := t.deletionVectors(ctx, &c, s)
		var storeErr *dvPutError
		if errors.As(err, &storeErr) && attempt < t.opts.MaxCommitAttempts {
			// Nothing names the file yet: put another one next attempt.
			t.logger.Warn("commit: put deletion vector file", "attempt", attempt, "err", err)
			if err := sleep(ctx, bo.NextBackOff()); err != nil {
				return nil, fmt.Errorf("commit %s to table %s: %w", c.ID, t.root, err)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("commit %s to table %s: %w", c.ID, t.root, err)
		}
		e := t.entry(&c, s, schema, dvs)
		body, err := e.encode()
		if err != nil {
			return nil, fmt.Errorf("commit %s to table %s: %w", c.ID, t.root, err)
		}
		key := t.logKey(commitName(version))
		seenAt := t.opts.Now()
		_, err = t.bucket.Put(ctx, key, bytes.NewReader(body), int64(len(body)), objstore.PutOptions{IfNoneMatch: true})
		if err == nil {
			next := clone(s)
			apply(next, version, e)
			t.expireTombstones(next)
			// Versions are created in order, so none after this one
			// existed before the put started.
			st(next).seenAt = seenAt
			if err := t.confirm(ctx, bo, version, c.ID); err != nil {
				return nil, err
			}
			t.remember(next)
			t.maybeCheckpoint(ctx, next)
			return &committer.CommitResult{Version: version, Snapshot: next, Attempts: attempt}, nil
		}
		lostRace := errors.Is(err, objstore.ErrPreconditionFailed)
		if !lostRace {
			t.logger.Warn("commit put failed, outcome unknown", "version", version, "attempt", attempt, "err", err)
		}
		if attempt >= t.opts.MaxCommitAttempts {
			return nil, fmt.Errorf("commit %s to table %s: %w (%d): %w", c.ID, t.root, committer.ErrTooManyAttempts, attempt, err)
		}
		if !lostRace {
			if err := sleep(ctx, bo.NextBackOff()); err != nil {
				return nil, fmt.Errorf("commit %s to table %s: outcome unknown: %w", c.ID, t.root, err)
			}
		}
		if !t.fresh(s) {
			// Too old to probe safely: the top of the loop loads the table.
			continue
		}
		// Read what took the version (and any later ones). The snapshot only
		// ever advances through update or a load, which record every commit
		// id they replay, so a landed attempt is found at the top of the
		// loop.
		next, err := t.update(ctx, s)
		if err != nil {
			t.logger.Warn("commit: read log after failed put", "version", version, "err", err)
			if err := sleep(ctx, bo.NextBackOff()); err != nil {
				return nil, fmt.Errorf("commit %s to table %s: %w", c.ID, t.root, err)
			}
			continue
		}
		s = next
		t.remember(s)
	}
}

// putFirst puts version 0 of a table that was seen absent: protocol, cr's
// metaData and c's actions in one create-only put. It returns the result
// if the put landed; an error if c cannot be committed to an empty table
// (it removes a file) or the context ended; and neither if version 0 is
// taken or the put (of version 0, or of c's deletion vector file) failed,
// after backing off from a failure, and the caller then loads the table.
func (t *Table) putFirst(ctx context.Context, bo *backoff.ExponentialBackOff, c *committer.Commit, cr *creation, attempt int) (*committer.CommitResult, error) {
	// The checks run against the table version 0 creates.
	empty := emptySnapshot()
	st(empty).protocol = *t.newProtocol()
	st(empty).metadata = cr.md
	if err := t.check(c, empty, ""); err != nil {
		// A new table holds no file to remove.
		return nil, fmt.Errorf("commit %s to table %s: %w", c.ID, t.root, err)
	}
	dvs, err := t.deletionVectors(ctx, c, empty)
	var storeErr *dvPutError
	if errors.As(err, &storeErr) {
		// Nothing names the file yet: the caller tries again.
		t.logger.Warn("create table: put deletion vector file", "attempt", attempt, "err", err)
		if err := sleep(ctx, bo.NextBackOff()); err != nil {
			return nil, fmt.Errorf("commit %s to table %s: %w", c.ID, t.root, err)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("commit %s to table %s: %w", c.ID, t.root, err)
	}
	e := t.entry(c, empty, "", dvs)
	// Version 0 was read from nothing, as Spark's first streaming write
	// records it.
	delete(e.commitInfo, "readVersion")
	e.protocol = t.newProtocol()
	md := cloneMetadata(cr.md)
	e.metadata = &md
	body, err := e.encode()
	if err != nil {
		return nil, fmt.Errorf("commit %s to table %s: %w", c.ID, t.root, err)
	}
	key := t.logKey(commitName(0))
	seenAt := t.opts.Now()
	etag, err := t.bucket.Put(ctx, key, bytes.NewReader(body), int64(len(body)), objstore.PutOptions{IfNoneMatch: true})
	if err == nil {
		s := emptySnapshot()
		apply(s, 0, e)
		st(s).seenAt = seenAt
		t.remember(s)
		t.setAnchor(anchor{key: key, etag: etag})
		return &committer.CommitResult{Version: 0, Snapshot: s, Attempts: attempt}, nil
	}
	if errors.Is(err, objstore.ErrPreconditionFailed) {
		return nil, nil
	}
	t.logger.Warn("create table: put version 0 failed, outcome unknown", "attempt", attempt, "err", err)
	if err := sleep(ctx, bo.NextBackOff()); err != nil {
		return nil, fmt.Errorf("commit %s to table %s: outcome unknown: %w", c.ID, t.root, err)
	}
	return nil, nil
}

// reload loads the table for a commit, retrying store errors.
func (t *Table) reload(ctx context.Context, bo *backoff.ExponentialBackOff, id string) (*committer.Snapshot, error) {
	for attempt := 1; ; attempt++ {
		s, err := t.Snapshot(ctx)
		if err == nil {
			return s, nil
		}
		if errors.Is(err, committer.ErrNoTable) || ctx.Err() != nil || attempt >= t.opts.MaxCommitAttempts {
			return nil, fmt.Errorf("commit %s to table %s: %w", id, t.root, err)
		}
		t.logger.Warn("commit: read log", "attempt", attempt, "err", err)
		if err := sleep(ctx, bo.NextBackOff()); err != nil {
			return nil, fmt.Errorf("commit %s to table %s: %w", id, t.root, err)
		}
	}
}

// confirm makes sure readers reach the commit id at version, as "Deleted
// tables" in the Table doc describes: one HEAD of the anchor when the table
// is as this Table last saw it, a load otherwise. A commit readers cannot
// reach is withdrawn and reported as committer.ErrTableReplaced. Store errors are
// retried; if they persist, the outcome is reported as unknown, and a later
// Commit with the same id on this Table confirms it again.
func (t *Table) confirm(ctx context.Context, bo *backoff.ExponentialBackOff, version int64, id string) error {
	for attempt := 1; ; attempt++ {
		ok, err := t.reachable(ctx, version, id)
		if err == nil && ok {
			return nil
		}
		if err == nil {
			t.withdraw(ctx, version, id)
			return fmt.Errorf("commit %s to table %s: version %d landed where no reader reaches it: %w; the commit was withdrawn, so nothing it holds is durable",
				id, t.root, version, committer.ErrTableReplaced)
		}
		if ctx.Err() != nil || attempt >= t.opts.MaxCommitAttempts {
			return fmt.Errorf("commit %s to table %s: landed at version %d, but checking that readers reach it failed, so the outcome is unknown (commit again with the same id): %w",
				id, t.root, version, err)
		}
		t.logger.Warn("commit: check the log's anchor", "version", version, "attempt", attempt, "err", err)
		if err := sleep(ctx, bo.NextBackOff()); err != nil {
			return fmt.Errorf("commit %s to table %s: landed at version %d, outcome unknown: %w", id, t.root, version, err)
		}
	}
}

// reachable reports whether a reader loading the table now reaches the
// commit id at version.
func (t *Table) reachable(ctx context.Context, version int64, id string) (bool, error) {
	a := t.currentAnchor()
	if a.key != "" {
		info, err := t.bucket.Head(ctx, a.key)
		if err == nil && info.ETag == a.etag {
			// The object readers start from is the one this Table loaded
			// or created, so the log below the commit is still there.
			return true, nil
		}
		if err != nil && !errors.Is(err, objstore.ErrNotExist) {
			return false, err
		}
	}
	// The anchor is gone or was replaced: the table was deleted (and maybe
	// created again), or log cleanup removed version 0 or an old
	// checkpoint. Ask the log as a reader would.
	s, na, err := t.load(ctx)
	if errors.Is(err, committer.ErrNoTable) || errors.Is(err, errUnrooted) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	t.setAnchor(na)
	t.remember(s)
	if na.base >= version {
		// The load started from a checkpoint at or after the commit, which
		// someone wrote after replaying it.
		return s.Version >= version, nil
	}
	v, ok := committedAt(s, id)
	return ok && v == version, nil
}

// withdraw deletes the commit id at version, if the object there is still
// that commit. It is best effort: the caller reports the commit as failed
// either way.
func (t *Table) withdraw(ctx context.Context, version int64, id string) {
	defer t.forget()
	e, err := t.readCommit(ctx, version)
	if err != nil || e.commitID() != id {
		return
	}
	if err := t.bucket.Delete(ctx, t.logKey(commitName(version))); err != nil {
		t.logger.Warn("withdraw a commit no reader reaches; delete it by hand before the table is created again",
			"version", version, "key", t.logKey(commitName(version)), "err", err)
	}
}

// sameMetadata reports whether committing md would leave the table's
// metadata as it is, in which case the commit carries no metaData action.
func sameMetadata(md, cur metadata) bool {
	return md.SchemaString == cur.SchemaString &&
		(md.ID == "" || md.ID == cur.ID) &&
		(md.Name == "" || md.Name == cur.Name) &&
		(md.PartitionColumns == nil || slices.Equal(md.PartitionColumns, cur.PartitionColumns)) &&
		(md.Configuration == nil || maps.Equal(md.Configuration, cur.Configuration))
}
