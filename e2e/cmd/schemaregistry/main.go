// Command schemaregistry serves the Confluent Schema Registry REST API on
// a local port for the end-to-end tests, from franz-go's in-memory
// registry (pkg/sr/srfake): subjects, versions, schema IDs, references and
// compatibility levels, as producers, converters and the sink use them.
//
// It keeps everything in memory, so a restart forgets every schema: the
// tests start it once per run, before anything registers a schema.
//
// It stands in for a third-party registry server because none installs
// here from a package registry: Karapace is not published to PyPI, and
// Apicurio Registry's dependency closure is not on Maven Central.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/sr/srfake"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "schemaregistry:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:8081", "address to listen on")
	auth := flag.String("auth", "", "the exact Authorization header every request must carry (empty: none)")
	flag.Parse()

	var opts []srfake.Option
	if *auth != "" {
		opts = append(opts, srfake.WithAuth(*auth))
	}
	reg := srfake.NewRegistry(opts...)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	srv := &http.Server{Handler: reg.Handler(), ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("serving the schema registry API", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
