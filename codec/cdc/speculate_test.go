package cdc

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/codec"
)

// decodeBoth decodes a Debezium record with the speculative after image
// and with every image read as text, and requires the same change or the
// same error from both, borrowing or not.
func decodeBoth(t *testing.T, key, value []byte) (codec.Change, error) {
	t.Helper()
	spec, text := newDebeziumDecoder(), newDebeziumDecoder()
	text.textImages = true
	rec := codec.Record{Topic: "srv.public.users", Partition: 1, Offset: 9, TimestampMs: 5000, Key: key, Value: value}
	var a, b codec.Change
	errA, errB := spec.Decode(rec, &a), text.Decode(rec, &b)
	require.Equal(t, errB, errA, "speculative and text decode disagree on %q", value)
	require.Equal(t, b, a, "speculative and text decode disagree on %q", value)
	// Borrowing, with a scratch row both decodes overwrite.
	a, b = codec.Change{Row: make([]codec.Field, 0, 4)}, codec.Change{Row: make([]codec.Field, 0, 4)}
	errA, errB = spec.DecodeBorrowed(rec, &a), text.DecodeBorrowed(rec, &b)
	require.Equal(t, errB, errA)
	require.Equal(t, b, a)
	return a, errA
}

// TestDebeziumSpeculativeAfter breaks each condition under which the
// after image decoded during the envelope scan may be used (specRow) and
// checks the result is what reading the images as text gives.
func TestDebeziumSpeculativeAfter(t *testing.T) {
	wrapped := func(payload string) string { return `{"schema":` + dbzSchema + `,"payload":` + payload + `}` }
	after := `{"id":1,"price":"MDk=","name":"a"}`
	for name, value := range map[string]string{
		"bare":           `{"before":null,"after":` + after + `,"source":{"table":"t","lsn":5},"op":"c"}`,
		"wrapped":        wrapped(`{"before":null,"after":` + after + `,"source":{"table":"t","lsn":5},"op":"u"}`),
		"schema last":    `{"payload":{"after":` + after + `,"source":{"table":"t","lsn":5},"op":"c"},"schema":` + dbzSchema + `}`,
		"bare schema":    `{"after":` + after + `,"schema":` + dbzSchema + `,"source":{"table":"t","lsn":5},"op":"c"}`,
		"delete":         `{"before":{"id":2},"after":` + after + `,"source":{"table":"t","lsn":5},"op":"d"}`,
		"delete typed":   wrapped(`{"before":{"id":2},"after":{"id":"not an int"},"source":{"table":"t","lsn":5},"op":"d"}`),
		"delete utf8":    "{\"before\":{\"id\":2},\"after\":{\"name\":\"\xff\"},\"source\":{\"table\":\"t\",\"lsn\":5},\"op\":\"d\"}",
		"insert utf8":    "{\"after\":{\"name\":\"\xff\"},\"source\":{\"table\":\"t\",\"lsn\":5},\"op\":\"c\"}",
		"bad typed":      wrapped(`{"after":{"id":"x"},"source":{"table":"t","lsn":5},"op":"c"}`),
		"twice":          wrapped(`{"after":` + after + `,"after":{"id":"x"},"source":{"table":"t","lsn":5},"op":"c"}`),
		"twice good":     wrapped(`{"after":{"id":"x"},"after":` + after + `,"source":{"table":"t","lsn":5},"op":"c"}`),
		"payload twice":  `{"schema":` + dbzSchema + `,"payload":{"after":` + after + `,"op":"c"},"payload":{"after":null,"op":"c"}}`,
		"outer after":    `{"payload":{"after":{"id":3},"op":"c","source":{"table":"t","lsn":5}},"after":` + after + `}`,
		"payload broken": wrapped(`{"after":` + after + `,"ts_ms":"x","op":"c"}`),
		"payload scalar": `{"payload":"x"}`,
		"trailing junk":  `{"after":` + after + `,"op":"c","source":{"table":"t","lsn":5}} x`,
		"broken later":   `{"after":` + after + `,"op":"c","source":{"table":"t","lsn":5},"x":[}`,
		"no op":          `{"after":` + after + `,"source":{"table":"t","lsn":5}}`,
		"deep at limit":  `{"after":{"j":` + strings.Repeat(`[`, maxDepth) + strings.Repeat(`]`, maxDepth) + `},"op":"c","source":{"table":"t","lsn":5}}`,
		"deep wrapped":   `{"payload":{"after":{"j":` + strings.Repeat(`[`, maxDepth-1) + strings.Repeat(`]`, maxDepth-1) + `},"op":"c","source":{"table":"t","lsn":5}}}`,
		"deep over":      `{"payload":{"after":{"j":` + strings.Repeat(`[`, maxDepth) + strings.Repeat(`]`, maxDepth) + `},"op":"c","source":{"table":"t","lsn":5}}}`,
	} {
		t.Run(name, func(t *testing.T) { decodeBoth(t, []byte(`{"id":1}`), []byte(value)) })
	}

	// The schema decides the type: a decimal, not the base64 text the
	// image would infer without it, however the keys are ordered.
	ch, err := decodeBoth(t, nil, []byte(`{"payload":{"after":`+after+`,"source":{"table":"t","lsn":5},"op":"c"},"schema":`+dbzSchema+`}`))
	require.NoError(t, err)
	require.Equal(t, codec.KindDecimal, ch.Row[1].Value.Kind())
	ch, err = decodeBoth(t, nil, []byte(`{"before":{"id":2},"after":`+after+`,"source":{"table":"t","lsn":5},"op":"d"}`))
	require.NoError(t, err)
	require.Equal(t, []codec.Field{{Name: "id", Value: codec.Int(2)}}, ch.Row)
}

// FuzzDebeziumSpeculation checks the speculative after image against
// reading every image as text on any input.
func FuzzDebeziumSpeculation(f *testing.F) {
	f.Add([]byte(`{"id":1}`), []byte(`{"before":null,"after":{"id":1},"source":{"table":"t","lsn":5},"op":"c"}`))
	f.Add([]byte(``), []byte(`{"schema":`+dbzSchema+`,"payload":{"after":{"id":1,"price":"MDk=","ts_z":"2020-01-01T00:00:00Z"},"source":{"table":"t","lsn":5},"op":"u"}}`))
	f.Add([]byte(``), []byte(`{"payload":{"after":{"id":1,"price":"MDk="},"op":"c"},"schema":`+dbzSchema+`,"after":{"x":[1]}}`))
	f.Fuzz(func(t *testing.T, key, value []byte) { decodeBoth(t, key, value) })
}
