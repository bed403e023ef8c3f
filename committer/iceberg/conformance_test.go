package iceberg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/committer/committertest"
	"github.com/evodb/sink/objstore"
)

// testEnv is a real REST catalog and the S3 server its warehouse and the
// tables live on, named by EVODB_ICEBERG_REST_URL and the SINK_TEST_S3_*
// variables.
type testEnv struct {
	uri    string
	s3     objstore.S3Config
	bucket *objstore.S3
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	uri := os.Getenv("EVODB_ICEBERG_REST_URL")
	s3 := objstore.S3Config{
		Endpoint:        os.Getenv("SINK_TEST_S3_ENDPOINT"),
		Bucket:          os.Getenv("SINK_TEST_S3_BUCKET"),
		AccessKeyID:     os.Getenv("SINK_TEST_S3_ACCESS_KEY"),
		SecretAccessKey: os.Getenv("SINK_TEST_S3_SECRET_KEY"),
		Region:          os.Getenv("SINK_TEST_S3_REGION"),
		PathStyle:       true,
	}
	if uri == "" || s3.Endpoint == "" || s3.Bucket == "" {
		t.Skip("set EVODB_ICEBERG_REST_URL and SINK_TEST_S3_ENDPOINT, _BUCKET, _ACCESS_KEY, _SECRET_KEY to test against a REST catalog")
	}
	b, err := objstore.NewS3(context.Background(), s3)
	require.NoError(t, err)
	return &testEnv{uri: uri, s3: s3, bucket: b}
}

// config returns a catalog config whose tables live in their own
// namespace and under their own prefix, so tests never see one another's
// tables.
func (e *testEnv) config(t *testing.T) (Config, string) {
	var r [6]byte
	_, _ = rand.Read(r[:])
	id := "t" + hex.EncodeToString(r[:])
	prefix := "iceberg-test/" + id
	return Config{
		URI:       e.uri,
		Namespace: id + ".{parent}",
		Location:  "s3://" + e.s3.Bucket + "/" + prefix,
		S3: S3Config{
			Endpoint: e.s3.Endpoint, Region: e.s3.Region,
			AccessKeyID: e.s3.AccessKeyID, SecretKey: e.s3.SecretAccessKey, PathStyle: true,
		},
	}, prefix
}

func (e *testEnv) format(t *testing.T, cfg Config) *Format {
	t.Helper()
	f, err := NewFormat(context.Background(), cfg, Options{MaxCommitAttempts: 1000})
	require.NoError(t, err)
	return f
}

// dropObjects deletes every object under prefix.
func (e *testEnv) dropObjects(t *testing.T, prefix string) {
	t.Helper()
	ctx := context.Background()
	var keys []string
	require.NoError(t, e.bucket.List(ctx, prefix+"/", func(o objstore.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	}))
	for _, k := range keys {
		require.NoError(t, e.bucket.Delete(ctx, k))
	}
}

// ambiguousTransport passes the first table commit (a POST to a table's
// endpoint) to the catalog and then reports it failed, as a timeout after
// the catalog applied it would.
type ambiguousTransport struct {
	base  http.RoundTripper
	fired atomic.Bool
}

var errInjected = errors.New("injected: connection reset after the catalog applied the commit")

func (a *ambiguousTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	isCommit := req.Method == http.MethodPost && strings.Contains(req.URL.Path, "/tables/") && !strings.HasSuffix(req.URL.Path, "/metrics")
	resp, err := a.base.RoundTrip(req)
	if err != nil || !isCommit || resp.StatusCode != http.StatusOK || !a.fired.CompareAndSwap(false, true) {
		return resp, err
	}
	resp.Body.Close()
	return nil, errInjected
}

// TestConformance runs the table-format conformance test against the real
// catalog. The ambiguous failure is injected in the catalog's HTTP
// transport: the commit request reaches the catalog, its response is lost.
func TestConformance(t *testing.T) {
	env := newTestEnv(t)
	committertest.Run(t, func(t *testing.T) committertest.Store {
		cfg, prefix := env.config(t)
		f := env.format(t, cfg)
		t.Cleanup(func() { env.dropObjects(t, prefix) })
		return committertest.Store{
			Format: f,
			Ambiguous: func(t *testing.T) committer.Format {
				c := cfg
				c.Transport = &ambiguousTransport{base: http.DefaultTransport}
				return env.format(t, c)
			},
			Drop: func(t *testing.T, root string) {
				require.NoError(t, f.Drop(context.Background(), root))
				env.dropObjects(t, prefix+"/"+root)
			},
		}
	})
}
