package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/evodb/sink/codec"
	"github.com/evodb/sink/codec/cdc"
	"github.com/evodb/sink/codec/confluent"
	"github.com/evodb/sink/committer"
	"github.com/evodb/sink/mirror"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/sink"
	"github.com/evodb/sink/verify"
)

// errProblems is returned when verification found problems: the report
// says which, the error only sets the exit status.
var errProblems = errors.New("the tables do not hold the topics exactly once")

func verifyCommand() command {
	const usage = "verify -c config.yaml [-topic t] [-from offset] [-to offset] [-max n]"
	return command{
		usage:   usage,
		summary: "prove the tables hold every change of the topics exactly once; list gaps, duplicates, mismatches",
		run: func(ctx context.Context, e *env, args []string) error {
			fs := newFlags(e, "verify", usage)
			path := fs.String("c", "config.yaml", "configuration file of the sink whose tables to verify")
			topic := fs.String("topic", "", "verify only this topic (default: every topic of kafka.topics, or every topic matching kafka.topic_regex)")
			from := fs.Int64("from", -1, "first offset to verify in every partition (default: the log start)")
			to := fs.Int64("to", -1, "first offset not to verify in every partition (default: the high watermark)")
			maxProblems := fs.Int("max", 50, "problems listed one by one (all are counted)")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			if fs.NArg() > 0 {
				return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
			}
			cfg, err := loadConfig(*path, e.lookupEnv)
			if err != nil {
				return err
			}
			kopts, err := sink.ClientOptions(cfg.Kafka)
			if err != nil {
				return err
			}
			topics := cfg.Kafka.Topics
			switch {
			case *topic != "":
				topics = []string{*topic}
			case cfg.Kafka.TopicRegex != "":
				if topics, err = matchingTopics(ctx, kopts, cfg); err != nil {
					return err
				}
			}
			if len(topics) == 0 {
				return fmt.Errorf("%w: no topics: set kafka.topics or -topic", errUsage)
			}
			bucket, err := objstore.Open(ctx, cfg.Store.URL, cfg.Store.S3)
			if err != nil {
				return err
			}
			tf, err := openFormat(ctx, cfg, bucket, 0)
			if err != nil {
				return err
			}
			formats := map[string]codec.Format{}
			for t, f := range cfg.Kafka.Formats {
				formats[t] = codec.Format(f)
			}
			// Topics in a schema-registry format share one registry
			// client, made with the first of them.
			var reg *confluent.Registry
			newDecoder := func(topic string, f codec.Format) (cdc.Decoder, error) {
				if !confluent.IsFormat(f) {
					return cdc.NewDecoder(f)
				}
				if reg == nil {
					var err error
					if reg, err = sink.NewSchemaRegistry(cfg.SchemaRegistry); err != nil {
						return nil, err
					}
				}
				key := cfg.Kafka.KeyFormat
				if kf, ok := cfg.Kafka.KeyFormats[topic]; ok {
					key = kf
				}
				return sink.RegistryDecoder(cfg.SchemaRegistry, reg, string(f), key)
			}
			rep, err := verify.Verify(ctx, kopts, bucket, tf, verify.Options{
				NewDecoder:  newDecoder,
				Topics:      topics,
				Format:      codec.Format(cfg.Kafka.Format),
				Formats:     formats,
				From:        *from,
				To:          *to,
				DLQTopic:    cfg.Errors.DLQTopic,
				MaxProblems: *maxProblems,
			})
			if err != nil {
				return err
			}
			fmt.Fprint(e.stdout, rep.String())
			mirrorsOK, err := verifyMirrors(ctx, e.stdout, cfg, bucket, tf)
			if err != nil {
				return err
			}
			if !rep.OK() || !mirrorsOK {
				return errProblems
			}
			return nil
		},
	}
}

// verifyMirrors checks the mirror of every table whose configuration
// enables one (mirror.Check: the mirror equals the current-state view of
// its change log at the version it holds) and prints a line per mirror.
// It reports false if a mirror differs, is missing, or holds no version
// of its change log yet.
func verifyMirrors(ctx context.Context, w io.Writer, cfg *fileConfig, bucket objstore.Bucket, tf committer.Format) (bool, error) {
	paths, err := tf.ListTables(ctx)
	if err != nil {
		return false, fmt.Errorf("verify mirrors: %w", err)
	}
	ok, header := true, false
	for _, path := range paths {
		log := tf.Open(path, committer.Options{})
		snap, err := log.Snapshot(ctx)
		if err != nil {
			return false, fmt.Errorf("verify mirrors: read table %s: %w", path, err)
		}
		if snap.Metadata.Configuration[mirror.ConfigMirrorOf] != "" {
			continue
		}
		tc := cfg.TableConfig(snap.Metadata.Name)
		if !tc.MirrorEnabled() {
			continue
		}
		if !header {
			fmt.Fprintln(w, "mirrors:")
			header = true
		}
		mpath := tc.Mirror.TablePath(path)
		rep, err := mirror.Check(ctx, bucket, tf.Open(path, committer.Options{Format: sink.FormatDelta}),
			tf.Open(mpath, committer.Options{Format: sink.FormatDelta, DeleteRows: true}), tc.Mirror.Key)
		if err != nil {
			ok = false
			fmt.Fprintf(w, "  %s: FAILED: %v\n", mpath, err)
			continue
		}
		status := "OK"
		if !rep.OK() {
			ok = false
			status = "FAILED"
		}
		fmt.Fprintf(w, "  %s: %s\n", status, strings.ReplaceAll(rep.String(), "\n", "\n  "))
	}
	return ok, nil
}

// matchingTopics lists the topics the sink of cfg consumes through
// kafka.topic_regex, as the sink's consumer matches them: the expression
// matches anywhere in the name and internal topics never match. The
// dead-letter and notification topics are the sink's output, not its
// input, and are left out.
func matchingTopics(ctx context.Context, kopts []kgo.Opt, cfg *fileConfig) ([]string, error) {
	re, err := regexp.Compile(cfg.Kafka.TopicRegex)
	if err != nil {
		return nil, fmt.Errorf("kafka.topic_regex: %w", err)
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	listed, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("list topics for kafka.topic_regex: %w", err)
	}
	var topics []string
	for _, d := range listed.Sorted() {
		if d.IsInternal || d.Err != nil || !re.MatchString(d.Topic) ||
			d.Topic == cfg.Errors.DLQTopic || d.Topic == cfg.Notify.Topic {
			continue
		}
		topics = append(topics, d.Topic)
	}
	if len(topics) == 0 {
		return nil, fmt.Errorf("no topic matches kafka.topic_regex %q", cfg.Kafka.TopicRegex)
	}
	return topics, nil
}
