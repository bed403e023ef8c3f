package objstore

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Open opens the bucket a store URL names. The forms are:
//
//	file:///var/lib/evodb       a Filesystem bucket at an absolute path
//	file://./evodb-demo         ... or a path relative to the working directory
//	mem://                      a fresh Memory bucket (tests, demos)
//	s3://bucket/prefix?endpoint=http://127.0.0.1:7070&region=auto&path_style=true
//
// For s3:// the URL's bucket and prefix, and the query parameters endpoint,
// region, path_style, checksum_when_required, part_size, max_retries,
// request_timeout and retry_max_elapsed override the fields of s3, which
// carries the other settings (credentials above all: secrets do not belong
// in URLs). Without credentials in s3 the default chain applies
// (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, shared config, roles).
func Open(ctx context.Context, rawURL string, s3 S3Config) (Bucket, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse store url: %w", err)
	}
	switch u.Scheme {
	case "mem":
		return NewMemory(), nil
	case "file":
		path := u.Host + u.Path
		if u.Host == "localhost" {
			path = u.Path
		}
		if path == "" {
			return nil, fmt.Errorf("store url %q has no path", rawURL)
		}
		b, err := NewFilesystem(path)
		if err != nil {
			return nil, fmt.Errorf("open store %s: %w", rawURL, err)
		}
		return b, nil
	case "s3":
		cfg, err := s3FromURL(u, s3)
		if err != nil {
			return nil, fmt.Errorf("store url %q: %w", rawURL, err)
		}
		b, err := NewS3(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("open store %s: %w", u.Redacted(), err)
		}
		return b, nil
	case "":
		return nil, fmt.Errorf("store url %q has no scheme (want file://, s3:// or mem://)", rawURL)
	default:
		return nil, fmt.Errorf("store url %q: unknown scheme %q (want file://, s3:// or mem://)", rawURL, u.Scheme)
	}
}

// ParseS3URL overlays an s3:// store URL (as Open takes it) on cfg: the
// S3 configuration Open would use.
func ParseS3URL(rawURL string, cfg S3Config) (S3Config, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return cfg, fmt.Errorf("parse store url: %w", err)
	}
	if u.Scheme != "s3" {
		return cfg, fmt.Errorf("store url %q is not s3://", rawURL)
	}
	return s3FromURL(u, cfg)
}

// s3FromURL overlays an s3:// URL on cfg.
func s3FromURL(u *url.URL, cfg S3Config) (S3Config, error) {
	if u.User != nil {
		return cfg, fmt.Errorf("credentials in the url are not supported; use the config or the environment")
	}
	if u.Host == "" {
		return cfg, fmt.Errorf("no bucket")
	}
	cfg.Bucket = u.Host
	if p := strings.Trim(u.Path, "/"); p != "" {
		cfg.Prefix = p
	}
	var err error
	for name, values := range u.Query() {
		v := values[len(values)-1]
		switch name {
		case "endpoint":
			cfg.Endpoint = v
		case "region":
			cfg.Region = v
		case "path_style":
			cfg.PathStyle, err = strconv.ParseBool(v)
		case "checksum_when_required":
			var b bool
			b, err = strconv.ParseBool(v)
			cfg.ChecksumWhenRequired = &b
		case "part_size":
			cfg.PartSize, err = strconv.ParseInt(v, 10, 64)
		case "max_retries":
			cfg.MaxRetries, err = strconv.Atoi(v)
		case "request_timeout":
			cfg.RequestTimeout, err = time.ParseDuration(v)
		case "retry_max_elapsed":
			cfg.RetryMaxElapsed, err = time.ParseDuration(v)
		default:
			return cfg, fmt.Errorf("unknown parameter %q", name)
		}
		if err != nil {
			return cfg, fmt.Errorf("parameter %s: %w", name, err)
		}
	}
	return cfg, nil
}

// prefixed stores all keys of a Bucket under a prefix.
type prefixed struct {
	b      Bucket
	prefix string
}

// Prefixed returns a view of b in which key k is stored as prefix/k. The
// prefix is a directory: a missing trailing slash is added. An empty prefix
// returns b itself.
func Prefixed(b Bucket, prefix string) Bucket {
	prefix = normalizePrefix(prefix)
	if prefix == "" {
		return b
	}
	return &prefixed{b: b, prefix: prefix}
}

func (p *prefixed) Put(ctx context.Context, key string, body io.ReaderAt, size int64, opts PutOptions) (string, error) {
	return p.b.Put(ctx, p.prefix+key, body, size, opts)
}

func (p *prefixed) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return p.b.Get(ctx, p.prefix+key)
}

func (p *prefixed) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	return p.b.GetRange(ctx, p.prefix+key, offset, length)
}

func (p *prefixed) Head(ctx context.Context, key string) (ObjectInfo, error) {
	info, err := p.b.Head(ctx, p.prefix+key)
	info.Key = strings.TrimPrefix(info.Key, p.prefix)
	return info, err
}

func (p *prefixed) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	return p.b.List(ctx, p.prefix+prefix, func(info ObjectInfo) error {
		info.Key = strings.TrimPrefix(info.Key, p.prefix)
		return fn(info)
	})
}

func (p *prefixed) Delete(ctx context.Context, key string) error {
	return p.b.Delete(ctx, p.prefix+key)
}
