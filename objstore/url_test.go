package objstore

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Chdir(dir)

	b, err := Open(ctx, "file://"+filepath.Join(dir, "abs"), S3Config{})
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "abs"), b.(*Filesystem).Root())

	b, err = Open(ctx, "file://./evodb-demo", S3Config{})
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "evodb-demo"), b.(*Filesystem).Root())
	_, err = os.Stat(filepath.Join(dir, "evodb-demo"))
	require.NoError(t, err)

	b, err = Open(ctx, "mem://", S3Config{})
	require.NoError(t, err)
	require.IsType(t, &Memory{}, b)

	b, err = Open(ctx, "s3://bucket/some/prefix?endpoint=http://127.0.0.1:1&region=auto&path_style=true",
		S3Config{AccessKeyID: "k", SecretAccessKey: "s"})
	require.NoError(t, err)
	require.Equal(t, "some/prefix/", b.(*S3).prefix)
	require.Equal(t, "bucket", b.(*S3).bucket)

	for _, bad := range []string{
		"", "/plain/path", "ftp://x", "file://", "s3:///prefix", "s3://b?unknown=1",
		"s3://b?path_style=maybe", "s3://key:secret@b", "s3://b?part_size=1024",
	} {
		t.Run(bad, func(t *testing.T) {
			_, err := Open(ctx, bad, S3Config{AccessKeyID: "k", SecretAccessKey: "s", Region: "auto"})
			require.Error(t, err)
		})
	}
}

func TestS3FromURL(t *testing.T) {
	yes := true
	for _, tc := range []struct {
		url  string
		base S3Config
		want S3Config
	}{
		{
			url:  "s3://evodb",
			base: S3Config{Region: "eu-west-1", AccessKeyID: "k", SecretAccessKey: "s"},
			want: S3Config{Bucket: "evodb", Region: "eu-west-1", AccessKeyID: "k", SecretAccessKey: "s"},
		},
		{
			url:  "s3://evodb/tables/?endpoint=https://acct.r2.cloudflarestorage.com&region=auto&checksum_when_required=true&part_size=8388608&max_retries=3&request_timeout=30s&retry_max_elapsed=1m&path_style=1",
			base: S3Config{Bucket: "other", Prefix: "old"},
			want: S3Config{
				Bucket: "evodb", Prefix: "tables", Endpoint: "https://acct.r2.cloudflarestorage.com", Region: "auto",
				ChecksumWhenRequired: &yes, PartSize: 8 << 20, MaxRetries: 3, RequestTimeout: 30 * time.Second,
				RetryMaxElapsed: time.Minute, PathStyle: true,
			},
		},
	} {
		t.Run(tc.url, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			require.NoError(t, err)
			got, err := s3FromURL(u, tc.base)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestAcceptancePrefixed(t *testing.T) {
	mem := NewMemory()
	AcceptanceTest(t, Prefixed(mem, "tenant"))

	fsb, err := NewFilesystem(t.TempDir())
	require.NoError(t, err)
	AcceptanceTest(t, Prefixed(fsb, "a/b/"))

	// Keys land under the prefix, and the view hides what is outside it.
	ctx := context.Background()
	p := Prefixed(mem, "/t/")
	_, err = p.Put(ctx, "k", bytes.NewReader([]byte("v")), 1, PutOptions{})
	require.NoError(t, err)
	_, err = mem.Put(ctx, "outside", bytes.NewReader([]byte("v")), 1, PutOptions{})
	require.NoError(t, err)
	info, err := mem.Head(ctx, "t/k")
	require.NoError(t, err)
	require.Equal(t, "t/k", info.Key)
	info, err = p.Head(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "k", info.Key)
	var keys []string
	require.NoError(t, p.List(ctx, "", func(info ObjectInfo) error {
		keys = append(keys, info.Key)
		return nil
	}))
	require.Equal(t, []string{"k"}, keys)
}

func TestWithMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	b := WithMetrics(NewMemory(), reg)
	AcceptanceTest(t, b)

	ctx := context.Background()
	before := metricValue(t, reg, "objstore_requests_total", opHead)
	_, err := b.Head(ctx, "missing")
	require.ErrorIs(t, err, ErrNotExist)
	require.Equal(t, before+1, metricValue(t, reg, "objstore_requests_total", opHead))
	require.Zero(t, metricValue(t, reg, "objstore_request_errors_total", opHead), "a missing object is not an error")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = b.Head(cancelled, "missing")
	require.Error(t, err)
	require.Equal(t, 1.0, metricValue(t, reg, "objstore_request_errors_total", opHead))
	require.Equal(t, before+2, metricValue(t, reg, "objstore_request_duration_seconds", opHead))
	require.Positive(t, metricValue(t, reg, "objstore_requests_total", opPut))
}

// metricValue returns a counter's value, or a histogram's sample count, for
// one operation.
func metricValue(t *testing.T, reg prometheus.Gatherer, name, op string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetLabel()[0].GetValue() != op {
				continue
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s{operation=%q}", name, op)
	return 0
}
