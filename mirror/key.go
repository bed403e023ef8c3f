package mirror

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/committer"
)

// PrimaryKeyConfig is the change log's metaData configuration key that
// records its primary key columns, comma-separated (the sink writes it
// from the Kafka record keys; dedupe: lsn reads it too).
const PrimaryKeyConfig = "evodb.primaryKey"

// ConfigMirrorOf is the mirror's metaData configuration key naming the
// change log it mirrors, and ConfigMirrorKey the key columns it was built
// with: a mirror built with another key is rebuilt.
const (
	ConfigMirrorOf  = "evodb.mirrorOf"
	ConfigMirrorKey = "evodb.mirrorKey"
)

// KeyColumns returns the primary key columns of the change log whose
// metadata is md: configured if not empty, else md's PrimaryKeyConfig
// without the fields its rows do not have (a record key may name fields
// that are not columns, such as the evodb key's table name). A change log
// with neither cannot be mirrored, and a configured column the change log
// does not have is refused: every key would be null.
func KeyColumns(table string, configured []string, md committer.Metadata) ([]string, error) {
	has := func(col string) bool {
		if md.Schema == nil || len(md.Schema.Columns()) == 0 {
			return true // no rows yet: nothing to check against
		}
		_, ok := md.Schema.Column(col)
		return ok
	}
	if len(configured) > 0 {
		for _, col := range configured {
			if !has(col) {
				return nil, fmt.Errorf("mirror of %s: key column %q (tables.<table>.mirror.key) is not a column of the change log", table, col)
			}
		}
		return configured, nil
	}
	var cols []string
	if pk := md.Configuration[PrimaryKeyConfig]; pk != "" {
		for _, col := range strings.Split(pk, ",") {
			if col = strings.TrimSpace(col); col != "" && has(col) {
				cols = append(cols, col)
			}
		}
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("mirror of %s: the change log records no primary key column (%s in its metadata, taken from JSON record keys, is %q) and none is configured: set tables.<table>.mirror.key to the key columns", table, PrimaryKeyConfig, md.Configuration[PrimaryKeyConfig])
	}
	return cols, nil
}

// order is a change's position in the view's order: (_lsn, _partition,
// _offset). Without Kafka columns partition and offset are 0, and changes
// are ordered by LSN alone, as the view orders them.
type order struct {
	lsn       uint64
	partition int32
	offset    int64
}

func orderOf(ch *codec.Change) order {
	return order{lsn: ch.LSN, partition: ch.Partition, offset: ch.Offset}
}

func (o order) compare(p order) int {
	return cmp.Or(cmp.Compare(o.lsn, p.lsn), cmp.Compare(o.partition, p.partition), cmp.Compare(o.offset, p.offset))
}

// keyer encodes rows' primary keys canonically: one byte string per key,
// equal for equal keys and different for different ones, compared
// bytewise.
type keyer struct {
	cols []string
}

// keyOf returns ch's key encoding. For each key column in order: 0 for a
// null (or absent) value; else 1, the value's kind, and its content: 8
// bytes big-endian for numbers, dates and timestamps, the scale and the
// length-prefixed two's complement of the unscaled value for decimals, length-prefixed bytes for
// strings, binary and JSON. Length prefixes make the encoding injective;
// the byte order is a total order on keys, which is all the sorted files
// need. An opaque key (bytes, not JSON) compares byte for byte, as the
// view compares it.
func (k keyer) keyOf(dst []byte, ch *codec.Change) []byte {
	for _, col := range k.cols {
		v := fieldValue(ch.Row, col)
		if v.IsNull() {
			dst = append(dst, 0)
			continue
		}
		dst = append(dst, 1, byte(v.Kind()))
		switch v.Kind() {
		case codec.KindBool:
			b := byte(0)
			if v.Bool() {
				b = 1
			}
			dst = append(dst, b)
		case codec.KindInt, codec.KindTimestamp:
			dst = binary.BigEndian.AppendUint64(dst, uint64(v.Int())^(1<<63))
		case codec.KindDate:
			dst = binary.BigEndian.AppendUint64(dst, uint64(int64(v.Days()))^(1<<63))
		case codec.KindFloat:
			dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(v.Float()))
		case codec.KindDecimal:
			// The unscaled value's minimal two's complement: one encoding
			// per value of a scale.
			dst = binary.BigEndian.AppendUint32(dst, uint32(v.Scale()))
			fallthrough
		default:
			s := v.Str()
			dst = binary.AppendUvarint(dst, uint64(len(s)))
			dst = append(dst, s...)
		}
	}
	return dst
}

// fieldValue returns the value of the field named name, null if row has
// none; the last occurrence wins, as for a change.
func fieldValue(row []codec.Field, name string) codec.Value {
	for i := len(row) - 1; i >= 0; i-- {
		if row[i].Name == name {
			return row[i].Value
		}
	}
	return codec.Null()
}

// describeKey renders ch's key for messages: "id=42".
func (k keyer) describeKey(ch *codec.Change) string {
	parts := make([]string, len(k.cols))
	for i, col := range k.cols {
		v := fieldValue(ch.Row, col)
		if v.IsNull() {
			parts[i] = col + "=null"
		} else {
			parts[i] = col + "=" + v.Text()
		}
	}
	return strings.Join(parts, ",")
}
