package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/codec/confluent"
	"github.com/evodb/sink/internal/workload"
	"github.com/evodb/sink/sink"
)

func produceCommand() command {
	const usage = "produce -brokers host:9092 -topic cdc [-format evodb|debezium|avro|protobuf] [-registry URL] [-records N] [-tables N] [-seed N] [-bad-rate F]"
	return command{
		usage:   usage,
		summary: "produce a generated CDC workload to a topic",
		run: func(ctx context.Context, e *env, args []string) error {
			fs := newFlags(e, "produce", usage)
			brokers := fs.String("brokers", "127.0.0.1:9092", "comma-separated seed brokers")
			configPath := fs.String("c", "", "configuration file whose kafka section (brokers, TLS, SASL) to use instead of -brokers")
			topic := fs.String("topic", "", "topic to produce to (created with -partitions if missing)")
			format := fs.String("format", "evodb", "envelope: evodb or debezium (JSON), or avro or protobuf (the evodb changes as plain Avro or Protobuf records in the Confluent wire format, schemas registered in -registry)")
			registry := fs.String("registry", "", "schema registry URL for -format avro and protobuf (default: the -c file's schema_registry)")
			schema := fs.Bool("schema", false, "wrap Debezium records in the Kafka Connect schema envelope")
			records := fs.Int("records", 100_000, "number of records")
			tables := fs.Int("tables", workload.DefaultTables, "number of tables (8, 64 and 512 are the benchmark sizes)")
			partitions := fs.Int("partitions", workload.DefaultPartitions, "partitions of a topic this creates")
			seed := fs.Uint64("seed", 1, "random seed: the same seed produces the same records")
			badRate := fs.Float64("bad-rate", 0, "fraction of undecodable records (for dead-letter tests)")
			evolveAfter := fs.Int("evolve-after", 0, "add a column to each table after this many of its changes (0: never)")
			startLSN := fs.Uint64("start-lsn", 1, "LSN of the first change; continue a previous run with its last LSN + 1")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			switch {
			case *topic == "":
				return fmt.Errorf("%w: -topic is required", errUsage)
			case *format != string(cdc.FormatEvoDB) && *format != string(cdc.FormatDebezium) && !confluent.IsEncodable(codec.Format(*format)):
				return fmt.Errorf("%w: -format %q is not one of evodb, debezium, avro, protobuf", errUsage, *format)
			case *records < 0 || *tables <= 0 || *partitions <= 0:
				return fmt.Errorf("%w: -records, -tables and -partitions must be positive", errUsage)
			case *badRate < 0 || *badRate > 1:
				return fmt.Errorf("%w: -bad-rate must be within [0, 1]", errUsage)
			}
			kcfg := sink.KafkaConfig{Brokers: splitList(*brokers)}
			rcfg := sink.DefaultConfig().SchemaRegistry
			if *configPath != "" {
				cfg, err := loadConfig(*configPath, e.lookupEnv)
				if err != nil {
					return err
				}
				kcfg, rcfg = cfg.Kafka, cfg.SchemaRegistry
			}
			if *registry != "" {
				rcfg.URLs = []string{*registry}
			}
			var transform func(*workload.Record) error
			if confluent.IsEncodable(codec.Format(*format)) {
				if len(rcfg.URLs) == 0 {
					return fmt.Errorf("%w: -format %s needs -registry or a -c file with schema_registry.urls", errUsage, *format)
				}
				var err error
				if transform, err = registryTransform(ctx, rcfg, *topic, codec.Format(*format)); err != nil {
					return err
				}
			}
			opts, err := sink.ClientOptions(kcfg)
			if err != nil {
				return err
			}
			cl, err := kgo.NewClient(append(opts, workload.ProducerOptions()...)...)
			if err != nil {
				return fmt.Errorf("kafka client: %w", err)
			}
			defer cl.Close()
			nparts, err := ensureTopic(ctx, kadm.NewClient(cl), *topic, int32(*partitions))
			if err != nil {
				return err
			}
			genFormat := codec.Format(*format)
			if transform != nil {
				genFormat = cdc.FormatEvoDB
			}
			g := workload.New(workload.Config{
				Format:        genFormat,
				SchemaWrapper: *schema,
				Topic:         *topic,
				Partitions:    nparts,
				Tables:        *tables,
				StartLSN:      *startLSN,
				EvolveAfter:   *evolveAfter,
				BadRate:       *badRate,
				// Live traffic: stamped with the wall clock, so the
				// sink's freshness is the real delay.
				Now: time.Now,
			}, rand.New(rand.NewPCG(*seed, *seed)))
			start := time.Now()
			err = workload.ProduceTransformed(ctx, cl, g, *records, transform, progressPrinter(e, "produced", *records, start))
			if err != nil {
				return err
			}
			el := time.Since(start)
			fmt.Fprintf(e.stdout, "produced %d records to %s (%d partitions, %d tables, %s) in %s: %.0f records/s\n",
				*records, *topic, nparts, *tables, *format, el.Round(time.Millisecond), float64(*records)/el.Seconds())
			return nil
		},
	}
}

// registryTransform returns a transform that re-encodes generated evodb
// records as plain Avro or Protobuf records, registering their schemas.
// Bad records stay as they are: without the wire-format header they are
// bad for an avro or protobuf topic too.
func registryTransform(ctx context.Context, rcfg sink.SchemaRegistryConfig, topic string, f codec.Format) (func(*workload.Record) error, error) {
	reg, err := sink.NewSchemaRegistry(rcfg)
	if err != nil {
		return nil, err
	}
	enc, err := confluent.NewChangeEncoder(reg, topic, f)
	if err != nil {
		return nil, err
	}
	return workload.RegistryTransform(ctx, enc)
}

// ensureTopic returns the partition count of topic, creating it with
// partitions (and the cluster's default replication) if it does not exist.
func ensureTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32) (int32, error) {
	// Two rounds: a topic someone else creates between the look-up and
	// the creation is looked up again.
	for range 2 {
		details, err := adm.ListTopics(ctx, topic)
		if err != nil {
			return 0, fmt.Errorf("describe topic %s: %w", topic, err)
		}
		if d, ok := details[topic]; ok && d.Err == nil {
			return int32(len(d.Partitions)), nil
		}
		resp, err := adm.CreateTopic(ctx, partitions, -1, nil, topic)
		if err == nil {
			err = resp.Err
		}
		switch {
		case err == nil:
			return partitions, nil
		case !errors.Is(err, kerr.TopicAlreadyExists):
			return 0, fmt.Errorf("create topic %s: %w", topic, err)
		}
	}
	return 0, fmt.Errorf("topic %s exists but cannot be described", topic)
}

// progressPrinter returns a progress callback that prints a line at most
// every second, and always the last one.
func progressPrinter(e *env, what string, total int, start time.Time) func(int) {
	last := time.Time{}
	return func(done int) {
		now := time.Now()
		if done < total && now.Sub(last) < time.Second {
			return
		}
		last = now
		fmt.Fprintf(e.stdout, "%s %d/%d records (%.0f/s)\n", what, done, total, float64(done)/max(now.Sub(start).Seconds(), 1e-3))
	}
}
