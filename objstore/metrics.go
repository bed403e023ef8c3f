package objstore

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Operation label values of the store metrics.
const (
	opPut      = "put"
	opGet      = "get"
	opGetRange = "get_range"
	opHead     = "head"
	opList     = "list"
	opDelete   = "delete"
)

// metricsBucket counts and times the requests of any Bucket.
type metricsBucket struct {
	b        Bucket
	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// WithMetrics wraps b so that every call is counted and timed in reg:
// objstore_requests_total, objstore_request_errors_total and
// objstore_request_duration_seconds, each by operation. ErrNotExist and
// ErrPreconditionFailed are answers, not failures, and are not counted as
// errors. A Get is timed until the body is open, not until it is read.
func WithMetrics(b Bucket, reg prometheus.Registerer) Bucket {
	f := promauto.With(reg)
	m := &metricsBucket{
		b: b,
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "objstore_requests_total",
			Help: "Object store requests by operation.",
		}, []string{"operation"}),
		errors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "objstore_request_errors_total",
			Help: "Object store requests that failed, by operation; missing objects and failed preconditions are not failures.",
		}, []string{"operation"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "objstore_request_duration_seconds",
			Help:    "Object store request latency by operation, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"operation"}),
	}
	for _, op := range []string{opPut, opGet, opGetRange, opHead, opList, opDelete} {
		m.requests.WithLabelValues(op)
		m.errors.WithLabelValues(op)
		m.duration.WithLabelValues(op)
	}
	return m
}

func (m *metricsBucket) observe(op string, start time.Time, err error) {
	m.requests.WithLabelValues(op).Inc()
	m.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, ErrNotExist) && !errors.Is(err, ErrPreconditionFailed) {
		m.errors.WithLabelValues(op).Inc()
	}
}

func (m *metricsBucket) Put(ctx context.Context, key string, body io.ReaderAt, size int64, opts PutOptions) (string, error) {
	start := time.Now()
	etag, err := m.b.Put(ctx, key, body, size, opts)
	m.observe(opPut, start, err)
	return etag, err
}

func (m *metricsBucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := m.b.Get(ctx, key)
	m.observe(opGet, start, err)
	return rc, err
}

func (m *metricsBucket) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := m.b.GetRange(ctx, key, offset, length)
	m.observe(opGetRange, start, err)
	return rc, err
}

func (m *metricsBucket) Head(ctx context.Context, key string) (ObjectInfo, error) {
	start := time.Now()
	info, err := m.b.Head(ctx, key)
	m.observe(opHead, start, err)
	return info, err
}

func (m *metricsBucket) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	start := time.Now()
	err := m.b.List(ctx, prefix, fn)
	m.observe(opList, start, err)
	return err
}

func (m *metricsBucket) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := m.b.Delete(ctx, key)
	m.observe(opDelete, start, err)
	return err
}
