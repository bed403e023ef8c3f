package delta

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	"github.com/evodb/sink/committer"
)

// EngineInfo is written to commitInfo.engineInfo of every commit.
const EngineInfo = "evodb-sink"

// The protocol versions this committer writes and understands without
// table features: reader 1, writer 2 (no column mapping). A Table opened
// with DeleteRows writes reader 3 / writer 7 with the features
// protocol.go lists.
const (
	readerVersion = 1
	writerVersion = 2
)

// Protocol is the table's protocol action. ReaderFeatures and
// WriterFeatures are the table features of a reader 3 / writer 7 table.
type Protocol struct {
	MinReaderVersion int32
	MinWriterVersion int32
	ReaderFeatures   []string
	WriterFeatures   []string
}

// metadata is the table's metaData action. SchemaString is the Delta
// schema serialization (a JSON struct type).
type metadata struct {
	ID               string
	Name             string
	SchemaString     string
	PartitionColumns []string
	Configuration    map[string]string
	CreatedTime      int64
}

// Txn is a transaction identifier action: the last source offset of an
// application (a source partition) that the table holds.
type Txn struct {
	AppID       string
	Version     int64
	LastUpdated int64
}

// The JSON shapes below are the Delta log's action encoding. Optional fields
// use omitempty or pointers so that what we write matches what Spark writes.

type jsonAction struct {
	CommitInfo map[string]any `json:"commitInfo,omitempty"`
	Protocol   *jsonProtocol  `json:"protocol,omitempty"`
	MetaData   *jsonMetaData  `json:"metaData,omitempty"`
	Txn        *jsonTxn       `json:"txn,omitempty"`
	Remove     *jsonRemove    `json:"remove,omitempty"`
	Add        *jsonAdd       `json:"add,omitempty"`
}

type jsonProtocol struct {
	MinReaderVersion int32    `json:"minReaderVersion"`
	MinWriterVersion int32    `json:"minWriterVersion"`
	ReaderFeatures   []string `json:"readerFeatures,omitempty"`
	WriterFeatures   []string `json:"writerFeatures,omitempty"`
}

type jsonFormat struct {
	Provider string            `json:"provider"`
	Options  map[string]string `json:"options"`
}

type jsonMetaData struct {
	ID               string            `json:"id"`
	Name             string            `json:"name,omitempty"`
	Description      string            `json:"description,omitempty"`
	Format           jsonFormat        `json:"format"`
	SchemaString     string            `json:"schemaString"`
	PartitionColumns []string          `json:"partitionColumns"`
	Configuration    map[string]string `json:"configuration"`
	CreatedTime      *int64            `json:"createdTime,omitempty"`
}

type jsonTxn struct {
	AppID       string `json:"appId"`
	Version     int64  `json:"version"`
	LastUpdated *int64 `json:"lastUpdated,omitempty"`
}

type jsonAdd struct {
	Path             string            `json:"path"`
	PartitionValues  map[string]string `json:"partitionValues"`
	Size             int64             `json:"size"`
	ModificationTime int64             `json:"modificationTime"`
	DataChange       bool              `json:"dataChange"`
	Stats            string            `json:"stats,omitempty"`
	Tags             map[string]string `json:"tags,omitempty"`
	DeletionVector   *DeletionVector   `json:"deletionVector,omitempty"`
}

type jsonRemove struct {
	Path                 string            `json:"path"`
	DeletionTimestamp    *int64            `json:"deletionTimestamp,omitempty"`
	DataChange           bool              `json:"dataChange"`
	ExtendedFileMetadata bool              `json:"extendedFileMetadata,omitempty"`
	PartitionValues      map[string]string `json:"partitionValues,omitempty"`
	Size                 *int64            `json:"size,omitempty"`
	DeletionVector       *DeletionVector   `json:"deletionVector,omitempty"`
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func toJSONMetaData(md metadata) *jsonMetaData {
	created := md.CreatedTime
	cols := md.PartitionColumns
	if cols == nil {
		cols = []string{}
	}
	return &jsonMetaData{
		ID:               md.ID,
		Name:             md.Name,
		Format:           jsonFormat{Provider: "parquet", Options: map[string]string{}},
		SchemaString:     md.SchemaString,
		PartitionColumns: cols,
		Configuration:    nonNil(md.Configuration),
		CreatedTime:      &created,
	}
}

func (j *jsonMetaData) metadata() metadata {
	md := metadata{
		ID:               j.ID,
		Name:             j.Name,
		SchemaString:     j.SchemaString,
		PartitionColumns: j.PartitionColumns,
		Configuration:    j.Configuration,
	}
	if j.CreatedTime != nil {
		md.CreatedTime = *j.CreatedTime
	}
	return md
}

// addStats returns the stats JSON of a: the text Sys holds, or else
// Stats rendered; "" for none.
func addStats(a committer.Add) (RawStats, error) {
	if stats, ok := a.Sys.(RawStats); ok {
		return stats, nil
	}
	if a.Stats == nil {
		return "", nil
	}
	text, err := StatsJSON(a.Stats)
	if err != nil {
		return "", fmt.Errorf("add %s: %w", a.Path, err)
	}
	return RawStats(text), nil
}

// logged returns a as the log records it and reads it back: its stats as
// JSON in Sys, and Stats holding what is read back from them.
func logged(a committer.Add) (committer.Add, error) {
	stats, err := addStats(a)
	if err != nil {
		return a, err
	}
	a.Sys, a.Stats = nil, readStats(string(stats))
	if stats != "" {
		a.Sys = stats
	}
	return a, nil
}

func toJSONAdd(a committer.Add) (*jsonAdd, error) {
	stats, err := addStats(a)
	if err != nil {
		return nil, err
	}
	ja := &jsonAdd{
		Path:             a.Path,
		PartitionValues:  nonNil(a.PartitionValues),
		Size:             a.Size,
		ModificationTime: a.ModificationTime,
		DataChange:       a.DataChange,
		Stats:            string(stats),
		Tags:             a.Tags,
	}
	if a.Deleted != nil {
		dv, ok := a.Deleted.Sys.(DeletionVector)
		if !ok {
			return nil, fmt.Errorf("add %s: deleted rows without a Delta deletion vector", a.Path)
		}
		ja.DeletionVector = &dv
		ja.Stats = string(looseBounds(stats))
	}
	return ja, nil
}

// looseBounds returns stats marked as having bounds that may be wider than
// the rows a file still holds ("tightBounds": false), as the protocol
// requires of a file with a deletion vector: its bounds were taken before
// rows were deleted. numRecords still counts every row of the file.
func looseBounds(stats RawStats) RawStats {
	s := string(stats)
	switch {
	case s == "":
		return ""
	case strings.Contains(s, `"tightBounds":false`):
		return stats
	case strings.Contains(s, `"tightBounds":true`):
		return RawStats(strings.Replace(s, `"tightBounds":true`, `"tightBounds":false`, 1))
	}
	body, ok := strings.CutSuffix(strings.TrimSpace(s), "}")
	if !ok {
		return stats
	}
	if strings.TrimSpace(body) == "{" {
		return RawStats(body + `"tightBounds":false}`)
	}
	return RawStats(body + `,"tightBounds":false}`)
}

func (j *jsonAdd) add() committer.Add {
	a := committer.Add{
		Path:             j.Path,
		PartitionValues:  j.PartitionValues,
		Size:             j.Size,
		ModificationTime: j.ModificationTime,
		DataChange:       j.DataChange,
		Stats:            readStats(j.Stats),
		Tags:             j.Tags,
	}
	if j.Stats != "" {
		a.Sys = RawStats(j.Stats)
	}
	if j.DeletionVector != nil {
		a.Deleted = j.DeletionVector.deleted("")
	}
	return a
}

// rooted returns d with the path of its deletion vector file made relative
// to the table root root: a parsed action knows no root, which only
// absolute ("p") paths need.
func rooted(d *committer.DeletedRows, root string) *committer.DeletedRows {
	if d == nil {
		return nil
	}
	dv, ok := d.Sys.(DeletionVector)
	if !ok || dv.StorageType != dvPath {
		return d
	}
	return dv.deleted(root)
}

// root makes the paths of the entry's deletion vector files relative to
// the table root root; see rooted.
func (e *logEntry) root(root string) {
	for i := range e.adds {
		e.adds[i].Deleted = rooted(e.adds[i].Deleted, root)
	}
	for i := range e.removes {
		e.removes[i].Deleted = rooted(e.removes[i].Deleted, root)
	}
}

func toJSONRemove(r committer.Remove) *jsonRemove {
	ts := r.DeletionTimestamp
	j := &jsonRemove{
		Path:                 r.Path,
		DeletionTimestamp:    &ts,
		DataChange:           r.DataChange,
		ExtendedFileMetadata: true,
		PartitionValues:      nonNil(r.PartitionValues),
	}
	size := r.Size
	j.Size = &size
	if r.Deleted != nil {
		if dv, ok := r.Deleted.Sys.(DeletionVector); ok {
			j.DeletionVector = &dv
		}
	}
	return j
}

func (j *jsonRemove) remove() committer.Remove {
	r := committer.Remove{Path: j.Path, DataChange: j.DataChange, PartitionValues: j.PartitionValues}
	if j.DeletionVector != nil {
		r.Deleted = j.DeletionVector.deleted("")
	}
	if j.DeletionTimestamp != nil {
		r.DeletionTimestamp = *j.DeletionTimestamp
	}
	if j.Size != nil {
		r.Size = *j.Size
	}
	return r
}

// logEntry is one parsed commit file.
type logEntry struct {
	commitInfo map[string]any
	protocol   *Protocol
	metadata   *metadata
	txns       []Txn
	removes    []committer.Remove
	adds       []committer.Add
}

// commitID returns the evodb commit id recorded in commitInfo, if any.
func (e *logEntry) commitID() string {
	id, _ := e.commitInfo[infoCommitID].(string)
	return id
}

// parseLogEntry decodes a newline-delimited JSON commit. Actions this
// committer does not model (cdc, domainMetadata, ...) are skipped, which is
// what a reader of protocol (1,2) may do.
func parseLogEntry(data []byte) (*logEntry, error) {
	e := &logEntry{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		var a jsonAction
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&a); err != nil {
			return nil, fmt.Errorf("decode action on line %d: %w", line, err)
		}
		switch {
		case a.CommitInfo != nil:
			e.commitInfo = a.CommitInfo
		case a.Protocol != nil:
			e.protocol = &Protocol{
				MinReaderVersion: a.Protocol.MinReaderVersion,
				MinWriterVersion: a.Protocol.MinWriterVersion,
				ReaderFeatures:   a.Protocol.ReaderFeatures,
				WriterFeatures:   a.Protocol.WriterFeatures,
			}
		case a.MetaData != nil:
			md := a.MetaData.metadata()
			e.metadata = &md
		case a.Txn != nil:
			e.txns = append(e.txns, Txn{AppID: a.Txn.AppID, Version: a.Txn.Version, LastUpdated: derefInt(a.Txn.LastUpdated)})
		case a.Remove != nil:
			e.removes = append(e.removes, a.Remove.remove())
		case a.Add != nil:
			e.adds = append(e.adds, a.Add.add())
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scan commit: %w", err)
	}
	return e, nil
}

func derefInt(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// encode writes the entry as newline-delimited JSON actions in the order
// commitInfo, protocol, metaData, txn, remove, add.
func (e *logEntry) encode() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	put := func(a jsonAction) error {
		if err := enc.Encode(a); err != nil {
			return fmt.Errorf("encode action: %w", err)
		}
		return nil
	}
	if e.commitInfo != nil {
		if err := put(jsonAction{CommitInfo: e.commitInfo}); err != nil {
			return nil, err
		}
	}
	if e.protocol != nil {
		p := e.protocol
		if err := put(jsonAction{Protocol: &jsonProtocol{MinReaderVersion: p.MinReaderVersion, MinWriterVersion: p.MinWriterVersion, ReaderFeatures: p.ReaderFeatures, WriterFeatures: p.WriterFeatures}}); err != nil {
			return nil, err
		}
	}
	if e.metadata != nil {
		if err := put(jsonAction{MetaData: toJSONMetaData(*e.metadata)}); err != nil {
			return nil, err
		}
	}
	for _, t := range e.txns {
		lu := t.LastUpdated
		if err := put(jsonAction{Txn: &jsonTxn{AppID: t.AppID, Version: t.Version, LastUpdated: &lu}}); err != nil {
			return nil, err
		}
	}
	for _, r := range e.removes {
		if err := put(jsonAction{Remove: toJSONRemove(r)}); err != nil {
			return nil, err
		}
	}
	for _, a := range e.adds {
		ja, err := toJSONAdd(a)
		if err != nil {
			return nil, err
		}
		if err := put(jsonAction{Add: ja}); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// cloneMetadata copies md so a snapshot never shares mutable maps or slices
// with a caller.
func cloneMetadata(md metadata) metadata {
	md.PartitionColumns = append([]string(nil), md.PartitionColumns...)
	md.Configuration = maps.Clone(md.Configuration)
	return md
}
