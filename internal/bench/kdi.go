package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/objstore"
)

// kafka-delta-ingest (delta-io, Rust) writes one Delta table from one
// topic, each JSON message one row, its columns the table's and its values
// taken from the message by transforms: JMESPath expressions over the
// message, or the well-known kafka.topic, kafka.partition and
// kafka.offset. It neither creates the table nor routes by a field, so as
// a peer it needs a run of one table, whose topic holds that table's
// changes only, and its table created beforehand with the sink's schema;
// the transforms then map each evodb change
// ({"op","table","data":{…},"lsn","ts","before"}) onto the sink's columns.
// It stores its offsets in the table's log (a txn action per partition),
// as the sink does, and writes a file and a commit when it has
// min_bytes_per_file of Parquet or allowed_latency seconds have passed.
//
// It prints nothing on its progress but its log, so the bench reads the
// rows it has committed from its table's log: the numRecords of every add
// action.

// checkKDI says why cfg cannot run kafka-delta-ingest as a peer, or nil.
func checkKDI(cfg Config) error {
	if cfg.PeerBinary == "" {
		return errors.New("peer kafka-delta-ingest needs its binary (-peer-bin; e2e/scripts/kafka-delta-ingest.sh install builds it)")
	}
	if cfg.Tables != 1 {
		return fmt.Errorf("peer kafka-delta-ingest writes one table from one topic: run it with -tables 1, not %d", cfg.Tables)
	}
	if cfg.Format != cdc.FormatEvoDB || cfg.SchemaWrapper {
		return fmt.Errorf("peer kafka-delta-ingest maps the evodb envelope onto the sink's columns: run it with -format evodb, not %s", cfg.Format)
	}
	return nil
}

// kdiColumn is a column of the peer's table.
type kdiColumn struct {
	Name string
	Type string // the Delta type name, e.g. "long"
}

// kdiRun is one pass of kafka-delta-ingest.
type kdiRun struct {
	bin      string
	dir      string // where its log goes
	table    string // the table's directory, created by createKDITable
	columns  []kdiColumn
	brokers  []string
	topic    string
	group    string
	flush    int
	interval time.Duration
}

// args returns kafka-delta-ingest's command line: the topic into the
// table from the earliest offset in its own group, a record batch per
// flush threshold of rows, a file and a commit every flush interval
// (rounded up to whole seconds, its unit) or 128 MiB of Parquet (its
// default), and the transforms of the sink's columns.
func (k kdiRun) args() ([]string, error) {
	transforms, err := kdiTransforms(k.columns)
	if err != nil {
		return nil, err
	}
	latency := int64((k.interval + time.Second - 1) / time.Second)
	args := []string{"ingest", k.topic, k.table,
		"--kafka", strings.Join(k.brokers, ","),
		"--consumer_group", k.group,
		"--app_id", k.group,
		"--auto_offset_reset", "earliest",
		"--allowed_latency", strconv.FormatInt(max(latency, 1), 10),
		"--max_messages_per_batch", strconv.Itoa(max(k.flush, 1)),
		"--kafka_setting", "isolation.level=read_committed",
	}
	for _, t := range transforms {
		args = append(args, "--transform", t)
	}
	return args, nil
}

// kdiTransforms maps each column of the sink's table to its source in an
// evodb change: the metadata columns to the envelope and the Kafka
// message, the data columns to the row, which is data's, or before's for
// a delete (whose data holds the key only; JMESPath's || takes before
// when the change has one). The sink's _ts is microseconds, the
// envelope's ts milliseconds.
func kdiTransforms(cols []kdiColumn) ([]string, error) {
	meta := map[string]string{
		codec.ColOp:        "op",
		codec.ColLSN:       "lsn",
		codec.ColTS:        "epoch_millis_to_micro(ts)",
		codec.ColTopic:     "kafka.topic",
		codec.ColPartition: "kafka.partition",
		codec.ColOffset:    "kafka.offset",
	}
	var out []string
	for _, c := range cols {
		if src, ok := meta[c.Name]; ok {
			out = append(out, c.Name+": "+src)
			continue
		}
		// A transform is "NAME: SOURCE" with NAME a dotted path: a name
		// with a colon, a dot or surrounding space cannot be a target.
		if c.Name == "" || strings.ContainsAny(c.Name, ":.") || strings.TrimSpace(c.Name) != c.Name {
			return nil, fmt.Errorf("column %q of the sink's table: kafka-delta-ingest cannot name it in a transform (no colon, dot or surrounding space)", c.Name)
		}
		quoted, err := json.Marshal(c.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, c.Name+": (before || data)."+string(quoted))
	}
	return out, nil
}

// createKDITable creates the peer's table at peerTable with the schema of
// the sink's table at sinkTable (both directories): a log of version 0
// with a protocol (reader 1, writer 2) and the sink's schemaString, no
// partition columns and no data. It returns the table's columns.
func createKDITable(ctx context.Context, sinkTable, peerTable string) ([]kdiColumn, error) {
	fs, err := objstore.NewFilesystem(filepath.Dir(sinkTable))
	if err != nil {
		return nil, err
	}
	snap, err := delta.Open(fs, filepath.Base(sinkTable), delta.Options{}).Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the sink's table %s for the peer's schema: %w", sinkTable, err)
	}
	schema := delta.SchemaString(snap)
	var st struct {
		Fields []struct {
			Name string `json:"name"`
			Type any    `json:"type"`
		} `json:"fields"`
	}
	if err := json.Unmarshal([]byte(schema), &st); err != nil {
		return nil, fmt.Errorf("schema of the sink's table %s: %w", sinkTable, err)
	}
	var cols []kdiColumn
	for _, f := range st.Fields {
		t, ok := f.Type.(string)
		if !ok {
			return nil, fmt.Errorf("schema of the sink's table %s: column %q has a nested type, which the peer's transforms do not map", sinkTable, f.Name)
		}
		cols = append(cols, kdiColumn{Name: f.Name, Type: t})
	}
	type protocol struct {
		MinReaderVersion int `json:"minReaderVersion"`
		MinWriterVersion int `json:"minWriterVersion"`
	}
	type format struct {
		Provider string            `json:"provider"`
		Options  map[string]string `json:"options"`
	}
	type metaData struct {
		ID               string            `json:"id"`
		Format           format            `json:"format"`
		SchemaString     string            `json:"schemaString"`
		PartitionColumns []string          `json:"partitionColumns"`
		Configuration    map[string]string `json:"configuration"`
		CreatedTime      int64             `json:"createdTime"`
	}
	var log []byte
	for _, a := range []any{
		map[string]any{"protocol": protocol{1, 2}},
		map[string]any{"metaData": metaData{
			ID: newTableID(), Format: format{Provider: "parquet", Options: map[string]string{}},
			SchemaString: schema, PartitionColumns: []string{}, Configuration: map[string]string{},
			CreatedTime: time.Now().UnixMilli(),
		}},
	} {
		b, err := json.Marshal(a)
		if err != nil {
			return nil, err
		}
		log = append(append(log, b...), '\n')
	}
	logDir := filepath.Join(peerTable, "_delta_log")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, fmt.Errorf("create the peer's table: %w", err)
	}
	if err := os.WriteFile(filepath.Join(logDir, fmt.Sprintf("%020d.json", 0)), log, 0o644); err != nil {
		return nil, fmt.Errorf("create the peer's table: %w", err)
	}
	return cols, nil
}

// newTableID returns a random UUID for a table's metaData id.
func newTableID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// process returns kafka-delta-ingest as a peerProcess: its clock starts at
// the log line of its partition assignment, and its progress is read from
// its table's log.
func (k kdiRun) process(ctx context.Context) (*peerProcess, error) {
	args, err := k.args()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(context.WithoutCancel(ctx), k.bin, args...)
	// Its logger writes to stderr at RUST_LOG's level; info has the
	// assignment line and one line per commit.
	cmd.Env = append(os.Environ(), "RUST_LOG=info")
	log := &deltaLogRows{dir: filepath.Join(k.table, "_delta_log")}
	return &peerProcess{
		name: PeerKafkaDeltaIngest, cmd: cmd, logPath: filepath.Join(k.dir, k.group+".log"),
		lineStderr: true,
		ready:      func(line string) bool { return strings.Contains(line, "POST_REBALANCE - Assign") },
		committed:  log.rows,
		// Each poll lists the log directory; a commit comes once per
		// interval, so a coarser poll costs little precision.
		every: 20 * time.Millisecond,
	}, nil
}

// deltaLogRows counts the rows a Delta table's log has added: the
// numRecords of the stats of every add action, read one new commit at a
// time. It relies on a commit file being complete once it exists under
// its name, which holds for a writer that puts it atomically (on a
// filesystem: writes a temporary file and renames it); a commit it cannot
// parse is read again at the next call rather than counted short.
type deltaLogRows struct {
	dir  string
	next int64 // the next version to read
	n    int64
}

func (d *deltaLogRows) rows() (int64, error) {
	for {
		b, err := os.ReadFile(filepath.Join(d.dir, fmt.Sprintf("%020d.json", d.next)))
		if errors.Is(err, os.ErrNotExist) {
			return d.n, nil
		}
		if err != nil {
			return 0, fmt.Errorf("read the peer's table log: %w", err)
		}
		n, ok := addedRows(b)
		if !ok {
			return d.n, nil
		}
		d.n += n
		d.next++
	}
}

// addedRows sums the numRecords of the add actions of one commit; ok is
// false if a line does not parse or an add has no numRecords.
func addedRows(commit []byte) (int64, bool) {
	var n int64
	sc := bufio.NewScanner(bytes.NewReader(commit))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var a struct {
			Add *struct {
				Stats string `json:"stats"`
			} `json:"add"`
		}
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			return 0, false
		}
		if a.Add == nil {
			continue
		}
		var st struct {
			NumRecords *int64 `json:"numRecords"`
		}
		if err := json.Unmarshal([]byte(a.Add.Stats), &st); err != nil || st.NumRecords == nil {
			return 0, false
		}
		n += *st.NumRecords
	}
	return n, sc.Err() == nil
}
