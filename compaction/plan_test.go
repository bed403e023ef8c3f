package compaction

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/partitioner"
	"github.com/evodb/sink/tablefile"
)

// planMode: files of 500 bytes or more are finished.
var planMode = partitioner.Mode{Name: "plan", BlockSize: 10, PartitionMax: 1000, MaxMergeInputs: 8}

// spec is a file as a planner case describes it: size and level, laid out
// at consecutive LSN ranges in the order given.
type spec struct {
	size  int64
	level int
}

func files(specs ...spec) []committer.Add {
	var out []committer.Add
	lsn := uint64(1)
	for i, s := range specs {
		lo, hi := lsn, lsn+9
		lsn += 10
		out = append(out, committer.Add{
			Path: fmt.Sprintf("data/f%03d.parquet", i), Size: s.size,
			Tags: map[string]string{tablefile.TagMinLSN: strconv.FormatUint(lo, 10), tablefile.TagMaxLSN: strconv.FormatUint(hi, 10), tablefile.TagLevel: strconv.Itoa(s.level)},
		})
	}
	return out
}

func repeat(n int, s spec) []spec {
	out := make([]spec, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func cat(parts ...[]spec) []spec {
	var out []spec
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func snapOf(adds ...committer.Add) *committer.Snapshot {
	s := &committer.Snapshot{Files: map[string]committer.Add{}}
	for _, a := range adds {
		s.Files[a.Path] = a
	}
	return s
}

// jobShape is a job as cases expect it: input indexes and output level.
type jobShape struct {
	inputs []int
	level  int
}

func span(lo, hi int) []int {
	var out []int
	for i := lo; i <= hi; i++ {
		out = append(out, i)
	}
	return out
}

func TestPlan(t *testing.T) {
	l0, l1 := spec{10, 0}, spec{100, 1}
	for _, tc := range []struct {
		name  string
		specs []spec
		opts  PlanOptions
		want  []jobShape
	}{
		{name: "empty", specs: nil, want: nil},
		{name: "fewer than min inputs", specs: repeat(3, l0), want: nil},
		{name: "four level-0 blocks become level 1", specs: repeat(4, l0), want: []jobShape{{span(0, 3), 1}}},
		{name: "max inputs splits a run", specs: repeat(20, l0),
			want: []jobShape{{span(0, 7), 1}, {span(8, 15), 1}, {span(16, 19), 1}}},
		{name: "max inputs configurable", specs: repeat(6, l0), opts: PlanOptions{MaxInputs: 3, MinInputs: 3},
			want: []jobShape{{span(0, 2), 1}, {span(3, 5), 1}}},
		{name: "min inputs configurable", specs: repeat(2, l0), opts: PlanOptions{MinInputs: 2},
			want: []jobShape{{span(0, 1), 1}}},
		{name: "tiers merge per level first", specs: cat(repeat(8, l1), repeat(4, l0)),
			want: []jobShape{{span(0, 7), 2}, {span(8, 11), 1}}},
		{name: "size cap stops a group; a finished output needs no min inputs", specs: repeat(6, spec{300, 1}),
			want: []jobShape{{span(0, 2), 2}, {span(3, 5), 2}}},
		{name: "max job bytes lowers the cap", specs: repeat(6, spec{60, 0}), opts: PlanOptions{MaxJobBytes: 200},
			want: []jobShape{{span(0, 2), 1}, {span(3, 5), 1}}},
		{name: "finished files are left alone and cut runs",
			specs: cat(repeat(4, l0), []spec{{600, 2}}, repeat(4, l0)),
			want:  []jobShape{{span(0, 3), 1}, {span(5, 8), 1}}},
		{name: "all finished", specs: repeat(5, spec{500, 2}), want: nil},
		{name: "non-adjacent levels: the level-0 tier goes first",
			specs: cat(repeat(2, l1), repeat(4, l0), repeat(2, l1)),
			want:  []jobShape{{span(2, 5), 1}}},
		{name: "mixed levels merge when no tier can",
			specs: cat(repeat(2, l1), repeat(2, l0), []spec{{100, 2}}),
			want:  []jobShape{{span(0, 4), 3}}},
		{name: "stranded small files merge across a finished file",
			specs: cat(repeat(2, l0), []spec{{600, 2}}, repeat(2, l0)),
			want:  []jobShape{{[]int{0, 1, 3, 4}, 1}}},
		{name: "too few stranded files stay", specs: cat(repeat(1, l0), []spec{{600, 2}}, repeat(2, l0)), want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			adds := files(tc.specs...)
			jobs := Plan(snapOf(adds...), planMode, tc.opts)
			var got []jobShape
			index := map[string]int{}
			for i, a := range adds {
				index[a.Path] = i
			}
			for _, j := range jobs {
				var in []int
				var bytes int64
				for _, a := range j.Inputs {
					in = append(in, index[a.Path])
					bytes += a.Size
				}
				require.Equal(t, bytes, j.Bytes)
				require.LessOrEqual(t, j.Bytes, SizeCap(planMode, tc.opts))
				got = append(got, jobShape{in, j.Level})
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestPlanLSNSources(t *testing.T) {
	stats := func(lo, hi uint64) *codec.BlockStats {
		return &codec.BlockStats{Rows: 1, MinLSN: lo, MaxLSN: hi}
	}
	adds := []committer.Add{
		// Tags win over stats and names.
		{Path: "data/x.parquet", Size: 10, Stats: stats(1, 1), Tags: map[string]string{tablefile.TagMinLSN: "40", tablefile.TagMaxLSN: "49"}},
		// The name when there are no tags.
		{Path: partitioner.PartitionFileKey(20, 29, 2, "z"), Size: 10, Stats: stats(1, 1)},
		{Path: partitioner.DataFileKey(partitioner.BlockID{FirstLSN: 30, LastLSN: 39}), Size: 10},
		{Path: partitioner.DataFileKey(partitioner.BlockID{FirstLSN: 50, LastLSN: 59}), Size: 10},
		// Another writer's file, with the table's _lsn column in its
		// stats but neither tags nor a sink name: never planned, since
		// the executor cannot read it as a block.
		{Path: "part-00000-0b5f-c000.snappy.parquet", Size: 10, Stats: stats(10, 19)},
		{Path: "data/y.parquet", Size: 10, Stats: stats(10, 19)},
		// No LSN at all: never planned.
		{Path: "data/w.parquet", Size: 10},
	}
	jobs := Plan(snapOf(adds...), planMode, PlanOptions{})
	require.Len(t, jobs, 1)
	require.Equal(t, []string{adds[1].Path, adds[2].Path, "data/x.parquet", adds[3].Path}, jobs[0].Paths())
	require.Equal(t, 3, jobs[0].Level, "one above the level-2 name")
	require.Equal(t, uint64(20), jobs[0].MinLSN)
	require.Equal(t, uint64(59), jobs[0].MaxLSN)
}

// TestPlanBound compacts random tables to a fixpoint with a simulated
// executor (an output is as large as its inputs) and checks the bound
// stated on Plan.
func TestPlanBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 300 {
		mode := planMode
		opts := PlanOptions{MinInputs: 2 + rng.IntN(5), MaxInputs: 0}
		if rng.IntN(2) == 0 {
			opts.MaxInputs = opts.MinInputs + rng.IntN(10)
		}
		var specs []spec
		for range rng.IntN(200) {
			s := spec{size: 1 + rng.Int64N(60), level: 0}
			if rng.IntN(10) == 0 {
				s = spec{size: 1 + rng.Int64N(mode.PartitionMax), level: rng.IntN(3)}
			}
			specs = append(specs, s)
		}
		snap := snapOf(files(specs...)...)
		next := 0
		for rounds := 0; ; rounds++ {
			require.Less(t, rounds, 100, "no fixpoint")
			jobs := Plan(snap, mode, opts)
			if len(jobs) == 0 {
				break
			}
			for _, j := range jobs {
				for _, a := range j.Inputs {
					_, ok := snap.Files[a.Path]
					require.True(t, ok, "two jobs share %s", a.Path)
					delete(snap.Files, a.Path)
				}
				next++
				p := fmt.Sprintf("data/out%05d.parquet", next)
				snap.Files[p] = committer.Add{Path: p, Size: j.Bytes, Tags: map[string]string{
					tablefile.TagMinLSN: strconv.FormatUint(j.MinLSN, 10), tablefile.TagMaxLSN: strconv.FormatUint(j.MaxLSN, 10), tablefile.TagLevel: strconv.Itoa(j.Level)}}
			}
		}
		var total int64
		for _, a := range snap.Files {
			total += a.Size
		}
		half := SizeCap(mode, opts) / 2
		o := opts.withDefaults(mode)
		bound := int((total+half-1)/half) + o.MinInputs - 1
		require.LessOrEqual(t, len(snap.Files), bound, "iteration %d: %d files, %d bytes", iter, len(snap.Files), total)
	}
}
