package compaction

import (
	"slices"
	"strings"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/partitioner"
	"github.com/evodb/sink/tablefile"
)

// DefaultMinInputs is the fewest files a job merges unless its output is a
// finished file (see Plan).
const DefaultMinInputs = 4

// DefaultMaxJobBytes bounds the input bytes of one job. The executor decodes
// every input fully into memory, so this bounds the compactor's memory.
const DefaultMaxJobBytes = 256 << 20

// PlanOptions tunes Plan. Zero fields take the defaults.
type PlanOptions struct {
	// MinInputs is the fewest inputs of a job whose output stays small;
	// default DefaultMinInputs.
	MinInputs int
	// MaxInputs is the most inputs of a job; default the mode's
	// MaxMergeInputs (8, or 16 for enterprise).
	MaxInputs int
	// MaxJobBytes bounds the summed input sizes of a job, and with it the
	// compactor's memory; default DefaultMaxJobBytes. Below the mode's
	// PartitionMax it also lowers the largest file compaction builds.
	MaxJobBytes int64
}

func (o PlanOptions) withDefaults(mode partitioner.Mode) PlanOptions {
	if o.MinInputs <= 0 {
		o.MinInputs = DefaultMinInputs
	}
	if o.MaxInputs <= 0 {
		o.MaxInputs = mode.MaxMergeInputs
	}
	if o.MaxInputs < 2 {
		o.MaxInputs = 2
	}
	o.MinInputs = max(2, min(o.MinInputs, o.MaxInputs))
	if o.MaxJobBytes <= 0 {
		o.MaxJobBytes = DefaultMaxJobBytes
	}
	return o
}

// SizeCap is the largest output a job may build for mode under opts: the
// mode's partition max, or less if opts.MaxJobBytes is smaller. Files of at
// least SizeCap/2 are finished and never rewritten.
func SizeCap(mode partitioner.Mode, opts PlanOptions) int64 {
	opts = opts.withDefaults(mode)
	c := mode.PartitionMax
	if opts.MaxJobBytes < c {
		c = opts.MaxJobBytes
	}
	return max(c, 2)
}

// Job is one merge: its inputs, in LSN order, become one file of Level.
type Job struct {
	Inputs []committer.Add
	// Level is the output's compaction level: one above its highest input.
	Level int
	// Bytes is the summed size of the inputs, the estimate of the output.
	Bytes          int64
	MinLSN, MaxLSN uint64
}

// Paths returns the inputs' paths.
func (j Job) Paths() []string {
	out := make([]string, len(j.Inputs))
	for i, a := range j.Inputs {
		out[i] = a.Path
	}
	return out
}

// fileRef is an active file as the planner sees it.
type fileRef struct {
	add            committer.Add
	minLSN, maxLSN uint64
	level          int
	small          bool
}

// Plan returns the merge jobs for a table snapshot; it is a pure function of
// its inputs. No two jobs share an input.
//
// Only files the sink wrote are planned (tablefile.WrittenBySink): another
// writer's files (a Spark or delta-rs job appending to the table) have no
// evodb Parquet metadata the executor could read them by, and are left
// alone as they are; their _lsn statistics, if any, are not used. Files
// are ordered by LSN range (tablefile.LSNRange). A file of at least SizeCap/2 bytes is finished and never an
// input. The other, small, files are merged in three passes, each used only
// when the ones before it found nothing, so write amplification stays low:
//
//  1. Tiers: within each run of LSN-adjacent small files of one level,
//     consecutive files are grouped greedily, up to MaxInputs files and
//     SizeCap bytes. Level-0 blocks become level-1 files, level-n files
//     level-n+1.
//  2. Mixed runs: the same within each run of LSN-adjacent small files
//     whatever their levels (the output's level is one above the highest).
//  3. Leftovers: the same over all small files in LSN order, across finished
//     files, so that no small file is stranded between two finished ones.
//     The output's LSN range then overlaps a finished file's; rows stay
//     correct and in _lsn order within each file.
//
// A group becomes a job when it has at least MinInputs files or when its
// output reaches SizeCap/2 (a finished file) with at least two inputs.
//
// Bound: when Plan returns no job, pass 3 found no group, so the small files
// number fewer than MinInputs and total under SizeCap/2 bytes (any
// MinInputs consecutive small files, or any run reaching SizeCap/2, would
// form a job, since two small files always fit under SizeCap together). Each
// finished file holds at least SizeCap/2 bytes. Hence after compacting to
// a fixpoint with no new writes,
//
//	files ≤ ceil(total bytes / (SizeCap/2)) + MinInputs - 1.
func Plan(snap *committer.Snapshot, mode partitioner.Mode, opts PlanOptions) []Job {
	opts = opts.withDefaults(mode)
	limit := SizeCap(mode, opts)
	var files []fileRef
	for _, a := range snap.Files {
		lo, hi, ok := tablefile.LSNRange(a)
		if !ok {
			continue
		}
		files = append(files, fileRef{add: a, minLSN: lo, maxLSN: hi, level: tablefile.Level(a), small: a.Size < limit/2})
	}
	slices.SortFunc(files, func(a, b fileRef) int {
		switch {
		case a.minLSN != b.minLSN:
			return cmpU64(a.minLSN, b.minLSN)
		case a.maxLSN != b.maxLSN:
			return cmpU64(a.maxLSN, b.maxLSN)
		}
		return strings.Compare(a.add.Path, b.add.Path)
	})

	// Runs of LSN-adjacent small files, cut at every finished file.
	var runs [][]fileRef
	var cur []fileRef
	for _, f := range files {
		if !f.small {
			if len(cur) > 0 {
				runs = append(runs, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, f)
	}
	if len(cur) > 0 {
		runs = append(runs, cur)
	}

	var jobs []Job
	// Pass 1: tiers of one level.
	for _, run := range runs {
		start := 0
		for i := 1; i <= len(run); i++ {
			if i == len(run) || run[i].level != run[start].level {
				jobs = append(jobs, group(run[start:i], opts, limit)...)
				start = i
			}
		}
	}
	if len(jobs) > 0 {
		return jobs
	}
	// Pass 2: mixed levels within a run.
	for _, run := range runs {
		jobs = append(jobs, group(run, opts, limit)...)
	}
	if len(jobs) > 0 {
		return jobs
	}
	// Pass 3: all small files, across finished ones.
	var all []fileRef
	for _, run := range runs {
		all = append(all, run...)
	}
	return group(all, opts, limit)
}

// group cuts consecutive files into jobs greedily from the left: a window
// grows while it stays within MaxInputs files and limit bytes; it becomes a
// job if it has MinInputs files or reaches limit/2 bytes with two files,
// and otherwise the window starts one file later.
func group(files []fileRef, opts PlanOptions, limit int64) []Job {
	var jobs []Job
	for i := 0; i < len(files); {
		n, size := 0, int64(0)
		for i+n < len(files) && n < opts.MaxInputs && size+files[i+n].add.Size <= limit {
			size += files[i+n].add.Size
			n++
		}
		if n >= opts.MinInputs || (n >= 2 && size >= limit/2) {
			jobs = append(jobs, newJob(files[i:i+n]))
			i += n
			continue
		}
		i++
	}
	return jobs
}

func newJob(files []fileRef) Job {
	j := Job{MinLSN: files[0].minLSN, MaxLSN: files[0].maxLSN}
	top := 0
	for _, f := range files {
		j.Inputs = append(j.Inputs, f.add)
		j.Bytes += f.add.Size
		j.MinLSN = min(j.MinLSN, f.minLSN)
		j.MaxLSN = max(j.MaxLSN, f.maxLSN)
		top = max(top, f.level)
	}
	j.Level = top + 1
	return j
}

func cmpU64(a, b uint64) int {
	if a < b {
		return -1
	}
	return 1
}
