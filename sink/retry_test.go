package sink

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/evodb/sink/committer"
)

// TestRetryableAccessDenied: a catalog refusing the credentials stops the
// sink with its error instead of being retried until the store retry
// timeout; an unknown outcome is still retried.
func TestRetryableAccessDenied(t *testing.T) {
	denied := inStep("commit", fmt.Errorf("commit to a/b: %w (check the catalog token): REST error: unauthorized", committer.ErrAccessDenied))
	require.False(t, retryable(denied))
	require.True(t, retryable(inStep("commit", fmt.Errorf("commit to a/b: %w", committer.ErrTooManyAttempts))))
	require.True(t, retryable(errors.New("connection reset")))
}
