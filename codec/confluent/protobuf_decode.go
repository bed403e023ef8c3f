package confluent

import (
	"errors"
	"fmt"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/evodb/sink/codec"
)

// decodeProto decodes a Protobuf value: the message index after the
// header names the message, then the message is an envelope or a plain
// record.
func (d *Decoder) decodeProto(rec *codec.Record, dst *codec.Change, sch *compiled, payload []byte, borrow bool, scratch []codec.Field) error {
	if sch.proto == nil {
		return d.recErr(rec, "", "", fmt.Sprintf("value schema ID %d is a %s schema, not Protobuf (schema registry %s)", sch.id, sch.typ, d.reg.URL()))
	}
	m, body, err := sch.proto.message(payload)
	if err != nil {
		return d.recErr(rec, "", "", fmt.Sprintf("value does not match its schema ID %d (schema registry %s): %v", sch.id, d.reg.URL(), err))
	}
	r := preader{borrow: borrow}
	if m.env != nil {
		return d.decodeProtoEnvelope(rec, dst, sch, m, &r, body, scratch)
	}
	return d.decodeProtoPlain(rec, dst, sch, m, &r, body, scratch)
}

func (d *Decoder) decodeProtoEnvelope(rec *codec.Record, dst *codec.Change, sch *compiled, m *pmsg, r *preader, b []byte, scratch []codec.Field) error {
	env := m.env
	var (
		before, after, source []byte
		hasBefore, hasAfter   bool
		op                    string
		tsMs                  int64
		hasTs                 bool
	)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return d.mismatch(rec, "", sch, wireErr(n))
		}
		b = b[n:]
		fi := m.lookup(num)
		switch fi {
		case env.before, env.after, env.source:
			if fi < 0 {
				break
			}
			f := &m.fields[fi]
			if typ != protowire.BytesType {
				return d.mismatch(rec, "", sch, &fieldError{name: f.name, err: wireTypeErr(typ, protowire.BytesType)})
			}
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return d.mismatch(rec, "", sch, &fieldError{name: f.name, err: wireErr(n)})
			}
			b = b[n:]
			// Occurrences of a message field merge; Debezium writes
			// each once, so the last one is taken whole.
			switch fi {
			case env.before:
				before, hasBefore = v, true
			case env.after:
				after, hasAfter = v, true
			default:
				source = v
			}
			continue
		case env.op, env.tsMs:
			if fi < 0 {
				break
			}
			f := &m.fields[fi]
			v, n, err := r.scalar(f, typ, b)
			if err != nil {
				return d.mismatch(rec, "", sch, &fieldError{name: f.name, err: err})
			}
			b = b[n:]
			if fi == env.op {
				op = v.Str()
			} else if v.Kind() == codec.KindInt {
				tsMs, hasTs = v.Int(), true
			}
			continue
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return d.mismatch(rec, "", sch, wireErr(n))
		}
		b = b[n:]
	}
	var src sourceInfo
	if source != nil {
		sm := m.fields[env.source].msg
		row, err := r.row(sm, source, nil)
		if err != nil {
			return d.mismatch(rec, "", sch, &fieldError{name: "source", err: err})
		}
		var st sourceState
		for _, f := range row {
			if !sourceField(f.Name) {
				continue
			}
			if err := st.field(f.Name, f.Value, dst, &src); err != nil {
				var se *sourceError
				errors.As(err, &se)
				return d.recErr(rec, dst.TableName(), "source."+se.field, se.reason)
			}
		}
		if err := st.finish(dst, &src); err != nil {
			var se *sourceError
			errors.As(err, &se)
			return d.recErr(rec, dst.TableName(), "source."+se.field, se.reason)
		}
	}
	if dst.Table == "" {
		dst.Table = topicTable(rec.Topic)
	}
	table := dst.TableName()
	var image []byte
	var hasImage bool
	var imageName string
	switch op {
	case "c":
		dst.Op, image, hasImage, imageName = codec.OpInsert, after, hasAfter, "after"
	case "u":
		dst.Op, image, hasImage, imageName = codec.OpUpdate, after, hasAfter, "after"
	case "r":
		dst.Op, image, hasImage, imageName = codec.OpSnapshot, after, hasAfter, "after"
	case "d":
		dst.Op, image, hasImage, imageName = codec.OpDelete, before, hasBefore, "before"
	case "":
		return d.recErr(rec, table, "op", "missing")
	default:
		return d.recErr(rec, table, "op", "unsupported op "+strconv.Quote(op))
	}
	dst.Declared = env.row.cols
	if hasImage {
		row, err := r.row(env.row, image, scratch)
		if err != nil {
			return d.mismatch(rec, table, sch, &fieldError{name: imageName, err: err})
		}
		dst.Row = row
	} else if dst.Op != codec.OpDelete {
		return d.recErr(rec, table, imageName, "missing or null")
	}
	if !src.hasTS && hasTs {
		dst.TS = tsMs
	}
	if !src.hasLSN {
		return fallbackLSN(d, rec, dst)
	}
	return nil
}

// pplan returns the plain-record layout of message m under the decoder's
// PlainFields, computing it once per message.
func (d *Decoder) pplan(m *pmsg) *plainPlan {
	d.mu.RLock()
	p, ok := d.mu.pplans[m]
	d.mu.RUnlock()
	if ok {
		return p
	}
	p = &plainPlan{role: make([]uint8, len(m.fields))}
	for i, f := range m.fields {
		switch f.name {
		case d.opts.Fields.Op:
			p.role[i] = roleOp
		case d.opts.Fields.LSN:
			p.role[i] = roleLSN
		case d.opts.Fields.TS:
			p.role[i] = roleTS
		case d.opts.Fields.Table:
			p.role[i] = roleTable
		default:
			p.cols = append(p.cols, m.cols[i])
		}
	}
	d.mu.Lock()
	if len(d.mu.pplans) >= d.reg.limit {
		d.mu.pplans = map[*pmsg]*plainPlan{}
	}
	d.mu.pplans[m] = p
	d.mu.Unlock()
	return p
}

func (d *Decoder) decodeProtoPlain(rec *codec.Record, dst *codec.Change, sch *compiled, m *pmsg, r *preader, b []byte, scratch []codec.Field) error {
	p := d.pplan(m)
	row, err := r.row(m, b, scratch)
	if err != nil {
		return d.mismatch(rec, "", sch, err)
	}
	dst.Op = codec.OpInsert
	hasLSN := false
	cols := row[:0]
	for i, f := range row {
		if p.role[i] == roleColumn {
			cols = append(cols, f)
			continue
		}
		if err := d.applyMeta(rec, dst, p.role[i], f.Name, f.Value, true, &hasLSN); err != nil {
			return err
		}
	}
	return d.finishPlain(rec, dst, cols, p.cols, hasLSN)
}

// decodeProtoKey reads a Protobuf key as named columns (every field of
// the message the key's index names), or keeps it opaque when it cannot.
func (d *Decoder) decodeProtoKey(dst *codec.Change, sch *compiled, payload []byte, scratch []codec.Field, borrow bool, opaque func() error) error {
	if sch.proto == nil {
		return opaque()
	}
	m, body, err := sch.proto.message(payload)
	if err != nil || len(m.fields) == 0 {
		return opaque()
	}
	r := preader{borrow: borrow}
	key, err := r.row(m, body, scratch)
	if err != nil {
		return opaque()
	}
	dst.Key = key
	return nil
}
