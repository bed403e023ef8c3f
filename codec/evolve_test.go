package codec

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSchemaEvolvedLeavesTheSchemaAlone(t *testing.T) {
	s := NewSchema()
	_, err := s.Accept(&Change{Table: "t", Row: []Field{{Name: "id", Value: Int(1)}}})
	require.NoError(t, err)
	before := s.Clone()

	next, err := s.Evolved(&Change{Table: "t", Row: []Field{{Name: "id", Value: Int(2)}}})
	require.NoError(t, err)
	require.Nil(t, next, "a change that fits needs no new schema")

	next, err = s.Evolved(&Change{Table: "t", Row: []Field{{Name: "id", Value: Int(3)}, {Name: "name", Value: String("x")}}})
	require.NoError(t, err)
	require.NotNil(t, next)
	_, ok := next.Column("name")
	require.True(t, ok, "the evolved schema has the new column")
	require.True(t, s.Equal(before), "the receiver is unchanged")

	_, err = s.Evolved(&Change{Table: "t", Row: []Field{{Name: "id", Value: Bool(true)}}})
	var de *DecodeError
	require.True(t, errors.As(err, &de), "an uncoercible value is a record error: %v", err)
	require.True(t, s.Equal(before))
}
