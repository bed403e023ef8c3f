package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/parquetblock"
	"github.com/evodb/sink/internal/codectest"
)

// TestBlockReaders has pyarrow and DuckDB read a block of every type
// written in many small pages and row groups, value by value, and DuckDB
// count rows under filters it answers from the row groups' statistics
// (e2e/readers/check_block.py). The sink's tables hold pages of up to a
// megabyte, which their scenarios rarely fill; this block has hundreds
// of pages, so every page boundary, page index entry and row group's
// statistics is read by readers that are not parquet-go.
func TestBlockReaders(t *testing.T) {
	svc := needServices(t)
	if svc.python == "" {
		t.Fatal("SINK_TEST_PYTHON is not set: this test needs the independent readers (see .ci/run)")
	}
	changes := codectest.ManyTypesChanges(20000, 3)
	s := codec.NewSchema()
	s.SetKafkaColumns(true)
	for i := range changes {
		_, err := s.Accept(&changes[i])
		require.NoError(t, err)
	}
	dir := t.TempDir()
	block := filepath.Join(dir, "block.parquet")
	f, err := os.Create(block)
	require.NoError(t, err)
	_, err = parquetblock.EncodeBlock(f, s, changes, parquetblock.EncodeOptions{KafkaColumns: true, RowGroupBytes: 256 << 10, PageBytes: 4 << 10})
	require.NoError(t, err)
	require.NoError(t, f.Close())

	// What the readers must return: the block as parquet-go reads it
	// (the unit tests hold that to the changes), each value as canonical
	// text, in the file's column order.
	data, err := os.ReadFile(block)
	require.NoError(t, err)
	got, back, err := parquetblock.ReadBlock(strings.NewReader(string(data)), int64(len(data)))
	require.NoError(t, err)
	cols := []string{codec.ColOp, codec.ColLSN, codec.ColTS, codec.ColTopic, codec.ColPartition, codec.ColOffset}
	for _, c := range got.Columns() {
		cols = append(cols, c.Name)
	}
	rows := make([][]*string, len(back))
	counts := map[string]int{"wide < 0": 0, "price < 0": 0, "id < 0": 0, "small > 100": 0, "name > 'm'": 0}
	for i, ch := range back {
		str := func(s string) *string { return &s }
		row := []*string{str(ch.Op.String()), str(strconv.FormatUint(ch.LSN, 10)), str(strconv.FormatInt(ch.TS, 10)),
			str(ch.Topic), str(strconv.Itoa(int(ch.Partition))), str(strconv.FormatInt(ch.Offset, 10))}
		vals := map[string]codec.Value{}
		for _, fv := range ch.Row {
			vals[fv.Name] = fv.Value
		}
		for _, c := range got.Columns() {
			v := vals[c.Name]
			if v.IsNull() {
				row = append(row, nil)
				continue
			}
			text := canonicalValue(t, c.Type, v)
			row = append(row, &text)
		}
		rows[i] = row
		neg := func(name string) bool { v := vals[name]; return !v.IsNull() && v.Unscaled().Sign() < 0 }
		if neg("wide") {
			counts["wide < 0"]++
		}
		if neg("price") {
			counts["price < 0"]++
		}
		if v := vals["id"]; !v.IsNull() && v.Int() < 0 {
			counts["id < 0"]++
		}
		if v := vals["small"]; !v.IsNull() && v.Int() > 100 {
			counts["small > 100"]++
		}
		if v := vals["name"]; !v.IsNull() && v.Str() > "m" {
			counts["name > 'm'"]++
		}
	}
	for cond, n := range counts {
		require.NotZero(t, n, cond)
		require.Less(t, n, len(back), cond)
	}
	want, err := json.Marshal(map[string]any{"columns": cols, "rows": rows, "counts": counts})
	require.NoError(t, err)
	wantPath := filepath.Join(dir, "want.json")
	require.NoError(t, os.WriteFile(wantPath, want, 0o644))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, svc.python, "readers/check_block.py", block, wantPath)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "check_block.py: %s", stderr.String())
	var res map[string]string
	require.NoError(t, json.Unmarshal(out, &res), "check_block.py printed %s", out)
	require.Equal(t, map[string]string{"pyarrow": "ok", "duckdb": "ok"}, res)
}

// canonicalValue is a value's text as check_block.py writes what a
// reader returns: integers, dates (days) and timestamps (milliseconds)
// in decimal, doubles as their bits in hex (nan for NaN), decimals as
// the unscaled integer and the exponent, binary in hex.
func canonicalValue(t *testing.T, typ codec.Type, v codec.Value) string {
	switch typ.Kind {
	case codec.TypeDouble:
		if math.IsNaN(v.Float()) {
			return "nan"
		}
		return fmt.Sprintf("%016x", math.Float64bits(v.Float()))
	case codec.TypeDecimal:
		return fmt.Sprintf("%se%d", v.Unscaled(), -typ.Scale)
	case codec.TypeBinary:
		return hex.EncodeToString([]byte(v.Str()))
	case codec.TypeBoolean:
		return strconv.FormatBool(v.Bool())
	case codec.TypeString, codec.TypeJSON:
		return v.Str()
	case codec.TypeLong, codec.TypeInteger, codec.TypeDate, codec.TypeTimestamp:
		return strconv.FormatInt(v.Int(), 10)
	}
	t.Fatalf("no canonical text for %s", typ.Name())
	return ""
}
