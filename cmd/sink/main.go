// Command sink runs evodb-sink: it consumes CDC topics from Kafka or
// Redpanda and commits them as Delta Lake tables on R2, S3 or a
// filesystem, exactly once. Subcommands ('sink <command> -h' lists a
// command's flags):
//
//	sink run -c config.yaml           run the sink
//	sink demo [-dir ./evodb-demo]     a self-contained demo: in-process broker, generated CDC, local tables
//	sink inspect [-c config.yaml] [<store-url or directory>] [table]
//	                                  versions, files, sizes, LSN ranges and txn offsets of the tables
//	sink verify -c config.yaml        prove the tables hold every change of the topics exactly once
//	sink compact -c config.yaml [table]
//	                                  merge small files once, printing file counts before and after
//	sink vacuum -c config.yaml [table]
//	                                  delete data files removed from the log or never committed
//	sink produce -brokers … -topic …  produce a generated CDC workload to any broker
//	sink bench [-tables 8,64,512]     measure the sink beside consume-only and decode+encode baselines
//	sink version                      print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
)

// version is the release version, set at build time with
// -ldflags "-X main.version=v1.2.3"; without it the module version from
// the build info is reported.
var version string

// env is what a subcommand may touch of the process: its output streams
// and its environment. Tests supply their own.
type env struct {
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
	// logger is the JSON logger of a command that logs (run, compact,
	// once its configuration is loaded), nil before and in the text
	// format. The signal handler and the
	// final error go through it, so that with log.format json every line
	// on stderr is JSON; it is atomic because the signal handler runs on
	// its own goroutine.
	logger atomic.Pointer[slog.Logger]
}

// useLogger makes log the command's logger for its notices and final
// error when the configured format is JSON, so that every line on stderr
// is JSON. In the text format they stay plain "sink <command>: …" lines,
// which lead with the fix and read better than a log record.
func (e *env) useLogger(log *slog.Logger, c logConfig) {
	if c.Format == "json" {
		e.logger.Store(log)
	}
}

// notice tells the operator what the process does, through the command's
// logger if it has one, else as a plain line on stderr.
func (e *env) notice(msg string) {
	if l := e.logger.Load(); l != nil {
		l.Info(msg)
		return
	}
	fmt.Fprintf(e.stderr, "sink: %s\n", msg)
}

// command is one subcommand.
type command struct {
	// usage is the synopsis after "sink", summary a one-line description.
	usage, summary string
	run            func(ctx context.Context, e *env, args []string) error
}

// commands is the subcommand table: one line registers a subcommand
// implemented in its own file (and one line of the package doc names it).
func commands() map[string]command {
	return map[string]command{
		"run":     runCommand(),
		"bench":   benchCommand(),
		"demo":    demoCommand(),
		"inspect": inspectCommand(),
		"produce": produceCommand(),
		"version": versionCommand(),
		"compact": compactCommand(),
		"vacuum":  vacuumCommand(),
		"verify":  verifyCommand(),
	}
}

// errUsage marks an error caused by bad arguments (exit status 2).
var errUsage = errors.New("usage")

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The first SIGINT or SIGTERM cancels the context: the sink stops
	// fetching, flushes, commits and leaves the group. A second one exits
	// at once; that is safe because no offset is committed past data that
	// is not durable, so the next run re-reads whatever was in flight.
	e := &env{stdout: os.Stdout, stderr: os.Stderr, lookupEnv: os.LookupEnv}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		e.notice("shutting down gracefully (signal again to exit at once)")
		cancel()
		<-sigs
		e.notice("exiting at once; uncommitted changes will be re-read on the next start")
		os.Exit(130)
	}()
	os.Exit(runMain(ctx, e, os.Args[1:]))
}

// runMain runs the subcommand named by args[0] and returns the exit status.
func runMain(ctx context.Context, e *env, args []string) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(e.stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "sink: unknown command %q\n\n", args[0])
		usage(e.stderr, cmds)
		return 2
	}
	err := cmd.run(ctx, e, args[1:])
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(e.stderr, "sink %s: %v\nusage: sink %s\n", args[0], err, cmd.usage)
		return 2
	}
	hint := storeHint(err)
	if l := e.logger.Load(); l != nil {
		if hint != "" {
			l.Error("exiting with an error", "command", args[0], "fix", hint, "err", err)
		} else {
			l.Error("exiting with an error", "command", args[0], "err", err)
		}
		return 1
	}
	if hint != "" {
		// The fix first, on its own line; the store's full answer after it.
		fmt.Fprintf(e.stderr, "sink %s: %s\n  %v\n", args[0], hint, err)
		return 1
	}
	fmt.Fprintf(e.stderr, "sink %s: %v\n", args[0], err)
	return 1
}

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "evodb-sink: Kafka CDC topics into Delta Lake tables on R2, S3 or a filesystem, exactly once.")
	fmt.Fprintln(w, "\nusage:")
	for _, n := range names {
		fmt.Fprintf(w, "  sink %s\n      %s\n", cmds[n].usage, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'sink <command> -h' for a command's flags.")
}

// newFlags returns a flag set for a subcommand that reports errors instead
// of exiting and prints its usage to e.stderr.
func newFlags(e *env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: sink %s\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, marking bad flags as usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
