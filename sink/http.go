package sink

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/evodb/sink/partitioner"
)

// TableStatus is one table's entry in /status.
type TableStatus struct {
	Table string `json:"table"`
	// Format is the table's format (delta, iceberg); Version is the
	// format's version of the table (Delta log version, Iceberg snapshot
	// sequence number).
	Format           string    `json:"format"`
	Version          int64     `json:"version"`
	LastCommit       time.Time `json:"last_commit,omitzero"`
	FreshnessSeconds float64   `json:"freshness_seconds"`
	BufferedBytes    int64     `json:"buffered_bytes"`
	BufferedRecords  int       `json:"buffered_records"`
	RowsWritten      int64     `json:"rows_written"`
	Flushing         bool      `json:"flushing"`
}

// PartitionStatus is one assigned partition's entry in /status.
type PartitionStatus struct {
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	DurableFrom int64  `json:"durable_from"`
	HighWater   int64  `json:"high_watermark"`
	Lag         int64  `json:"lag"`
}

// Status is the /status document.
type Status struct {
	Instance      string            `json:"instance"`
	Ready         bool              `json:"ready"`
	Paused        bool              `json:"paused"`
	BufferedBytes int64             `json:"buffered_bytes"`
	RowsWritten   int64             `json:"rows_written"`
	Tables        []TableStatus     `json:"tables,omitempty"`
	Partitions    []PartitionStatus `json:"partitions,omitempty"`
	Error         string            `json:"error,omitempty"`
}

// Status reports the sink's tables and partitions.
func (s *Sink) Status() Status { return s.status(true) }

// status is Status, without the per-table and per-partition lists unless
// detail is set.
func (s *Sink) status(detail bool) Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Instance: s.instance, Ready: s.Ready(), Paused: s.ctrl.Paused(), BufferedBytes: s.buffered}
	if s.fatal != nil {
		st.Error = s.fatal.Error()
	}
	for _, w := range s.tables {
		st.RowsWritten += w.committedRows()
	}
	if !detail {
		return st
	}
	now := s.now()
	for _, w := range s.tables {
		st.Tables = append(st.Tables, w.status(now))
	}
	sort.Slice(st.Tables, func(i, j int) bool { return st.Tables[i].Table < st.Tables[j].Table })
	for _, p := range s.parts {
		ps := PartitionStatus{Topic: p.tp.topic, Partition: p.tp.partition, DurableFrom: p.durableFrom(), HighWater: p.hwm}
		if p.hwm >= 0 {
			ps.Lag = max(0, p.hwm-ps.DurableFrom)
		}
		st.Partitions = append(st.Partitions, ps)
	}
	sort.Slice(st.Partitions, func(i, j int) bool {
		a, b := st.Partitions[i], st.Partitions[j]
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		return a.Partition < b.Partition
	})
	return st
}

// Handler serves /metrics (from gatherer), /healthz, /readyz, /status and,
// only with http.pprof set, the Go profiler under /debug/pprof/: nothing
// here is authenticated, and the profiler's answers reveal the process's
// memory and cost CPU.
func (s *Sink) Handler(gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	if s.cfg.HTTP.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		fatal := s.fatal
		s.mu.Unlock()
		if fatal != nil {
			http.Error(w, fatal.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.Ready() {
			http.Error(w, "not ready: joining the group or store unreachable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	// /status?summary=true leaves out the table and partition lists: a
	// cheap poll for a sink with many tables.
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s.status(r.URL.Query().Get("summary") != "true"))
	})
	return mux
}

// TableInfo names a table this member writes and how.
type TableInfo struct {
	Path        string
	Mode        partitioner.Mode
	Compression string
	// Mirror is the table's mirror configuration, nil unless enabled.
	Mirror *MirrorConfig
}

// Tables lists the tables this member has written to or loaded.
func (s *Sink) Tables() []TableInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TableInfo, 0, len(s.tables))
	for _, t := range s.tables {
		ti := TableInfo{Path: t.path, Mode: t.mode, Compression: t.cfg.Compression}
		if t.cfg.MirrorEnabled() {
			ti.Mirror = t.cfg.Mirror
		}
		out = append(out, ti)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Instance is the name this member writes into commit logs.
func (s *Sink) Instance() string { return s.instance }

// WaitUnpaused returns once fetching is not paused by the memory budget (or
// ctx ends): background work such as compaction calls it to yield to
// ingestion.
func (s *Sink) WaitUnpaused(ctx context.Context) error {
	for {
		if !s.ctrl.Paused() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Ready reports whether the sink has joined its group and reached its store.
func (s *Sink) Ready() bool { return s.joined.Load() && s.storeOK.Load() }
