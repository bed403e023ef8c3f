package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/cenkalti/backoff/v4"
)

// S3 limits on multipart parts.
const (
	minPartSize = 5 << 20
	maxPartSize = 5 << 30
	maxParts    = 10000
)

// Defaults for S3Config fields left zero.
const (
	DefaultPartSize        = 16 << 20
	DefaultMaxRetries      = 8
	DefaultRequestTimeout  = 2 * time.Minute
	DefaultRetryMaxElapsed = 5 * time.Minute
)

// partConcurrency bounds how many parts of one multipart upload are in
// flight at once.
const partConcurrency = 4

// S3Config configures an S3 bucket: Cloudflare R2, AWS S3, or any
// S3-compatible server.
type S3Config struct {
	// Bucket is the bucket name. Required.
	Bucket string `yaml:"bucket"`
	// Prefix is prepended to every key ("tables/" stores key "a" at
	// "tables/a"); a missing trailing slash is added.
	Prefix string `yaml:"prefix"`
	// Endpoint is the service URL for non-AWS servers, e.g.
	// https://<account>.r2.cloudflarestorage.com or http://127.0.0.1:7070.
	// Empty means AWS S3.
	Endpoint string `yaml:"endpoint"`
	// Region is the signing region: "auto" for R2. Empty means the default
	// chain's region (AWS_REGION, shared config), or "auto" with an Endpoint.
	Region string `yaml:"region"`
	// AccessKeyID, SecretAccessKey and SessionToken are static credentials.
	// Empty means the default chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
	// shared config files, then instance or task roles.
	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey string `yaml:"secret_access_key"`
	SessionToken    string `yaml:"session_token"`
	// PathStyle addresses the bucket as endpoint/bucket rather than
	// bucket.endpoint; most self-hosted servers need it.
	PathStyle bool `yaml:"path_style"`
	// ChecksumWhenRequired makes the client send and validate checksums only
	// where the operation requires them. Nil means true with a custom
	// Endpoint, because R2 and other servers reject the SDK's default CRC32
	// trailers, and false on AWS.
	ChecksumWhenRequired *bool `yaml:"checksum_when_required"`
	// PartSize is both the size above which Put uses a multipart upload and
	// the size of every part but the last (R2 requires equal parts).
	// Default 16 MiB; at least 5 MiB.
	PartSize int64 `yaml:"part_size"`
	// MaxRetries bounds the retries of one request after throttling, server
	// errors, timeouts and connection errors. 0 means DefaultMaxRetries;
	// negative means no retries.
	MaxRetries int `yaml:"max_retries"`
	// RequestTimeout bounds one attempt of one request (for Get, until the
	// response headers arrive). Default 2 minutes.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// RetryMaxElapsed bounds the total time spent retrying one request.
	// Default 5 minutes.
	RetryMaxElapsed time.Duration `yaml:"retry_max_elapsed"`
}

// Validate reports whether the config is usable.
func (c S3Config) Validate() error {
	if c.Bucket == "" {
		return errors.New("s3: bucket is required")
	}
	if c.PartSize != 0 && (c.PartSize < minPartSize || c.PartSize > maxPartSize) {
		return fmt.Errorf("s3: part_size %d out of range [%d,%d]", c.PartSize, minPartSize, maxPartSize)
	}
	if c.RequestTimeout < 0 {
		return fmt.Errorf("s3: negative request_timeout %s", c.RequestTimeout)
	}
	if c.RetryMaxElapsed < 0 {
		return fmt.Errorf("s3: negative retry_max_elapsed %s", c.RetryMaxElapsed)
	}
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		return errors.New("s3: access_key_id and secret_access_key must be set together")
	}
	if c.Endpoint != "" && !strings.HasPrefix(c.Endpoint, "http://") && !strings.HasPrefix(c.Endpoint, "https://") {
		return fmt.Errorf("s3: endpoint %q is not an http(s) URL", c.Endpoint)
	}
	return nil
}

// S3 is a Bucket in an S3-compatible object store.
//
// Conditional puts use If-None-Match: * and If-Match: <etag>, which AWS S3,
// R2 and versitygw honour, also on CompleteMultipartUpload. The S3 client's
// own retryer is disabled; S3 retries throttling (429, SlowDown), 5xx,
// per-attempt timeouts and connection errors with exponential backoff, and
// never 412, 404 or any other 4xx.
//
// A retried create-only Put can fail with ErrPreconditionFailed although it
// was its own earlier attempt that created the object (the response was
// lost): callers of conditional puts must resolve that ambiguity, as they
// must for any error.
type S3 struct {
	client     *s3.Client
	bucket     string
	prefix     string
	partSize   int64
	maxRetries int
	timeout    time.Duration
	maxElapsed time.Duration
	// endpointHost is the configured endpoint's host, "" for AWS; with
	// pathStyle it tells a bucket host name that cannot resolve.
	endpointHost string
	pathStyle    bool
	// copyBufs holds the buffers putBody copies bodies through.
	copyBufs sync.Pool
}

var _ Bucket = (*S3)(nil)

// NewS3 creates an S3 bucket client. It makes no request.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := []func(*config.LoadOptions) error{
		// One retry policy: ours.
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: load aws config: %w", err)
	}
	if awsCfg.Region == "" {
		if cfg.Endpoint == "" {
			return nil, errors.New("s3: no region configured (set region or AWS_REGION)")
		}
		awsCfg.Region = "auto"
	}
	if awsCfg.Credentials != nil {
		awsCfg.Credentials = &markedCredentials{p: awsCfg.Credentials}
	}
	whenRequired := cfg.Endpoint != ""
	if cfg.ChecksumWhenRequired != nil {
		whenRequired = *cfg.ChecksumWhenRequired
	}
	var static *staticEndpoint
	if cfg.Endpoint != "" {
		if static, err = newStaticEndpoint(cfg.Endpoint, cfg.PathStyle); err != nil {
			return nil, err
		}
	}
	endpointHost := ""
	if static != nil {
		endpointHost = static.base.Hostname()
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if static != nil {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
			o.EndpointResolverV2 = static
		}
		o.UsePathStyle = cfg.PathStyle
		o.Retryer = aws.NopRetryer{}
		if whenRequired {
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
	})
	s := &S3{
		client:     client,
		bucket:     cfg.Bucket,
		prefix:     normalizePrefix(cfg.Prefix),
		partSize:   cfg.PartSize,
		maxRetries: cfg.MaxRetries,
		timeout:    cfg.RequestTimeout,
		maxElapsed: cfg.RetryMaxElapsed,

		endpointHost: endpointHost,
		pathStyle:    cfg.PathStyle,
	}
	if s.partSize == 0 {
		s.partSize = DefaultPartSize
	}
	switch {
	case s.maxRetries == 0:
		s.maxRetries = DefaultMaxRetries
	case s.maxRetries < 0:
		s.maxRetries = 0
	}
	if s.timeout == 0 {
		s.timeout = DefaultRequestTimeout
	}
	if s.maxElapsed == 0 {
		s.maxElapsed = DefaultRetryMaxElapsed
	}
	return s, nil
}

// normalizePrefix strips leading slashes and ends a non-empty prefix with
// exactly one slash.
func normalizePrefix(p string) string {
	p = strings.Trim(p, "/")
	if p == "" {
		return ""
	}
	return p + "/"
}

// retry runs fn until it succeeds, fails permanently, or the retry budget or
// ctx runs out. Answers that only a configuration change can fix (see
// ConfigError) are permanent: a wrong secret or a missing bucket fails the
// first request instead of every retry.
func (s *S3) retry(ctx context.Context, fn func() error) error {
	b := backoff.WithContext(backoff.WithMaxRetries(backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(10*time.Second),
		backoff.WithMaxElapsedTime(s.maxElapsed),
	), uint64(s.maxRetries)), ctx)
	var last error
	err := backoff.Retry(func() error {
		err := fn()
		if err == nil {
			return nil
		}
		if ce := configError(err, s.bucket, s.endpointHost, s.pathStyle); ce != nil {
			err = ce
		}
		last = err
		if ctx.Err() != nil || !retryable(err) {
			return backoff.Permanent(err)
		}
		return err
	}, b)
	if err != nil && last != nil && !errors.Is(err, last) {
		// The context ended while waiting to retry: keep the cause.
		return fmt.Errorf("%w (last error: %w)", err, last)
	}
	return err
}

// attempt returns the context of one attempt of a request, bounded by the
// request timeout.
func (s *S3) attempt(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// retryable reports whether a failed request may succeed if sent again. It
// is called only while the caller's context is still live, so a context
// error here is an attempt timeout.
func retryable(err error) bool {
	if errors.Is(err, ErrPreconditionFailed) || errors.Is(err, ErrNotExist) || IsConfigError(err) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		code := re.HTTPStatusCode()
		if code == http.StatusTooManyRequests || code >= 500 {
			return true
		}
		if code >= 400 {
			return isThrottleCode(err)
		}
	}
	if isThrottleCode(err) {
		return true
	}
	var send *smithyhttp.RequestSendError
	if errors.As(err, &send) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

func isThrottleCode(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
		"InternalError", "ServiceUnavailable", "TooManyRequests":
		return true
	}
	return false
}

// classify maps the store's answers that callers act on to the package's
// sentinels. A missing bucket is not ErrNotExist: it is misconfiguration,
// not a missing object.
func classify(err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "PreconditionFailed", "ConditionalRequestConflict":
			return fmt.Errorf("%w: %w", ErrPreconditionFailed, err)
		case "NoSuchKey", "NotFound":
			return fmt.Errorf("%w: %w", ErrNotExist, err)
		case "NoSuchBucket", "NoSuchUpload":
			return err
		}
		if isAccessCode(ae.ErrorCode()) {
			// Refused credentials, whatever the status: see configError.
			return err
		}
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusPreconditionFailed:
			return fmt.Errorf("%w: %w", ErrPreconditionFailed, err)
		case http.StatusNotFound:
			return fmt.Errorf("%w: %w", ErrNotExist, err)
		}
	}
	return err
}

// classifyPut is classify for a conditional write: AWS S3 and versitygw
// answer If-Match on a missing key with 404 NoSuchKey, which for the
// caller is a failed precondition.
func classifyPut(err error, opts PutOptions) error {
	err = classify(err)
	if opts.IfMatch != "" && errors.Is(err, ErrNotExist) {
		// Not %w: the error must not also match ErrNotExist.
		return fmt.Errorf("%w: object is missing: %v", ErrPreconditionFailed, err)
	}
	return err
}

func unquote(etag *string) string {
	return strings.Trim(aws.ToString(etag), `"`)
}

func quote(etag string) *string {
	if strings.HasPrefix(etag, `"`) {
		return aws.String(etag)
	}
	return aws.String(`"` + etag + `"`)
}

// Put implements Bucket. Bodies larger than the part size go up as a
// multipart upload with equal parts.
func (s *S3) Put(ctx context.Context, key string, body io.ReaderAt, size int64, opts PutOptions) (string, error) {
	if size < 0 {
		return "", fmt.Errorf("put %s: negative size %d", key, size)
	}
	if size > s.partSize {
		etag, err := s.putMultipart(ctx, key, body, size, opts)
		if err != nil {
			return "", fmt.Errorf("put %s: %w", key, err)
		}
		return etag, nil
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(s.prefix + key),
		ContentLength: aws.Int64(size),
	}
	if opts.IfNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	if opts.IfMatch != "" {
		in.IfMatch = quote(opts.IfMatch)
	}
	var etag string
	err := s.retry(ctx, func() error {
		actx, cancel := s.attempt(ctx)
		defer cancel()
		in.Body = s.putBody(body, 0, size)
		out, err := s.client.PutObject(actx, in)
		if err != nil {
			return classifyPut(err, opts)
		}
		etag = unquote(out.ETag)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("put %s: %w", key, err)
	}
	if etag == "" {
		return "", fmt.Errorf("put %s: store returned no etag", key)
	}
	return etag, nil
}

// copyBufSize is the size of the buffers putBody copies through: io.Copy's.
const copyBufSize = 32 << 10

// putBody is the body of one attempt of a Put or an UploadPart. Over plain
// HTTP the SDK hashes the payload for SigV4 with io.Copy, which allocated a
// 32 KiB buffer for every request (half of the bytes a small Put
// allocated) because a section reader has no WriteTo; putBody's WriteTo
// copies through a buffer the S3 keeps for reuse. Over HTTPS the SDK sends
// the payload unsigned and does not read it twice.
type putBody struct {
	*io.SectionReader
	bufs *sync.Pool
}

func (s *S3) putBody(body io.ReaderAt, off, n int64) *putBody {
	return &putBody{SectionReader: io.NewSectionReader(body, off, n), bufs: &s.copyBufs}
}

// WriteTo implements io.WriterTo, so that io.Copy uses no buffer of its own.
func (b *putBody) WriteTo(w io.Writer) (int64, error) {
	bp, _ := b.bufs.Get().(*[]byte)
	if bp == nil {
		buf := make([]byte, copyBufSize)
		bp = &buf
	}
	defer b.bufs.Put(bp)
	return io.CopyBuffer(writerOnly{w}, b.SectionReader, *bp)
}

// writerOnly hides a writer's ReadFrom, which io.CopyBuffer would call
// instead of using the buffer it is given.
type writerOnly struct{ io.Writer }

// putMultipart uploads body in equal parts of s.partSize (the last may be
// shorter) and applies the Put's condition on completion, so the object
// appears atomically or not at all. On failure the upload is aborted.
func (s *S3) putMultipart(ctx context.Context, key string, body io.ReaderAt, size int64, opts PutOptions) (string, error) {
	nparts := (size + s.partSize - 1) / s.partSize
	if nparts > maxParts {
		return "", fmt.Errorf("%d bytes need %d parts of %d bytes, more than %d", size, nparts, s.partSize, maxParts)
	}
	fullKey := s.prefix + key
	var uploadID string
	err := s.retry(ctx, func() error {
		actx, cancel := s.attempt(ctx)
		defer cancel()
		out, err := s.client.CreateMultipartUpload(actx, &s3.CreateMultipartUploadInput{
			Bucket: aws.String(s.bucket),
			Key:    aws.String(fullKey),
		})
		if err != nil {
			return classify(err)
		}
		uploadID = aws.ToString(out.UploadId)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("create multipart upload: %w", err)
	}
	etag, err := s.uploadParts(ctx, fullKey, uploadID, body, size, nparts, opts)
	if err != nil {
		// Abort on a detached context: the caller's may be what failed.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
		defer cancel()
		_, _ = s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket:   aws.String(s.bucket),
			Key:      aws.String(fullKey),
			UploadId: aws.String(uploadID),
		})
		return "", err
	}
	return etag, nil
}

func (s *S3) uploadParts(ctx context.Context, fullKey, uploadID string, body io.ReaderAt, size, nparts int64, opts PutOptions) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	parts := make([]types.CompletedPart, nparts)
	var (
		wg       sync.WaitGroup
		firstErr atomic.Pointer[error]
		sem      = make(chan struct{}, partConcurrency)
	)
	for i := range nparts {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			off := i * s.partSize
			n := min(s.partSize, size-off)
			num := int32(i + 1)
			err := s.retry(ctx, func() error {
				actx, cancel := s.attempt(ctx)
				defer cancel()
				out, err := s.client.UploadPart(actx, &s3.UploadPartInput{
					Bucket:        aws.String(s.bucket),
					Key:           aws.String(fullKey),
					UploadId:      aws.String(uploadID),
					PartNumber:    aws.Int32(num),
					ContentLength: aws.Int64(n),
					Body:          s.putBody(body, off, n),
				})
				if err != nil {
					return classify(err)
				}
				parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)}
				return nil
			})
			if err != nil {
				err = fmt.Errorf("upload part %d: %w", num, err)
				firstErr.CompareAndSwap(nil, &err)
				cancel()
			}
		}()
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return "", *p
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	in := &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.bucket),
		Key:             aws.String(fullKey),
		UploadId:        aws.String(uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}
	if opts.IfNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	if opts.IfMatch != "" {
		in.IfMatch = quote(opts.IfMatch)
	}
	var etag string
	err := s.retry(ctx, func() error {
		actx, cancel := s.attempt(ctx)
		defer cancel()
		out, err := s.client.CompleteMultipartUpload(actx, in)
		if err != nil {
			return classifyPut(err, opts)
		}
		etag = unquote(out.ETag)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("complete multipart upload: %w", err)
	}
	return etag, nil
}

// Get implements Bucket.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return s.GetRange(ctx, key, 0, -1)
}

// GetRange implements Bucket. The request timeout covers the wait for the
// response headers, not the reading of the body, which the caller paces.
func (s *S3) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", key, offset)
	}
	if length == 0 {
		return s.emptyRange(ctx, key, offset)
	}
	in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + key)}
	switch {
	case length > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))
	case offset > 0:
		in.Range = aws.String("bytes=" + strconv.FormatInt(offset, 10) + "-")
	}
	var body io.ReadCloser
	err := s.retry(ctx, func() error {
		actx, cancel := context.WithCancel(ctx)
		timer := time.AfterFunc(s.timeout, cancel)
		out, err := s.client.GetObject(actx, in)
		if !timer.Stop() || err != nil {
			cancel()
			if err == nil {
				_ = out.Body.Close()
				return fmt.Errorf("get: %w", context.DeadlineExceeded)
			}
			return classify(err)
		}
		body = &cancelBody{ReadCloser: out.Body, cancel: cancel}
		return nil
	})
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "InvalidRange" {
			// S3 refuses a range starting at the end of the object; the
			// Bucket contract says it is empty.
			return s.emptyRange(ctx, key, offset)
		}
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return body, nil
}

// emptyRange answers a read of no bytes at offset: empty if the object
// exists and offset is within it or at its end.
func (s *S3) emptyRange(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	info, err := s.Head(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if offset > info.Size {
		return nil, fmt.Errorf("get %s: offset %d out of range [0,%d]", key, offset, info.Size)
	}
	return io.NopCloser(bytes.NewReader(nil)), nil
}

// cancelBody releases a Get's context when the body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelBody) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// Head implements Bucket.
func (s *S3) Head(ctx context.Context, key string) (ObjectInfo, error) {
	var info ObjectInfo
	err := s.retry(ctx, func() error {
		actx, cancel := s.attempt(ctx)
		defer cancel()
		out, err := s.client.HeadObject(actx, &s3.HeadObjectInput{
			Bucket: aws.String(s.bucket),
			Key:    aws.String(s.prefix + key),
		})
		if err != nil {
			return classify(err)
		}
		info = ObjectInfo{
			Key:          key,
			Size:         aws.ToInt64(out.ContentLength),
			ETag:         unquote(out.ETag),
			LastModified: aws.ToTime(out.LastModified),
		}
		return nil
	})
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("head %s: %w", key, err)
	}
	return info, nil
}

// List implements Bucket. S3 lists keys in UTF-8 byte order, which is the
// lexical order the contract asks for.
func (s *S3) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	in := &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(s.prefix + prefix),
	}
	for {
		var out *s3.ListObjectsV2Output
		err := s.retry(ctx, func() error {
			actx, cancel := s.attempt(ctx)
			defer cancel()
			var err error
			out, err = s.client.ListObjectsV2(actx, in)
			return classify(err)
		})
		if err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, obj := range out.Contents {
			key := strings.TrimPrefix(aws.ToString(obj.Key), s.prefix)
			err := fn(ObjectInfo{
				Key:          key,
				Size:         aws.ToInt64(obj.Size),
				ETag:         unquote(obj.ETag),
				LastModified: aws.ToTime(obj.LastModified),
			})
			if err != nil {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) || aws.ToString(out.NextContinuationToken) == "" {
			return nil
		}
		in.ContinuationToken = out.NextContinuationToken
	}
}

// Delete implements Bucket.
func (s *S3) Delete(ctx context.Context, key string) error {
	err := s.retry(ctx, func() error {
		actx, cancel := s.attempt(ctx)
		defer cancel()
		_, err := s.client.DeleteObject(actx, &s3.DeleteObjectInput{
			Bucket: aws.String(s.bucket),
			Key:    aws.String(s.prefix + key),
		})
		return classify(err)
	})
	if err != nil && !errors.Is(err, ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}
