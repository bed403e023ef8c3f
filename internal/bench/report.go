package bench

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Median combines repeated runs of one scenario: every figure is the
// median of its runs (shared machines are noisy), so the figures of the
// result may come from different runs. Ratios are recomputed from the
// medians of their inputs' ratios.
func Median(runs []*Result) *Result {
	if len(runs) == 0 {
		return nil
	}
	out := *runs[0]
	out.Notes = append([]string(nil), runs[0].Notes...)
	if len(runs) == 1 {
		return &out
	}
	out.Notes = append(out.Notes, fmt.Sprintf("median of %d runs", len(runs)))
	f := func(get func(*Result) float64) float64 {
		v := make([]float64, len(runs))
		for i, r := range runs {
			v[i] = get(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	d := func(get func(*Result) time.Duration) time.Duration {
		return time.Duration(f(func(r *Result) float64 { return float64(get(r)) }))
	}
	tp := func(get func(*Result) *Throughput) Throughput {
		return Throughput{
			Records:          get(runs[0]).Records,
			InputBytes:       get(runs[0]).InputBytes,
			Wall:             d(func(r *Result) time.Duration { return get(r).Wall }),
			CPU:              d(func(r *Result) time.Duration { return get(r).CPU }),
			RecordsPerSec:    f(func(r *Result) float64 { return get(r).RecordsPerSec }),
			MBPerSec:         f(func(r *Result) float64 { return get(r).MBPerSec }),
			RecordsPerCPUSec: f(func(r *Result) float64 { return get(r).RecordsPerCPUSec }),
		}
	}
	out.Sink = tp(func(r *Result) *Throughput { return &r.Sink })
	out.Consume = tp(func(r *Result) *Throughput { return &r.Consume })
	out.Encode = tp(func(r *Result) *Throughput { return &r.Encode })
	out.EncodeBytes = int64(f(func(r *Result) float64 { return float64(r.EncodeBytes) }))
	out.PeakRSS = int64(f(func(r *Result) float64 { return float64(r.PeakRSS) }))
	w := &out.Written
	w.Objects = int(f(func(r *Result) float64 { return float64(r.Written.Objects) }))
	w.DataFiles = int(f(func(r *Result) float64 { return float64(r.Written.DataFiles) }))
	w.Bytes = int64(f(func(r *Result) float64 { return float64(r.Written.Bytes) }))
	w.DataBytes = int64(f(func(r *Result) float64 { return float64(r.Written.DataBytes) }))
	w.BytesPerInputByte = f(func(r *Result) float64 { return r.Written.BytesPerInputByte })
	w.BytesPerRecord = f(func(r *Result) float64 { return r.Written.BytesPerRecord })
	w.ObjectsPerGB = f(func(r *Result) float64 { return r.Written.ObjectsPerGB })
	w.Commits = int(f(func(r *Result) float64 { return float64(r.Written.Commits) }))
	out.PerCommit = PerCommit{
		Requests:          runs[0].PerCommit.Requests,
		RequestsPerCommit: f(func(r *Result) float64 { return r.PerCommit.RequestsPerCommit }),
		CPU:               d(func(r *Result) time.Duration { return r.PerCommit.CPU }),
	}
	out.Latency = Latency{
		Rate:     f(func(r *Result) float64 { return r.Latency.Rate }),
		Records:  int(f(func(r *Result) float64 { return float64(r.Latency.Records) })),
		Measured: int(f(func(r *Result) float64 { return float64(r.Latency.Measured) })),
		P50:      d(func(r *Result) time.Duration { return r.Latency.P50 }),
		P99:      d(func(r *Result) time.Duration { return r.Latency.P99 }),
		Max:      d(func(r *Result) time.Duration { return r.Latency.Max }),
	}
	out.Ratios = Ratios{
		ThroughputVsConsume: f(func(r *Result) float64 { return r.Ratios.ThroughputVsConsume }),
		CPUVsEncode:         f(func(r *Result) float64 { return r.Ratios.CPUVsEncode }),
		CPUVsConsume:        f(func(r *Result) float64 { return r.Ratios.CPUVsConsume }),
		StoreVsEncode:       f(func(r *Result) float64 { return r.Ratios.StoreVsEncode }),
	}
	out.Peers = medianPeers(runs)
	out.Warm = medianWarm(runs, f, d)
	return &out
}

// medianWarm combines the runs' warm passes, nil unless every run has one.
func medianWarm(runs []*Result, f func(func(*Result) float64) float64, d func(func(*Result) time.Duration) time.Duration) *WarmPass {
	for _, r := range runs {
		if r.Warm == nil {
			return nil
		}
	}
	w := *runs[0].Warm
	w.Sink.Wall = d(func(r *Result) time.Duration { return r.Warm.Sink.Wall })
	w.Sink.CPU = d(func(r *Result) time.Duration { return r.Warm.Sink.CPU })
	w.Sink.RecordsPerSec = f(func(r *Result) float64 { return r.Warm.Sink.RecordsPerSec })
	w.Sink.MBPerSec = f(func(r *Result) float64 { return r.Warm.Sink.MBPerSec })
	w.Sink.RecordsPerCPUSec = f(func(r *Result) float64 { return r.Warm.Sink.RecordsPerCPUSec })
	w.CPUVsEncode = f(func(r *Result) float64 { return r.Warm.CPUVsEncode })
	w.Commits = int(f(func(r *Result) float64 { return float64(r.Warm.Commits) }))
	w.DataFiles = int(f(func(r *Result) float64 { return float64(r.Warm.DataFiles) }))
	w.PerCommit.RequestsPerCommit = f(func(r *Result) float64 { return r.Warm.PerCommit.RequestsPerCommit })
	w.PerCommit.CPU = d(func(r *Result) time.Duration { return r.Warm.PerCommit.CPU })
	return &w
}

// WriteTable prints results as a readable table, one column per scenario.
func WriteTable(w io.Writer, results []*Result) error {
	if len(results) == 0 {
		return nil
	}
	fmt.Fprintf(w, "machine: %s\n", results[0].Machine)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	row := func(name string, cell func(*Result) string) {
		cells := []string{name}
		for _, r := range results {
			cells = append(cells, cell(r))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	mib := func(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	row("scenario", func(r *Result) string {
		return strings.TrimSpace(fmt.Sprintf("%d tables %s %s", r.Tables, r.Format, r.TableFormat))
	})
	row("broker / store", func(r *Result) string { return short(r.Broker) + " / " + short(r.Store) })
	row("sink", func(r *Result) string {
		if r.Process {
			return "child process"
		}
		return "in-process"
	})
	row("records (input MB)", func(r *Result) string {
		return fmt.Sprintf("%d (%.1f)", r.Sink.Records, float64(r.Sink.InputBytes)/1e6)
	})
	row("sink records/s", func(r *Result) string { return fmt.Sprintf("%.0f", r.Sink.RecordsPerSec) })
	row("sink MB/s", func(r *Result) string { return fmt.Sprintf("%.1f", r.Sink.MBPerSec) })
	row("sink records/CPU-s", func(r *Result) string { return fmt.Sprintf("%.0f", r.Sink.RecordsPerCPUSec) })
	row("consume-only records/s", func(r *Result) string { return fmt.Sprintf("%.0f", r.Consume.RecordsPerSec) })
	row("consume-only records/CPU-s", func(r *Result) string { return fmt.Sprintf("%.0f", r.Consume.RecordsPerCPUSec) })
	row("decode+encode records/CPU-s", func(r *Result) string { return fmt.Sprintf("%.0f", r.Encode.RecordsPerCPUSec) })
	row("sink/consume records/s", func(r *Result) string { return fmt.Sprintf("%.2f×", r.Ratios.ThroughputVsConsume) })
	row("sink/consume records/CPU-s", func(r *Result) string { return fmt.Sprintf("%.2f×", r.Ratios.CPUVsConsume) })
	row("sink/decode+encode records/CPU-s", func(r *Result) string { return fmt.Sprintf("%.2f×", r.Ratios.CPUVsEncode) })
	row("peak RSS (budget)", func(r *Result) string { return mib(r.PeakRSS) + " (" + mib(r.Budget) + ")" })
	row("store bytes/input byte", func(r *Result) string { return fmt.Sprintf("%.3f", r.Written.BytesPerInputByte) })
	row("store bytes/record", func(r *Result) string { return fmt.Sprintf("%.1f", r.Written.BytesPerRecord) })
	row("data bytes/encode-only bytes", func(r *Result) string { return fmt.Sprintf("%.3f×", r.Ratios.StoreVsEncode) })
	row("objects (data files)", func(r *Result) string { return fmt.Sprintf("%d (%d)", r.Written.Objects, r.Written.DataFiles) })
	row("objects/GB input", func(r *Result) string { return fmt.Sprintf("%.0f", r.Written.ObjectsPerGB) })
	row("table log commits", func(r *Result) string { return fmt.Sprintf("%d", r.Written.Commits) })
	row("store requests/commit", func(r *Result) string { return fmt.Sprintf("%.2f", r.PerCommit.RequestsPerCommit) })
	row("store requests (first run)", func(r *Result) string { return formatRequests(r.PerCommit.Requests) })
	row("sink CPU/commit", func(r *Result) string { return r.PerCommit.CPU.Round(10 * time.Microsecond).String() })
	if slices.ContainsFunc(results, func(r *Result) bool { return r.Warm != nil }) {
		warm := func(cell func(w *WarmPass) string) func(*Result) string {
			return func(r *Result) string {
				if r.Warm == nil {
					return "—"
				}
				return cell(r.Warm)
			}
		}
		row("warm: sink records/CPU-s", warm(func(w *WarmPass) string { return fmt.Sprintf("%.0f", w.Sink.RecordsPerCPUSec) }))
		row("warm: sink/decode+encode records/CPU-s", warm(func(w *WarmPass) string { return fmt.Sprintf("%.2f×", w.CPUVsEncode) }))
		row("warm: data files (commits)", warm(func(w *WarmPass) string { return fmt.Sprintf("%d (%d)", w.DataFiles, w.Commits) }))
		row("warm: store requests/commit", warm(func(w *WarmPass) string { return fmt.Sprintf("%.2f", w.PerCommit.RequestsPerCommit) }))
		row("warm: sink CPU/commit", warm(func(w *WarmPass) string { return w.PerCommit.CPU.Round(10 * time.Microsecond).String() }))
	}
	row("latency load records/s", func(r *Result) string { return fmt.Sprintf("%.0f", r.Latency.Rate) })
	row("produce→visible p50", func(r *Result) string { return r.Latency.P50.Round(time.Millisecond).String() })
	row("produce→visible p99", func(r *Result) string { return r.Latency.P99.Round(time.Millisecond).String() })
	row("flush interval", func(r *Result) string { return r.Flush })
	writePeerRows(results, row)
	if err := tw.Flush(); err != nil {
		return err
	}
	writePeerDifferences(w, results)
	for _, r := range results {
		for _, n := range r.Notes {
			fmt.Fprintf(w, "note (%d tables %s): %s\n", r.Tables, r.Format, n)
		}
	}
	return nil
}

func short(s string) string {
	if len(s) > 28 {
		return s[:25] + "..."
	}
	return s
}

// formatRequests prints request counts by operation, skipping zeros.
func formatRequests(m map[string]int64) string {
	ops := make([]string, 0, len(m))
	for op, n := range m {
		if n > 0 {
			ops = append(ops, op)
		}
	}
	sort.Strings(ops)
	parts := make([]string, len(ops))
	for i, op := range ops {
		parts[i] = fmt.Sprintf("%s %d", op, m[op])
	}
	return strings.Join(parts, ", ")
}
