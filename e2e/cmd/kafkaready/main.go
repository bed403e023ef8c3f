// Command kafkaready waits until a Kafka broker answers a metadata request
// with at least one registered broker, so scripts start tests only against a
// broker that can already create topics and serve produce requests.
//
// It exits 0 once the broker is ready, and 1 when the deadline passes or the
// watched broker process (-pid) exits first, which lets the caller print the
// broker's log at once instead of waiting out the whole timeout.
//
// With -scram-user it then creates (or updates) that SCRAM-SHA-512 user
// through the admin API, with the password read from -scram-password-file,
// for the broker's SASL_SSL listener.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "comma-separated seed brokers")
	timeout := flag.Duration("timeout", 60*time.Second, "how long to wait for the broker")
	pid := flag.Int("pid", 0, "broker process id; stop waiting if it exits (0 to not watch)")
	progress := flag.Duration("progress", 15*time.Second, "how often to say why the broker is not ready yet")
	scramUser := flag.String("scram-user", "", "once ready, create or update this SCRAM-SHA-512 user")
	scramPasswordFile := flag.String("scram-password-file", "", "file holding the -scram-user's password")
	flag.Parse()

	seeds := strings.Split(*brokers, ",")
	err := run(seeds, *timeout, *pid, *progress)
	if err == nil && *scramUser != "" {
		err = upsertSCRAM(seeds, *scramUser, *scramPasswordFile)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kafkaready: %v\n", err)
		os.Exit(1)
	}
}

// upsertSCRAM creates or updates a SCRAM-SHA-512 user through the admin API
// (AlterUserScramCredentials), as an operator of a managed cluster would.
func upsertSCRAM(seeds []string, user, passwordFile string) error {
	pw, err := os.ReadFile(passwordFile)
	if err != nil {
		return fmt.Errorf("-scram-password-file: %w", err)
	}
	password := strings.TrimSpace(string(pw))
	if password == "" {
		return fmt.Errorf("-scram-password-file %s is empty", passwordFile)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := kadm.NewClient(cl).AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{
		User: user, Mechanism: kadm.ScramSha512, Iterations: 8192, Password: password,
	}})
	if err != nil {
		return fmt.Errorf("create SCRAM user %s: %w", user, err)
	}
	if r, ok := res[user]; ok && r.Err != nil {
		return fmt.Errorf("create SCRAM user %s: %w", user, r.Err)
	}
	return nil
}

func run(seeds []string, timeout time.Duration, pid int, progress time.Duration) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.DialTimeout(2*time.Second),
		// Every attempt below is bounded by its own context, so the client
		// should not retry on its own behind our back.
		kgo.RequestRetries(0),
	)
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	start := time.Now()
	deadline := start.Add(timeout)
	reported := start
	var lastErr error
	for time.Now().Before(deadline) {
		if pid > 0 && !alive(pid) {
			return fmt.Errorf("broker process %d exited before it was ready", pid)
		}
		lastErr = probe(adm)
		if lastErr == nil {
			return nil
		}
		// On a loaded machine a broker takes minutes: say what it is
		// waiting for rather than nothing.
		if now := time.Now(); progress > 0 && now.Sub(reported) >= progress {
			reported = now
			fmt.Fprintf(os.Stderr, "kafkaready: broker %s not ready after %s (of %s): %v\n",
				strings.Join(seeds, ","), now.Sub(start).Round(time.Second), timeout, lastErr)
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("broker %s not ready after %s: %w", strings.Join(seeds, ","), timeout, lastErr)
}

// probe asks for the cluster's brokers. A KRaft broker answers metadata
// requests with an empty broker list until it has registered with the
// controller and caught up on the metadata log, so a non-empty list means the
// broker is unfenced and serving.
func probe(adm *kadm.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	brokers, err := adm.ListBrokers(ctx)
	if err != nil {
		return fmt.Errorf("list brokers: %w", err)
	}
	if len(brokers) == 0 {
		return errors.New("metadata lists no brokers yet")
	}
	return nil
}

// alive reports whether the process exists and is not a zombie waiting to be
// reaped by its parent.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		// Without /proc the signal check above is all we can do.
		return true
	}
	// The state is the field after the parenthesised command name.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}
