package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/committer/iceberg"
	"github.com/evodb/sink/objstore"
)

// TableFormatIceberg is Config.TableFormat for Iceberg tables.
const TableFormatIceberg = "iceberg"

// countingProxy forwards every request to one HTTP server and counts
// them by method. The Iceberg runs put one in front of the S3 server and
// one in front of the catalog: the sink's data files, iceberg-go's
// manifests and the catalog's commits all go through them, which the
// sink's own store metrics (data files only) do not see.
type countingProxy struct {
	name string
	srv  *http.Server
	ln   net.Listener
	mu   sync.Mutex
	n    map[string]int64
}

func startCountingProxy(name, target string) (*countingProxy, error) {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%s proxy: %q is not a URL", name, target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("%s proxy: %w", name, err)
	}
	p := &countingProxy{name: name, ln: ln, n: map[string]int64{}}
	// Keep the Host the client signed (S3 signatures cover it); the
	// proxy only relays bytes.
	// The client keeps the target's path (URL), so only scheme and host
	// change.
	host := &url.URL{Scheme: u.Scheme, Host: u.Host}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(host)
		pr.Out.Host = pr.In.Host
	}}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.n[p.name+" "+strings.ToLower(r.Method)]++
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// URL is the proxy's base URL, with target's path.
func (p *countingProxy) URL(target string) string {
	u, _ := url.Parse(target)
	u.Scheme, u.Host = "http", p.ln.Addr().String()
	return strings.TrimSuffix(u.String(), "/")
}

// counts returns the requests so far by "<name> <method>".
func (p *countingProxy) counts() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int64, len(p.n))
	for k, v := range p.n {
		out[k] = v
	}
	return out
}

func (p *countingProxy) close() { _ = p.srv.Close() }

// icebergRun is what an Iceberg run adds to a run: the proxies and the
// child's store and catalog URLs through them.
type icebergRun struct {
	s3, catalog *countingProxy
	storeURL    string
	catalogURL  string
	namespace   string
	cfg         iceberg.Config
}

// startIceberg checks an Iceberg run's settings and starts its proxies.
// The S3 server must be plain HTTP (the proxies relay without TLS).
func startIceberg(cfg Config, storeURL, prefix string) (*icebergRun, error) {
	if len(cfg.SinkCommand) == 0 {
		return nil, fmt.Errorf("iceberg tables: the sink must run as a child process (-process)")
	}
	if cfg.CatalogURI == "" {
		return nil, fmt.Errorf("iceberg tables: no catalog URI")
	}
	s3, err := objstore.ParseS3URL(storeURL, cfg.S3)
	if err != nil || !strings.HasPrefix(s3.Endpoint, "http://") {
		return nil, fmt.Errorf("iceberg tables: the store must be s3:// with an http:// endpoint (%v)", err)
	}
	r := &icebergRun{namespace: prefix}
	if r.s3, err = startCountingProxy("s3", s3.Endpoint); err != nil {
		return nil, err
	}
	if r.catalog, err = startCountingProxy("catalog", cfg.CatalogURI); err != nil {
		r.s3.close()
		return nil, err
	}
	r.storeURL = strings.Replace(storeURL, url.QueryEscape(s3.Endpoint), url.QueryEscape(r.s3.URL(s3.Endpoint)), 1)
	r.storeURL = strings.Replace(r.storeURL, s3.Endpoint, r.s3.URL(s3.Endpoint), 1)
	r.catalogURL = r.catalog.URL(cfg.CatalogURI)
	loc := "s3://" + s3.Bucket
	if p := strings.Trim(s3.Prefix, "/"); p != "" {
		loc += "/" + p
	}
	r.cfg = iceberg.Config{
		URI: cfg.CatalogURI, Namespace: prefix, Location: loc + "/" + prefix,
		S3: iceberg.S3Config{Endpoint: s3.Endpoint, Region: s3.Region, AccessKeyID: s3.AccessKeyID,
			SecretKey: s3.SecretAccessKey, SessionToken: s3.SessionToken, PathStyle: s3.PathStyle},
	}
	return r, nil
}

func (r *icebergRun) close() {
	r.s3.close()
	r.catalog.close()
}

// requests are the S3 and catalog requests so far.
func (r *icebergRun) requests() map[string]int64 {
	out := r.s3.counts()
	for k, v := range r.catalog.counts() {
		out[k] = v
	}
	return out
}

// commits counts the run's table commits as Delta's are counted: every
// snapshot, plus one per table for its creation (Delta's version 0).
func (r *icebergRun) commits(ctx context.Context) (int, error) {
	f, err := iceberg.NewFormat(ctx, r.cfg, iceberg.Options{})
	if err != nil {
		return 0, err
	}
	roots, err := f.ListTables(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, root := range roots {
		s, err := f.Open(root, committer.Options{}).Snapshot(ctx)
		if err != nil {
			return 0, err
		}
		n += int(s.Version) + 1
	}
	return n, nil
}
