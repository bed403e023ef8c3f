package objstore

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestAcceptanceMemory(t *testing.T) {
	AcceptanceTest(t, NewMemory())
}

func TestAcceptanceFilesystem(t *testing.T) {
	b, err := NewFilesystem(t.TempDir())
	require.NoError(t, err)
	AcceptanceTest(t, b)
}
