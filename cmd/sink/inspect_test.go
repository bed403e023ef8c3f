package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/parquetblock"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/mirror"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/tablefile"
)

// TestInspect covers the ways an operator names the store: the
// configuration's store.url, a plain directory, a URL; and what inspect
// says when the table or the store is not there.
func TestInspect(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	b, err := objstore.NewFilesystem(storeDir)
	require.NoError(t, err)
	writeSmallTable(t, ctx, b, 1)
	// Twelve source partitions, so that lexical order (0, 1, 10, 11, 2)
	// and numeric order differ.
	var txns []committer.TxnCondition
	for p := range 12 {
		txns = append(txns, committer.TxnCondition{AppID: fmt.Sprintf("evodb-sink/g/cdc/%d", p), FirstOffset: 0, LastOffset: int64(100 + p)})
	}
	_, err = delta.Open(b, "users", delta.Options{}).Commit(ctx, committer.Commit{ReadVersion: -1, Txns: txns})
	require.NoError(t, err)
	cfgPath := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte("kafka: {brokers: [b:9092], topics: [cdc]}\nstore: {url: 'file://"+filepath.ToSlash(storeDir)+"'}\n"), 0o644))

	inspect := func(args ...string) (int, string, string) {
		e, out, errOut := testEnv(nil)
		code := runMain(ctx, e, append([]string{"inspect"}, args...))
		return code, out.String(), errOut.String()
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"store.url of the configuration", []string{"-c", cfgPath}},
		{"a table of the configured store", []string{"-c", cfgPath, "users"}},
		{"a plain directory", []string{storeDir}},
		{"a plain directory and a table", []string{storeDir, "users"}},
		{"a URL", []string{"file://" + filepath.ToSlash(storeDir)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := inspect(tc.args...)
			require.Equal(t, 0, code, "stderr: %s", errOut)
			require.Contains(t, out, "table users\n")
			var order []string
			for _, line := range strings.Split(out, "\n") {
				if f := strings.Fields(line); len(f) == 2 && strings.HasPrefix(f[0], "evodb-sink/g/cdc/") {
					order = append(order, strings.TrimPrefix(f[0], "evodb-sink/g/cdc/"))
				}
			}
			require.Equal(t, []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"}, order)
		})
	}

	code, _, errOut := inspect(storeDir, "orders")
	require.Equal(t, 1, code)
	require.Equal(t, "sink inspect: no table \"orders\"; the store holds: users\n", errOut)

	missing := filepath.Join(dir, "nowhere")
	code, _, errOut = inspect(missing)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "no directory "+missing)
	_, err = os.Stat(missing)
	require.ErrorIs(t, err, os.ErrNotExist, "inspect must not create a store")

	code, _, errOut = inspect()
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "want a store URL or directory, or -c config.yaml")
}

// TestInspectS3Hints checks, against the real S3 server, which hint an
// s3:// URL without -c gets: pass -c when the credentials are what is
// missing, the store's own hint when the URL names a missing bucket.
func TestInspectS3Hints(t *testing.T) {
	endpoint, bucket := os.Getenv("SINK_TEST_S3_ENDPOINT"), os.Getenv("SINK_TEST_S3_BUCKET")
	key, secret := os.Getenv("SINK_TEST_S3_ACCESS_KEY"), os.Getenv("SINK_TEST_S3_SECRET_KEY")
	if endpoint == "" || bucket == "" || key == "" || secret == "" {
		t.Skip("set SINK_TEST_S3_ENDPOINT, SINK_TEST_S3_BUCKET, SINK_TEST_S3_ACCESS_KEY and SINK_TEST_S3_SECRET_KEY to test against S3")
	}
	query := "?endpoint=" + endpoint + "&region=auto&path_style=true"
	// The SDK reads credentials from the process environment.
	t.Setenv("AWS_ACCESS_KEY_ID", key)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret+"x")
	e, _, errOut := testEnv(nil)
	require.Equal(t, 1, runMain(testContext(t), e, []string{"inspect", "s3://" + bucket + "/inspect" + query}))
	require.True(t, strings.HasPrefix(errOut.String(), "sink inspect: pass -c config.yaml"), errOut.String())

	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	e, _, errOut = testEnv(nil)
	require.Equal(t, 1, runMain(testContext(t), e, []string{"inspect", "s3://evodb-no-such-bucket/inspect" + query}))
	require.True(t, strings.HasPrefix(errOut.String(), `sink inspect: bucket "evodb-no-such-bucket" does not exist`), errOut.String())

	e, out, errOut := testEnv(nil)
	require.Equal(t, 0, runMain(testContext(t), e, []string{"inspect", "s3://" + bucket + "/inspect-empty" + query}), errOut.String())
	require.Equal(t, noIcebergHint+"\n", out.String())
}

// TestInspectS3WithoutConfig checks that an s3:// URL the store cannot be
// reached with alone (no endpoint, so no region; no credentials) says to
// pass the configuration.
func TestInspectS3WithoutConfig(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	e, _, errOut := testEnv(nil)
	require.Equal(t, 1, runMain(testContext(t), e, []string{"inspect", "s3://lake/tables"}))
	require.True(t, strings.HasPrefix(errOut.String(), "sink inspect: pass -c config.yaml to use the configuration's store.s3 settings"), errOut.String())
}

// TestInspectMirror: inspect says of a mirror table which change log it
// mirrors, by which key, which change-log version it holds and how far
// behind the change log's latest it is, and how many of its rows its
// deletion vectors delete.
func TestInspectMirror(t *testing.T) {
	ctx := testContext(t)
	storeDir := t.TempDir()
	b, err := objstore.NewFilesystem(storeDir)
	require.NoError(t, err)
	writeSmallTable(t, ctx, b, 1)
	tf := delta.NewFormat(b, delta.Options{})
	logTable := tf.Open("users", committer.Options{})
	m, err := mirror.New(b, logTable, tf.Open("users_current", committer.Options{DeleteRows: true}), mirror.Options{Key: []string{"id"}})
	require.NoError(t, err)
	sync := func() {
		for range 10 {
			res, err := m.Step(ctx)
			require.NoError(t, err)
			if res.To == res.ChangeLogVersion {
				return
			}
		}
		t.Fatal("the mirror did not catch up")
	}
	update := func(id int64) {
		schema := codec.NewSchema()
		schema.SetKafkaColumns(true)
		ch := codec.Change{Topic: "cdc", Offset: 100 + id, Table: "users", Op: codec.OpUpdate, LSN: uint64(100 + id), TS: 100 + id,
			Row: []codec.Field{{Name: "id", Value: codec.Int(id)}}}
		_, err := schema.Accept(&ch)
		require.NoError(t, err)
		w, err := tablefile.WriteBlock(ctx, b, "users", tablefile.Block{
			Schema: schema, Changes: []codec.Change{ch}, Encode: parquetblock.EncodeOptions{KafkaColumns: true},
			Name:       func(codec.BlockStats, int) string { return fmt.Sprintf("data/update-%d.parquet", id) },
			DataChange: true,
		})
		require.NoError(t, err)
		_, err = logTable.Commit(ctx, committer.Commit{ReadVersion: -1, Adds: []committer.Add{w.Add}})
		require.NoError(t, err)
	}
	sync()
	update(2)
	sync()
	update(3)
	logSnap, err := logTable.Snapshot(ctx)
	require.NoError(t, err)

	e, out, errOut := testEnv(nil)
	require.Equal(t, 0, runMain(ctx, e, []string{"inspect", storeDir, "users_current"}), errOut.String())
	require.Regexp(t, `rows +5 visible, 1 deleted \(deletion vectors\)`, out.String())
	require.Regexp(t, `mirror of +users \(key id\)`, out.String())
	require.Regexp(t, fmt.Sprintf(`holds +change-log version %d of %d \(1 behind\)`, logSnap.Version-1, logSnap.Version), out.String())

	// The change log itself says nothing of mirrors.
	e, out, errOut = testEnv(nil)
	require.Equal(t, 0, runMain(ctx, e, []string{"inspect", storeDir, "users"}), errOut.String())
	require.NotContains(t, out.String(), "mirror of")
	require.Regexp(t, `rows +7\n`, out.String())
}
