package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/objstore"
)

// TestRunIceberg runs a small scenario on Iceberg tables of a real REST
// catalog: the requests counted through the proxies hold the catalog's
// commits and the manifests iceberg-go writes, which the sink's own
// store metrics never see.
func TestRunIceberg(t *testing.T) {
	catalog, endpoint, bucket := os.Getenv("EVODB_ICEBERG_REST_URL"), os.Getenv("SINK_TEST_S3_ENDPOINT"), os.Getenv("SINK_TEST_S3_BUCKET")
	if catalog == "" || endpoint == "" || bucket == "" {
		t.Skip("set EVODB_ICEBERG_REST_URL and SINK_TEST_S3_* to benchmark Iceberg tables")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "sink")
	build := exec.Command("go", "build", "-o", bin, "github.com/evodb/sink/cmd/sink")
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))
	t.Setenv("AWS_ACCESS_KEY_ID", os.Getenv("SINK_TEST_S3_ACCESS_KEY"))
	t.Setenv("AWS_SECRET_ACCESS_KEY", os.Getenv("SINK_TEST_S3_SECRET_KEY"))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{
		Tables: 8, Format: cdc.FormatEvoDB, Records: 3000, Seed: 1, FlushInterval: 300 * time.Millisecond,
		StoreURL: "s3://" + bucket + "/bench-test?endpoint=" + endpoint + "&region=auto&path_style=true",
		S3: objstore.S3Config{
			AccessKeyID: os.Getenv("SINK_TEST_S3_ACCESS_KEY"), SecretAccessKey: os.Getenv("SINK_TEST_S3_SECRET_KEY"),
		},
		SinkCommand: []string{bin, "run"}, TempDir: dir,
		TableFormat: TableFormatIceberg, CatalogURI: catalog,
	})
	require.NoError(t, err)
	require.Equal(t, "iceberg", res.TableFormat)
	require.Equal(t, 3000, res.Sink.Records)
	require.Positive(t, res.Written.DataFiles)
	require.Greater(t, res.Written.Commits, res.Written.DataFiles, "a snapshot per data file and a creation per table")
	r := res.PerCommit.Requests
	require.GreaterOrEqual(t, r["catalog post"], int64(res.Written.Commits), "every snapshot and every table creation is a catalog POST")
	require.GreaterOrEqual(t, r["s3 put"], int64(2*res.Written.DataFiles), "a data file and at least its manifest per commit")
	require.Positive(t, res.PerCommit.RequestsPerCommit)
}
