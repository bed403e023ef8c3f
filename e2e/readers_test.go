package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"time"
)

// readerServer is e2e/readers/check_tables.py running as a server: one
// Python process, so one Spark JVM, reads the tables of every scenario of
// a run. Spark's JVM takes tens of seconds to start; starting it once per
// run instead of once per scenario is what keeps it affordable.
type readerServer struct {
	mu     sync.Mutex // one check at a time
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	stderr *lockedBuffer
	dead   error
}

// lockedBuffer collects the server's standard error for failure messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Keep the tail: Spark is talkative, the end says what went wrong.
	if b.buf.Len() > 1<<20 {
		rest := append([]byte(nil), b.buf.Bytes()[b.buf.Len()-1<<19:]...)
		b.buf.Reset()
		b.buf.Write(rest)
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) tail() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > 8000 {
		s = s[len(s)-8000:]
	}
	return s
}

// startReaderServer starts check_tables.py --serve with python.
func startReaderServer(python string) (*readerServer, error) {
	cmd := exec.Command(python, "readers/check_tables.py", "--serve")
	dieWithTest(cmd)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	r := &readerServer{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20), stderr: &lockedBuffer{}}
	cmd.Stderr = r.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start check_tables.py --serve: %w", err)
	}
	return r, nil
}

// check sends one CONFIG_JSON and returns the answer line; a server that
// does not answer within timeout is killed and every later check fails.
func (r *readerServer) check(arg []byte, timeout time.Duration) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dead != nil {
		return nil, r.dead
	}
	type answer struct {
		line []byte
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		if _, err := r.in.Write(append(append([]byte(nil), arg...), '\n')); err != nil {
			done <- answer{nil, err}
			return
		}
		line, err := r.out.ReadBytes('\n')
		done <- answer{line, err}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case a := <-done:
		if a.err != nil {
			r.dead = fmt.Errorf("check_tables.py --serve: %w; its stderr ends with:\n%s", a.err, r.stderr.tail())
			return nil, r.dead
		}
		return a.line, nil
	case <-timer.C:
		_ = r.cmd.Process.Kill()
		<-done
		r.dead = fmt.Errorf("check_tables.py --serve did not answer within %s; its stderr ends with:\n%s", timeout, r.stderr.tail())
		return nil, r.dead
	}
}

// close ends the server (end of input) and waits for it.
func (r *readerServer) close() error {
	r.in.Close()
	return r.cmd.Wait()
}
