package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/committer/delta"
	"github.com/evodb/sink/internal/workload"
	"github.com/evodb/sink/mirror"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/sink"
)

// Mirror workloads: the op mix of the measured phase of a mirror run.
const (
	// MirrorUpdate is update-heavy: 90 % updates of uniformly drawn live
	// keys, 5 % inserts of new keys, 5 % deletes.
	MirrorUpdate = "update"
	// MirrorInsert is insert-heavy: 90 % inserts of new keys, 8 %
	// updates, 2 % deletes.
	MirrorInsert = "insert"
)

// mirrorMix returns the insert and update shares of a workload.
func mirrorMix(workloadName string) (insert, update float64, err error) {
	switch workloadName {
	case MirrorUpdate:
		return 0.05, 0.90, nil
	case MirrorInsert:
		return 0.90, 0.08, nil
	}
	return 0, 0, fmt.Errorf("mirror workload %q is not one of %s, %s", workloadName, MirrorUpdate, MirrorInsert)
}

// mirrorTable is the one table of a mirror run: the change log at this
// path, its mirror at mirrorTable+"_current".
const mirrorTable = "m"

// MirrorConfig describes one mirror benchmark: a table loaded with Rows
// keyed rows (inserts; the mirror catches up, nothing is measured), then
// a measured phase of changes of one workload produced at Rate for
// Duration. The same records run through a sink with the mirror on and
// through one with it off, Runs times each, interleaved, so the
// difference is the mirror's.
type MirrorConfig struct {
	// Workload is MirrorUpdate or MirrorInsert.
	Workload string
	// Rows is the table's size before the measured phase; default 1M.
	Rows int
	// Rate (changes per second) and Duration pace the measured phase;
	// defaults 2000/s for 30s.
	Rate     float64
	Duration time.Duration
	// Interval is the mirror's interval (tables.*.mirror.interval);
	// default 1s.
	Interval time.Duration
	// FlushInterval and MemoryBudget are the sink's; defaults 1s and
	// 256 MiB.
	FlushInterval time.Duration
	MemoryBudget  int64
	// Partitions of the topic; default 12.
	Partitions int32
	Seed       uint64
	// Runs is the number of mirror-on and of mirror-off runs; default 1.
	Runs int
	// Brokers, StoreURL, S3, SinkCommand and TempDir are Config's.
	Brokers     []string
	StoreURL    string
	S3          objstore.S3Config
	SinkCommand []string
	TempDir     string
	// CPUProfile, with SinkCommand, is written with a CPU profile of the
	// sink child over the measured phase of the last mirror-on run.
	CPUProfile string
	// Log, when not nil, receives progress lines.
	Log func(format string, args ...any)
}

func (c *MirrorConfig) applyDefaults() {
	if c.Rows <= 0 {
		c.Rows = 1_000_000
	}
	if c.Rate <= 0 {
		c.Rate = 2000
	}
	if c.Duration <= 0 {
		c.Duration = 30 * time.Second
	}
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = time.Second
	}
	if c.MemoryBudget <= 0 {
		c.MemoryBudget = 256 << 20
	}
	if c.Partitions <= 0 {
		c.Partitions = workload.DefaultPartitions
	}
	if c.Runs <= 0 {
		c.Runs = 1
	}
	if c.Log == nil {
		c.Log = func(string, ...any) {}
	}
}

// MirrorResult is one mirror scenario's measurements.
type MirrorResult struct {
	Machine  Machine `json:"machine"`
	Workload string  `json:"workload"`
	Rows     int     `json:"rows"`
	// Changes is the measured phase's changes, Ops their count by op.
	Changes int            `json:"changes"`
	Ops     map[string]int `json:"ops"`
	Rate    float64        `json:"rate"`
	// Interval and Flush are the mirror's interval and the sink's flush
	// interval.
	Interval string `json:"mirror_interval"`
	Flush    string `json:"flush_interval"`
	Broker   string `json:"broker"`
	Store    string `json:"store"`
	Process  bool   `json:"process"`
	Runs     int    `json:"runs"`
	// Lag is from the commit of each change-log version of the measured
	// phase to the commit of the first mirror version holding it, over
	// every mirror-on run.
	Lag MirrorLag `json:"lag"`
	// CPUOn and CPUOff are the sink's CPU time over the measured phase
	// (until the change log, and with the mirror on the mirror too, holds
	// every change), medians over the runs; ExtraCPUPerChange is the
	// median over run pairs of (on - off) / changes.
	CPUOn             time.Duration `json:"cpu_on_ns"`
	CPUOff            time.Duration `json:"cpu_off_ns"`
	ExtraCPUPerChange time.Duration `json:"extra_cpu_per_change_ns"`
	// Written is what the mirror-on run wrote under the mirror's root in
	// the measured phase (median run by total bytes).
	Written MirrorBytes `json:"mirror_written"`
	// ChangeLogBytesPerChange is what the change log took per change in
	// the same phase, for scale.
	ChangeLogBytesPerChange float64 `json:"change_log_bytes_per_change"`
	// MirrorCommits and Compactions count the mirror's commits in the
	// phase (last run), compactions included.
	MirrorCommits int `json:"mirror_commits"`
	Compactions   int `json:"compactions"`
	// Files, LiveRows and DeletedFraction describe the mirror at the end
	// of the last run: its data files, the rows it shows, and the share
	// of its physical rows that deletion vectors delete.
	Files           int     `json:"files"`
	LiveRows        int     `json:"live_rows"`
	DeletedFraction float64 `json:"deleted_fraction"`
	// Check is mirror.Check's verdict on the last run's mirror.
	Check string   `json:"check"`
	Notes []string `json:"notes,omitempty"`
}

// MirrorLag is the distribution of mirror lags.
type MirrorLag struct {
	Versions int           `json:"versions"`
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
	Max      time.Duration `json:"max_ns"`
}

// MirrorBytes is what a mirror wrote, by kind of object.
type MirrorBytes struct {
	Data            int64 `json:"data"`
	DeletionVectors int64 `json:"deletion_vectors"`
	Log             int64 `json:"log"`
	// Compaction is the part of Data that the mirror's compactions wrote.
	Compaction int64 `json:"compaction"`
	Objects    int   `json:"objects"`
	// PerChange is all of them over the phase's changes.
	PerChange float64 `json:"per_change"`
}

// Total is every byte written.
func (b MirrorBytes) Total() int64 { return b.Data + b.DeletionVectors + b.Log }

// mirrorPass is one run of the sink over a mirror scenario's records.
type mirrorPass struct {
	on      bool
	changes int
	ops     map[string]int
	cpu     time.Duration
	lags    []time.Duration
	written MirrorBytes
	logB    int64
	commits int
	compact int
	files   int
	live    int
	deleted float64
	check   string
}

// RunMirror measures one mirror scenario: Runs pairs of passes over the
// same records, one with the mirror on and one with it off, alternating
// which goes first. A mirror-on pass whose mirror mirror.Check finds
// different from its change log's view is an error, not a figure.
func RunMirror(ctx context.Context, cfg MirrorConfig) (*MirrorResult, error) {
	cfg.applyDefaults()
	insert, update, err := mirrorMix(cfg.Workload)
	if err != nil {
		return nil, err
	}
	res := &MirrorResult{
		Machine: ThisMachine(), Workload: cfg.Workload, Rows: cfg.Rows, Rate: cfg.Rate,
		Interval: cfg.Interval.String(), Flush: cfg.FlushInterval.String(),
		Broker: "kfake (in-process)", Store: "filesystem (temporary)", Process: len(cfg.SinkCommand) > 0, Runs: cfg.Runs,
	}
	if len(cfg.Brokers) > 0 {
		res.Broker = strings.Join(cfg.Brokers, ",")
	}
	if cfg.StoreURL != "" {
		res.Store = redact(cfg.StoreURL)
	}
	if !res.Process {
		res.Notes = append(res.Notes, "sink CPU is the whole process's, including the producer (and the in-process broker)")
	}
	var on, off []mirrorPass
	for i := range cfg.Runs {
		order := []bool{true, false}
		if i%2 == 1 {
			order = []bool{false, true}
		}
		for _, o := range order {
			profile := ""
			if o && i == cfg.Runs-1 {
				profile = cfg.CPUProfile
			}
			p, err := runMirrorPass(ctx, cfg, o, insert, update, profile)
			if err != nil {
				return nil, fmt.Errorf("mirror %s, run %d, mirror %s: %w", cfg.Workload, i+1, onOff(o), err)
			}
			cfg.Log("run %d, mirror %s: %d changes, CPU %s%s", i+1, onOff(o), p.changes, p.cpu.Round(time.Millisecond), lagLine(p))
			if o {
				on = append(on, p)
			} else {
				off = append(off, p)
			}
		}
	}
	last := on[len(on)-1]
	res.Changes, res.Ops = last.changes, last.ops
	var lags []time.Duration
	var cpuOn, cpuOff, extra []time.Duration
	for i := range on {
		if on[i].changes != off[i].changes {
			return nil, fmt.Errorf("mirror %s run %d: %d changes with the mirror on, %d off: the runs must replay the same records", cfg.Workload, i+1, on[i].changes, off[i].changes)
		}
		lags = append(lags, on[i].lags...)
		cpuOn = append(cpuOn, on[i].cpu)
		cpuOff = append(cpuOff, off[i].cpu)
		extra = append(extra, (on[i].cpu-off[i].cpu)/time.Duration(max(on[i].changes, 1)))
	}
	sortDurations(lags)
	res.Lag = MirrorLag{Versions: len(lags)}
	if len(lags) > 0 {
		res.Lag.P50, res.Lag.P99, res.Lag.Max = percentile(lags, 50), percentile(lags, 99), lags[len(lags)-1]
	}
	res.CPUOn, res.CPUOff, res.ExtraCPUPerChange = medianDuration(cpuOn), medianDuration(cpuOff), medianDuration(extra)
	byBytes := slices.Clone(on)
	slices.SortFunc(byBytes, func(a, b mirrorPass) int { return int(a.written.Total() - b.written.Total()) })
	mid := byBytes[len(byBytes)/2]
	res.Written = mid.written
	res.ChangeLogBytesPerChange = ratio(float64(mid.logB), float64(mid.changes))
	res.MirrorCommits, res.Compactions = last.commits, last.compact
	res.Files, res.LiveRows, res.DeletedFraction, res.Check = last.files, last.live, last.deleted, last.check
	return res, nil
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

func lagLine(p mirrorPass) string {
	if !p.on || len(p.lags) == 0 {
		return ""
	}
	l := slices.Clone(p.lags)
	sortDurations(l)
	return fmt.Sprintf(", lag p50 %s p99 %s over %d versions, mirror wrote %.1f B/change", percentile(l, 50).Round(time.Millisecond),
		percentile(l, 99).Round(time.Millisecond), len(l), p.written.PerChange)
}

func medianDuration(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	sortDurations(s)
	return s[len(s)/2]
}

// mirrorWait bounds each wait of a pass: the sink committing the load or
// the phase, the mirror catching up.
const mirrorWait = 20 * time.Minute

// runMirrorPass loads the table, then produces the measured phase and
// measures what the sink and (when on) its mirror did with it.
func runMirrorPass(ctx context.Context, cfg MirrorConfig, on bool, insert, update float64, profile string) (mirrorPass, error) {
	p := mirrorPass{on: on, ops: map[string]int{}}
	brokers := cfg.Brokers
	if len(brokers) == 0 {
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
		if err != nil {
			return p, fmt.Errorf("start in-process broker: %w", err)
		}
		defer cluster.Close()
		brokers = cluster.ListenAddrs()
	}
	storeURL := cfg.StoreURL
	if storeURL == "" {
		storeURL = "file://" + cfg.TempDir + "/store"
	}
	root, err := objstore.Open(ctx, storeURL, cfg.S3)
	if err != nil {
		return p, err
	}
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	topic, prefix := "mirror-bench-"+id, "mirror-bench-"+id
	bucket := objstore.Prefixed(root, prefix)
	// Every pass starts from the same seed: on and off replay the same
	// records.
	g := workload.New(workload.Config{Format: cdc.FormatEvoDB, Topic: topic, Partitions: cfg.Partitions, TableNames: []string{mirrorTable}},
		rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x3a1e7)))
	g.SetMix(1, 0)
	cl, err := kgo.NewClient(append(workload.ProducerOptions(), kgo.SeedBrokers(brokers...),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerLinger(5*time.Millisecond))...)
	if err != nil {
		return p, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	if err := createTopic(ctx, kadm.NewClient(cl), topic, cfg.Partitions); err != nil {
		return p, err
	}

	sc := sinkConfig(Config{Format: cdc.FormatEvoDB, FlushInterval: cfg.FlushInterval, MemoryBudget: cfg.MemoryBudget, Mode: "standard"},
		brokers, topic, "", prefix)
	sc.Notify = sink.NotifyConfig{}
	sc.Tables.Default.Path = "{table}"
	if on {
		sc.Tables.Default.Mirror = &sink.MirrorConfig{Enabled: true, Path: sink.DefaultMirrorPath, Key: []string{"id"},
			Interval: cfg.Interval, MaxFiles: 16, TargetFileRows: 131072}
	}
	var runner sinkRunner
	var pid int
	if len(cfg.SinkCommand) > 0 {
		c, err := startChild(ctx, Config{SinkCommand: cfg.SinkCommand, TempDir: cfg.TempDir, S3: cfg.S3}, withPprof(sc, profile != ""), storeURL, prefix, nil)
		if err != nil {
			return p, err
		}
		runner, pid = c, c.cmd.Process.Pid
	} else {
		r, err := startInProcessMirrors(ctx, sc, bucket, on)
		if err != nil {
			return p, err
		}
		runner = r
	}
	defer runner.stop()
	cpu := func() (time.Duration, error) {
		if pid == 0 {
			return selfCPU(), nil
		}
		return procCPU(pid)
	}

	cfg.Log("mirror %s: loading %d rows", onOff(on), cfg.Rows)
	if err := workload.Produce(ctx, cl, g, cfg.Rows, nil); err != nil {
		return p, err
	}
	if _, _, err := runner.measure(ctx, cfg.Rows, 0); err != nil {
		return p, err
	}
	format := delta.NewFormat(bucket, delta.Options{})
	changeLog := format.Open(mirrorTable, committer.Options{Format: mirror.FormatDelta})
	mirrorT := format.Open(mirrorTable+"_current", committer.Options{Format: mirror.FormatDelta, DeleteRows: true})
	if on {
		cfg.Log("mirror on: waiting for the mirror to hold the load")
		if err := waitMirror(ctx, changeLog, mirrorT, runner); err != nil {
			return p, err
		}
	}
	logSnap, err := changeLog.Snapshot(ctx)
	if err != nil {
		return p, fmt.Errorf("change log after the load: %w", err)
	}
	v0 := logSnap.Version
	m0 := int64(-1)
	before := map[string]bool{}
	if on {
		snap, err := mirrorT.Snapshot(ctx)
		if err != nil {
			return p, fmt.Errorf("mirror after the load: %w", err)
		}
		m0 = snap.Version
		if err := bucket.List(ctx, mirrorTable+"_current/", func(o objstore.ObjectInfo) error {
			before[o.Key] = true
			return nil
		}); err != nil {
			return p, fmt.Errorf("list the mirror: %w", err)
		}
	}
	logBefore, err := prefixBytes(ctx, bucket, mirrorTable+"/")
	if err != nil {
		return p, err
	}

	// The measured phase.
	g.SetMix(insert, update)
	cpu0, err := cpu()
	if err != nil {
		return p, err
	}
	var prof *profileFetch
	if profile != "" && pid != 0 {
		prof = fetchProfile(ctx, childAddr(runner), cfg.Duration+5*time.Second, profile)
	}
	cfg.Log("mirror %s: %s changes at %.0f/s for %s", onOff(on), cfg.Workload, cfg.Rate, cfg.Duration)
	sent, err := producePaced(ctx, cl, g, cfg.Rate, cfg.Duration, p.ops)
	if err != nil {
		return p, err
	}
	p.changes = sent
	total := int64(cfg.Rows + sent)
	err = waitFor(ctx, mirrorWait, "measured changes committed", func() (bool, error) {
		n, err := runner.committed()
		return n >= total, err
	})
	if err != nil {
		return p, err
	}
	if on {
		if err := waitMirror(ctx, changeLog, mirrorT, runner); err != nil {
			return p, err
		}
	}
	cpu1, err := cpu()
	if err != nil {
		return p, err
	}
	p.cpu = cpu1 - cpu0
	if prof != nil {
		if err := prof.wait(); err != nil {
			return p, err
		}
	}
	if err := runner.stop(); err != nil {
		return p, err
	}
	logAfter, err := prefixBytes(ctx, bucket, mirrorTable+"/")
	if err != nil {
		return p, err
	}
	p.logB = logAfter - logBefore
	if !on {
		return p, nil
	}
	if err := measureMirror(ctx, &p, bucket, changeLog, mirrorT, v0, m0, before); err != nil {
		return p, err
	}
	rep, err := mirror.Check(ctx, bucket, changeLog, mirrorT, []string{"id"})
	if err != nil {
		return p, err
	}
	if !rep.OK() {
		return p, fmt.Errorf("the mirror differs from its change log's view: %s", rep)
	}
	p.check = rep.String()
	return p, nil
}

// withPprof serves the profiler from a child sink that is to be
// profiled.
func withPprof(sc sink.Config, on bool) sink.Config {
	sc.HTTP.Pprof = on
	return sc
}

// childAddr returns the HTTP address of a child sink.
func childAddr(r sinkRunner) string {
	if c, ok := r.(*child); ok {
		return c.addr
	}
	return ""
}

// waitMirror waits until the mirror holds the change log's latest
// version.
func waitMirror(ctx context.Context, changeLog, mirrorT committer.Table, runner sinkRunner) error {
	return waitEvery(ctx, func() time.Duration { return 50 * time.Millisecond }, mirrorWait, "mirror catching up", func() (bool, error) {
		if _, err := runner.committed(); err != nil {
			return false, err
		}
		logSnap, err := changeLog.Snapshot(ctx)
		if err != nil {
			return false, fmt.Errorf("read change log: %w", err)
		}
		snap, err := mirrorT.Snapshot(ctx)
		if errors.Is(err, committer.ErrNoTable) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("read mirror: %w", err)
		}
		w, ok := snap.Txns[mirror.AppID(logSnap.Metadata.ID)]
		return ok && w >= logSnap.Version, nil
	})
}

// measureMirror fills in the lag of every change-log version after v0,
// what the mirror wrote after version m0 (objects not in before) and the
// mirror's state at the end.
func measureMirror(ctx context.Context, p *mirrorPass, b objstore.Bucket, changeLog, mirrorT committer.Table, v0, m0 int64, before map[string]bool) error {
	logSnap, err := changeLog.Snapshot(ctx)
	if err != nil {
		return err
	}
	snap, err := mirrorT.Snapshot(ctx)
	if err != nil {
		return err
	}
	logChanges, err := changeLog.(committer.History).Changes(ctx, v0, logSnap.Version)
	if err != nil {
		return fmt.Errorf("change-log history: %w", err)
	}
	mirrorChanges, err := mirrorT.(committer.History).Changes(ctx, m0, snap.Version)
	if err != nil {
		return fmt.Errorf("mirror history: %w", err)
	}
	app := mirror.AppID(logSnap.Metadata.ID)
	i := 0
	for _, mc := range mirrorChanges {
		if mc.Operation == committer.OpOptimize {
			p.compact++
			for _, a := range mc.Adds {
				p.written.Compaction += a.Size
			}
		}
		p.commits++
		w, ok := mc.Txns[app]
		if !ok {
			continue
		}
		for ; i < len(logChanges) && logChanges[i].Version <= w; i++ {
			if logChanges[i].Timestamp == 0 || mc.Timestamp == 0 {
				return fmt.Errorf("change-log version %d or mirror version %d has no commit time", logChanges[i].Version, mc.Version)
			}
			p.lags = append(p.lags, time.Duration(mc.Timestamp-logChanges[i].Timestamp)*time.Millisecond)
		}
	}
	if i < len(logChanges) {
		return fmt.Errorf("change-log version %d is in no mirror version after the phase", logChanges[i].Version)
	}
	err = b.List(ctx, mirrorTable+"_current/", func(o objstore.ObjectInfo) error {
		if before[o.Key] {
			return nil
		}
		p.written.Objects++
		base := path.Base(o.Key)
		switch {
		case strings.Contains(o.Key, "/_delta_log/"):
			p.written.Log += o.Size
		case strings.HasPrefix(base, "deletion_vector_"):
			p.written.DeletionVectors += o.Size
		default:
			p.written.Data += o.Size
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list the mirror: %w", err)
	}
	p.written.PerChange = ratio(float64(p.written.Total()), float64(p.changes))
	var physical, deleted int64
	for _, a := range snap.Files {
		physical += a.Rows()
		if a.Deleted != nil {
			deleted += a.Deleted.Count
		}
	}
	p.files, p.live = len(snap.Files), int(physical-deleted)
	p.deleted = ratio(float64(deleted), float64(physical))
	return nil
}

// prefixBytes returns the bytes of every object under prefix.
func prefixBytes(ctx context.Context, b objstore.Bucket, prefix string) (int64, error) {
	var n int64
	err := b.List(ctx, prefix, func(o objstore.ObjectInfo) error {
		n += o.Size
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("list %s: %w", prefix, err)
	}
	return n, nil
}

// producePaced produces rate × duration of g's records, paced at rate, counting them
// by op, and returns how many it produced once all are acknowledged.
func producePaced(ctx context.Context, cl *kgo.Client, g *workload.Generator, rate float64, duration time.Duration, ops map[string]int) (int, error) {
	var (
		acks acks
		sent int
	)
	// Exactly rate × duration records, whatever the ticks: the passes of
	// a run (mirror on, mirror off) must replay the same records, so the
	// count must not depend on when the last tick falls.
	total := int(rate * duration.Seconds())
	start := time.Now()
	t := time.NewTicker(tick)
	defer t.Stop()
	for now := start; sent < total; now = <-t.C {
		want := min(total, int(rate*now.Sub(start).Seconds()))
		for ; sent < want; sent++ {
			r := g.Next()
			ops[r.Op]++
			acks.produce(ctx, cl, &kgo.Record{Topic: r.Topic, Partition: r.Partition, Key: r.Key, Value: r.Value})
		}
	}
	if err := acks.wait(); err != nil {
		return 0, fmt.Errorf("paced produce: %w", err)
	}
	return sent, nil
}

// profileFetch is a CPU profile being taken of a child sink.
type profileFetch struct {
	done chan error
}

// fetchProfile takes a CPU profile of the child at addr for d, into
// path.
func fetchProfile(ctx context.Context, addr string, d time.Duration, path string) *profileFetch {
	f := &profileFetch{done: make(chan error, 1)}
	go func() {
		f.done <- func() error {
			url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds()+0.5))
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("cpu profile: %w", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("cpu profile: %s", resp.Status)
			}
			out, err := os.Create(path)
			if err != nil {
				return fmt.Errorf("cpu profile: %w", err)
			}
			if _, err := io.Copy(out, resp.Body); err != nil {
				out.Close()
				return fmt.Errorf("cpu profile: %w", err)
			}
			return out.Close()
		}()
	}()
	return f
}

func (f *profileFetch) wait() error { return <-f.done }

// inProcessMirrors is an in-process sink with the mirror scheduler that
// `sink run` starts beside it (cmd/sink), when its tables have mirrors.
type inProcessMirrors struct {
	*inProcess
	cancel context.CancelFunc
	done   chan struct{}
}

// startInProcessMirrors starts the sink of cfg in this process and, with
// mirrors on, a mirror scheduler over its tables as `sink run` wires it.
func startInProcessMirrors(ctx context.Context, cfg sink.Config, bucket objstore.Bucket, mirrors bool) (*inProcessMirrors, error) {
	s, err := startInProcess(ctx, cfg, bucket)
	if err != nil {
		return nil, err
	}
	r := &inProcessMirrors{inProcess: s, cancel: func() {}, done: make(chan struct{})}
	if !mirrors {
		close(r.done)
		return r, nil
	}
	mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel = cancel
	sched := mirror.NewScheduler(bucket, delta.NewFormat(bucket, delta.Options{}), mirror.SchedulerOptions{Instance: "bench", Yield: s.s.WaitUnpaused})
	go func() {
		defer close(r.done)
		_ = sched.Run(mctx, func() []mirror.TableRef {
			var refs []mirror.TableRef
			for _, t := range s.s.Tables() {
				if t.Mirror != nil {
					refs = append(refs, mirror.TableRef{ChangeLog: t.Path, Mirror: t.Mirror.TablePath(t.Path), Key: t.Mirror.Key,
						Interval: t.Mirror.Interval, MaxFiles: t.Mirror.MaxFiles, TargetFileRows: t.Mirror.TargetFileRows, Compression: t.Compression})
				}
			}
			return refs
		})
	}()
	return r, nil
}

func (r *inProcessMirrors) stop() error {
	err := r.inProcess.stop()
	r.cancel()
	<-r.done
	return err
}

// WriteMirrorTable prints mirror results side by side, a column per
// scenario.
func WriteMirrorTable(w io.Writer, results []*MirrorResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(name string, f func(r *MirrorResult) string) {
		fmt.Fprintf(tw, "%s\t", name)
		for _, r := range results {
			fmt.Fprintf(tw, "%s\t", f(r))
		}
		fmt.Fprintln(tw)
	}
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 0, 64) }
	us := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e3, 'f', 1, 64) }
	row("workload", func(r *MirrorResult) string { return r.Workload })
	row("rows before / changes", func(r *MirrorResult) string { return fmt.Sprintf("%d / %d", r.Rows, r.Changes) })
	row("inserts/updates/deletes", func(r *MirrorResult) string {
		return fmt.Sprintf("%d/%d/%d", r.Ops[workload.OpInsert], r.Ops[workload.OpUpdate], r.Ops[workload.OpDelete])
	})
	row("rate/s, flush, mirror interval", func(r *MirrorResult) string { return fmt.Sprintf("%.0f, %s, %s", r.Rate, r.Flush, r.Interval) })
	row("lag p50 / p99 / max (ms)", func(r *MirrorResult) string {
		return fmt.Sprintf("%s / %s / %s", ms(r.Lag.P50), ms(r.Lag.P99), ms(r.Lag.Max))
	})
	row("change-log versions measured", func(r *MirrorResult) string { return strconv.Itoa(r.Lag.Versions) })
	row("sink CPU on / off (s)", func(r *MirrorResult) string {
		return fmt.Sprintf("%.2f / %.2f", r.CPUOn.Seconds(), r.CPUOff.Seconds())
	})
	row("CPU per change off (µs)", func(r *MirrorResult) string { return us(r.CPUOff / time.Duration(max(r.Changes, 1))) })
	row("extra CPU per change (µs)", func(r *MirrorResult) string { return us(r.ExtraCPUPerChange) })
	row("mirror B/change (data+DV+log)", func(r *MirrorResult) string {
		c := float64(max(r.Changes, 1))
		return fmt.Sprintf("%.0f (%.0f+%.0f+%.0f)", r.Written.PerChange, float64(r.Written.Data)/c, float64(r.Written.DeletionVectors)/c, float64(r.Written.Log)/c)
	})
	row("  of which compaction data", func(r *MirrorResult) string {
		return fmt.Sprintf("%.0f", float64(r.Written.Compaction)/float64(max(r.Changes, 1)))
	})
	row("change log B/change", func(r *MirrorResult) string { return fmt.Sprintf("%.0f", r.ChangeLogBytesPerChange) })
	row("mirror commits (compactions)", func(r *MirrorResult) string { return fmt.Sprintf("%d (%d)", r.MirrorCommits, r.Compactions) })
	row("mirror files, deleted rows at end", func(r *MirrorResult) string {
		return fmt.Sprintf("%d, %.1f %%", r.Files, 100*r.DeletedFraction)
	})
	row("mirror rows, check", func(r *MirrorResult) string {
		if strings.HasSuffix(r.Check, "equal to the view") {
			return fmt.Sprintf("%d, equal to the view", r.LiveRows)
		}
		return fmt.Sprintf("%d, %s", r.LiveRows, r.Check)
	})
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range results {
		for _, n := range r.Notes {
			fmt.Fprintf(w, "note (%s): %s\n", r.Workload, n)
		}
	}
	return nil
}
