package objstore

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/internal/leaktest"
)

func TestMain(m *testing.M) {
	leaktest.VerifyTestMain(m)
}

func TestAcceptanceMemory(t *testing.T) {
	AcceptanceTest(t, NewMemory())
}

func TestAcceptanceFilesystem(t *testing.T) {
	b, err := NewFilesystem(t.TempDir())
	require.NoError(t, err)
	AcceptanceTest(t, b)
}
