package cdc

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"unicode/utf8"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/parquetblock"
)

// checkDecoded asserts the decoder contract for any input: a tombstone, a
// *DecodeError, or a valid change that a schema accepts (or rejects with a
// *DecodeError) and that encodes.
func checkDecoded(t *testing.T, d Decoder, key, value []byte) {
	var ch codec.Change
	err := d.Decode(codec.Record{Topic: "t.s.x", Offset: 1, Key: key, Value: value}, &ch)
	if err != nil {
		var de *codec.DecodeError
		if !errors.Is(err, ErrTombstone) && !errors.As(err, &de) {
			t.Fatalf("untyped error %T: %v", err, err)
		}
		return
	}
	if ch.Table == "" || ch.Op < codec.OpInsert || ch.Op > codec.OpSnapshot || ch.LSN > math.MaxInt64 {
		t.Fatalf("invalid change: %+v", ch)
	}
	for _, f := range ch.Row {
		k := f.Value.Kind()
		if !utf8.ValidString(f.Name) || (k == codec.KindString || k == codec.KindJSON) && !utf8.ValidString(f.Value.Str()) {
			t.Fatalf("column %q holds invalid UTF-8: %#v", f.Name, f.Value)
		}
	}
	s := codec.NewSchema()
	if _, err := s.Accept(&ch); err != nil {
		var de *codec.DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("untyped schema error %T: %v", err, err)
		}
		return
	}
	if _, err := parquetblock.EncodeBlock(&bytes.Buffer{}, s, []codec.Change{ch}, parquetblock.EncodeOptions{Compression: "none"}); err != nil {
		t.Fatalf("accepted change does not encode: %v", err)
	}
}

func FuzzDecodeEvoDB(f *testing.F) {
	f.Add([]byte(`{"op":"INSERT","table":"users","data":{"id":1,"n":"a","o":{"x":[1]}},"lsn":100,"ts":1}`))
	f.Add([]byte(`{"op":"DELETE","table":"t","before":{"id":1},"lsn":"18014398509481985"}`))
	// Invalid UTF-8 at the top level and nested: a record error, never a
	// string column holding it.
	f.Add([]byte("{\"op\":\"INSERT\",\"table\":\"t\",\"data\":{\"s\":\"\xff\",\"o\":{\"k\":[\"\xc3\"]}},\"lsn\":1}"))
	d, _ := NewDecoder(FormatEvoDB)
	f.Fuzz(func(t *testing.T, value []byte) { checkDecoded(t, d, nil, value) })
}

func FuzzDecodeDebezium(f *testing.F) {
	f.Add([]byte(`{"id":1}`), []byte(`{"before":null,"after":{"id":1},"source":{"table":"t","lsn":5},"op":"c"}`))
	f.Add([]byte(``), []byte(`{"schema":`+dbzSchema+`,"payload":{"after":{"id":1,"price":"MDk=","ts_z":"2020-01-01T00:00:00Z"},"source":{"table":"t","lsn":5},"op":"u"}}`))
	f.Add([]byte("users:\xff"), []byte("{\"after\":{\"id\":1,\"o\":{\"\xfe\":1}},\"source\":{\"table\":\"t\",\"lsn\":5},\"op\":\"c\"}"))
	d, _ := NewDecoder(FormatDebezium)
	f.Fuzz(func(t *testing.T, key, value []byte) { checkDecoded(t, d, key, value) })
}
