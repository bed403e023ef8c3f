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
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// PeerPython names the Python peer: a confluent-kafka consumer writing the
// same rows with deltalake.write_deltalake (bench/peer/peer.py).
const PeerPython = "python"

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
}

// peerRun is one peer pass.
type peerRun struct {
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

// measurePeer runs the peer as a child process until it has written and
// committed rows records, timing it from its "ready" line (every partition
// assigned) as the sink is timed from its readiness, its CPU read from
// /proc/<pid>/stat as the sink child's is.
func measurePeer(ctx context.Context, p peerRun, rows int, input int64) (Throughput, int64, error) {
	logPath := filepath.Join(p.dir, p.group+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return Throughput{}, 0, fmt.Errorf("peer log: %w", err)
	}
	defer logFile.Close()
	cmd := exec.CommandContext(context.WithoutCancel(ctx), p.python, filepath.Join(p.dir, "peer.py"),
		strings.Join(p.brokers, ","), p.topic, p.group, p.out,
		strconv.Itoa(p.flush), strconv.FormatFloat(p.interval.Seconds(), 'f', -1, 64), strconv.Itoa(int(p.parts)))
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return Throughput{}, 0, fmt.Errorf("peer stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return Throughput{}, 0, fmt.Errorf("start peer: %w", err)
	}
	var (
		mu      sync.Mutex
		ready   bool
		written int64
		exited  = make(chan error, 1)
	)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			if line == "ready" {
				ready = true
			} else if n, ok := strings.CutPrefix(line, "written "); ok {
				written, _ = strconv.ParseInt(n, 10, 64)
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
			log, _ := os.ReadFile(logPath)
			return false, 0, fmt.Errorf("peer exited (%v): %s", err, tail(log, 2000))
		default:
		}
		mu.Lock()
		defer mu.Unlock()
		return ready, written, nil
	}
	err = waitFor(ctx, 2*time.Minute, "peer ready", func() (bool, error) {
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
	err = waitFor(ctx, measureTimeout, "peer writes", func() (bool, error) {
		_, n, err := state()
		return n >= int64(rows), err
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

// medianPeer combines the peer of repeated runs: figures are medians, the
// check is the worst run's (a difference in any run is reported).
func medianPeer(runs []*Result) *Peer {
	var ps []*Peer
	for _, r := range runs {
		if r.Peer != nil {
			ps = append(ps, r.Peer)
		}
	}
	if len(ps) == 0 {
		return nil
	}
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

// runPeer measures the peer on the run's topic and compares its tables with
// the sink's, which are complete once the sink's pass has ended.
func runPeer(ctx context.Context, cfg Config, brokers []string, topic, prefix, storeRoot string, rows int, input int64) (*Peer, error) {
	// The peer writes batches of the sink's size: its flush threshold for
	// this run's configuration, and its flush interval for the coldest
	// tables.
	sc := sinkConfig(cfg, brokers, topic, "", prefix)
	sc.ApplyDefaults()
	p := peerRun{
		python: cfg.PeerInterpreter, dir: cfg.TempDir, out: filepath.Join(cfg.TempDir, prefix+"-peer"),
		brokers: brokers, topic: topic, group: prefix + "-peer",
		flush: sc.Tables.Default.FlushThreshold, interval: sc.Tables.Default.FlushInterval, parts: cfg.Partitions,
	}
	if p.python == "" {
		p.python = "python3"
	}
	cfg.Log("peer (%s): %d records", cfg.Peer, rows)
	tp, rss, err := measurePeer(ctx, p, rows, input)
	if err != nil {
		return nil, err
	}
	cfg.Log("peer: comparing its tables with the sink's")
	check, err := comparePeer(ctx, p.python, cfg.TempDir, filepath.Join(storeRoot, prefix), p.out)
	if err != nil {
		return nil, err
	}
	return &Peer{Name: cfg.Peer, Throughput: tp, PeakRSS: rss, Check: check}, nil
}

// writePeerRows adds the peer's rows to the table WriteTable prints, when
// any scenario ran one.
func writePeerRows(results []*Result, row func(string, func(*Result) string)) {
	found := false
	for _, r := range results {
		found = found || r.Peer != nil
	}
	if !found {
		return
	}
	peer := func(cell func(*Peer) string) func(*Result) string {
		return func(r *Result) string {
			if r.Peer == nil {
				return "-"
			}
			return cell(r.Peer)
		}
	}
	row("peer", peer(func(p *Peer) string { return p.Name }))
	row("peer records/s", peer(func(p *Peer) string { return fmt.Sprintf("%.0f", p.Throughput.RecordsPerSec) }))
	row("peer records/CPU-s", peer(func(p *Peer) string { return fmt.Sprintf("%.0f", p.Throughput.RecordsPerCPUSec) }))
	row("sink/peer records/CPU-s", peer(func(p *Peer) string { return fmt.Sprintf("%.2f×", p.CPUVsPeer) }))
	row("peer peak RSS", peer(func(p *Peer) string { return fmt.Sprintf("%.1f MiB", float64(p.PeakRSS)/(1<<20)) }))
	row("peer check", peer(func(p *Peer) string {
		if p.Check.OK {
			return fmt.Sprintf("same: %d tables, %d rows, %d values", p.Check.Tables, p.Check.Rows, p.Check.Values)
		}
		return fmt.Sprintf("%d differences", p.Check.DifferencesTotal)
	}))
}

// writePeerDifferences prints the differences the checks found.
func writePeerDifferences(w io.Writer, results []*Result) {
	for _, r := range results {
		if r.Peer == nil || r.Peer.Check.OK {
			continue
		}
		fmt.Fprintf(w, "peer check (%d tables %s): %d differences between the sink's tables and the peer's; the first:\n",
			r.Tables, r.Format, r.Peer.Check.DifferencesTotal)
		for _, d := range r.Peer.Check.Differences {
			b, _ := json.Marshal(d)
			fmt.Fprintf(w, "  %s\n", b)
		}
	}
}
