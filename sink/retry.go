package sink

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/objstore"
)

// Who retries what. Each kind of failure has one owner:
//
//   - A transient store error (throttling, 5xx, a dropped connection) is
//     retried by the bucket: objstore.S3 retries each request with backoff.
//     Nothing above it retries a single store request.
//   - A lost commit race or a commit put whose outcome is unknown is
//     resolved by the committer: it re-reads the log, finds its commit by
//     its id or commits at the next version.
//   - A commit refused because part of it is already durable (a replay or
//     a zombie) is resolved by the table writer's flush: it re-reads the
//     table, drops what is durable and commits the rest.
//   - What the layers below give up on (the bucket's retries exhausted,
//     the committer's attempts exhausted with the outcome unknown) fails
//     the whole operation, a flush or a table load, and the Sink runs that
//     operation again with backoff until commit.store_retry_timeout. A
//     flush run again commits under the commit id of its first attempt, so
//     a commit that landed unseen is found, not written twice.
//
// Errors no wait can fix are permanent (permanent, objstore.ConfigError,
// a catalog refusing the credentials (committer.ErrAccessDenied), and the
// record and lineage errors below) and stop the sink at once.

// stepError names the step of a flush or table load that failed, for the
// retry's metric and warning. It changes nothing else about the error.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

// inStep wraps a non-nil err as the failure of step.
func inStep(step string, err error) error {
	if err == nil {
		return nil
	}
	return &stepError{step: step, err: err}
}

// permanent marks an error that running the operation again cannot fix.
func permanent(err error) error {
	if err == nil {
		return nil
	}
	return backoff.Permanent(err)
}

// retryable reports whether running an operation again may fix err.
func retryable(err error) bool {
	var p *backoff.PermanentError
	var re *RecordError
	return !errors.As(err, &p) && !objstore.IsConfigError(err) && !errors.Is(err, committer.ErrAccessDenied) && !errors.As(err, &re) &&
		!errors.Is(err, ErrOffsetsWentBack) && !errors.Is(err, context.Canceled)
}

// retry runs op, a whole operation (a flush, a table load, the start-up
// probe), with exponential backoff until it succeeds, returns an error
// that is not retryable, or commit.store_retry_timeout passes. A store
// configuration error (objstore.ConfigError: refused credentials, a
// missing bucket) is permanent: no wait makes it go away, and stopping
// with it says what to fix. Each retry logs one warning with the gist of
// the error, naming the step that failed (a stepError's, else step); the
// store's full answer is in the error finally returned.
func (s *Sink) retry(ctx context.Context, step string, op func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = 10 * time.Second
	b.MaxElapsedTime = s.cfg.Commit.StoreRetryTimeout
	attempt := 0
	return backoff.RetryNotify(func() error {
		err := op()
		if err != nil && !retryable(err) {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(b, ctx), func(err error, d time.Duration) {
		attempt++
		failed := step
		var se *stepError
		if errors.As(err, &se) {
			failed = se.step
		}
		s.metrics.storeRetries.WithLabelValues(failed).Inc()
		if !errors.Is(err, objstore.ErrPreconditionFailed) {
			s.log.Warn("store operation failed, retrying", "step", failed, "attempt", attempt, "cause", objstore.Cause(err), "in", d.Round(time.Millisecond))
		}
	})
}
