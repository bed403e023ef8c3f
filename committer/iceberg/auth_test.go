package iceberg

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"testing"

	"github.com/apache/iceberg-go/catalog/rest"
	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/internal/tlstest"
)

// authProxy puts what the test catalog lacks in front of it: HTTPS and
// authentication. It requires "Authorization: Bearer <token>" on every
// request, token being the static one or the one it issues at
// /v1/oauth/tokens for the client credentials clientID:secret, and
// passes authenticated requests to the real catalog behind it.
type authProxy struct {
	clientID, secret string
	next             http.Handler
	mu               struct {
		sync.Mutex
		tokens map[string]bool
	}
}

func newAuthProxy(t *testing.T, target, token, clientID, secret string) (*authProxy, *httptest.Server, tlstest.Files) {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	p := &authProxy{clientID: clientID, secret: secret, next: &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(u); r.Out.Host = u.Host },
	}}
	p.mu.tokens = map[string]bool{token: true}
	files := tlstest.New(t)
	srv := httptest.NewUnstartedServer(p)
	srv.TLS = files.ServerConfig(t, false)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return p, srv, files
}

// revoke makes every token the proxy accepted invalid.
func (p *authProxy) revoke() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.mu.tokens)
}

func (p *authProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/oauth/tokens" {
		p.issue(w, r)
		return
	}
	const prefix = "Bearer "
	h := r.Header.Get("Authorization")
	p.mu.Lock()
	ok := len(h) > len(prefix) && h[:len(prefix)] == prefix && p.mu.tokens[h[len(prefix):]]
	p.mu.Unlock()
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
			"message": "not authorized", "type": "NotAuthorizedException", "code": http.StatusUnauthorized}})
		return
	}
	p.next.ServeHTTP(w, r)
}

// issue answers an OAuth2 client-credentials token request, the
// credential in the Basic header or the form.
func (p *authProxy) issue(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	w.Header().Set("Content-Type", "application/json")
	if r.PostFormValue("grant_type") != "client_credentials" || id != p.clientID || secret != p.secret {
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client", "error_description": "unknown client credentials"})
		return
	}
	tok := "issued-" + id
	p.mu.Lock()
	p.mu.tokens[tok] = true
	p.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "bearer",
		"issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "expires_in": 3600})
}

func caPool(t *testing.T, path string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(path)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// TestCatalogAuth runs the catalog over HTTPS with a private CA and
// authentication: a static bearer token and OAuth2 client credentials
// work, tables are created and written through them; a wrong token, a
// wrong credential or an untrusted CA fail when the format is built,
// with errors that say so; a token revoked while the sink runs fails a
// commit at once instead of retrying it as an unknown outcome.
func TestCatalogAuth(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	proxy, srv, files := newAuthProxy(t, env.uri, "static-token", "sink", "s3cret")

	connect := func(t *testing.T, edit func(*Config)) (*Format, error) {
		cfg, prefix := env.config(t)
		t.Cleanup(func() { env.dropObjects(t, prefix) })
		cfg.URI = srv.URL
		cfg.TLS = caPool(t, files.CA)
		edit(&cfg)
		return NewFormat(ctx, cfg, Options{MaxCommitAttempts: 5})
	}
	write := func(t *testing.T, f *Format) committer.Table {
		tbl := f.Open(testRoot, committer.Options{Instance: "test"})
		_, err := tbl.Create(ctx, committer.Metadata{Name: "orders", Schema: kafkaSchema(t)})
		require.NoError(t, err)
		_, err = tbl.Commit(ctx, committer.Commit{Adds: []committer.Add{statsAdd("data/a.parquet", 1, 2)}, ReadVersion: -1,
			Txns: []committer.TxnCondition{{AppID: "app", FirstOffset: 0, LastOffset: 1}}})
		require.NoError(t, err)
		s, err := tbl.Snapshot(ctx)
		require.NoError(t, err)
		require.Contains(t, s.Files, "data/a.parquet")
		return tbl
	}

	t.Run("token", func(t *testing.T) {
		f, err := connect(t, func(c *Config) { c.Token = "static-token" })
		require.NoError(t, err)
		write(t, f)
	})
	t.Run("credential", func(t *testing.T) {
		f, err := connect(t, func(c *Config) { c.Credential = "sink:s3cret" })
		require.NoError(t, err)
		write(t, f)
	})
	t.Run("wrong token", func(t *testing.T) {
		_, err := connect(t, func(c *Config) { c.Token = "stale-token" })
		require.ErrorIs(t, err, rest.ErrUnauthorized)
		require.ErrorIs(t, err, committer.ErrAccessDenied)
		require.ErrorContains(t, err, "connect to Iceberg REST catalog")
	})
	t.Run("no token", func(t *testing.T) {
		_, err := connect(t, func(c *Config) {})
		require.ErrorIs(t, err, rest.ErrUnauthorized)
	})
	t.Run("wrong credential", func(t *testing.T) {
		_, err := connect(t, func(c *Config) { c.Credential = "sink:guess" })
		require.ErrorIs(t, err, rest.ErrOAuthError)
		require.ErrorIs(t, err, committer.ErrAccessDenied)
		require.ErrorContains(t, err, "invalid_client")
	})
	t.Run("untrusted CA", func(t *testing.T) {
		_, err := connect(t, func(c *Config) { c.Token = "static-token"; c.TLS = caPool(t, files.OtherCA) })
		require.ErrorContains(t, err, "certificate signed by unknown authority")
	})
	t.Run("revoked", func(t *testing.T) {
		f, err := connect(t, func(c *Config) { c.Token = "static-token" })
		require.NoError(t, err)
		tbl := write(t, f)
		proxy.revoke()
		_, err = tbl.Commit(ctx, committer.Commit{Adds: []committer.Add{statsAdd("data/b.parquet", 3, 4)}, ReadVersion: -1})
		require.ErrorIs(t, err, committer.ErrAccessDenied)
		require.NotErrorIs(t, err, committer.ErrTooManyAttempts)
	})
}
