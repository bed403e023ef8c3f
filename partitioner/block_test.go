package partitioner

import (
	"math"
	"slices"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBlockIDRoundTrip(t *testing.T) {
	srcs := []SourceRange{{Topic: "cdc", Partition: 0, FirstOffset: 10, LastOffset: 20}}
	cases := []struct {
		name string
		id   BlockID
		want string // prefix before the hash
	}{
		{name: "small", id: BlockID{FirstLSN: 100, LastLSN: 200, Sources: srcs}, want: "00000000000000000100-00000000000000000200-"},
		{name: "zero", id: BlockID{}, want: "00000000000000000000-00000000000000000000-"},
		{name: "above 2^53", id: BlockID{FirstLSN: 1<<53 + 1, LastLSN: 1<<53 + 3, Sources: srcs}, want: "00009007199254740993-00009007199254740995-"},
		{name: "above 2^63", id: BlockID{FirstLSN: 1<<63 + 1, LastLSN: math.MaxUint64, Sources: srcs}, want: "09223372036854775809-18446744073709551615-"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, tc.id.Validate())
			s := tc.id.String()
			require.Len(t, s, 20+1+20+1+16)
			require.Equal(t, tc.want, s[:42])

			got, err := ParseBlockID(s)
			require.NoError(t, err)
			require.Equal(t, tc.id.FirstLSN, got.FirstLSN)
			require.Equal(t, tc.id.LastLSN, got.LastLSN)
			require.Equal(t, tc.id.SourcesHash(), got.Hash)
			require.Equal(t, s, got.String(), "a parsed id names the same block")
			require.NoError(t, got.Validate())

			key := DataFileKey(tc.id)
			require.Equal(t, "data/"+s+".parquet", key)
			f, err := ParseFileKey(key)
			require.NoError(t, err)
			require.Equal(t, FileName{FirstLSN: tc.id.FirstLSN, LastLSN: tc.id.LastLSN, Level: 0, Hash: got.Hash}, f)
		})
	}
}

func TestBlockIDDeterministic(t *testing.T) {
	a := BlockID{FirstLSN: 5, LastLSN: 9, Sources: []SourceRange{
		{Topic: "t1", Partition: 1, FirstOffset: 3, LastOffset: 4},
		{Topic: "t1", Partition: 0, FirstOffset: 7, LastOffset: 8},
		{Topic: "t0", Partition: 2, FirstOffset: 0, LastOffset: 0},
	}}
	b := a
	b.Sources = slices.Clone(a.Sources)
	slices.Reverse(b.Sources)
	require.Equal(t, a.String(), b.String(), "source order does not matter")
	require.Equal(t, "t1", a.Sources[0].Topic, "String does not reorder the caller's slice")

	// Any change of coordinates gives another name.
	variants := []func(*BlockID){
		func(id *BlockID) { id.FirstLSN++ },
		func(id *BlockID) { id.LastLSN++ },
		func(id *BlockID) { id.Sources[0].LastOffset++ },
		func(id *BlockID) { id.Sources[0].FirstOffset++ },
		func(id *BlockID) { id.Sources[0].Partition = 9 },
		func(id *BlockID) { id.Sources[0].Topic = "t2" },
		func(id *BlockID) { id.Sources = id.Sources[:2] },
	}
	seen := map[string]bool{a.String(): true}
	for i, mutate := range variants {
		c := a
		c.Sources = slices.Clone(a.Sources)
		mutate(&c)
		require.False(t, seen[c.String()], "variant %d collides", i)
		seen[c.String()] = true
	}

	// Topic boundaries are length-prefixed: ("ab", "c") and ("a", "bc") differ.
	x := BlockID{Sources: []SourceRange{{Topic: "ab"}, {Topic: "c"}}}
	y := BlockID{Sources: []SourceRange{{Topic: "a"}, {Topic: "bc"}}}
	require.NotEqual(t, x.String(), y.String())
}

func TestBlockIDsSortByLSN(t *testing.T) {
	lsns := [][2]uint64{
		{0, 0}, {1, 1}, {9, 10}, {10, 10}, {10, 11}, {99, 100},
		{1<<53 - 1, 1 << 53}, {1 << 53, 1<<53 + 1}, {1<<63 - 1, 1 << 63}, {1 << 63, 1<<63 + 5}, {math.MaxUint64, math.MaxUint64},
	}
	var names, keys []string
	for i, r := range lsns {
		id := BlockID{FirstLSN: r[0], LastLSN: r[1], Sources: []SourceRange{{Topic: "t", FirstOffset: int64(i), LastOffset: int64(i)}}}
		names = append(names, id.String())
		keys = append(keys, DataFileKey(id))
	}
	require.True(t, sort.StringsAreSorted(names), "names sort in LSN order: %v", names)
	require.True(t, sort.StringsAreSorted(keys))
}

func TestBlockIDValidate(t *testing.T) {
	cases := []struct {
		name      string
		id        BlockID
		wantError string
	}{
		{name: "reversed LSNs", id: BlockID{FirstLSN: 2, LastLSN: 1}, wantError: "first LSN 2 after last LSN 1"},
		{name: "empty topic", id: BlockID{Sources: []SourceRange{{}}}, wantError: "empty topic"},
		{name: "negative partition", id: BlockID{Sources: []SourceRange{{Topic: "t", Partition: -1}}}, wantError: "bad source range"},
		{name: "negative offset", id: BlockID{Sources: []SourceRange{{Topic: "t", FirstOffset: -1}}}, wantError: "bad source range"},
		{name: "reversed offsets", id: BlockID{Sources: []SourceRange{{Topic: "t", FirstOffset: 3, LastOffset: 2}}}, wantError: "bad source range"},
		{name: "bad hash", id: BlockID{Hash: "XYZ"}, wantError: "hash"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorContains(t, tc.id.Validate(), tc.wantError)
		})
	}
}

func TestParseBlockIDRejects(t *testing.T) {
	good := BlockID{FirstLSN: 1, LastLSN: 2}.String()
	cases := []struct {
		name string
		in   string
	}{
		{name: "empty", in: ""},
		{name: "two fields", in: "00000000000000000001-00000000000000000002"},
		{name: "short LSN", in: "1-00000000000000000002-0123456789abcdef"},
		{name: "sign", in: "+0000000000000000001-00000000000000000002-0123456789abcdef"},
		{name: "overflow", in: "99999999999999999999-99999999999999999999-0123456789abcdef"},
		{name: "reversed", in: "00000000000000000002-00000000000000000001-0123456789abcdef"},
		{name: "upper hash", in: "00000000000000000001-00000000000000000002-0123456789ABCDEF"},
		{name: "short hash", in: "00000000000000000001-00000000000000000002-0123"},
		{name: "compacted file", in: "00000000000000000001-00000000000000000002-L1-0123456789abcdef"},
		{name: "with suffix", in: good + ".parquet"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseBlockID(tc.in)
			require.Error(t, err)
		})
	}
}

func TestPartitionFileKey(t *testing.T) {
	inputs := []string{"data/b.parquet", "data/a.parquet"}
	h := InputsHash(inputs)
	require.Equal(t, h, InputsHash([]string{"data/a.parquet", "data/b.parquet"}), "input order does not matter")
	require.Equal(t, []string{"data/b.parquet", "data/a.parquet"}, inputs, "InputsHash does not reorder the caller's slice")
	require.NotEqual(t, h, InputsHash([]string{"data/a.parquet"}))

	cases := []struct {
		name         string
		first, last  uint64
		level        int
		hash         string
		want         string
		wantLevel    int
		hashVerbatim bool
	}{
		{name: "level 1", first: 100, last: 900, level: 1, hash: h, want: "data/00000000000000000100-00000000000000000900-L1-" + h + ".parquet", wantLevel: 1, hashVerbatim: true},
		{name: "level 12 above 2^63", first: 1 << 63, last: math.MaxUint64, level: 12, hash: h, want: "data/09223372036854775808-18446744073709551615-L12-" + h + ".parquet", wantLevel: 12, hashVerbatim: true},
		{name: "level 0 becomes 1", first: 1, last: 2, level: 0, hash: h, wantLevel: 1, hashVerbatim: true},
		{name: "free-form hash is digested", first: 1, last: 2, level: 2, hash: "not-a-hash/..", wantLevel: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := PartitionFileKey(tc.first, tc.last, tc.level, tc.hash)
			if tc.want != "" {
				require.Equal(t, tc.want, key)
			}
			f, err := ParseFileKey(key)
			require.NoError(t, err)
			require.Equal(t, tc.first, f.FirstLSN)
			require.Equal(t, tc.last, f.LastLSN)
			require.Equal(t, tc.wantLevel, f.Level)
			if tc.hashVerbatim {
				require.Equal(t, tc.hash, f.Hash)
			}
			require.Equal(t, key, PartitionFileKey(f.FirstLSN, f.LastLSN, f.Level, f.Hash), "round trip")
		})
	}
	require.Equal(t, PartitionFileKey(1, 2, 2, "x"), PartitionFileKey(1, 2, 2, "x"), "digested hashes are deterministic")
}

func TestCompactedFilesSortAmongBlocks(t *testing.T) {
	keys := []string{
		DataFileKey(BlockID{FirstLSN: 1, LastLSN: 5}),
		PartitionFileKey(6, 50, 1, InputsHash([]string{"x"})),
		DataFileKey(BlockID{FirstLSN: 51, LastLSN: 60}),
		PartitionFileKey(61, 1<<60, 2, InputsHash([]string{"y"})),
	}
	require.True(t, sort.StringsAreSorted(keys), "%v", keys)
}

func TestParseFileKeyRejects(t *testing.T) {
	cases := []string{
		"",
		"00000000000000000001-00000000000000000002-0123456789abcdef.parquet",
		"data/00000000000000000001-00000000000000000002-0123456789abcdef",
		"data/00000000000000000001-00000000000000000002-0123456789abcdef.json",
		"data/00000000000000000001-00000000000000000002-X1-0123456789abcdef.parquet",
		"data/00000000000000000001-00000000000000000002-L0-0123456789abcdef.parquet",
		"data/00000000000000000001-00000000000000000002-L01-0123456789abcdef.parquet",
		"data/00000000000000000001-00000000000000000002-L-1-0123456789abcdef.parquet",
		"data/00000000000000000001-00000000000000000002-L1-x-0123456789abcdef.parquet",
		"data/sub/00000000000000000001-00000000000000000002-0123456789abcdef.parquet",
	}
	for _, key := range cases {
		t.Run(key, func(t *testing.T) {
			_, err := ParseFileKey(key)
			require.Error(t, err)
		})
	}
}

func FuzzParseFileKey(f *testing.F) {
	f.Add(DataFileKey(BlockID{FirstLSN: 1, LastLSN: 2}))
	f.Add(PartitionFileKey(1, 2, 3, "h"))
	f.Add("data/-.parquet")
	f.Fuzz(func(t *testing.T, key string) {
		fn, err := ParseFileKey(key)
		if err != nil {
			return
		}
		// Anything that parses is canonical: formatting it again gives the
		// same key.
		var again string
		if fn.Level == 0 {
			again = DataFileKey(BlockID{FirstLSN: fn.FirstLSN, LastLSN: fn.LastLSN, Hash: fn.Hash})
		} else {
			again = PartitionFileKey(fn.FirstLSN, fn.LastLSN, fn.Level, fn.Hash)
		}
		require.Equal(t, key, again)
	})
}
