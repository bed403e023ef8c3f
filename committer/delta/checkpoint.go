package delta

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/parquet-go/parquet-go"

	"github.com/evodb/sink/committer"

	"github.com/evodb/sink/objstore"
)

// The checkpoint's Parquet schema: one row per action, one optional struct
// column per action type (txn, add, remove, metaData, protocol), exactly one
// of them set in each row, as PROTOCOL.md "Checkpoint Schema" lays out.
// Fields Delta requires are required inside their optional struct; maps are
// MAP groups (key_value) and lists are 3-level LIST groups, which Spark,
// delta-rs and Arrow all read. add.stats is the JSON string; no stats_parsed.
type cpRow struct {
	Txn      *cpTxn      `parquet:"txn,optional"`
	Add      *cpAdd      `parquet:"add,optional"`
	Remove   *cpRemove   `parquet:"remove,optional"`
	MetaData *cpMetaData `parquet:"metaData,optional"`
	Protocol *cpProtocol `parquet:"protocol,optional"`
}

type cpTxn struct {
	AppID       string `parquet:"appId"`
	Version     int64  `parquet:"version"`
	LastUpdated *int64 `parquet:"lastUpdated,optional"`
}

type cpAdd struct {
	Path             string            `parquet:"path"`
	PartitionValues  map[string]string `parquet:"partitionValues"`
	Size             int64             `parquet:"size"`
	ModificationTime int64             `parquet:"modificationTime"`
	DataChange       bool              `parquet:"dataChange"`
	Stats            *string           `parquet:"stats,optional"`
	Tags             map[string]string `parquet:"tags,optional"`
	DeletionVector   *cpDeletionVector `parquet:"deletionVector,optional"`
}

// cpDeletionVector is a deletion vector descriptor as Spark's checkpoint
// schema lays it out.
type cpDeletionVector struct {
	StorageType    string `parquet:"storageType"`
	PathOrInlineDv string `parquet:"pathOrInlineDv"`
	Offset         *int32 `parquet:"offset,optional"`
	SizeInBytes    int32  `parquet:"sizeInBytes"`
	Cardinality    int64  `parquet:"cardinality"`
}

func toCPDeletionVector(d *committer.DeletedRows) *cpDeletionVector {
	if d == nil {
		return nil
	}
	dv, ok := d.Sys.(DeletionVector)
	if !ok {
		return nil
	}
	return &cpDeletionVector{StorageType: dv.StorageType, PathOrInlineDv: dv.PathOrInlineDv, Offset: dv.Offset, SizeInBytes: dv.SizeInBytes, Cardinality: dv.Cardinality}
}

// deleted returns the deleted rows d describes in a table rooted at root,
// nil for none.
func (d *cpDeletionVector) deleted(root string) *committer.DeletedRows {
	if d == nil {
		return nil
	}
	dv := DeletionVector{StorageType: d.StorageType, PathOrInlineDv: d.PathOrInlineDv, SizeInBytes: d.SizeInBytes, Cardinality: d.Cardinality}
	if d.Offset != nil {
		dv.Offset = ptr(*d.Offset)
	}
	return dv.deleted(root)
}

type cpRemove struct {
	Path                 string            `parquet:"path"`
	DeletionTimestamp    *int64            `parquet:"deletionTimestamp,optional"`
	DataChange           bool              `parquet:"dataChange"`
	ExtendedFileMetadata *bool             `parquet:"extendedFileMetadata,optional"`
	PartitionValues      map[string]string `parquet:"partitionValues,optional"`
	Size                 *int64            `parquet:"size,optional"`
	DeletionVector       *cpDeletionVector `parquet:"deletionVector,optional"`
}

type cpFormat struct {
	Provider string            `parquet:"provider"`
	Options  map[string]string `parquet:"options,optional"`
}

type cpMetaData struct {
	ID               string            `parquet:"id"`
	Name             *string           `parquet:"name,optional"`
	Description      *string           `parquet:"description,optional"`
	Format           cpFormat          `parquet:"format"`
	SchemaString     string            `parquet:"schemaString"`
	PartitionColumns []string          `parquet:"partitionColumns,list"`
	CreatedTime      *int64            `parquet:"createdTime,optional"`
	Configuration    map[string]string `parquet:"configuration"`
}

type cpProtocol struct {
	MinReaderVersion int32    `parquet:"minReaderVersion"`
	MinWriterVersion int32    `parquet:"minWriterVersion"`
	ReaderFeatures   []string `parquet:"readerFeatures,optional,list"`
	WriterFeatures   []string `parquet:"writerFeatures,optional,list"`
}

type lastCheckpoint struct {
	Version int64 `json:"version"`
	Size    int64 `json:"size"`
}

func ptr[T any](v T) *T { return &v }

// checkpointRows lays s out as checkpoint rows: protocol, metaData, txns,
// adds, tombstones, each group sorted so a checkpoint's bytes depend only on
// the snapshot. Tombstones deleted before expireBefore (Unix milliseconds)
// have expired and are left out, as Delta allows.
func checkpointRows(s *committer.Snapshot, expireBefore int64) ([]cpRow, error) {
	ss := st(s)
	rows := []cpRow{
		{Protocol: &cpProtocol{
			MinReaderVersion: ss.protocol.MinReaderVersion,
			MinWriterVersion: ss.protocol.MinWriterVersion,
			ReaderFeatures:   ss.protocol.ReaderFeatures,
			WriterFeatures:   ss.protocol.WriterFeatures,
		}},
	}
	md := ss.metadata
	cm := &cpMetaData{
		ID:               md.ID,
		Format:           cpFormat{Provider: "parquet", Options: map[string]string{}},
		SchemaString:     md.SchemaString,
		PartitionColumns: append([]string{}, md.PartitionColumns...),
		CreatedTime:      ptr(md.CreatedTime),
		Configuration:    nonNil(md.Configuration),
	}
	if md.Name != "" {
		cm.Name = ptr(md.Name)
	}
	rows = append(rows, cpRow{MetaData: cm})
	for _, app := range sortedKeys(s.Txns) {
		rows = append(rows, cpRow{Txn: &cpTxn{AppID: app, Version: s.Txns[app], LastUpdated: ptr(ss.txnUpdated[app].lastUpdated)}})
	}
	for _, p := range sortedKeys(s.Files) {
		a := s.Files[p]
		ca := &cpAdd{
			Path:             a.Path,
			PartitionValues:  nonNil(a.PartitionValues),
			Size:             a.Size,
			ModificationTime: a.ModificationTime,
			DataChange:       a.DataChange,
			Tags:             a.Tags,
		}
		ja, err := toJSONAdd(a)
		if err != nil {
			return nil, err
		}
		if ja.Stats != "" {
			ca.Stats = ptr(ja.Stats)
		}
		ca.DeletionVector = toCPDeletionVector(a.Deleted)
		rows = append(rows, cpRow{Add: ca})
	}
	tombs := make([]committer.Remove, 0, ss.tombs.n)
	for _, r := range ss.tombs.all() {
		tombs = append(tombs, r)
	}
	sort.Slice(tombs, func(i, j int) bool {
		return tombKey(tombs[i].Path, tombs[i].Deleted) < tombKey(tombs[j].Path, tombs[j].Deleted)
	})
	for _, r := range tombs {
		if r.DeletionTimestamp < expireBefore {
			continue
		}
		rows = append(rows, cpRow{Remove: &cpRemove{
			Path:                 r.Path,
			DeletionTimestamp:    ptr(r.DeletionTimestamp),
			DataChange:           r.DataChange,
			ExtendedFileMetadata: ptr(true),
			PartitionValues:      nonNil(r.PartitionValues),
			Size:                 ptr(r.Size),
			DeletionVector:       toCPDeletionVector(r.Deleted),
		}})
	}
	return rows, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// encodeCheckpoint writes s as a single-part classic checkpoint.
func encodeCheckpoint(s *committer.Snapshot, expireBefore int64) ([]byte, int64, error) {
	rows, err := checkpointRows(s, expireBefore)
	if err != nil {
		return nil, 0, err
	}
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[cpRow](&buf, parquet.Compression(&parquet.Snappy))
	if _, err := w.Write(rows); err != nil {
		return nil, 0, fmt.Errorf("write checkpoint rows: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, 0, fmt.Errorf("close checkpoint: %w", err)
	}
	return buf.Bytes(), int64(len(rows)), nil
}

// decodeCheckpoint rebuilds the snapshot at version from a checkpoint.
func decodeCheckpoint(data []byte, version int64, root string) (s *committer.Snapshot, err error) {
	// parquet-go panics on some malformed files and on column types it
	// cannot convert; a bad checkpoint must only send the reader back to the
	// JSON commits, so such a panic becomes an error here.
	defer func() {
		if p := recover(); p != nil {
			s, err = nil, fmt.Errorf("malformed checkpoint: %v", p)
		}
	}()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("open checkpoint: %w", err)
	}
	r := parquet.NewGenericReader[cpRow](f)
	defer r.Close()
	s = emptySnapshot()
	ss := st(s)
	s.Version = version
	ss.metadataVersion = version
	sawProtocol, sawMetadata := false, false
	batch := make([]cpRow, 256)
	for {
		clear(batch)
		n, err := r.Read(batch)
		for _, row := range batch[:n] {
			switch {
			case row.Protocol != nil:
				ss.protocol = Protocol{
					MinReaderVersion: row.Protocol.MinReaderVersion,
					MinWriterVersion: row.Protocol.MinWriterVersion,
					ReaderFeatures:   row.Protocol.ReaderFeatures,
					WriterFeatures:   row.Protocol.WriterFeatures,
				}
				sawProtocol = true
			case row.MetaData != nil:
				m := row.MetaData
				ss.metadata = metadata{
					ID:               m.ID,
					SchemaString:     m.SchemaString,
					PartitionColumns: m.PartitionColumns,
					Configuration:    m.Configuration,
				}
				ss.metadata.SchemaString, ss.schema = intern(ss.metadata.SchemaString)
				if m.Name != nil {
					ss.metadata.Name = *m.Name
				}
				if m.CreatedTime != nil {
					ss.metadata.CreatedTime = *m.CreatedTime
				}
				s.Metadata = neutralMetadata(ss.metadata)
				sawMetadata = true
			case row.Txn != nil:
				setTxn(s, row.Txn.AppID, row.Txn.Version, derefInt(row.Txn.LastUpdated))
			case row.Add != nil:
				a := committer.Add{
					Path:             row.Add.Path,
					PartitionValues:  row.Add.PartitionValues,
					Size:             row.Add.Size,
					ModificationTime: row.Add.ModificationTime,
					DataChange:       row.Add.DataChange,
					Tags:             row.Add.Tags,
					Deleted:          row.Add.DeletionVector.deleted(root),
				}
				if row.Add.Stats != nil && *row.Add.Stats != "" {
					a.Stats = readStats(*row.Add.Stats)
					a.Sys = RawStats(*row.Add.Stats)
				}
				s.Files[a.Path] = a
			case row.Remove != nil:
				ss.tombs.put(committer.Remove{
					Path:              row.Remove.Path,
					DeletionTimestamp: derefInt(row.Remove.DeletionTimestamp),
					DataChange:        row.Remove.DataChange,
					Size:              derefInt(row.Remove.Size),
					PartitionValues:   row.Remove.PartitionValues,
					Deleted:           row.Remove.DeletionVector.deleted(root),
				})
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read checkpoint rows: %w", err)
		}
	}
	if !sawProtocol || !sawMetadata {
		return nil, errors.New("checkpoint lacks protocol or metaData")
	}
	return s, nil
}

// readCheckpoint loads the checkpoint of version.
func (t *Table) readCheckpoint(ctx context.Context, version int64) (*committer.Snapshot, error) {
	key := t.logKey(checkpointName(version))
	data, err := t.readObject(ctx, key)
	if err != nil {
		return nil, err
	}
	s, err := decodeCheckpoint(data, version, t.root)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", key, err)
	}
	t.expireTombstones(s)
	return s, nil
}

// readLastCheckpoint returns the version _last_checkpoint names. A missing or
// unreadable hint is no error: the log is listed instead.
func (t *Table) readLastCheckpoint(ctx context.Context) (int64, bool) {
	data, err := t.readObject(ctx, t.logKey("_last_checkpoint"))
	if err != nil {
		if !errors.Is(err, objstore.ErrNotExist) {
			t.logger.Warn("read _last_checkpoint", "err", err)
		}
		return 0, false
	}
	var lc lastCheckpoint
	if err := json.Unmarshal(data, &lc); err != nil || lc.Version < 0 {
		t.logger.Warn("parse _last_checkpoint", "err", err)
		return 0, false
	}
	return lc.Version, true
}

// maybeCheckpoint writes a checkpoint of s if its version is due one. It is
// best effort: the JSON commits stay authoritative, so a failure only costs
// later readers some replay.
func (t *Table) maybeCheckpoint(ctx context.Context, s *committer.Snapshot) {
	if s.Version <= 0 || s.Version%int64(t.opts.CheckpointInterval) != 0 {
		return
	}
	if err := t.writeCheckpoint(ctx, s); err != nil {
		t.logger.Warn("write checkpoint", "version", s.Version, "err", err)
	}
}

// writeCheckpoint writes the checkpoint of s, then _last_checkpoint. The
// checkpoint is create-only: a concurrent writer's checkpoint of the same
// version holds the same state, so finding one is success.
func (t *Table) writeCheckpoint(ctx context.Context, s *committer.Snapshot) error {
	expireBefore := t.opts.Now().Add(-t.opts.TombstoneRetention).UnixMilli()
	data, size, err := encodeCheckpoint(s, expireBefore)
	if err != nil {
		return err
	}
	key := t.logKey(checkpointName(s.Version))
	_, err = t.bucket.Put(ctx, key, bytes.NewReader(data), int64(len(data)), objstore.PutOptions{IfNoneMatch: true})
	if err != nil && !errors.Is(err, objstore.ErrPreconditionFailed) {
		return fmt.Errorf("put %s: %w", key, err)
	}
	hint, err := json.Marshal(lastCheckpoint{Version: s.Version, Size: size})
	if err != nil {
		return fmt.Errorf("encode _last_checkpoint: %w", err)
	}
	// _last_checkpoint is only a hint that readers verify, so a plain put
	// is enough even if a slower writer briefly sets an older version.
	lcKey := t.logKey("_last_checkpoint")
	if _, err := t.bucket.Put(ctx, lcKey, bytes.NewReader(hint), int64(len(hint)), objstore.PutOptions{}); err != nil {
		return fmt.Errorf("put %s: %w", lcKey, err)
	}
	return nil
}
