package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/committer/iceberg"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/sink"
)

// catalogConfig is the Iceberg REST catalog the tables whose format is
// iceberg live in.
type catalogConfig struct {
	// URI is the catalog's base URL.
	URI string `yaml:"uri"`
	// Warehouse is the warehouse to ask the catalog for (R2 Data
	// Catalog: "<account-id>_<bucket>").
	Warehouse string `yaml:"warehouse"`
	// Prefix is the catalog's URL prefix, when its /v1/config gives none.
	Prefix string `yaml:"prefix"`
	// Namespace is the namespace template: '.'-separated levels, each a
	// name, {parent} (the table path's leading segments, one level each)
	// or {parent_} (them joined by '_' as one level). Default {parent};
	// a table path of one segment goes to namespace "default".
	Namespace string `yaml:"namespace"`
	// RequestTimeout bounds one catalog request; default 30s.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	Auth           struct {
		// Token is a static bearer token (R2 Data Catalog: a Cloudflare
		// API token with R2 Data Catalog permissions).
		Token string `yaml:"token"`
		// OAuth2 client credentials, exchanged at TokenURI (default the
		// catalog's /v1/oauth/tokens) for Scope.
		OAuth2 struct {
			ClientID     string `yaml:"client_id"`
			ClientSecret string `yaml:"client_secret"`
			TokenURI     string `yaml:"token_uri"`
			Scope        string `yaml:"scope"`
		} `yaml:"oauth2"`
	} `yaml:"auth"`
	TLS struct {
		// CAFile is a PEM bundle of CAs to trust besides the system's.
		CAFile string `yaml:"ca_file"`
	} `yaml:"tls"`
}

// usesIceberg reports whether any table's format is iceberg.
func (c *fileConfig) usesIceberg() bool {
	if c.Tables.Default.Format == sink.FormatIceberg {
		return true
	}
	for name := range c.Tables.Overrides {
		if c.TableConfig(name).Format == sink.FormatIceberg {
			return true
		}
	}
	return false
}

// validateCatalog reports what the catalog section lacks when a table is
// Iceberg, naming the keys.
func (c *fileConfig) validateCatalog() error {
	cat := c.Catalog
	set := cat.URI != "" || cat.Warehouse != "" || cat.Auth.Token != "" || cat.Auth.OAuth2.ClientID != ""
	if !c.usesIceberg() && !set {
		return nil
	}
	var errs []error
	if c.usesIceberg() && cat.URI == "" {
		errs = append(errs, errors.New("catalog.uri: required when a table's format is iceberg (the Iceberg REST catalog's URL)"))
	}
	if cat.URI != "" {
		if u, err := url.Parse(cat.URI); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("catalog.uri: %q is not an http(s) URL", cat.URI))
		}
	}
	o := cat.Auth.OAuth2
	if cat.Auth.Token != "" && (o.ClientID != "" || o.ClientSecret != "") {
		errs = append(errs, errors.New("catalog.auth: set token or oauth2, not both"))
	}
	if (o.ClientID == "") != (o.ClientSecret == "") {
		errs = append(errs, errors.New("catalog.auth.oauth2: client_id and client_secret must be set together"))
	}
	if err := iceberg.ValidateNamespace(cat.Namespace); err != nil {
		errs = append(errs, fmt.Errorf("catalog.namespace: %w", err))
	}
	if cat.RequestTimeout < 0 {
		errs = append(errs, fmt.Errorf("catalog.request_timeout: %s is negative", cat.RequestTimeout))
	}
	if _, err := c.icebergConfig(); err != nil {
		errs = append(errs, err)
	}
	if c.usesIceberg() && !strings.HasPrefix(c.Store.URL, "s3://") {
		errs = append(errs, fmt.Errorf("store.url: Iceberg tables need an s3:// store (their catalog reads the files by URI), not %q", c.Store.URL))
	}
	return errors.Join(errs...)
}

// icebergConfig builds the Iceberg format's configuration: the catalog,
// and the store's bucket and prefix as the tables' location.
func (c *fileConfig) icebergConfig() (iceberg.Config, error) {
	cat := c.Catalog
	ic := iceberg.Config{
		URI:            cat.URI,
		Warehouse:      cat.Warehouse,
		Prefix:         cat.Prefix,
		Namespace:      cat.Namespace,
		RequestTimeout: cat.RequestTimeout,
		Token:          cat.Auth.Token,
		OAuthURI:       cat.Auth.OAuth2.TokenURI,
		Scope:          cat.Auth.OAuth2.Scope,
	}
	if cat.Auth.OAuth2.ClientID != "" {
		ic.Credential = cat.Auth.OAuth2.ClientID + ":" + cat.Auth.OAuth2.ClientSecret
	}
	if cat.TLS.CAFile != "" {
		pem, err := os.ReadFile(cat.TLS.CAFile)
		if err != nil {
			return ic, fmt.Errorf("catalog.tls.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return ic, fmt.Errorf("catalog.tls.ca_file: %s holds no PEM certificate", cat.TLS.CAFile)
		}
		ic.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if strings.HasPrefix(c.Store.URL, "s3://") {
		s3, err := objstore.ParseS3URL(c.Store.URL, c.Store.S3)
		if err != nil {
			return ic, fmt.Errorf("store.url: %w", err)
		}
		ic.Location = "s3://" + s3.Bucket
		if p := strings.Trim(s3.Prefix, "/"); p != "" {
			ic.Location += "/" + p
		}
		ic.S3 = iceberg.S3Config{
			Endpoint: s3.Endpoint, Region: s3.Region,
			AccessKeyID: s3.AccessKeyID, SecretKey: s3.SecretAccessKey, SessionToken: s3.SessionToken,
			PathStyle: s3.PathStyle,
		}
	}
	return ic, nil
}

// openFormat returns the table format of the store b: Delta Lake (a
// checkpoint every checkpointInterval commits, 0 for the format's
// default), and with a catalog configured also Iceberg, each table in the
// format its configuration names. It is the only place the command names
// table formats; cfg nil means Delta alone (inspect of a bare store).
func openFormat(ctx context.Context, cfg *fileConfig, b objstore.Bucket, checkpointInterval int) (committer.Format, error) {
	d := delta.NewFormat(b, delta.Options{CheckpointInterval: checkpointInterval})
	if cfg == nil || cfg.Catalog.URI == "" {
		return d, nil
	}
	ic, err := cfg.icebergConfig()
	if err != nil {
		return nil, err
	}
	ice, err := iceberg.NewFormat(ctx, ic, iceberg.Options{Instance: cfg.Instance})
	if err != nil {
		return nil, err
	}
	def := cfg.Tables.Default.Format
	if def == "" {
		def = sink.FormatDelta
	}
	return &formatRouter{def: def, formats: map[string]committer.Format{sink.FormatDelta: d, sink.FormatIceberg: ice}}, nil
}

// formatRouter serves tables of several formats: a table opened with
// committer.Options.Format is in that format; one opened without (by a
// command given a table path) is in the first format that holds it, the
// default format first.
type formatRouter struct {
	def     string
	formats map[string]committer.Format
}

func (r *formatRouter) order() []string {
	out := []string{r.def}
	for _, n := range []string{sink.FormatDelta, sink.FormatIceberg} {
		if n != r.def {
			out = append(out, n)
		}
	}
	return out
}

// Open returns the table at root in the format o names, or a table that
// finds its format on first use.
func (r *formatRouter) Open(root string, o committer.Options) committer.Table {
	if f, ok := r.formats[o.Format]; ok {
		return f.Open(root, o)
	}
	p := &probedTable{root: root}
	for _, n := range r.order() {
		p.tables = append(p.tables, r.formats[n].Open(root, o))
	}
	return p
}

// ListTables returns the tables of every format, sorted.
func (r *formatRouter) ListTables(ctx context.Context) ([]string, error) {
	var out []string
	for _, n := range r.order() {
		roots, err := r.formats[n].ListTables(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s tables: %w", n, err)
		}
		out = append(out, roots...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Marker is Delta's: Iceberg tables keep no marker in the bucket, so only
// Delta tables can be found nested in one another by it.
func (r *formatRouter) Marker() string { return r.formats[sink.FormatDelta].Marker() }

// probedTable is a table whose format is found on first use: the first
// of tables whose Snapshot does not fail with ErrNoTable. Create, before
// any format holds the table, creates it in the first (the default).
type probedTable struct {
	root   string
	tables []committer.Table

	mu struct {
		sync.Mutex
		found committer.Table
	}
}

func (p *probedTable) resolve(ctx context.Context) (committer.Table, *committer.Snapshot, error) {
	p.mu.Lock()
	found := p.mu.found
	p.mu.Unlock()
	if found != nil {
		return found, nil, nil
	}
	var firstErr error
	for _, t := range p.tables {
		s, err := t.Snapshot(ctx)
		if err == nil {
			p.mu.Lock()
			p.mu.found = t
			p.mu.Unlock()
			return t, s, nil
		}
		if !errors.Is(err, committer.ErrNoTable) {
			return nil, nil, err
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, nil, firstErr
}

func (p *probedTable) Root() string { return p.root }

func (p *probedTable) Snapshot(ctx context.Context) (*committer.Snapshot, error) {
	t, s, err := p.resolve(ctx)
	if err != nil || s != nil {
		return s, err
	}
	return t.Snapshot(ctx)
}

func (p *probedTable) Update(ctx context.Context, s *committer.Snapshot) (*committer.Snapshot, error) {
	t, fresh, err := p.resolve(ctx)
	if err != nil || fresh != nil {
		return fresh, err
	}
	return t.Update(ctx, s)
}

func (p *probedTable) Create(ctx context.Context, md committer.Metadata) (*committer.Snapshot, error) {
	t, s, err := p.resolve(ctx)
	if errors.Is(err, committer.ErrNoTable) {
		return p.tables[0].Create(ctx, md)
	}
	if err != nil || s != nil {
		return s, err
	}
	return t.Create(ctx, md)
}

func (p *probedTable) Commit(ctx context.Context, c committer.Commit) (*committer.CommitResult, error) {
	t, _, err := p.resolve(ctx)
	if err != nil {
		return nil, err
	}
	return t.Commit(ctx, c)
}

// Removed asks the table's format; a snapshot is only ever had from a
// resolved table.
func (p *probedTable) Removed(s *committer.Snapshot, path string) (committer.Remove, bool) {
	p.mu.Lock()
	t := p.mu.found
	p.mu.Unlock()
	if m, ok := t.(committer.Maintainer); ok {
		return m.Removed(s, path)
	}
	return committer.Remove{}, false
}

// Removals asks the table's format, as Removed does; false when the
// format cannot list the removals a snapshot keeps.
func (p *probedTable) Removals(s *committer.Snapshot) (iter.Seq[committer.Remove], bool) {
	p.mu.Lock()
	t := p.mu.found
	p.mu.Unlock()
	if l, ok := t.(interface {
		Removals(*committer.Snapshot) (iter.Seq[committer.Remove], bool)
	}); ok {
		return l.Removals(s)
	}
	return nil, false
}

func (p *probedTable) ExpireHistory(ctx context.Context, retention time.Duration, dryRun bool, now time.Time) (committer.ExpireResult, error) {
	t, _, err := p.resolve(ctx)
	if err != nil {
		return committer.ExpireResult{Oldest: -1, DryRun: dryRun}, err
	}
	m, ok := t.(committer.Maintainer)
	if !ok {
		return committer.ExpireResult{Oldest: -1, DryRun: dryRun}, fmt.Errorf("table %s: its format keeps no history to expire", p.root)
	}
	return m.ExpireHistory(ctx, retention, dryRun, now)
}

var (
	_ committer.Format     = (*formatRouter)(nil)
	_ committer.Table      = (*probedTable)(nil)
	_ committer.Maintainer = (*probedTable)(nil)
)
