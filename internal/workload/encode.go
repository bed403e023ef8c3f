package workload

import (
	"strconv"
	"strings"

	"github.com/evodb/sink/codec/cdc"
)

// sized builds a record with an empty note column to measure it, then
// again with the note padding it to target bytes. A record that is larger
// than max (target ≤ max) even so is rebuilt with more and more trailing
// columns null until it fits or none are left.
func sized(dst []byte, target, max int, build func(dst []byte, sz size) []byte) []byte {
	start := len(dst)
	sz := size{}
	dst = build(dst, sz)
	for len(dst)-start > max && sz.squeeze < 20 {
		sz.squeeze++
		dst = build(dst[:start], sz)
	}
	sz.pad = target - (len(dst) - start)
	if sz.pad <= 0 {
		return dst
	}
	return build(dst[:start], sz)
}

// appendEvoDB appends the evodb envelope of c:
//
//	{"op":"UPDATE","table":"t3","data":{…},"lsn":123,"ts":…}
//
// A delete carries the key in data and the old row in before.
func (g *Generator) appendEvoDB(dst []byte, t *table, c *change) []byte {
	f := format{}
	return sized(dst, c.target, MaxRecordBytes, func(dst []byte, sz size) []byte {
		dst = append(dst, `{"op":"`...)
		dst = append(dst, c.op...)
		dst = append(dst, `","table":`...)
		dst = cdc.AppendJSONString(dst, t.name)
		dst = append(dst, `,"data":`...)
		if c.op == OpDelete {
			dst = append(dst, `{"id":`...)
			dst = strconv.AppendInt(dst, c.id, 10)
			dst = append(dst, '}')
		} else {
			dst = appendRow(dst, g.seed, t, c.id, c.version, c.evolved, sz, f)
		}
		dst = append(dst, `,"lsn":`...)
		dst = strconv.AppendUint(dst, c.lsn, 10)
		dst = append(dst, `,"ts":`...)
		dst = strconv.AppendInt(dst, c.ts, 10)
		if c.op == OpDelete {
			dst = append(dst, `,"before":`...)
			dst = appendRow(dst, g.seed, t, c.id, c.version, c.evolved, sz, f)
		}
		return append(dst, '}')
	})
}

// debeziumOps maps ops to Debezium's op codes.
var debeziumOps = map[string]string{OpInsert: "c", OpUpdate: "u", OpDelete: "d"}

// appendDebezium appends the Debezium envelope of c, as the Postgres
// connector writes it: an update carries no before-image (replica identity
// default), a delete carries the whole old row (replica identity full).
func (g *Generator) appendDebezium(dst []byte, t *table, c *change) []byte {
	f := format{timestampMs: true, jsonAsText: true}
	target := c.target
	if g.cfg.SchemaWrapper {
		// The size target applies to the payload; the schema comes on top.
		target += len(`{"schema":,"payload":}`) + len(t.debeziumValueSchema(g.cfg.DB, g.cfg.Schema, c.evolved))
	}
	dst = sized(dst, target, target-c.target+MaxRecordBytes, func(dst []byte, sz size) []byte {
		if g.cfg.SchemaWrapper {
			dst = append(dst, `{"schema":`...)
			dst = append(dst, t.debeziumValueSchema(g.cfg.DB, g.cfg.Schema, c.evolved)...)
			dst = append(dst, `,"payload":`...)
		}
		dst = append(dst, `{"before":`...)
		if c.op == OpDelete {
			dst = appendRow(dst, g.seed, t, c.id, c.version, c.evolved, sz, f)
		} else {
			dst = append(dst, "null"...)
		}
		dst = append(dst, `,"after":`...)
		if c.op == OpDelete {
			dst = append(dst, "null"...)
		} else {
			dst = appendRow(dst, g.seed, t, c.id, c.version, c.evolved, sz, f)
		}
		dst = append(dst, `,"source":{"db":`...)
		dst = cdc.AppendJSONString(dst, g.cfg.DB)
		dst = append(dst, `,"schema":`...)
		dst = cdc.AppendJSONString(dst, g.cfg.Schema)
		dst = append(dst, `,"table":`...)
		dst = cdc.AppendJSONString(dst, t.name)
		dst = append(dst, `,"lsn":`...)
		dst = strconv.AppendUint(dst, c.lsn, 10)
		dst = append(dst, `,"ts_ms":`...)
		dst = strconv.AppendInt(dst, c.ts, 10)
		dst = append(dst, `},"op":"`...)
		dst = append(dst, debeziumOps[c.op]...)
		dst = append(dst, `","ts_ms":`...)
		dst = strconv.AppendInt(dst, c.ts, 10)
		dst = append(dst, '}')
		if g.cfg.SchemaWrapper {
			dst = append(dst, '}')
		}
		return dst
	})
	return dst
}

// debeziumKey is the record key: {"id":…}, wrapped with its schema when
// values are.
func (g *Generator) debeziumKey(t *table, id int64) []byte {
	var k []byte
	if g.cfg.SchemaWrapper {
		if t.keySchema == "" {
			t.keySchema = `{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"}],"optional":false,"name":` +
				string(cdc.AppendJSONString(nil, g.cfg.DB+"."+g.cfg.Schema+"."+t.name+".Key")) + `}`
		}
		k = append(k, `{"schema":`...)
		k = append(k, t.keySchema...)
		k = append(k, `,"payload":`...)
	}
	k = append(k, `{"id":`...)
	k = strconv.AppendInt(k, id, 10)
	k = append(k, '}')
	if g.cfg.SchemaWrapper {
		k = append(k, '}')
	}
	return k
}

// connectField is the Kafka Connect schema of a column kind.
func connectField(c column) string {
	typ, name, optional := "string", "", true
	switch c.kind {
	case kindID:
		typ, optional = "int64", false
	case kindInt:
		typ = "int32"
	case kindBigint:
		typ = "int64"
	case kindDouble:
		typ = "double"
	case kindBool:
		typ = "boolean"
	case kindTimestamp:
		typ, name = "int64", "io.debezium.time.Timestamp"
	case kindJSON:
		name = "io.debezium.data.Json"
	}
	var b strings.Builder
	b.WriteString(`{"type":"` + typ + `","optional":` + strconv.FormatBool(optional))
	if name != "" {
		b.WriteString(`,"name":"` + name + `","version":1`)
	}
	b.WriteString(`,"field":`)
	b.Write(cdc.AppendJSONString(nil, c.name))
	b.WriteByte('}')
	return b.String()
}

// debeziumValueSchema returns the Connect schema of t's envelope, built
// once per table and evolution state.
func (t *table) debeziumValueSchema(db, schema string, evolved bool) string {
	i := 0
	if evolved {
		i = 1
	}
	if t.valueSchema[i] != "" {
		return t.valueSchema[i]
	}
	prefix := db + "." + schema + "." + t.name
	fields := make([]string, 0, len(t.cols)+1)
	for _, c := range t.columns(evolved) {
		fields = append(fields, connectField(c))
	}
	row := `{"type":"struct","fields":[` + strings.Join(fields, ",") + `],"optional":true,"name":` +
		string(cdc.AppendJSONString(nil, prefix+".Value"))
	source := `{"type":"struct","fields":[` +
		`{"type":"string","optional":false,"field":"db"},` +
		`{"type":"string","optional":false,"field":"schema"},` +
		`{"type":"string","optional":false,"field":"table"},` +
		`{"type":"int64","optional":true,"field":"lsn"},` +
		`{"type":"int64","optional":false,"field":"ts_ms"}` +
		`],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"}`
	t.valueSchema[i] = `{"type":"struct","fields":[` +
		row + `,"field":"before"},` +
		row + `,"field":"after"},` +
		source + `,` +
		`{"type":"string","optional":false,"field":"op"},` +
		`{"type":"int64","optional":true,"field":"ts_ms"}` +
		`],"optional":false,"name":` + string(cdc.AppendJSONString(nil, prefix+".Envelope")) + `}`
	return t.valueSchema[i]
}
