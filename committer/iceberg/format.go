// Package iceberg is the Apache Iceberg table format (v2) through a REST
// catalog: the catalog holds each table's metadata pointer and applies
// commits atomically under their requirements; iceberg-go writes the
// manifests and manifest lists next to the table's data files.
//
// A table root such as "sales/public/orders" is the catalog table
// "orders" in a namespace made from the root's leading segments (see
// Config.Namespace), located where the sink writes its data files:
// <Location>/<root>, so tablefile.WriteBlock keeps writing data/*.parquet
// through objstore and a commit adds those files by absolute URI.
//
// The exactly-once state lives in snapshot summaries, as the Kafka Connect
// Iceberg sink keeps its offsets: every commit this package makes carries
// the table's whole txn map (evodb.txn.<appId> = last offset, lineage keys
// included) forward into its snapshot's summary, because snapshot expiry
// drops older summaries; and its commit id (evodb.commit-id), by which an
// ambiguous commit is found again. Spark, PyIceberg, DuckDB and Trino read
// the tables without this package.
package iceberg

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/catalog/rest"
	icebergio "github.com/apache/iceberg-go/io"
	_ "github.com/apache/iceberg-go/io/gocloud/s3" // registers the s3:// FileIO manifests are written with
	"github.com/apache/iceberg-go/table"

	"github.com/evodb/sink/committer"
)

var (
	_ committer.Format     = (*Format)(nil)
	_ committer.Table      = (*Table)(nil)
	_ committer.Maintainer = (*Table)(nil)
)

// DefaultNamespace is the namespace template used when Config.Namespace is
// empty: the root's leading segments, one namespace level each.
const DefaultNamespace = "{parent}"

// fallbackNamespace holds the tables whose namespace would be empty (a
// root of one segment under the default template).
const fallbackNamespace = "default"

// Config says how to reach the catalog and where tables live.
type Config struct {
	// URI is the REST catalog's base URL, e.g.
	// https://catalog.cloudflarestorage.com/<account>/<bucket>.
	URI string
	// Warehouse is the warehouse the catalog serves (for R2 Data Catalog,
	// "<account>_<bucket>"); empty for a catalog that needs none.
	Warehouse string
	// Prefix is the catalog's URL prefix, if its /v1/config does not
	// supply it.
	Prefix string
	// Token is a static bearer token (R2 Data Catalog: a Cloudflare API
	// token). Credential is an OAuth2 client credential "id:secret",
	// exchanged at OAuthURI (default: the catalog's /v1/oauth/tokens) for
	// Scope. At most one of the two is set.
	Token      string
	Credential string
	OAuthURI   string
	Scope      string
	// TLS configures HTTPS to the catalog (a private CA); nil uses the
	// system roots.
	TLS *tls.Config
	// RequestTimeout bounds one catalog request; default 30s.
	RequestTimeout time.Duration
	// Namespace is the namespace template: levels separated by '.', each
	// a literal or {parent} (the root's leading segments, one level
	// each) or {parent_} (the leading segments joined by '_' into one
	// level). Empty levels drop out; an empty namespace is "default".
	// Default DefaultNamespace.
	Namespace string
	// Location is the URI tables live under, "s3://<bucket>/<prefix>":
	// the place the sink's store writes data files. A table's location is
	// Location/<root>.
	Location string
	// S3 configures the FileIO through which iceberg-go reads and writes
	// manifests at Location: it must reach the same bucket as the sink's
	// store.
	S3 S3Config
	// Transport, if set, carries every catalog request (a test seam for
	// faults; TLS is then the transport's business); default a clone of
	// http.DefaultTransport with TLS.
	Transport http.RoundTripper
}

// S3Config is the S3 endpoint of the FileIO.
type S3Config struct {
	Endpoint, Region           string
	AccessKeyID, SecretKey     string
	SessionToken               string
	PathStyle                  bool
	DisableChecksumsOnRequests bool
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	var errs []error
	if c.URI == "" {
		errs = append(errs, errors.New("catalog uri is required"))
	} else if u, err := url.Parse(c.URI); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("catalog uri %q is not an http(s) URL", c.URI))
	}
	if c.Token != "" && c.Credential != "" {
		errs = append(errs, errors.New("catalog auth: set a token or an OAuth2 credential, not both"))
	}
	if c.Credential != "" && !strings.Contains(c.Credential, ":") {
		errs = append(errs, errors.New(`catalog auth: the OAuth2 credential must be "client_id:client_secret"`))
	}
	if c.RequestTimeout < 0 {
		errs = append(errs, fmt.Errorf("catalog request_timeout %s is negative", c.RequestTimeout))
	}
	if _, err := parseNamespace(c.Namespace); err != nil {
		errs = append(errs, err)
	}
	if !strings.HasPrefix(c.Location, "s3://") || len(c.Location) <= len("s3://") {
		errs = append(errs, fmt.Errorf("table location %q is not an s3:// URI", c.Location))
	}
	return errors.Join(errs...)
}

// Options configures the tables a Format opens. The zero value is usable.
type Options struct {
	// Instance identifies the sink instance in snapshot summaries.
	Instance string
	// MaxCommitAttempts bounds the catalog commit attempts of one Commit;
	// default 100.
	MaxCommitAttempts int
	// RetryInitialInterval and RetryMaxInterval bound the backoff after
	// catalog errors; defaults 50ms and 5s. Lost races are retried at
	// once.
	RetryInitialInterval time.Duration
	RetryMaxInterval     time.Duration
	// Now is the clock for commit timestamps; default time.Now.
	Now func() time.Time
	// Logger receives warnings about retries.
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.MaxCommitAttempts <= 0 {
		o.MaxCommitAttempts = 100
	}
	if o.RetryInitialInterval <= 0 {
		o.RetryInitialInterval = 50 * time.Millisecond
	}
	if o.RetryMaxInterval <= 0 {
		o.RetryMaxInterval = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Format is the Iceberg table format over one REST catalog.
type Format struct {
	cat      *rest.Catalog
	ns       []nsLevel
	location string
	opts     Options
	fs       *sharedFS
}

// sharedFS is the one FileIO through which every table of a Format reads
// and writes its manifests. iceberg-go would otherwise build a FileIO (an
// S3 client, loading the AWS configuration and CA bundle) for every table
// load and commit, which costs more CPU than the commit itself. All
// tables of a Format live under its Location, in one bucket, with the
// FileIO properties the Config gives; credentials a catalog vends per
// table are therefore not used.
type sharedFS struct {
	props    iceberg.Properties
	location string

	mu struct {
		sync.Mutex
		fs icebergio.IO
	}
}

// get returns the FileIO, building it on first use; a failed build is
// retried by the next call.
func (s *sharedFS) get(ctx context.Context) (icebergio.IO, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.fs != nil {
		return s.mu.fs, nil
	}
	fs, err := icebergio.LoadFS(ctx, s.props, s.location)
	if err != nil {
		return nil, fmt.Errorf("file IO for %s: %w", s.location, err)
	}
	s.mu.fs = fs
	return fs, nil
}

// NewFormat connects to the catalog (it reads the catalog's /v1/config)
// and returns the format. opts apply to every table it opens; the Options
// given to Open override Instance, Now and Logger.
func NewFormat(ctx context.Context, cfg Config, opts Options) (*Format, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ns, _ := parseNamespace(cfg.Namespace)
	timeout := cmp.Or(cfg.RequestTimeout, 30*time.Second)
	base := cfg.Transport
	if base == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if cfg.TLS != nil {
			tr.TLSClientConfig = cfg.TLS.Clone()
		}
		base = tr
	}
	props := iceberg.Properties{
		icebergio.S3Region:                 cmp.Or(cfg.S3.Region, "auto"),
		icebergio.S3ForceVirtualAddressing: fmt.Sprint(!cfg.S3.PathStyle),
	}
	if cfg.S3.Endpoint != "" {
		props[icebergio.S3EndpointURL] = cfg.S3.Endpoint
	}
	if cfg.S3.AccessKeyID != "" {
		props[icebergio.S3AccessKeyID] = cfg.S3.AccessKeyID
		props[icebergio.S3SecretAccessKey] = cfg.S3.SecretKey
	}
	if cfg.S3.SessionToken != "" {
		props[icebergio.S3SessionToken] = cfg.S3.SessionToken
	}
	ro := []rest.Option{
		rest.WithAdditionalProps(props),
		rest.WithCustomTransport(&timeoutTransport{base: base, timeout: timeout}),
	}
	// cfg.TLS is in the transport's TLSClientConfig: iceberg-go refuses a
	// TLS config beside a custom transport.
	if cfg.Warehouse != "" {
		ro = append(ro, rest.WithWarehouseLocation(cfg.Warehouse))
	}
	if cfg.Prefix != "" {
		ro = append(ro, rest.WithPrefix(cfg.Prefix))
	}
	switch {
	case cfg.Token != "":
		ro = append(ro, rest.WithOAuthToken(cfg.Token))
	case cfg.Credential != "":
		ro = append(ro, rest.WithCredential(cfg.Credential))
		if cfg.Scope != "" {
			ro = append(ro, rest.WithScope(cfg.Scope))
		}
		if cfg.OAuthURI != "" {
			u, err := url.Parse(cfg.OAuthURI)
			if err != nil {
				return nil, fmt.Errorf("catalog oauth uri %q: %w", cfg.OAuthURI, err)
			}
			ro = append(ro, rest.WithAuthURI(u))
		}
	}
	cat, err := rest.NewCatalog(ctx, "evodb", cfg.URI, ro...)
	if err != nil {
		return nil, fmt.Errorf("connect to Iceberg REST catalog %s: %w", cfg.URI, authErr(err))
	}
	opts.defaults()
	location := strings.TrimSuffix(cfg.Location, "/")
	return &Format{cat: cat, ns: ns, location: location, opts: opts, fs: &sharedFS{props: props, location: location}}, nil
}

// authErr marks err with committer.ErrAccessDenied when the catalog (or
// its OAuth2 token endpoint) refused the credentials, saying which
// settings to check; other errors pass unchanged.
func authErr(err error) error {
	if errors.Is(err, rest.ErrUnauthorized) || errors.Is(err, rest.ErrForbidden) || errors.Is(err, rest.ErrOAuthError) {
		return fmt.Errorf("%w (check the catalog token or OAuth2 credential and its scope): %w", committer.ErrAccessDenied, err)
	}
	return err
}

// Open returns the table at root. It does no I/O.
func (f *Format) Open(root string, o committer.Options) committer.Table {
	opts := f.opts
	if o.Instance != "" {
		opts.Instance = o.Instance
	}
	if o.Now != nil {
		opts.Now = o.Now
	}
	if o.Logger != nil {
		opts.Logger = o.Logger
	}
	return &Table{
		cat:        f.cat,
		fs:         f.fs,
		root:       root,
		ident:      f.Identifier(root),
		location:   f.location + "/" + root,
		opts:       opts,
		deleteRows: o.DeleteRows,
	}
}

// ErrDeleteRowsUnsupported is returned (wrapped) by Create and Commit of
// a Table opened with committer.Options.DeleteRows, and by Commit of a
// commit with Deletes: Iceberg tables cannot delete rows of the files they
// keep here yet (position deletes), so a mirror table must be a Delta
// table for now.
var ErrDeleteRowsUnsupported = errors.New("deleting rows of kept files (mirror tables) is not supported for Iceberg tables yet; use the Delta format for such tables")

// Identifier returns the catalog identifier of the table at root: the
// namespace the template makes of its leading segments, and its last
// segment as the table name.
func (f *Format) Identifier(root string) table.Identifier {
	segs := strings.Split(strings.Trim(root, "/"), "/")
	parent, name := segs[:len(segs)-1], segs[len(segs)-1]
	var ns []string
	for _, l := range f.ns {
		switch l.kind {
		case nsParent:
			ns = append(ns, parent...)
		case nsParentJoined:
			if len(parent) > 0 {
				ns = append(ns, strings.Join(parent, "_"))
			}
		default:
			ns = append(ns, l.lit)
		}
	}
	if len(ns) == 0 {
		ns = []string{fallbackNamespace}
	}
	return append(ns, name)
}

// ListTables returns the roots of the catalog's tables that live under
// the format's Location, sorted. It walks the namespaces from the
// template's literal leading levels down and loads every table found, since
// only a table's location tells its root when the template is not
// invertible.
func (f *Format) ListTables(ctx context.Context) ([]string, error) {
	var start table.Identifier
	for _, l := range f.ns {
		if l.kind != nsLiteral {
			break
		}
		start = append(start, l.lit)
	}
	var roots []string
	var walk func(ns table.Identifier) error
	walk = func(ns table.Identifier) error {
		if len(ns) > 0 {
			for id, err := range f.cat.ListTables(ctx, ns) {
				if err != nil {
					if errors.Is(err, catalog.ErrNoSuchNamespace) {
						return nil
					}
					return fmt.Errorf("list tables of namespace %s: %w", strings.Join(ns, "."), authErr(err))
				}
				tbl, err := f.cat.LoadTable(ctx, id)
				if errors.Is(err, catalog.ErrNoSuchTable) {
					continue
				}
				if err != nil {
					return fmt.Errorf("load table %s: %w", strings.Join(id, "."), err)
				}
				if root, ok := strings.CutPrefix(tbl.Location(), f.location+"/"); ok && root != "" {
					roots = append(roots, root)
				}
			}
		}
		children, err := f.cat.ListNamespaces(ctx, ns)
		if errors.Is(err, catalog.ErrNoSuchNamespace) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list namespaces under %q: %w", strings.Join(ns, "."), err)
		}
		for _, c := range children {
			if len(c) <= len(ns) {
				continue
			}
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(start); err != nil {
		return nil, err
	}
	slices.Sort(roots)
	return slices.Compact(roots), nil
}

// Marker returns "": the catalog, not an object in the bucket, says
// whether a table exists.
func (f *Format) Marker() string { return "" }

// Drop drops the table at root from the catalog, without deleting its
// files (an operator's DROP TABLE). Tests use it to delete a table behind
// its writers' backs.
func (f *Format) Drop(ctx context.Context, root string) error {
	err := f.cat.DropTable(ctx, f.Identifier(root))
	if err != nil && !errors.Is(err, catalog.ErrNoSuchTable) {
		return fmt.Errorf("drop table %s: %w", root, err)
	}
	return nil
}

type nsKind int

const (
	nsLiteral nsKind = iota
	nsParent
	nsParentJoined
)

type nsLevel struct {
	kind nsKind
	lit  string
}

// ValidateNamespace reports whether tmpl is a namespace template (see
// Config.Namespace).
func ValidateNamespace(tmpl string) error {
	_, err := parseNamespace(tmpl)
	return err
}

// parseNamespace parses a namespace template (see Config.Namespace).
func parseNamespace(tmpl string) ([]nsLevel, error) {
	if tmpl == "" {
		tmpl = DefaultNamespace
	}
	var out []nsLevel
	for _, l := range strings.Split(tmpl, ".") {
		switch {
		case l == "{parent}":
			out = append(out, nsLevel{kind: nsParent})
		case l == "{parent_}":
			out = append(out, nsLevel{kind: nsParentJoined})
		case l == "":
			return nil, fmt.Errorf("catalog namespace %q has an empty level", tmpl)
		case strings.ContainsAny(l, "{}/"):
			return nil, fmt.Errorf("catalog namespace %q: level %q is neither a name nor {parent} or {parent_}", tmpl, l)
		default:
			out = append(out, nsLevel{lit: l})
		}
	}
	return out, nil
}

// timeoutTransport bounds each catalog request, reading its body
// included, by timeout.
type timeoutTransport struct {
	base    http.RoundTripper
	timeout time.Duration
}

func (t *timeoutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(req.Context(), t.timeout)
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
