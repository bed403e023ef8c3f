// Package leaktest holds the goroutine-leak checks that the packages'
// TestMains share.
package leaktest

import (
	"testing"

	"go.uber.org/goleak"
)

// VerifyTestMain runs the tests and fails if goroutines outlive them, as
// goleak.VerifyTestMain does, except for the goroutines of idle keep-alive
// HTTP connections: the S3 client keeps its connections open between
// requests (S3, R2 and the versitygw of the tests keep them alive), and
// they belong to the SDK's shared transport, not to the code under test.
func VerifyTestMain(m *testing.M, opts ...goleak.Option) {
	opts = append(opts,
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
	)
	goleak.VerifyTestMain(m, opts...)
}
