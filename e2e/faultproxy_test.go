package e2e

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// faultProxy is a reverse proxy in front of the S3 server that fails a
// share of requests: with a 500, 503 or 429 before the request reaches the
// server, by closing the connection without an answer, or by forwarding the
// request (so the write happens) and holding the answer past the client's
// timeout.
type faultProxy struct {
	srv      *httptest.Server
	rate     float64
	delay    time.Duration
	off      atomic.Bool
	mu       sync.Mutex
	rng      *rand.Rand
	counts   map[string]int
	requests atomic.Int64
}

func newFaultProxy(t *testing.T, target string, seed uint64, rate float64, delay time.Duration) *faultProxy {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	p := &faultProxy{rate: rate, delay: delay, rng: rand.New(rand.NewPCG(seed, 3)), counts: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = nil
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		switch fault := p.pick(); fault {
		case "":
			rp.ServeHTTP(w, r)
		case "500", "503", "429":
			code := map[string]int{"500": 500, "503": 503, "429": 429}[fault]
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(code)
			fmt.Fprintf(w, "<Error><Code>%s</Code><Message>injected</Message></Error>", map[int]string{500: "InternalError", 503: "SlowDown", 429: "SlowDown"}[code])
		case "close":
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		case "delay":
			// The write reaches the server; its answer arrives after the
			// client gave up, so the client cannot know it happened.
			rec := httptest.NewRecorder()
			rp.ServeHTTP(rec, r)
			select {
			case <-time.After(p.delay):
			case <-r.Context().Done():
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *faultProxy) pick() string {
	if p.off.Load() {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rng.Float64() >= p.rate {
		return ""
	}
	f := []string{"500", "503", "429", "close", "delay"}[p.rng.IntN(5)]
	p.counts[f]++
	return f
}

func (p *faultProxy) URL() string { return p.srv.URL }

// disable lets every request through from now on.
func (p *faultProxy) disable() { p.off.Store(true) }

func (p *faultProxy) injected() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.counts {
		n += c
	}
	return n
}

func (p *faultProxy) summary() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("%d requests, faults %v", p.requests.Load(), p.counts)
}
