package e2e

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes cmd receive SIGKILL when the test process dies, so a
// killed `go test` leaves no reader server (and its Spark JVM, which exits
// when its Python parent does) behind.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
