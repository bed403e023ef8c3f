// Package confluent decodes Kafka records serialized in the Confluent wire
// format (a zero magic byte, a 4-byte big-endian schema ID, then the
// payload) with schemas from a Confluent-compatible Schema Registry:
// Avro (plain records and the Debezium envelope of the AvroConverter),
// Protobuf (the same two layouts, after the header's message index) and
// JSON Schema (the evodb or Debezium JSON envelope behind the header).
//
// Schemas are fetched once per ID and compiled once per ID into a decoding
// plan, so a record costs a map lookup and a walk over its bytes. A
// registry that cannot be reached is never blamed on the record: requests
// are retried with backoff, and when the retries run out the error wraps
// ErrUnavailable, which a caller must treat as fatal (stop and resume from
// the committed offset later), never as a bad record.
package confluent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/twmb/franz-go/pkg/sr"
)

// ErrUnavailable marks an error of the registry itself (unreachable, 5xx,
// refused credentials) as opposed to an error of the record. Errors
// wrapping it must stop the consumer, never send the record to a
// dead-letter topic.
var ErrUnavailable = errors.New("schema registry unavailable")

// errNotFound is a schema ID the registry does not know: the record
// names a schema that does not exist there, which is the record's fault
// (or the wrong registry's, which the message says).
var errNotFound = errors.New("schema not found")

// Options configure a Registry.
type Options struct {
	// URLs are the registry's base URLs; requests fail over in order.
	URLs []string
	// ClientOpts are further franz-go sr.Client options: basic auth,
	// bearer token, TLS, HTTP client with a request timeout.
	ClientOpts []sr.ClientOpt
	// RetryTimeout bounds how long a schema fetch retries an unavailable
	// registry before it returns an error wrapping ErrUnavailable.
	// Zero means one minute.
	RetryTimeout time.Duration
	// CacheSize bounds how many compiled schemas are kept; when full the
	// cache is cleared, so endlessly new schema IDs cost fetches, not
	// memory. Zero means 1000.
	CacheSize int
}

// Registry fetches and compiles schemas by ID. It is safe for concurrent
// use; Close stops retries in progress.
type Registry struct {
	cl     *sr.Client
	url    string // the first URL, named in errors
	retry  time.Duration
	limit  int
	ctx    context.Context
	cancel context.CancelFunc

	mu struct {
		sync.Mutex
		schemas map[int]*entry
		// refs are the schemas references name, by subject and version,
		// shared by every schema ID that refers to them (a Debezium
		// envelope's source block is one schema for every table).
		refs map[refKey]sr.Schema
	}
}

// refKey is a schema by subject and version.
type refKey struct {
	subject string
	version int
}

// entry is one schema ID's fetch and compilation, shared by every record
// that names it; done closes when schema or err is set.
type entry struct {
	done   chan struct{}
	schema *compiled
	err    error
}

// compiled is a schema compiled for decoding. Exactly one of avro, proto
// and jsonSchema is set, by the schema's type.
type compiled struct {
	id         int
	typ        sr.SchemaType
	avro       *avroSchema
	proto      *protoSchema
	jsonSchema bool
}

// NewRegistry returns a registry client. It does not contact the
// registry: the first record does.
func NewRegistry(o Options) (*Registry, error) {
	if len(o.URLs) == 0 {
		return nil, errors.New("schema registry: no URL")
	}
	cl, err := sr.NewClient(append([]sr.ClientOpt{sr.URLs(o.URLs...)}, o.ClientOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("schema registry client: %w", err)
	}
	r := &Registry{cl: cl, url: strings.TrimRight(o.URLs[0], "/"), retry: o.RetryTimeout, limit: o.CacheSize}
	if r.retry <= 0 {
		r.retry = time.Minute
	}
	if r.limit <= 0 {
		r.limit = 1000
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.mu.schemas = map[int]*entry{}
	r.mu.refs = map[refKey]sr.Schema{}
	return r, nil
}

// Close ends retries in progress; fetches after it fail with
// ErrUnavailable.
func (r *Registry) Close() { r.cancel() }

// URL is the registry URL that errors name.
func (r *Registry) URL() string { return r.url }

// Client is the underlying registry client, for producers that register
// schemas.
func (r *Registry) Client() *sr.Client { return r.cl }

// schema returns the compiled schema of id, fetching and compiling it on
// first use. Concurrent callers for one ID wait for one fetch. A failed
// fetch is not cached: the next record asks again. A schema that was
// fetched but does not compile is cached with its error, so the records
// written with it are refused without a fetch and a compile each.
//
// Caching by ID alone relies on the registry's contract that an ID's
// schema never changes (nor do the subject versions it refers to);
// TestRegistryCachesByID breaks that on purpose, and
// TestRegistryCachesCompileErrors shows a compile error is kept.
func (r *Registry) schema(id int) (*compiled, error) {
	r.mu.Lock()
	e, ok := r.mu.schemas[id]
	if !ok {
		if len(r.mu.schemas) >= r.limit {
			r.mu.schemas = map[int]*entry{}
		}
		e = &entry{done: make(chan struct{})}
		r.mu.schemas[id] = e
	}
	r.mu.Unlock()
	if ok {
		<-e.done
		return e.schema, e.err
	}
	e.schema, e.err = r.fetch(id)
	var ce *compileError
	if e.err != nil && !errors.As(e.err, &ce) {
		r.mu.Lock()
		if r.mu.schemas[id] == e {
			delete(r.mu.schemas, id)
		}
		r.mu.Unlock()
	}
	close(e.done)
	return e.schema, e.err
}

// get runs one registry request, retrying while the registry is
// unavailable. It returns errNotFound for a 404 and an error wrapping
// ErrUnavailable when the registry refuses or the retries run out.
func (r *Registry) get(what string, req func(ctx context.Context) error) error {
	op := func() error {
		ctx, cancel := context.WithCancel(r.ctx)
		defer cancel()
		err := req(ctx)
		switch {
		case err == nil:
			return nil
		case isNotFound(err):
			return backoff.Permanent(errNotFound)
		case retryable(err):
			return err
		}
		return backoff.Permanent(fmt.Errorf("%w: %w", ErrUnavailable, err))
	}
	b := backoff.NewExponentialBackOff(backoff.WithInitialInterval(100*time.Millisecond), backoff.WithMaxInterval(5*time.Second), backoff.WithMaxElapsedTime(r.retry))
	if err := backoff.Retry(op, backoff.WithContext(b, r.ctx)); err != nil {
		if errors.Is(err, errNotFound) || errors.Is(err, ErrUnavailable) {
			return fmt.Errorf("%s at %s: %w", what, r.url, err)
		}
		return fmt.Errorf("%s at %s: %w after retrying for %s: %w", what, r.url, ErrUnavailable, r.retry, err)
	}
	return nil
}

// fetch gets schema id from the registry, retrying while the registry is
// unavailable, and compiles it.
func (r *Registry) fetch(id int) (*compiled, error) {
	var s sr.Schema
	err := r.get(fmt.Sprintf("schema ID %d", id), func(ctx context.Context) error {
		var err error
		s, err = r.cl.SchemaByID(ctx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	c := &compiled{id: id, typ: s.Type}
	var refs []reference
	if s.Type == sr.TypeAvro || s.Type == sr.TypeProtobuf {
		if refs, err = r.references(s.References); err != nil {
			return nil, fmt.Errorf("schema ID %d at %s: %w", id, r.url, err)
		}
	}
	switch s.Type {
	case sr.TypeAvro:
		a, err := compileAvro(s.Schema, refs)
		if err != nil {
			return nil, &compileError{fmt.Errorf("schema ID %d at %s: %w", id, r.url, err)}
		}
		c.avro = a
	case sr.TypeJSON:
		c.jsonSchema = true
	case sr.TypeProtobuf:
		srcs := make(map[string]string, len(refs))
		for _, ref := range refs {
			srcs[ref.name] = ref.schema
		}
		p, err := compileProto(r.ctx, id, s.Schema, srcs)
		if err != nil {
			if errors.Is(err, ErrUnavailable) || r.ctx.Err() != nil {
				return nil, fmt.Errorf("schema ID %d at %s: %w", id, r.url, err)
			}
			return nil, &compileError{fmt.Errorf("schema ID %d at %s: %w", id, r.url, err)}
		}
		c.proto = p
	}
	return c, nil
}

// compileError is a schema the registry served that does not compile: the
// same text fails the same way every time, so it is cached like a
// compiled schema.
type compileError struct{ err error }

func (e *compileError) Error() string { return e.err.Error() }
func (e *compileError) Unwrap() error { return e.err }

// maxReferenceDepth bounds how deep references of references go, so a
// chain of references the registry let through stays bounded.
const maxReferenceDepth = 32

// reference is a schema another schema refers to, by the name it is
// referred to with: an Avro type's full name, a Protobuf import path.
type reference struct {
	name, schema string
}

// references returns the schemas refs name and, recursively, the schemas
// those refer to: each name once, in dependency order (every schema after
// the schemas it refers to), which is the order Avro parses them in. A
// name already seen is not followed again, so a cycle ends instead of
// looping (and then fails to parse, a record error).
//
// A reference the registry does not have is the schema's fault, not the
// registry's: that error does not wrap errNotFound, which would blame the
// record's schema ID. A registry outage while fetching one wraps
// ErrUnavailable, as for the schema itself.
func (r *Registry) references(refs []sr.SchemaReference) ([]reference, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	var out []reference
	seen := map[string]bool{}
	var walk func(refs []sr.SchemaReference, depth int) error
	walk = func(refs []sr.SchemaReference, depth int) error {
		if depth > maxReferenceDepth {
			return fmt.Errorf("references nested more than %d deep", maxReferenceDepth)
		}
		for _, ref := range refs {
			if seen[ref.Name] {
				continue
			}
			seen[ref.Name] = true
			s, err := r.reference(ref)
			if err != nil {
				return err
			}
			if err := walk(s.References, depth+1); err != nil {
				return err
			}
			out = append(out, reference{name: ref.Name, schema: s.Schema})
		}
		return nil
	}
	if err := walk(refs, 0); err != nil {
		return nil, err
	}
	return out, nil
}

// reference fetches the schema ref names, retrying while the registry is
// unavailable.
//
// Caching by subject and version relies on the registry's contract that a
// subject's version never changes (a new schema is a new version); a
// version of -1, the latest, is not cached. TestAvroReferencesCachedByVersion
// breaks that contract on purpose.
func (r *Registry) reference(ref sr.SchemaReference) (sr.Schema, error) {
	key := refKey{ref.Subject, ref.Version}
	if ref.Version > 0 {
		r.mu.Lock()
		s, ok := r.mu.refs[key]
		r.mu.Unlock()
		if ok {
			return s, nil
		}
	}
	what := fmt.Sprintf("reference %s (subject %s version %d)", ref.Name, ref.Subject, ref.Version)
	var ss sr.SubjectSchema
	err := r.get(what, func(ctx context.Context) error {
		var err error
		ss, err = r.cl.SchemaByVersion(ctx, ref.Subject, ref.Version)
		return err
	})
	switch {
	case errors.Is(err, errNotFound):
		return sr.Schema{}, fmt.Errorf("%s is not in the registry", what)
	case err != nil:
		return sr.Schema{}, err
	}
	if ref.Version > 0 {
		r.mu.Lock()
		if len(r.mu.refs) >= r.limit {
			r.mu.refs = map[refKey]sr.Schema{}
		}
		r.mu.refs[key] = ss.Schema
		r.mu.Unlock()
	}
	return ss.Schema, nil
}

// isNotFound reports whether the registry answered that the schema does
// not exist (HTTP 404; Confluent error code 40403).
func isNotFound(err error) bool {
	var re *sr.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}

// retryable reports whether err is the registry being unavailable for now:
// no connection, a timeout, 429 or a 5xx answer.
func retryable(err error) bool {
	var re *sr.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode >= 500 || re.StatusCode == http.StatusTooManyRequests
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	// Connection refused and reset come wrapped in *url.Error, which is a
	// net.Error; anything else that is not an answer (a truncated body)
	// is treated as transient too.
	return !errors.Is(err, context.Canceled)
}
