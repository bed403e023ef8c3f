package bench

import (
	"bufio"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Peer names: the Python peer, a confluent-kafka consumer writing the same
// rows with deltalake.write_deltalake (bench/peer/peer.py), and
// kafka-delta-ingest (delta-io, Rust), a binary built from source (see
// kdi.go).
const (
	PeerPython           = "python"
	PeerKafkaDeltaIngest = "kafka-delta-ingest"
)

// peerScripts are the peer and the comparison, written next to the run's
// other files so the sink binary carries them.
//
//go:embed peer/peer.py peer/compare.py
var peerScripts embed.FS

// Peer is what a user would run instead of the sink, measured on the same
// records in the same run, and the value-by-value comparison of what both
// wrote.
type Peer struct {
	Name       string     `json:"name"`
	Throughput Throughput `json:"throughput"`
	PeakRSS    int64      `json:"peak_rss"`
	Check      PeerCheck  `json:"check"`
	// CPUVsPeer is sink records per CPU-second over the peer's.
	CPUVsPeer float64 `json:"cpu_vs_peer"`
}

// PeerCheck is the comparison of the sink's tables with the peer's: every
// table, row (by _lsn), column, type and value, each side read on its own
// with delta-rs.
type PeerCheck struct {
	OK     bool `json:"ok"`
	Tables int  `json:"tables"`
	Rows   int  `json:"rows"`
	// Values is the number of values compared (rows × shared columns).
	Values int `json:"values"`
	// DifferencesTotal counts every difference; Differences lists the
	// first of them.
	DifferencesTotal int              `json:"differences_total"`
	Differences      []map[string]any `json:"differences,omitempty"`
	// Kinds counts every difference by kind (a table's column and what
	// differs), most frequent first, each with its first examples.
	Kinds []DifferenceKind `json:"kinds,omitempty"`
}

// DifferenceKind is one kind of difference the check found: e.g.
// `t0.s3: sink null, peer the text "null"` or `t0.d2: doubles 1 ULP
// apart`.
type DifferenceKind struct {
	Kind     string           `json:"kind"`
	Count    int              `json:"count"`
	Examples []map[string]any `json:"examples"`
}

// pythonRun is one pass of the Python peer.
type pythonRun struct {
	python   string
	dir      string // where the scripts and the peer's log go
	out      string // the peer's tables
	brokers  []string
	topic    string
	group    string
	flush    int
	interval time.Duration
	parts    int32
}

// writePeerScripts copies the embedded scripts into dir.
func writePeerScripts(dir string) error {
	for _, name := range []string{"peer.py", "compare.py"} {
		b, err := peerScripts.ReadFile("peer/" + name)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("write peer script: %w", err)
		}
	}
	return nil
}

// process returns the Python peer as a peerProcess: it prints "ready" once
// every partition is assigned and "written N" after each commit.
func (p pythonRun) process(ctx context.Context) *peerProcess {
	cmd := exec.CommandContext(context.WithoutCancel(ctx), p.python, filepath.Join(p.dir, "peer.py"),
		strings.Join(p.brokers, ","), p.topic, p.group, p.out,
		strconv.Itoa(p.flush), strconv.FormatFloat(p.interval.Seconds(), 'f', -1, 64), strconv.Itoa(int(p.parts)))
	return &peerProcess{
		name: PeerPython, cmd: cmd, logPath: filepath.Join(p.dir, p.group+".log"),
		ready: func(line string) bool { return line == "ready" },
		written: func(line string) (int64, bool) {
			n, ok := strings.CutPrefix(line, "written ")
			if !ok {
				return 0, false
			}
			v, err := strconv.ParseInt(n, 10, 64)
			return v, err == nil
		},
	}
}

// peerProcess is a peer to measure as a child process: its command, not
// yet started, and how to tell from outside that it has begun consuming
// and how many rows it has committed.
type peerProcess struct {
	name    string
	cmd     *exec.Cmd
	logPath string // receives what the peer prints
	// lineStderr says which stream the peer's lines come from: stdout (the
	// Python peer's protocol) or stderr (kafka-delta-ingest's log). Every
	// line of both streams goes to logPath too.
	lineStderr bool
	// ready reports whether a line says the peer has its partitions, when
	// its clock starts.
	ready func(line string) bool
	// written reads the rows committed so far from a line; committed,
	// when set, is asked instead (a peer that does not print its progress
	// is read from its table's log).
	written   func(line string) (int64, bool)
	committed func() (int64, error)
	// every is how often committed is asked; 0 is pollEvery.
	every time.Duration
}

// measurePeer runs the peer as a child process until it has written and
// committed rows records, timing it from its ready line (every partition
// assigned) as the sink is timed from its readiness, its CPU read from
// /proc/<pid>/stat as the sink child's is.
func measurePeer(ctx context.Context, p *peerProcess, rows int, input int64) (Throughput, int64, error) {
	logFile, err := os.Create(p.logPath)
	if err != nil {
		return Throughput{}, 0, fmt.Errorf("%s peer log: %w", p.name, err)
	}
	defer logFile.Close()
	cmd := p.cmd
	var lines io.ReadCloser
	if p.lineStderr {
		cmd.Stdout = logFile
		lines, err = cmd.StderrPipe()
	} else {
		cmd.Stderr = logFile
		lines, err = cmd.StdoutPipe()
	}
	if err != nil {
		return Throughput{}, 0, fmt.Errorf("%s peer output: %w", p.name, err)
	}
	if err := cmd.Start(); err != nil {
		return Throughput{}, 0, fmt.Errorf("start the %s peer: %w", p.name, err)
	}
	var (
		mu      sync.Mutex
		ready   bool
		written int64
		exited  = make(chan error, 1)
	)
	go func() {
		sc := bufio.NewScanner(lines)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			if p.lineStderr {
				fmt.Fprintln(logFile, line)
			}
			if !ready && p.ready(line) {
				ready = true
			} else if p.written != nil {
				if n, ok := p.written(line); ok {
					written = n
				}
			}
			mu.Unlock()
		}
		exited <- cmd.Wait()
	}()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	state := func() (bool, int64, error) {
		select {
		case err := <-exited:
			exited <- err
			mu.Lock()
			log, _ := os.ReadFile(p.logPath)
			mu.Unlock()
			return false, 0, fmt.Errorf("the %s peer exited (%v): %s", p.name, err, tail(log, 2000))
		default:
		}
		mu.Lock()
		r, n := ready, written
		mu.Unlock()
		if r && p.committed != nil {
			var err error
			if n, err = p.committed(); err != nil {
				return false, 0, err
			}
		}
		return r, n, nil
	}
	err = waitFor(ctx, 2*time.Minute, p.name+" peer ready", func() (bool, error) {
		r, _, err := state()
		return r, err
	})
	if err != nil {
		stop()
		return Throughput{}, 0, err
	}
	pid := cmd.Process.Pid
	start := time.Now()
	cpu0, err := procCPU(pid)
	if err != nil {
		stop()
		return Throughput{}, 0, err
	}
	every := p.every
	if every <= 0 {
		every = pollEvery
	}
	pace := paceCheck{window: stallWindow, deadline: start.Add(measureTimeout)}
	err = waitEvery(ctx, func() time.Duration { return every }, measureTimeout, p.name+" peer writes", func() (bool, error) {
		_, n, err := state()
		if err != nil || n >= int64(rows) {
			return n >= int64(rows), err
		}
		if err := pace.check(time.Now(), n, int64(rows)); err != nil {
			return false, fmt.Errorf("the %s peer stalls: %w; its log: %s", p.name, err, p.logPath)
		}
		return false, nil
	})
	if err != nil {
		stop()
		return Throughput{}, 0, err
	}
	wall := time.Since(start)
	cpu1, err := procCPU(pid)
	rss := peakRSS(strconv.Itoa(pid))
	stop()
	if err != nil {
		return Throughput{}, 0, err
	}
	return newThroughput(rows, input, wall, cpu1-cpu0), rss, nil
}

// stallWindow is how far back paceCheck looks at a peer's progress.
const stallWindow = 2 * time.Minute

// paceCheck notices a peer that will not finish in time: one that commits
// rows so slowly (a peer can fall into committing a row every few seconds)
// that the bench would otherwise wait out its whole measurement timeout.
type paceCheck struct {
	window   time.Duration
	deadline time.Time
	samples  []paceSample
}

type paceSample struct {
	at time.Time
	n  int64
}

// check records that n of rows were committed at now and fails once the
// pace over the last window, kept up, would not reach rows by the
// deadline.
func (c *paceCheck) check(now time.Time, n, rows int64) error {
	c.samples = append(c.samples, paceSample{now, n})
	first := c.samples[0]
	if now.Sub(first.at) < c.window {
		return nil
	}
	// Drop samples older than the window, keeping one at or before its
	// start so the pace covers the whole window.
	for len(c.samples) > 1 && now.Sub(c.samples[1].at) >= c.window {
		c.samples = c.samples[1:]
	}
	first = c.samples[0]
	done := n - first.n
	left := c.deadline.Sub(now)
	if done <= 0 || float64(rows-n)/float64(done)*now.Sub(first.at).Seconds() > left.Seconds() {
		return fmt.Errorf("%d rows committed in the last %s (%d of %d in all): at that pace the rest takes longer than the %s left",
			done, now.Sub(first.at).Round(time.Second), n, rows, left.Round(time.Second))
	}
	return nil
}

// comparePeer compares the tables under sinkRoot and peerRoot with
// compare.py.
func comparePeer(ctx context.Context, python, dir, sinkRoot, peerRoot string) (PeerCheck, error) {
	var c PeerCheck
	cmd := exec.CommandContext(ctx, python, filepath.Join(dir, "compare.py"), sinkRoot, peerRoot, "20")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return c, fmt.Errorf("compare the sink's tables with the peer's: %w: %s", err, tail([]byte(stderr.String()), 2000))
	}
	if err := json.Unmarshal(out, &c); err != nil {
		return c, fmt.Errorf("read the comparison: %w: %s", err, tail(out, 500))
	}
	return c, nil
}

// fileRoot returns the directory of a file:// store URL.
func fileRoot(storeURL string) (string, error) {
	root, ok := strings.CutPrefix(storeURL, "file://")
	if !ok {
		return "", errors.New("the peer compares tables on a filesystem store only: leave -store empty or give a file:// URL")
	}
	return root, nil
}

// medianPeers combines the peers of repeated runs, peer by peer: figures
// are medians, the check is the worst run's (a difference in any run is
// reported).
func medianPeers(runs []*Result) []*Peer {
	var out []*Peer
	if len(runs) == 0 {
		return nil
	}
	for _, first := range runs[0].Peers {
		var ps []*Peer
		for _, r := range runs {
			for _, p := range r.Peers {
				if p.Name == first.Name {
					ps = append(ps, p)
				}
			}
		}
		out = append(out, medianPeer(ps))
	}
	return out
}

// medianPeer combines one peer's passes of repeated runs.
func medianPeer(ps []*Peer) *Peer {
	f := func(get func(*Peer) float64) float64 {
		v := make([]float64, len(ps))
		for i, p := range ps {
			v[i] = get(p)
		}
		return median(v)
	}
	out := *ps[0]
	out.Throughput = Throughput{
		Records:          ps[0].Throughput.Records,
		InputBytes:       ps[0].Throughput.InputBytes,
		Wall:             time.Duration(f(func(p *Peer) float64 { return float64(p.Throughput.Wall) })),
		CPU:              time.Duration(f(func(p *Peer) float64 { return float64(p.Throughput.CPU) })),
		RecordsPerSec:    f(func(p *Peer) float64 { return p.Throughput.RecordsPerSec }),
		MBPerSec:         f(func(p *Peer) float64 { return p.Throughput.MBPerSec }),
		RecordsPerCPUSec: f(func(p *Peer) float64 { return p.Throughput.RecordsPerCPUSec }),
	}
	out.PeakRSS = int64(f(func(p *Peer) float64 { return float64(p.PeakRSS) }))
	out.CPUVsPeer = f(func(p *Peer) float64 { return p.CPUVsPeer })
	for _, p := range ps[1:] {
		if p.Check.DifferencesTotal > out.Check.DifferencesTotal || (!p.Check.OK && out.Check.OK) {
			out.Check = p.Check
		}
	}
	return &out
}

func median(v []float64) float64 {
	sort.Float64s(v)
	return v[len(v)/2]
}

// peerSetup is what Run prepares for the peers before it produces.
type peerSetup struct {
	storeRoot string // the filesystem store's directory
	python    string
}

// checkPeers validates cfg's peers before anything is produced, and writes
// the scripts they use.
func checkPeers(cfg Config, storeURL string) (peerSetup, error) {
	var s peerSetup
	if len(cfg.Peers) == 0 {
		return s, nil
	}
	for _, name := range cfg.Peers {
		switch name {
		case PeerPython:
		case PeerKafkaDeltaIngest:
			if err := checkKDI(cfg); err != nil {
				return s, err
			}
		default:
			return s, fmt.Errorf("peer %q is not one of %s, %s", name, PeerPython, PeerKafkaDeltaIngest)
		}
	}
	var err error
	if s.storeRoot, err = fileRoot(storeURL); err != nil {
		return s, err
	}
	s.python = cfg.PeerInterpreter
	if s.python == "" {
		s.python = "python3"
	}
	return s, writePeerScripts(cfg.TempDir)
}

// runPeers measures each peer in turn on the run's topic, each in its own
// consumer group, and compares its tables with the sink's, which are
// complete once the sink's pass has ended.
func runPeers(ctx context.Context, cfg Config, setup peerSetup, brokers []string, topic, prefix string, table string, rows int, input int64) ([]*Peer, error) {
	// The peers write batches of the sink's size: its flush threshold for
	// this run's configuration, and its flush interval for the coldest
	// tables.
	sc := sinkConfig(cfg, brokers, topic, "", prefix)
	sc.ApplyDefaults()
	sinkRoot := filepath.Join(setup.storeRoot, prefix)
	var out []*Peer
	for _, name := range cfg.Peers {
		group := prefix + "-" + name
		peerRoot := filepath.Join(cfg.TempDir, group)
		var proc *peerProcess
		switch name {
		case PeerPython:
			proc = pythonRun{
				python: setup.python, dir: cfg.TempDir, out: peerRoot,
				brokers: brokers, topic: topic, group: group,
				flush: sc.Tables.Default.FlushThreshold, interval: sc.Tables.Default.FlushInterval, parts: cfg.Partitions,
			}.process(ctx)
		case PeerKafkaDeltaIngest:
			k := kdiRun{
				bin: cfg.PeerBinary, dir: cfg.TempDir, table: filepath.Join(peerRoot, table),
				brokers: brokers, topic: topic, group: group,
				flush: sc.Tables.Default.FlushThreshold, interval: sc.Tables.Default.FlushInterval,
			}
			var err error
			if k.columns, err = createKDITable(ctx, filepath.Join(sinkRoot, table), k.table); err != nil {
				return nil, err
			}
			if proc, err = k.process(ctx); err != nil {
				return nil, err
			}
		}
		cfg.Log("peer %s: %d records", name, rows)
		tp, rss, err := measurePeer(ctx, proc, rows, input)
		if err != nil {
			return nil, err
		}
		cfg.Log("peer %s: comparing its tables with the sink's", name)
		check, err := comparePeer(ctx, setup.python, cfg.TempDir, sinkRoot, peerRoot)
		if err != nil {
			return nil, err
		}
		out = append(out, &Peer{Name: name, Throughput: tp, PeakRSS: rss, Check: check})
	}
	return out, nil
}

// writePeerRows adds each peer's rows to the table WriteTable prints,
// when any scenario ran one; a peer's rows are named after it.
func writePeerRows(results []*Result, row func(string, func(*Result) string)) {
	var names []string
	for _, r := range results {
		for _, p := range r.Peers {
			if !slices.Contains(names, p.Name) {
				names = append(names, p.Name)
			}
		}
	}
	for _, name := range names {
		peer := func(cell func(*Peer) string) func(*Result) string {
			return func(r *Result) string {
				for _, p := range r.Peers {
					if p.Name == name {
						return cell(p)
					}
				}
				return "-"
			}
		}
		row(name+" records/s", peer(func(p *Peer) string { return fmt.Sprintf("%.0f", p.Throughput.RecordsPerSec) }))
		row(name+" records/CPU-s", peer(func(p *Peer) string { return fmt.Sprintf("%.0f", p.Throughput.RecordsPerCPUSec) }))
		row("sink/"+name+" records/CPU-s", peer(func(p *Peer) string { return fmt.Sprintf("%.2f×", p.CPUVsPeer) }))
		row(name+" peak RSS", peer(func(p *Peer) string { return fmt.Sprintf("%.1f MiB", float64(p.PeakRSS)/(1<<20)) }))
		row(name+" check", peer(func(p *Peer) string {
			if p.Check.OK {
				return fmt.Sprintf("same: %d tables, %d rows, %d values", p.Check.Tables, p.Check.Rows, p.Check.Values)
			}
			return fmt.Sprintf("%d differences", p.Check.DifferencesTotal)
		}))
	}
}

// writePeerDifferences prints the differences the checks found: counted
// by column and kind, then the first of them.
func writePeerDifferences(w io.Writer, results []*Result) {
	for _, r := range results {
		for _, p := range r.Peers {
			if p.Check.OK {
				continue
			}
			fmt.Fprintf(w, "%s check (%d tables %s): %d differences between the sink's tables and the peer's\n",
				p.Name, r.Tables, r.Format, p.Check.DifferencesTotal)
			for _, k := range p.Check.Kinds {
				fmt.Fprintf(w, "  %d× %s\n", k.Count, k.Kind)
				for _, d := range k.Examples {
					b, _ := json.Marshal(d)
					fmt.Fprintf(w, "      %s\n", b)
				}
			}
		}
	}
}
