package delta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cenkalti/backoff/v4"

	"github.com/evodb/sink/objstore"
)

// commitInfo keys of our own, next to Delta's standard ones. Readers ignore
// unknown commitInfo fields.
const (
	infoCommitID = "evodbCommitId"
	infoInstance = "evodbInstance"
	infoExtra    = "evodbInfo"
)

// TxnCondition is a source partition's contribution to an append: the
// commit writes txn(AppID, LastOffset) and is refused with a
// *TxnConflictError if the table's txn version for AppID is already at or
// past FirstOffset.
type TxnCondition struct {
	AppID       string
	FirstOffset int64
	LastOffset  int64
	// Lineage, if not empty, names the incarnation of the source the
	// offsets come from (for a Kafka partition, its topic ID): offsets of
	// two incarnations are not comparable. The commit then also writes
	// txn(LineageAppID(AppID, Lineage), LastOffset), and is refused with a
	// *LineageConflictError if the table holds such a txn for AppID with
	// another lineage. Tables written without lineages hold none, so the
	// first commit with a lineage is never refused for it. It must not
	// contain '@' or '/'.
	Lineage string
}

// LineageAppID is the txn appId that records the lineage of appID's
// offsets: appID + "@" + lineage. Its version is the last offset of that
// lineage the table holds, like appID's. The txn action being the only
// per-source state Delta keeps in checkpoints, the lineage lives in the
// appId so it survives them.
func LineageAppID(appID, lineage string) string { return appID + "@" + lineage }

// SplitLineage is the inverse of LineageAppID: it reports whether app
// records a lineage, and of which appId. An appId that merely contains an
// '@' is not one unless what follows its last '@' is a valid lineage
// (non-empty, without '/').
func SplitLineage(app string) (appID, lineage string, ok bool) {
	i := strings.LastIndexByte(app, '@')
	if i <= 0 || i == len(app)-1 || strings.IndexByte(app[i+1:], '/') >= 0 {
		return "", "", false
	}
	return app[:i], app[i+1:], true
}

// LineageConflictError refuses an append whose offsets from a source come
// from another lineage (for Kafka: another topic ID, the topic was deleted
// and re-created) than the offsets the table holds for it.
type LineageConflictError struct {
	AppID        string
	Lineage      string
	TableLineage string
	TableVersion int64
}

func (e *LineageConflictError) Error() string {
	return fmt.Sprintf("lineage conflict for %s: table version %d holds offsets of lineage %s, the commit's offsets are of lineage %s",
		e.AppID, e.TableVersion, e.TableLineage, e.Lineage)
}

// Commit is one atomic change to a table.
type Commit struct {
	// ID identifies the commit in commitInfo so that an ambiguous failure
	// can be resolved by reading the log; generated if empty.
	ID string
	// Operation is the Delta operation name (OpStreamingUpdate, OpWrite,
	// OpOptimize, ...); default OpWrite.
	Operation string
	Adds      []Add
	Removes   []Remove
	Txns      []TxnCondition
	// Metadata, if set, replaces the table's metaData in this commit: the
	// widened schema goes in the same commit as the first block needing it.
	// Empty ID, Name and CreatedTime and nil PartitionColumns and
	// Configuration are taken from the table; a Metadata that changes
	// nothing writes no metaData action.
	Metadata *Metadata
	// ReadVersion is the snapshot version the caller based the commit on, or
	// -1 for none. A commit with Metadata is refused (ErrMetadataChanged) if
	// the table's schema changed after ReadVersion.
	ReadVersion int64
	// Info holds extra fields recorded under commitInfo.evodbInfo, such as
	// source offsets or the sink group.
	Info map[string]string
}

// CommitResult describes a landed commit.
type CommitResult struct {
	// Version is the version holding the commit.
	Version int64
	// Snapshot is the table right after the commit, or later.
	Snapshot *Snapshot
	// Attempts is how many puts the commit took.
	Attempts int
	// AlreadyCommitted says an earlier attempt whose outcome was unknown had
	// landed and was found by its commit id.
	AlreadyCommitted bool
}

func (c *Commit) validate() error {
	apps := map[string]bool{}
	for _, tc := range c.Txns {
		switch {
		case tc.AppID == "":
			return errors.New("txn condition with an empty appId")
		case apps[tc.AppID]:
			return fmt.Errorf("txn appId %s appears twice", tc.AppID)
		case tc.FirstOffset < 0 || tc.LastOffset < tc.FirstOffset:
			return fmt.Errorf("txn %s: offsets [%d, %d] are not a range", tc.AppID, tc.FirstOffset, tc.LastOffset)
		case strings.ContainsAny(tc.Lineage, "@/"):
			return fmt.Errorf("txn %s: lineage %q contains '@' or '/'", tc.AppID, tc.Lineage)
		}
		apps[tc.AppID] = true
	}
	removed := map[string]bool{}
	for _, r := range c.Removes {
		if r.Path == "" {
			return errors.New("remove with an empty path")
		}
		if removed[r.Path] {
			return fmt.Errorf("remove %s appears twice", r.Path)
		}
		removed[r.Path] = true
	}
	added := map[string]bool{}
	for _, a := range c.Adds {
		if a.Path == "" {
			return errors.New("add with an empty path")
		}
		if added[a.Path] {
			return fmt.Errorf("add %s appears twice", a.Path)
		}
		added[a.Path] = true
	}
	if c.Metadata != nil && c.Metadata.SchemaString == "" {
		return errors.New("metaData without a schema")
	}
	return nil
}

// check returns why c cannot be committed on top of s, or nil.
func (c *Commit) check(s *Snapshot) error {
	if s.Protocol.MinReaderVersion > readerVersion || s.Protocol.MinWriterVersion > writerVersion {
		return fmt.Errorf("table requires protocol (%d, %d): %w",
			s.Protocol.MinReaderVersion, s.Protocol.MinWriterVersion, ErrUnsupportedProtocol)
	}
	for _, tc := range c.Txns {
		if v, ok := s.Txns[tc.AppID]; ok && v >= tc.FirstOffset {
			return &TxnConflictError{AppID: tc.AppID, TableTxnVersion: v, FirstOffset: tc.FirstOffset, TableVersion: s.Version}
		}
	}
	if err := c.checkLineages(s); err != nil {
		return err
	}
	removed := map[string]bool{}
	for _, r := range c.Removes {
		if _, ok := s.Files[r.Path]; !ok {
			return &FileRemovedError{Path: r.Path, TableVersion: s.Version}
		}
		removed[r.Path] = true
	}
	for _, a := range c.Adds {
		if _, ok := s.Files[a.Path]; ok && !removed[a.Path] {
			return fmt.Errorf("add %s at table version %d: %w", a.Path, s.Version, ErrFileExists)
		}
	}
	if c.Metadata != nil && c.ReadVersion >= 0 && s.metadataVersion > c.ReadVersion &&
		s.Metadata.SchemaString != c.Metadata.SchemaString {
		return fmt.Errorf("schema changed at version %d, after read version %d: %w",
			s.metadataVersion, c.ReadVersion, ErrMetadataChanged)
	}
	return nil
}

// checkLineages refuses c if the table holds, for one of c's appIds, a
// lineage other than c's. It reads every txn of the table once, and only
// when c names a lineage.
func (c *Commit) checkLineages(s *Snapshot) error {
	var want map[string]string
	for _, tc := range c.Txns {
		if tc.Lineage != "" {
			if want == nil {
				want = make(map[string]string, len(c.Txns))
			}
			want[tc.AppID] = tc.Lineage
		}
	}
	if want == nil {
		return nil
	}
	for app := range s.Txns {
		id, lineage, ok := SplitLineage(app)
		if !ok {
			continue
		}
		if w, ok := want[id]; ok && w != lineage {
			return &LineageConflictError{AppID: id, Lineage: w, TableLineage: lineage, TableVersion: s.Version}
		}
	}
	return nil
}

// entry builds the log entry that commits c on top of s.
func (t *Table) entry(c *Commit, s *Snapshot) *logEntry {
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
		"isBlindAppend":       len(c.Removes) == 0 && c.Metadata == nil,
		"engineInfo":          EngineInfo,
		infoCommitID:          c.ID,
		infoInstance:          t.opts.Instance,
	}
	switch c.Operation {
	case OpStreamingUpdate:
		info["operationParameters"] = map[string]string{"outputMode": "Append"}
	case OpWrite:
		info["operationParameters"] = map[string]string{"mode": "Append"}
	}
	if len(c.Info) > 0 {
		info[infoExtra] = maps.Clone(c.Info)
	}
	e := &logEntry{commitInfo: info}
	if c.Metadata != nil && !sameMetadata(*c.Metadata, s.Metadata) {
		md := cloneMetadata(*c.Metadata)
		if md.ID == "" {
			md.ID = s.Metadata.ID
		}
		if md.CreatedTime == 0 {
			md.CreatedTime = s.Metadata.CreatedTime
		}
		if md.Name == "" {
			md.Name = s.Metadata.Name
		}
		if md.PartitionColumns == nil {
			md.PartitionColumns = slices.Clone(s.Metadata.PartitionColumns)
		}
		if md.Configuration == nil {
			md.Configuration = maps.Clone(s.Metadata.Configuration)
		}
		e.metadata = &md
	}
	for _, tc := range c.Txns {
		e.txns = append(e.txns, Txn{AppID: tc.AppID, Version: tc.LastOffset, LastUpdated: now})
		if tc.Lineage != "" {
			e.txns = append(e.txns, Txn{AppID: LineageAppID(tc.AppID, tc.Lineage), Version: tc.LastOffset, LastUpdated: now})
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
	return e
}

// Commit commits c as the next version of the table, retrying lost races and
// ambiguous store failures as the Table doc describes. It refuses with a
// *TxnConflictError, a *LineageConflictError, a *FileRemovedError, or an
// error wrapping ErrFileExists, ErrMetadataChanged, ErrUnsupportedProtocol,
// ErrNoTable or ErrTableReplaced; the table is then unchanged by the commit. An error
// wrapping ErrTooManyAttempts or the context's error can follow an
// ambiguous put, so the commit may have landed: calling Commit again with
// the same ID on the same Table finds it (AlreadyCommitted), and for an
// append the txn fencing refuses a second landing in any case.
func (t *Table) Commit(ctx context.Context, c Commit) (*CommitResult, error) {
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("commit to table %s: %w", t.root, err)
	}
	if c.ID == "" {
		c.ID = newUUID()
	}
	if c.Operation == "" {
		c.Operation = OpWrite
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
		if s == nil || !t.fresh(s) {
			var err error
			if s, err = t.reload(ctx, bo, c.ID); err != nil {
				return nil, err
			}
		}
		if v, ok := s.committedAt(c.ID); ok {
			// An earlier attempt, or an earlier call that failed after its
			// put, landed. Readers must reach it before it counts.
			if err := t.confirm(ctx, bo, v, c.ID); err != nil {
				return nil, err
			}
			return &CommitResult{Version: v, Snapshot: s, Attempts: attempt - 1, AlreadyCommitted: true}, nil
		}
		if err := c.check(s); err != nil {
			return nil, fmt.Errorf("commit %s to table %s: %w", c.ID, t.root, err)
		}
		version := s.Version + 1
		e := t.entry(&c, s)
		body, err := e.encode()
		if err != nil {
			return nil, fmt.Errorf("commit %s to table %s: %w", c.ID, t.root, err)
		}
		key := t.logKey(commitName(version))
		seenAt := t.opts.Now()
		_, err = t.bucket.Put(ctx, key, bytes.NewReader(body), int64(len(body)), objstore.PutOptions{IfNoneMatch: true})
		if err == nil {
			next := s.clone()
			next.apply(version, e)
			t.expireTombstones(next)
			// Versions are created in order, so none after this one
			// existed before the put started.
			next.seenAt = seenAt
			if err := t.confirm(ctx, bo, version, c.ID); err != nil {
				return nil, err
			}
			t.remember(next)
			t.maybeCheckpoint(ctx, next)
			return &CommitResult{Version: version, Snapshot: next, Attempts: attempt}, nil
		}
		lostRace := errors.Is(err, objstore.ErrPreconditionFailed)
		if !lostRace {
			t.logger.Warn("commit put failed, outcome unknown", "version", version, "attempt", attempt, "err", err)
		}
		if attempt >= t.opts.MaxCommitAttempts {
			return nil, fmt.Errorf("commit %s to table %s: %w (%d): %w", c.ID, t.root, ErrTooManyAttempts, attempt, err)
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

// reload loads the table for a commit, retrying store errors.
func (t *Table) reload(ctx context.Context, bo *backoff.ExponentialBackOff, id string) (*Snapshot, error) {
	for attempt := 1; ; attempt++ {
		s, err := t.Snapshot(ctx)
		if err == nil {
			return s, nil
		}
		if errors.Is(err, ErrNoTable) || ctx.Err() != nil || attempt >= t.opts.MaxCommitAttempts {
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
// reach is withdrawn and reported as ErrTableReplaced. Store errors are
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
				id, t.root, version, ErrTableReplaced)
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
	if errors.Is(err, ErrNoTable) || errors.Is(err, errUnrooted) {
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
	v, ok := s.committedAt(id)
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
func sameMetadata(md, cur Metadata) bool {
	return md.SchemaString == cur.SchemaString &&
		(md.ID == "" || md.ID == cur.ID) &&
		(md.Name == "" || md.Name == cur.Name) &&
		(md.PartitionColumns == nil || slices.Equal(md.PartitionColumns, cur.PartitionColumns)) &&
		(md.Configuration == nil || maps.Equal(md.Configuration, cur.Configuration))
}
