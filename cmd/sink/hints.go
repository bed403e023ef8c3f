package main

import (
	"errors"
	"fmt"

	"github.com/evodb/sink/objstore"
)

// hinted is an error with the fix a command knows for it, which runMain
// prints before the error itself.
type hinted struct {
	hint string
	err  error
}

func (h hinted) Error() string { return h.err.Error() }

func (h hinted) Unwrap() error { return h.err }

// storeHint names the configuration key to fix for a store error that no
// retry can fix, or returns "" for any other error. The store package
// knows what went wrong; only the command knows which keys the operator
// wrote. A hint the command attached (hinted) comes first.
func storeHint(err error) string {
	var h hinted
	if errors.As(err, &h) {
		return h.hint
	}
	var ce *objstore.ConfigError
	if !errors.As(err, &ce) {
		return ""
	}
	switch {
	case errors.Is(ce.Kind, objstore.ErrAccessDenied):
		return fmt.Sprintf("access denied to bucket %q: check store.s3.access_key_id and store.s3.secret_access_key "+
			"(or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY when those are unset)", ce.Bucket)
	case errors.Is(ce.Kind, objstore.ErrNoCredentials):
		return fmt.Sprintf("no credentials for bucket %q: set store.s3.access_key_id and store.s3.secret_access_key "+
			"(or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)", ce.Bucket)
	case errors.Is(ce.Kind, objstore.ErrNoBucket):
		return fmt.Sprintf("bucket %q does not exist (store.url): create it or correct the bucket in store.url", ce.Bucket)
	case errors.Is(ce.Kind, objstore.ErrNeedsPathStyle):
		return fmt.Sprintf("host %s does not resolve: set store.s3.path_style: true (or path_style=true in store.url) for self-hosted servers", ce.Host)
	}
	return ""
}
