//go:build testcontainers

package e2e

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// With `-tags testcontainers` on a machine with a Docker engine, the suite
// starts its own Redpanda and versitygw (the same S3 server CI runs from
// source) when SINK_E2E_KAFKA is unset. CI compiles this file but has no
// engine; it runs the suite against the services .ci/run starts instead.
func init() { startContainers = runContainers }

const (
	redpandaImage  = "redpandadata/redpanda:v26.1.14"
	versitygwImage = "versity/versitygw:v1.8.0"
	s3AccessKey    = "evodbtest"
	s3SecretKey    = "evodbtestsecret"
	s3Bucket       = "evodb-test"
)

func runContainers() (func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var started []testcontainers.Container
	stop := func() {
		for _, c := range started {
			_ = c.Terminate(context.Background())
		}
	}
	// Redpanda advertises the address clients reach it by: a fixed host
	// port keeps that address known before the container starts.
	rp, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:        redpandaImage,
			ExposedPorts: []string{"19092:19092/tcp"},
			Cmd: []string{"redpanda", "start", "--mode", "dev-container", "--smp", "1",
				"--kafka-addr", "0.0.0.0:19092", "--advertise-kafka-addr", "127.0.0.1:19092"},
			WaitingFor: wait.ForLog("Successfully started Redpanda").WithStartupTimeout(2 * time.Minute),
		},
		Started: true,
	})
	if err != nil {
		return stop, fmt.Errorf("start redpanda: %w", err)
	}
	started = append(started, rp)
	s3, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:        versitygwImage,
			ExposedPorts: []string{"7070/tcp"},
			Env:          map[string]string{"ROOT_ACCESS_KEY_ID": s3AccessKey, "ROOT_SECRET_ACCESS_KEY": s3SecretKey},
			Entrypoint:   []string{"sh", "-c", "mkdir -p /data/" + s3Bucket + " && exec versitygw --port :7070 --region auto posix /data"},
			WaitingFor:   wait.ForListeningPort("7070/tcp").WithStartupTimeout(time.Minute),
		},
		Started: true,
	})
	if err != nil {
		return stop, fmt.Errorf("start versitygw: %w", err)
	}
	started = append(started, s3)
	endpoint, err := s3.PortEndpoint(ctx, "7070/tcp", "http")
	if err != nil {
		return stop, err
	}
	for k, v := range map[string]string{
		"SINK_E2E_KAFKA":         "127.0.0.1:19092",
		"SINK_E2E_S3_ENDPOINT":   endpoint,
		"SINK_E2E_S3_BUCKET":     s3Bucket,
		"SINK_E2E_S3_ACCESS_KEY": s3AccessKey,
		"SINK_E2E_S3_SECRET_KEY": s3SecretKey,
		"SINK_E2E_S3_REGION":     "auto",
	} {
		os.Setenv(k, v)
	}
	return stop, nil
}
