package committer

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSplitLineage(t *testing.T) {
	for _, tc := range []struct {
		app, id, lineage string
		ok               bool
	}{
		{app: LineageAppID("evodb-sink/g/t/0", "vJZ6j9qWQ7qY8Yd8Z5C3Hw"), id: "evodb-sink/g/t/0", lineage: "vJZ6j9qWQ7qY8Yd8Z5C3Hw", ok: true},
		{app: "evodb-sink/g/t/0"},
		{app: "evodb-sink/team@x/t/0"}, // an '@' in the group is not a lineage
		{app: "evodb-sink/g/t/0@"},
		{app: "@x"},
	} {
		id, lineage, ok := SplitLineage(tc.app)
		require.Equal(t, tc.ok, ok, tc.app)
		require.Equal(t, tc.id, id, tc.app)
		require.Equal(t, tc.lineage, lineage, tc.app)
	}
}
