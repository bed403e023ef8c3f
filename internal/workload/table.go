package workload

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/evodb/sink/codec/cdc"
)

// kind is a generated column's type.
type kind uint8

const (
	kindID kind = iota
	kindInt
	kindBigint
	kindDouble
	kindBool
	kindText
	kindUnicode
	kindTimestamp
	kindJSON
	kindNote  // the text column that pads a record to its target size
	kindAdded // the column schema evolution adds
)

// kinds a table's ordinary columns are drawn from.
var columnKinds = [...]kind{kindInt, kindBigint, kindDouble, kindBool, kindText, kindUnicode, kindTimestamp, kindJSON}

// prefixes keep column names short, so 20 columns fit the record sizes.
var kindPrefix = [...]string{
	kindInt: "n", kindBigint: "b", kindDouble: "d", kindBool: "f",
	kindText: "s", kindUnicode: "u", kindTimestamp: "at", kindJSON: "j",
}

// kindNames are the descriptive column names of each kind (see
// Config.DescriptiveColumns), in the order a table takes them before its
// shuffle. Each name suits the values its kind generates.
var kindNames = [...][]string{
	kindInt:       {"quantity", "age", "stock", "score", "visits", "rank"},
	kindBigint:    {"external_id", "account_no", "tracking_no", "balance_cents", "device_id"},
	kindDouble:    {"amount", "price", "weight_kg", "discount", "tax"},
	kindBool:      {"active", "verified", "paid", "express", "subscribed"},
	kindText:      {"email", "status", "tier", "region", "channel", "plan"},
	kindUnicode:   {"city", "display_name", "country", "address"},
	kindTimestamp: {"created_at", "updated_at", "shipped_at", "paid_at", "last_login_at"},
	kindJSON:      {"attributes", "metadata", "preferences", "settings"},
}

type column struct {
	name string
	kind kind
	// email makes a text column's values e-mail addresses.
	email bool
}

// addedColumn is the name of the column schema evolution adds.
const addedColumn = "added"

// table is one generated table: its columns and its live keys.
type table struct {
	index   int
	name    string
	cols    []column // id first, note last
	nextID  int64
	changes int
	// live lists the keys that exist; pos finds a key in live, versions
	// holds each live key's row version.
	live     []int64
	pos      map[int64]int
	versions map[int64]uint32
	// Debezium schema texts, built on first use: [evolved].
	valueSchema [2]string
	keySchema   string
}

func newTable(index int, name string, rng *rand.Rand, descriptive bool) *table {
	t := &table{
		index:    index,
		name:     name,
		nextID:   1,
		pos:      map[int64]int{},
		versions: map[int64]uint32{},
	}
	// 6–20 columns: id and note plus 4–18 drawn ones, every kind at least
	// once when there is room, so each table exercises the decoder widely.
	n := 4 + rng.IntN(15)
	t.cols = append(t.cols, column{name: "id", kind: kindID})
	for i := range n {
		k := columnKinds[i%len(columnKinds)]
		if i >= len(columnKinds) {
			k = columnKinds[rng.IntN(len(columnKinds))]
		}
		t.cols = append(t.cols, column{name: kindPrefix[k] + strconv.Itoa(i+1), kind: k})
	}
	rng.Shuffle(len(t.cols)-1, func(i, j int) { t.cols[i+1], t.cols[j+1] = t.cols[j+1], t.cols[i+1] })
	t.cols = append(t.cols, column{name: "note", kind: kindNote})
	if descriptive {
		t.describe()
	}
	return t
}

// describe renames the drawn columns from kindNames: the first column of a
// kind takes its kind's first name, and so on; a kind used more often than
// it has names repeats them with a suffix ("amount_2"). It draws nothing
// from the generator's random source, so a seed gives the same values with
// either naming.
func (t *table) describe() {
	used := map[kind]int{}
	for i := 1; i < len(t.cols)-1; i++ {
		c := &t.cols[i]
		names := kindNames[c.kind]
		n := used[c.kind]
		used[c.kind]++
		c.name = names[n%len(names)]
		if n >= len(names) {
			c.name += "_" + strconv.Itoa(n/len(names)+1)
		}
		c.email = c.name == "email"
	}
}

func (t *table) add(id int64) {
	t.pos[id] = len(t.live)
	t.live = append(t.live, id)
	t.versions[id] = 0
}

func (t *table) remove(id int64) {
	i := t.pos[id]
	last := t.live[len(t.live)-1]
	t.live[i] = last
	t.pos[last] = i
	t.live = t.live[:len(t.live)-1]
	delete(t.pos, id)
	delete(t.versions, id)
}

// columns returns the columns of a change: with the added column once the
// table has evolved.
func (t *table) columns(evolved bool) []column {
	if !evolved {
		return t.cols
	}
	cols := make([]column, 0, len(t.cols)+1)
	cols = append(cols, t.cols[:len(t.cols)-1]...)
	cols = append(cols, column{name: addedColumn, kind: kindAdded}, t.cols[len(t.cols)-1])
	return cols
}

// rowRand returns the random source of one row version: a pure function of
// the generator seed, the table, the key and the version.
func rowRand(seed uint64, t *table, id int64, version uint32) *rand.Rand {
	return rand.New(rand.NewPCG(seed^uint64(t.index)*0x9E3779B97F4A7C15, uint64(id)<<20^uint64(version)))
}

var (
	words    = [...]string{"alpha", "bravo", "delta", "echo", "gold", "iron", "jade", "kilo", "lima", "nova", "oak", "pine", "red", "sky"}
	unicodes = [...]string{"Zürich", "São Paulo", "東京", "Москва", "Kraków 🚲", "naïve café", "Ελλάδα", "مرحبا", "Åre ❄", "Reykjavík"}
)

// format selects how values are written.
type format struct {
	// timestampMs writes timestamps as epoch milliseconds (Debezium's
	// io.debezium.time.Timestamp) instead of RFC 3339 text.
	timestampMs bool
	// jsonAsText writes nested objects as a JSON string (Debezium's
	// io.debezium.data.Json) instead of an object.
	jsonAsText bool
}

// size shapes a record to its target size: pad is the length of the note
// column, squeeze the number of trailing drawn columns written as null (for
// the rare wide row whose values alone exceed MaxRecordBytes).
type size struct{ pad, squeeze int }

// appendRow appends the JSON object of one row version.
func appendRow(dst []byte, seed uint64, t *table, id int64, version uint32, evolved bool, sz size, f format) []byte {
	r := rowRand(seed, t, id, version)
	dst = append(dst, '{')
	cols := t.columns(evolved)
	// The drawn columns sit between id and note (and the added column).
	drawn, firstSqueezed := 0, len(t.cols)-2-sz.squeeze
	for i, c := range cols {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, c.name...)
		dst = append(dst, '"', ':')
		// Every value is drawn even when squeezed, so the values of the
		// other columns do not depend on the squeeze.
		n := len(dst)
		dst = appendValue(dst, r, c.kind, id, version, sz.pad, f)
		if c.email && dst[n] == '"' {
			// The word drawn becomes the address's local part.
			dst = append(dst[:len(dst)-1], "."+strconv.FormatInt(id, 10)+"@example.com\""...)
		}
		if c.kind != kindID && c.kind != kindNote && c.kind != kindAdded {
			if drawn >= firstSqueezed {
				dst = append(dst[:n], "null"...)
			}
			drawn++
		}
	}
	return append(dst, '}')
}

func appendValue(dst []byte, r *rand.Rand, k kind, id int64, version uint32, pad int, f format) []byte {
	switch k {
	case kindID:
		return strconv.AppendInt(dst, id, 10)
	case kindNote:
		dst = append(dst, '"')
		for i := range pad {
			dst = append(dst, 'a'+byte((i+int(version))%26))
		}
		return append(dst, '"')
	case kindAdded:
		return cdc.AppendJSONString(dst, "v"+strconv.FormatUint(uint64(version), 10))
	}
	if r.IntN(20) == 0 {
		return append(dst, "null"...)
	}
	switch k {
	case kindInt:
		return strconv.AppendInt(dst, r.Int64N(1_000_000)-1000, 10)
	case kindBigint:
		// Half the values are beyond 2^53, where float64 loses digits.
		if r.IntN(2) == 0 {
			return strconv.AppendInt(dst, 1<<53+r.Int64N(1<<62), 10)
		}
		return strconv.AppendInt(dst, r.Int64N(1<<40), 10)
	case kindDouble:
		// Always with a fraction, so inference never sees an integer.
		return strconv.AppendFloat(dst, float64(r.IntN(10_000_000))/100+0.25, 'f', 2, 64)
	case kindBool:
		return strconv.AppendBool(dst, r.IntN(2) == 0)
	case kindText:
		return cdc.AppendJSONString(dst, words[r.IntN(len(words))])
	case kindUnicode:
		return cdc.AppendJSONString(dst, unicodes[r.IntN(len(unicodes))])
	case kindTimestamp:
		ms := DefaultStartMs - r.Int64N(5*365*24*3600*1000)
		if f.timestampMs {
			return strconv.AppendInt(dst, ms, 10)
		}
		return cdc.AppendJSONString(dst, time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z"))
	case kindJSON:
		var obj []byte
		obj = append(obj, `{"k":`...)
		obj = strconv.AppendInt(obj, int64(r.IntN(100)), 10)
		obj = append(obj, `,"t":[`...)
		obj = cdc.AppendJSONString(obj, words[r.IntN(len(words))])
		obj = append(obj, "]}"...)
		if f.jsonAsText {
			return cdc.AppendJSONString(dst, string(obj))
		}
		return append(dst, obj...)
	}
	return append(dst, "null"...)
}
