package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"
)

// withDialCounter rebuilds b's client on the SDK's default HTTP client
// with a dialer that counts the TCP connections it opens.
func withDialCounter(b *S3) *atomic.Int64 {
	var dials atomic.Int64
	hc := awshttp.NewBuildableClient().WithDialerOptions(func(d *net.Dialer) {
		d.ControlContext = func(context.Context, string, string, syscall.RawConn) error {
			dials.Add(1)
			return nil
		}
	})
	b.client = s3.New(b.client.Options(), func(o *s3.Options) { o.HTTPClient = hc })
	return &dials
}

// BenchmarkS3Put measures one Put through the S3 client against the server
// the SINK_TEST_S3_* variables name: allocations per Put (the SDK's
// middleware, signing, the HTTP round trip) and TCP connections opened per
// Put (dials/op; 0 when connections are reused).
//
//	eval "$(e2e/scripts/versitygw.sh env <dir>)"
//	go test ./objstore -run XXX -bench S3 -benchtime 2000x -count 3
func BenchmarkS3Put(b *testing.B) {
	for _, size := range []int{1 << 10, 256 << 10} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			bkt := benchS3(b)
			dials := withDialCounter(bkt)
			ctx := context.Background()
			body := bytes.NewReader(make([]byte, size))
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, err := bkt.Put(ctx, fmt.Sprintf("put/%d", i%64), body, int64(size), PutOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(dials.Load())/float64(b.N), "dials/op")
		})
	}
}

// BenchmarkS3Requests measures the other requests a table's log costs,
// one object each: a conditional Put that finds the key taken (412), a Get
// of a missing key (404), a Head, and a List of a prefix holding one
// object. Error answers show in dials/op where the server closes the
// connection after them.
func BenchmarkS3Requests(b *testing.B) {
	bkt := benchS3(b)
	ctx := context.Background()
	_, err := bkt.Put(ctx, "obj", bytes.NewReader([]byte("x")), 1, PutOptions{})
	require.NoError(b, err)
	cases := []struct {
		name string
		fn   func() error
	}{
		{"put-412", func() error {
			_, err := bkt.Put(ctx, "obj", bytes.NewReader([]byte("y")), 1, PutOptions{IfNoneMatch: true})
			if errors.Is(err, ErrPreconditionFailed) {
				return nil
			}
			return fmt.Errorf("want a failed precondition, got %v", err)
		}},
		{"get-404", func() error {
			_, err := bkt.Get(ctx, "missing")
			if errors.Is(err, ErrNotExist) {
				return nil
			}
			return fmt.Errorf("want a missing object, got %v", err)
		}},
		{"head", func() error { _, err := bkt.Head(ctx, "obj"); return err }},
		{"list", func() error { return bkt.List(ctx, "obj", func(ObjectInfo) error { return nil }) }},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			dials := withDialCounter(bkt)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := tc.fn(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(dials.Load())/float64(b.N), "dials/op")
		})
	}
}

// benchS3 returns the S3 bucket of the SINK_TEST_S3_* variables, or skips.
func benchS3(b *testing.B) *S3 {
	b.Helper()
	cfg, ok := envS3Config()
	if !ok {
		b.Skip("set SINK_TEST_S3_ENDPOINT, SINK_TEST_S3_BUCKET, SINK_TEST_S3_ACCESS_KEY and SINK_TEST_S3_SECRET_KEY to benchmark S3")
	}
	bkt, err := NewS3(context.Background(), cfg)
	require.NoError(b, err)
	return bkt
}
