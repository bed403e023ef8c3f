package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"

	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/sink"
)

// pollEvery is how often progress is sampled; it bounds the error of a
// measured duration.
const pollEvery = 5 * time.Millisecond

// A child sink's /status is read at an interval that shrinks as the run
// nears its end: half the time the rows left should take at the rate so
// far, within these bounds. Each read costs the child CPU, which is
// charged to the sink (a fixed 25 ms cost it 2 % of its CPU); this way a
// run of seconds takes a dozen reads or so and its end is still seen
// within minChildPoll. Until the first rows are committed there is no
// rate to go by, and the end cannot be near: the reads wait the longest
// interval. (They had waited a fifth of it, and a run whose tables all
// flush by age after a 60 s interval spent about 1,200 reads, a third of a
// second of the child's CPU, charged to the sink, on a sink doing nothing.)
const (
	minChildPoll = 5 * time.Millisecond
	maxChildPoll = 250 * time.Millisecond
)

// nextPoll returns how long to wait before the next read, done of rows
// having taken elapsed.
func nextPoll(done, rows int64, elapsed time.Duration) time.Duration {
	if done <= 0 {
		return maxChildPoll
	}
	left := time.Duration(float64(elapsed) * float64(rows-done) / float64(done))
	return min(max(left/2, minChildPoll), maxChildPoll)
}

// sinkRunner is a running sink, in this process or a child.
type sinkRunner interface {
	// measure waits until the sink is ready, then times it until rows
	// records are committed, returning the throughput and peak RSS.
	measure(ctx context.Context, rows int, input int64) (Throughput, int64, error)
	// measureMore times the sink, already running, from the call of
	// produce, which sends rows more records of input bytes (nil: they
	// are already in the topic), until total records are committed.
	measureMore(ctx context.Context, produce func() error, total, rows int, input int64) (Throughput, error)
	// committed returns the rows committed so far.
	committed() (int64, error)
	// stop shuts the sink down gracefully; later calls return nil.
	stop() error
	// storeRequests returns the store requests the sink has made since it
	// started, by operation (put, get, head, list, …).
	storeRequests(ctx context.Context) (map[string]int64, error)
}

// requestsMetric is the objstore counter of store requests by operation.
const requestsMetric = "objstore_requests_total"

// parseRequests reads requestsMetric from a Prometheus text exposition.
func parseRequests(text string) map[string]int64 {
	out := map[string]int64{}
	for line := range strings.Lines(text) {
		rest, ok := strings.CutPrefix(line, requestsMetric+`{operation="`)
		if !ok {
			continue
		}
		op, val, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[op] = int64(v)
		}
	}
	return out
}

// waitFor polls cond until it holds, ctx ends or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	return waitEvery(ctx, func() time.Duration { return pollEvery }, timeout, what, cond)
}

// waitEvery is waitFor checking cond again after every() each time.
func waitEvery(ctx context.Context, every func() time.Duration, timeout time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not done after %s", what, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every()):
		}
	}
}

// measureTimeout bounds one throughput pass.
const measureTimeout = 30 * time.Minute

// inProcess runs the sink in this process.
type inProcess struct {
	s    *sink.Sink
	rows atomic.Int64
	// reg holds the store's request counters.
	reg     *prometheus.Registry
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

func startInProcess(ctx context.Context, cfg sink.Config, bucket objstore.Bucket) (*inProcess, error) {
	r := &inProcess{done: make(chan error, 1), reg: prometheus.NewRegistry()}
	bucket = objstore.WithMetrics(bucket, r.reg)
	s, err := sink.New(cfg, bucket, delta.NewFormat(bucket, delta.Options{CheckpointInterval: cfg.Commit.CheckpointInterval}), sink.WithRegisterer(prometheus.NewRegistry()), sink.WithCommitHook(func(ev sink.CommitEvent) {
		if len(ev.FilesRemoved) == 0 {
			r.rows.Add(ev.Rows)
		}
	}))
	if err != nil {
		return nil, err
	}
	r.s = s
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel = cancel
	go func() { r.done <- s.Run(rctx) }()
	return r, nil
}

func (r *inProcess) committed() (int64, error) {
	select {
	case err := <-r.done:
		r.stopped = true
		if err == nil {
			err = errors.New("sink stopped")
		}
		return 0, fmt.Errorf("sink: %w", err)
	default:
	}
	return r.rows.Load(), nil
}

func (r *inProcess) measure(ctx context.Context, rows int, input int64) (Throughput, int64, error) {
	err := waitFor(ctx, time.Minute, "sink ready", func() (bool, error) {
		_, err := r.committed()
		return r.s.Ready(), err
	})
	if err != nil {
		return Throughput{}, 0, err
	}
	resetPeakRSS()
	tp, err := r.measureMore(ctx, nil, rows, rows, input)
	if err != nil {
		return Throughput{}, 0, err
	}
	return tp, peakRSS("self"), nil
}

func (r *inProcess) measureMore(ctx context.Context, produce func() error, total, rows int, input int64) (Throughput, error) {
	start, cpu0 := time.Now(), selfCPU()
	if produce != nil {
		if err := produce(); err != nil {
			return Throughput{}, err
		}
	}
	err := waitFor(ctx, measureTimeout, "sink commits", func() (bool, error) {
		n, err := r.committed()
		return n >= int64(total), err
	})
	if err != nil {
		return Throughput{}, err
	}
	return newThroughput(rows, input, time.Since(start), selfCPU()-cpu0), nil
}

func (r *inProcess) storeRequests(context.Context) (map[string]int64, error) {
	families, err := r.reg.Gather()
	if err != nil {
		return nil, fmt.Errorf("gather store metrics: %w", err)
	}
	out := map[string]int64{}
	for _, f := range families {
		if f.GetName() != requestsMetric {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "operation" {
					out[l.GetValue()] = int64(m.GetCounter().GetValue())
				}
			}
		}
	}
	return out, nil
}

func (r *inProcess) stop() error {
	if r.stopped {
		return nil
	}
	r.stopped = true
	r.cancel()
	return <-r.done
}

// child runs the sink as a child process, so its CPU time and peak RSS
// are its own.
type child struct {
	cmd     *exec.Cmd
	addr    string
	logPath string
	exited  chan error
	stopped bool
}

// childConfig is the configuration file of `sink run`.
type childConfig struct {
	sink.Config `yaml:",inline"`
	Store       struct {
		URL string            `yaml:"url"`
		S3  objstore.S3Config `yaml:"s3"`
	} `yaml:"store"`
	Log struct {
		Level string `yaml:"level"`
	} `yaml:"log"`
	Catalog *struct {
		URI       string `yaml:"uri"`
		Namespace string `yaml:"namespace"`
	} `yaml:"catalog,omitempty"`
}

func startChild(ctx context.Context, cfg Config, sc sink.Config, storeURL, prefix string, ice *icebergRun) (*child, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("pick a port for the sink: %w", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var cc childConfig
	cc.Config = sc
	cc.HTTP.Addr = addr
	cc.Store.S3 = cfg.S3
	if cc.Store.URL, err = childStoreURL(storeURL, prefix); err != nil {
		return nil, err
	}
	cc.Log.Level = "warn"
	if ice != nil {
		cc.Catalog = &struct {
			URI       string `yaml:"uri"`
			Namespace string `yaml:"namespace"`
		}{ice.catalogURL, ice.namespace}
	}
	b, err := yaml.Marshal(&cc)
	if err != nil {
		return nil, fmt.Errorf("render sink config: %w", err)
	}
	cfgPath := filepath.Join(cfg.TempDir, prefix+".yaml")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		return nil, fmt.Errorf("write sink config: %w", err)
	}
	logPath := filepath.Join(cfg.TempDir, prefix+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("sink log: %w", err)
	}
	args := append(append([]string{}, cfg.SinkCommand[1:]...), "-c", cfgPath)
	cmd := exec.CommandContext(context.WithoutCancel(ctx), cfg.SinkCommand[0], args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start sink process: %w", err)
	}
	c := &child{cmd: cmd, addr: addr, logPath: logPath, exited: make(chan error, 1)}
	go func() {
		c.exited <- cmd.Wait()
		logFile.Close()
	}()
	return c, nil
}

// childStoreURL points the child at the run's own prefix of the store.
func childStoreURL(storeURL, prefix string) (string, error) {
	switch {
	case len(storeURL) > 7 && storeURL[:7] == "file://":
		return storeURL + "/" + prefix, nil
	case len(storeURL) > 5 && storeURL[:5] == "s3://":
		path, query := storeURL, ""
		for i := range storeURL {
			if storeURL[i] == '?' {
				path, query = storeURL[:i], storeURL[i:]
				break
			}
		}
		return path + "/" + prefix + query, nil
	}
	return "", fmt.Errorf("store %s: a child sink needs a file:// or s3:// store", redact(storeURL))
}

func (c *child) alive() error {
	select {
	case err := <-c.exited:
		c.stopped = true
		log, _ := os.ReadFile(c.logPath)
		return fmt.Errorf("sink process exited (%v): %s", err, tail(log, 2000))
	default:
		return nil
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func (c *child) status() (sink.Status, error) {
	var st sink.Status
	resp, err := http.Get("http://" + c.addr + "/status?summary=true")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

func (c *child) storeRequests(ctx context.Context) (map[string]int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sink metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("sink metrics: %w", err)
	}
	return parseRequests(string(body)), nil
}

func (c *child) committed() (int64, error) {
	if err := c.alive(); err != nil {
		return 0, err
	}
	st, err := c.status()
	if err != nil {
		return 0, fmt.Errorf("sink status: %w", err)
	}
	return st.RowsWritten, nil
}

func (c *child) measure(ctx context.Context, rows int, input int64) (Throughput, int64, error) {
	err := waitFor(ctx, time.Minute, "sink ready", func() (bool, error) {
		if err := c.alive(); err != nil {
			return false, err
		}
		resp, err := http.Get("http://" + c.addr + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return Throughput{}, 0, err
	}
	tp, err := c.measureMore(ctx, nil, rows, rows, input)
	if err != nil {
		return Throughput{}, 0, err
	}
	return tp, peakRSS(strconv.Itoa(c.cmd.Process.Pid)), nil
}

// measureMore, with produce nil, is measure's timing once the sink is
// ready.
func (c *child) measureMore(ctx context.Context, produce func() error, total, rows int, input int64) (Throughput, error) {
	pid := c.cmd.Process.Pid
	start := time.Now()
	cpu0, err := procCPU(pid)
	if err != nil {
		return Throughput{}, err
	}
	if produce != nil {
		if err := produce(); err != nil {
			return Throughput{}, err
		}
	}
	var done int64
	from := int64(total - rows)
	err = waitEvery(ctx, func() time.Duration { return nextPoll(max(done-from, 0), int64(rows), time.Since(start)) },
		measureTimeout, "sink commits", func() (bool, error) {
			var err error
			done, err = c.committed()
			return done >= int64(total), err
		})
	if err != nil {
		return Throughput{}, err
	}
	wall := time.Since(start)
	cpu1, err := procCPU(pid)
	if err != nil {
		return Throughput{}, err
	}
	return newThroughput(rows, input, wall, cpu1-cpu0), nil
}

func (c *child) stop() error {
	if c.stopped {
		return nil
	}
	c.stopped = true
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.exited:
		if err != nil {
			log, _ := os.ReadFile(c.logPath)
			return fmt.Errorf("sink process: %w: %s", err, tail(log, 2000))
		}
		return nil
	case <-time.After(time.Minute):
		_ = c.cmd.Process.Kill()
		return errors.New("sink process did not stop within a minute of SIGTERM")
	}
}

// commitWatcher collects the sink's commit notifications.
type commitWatcher struct {
	cl     *kgo.Client
	mu     sync.Mutex
	events []sink.CommitEvent
	done   chan struct{}
}

func watchCommits(ctx context.Context, brokers []string, topic string) (*commitWatcher, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	w := &commitWatcher{cl: cl, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			fs := cl.PollFetches(ctx)
			if fs.IsClientClosed() || ctx.Err() != nil {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				var ev sink.CommitEvent
				if json.Unmarshal(r.Value, &ev) == nil {
					w.mu.Lock()
					w.events = append(w.events, ev)
					w.mu.Unlock()
				}
			})
		}
	}()
	return w, nil
}

func (w *commitWatcher) snapshot() []sink.CommitEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]sink.CommitEvent(nil), w.events...)
}

func (w *commitWatcher) close() {
	w.cl.Close()
	<-w.done
}

// storeStats lists what the sink wrote.
func storeStats(ctx context.Context, b objstore.Bucket, records int, input int64) (Store, error) {
	var st Store
	err := b.List(ctx, "", func(o objstore.ObjectInfo) error {
		st.Objects++
		st.Bytes += o.Size
		if isCommitKey(o.Key) {
			st.Commits++
		}
		if filepath.Ext(o.Key) == ".parquet" && !isLogKey(o.Key) {
			st.DataFiles++
			st.DataBytes += o.Size
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("list store: %w", err)
	}
	st.BytesPerInputByte = ratio(float64(st.Bytes), float64(input))
	st.BytesPerRecord = ratio(float64(st.Bytes), float64(records))
	st.ObjectsPerGB = ratio(float64(st.Objects), float64(input)/1e9)
	return st, nil
}

// isCommitKey reports whether key is a version of a table's log,
// "…/_delta_log/<20 digits>.json".
func isCommitKey(key string) bool {
	name := filepath.Base(key)
	v, ok := strings.CutSuffix(name, ".json")
	if !ok || len(v) != 20 || filepath.Base(filepath.Dir(key)) != "_delta_log" {
		return false
	}
	_, err := strconv.ParseUint(v, 10, 64)
	return err == nil
}

func isLogKey(key string) bool {
	for d := filepath.Dir(key); d != "." && d != "/"; d = filepath.Dir(d) {
		if filepath.Base(d) == "_delta_log" {
			return true
		}
	}
	return false
}
