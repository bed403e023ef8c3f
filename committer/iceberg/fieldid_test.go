package iceberg

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/parquetblock"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/tablefile"
)

// fieldIDTimes are the _ts and "at" values of TestFieldIDsInDataFiles:
// sub-second parts, just before the epoch (where a conversion rounding
// toward zero is off by one), and the first and last millisecond of
// years 1 and 9999.
var fieldIDTimes = []time.Time{
	time.Date(2024, 2, 29, 12, 34, 56, 789e6, time.UTC),
	time.UnixMilli(-1).UTC(),
	time.Date(1, 1, 1, 0, 0, 0, 1e6, time.UTC),
	time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC),
}

// writeBlock uploads a block of rows with ids 1..len(fieldIDTimes), a
// name and an "at" timestamp, through tablefile as the sink does, and
// returns its add.
func writeBlock(t *testing.T, env *testEnv, prefix, name string, s *codec.Schema, ids map[string]int) committer.Add {
	t.Helper()
	var changes []codec.Change
	for i, at := range fieldIDTimes {
		changes = append(changes, codec.Change{
			Topic: "orders", Partition: 0, Offset: int64(i), Table: "orders", Op: codec.OpInsert,
			LSN: uint64(i + 1), TS: at.UnixMilli(),
			Row: []codec.Field{
				{Name: "id", Value: codec.Int(int64(i + 1))},
				{Name: "name", Value: codec.String("n" + string(rune('a'+i)))},
				{Name: "at", Value: codec.Timestamp(at.UnixMilli())},
			},
		})
	}
	w, err := tablefile.WriteBlock(context.Background(), env.bucket, path.Join(prefix, testRoot), tablefile.Block{
		Schema: s, Changes: changes, DataChange: true,
		Encode: parquetblock.EncodeOptions{KafkaColumns: true, FieldIDs: ids},
		Name:   func(codec.BlockStats, int) string { return "data/" + name },
	})
	require.NoError(t, err)
	return w.Add
}

// TestFieldIDsInDataFiles: a block written with the field IDs
// Metadata.FieldIDsFor predicts, new column included, commits together
// with the schema change that assigns them; a commit whose files carry
// other IDs is refused with ErrMetadataChanged (the shortcut's invariant,
// broken on purpose). With SINK_TEST_PYTHON, PyIceberg and DuckDB then
// read the table with its name mapping removed and a column renamed, so
// they can only find the columns by the files' field IDs, and read the
// timestamps (milliseconds in the files, microseconds in Iceberg's type)
// exactly.
func TestFieldIDsInDataFiles(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	cfg, prefix := env.config(t)
	// One namespace level: DuckDB's catalog client cannot name nested
	// namespaces on this catalog.
	cfg.Namespace, _, _ = strings.Cut(cfg.Namespace, ".")
	f := env.format(t, cfg)
	t.Cleanup(func() { env.dropObjects(t, prefix) })
	tbl := f.Open(testRoot, committer.Options{Instance: "test"})
	snap, err := tbl.Create(ctx, committer.Metadata{Name: "orders", Schema: kafkaSchema(t)})
	require.NoError(t, err)
	require.NotNil(t, snap.Metadata.FieldIDs)

	s := snap.Metadata.Schema.Clone()
	require.NoError(t, s.AddColumn(codec.Column{Name: "at", Type: codec.Type{Kind: codec.TypeTimestamp}, Nullable: true}))
	ids := snap.Metadata.FieldIDsFor(s)
	require.Equal(t, snap.Metadata.LastFieldID+1, ids["at"])
	add := writeBlock(t, env, prefix, "a.parquet", s, ids)
	res, err := tbl.Commit(ctx, committer.Commit{Adds: []committer.Add{add}, Metadata: &committer.Metadata{Schema: s},
		ReadVersion: snap.Version, FieldIDs: ids})
	require.NoError(t, err)
	require.Equal(t, ids, res.Snapshot.Metadata.FieldIDs)

	wrong := res.Snapshot.Metadata.FieldIDsFor(s)
	wrong["id"], wrong["name"] = wrong["name"], wrong["id"]
	bad := writeBlock(t, env, prefix, "b.parquet", s, wrong)
	_, err = tbl.Commit(ctx, committer.Commit{Adds: []committer.Add{bad}, ReadVersion: res.Version, FieldIDs: wrong})
	require.ErrorIs(t, err, committer.ErrMetadataChanged)

	python := os.Getenv("SINK_TEST_PYTHON")
	if python == "" {
		t.Skip("SINK_TEST_PYTHON is not set: readers skipped")
	}
	rc := map[string]any{
		"catalog_uri": env.uri, "endpoint": env.s3.Endpoint, "access_key": env.s3.AccessKeyID,
		"secret_key": env.s3.SecretAccessKey, "region": env.s3.Region,
		"table": strings.Join(f.Identifier(testRoot), "."),
	}
	in, err := json.Marshal(rc)
	require.NoError(t, err)
	cmd := exec.CommandContext(ctx, python, "-c", fieldIDReader)
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	var stderr string
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = string(ee.Stderr)
	}
	require.NoError(t, err, stderr)
	var got map[string][][]any
	require.NoError(t, json.Unmarshal(out, &got), string(out))
	var want [][]any
	for i, at := range fieldIDTimes {
		us := float64(at.UnixMilli() * 1000)
		want = append(want, []any{float64(i + 1), "n" + string(rune('a'+i)), us, us})
	}
	for _, reader := range []string{"pyiceberg", "duckdb"} {
		require.Equal(t, want, got[reader], reader)
	}
}

// fieldIDReader removes the table's name mapping, renames "name" to
// "label", and prints what PyIceberg and DuckDB read: id, label, and the
// microseconds of at and _ts, by id.
const fieldIDReader = `
import json, sys, pathlib, datetime
from urllib.parse import urlparse
cfg = json.load(sys.stdin)
from pyiceberg.catalog import load_catalog
cat = load_catalog("t", **{"uri": cfg["catalog_uri"], "s3.endpoint": cfg["endpoint"],
    "s3.access-key-id": cfg["access_key"], "s3.secret-access-key": cfg["secret_key"],
    "s3.region": cfg["region"], "s3.force-virtual-addressing": "false"})
tbl = cat.load_table(cfg["table"])
with tbl.transaction() as tx:
    tx.remove_properties("schema.name-mapping.default")
    with tx.update_schema() as us:
        us.rename_column("name", "label")
tbl = cat.load_table(cfg["table"])
assert "schema.name-mapping.default" not in tbl.properties
epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
def us(v):
    if isinstance(v, int):
        return v
    d = v - epoch
    return (d.days * 86400 + d.seconds) * 1000000 + d.microseconds
def rows(rs):
    return sorted([[r[0], r[1], us(r[2]), us(r[3])] for r in rs])
a = tbl.scan(selected_fields=("id", "label", "at", "_ts")).to_arrow()
out = {"pyiceberg": rows(zip(*[a.column(c).to_pylist() for c in ("id", "label", "at", "_ts")]))}
import duckdb, duckdb_extension_avro, duckdb_extension_httpfs, duckdb_extension_iceberg
con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
for mod, name in ((duckdb_extension_httpfs, "httpfs"), (duckdb_extension_avro, "avro"), (duckdb_extension_iceberg, "iceberg")):
    ext = next(pathlib.Path(mod.__file__).parent.glob(f"extensions/*/{name}.duckdb_extension"))
    con.sql(f"LOAD '{ext}'")
con.execute("CREATE SECRET t (TYPE S3, KEY_ID $k, SECRET $s, ENDPOINT $h, URL_STYLE 'path', USE_SSL false, REGION $r)",
    {"k": cfg["access_key"], "s": cfg["secret_key"], "h": urlparse(cfg["endpoint"]).netloc, "r": cfg["region"]})
con.sql(f"ATTACH 'warehouse' AS ice (TYPE iceberg, ENDPOINT '{cfg['catalog_uri']}', AUTHORIZATION_TYPE 'none')")
ns, t = cfg["table"].rsplit(".", 1)
out["duckdb"] = rows(con.sql(f'SELECT id, label, epoch_us("at"), epoch_us(_ts) FROM ice."{ns}"."{t}"').fetchall())
print(json.dumps(out))
`

// TestFirstFileFieldIDs: the IDs NewFieldIDs predicts for a table not yet
// created are the ones the real catalog gives it, so the table's first
// file, written before CreateCommit, carries the right IDs and its commit
// lands; a first file with other IDs is refused.
func TestFirstFileFieldIDs(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	cfg, prefix := env.config(t)
	f := env.format(t, cfg)
	t.Cleanup(func() { env.dropObjects(t, prefix) })
	s := kafkaSchema(t)
	require.NoError(t, s.AddColumn(codec.Column{Name: "at", Type: codec.Type{Kind: codec.TypeTimestamp}, Nullable: true}))

	tbl, ok := f.Open(testRoot, committer.Options{Instance: "test"}).(committer.FieldIDTable)
	require.True(t, ok, "an Iceberg table gives field IDs")
	ids := tbl.NewFieldIDs(s)
	add := writeBlock(t, env, prefix, "a.parquet", s, ids)
	res, err := committer.CreateCommit(ctx, tbl, committer.Metadata{Name: "orders", Schema: s},
		committer.Commit{ID: "first", Adds: []committer.Add{add}, ReadVersion: -1, FieldIDs: ids})
	require.NoError(t, err)
	require.Equal(t, ids, res.Snapshot.Metadata.FieldIDs, "the catalog assigned the predicted IDs")
	require.Len(t, res.Snapshot.Files, 1)

	other := f.Open("sales/public/other", committer.Options{}).(committer.FieldIDTable)
	wrong := other.NewFieldIDs(s)
	wrong["at"]++
	_, err = committer.CreateCommit(ctx, other, committer.Metadata{Name: "other", Schema: s},
		committer.Commit{ID: "first", Adds: []committer.Add{add}, ReadVersion: -1, FieldIDs: wrong})
	require.ErrorIs(t, err, committer.ErrMetadataChanged)
}
