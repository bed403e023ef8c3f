package iceberg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	"github.com/cenkalti/backoff/v4"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
)

// Commit commits c as the table's next snapshot, retrying lost races and
// unknown outcomes as the Table doc describes. It refuses with a
// *committer.TxnConflictError, *committer.LineageConflictError,
// *committer.FileRemovedError, or an error wrapping
// committer.ErrFileExists, ErrMetadataChanged, ErrNoTable or
// ErrTableReplaced; with committer.ErrTooManyAttempts or the context's
// error the outcome is unknown and calling Commit again with c.ID resolves
// it.
//
// A commit removing files is a replace snapshot (compaction: the rows stay,
// the files change); any other is an append. Both carry the table's whole
// txn map in their summary.
func (t *Table) Commit(ctx context.Context, c committer.Commit) (*committer.CommitResult, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("commit to %s: %w", t.root, err)
	}
	if t.deleteRows || len(c.Deletes) > 0 {
		return nil, fmt.Errorf("commit to %s: %w", t.root, ErrDeleteRowsUnsupported)
	}
	if len(c.Adds) == 0 && len(c.Removes) == 0 {
		return nil, fmt.Errorf("commit to %s: an Iceberg commit must add or remove a file", t.root)
	}
	if c.ID == "" {
		c.ID = newID()
	}
	if c.Operation == "" {
		c.Operation = committer.OpWrite
	}
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = t.opts.RetryInitialInterval
	bo.MaxInterval = t.opts.RetryMaxInterval
	bo.MaxElapsedTime = 0
	t.mu.Lock()
	s := t.mu.latest
	t.mu.Unlock()
	// bound is the table this writer holds: a commit must land in it.
	var bound string
	if s != nil {
		bound = st(s).uuid
	}
	unknown := false
	for attempt := 1; attempt <= t.opts.MaxCommitAttempts; attempt++ {
		if s == nil {
			var err error
			if s, err = t.load(ctx); err != nil {
				return nil, fmt.Errorf("commit to %s: %w", t.root, err)
			}
			if bound == "" {
				bound = st(s).uuid
			}
		}
		if st(s).uuid != bound {
			t.mu.Lock()
			t.mu.latest = nil
			t.mu.Unlock()
			return nil, fmt.Errorf("commit to %s: the table is now %s, not %s: %w", t.root, st(s).uuid, bound, committer.ErrTableReplaced)
		}
		if v, ok := st(s).commits[c.ID]; ok {
			return &committer.CommitResult{Version: v, Snapshot: s, Attempts: attempt - 1, AlreadyCommitted: true}, nil
		}
		if err := c.CheckTxns(s); err != nil {
			return nil, err
		}
		if err := c.CheckFiles(s); err != nil {
			return nil, err
		}
		res, err := t.attempt(ctx, &c, s)
		if err == nil {
			res.Attempts = attempt
			res.AlreadyCommitted = false
			t.adopt(res.Snapshot)
			return res, nil
		}
		var refused refusal
		switch {
		case errors.As(err, &refused):
			return nil, refused.error
		case errors.Is(err, catalog.ErrNoSuchTable):
			t.mu.Lock()
			t.mu.latest = nil
			t.mu.Unlock()
			return nil, fmt.Errorf("commit to %s: %w", t.root, committer.ErrNoTable)
		case errors.Is(authErr(err), committer.ErrAccessDenied):
			// The catalog refused the request before applying it; a
			// retry is refused the same way. An earlier attempt's
			// outcome may still be unknown.
			if unknown {
				return nil, fmt.Errorf("commit to %s: outcome unknown: %w: %w", t.root, committer.ErrTooManyAttempts, authErr(err))
			}
			return nil, fmt.Errorf("commit to %s: %w", t.root, authErr(err))
		case errors.Is(err, table.ErrCommitFailed):
			// Lost a race (or the table was replaced): read the table and
			// check again, at once.
			s = nil
			continue
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("commit to %s: outcome unknown: %w", t.root, ctx.Err())
		}
		unknown = true
		t.opts.Logger.Warn("iceberg commit failed, outcome unknown; reading the table", "table", t.root, "commit", c.ID, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("commit to %s: outcome unknown: %w", t.root, ctx.Err())
		case <-time.After(bo.NextBackOff()):
		}
		s = nil
	}
	if unknown {
		return nil, fmt.Errorf("commit to %s: %d attempts, outcome unknown: %w", t.root, t.opts.MaxCommitAttempts, committer.ErrTooManyAttempts)
	}
	return nil, fmt.Errorf("commit to %s: %d attempts: %w", t.root, t.opts.MaxCommitAttempts, committer.ErrTooManyAttempts)
}

// refusal wraps an error that refuses a commit for good.
type refusal struct{ error }

// attempt makes one catalog commit of c on top of s.
func (t *Table) attempt(ctx context.Context, c *committer.Commit, s *committer.Snapshot) (*committer.CommitResult, error) {
	ss := st(s)
	base := ss.tbl
	tx := base.NewTransaction()
	if err := tx.AssertRefSnapshotID(table.MainBranch); err != nil {
		return nil, refusal{fmt.Errorf("commit to %s: %w", t.root, err)}
	}
	schema := base.Schema()
	schemaChanged := false
	md := s.Metadata
	if c.Metadata != nil {
		var err error
		schema, schemaChanged, err = t.stageMetadata(tx, c, s)
		if err != nil {
			return nil, err
		}
		if c.Metadata.Name != "" {
			md.Name = c.Metadata.Name
		}
		if c.Metadata.Configuration != nil {
			md.Configuration = maps.Clone(c.Metadata.Configuration)
		}
		if schemaChanged {
			md.Schema = c.Metadata.Schema.Clone()
			md.SchemaErr = nil
			md.FieldIDs = fieldIDsOf(schema)
		}
	}
	if err := checkFieldIDs(schema, c.FieldIDs); err != nil {
		return nil, refusal{fmt.Errorf("commit to %s: %w", t.root, err)}
	}
	now := t.opts.Now()
	txns := maps.Clone(s.Txns)
	for _, tc := range c.Txns {
		txns[tc.AppID] = tc.LastOffset
		if tc.Lineage != "" {
			txns[committer.LineageAppID(tc.AppID, tc.Lineage)] = tc.LastOffset
		}
	}
	props := iceberg.Properties{
		sumCommitID:  c.ID,
		sumOperation: c.Operation,
	}
	if t.opts.Instance != "" {
		props[sumInstance] = t.opts.Instance
	}
	for k, v := range c.Info {
		props[sumInfoPrefix+k] = v
	}
	for app, v := range txns {
		props[sumTxnPrefix+app] = strconv.FormatInt(v, 10)
	}
	tags := map[string]map[string]string{}
	files := maps.Clone(s.Files)
	adds := make([]iceberg.DataFile, 0, len(c.Adds))
	for _, a := range c.Adds {
		df, err := t.dataFile(a, schema)
		if err != nil {
			return nil, refusal{fmt.Errorf("commit to %s: %w", t.root, err)}
		}
		adds = append(adds, df)
		if len(a.Tags) > 0 {
			tags[a.Path] = a.Tags
		}
		a.Tags = maps.Clone(a.Tags)
		a.PartitionValues = nil
		if a.ModificationTime == 0 {
			a.ModificationTime = now.UnixMilli()
		}
		a.Sys = df
		files[a.Path] = a
	}
	if len(tags) > 0 {
		b, err := json.Marshal(tags)
		if err != nil {
			return nil, refusal{fmt.Errorf("commit to %s: encode tags: %w", t.root, err)}
		}
		props[sumTags] = string(b)
	}
	if len(c.Removes) > 0 {
		rw := tx.NewRewrite(props)
		for _, r := range c.Removes {
			df, ok := s.Files[r.Path].Sys.(iceberg.DataFile)
			if !ok {
				return nil, refusal{&committer.FileRemovedError{Path: r.Path, TableVersion: s.Version}}
			}
			rw.DeleteFile(df)
			delete(files, r.Path)
		}
		for _, df := range adds {
			rw.AddDataFile(df)
		}
		if err := rw.Commit(ctx); err != nil {
			return nil, t.stageErr(err, s)
		}
	} else if err := tx.AddDataFiles(ctx, adds, props, table.WithoutAutoNameMapping(), table.WithoutDuplicateCheck()); err != nil {
		return nil, t.stageErr(err, s)
	}
	tbl, err := tx.Commit(ctx)
	if err != nil {
		return nil, err
	}
	cur := tbl.Metadata().CurrentSnapshot()
	if cur == nil || cur.Summary == nil || cur.Summary.Properties[sumCommitID] != c.ID {
		// The commit landed (the catalog accepted it), but the response
		// does not show it as main's head: read the table.
		return nil, fmt.Errorf("commit to %s: the catalog's response does not show the commit: %w", t.root, table.ErrCommitFailed)
	}
	md.LastFieldID = tbl.Metadata().LastColumnID()
	out := &committer.Snapshot{
		Version:  cur.SequenceNumber,
		Metadata: md,
		Files:    files,
		Txns:     txns,
	}
	nss := &state{tbl: tbl, uuid: ss.uuid, schemaVersion: ss.schemaVersion, commits: maps.Clone(ss.commits)}
	nss.commits[c.ID] = cur.SequenceNumber
	if schemaChanged {
		nss.schemaVersion = cur.SequenceNumber
	}
	out.Sys = nss
	return &committer.CommitResult{Version: cur.SequenceNumber, Snapshot: out}, nil
}

// stageErr classifies an error iceberg-go returned while staging a
// commit (before any request): a refusal unless the context ended.
func (t *Table) stageErr(err error, s *committer.Snapshot) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if strings.Contains(err.Error(), "cannot delete files that do not belong") {
		return refusal{fmt.Errorf("commit to %s at version %d: %w: %v", t.root, s.Version, committer.ErrFileRemoved, err)}
	}
	return fmt.Errorf("commit to %s: stage snapshot: %w", t.root, err)
}

// stageMetadata stages c.Metadata's changes in tx: schema evolution
// through update-schema (new field IDs, Iceberg's promotions) together
// with the name mapping, and changed properties. It returns the schema the
// commit's files are described with.
func (t *Table) stageMetadata(tx *table.Transaction, c *committer.Commit, s *committer.Snapshot) (*iceberg.Schema, bool, error) {
	ss := st(s)
	cur := ss.tbl.Schema()
	want := c.Metadata.Schema
	same := s.Metadata.Schema != nil && want.Equal(s.Metadata.Schema) && want.KafkaColumns() == s.Metadata.Schema.KafkaColumns()
	schema := cur
	changed := false
	if !same {
		if c.ReadVersion >= 0 && ss.schemaVersion > c.ReadVersion {
			return nil, false, refusal{fmt.Errorf("commit to %s: schema changed at version %d, after read version %d: %w",
				t.root, ss.schemaVersion, c.ReadVersion, committer.ErrMetadataChanged)}
		}
		us := tx.UpdateSchema(true, false)
		staged, err := evolve(us, cur, want)
		if err != nil {
			return nil, false, refusal{fmt.Errorf("commit to %s: %w", t.root, err)}
		}
		if staged {
			if err := us.Commit(); err != nil {
				return nil, false, refusal{fmt.Errorf("commit to %s: evolve schema: %w", t.root, err)}
			}
			staged, err := tx.StagedTable()
			if err != nil {
				return nil, false, refusal{fmt.Errorf("commit to %s: evolve schema: %w", t.root, err)}
			}
			next := staged.Schema()
			mapping, err := nameMapping(next)
			if err != nil {
				return nil, false, refusal{err}
			}
			if err := tx.SetProperties(iceberg.Properties{table.DefaultNameMappingKey: mapping}); err != nil {
				return nil, false, refusal{fmt.Errorf("commit to %s: %w", t.root, err)}
			}
			schema, changed = next, true
		}
	}
	props := iceberg.Properties{}
	if c.Metadata.Name != "" && c.Metadata.Name != s.Metadata.Name {
		props[propName] = c.Metadata.Name
	}
	for k, v := range c.Metadata.Configuration {
		if s.Metadata.Configuration[k] != v {
			props[k] = v
		}
	}
	if len(props) > 0 {
		if err := tx.SetProperties(props); err != nil {
			return nil, false, refusal{fmt.Errorf("commit to %s: %w", t.root, err)}
		}
	}
	return schema, changed, nil
}

// dataFile describes a as an Iceberg data file of a table with schema
// is: its absolute URI, size and row count, and from a.Stats per column
// the value and null counts and the lower and upper bounds, so engines
// prune files by _lsn, _ts and key columns without opening them.
func (t *Table) dataFile(a committer.Add, is *iceberg.Schema) (iceberg.DataFile, error) {
	b, err := iceberg.NewDataFileBuilder(*iceberg.UnpartitionedSpec, iceberg.EntryContentData, t.absPath(a.Path),
		iceberg.ParquetFile, nil, nil, nil, a.Rows(), a.Size)
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", a.Path, err)
	}
	if a.Stats != nil && len(a.Stats.Columns) > 0 {
		values := map[int]int64{}
		nulls := map[int]int64{}
		lower := map[int][]byte{}
		upper := map[int][]byte{}
		for name, cs := range a.Stats.Columns {
			f, ok := is.FindFieldByName(name)
			if !ok {
				continue
			}
			values[f.ID] = a.Stats.Rows
			nulls[f.ID] = cs.NullCount
			typ, ok := codecType(f)
			if !ok || !boundCompatible(cs.Type, typ) {
				continue
			}
			if v, ok := bound(cs.Min, typ, false); ok {
				lower[f.ID] = v
			}
			if v, ok := bound(cs.Max, typ, true); ok {
				upper[f.ID] = v
			}
		}
		b = b.ValueCounts(values).NullValueCounts(nulls).LowerBoundValues(lower).UpperBoundValues(upper)
	}
	return b.Build(), nil
}

// boundCompatible says whether values a file holds in type file can be
// written as bounds of the table's type col: the same type, or an integer
// in a long column (bounds take the table's type).
func boundCompatible(file, col codec.Type) bool {
	if file.Kind == codec.TypeJSON || col.Kind == codec.TypeJSON {
		return false
	}
	if file == col {
		return true
	}
	return file.Kind == codec.TypeInteger && col.Kind == codec.TypeLong
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
