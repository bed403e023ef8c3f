package objstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// The kinds of ConfigError: answers of the store that sending the request
// again cannot change, because the configuration is wrong.
var (
	// ErrAccessDenied is the store refusing the credentials or their
	// permissions (HTTP 403: a wrong secret, an unknown access key, a
	// policy that does not grant the operation).
	ErrAccessDenied = errors.New("access denied")
	// ErrNoBucket is the store saying the bucket does not exist.
	ErrNoBucket = errors.New("bucket does not exist")
	// ErrNoCredentials is the credential chain (static keys, environment,
	// shared files, instance or task roles) never having produced
	// credentials.
	ErrNoCredentials = errors.New("no credentials")
	// ErrNeedsPathStyle is a bucket addressed in virtual-hosted style
	// (bucket.endpoint) whose host name does not resolve: self-hosted
	// servers answer only under their own host name, in path style.
	ErrNeedsPathStyle = errors.New("bucket host name does not resolve")
)

// ConfigError is a store error that retrying cannot fix. Kind is one of
// ErrAccessDenied, ErrNoBucket, ErrNoCredentials and ErrNeedsPathStyle; errors.Is matches
// both Kind and the underlying error.
type ConfigError struct {
	Kind error
	// Bucket is the bucket the request addressed.
	Bucket string
	// Host is the host name the request was sent to.
	Host string
	// Err is the store's or the resolver's answer.
	Err error
}

func (e *ConfigError) Error() string {
	switch e.Kind {
	case ErrAccessDenied:
		return fmt.Sprintf("access denied to bucket %q: %v", e.Bucket, e.Err)
	case ErrNoBucket:
		return fmt.Sprintf("bucket %q does not exist: %v", e.Bucket, e.Err)
	case ErrNoCredentials:
		return fmt.Sprintf("no credentials for bucket %q: %v", e.Bucket, e.Err)
	case ErrNeedsPathStyle:
		return fmt.Sprintf("bucket %q addressed as host %s, which does not resolve (self-hosted servers need path-style addressing): %v", e.Bucket, e.Host, e.Err)
	}
	return fmt.Sprintf("%v: %v", e.Kind, e.Err)
}

func (e *ConfigError) Unwrap() []error { return []error{e.Kind, e.Err} }

// IsConfigError reports whether err is (or wraps) a ConfigError: an error
// to report at once rather than retry.
func IsConfigError(err error) bool {
	var ce *ConfigError
	return errors.As(err, &ce)
}

// configError returns err as a ConfigError if it is one of the answers that
// retrying cannot change, or nil. endpointHost is the configured endpoint's
// host ("" for AWS) and pathStyle its addressing.
func configError(err error, bucket, endpointHost string, pathStyle bool) *ConfigError {
	var ce *credentialsError
	if errors.As(err, &ce) && !ce.everRetrieved {
		return &ConfigError{Kind: ErrNoCredentials, Bucket: bucket, Err: err}
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch {
		case ae.ErrorCode() == "NoSuchBucket":
			return &ConfigError{Kind: ErrNoBucket, Bucket: bucket, Err: err}
		case isAccessCode(ae.ErrorCode()):
			return &ConfigError{Kind: ErrAccessDenied, Bucket: bucket, Err: err}
		}
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden && !isThrottleCode(err) {
		return &ConfigError{Kind: ErrAccessDenied, Bucket: bucket, Err: err}
	}
	var dns *net.DNSError
	if endpointHost != "" && !pathStyle && errors.As(err, &dns) {
		// The bucket's host name under an IP address never resolves; under
		// a name it does not when the server has no wildcard DNS entry,
		// which only path style can help if the endpoint's own name
		// resolves (else the endpoint is what is wrong, or DNS is down).
		if _, ipErr := netip.ParseAddr(strings.Trim(endpointHost, "[]")); ipErr == nil {
			return &ConfigError{Kind: ErrNeedsPathStyle, Bucket: bucket, Host: dns.Name, Err: err}
		}
		if dns.IsNotFound && dns.Name != endpointHost && resolves(endpointHost) {
			return &ConfigError{Kind: ErrNeedsPathStyle, Bucket: bucket, Host: dns.Name, Err: err}
		}
	}
	return nil
}

// resolves reports whether a host name resolves now. It runs only on the
// error path, to tell which of two names is the wrong one.
func resolves(host string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := net.DefaultResolver.LookupHost(ctx, host)
	return err == nil
}

// isAccessCode reports whether an error code refuses the credentials.
// Servers differ in the status they send with it: versitygw answers an
// unknown access key with 404 XAdminUserNotFound, which must not read as a
// missing object.
func isAccessCode(code string) bool {
	switch code {
	case "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken",
		"ExpiredToken", "XAdminUserNotFound":
		return true
	}
	return false
}

// Cause returns the gist of a store error for a log line: the network
// error or the store's status and code, without the SDK's framing of the
// operation and request IDs. The full error is for the final report.
func Cause(err error) string {
	if err == nil {
		return ""
	}
	var ce *ConfigError
	if errors.As(err, &ce) {
		return ce.Kind.Error()
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Error()
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return dns.Error()
	}
	var ae smithy.APIError
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() != 0 {
		if errors.As(err, &ae) && ae.ErrorCode() != "" {
			return fmt.Sprintf("HTTP %d %s", re.HTTPStatusCode(), ae.ErrorCode())
		}
		return fmt.Sprintf("HTTP %d", re.HTTPStatusCode())
	}
	return err.Error()
}

// markedCredentials marks the errors of a credential provider, so that a
// chain that finds no credentials at all is told apart from the store's
// answers and from network errors, which the SDK reports alike.
type markedCredentials struct {
	p aws.CredentialsProvider
	// retrieved is set once the chain has produced credentials: a failure
	// after that (an instance role's refresh during an outage of the
	// metadata service) may pass and is retried; one before it is
	// misconfiguration.
	retrieved atomic.Bool
}

func (m *markedCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := m.p.Retrieve(ctx)
	if err != nil {
		return c, &credentialsError{err: err, everRetrieved: m.retrieved.Load()}
	}
	m.retrieved.Store(true)
	return c, nil
}

// credentialsError is an error of the credential chain.
type credentialsError struct {
	err           error
	everRetrieved bool
}

func (e *credentialsError) Error() string { return e.err.Error() }

func (e *credentialsError) Unwrap() error { return e.err }
