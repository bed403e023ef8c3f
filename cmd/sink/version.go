package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

func versionCommand() command {
	return command{
		usage:   "version",
		summary: "print the version",
		run: func(_ context.Context, e *env, args []string) error {
			fs := newFlags(e, "version", "version")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, versionString())
			return nil
		},
	}
}

// versionString is "evodb-sink <version> (<revision>, <go version>)".
func versionString() string {
	v, rev, dirty := version, "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	if rev == "" {
		rev = "unknown revision"
	}
	return fmt.Sprintf("evodb-sink %s (%s, %s)", v, rev, runtime.Version())
}
