package objstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyauth "github.com/aws/smithy-go/auth"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/stretchr/testify/require"
)

// testS3Config returns the S3 server configured by the SINK_TEST_S3_*
// variables, under a fresh random prefix, or skips the test.
func testS3Config(t *testing.T) S3Config {
	t.Helper()
	cfg, ok := envS3Config()
	if !ok {
		t.Skip("set SINK_TEST_S3_ENDPOINT, SINK_TEST_S3_BUCKET, SINK_TEST_S3_ACCESS_KEY and SINK_TEST_S3_SECRET_KEY to test against S3")
	}
	return cfg
}

// envS3Config returns the S3 server configured by the SINK_TEST_S3_*
// variables, under a fresh random prefix, and whether they name one.
func envS3Config() (S3Config, bool) {
	cfg := S3Config{
		Endpoint:        os.Getenv("SINK_TEST_S3_ENDPOINT"),
		Bucket:          os.Getenv("SINK_TEST_S3_BUCKET"),
		AccessKeyID:     os.Getenv("SINK_TEST_S3_ACCESS_KEY"),
		SecretAccessKey: os.Getenv("SINK_TEST_S3_SECRET_KEY"),
		Region:          os.Getenv("SINK_TEST_S3_REGION"),
		PathStyle:       true,
	}
	if cfg.Endpoint == "" || cfg.Bucket == "" || cfg.AccessKeyID == "" || cfg.SecretAccessKey == "" {
		return S3Config{}, false
	}
	if cfg.Region == "" {
		cfg.Region = "auto"
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	cfg.Prefix = "objstore-test-" + hex.EncodeToString(id[:])
	return cfg, true
}

func TestAcceptanceS3(t *testing.T) {
	cfg := testS3Config(t)
	b, err := NewS3(context.Background(), cfg)
	require.NoError(t, err)
	AcceptanceTest(t, b)
}

func TestS3Multipart(t *testing.T) {
	cfg := testS3Config(t)
	cfg.PartSize = 5 << 20
	ctx := context.Background()
	b, err := NewS3(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Delete(ctx, "big") })

	data := randomBytes(11<<20, 11)
	etag, err := b.Put(ctx, "big", bytes.NewReader(data), int64(len(data)), PutOptions{IfNoneMatch: true})
	require.NoError(t, err)
	require.Equal(t, data, readAll(t, b, "big"))
	info, err := b.Head(ctx, "big")
	require.NoError(t, err)
	require.Equal(t, etag, info.ETag)
	require.Equal(t, int64(len(data)), info.Size)
	require.NoError(t, b.List(ctx, "big", func(o ObjectInfo) error {
		require.Equal(t, etag, o.ETag, "a listing reports a multipart object's ETag as a HEAD does")
		return nil
	}))

	// The conditions hold for multipart uploads too.
	_, err = b.Put(ctx, "big", bytes.NewReader(data), int64(len(data)), PutOptions{IfNoneMatch: true})
	require.ErrorIs(t, err, ErrPreconditionFailed)
	_, err = b.Put(ctx, "big", bytes.NewReader(data), int64(len(data)), PutOptions{IfMatch: "0123456789abcdef0123456789abcdef"})
	require.ErrorIs(t, err, ErrPreconditionFailed)
	etag2, err := b.Put(ctx, "big", bytes.NewReader(data[:len(data)-1]), int64(len(data)-1), PutOptions{IfMatch: etag})
	require.NoError(t, err)
	require.NotEqual(t, etag, etag2)
	info, err = b.Head(ctx, "big")
	require.NoError(t, err)
	require.Equal(t, int64(len(data)-1), info.Size)
}

// TestS3Retries checks the retry policy against a scripted in-process
// server: transient statuses are retried, final answers are not.
func TestS3Retries(t *testing.T) {
	for _, tc := range []struct {
		name      string
		statuses  []int // answers before success; a 200 follows
		wantCalls int
		wantErr   error
		anyErr    bool
	}{
		{name: "ok", wantCalls: 1},
		{name: "503 then ok", statuses: []int{503, 503}, wantCalls: 3},
		{name: "429 then ok", statuses: []int{429}, wantCalls: 2},
		{name: "500 then ok", statuses: []int{500}, wantCalls: 2},
		{name: "412 not retried", statuses: []int{412}, wantCalls: 1, wantErr: ErrPreconditionFailed},
		{name: "404 not retried", statuses: []int{404}, wantCalls: 1, wantErr: ErrNotExist},
		{name: "403 not retried", statuses: []int{403}, wantCalls: 1, wantErr: ErrAccessDenied},
		{name: "retries exhausted", statuses: []int{503, 503, 503, 503}, wantCalls: 3, anyErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := int(calls.Add(1))
				if n <= len(tc.statuses) {
					w.WriteHeader(tc.statuses[n-1])
					return
				}
				w.Header().Set("ETag", `"abc"`)
				w.WriteHeader(http.StatusOK)
			}))
			defer srv.Close()
			b, err := NewS3(context.Background(), S3Config{
				Bucket: "b", Endpoint: srv.URL, Region: "auto", PathStyle: true,
				AccessKeyID: "k", SecretAccessKey: "s", MaxRetries: 2,
				RequestTimeout: 5 * time.Second,
			})
			require.NoError(t, err)
			etag, err := b.Put(context.Background(), "key", bytes.NewReader([]byte("x")), 1, PutOptions{IfNoneMatch: true})
			switch {
			case tc.wantErr != nil:
				require.ErrorIs(t, err, tc.wantErr)
			case tc.anyErr:
				require.Error(t, err)
				require.NotErrorIs(t, err, ErrPreconditionFailed)
				require.NotErrorIs(t, err, ErrNotExist)
			default:
				require.NoError(t, err)
				require.Equal(t, "abc", etag)
			}
			require.Equal(t, tc.wantCalls, int(calls.Load()))
		})
	}
}

// TestS3ConfigErrors checks against the real server that the answers only
// a configuration change can fix come back at once as ConfigErrors of the
// right kind, without a retry.
func TestS3ConfigErrors(t *testing.T) {
	good := testS3Config(t)
	for _, tc := range []struct {
		name     string
		edit     func(*S3Config)
		want     error
		wantText string
	}{
		{name: "wrong secret", edit: func(c *S3Config) { c.SecretAccessKey += "x" }, want: ErrAccessDenied, wantText: "SignatureDoesNotMatch"},
		{name: "unknown access key", edit: func(c *S3Config) { c.AccessKeyID += "x" }, want: ErrAccessDenied, wantText: `access denied to bucket "` + good.Bucket + `"`},
		{name: "missing bucket", edit: func(c *S3Config) { c.Bucket = "evodb-no-such-bucket" }, want: ErrNoBucket, wantText: `bucket "evodb-no-such-bucket" does not exist`},
		{name: "virtual-hosted style on a self-hosted server", edit: func(c *S3Config) { c.PathStyle = false }, want: ErrNeedsPathStyle, wantText: "host " + good.Bucket + "."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			// A retry budget that would be spent many times over if these
			// errors were retried: the retry count below is what shows it.
			cfg.MaxRetries = 5
			var tries atomic.Int32
			b, err := NewS3(context.Background(), cfg)
			require.NoError(t, err)
			b.client = s3.New(b.client.Options(), func(o *s3.Options) {
				o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
					return st.Initialize.Add(middleware.InitializeMiddlewareFunc("count", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
						tries.Add(1)
						return next.HandleInitialize(ctx, in)
					}), middleware.Before)
				})
			})
			err = b.List(context.Background(), "probe/", func(ObjectInfo) error { return nil })
			require.ErrorIs(t, err, tc.want)
			require.True(t, IsConfigError(err))
			// versitygw answers an unknown key with a 404: not a missing object.
			require.NotErrorIs(t, err, ErrNotExist)
			require.ErrorContains(t, err, tc.wantText)
			require.Equal(t, tc.want.Error(), Cause(err))
			require.EqualValues(t, 1, tries.Load(), "a configuration error must not be retried")
		})
	}
}

// TestS3NoCredentials checks that a credential chain that finds nothing
// is a ConfigError at the first request, against an endpoint that would
// otherwise answer, and that a chain that has produced credentials before
// is retried when it fails.
func TestS3NoCredentials(t *testing.T) {
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"} {
		t.Setenv(k, "")
	}
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/credentials")
	// No instance metadata: the chain's last resort fails at once.
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	b, err := NewS3(context.Background(), S3Config{Bucket: "b", Endpoint: srv.URL, Region: "auto", PathStyle: true, MaxRetries: 5})
	require.NoError(t, err)
	err = b.List(context.Background(), "", func(ObjectInfo) error { return nil })
	require.ErrorIs(t, err, ErrNoCredentials)
	require.ErrorContains(t, err, `no credentials for bucket "b"`)
	require.Zero(t, calls.Load(), "no request can be signed")

	// Credentials that came once and fail now (a role's refresh during an
	// outage) are not a configuration error.
	fail := false
	m := &markedCredentials{p: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		if fail {
			return aws.Credentials{}, errors.New("metadata service unreachable")
		}
		return aws.Credentials{AccessKeyID: "k", SecretAccessKey: "s"}, nil
	})}
	_, err = m.Retrieve(context.Background())
	require.NoError(t, err)
	fail = true
	_, err = m.Retrieve(context.Background())
	require.Error(t, err)
	require.Nil(t, configError(err, "b", "", true))
}

// TestS3UnresolvableEndpoint checks that an endpoint whose own name does
// not resolve is not blamed on the addressing style: path style would not
// help, so it is no ConfigError.
func TestS3UnresolvableEndpoint(t *testing.T) {
	b, err := NewS3(context.Background(), S3Config{
		Bucket: "b", Endpoint: "http://no-such-host.invalid:9000", Region: "auto",
		AccessKeyID: "k", SecretAccessKey: "s", MaxRetries: -1,
	})
	require.NoError(t, err)
	err = b.List(context.Background(), "", func(ObjectInfo) error { return nil })
	require.Error(t, err)
	require.False(t, IsConfigError(err), "%v", err)
	require.NotErrorIs(t, err, ErrNeedsPathStyle)
}

// TestCause checks that a log line gets the gist of a store error, not
// the SDK's framing.
func TestCause(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	b, err := NewS3(context.Background(), S3Config{
		Bucket: "b", Endpoint: "http://" + addr, Region: "auto", PathStyle: true,
		AccessKeyID: "k", SecretAccessKey: "s", MaxRetries: -1,
	})
	require.NoError(t, err)
	err = b.List(context.Background(), "", func(ObjectInfo) error { return nil })
	require.Error(t, err)
	require.False(t, IsConfigError(err))
	require.Contains(t, err.Error(), "operation error S3")
	require.Equal(t, "dial tcp "+addr+": connect: connection refused", Cause(err))
}

func TestS3ConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  S3Config
		ok   bool
	}{
		{"minimal", S3Config{Bucket: "b"}, true},
		{"r2", S3Config{Bucket: "b", Endpoint: "https://acct.r2.cloudflarestorage.com", Region: "auto", AccessKeyID: "k", SecretAccessKey: "s", PartSize: 16 << 20}, true},
		{"no bucket", S3Config{}, false},
		{"small parts", S3Config{Bucket: "b", PartSize: 1 << 20}, false},
		{"half credentials", S3Config{Bucket: "b", AccessKeyID: "k"}, false},
		{"bad endpoint", S3Config{Bucket: "b", Endpoint: "127.0.0.1:7070"}, false},
		{"negative timeout", S3Config{Bucket: "b", RequestTimeout: -time.Second}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}

// TestOpenS3URL opens the configured server through a store URL, the way
// the sink's config does.
func TestOpenS3URL(t *testing.T) {
	cfg := testS3Config(t)
	raw := "s3://" + cfg.Bucket + "/" + cfg.Prefix + "?endpoint=" + cfg.Endpoint + "&region=" + cfg.Region + "&path_style=true"
	b, err := Open(context.Background(), raw, S3Config{AccessKeyID: cfg.AccessKeyID, SecretAccessKey: cfg.SecretAccessKey})
	require.NoError(t, err)
	AcceptanceTest(t, WithMetrics(b, nil))
}

// TestS3MultipartRequests checks on the wire what R2 insists on: equal
// parts but the last, no default CRC32 checksums on a custom endpoint, and
// the create-only condition on the completing request.
func TestS3MultipartRequests(t *testing.T) {
	var (
		mu          sync.Mutex
		partSizes   = map[string]int64{}
		checksums   []string
		ifNoneMatch string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		for name := range r.Header {
			if strings.HasPrefix(strings.ToLower(name), "x-amz-checksum-") || strings.EqualFold(name, "x-amz-sdk-checksum-algorithm") {
				checksums = append(checksums, name)
			}
		}
		q := r.URL.Query()
		switch {
		case r.Method == http.MethodPost && q.Has("uploads"):
			fmt.Fprint(w, `<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>`)
		case r.Method == http.MethodPut && q.Has("partNumber"):
			n, _ := io.Copy(io.Discard, r.Body)
			partSizes[q.Get("partNumber")] = n
			w.Header().Set("ETag", `"p`+q.Get("partNumber")+`"`)
		case r.Method == http.MethodPost && q.Get("uploadId") == "u1":
			_, _ = io.Copy(io.Discard, r.Body)
			ifNoneMatch = r.Header.Get("If-None-Match")
			fmt.Fprint(w, `<CompleteMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><ETag>"done-3"</ETag></CompleteMultipartUploadResult>`)
		default:
			http.Error(w, "unexpected "+r.Method+" "+r.URL.String(), http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	b, err := NewS3(context.Background(), S3Config{
		Bucket: "b", Endpoint: srv.URL, Region: "auto", PathStyle: true,
		AccessKeyID: "k", SecretAccessKey: "s", PartSize: 5 << 20,
	})
	require.NoError(t, err)
	size := int64(11 << 20)
	etag, err := b.Put(context.Background(), "k", bytes.NewReader(make([]byte, size)), size, PutOptions{IfNoneMatch: true})
	require.NoError(t, err)
	require.Equal(t, "done-3", etag)
	require.Equal(t, map[string]int64{"1": 5 << 20, "2": 5 << 20, "3": 1 << 20}, partSizes)
	require.Empty(t, checksums)
	require.Equal(t, "*", ifNoneMatch)
}

func TestStaticEndpoint(t *testing.T) {
	bucket, region := "lake", "auto"
	params := s3.EndpointParameters{Bucket: &bucket, Region: &region}
	for _, tc := range []struct {
		endpoint  string
		pathStyle bool
		want      string
	}{
		{"https://acct.r2.cloudflarestorage.com", true, "https://acct.r2.cloudflarestorage.com/lake"},
		{"http://127.0.0.1:7070/", true, "http://127.0.0.1:7070/lake"},
		{"https://acct.r2.cloudflarestorage.com", false, "https://lake.acct.r2.cloudflarestorage.com"},
	} {
		e, err := newStaticEndpoint(tc.endpoint, tc.pathStyle)
		require.NoError(t, err)
		got, err := e.ResolveEndpoint(context.Background(), params)
		require.NoError(t, err)
		require.Equal(t, tc.want, got.URI.String())
		opts, ok := smithyauth.GetAuthOptions(&got.Properties)
		require.True(t, ok)
		require.Len(t, opts, 1)
		require.Equal(t, smithyauth.SchemeIDSigV4, opts[0].SchemeID)
		name, _ := smithyhttp.GetSigV4SigningName(&opts[0].SignerProperties)
		reg, _ := smithyhttp.GetSigV4SigningRegion(&opts[0].SignerProperties)
		double, _ := smithyhttp.GetDisableDoubleEncoding(&opts[0].SignerProperties)
		require.Equal(t, "s3", name)
		require.Equal(t, "auto", reg)
		require.True(t, double)
	}
	_, err := newStaticEndpoint("not a url", true)
	require.Error(t, err)
}
