package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/evodb/sink/compaction"
	"github.com/evodb/sink/objstore"
	"github.com/evodb/sink/sink"
)

// fileConfig is the configuration file: the sink runtime's configuration
// plus what only the process needs, the store and the logger.
type fileConfig struct {
	sink.Config `yaml:",inline"`
	Store       storeConfig `yaml:"store"`
	Log         logConfig   `yaml:"log"`
	// Compaction configures `sink compact`, `sink vacuum` and background
	// compaction.
	Compaction compaction.Config `yaml:"compaction"`
	// Catalog is the Iceberg REST catalog of the tables whose format is
	// iceberg.
	Catalog catalogConfig `yaml:"catalog"`
}

// storeConfig names the object store holding the tables.
type storeConfig struct {
	// URL is file:///path, file://./relative, mem:// or
	// s3://bucket/prefix?endpoint=…&region=…&path_style=true.
	URL string `yaml:"url"`
	// S3 carries the S3 settings the URL does not: credentials above all.
	S3 objstore.S3Config `yaml:"s3"`
}

// logConfig configures the process logger.
type logConfig struct {
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level"`
	// Format is text (default) or json.
	Format string `yaml:"format"`
}

// loadConfig reads, substitutes, parses, defaults and validates the
// configuration file at path, with environment variables from lookup.
func loadConfig(path string, lookup func(string) (string, bool)) (*fileConfig, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read config: %w (start from the example: cp config.example.yaml %s)", err, path)
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := parseConfig(data, lookup)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// parseConfig is loadConfig on the file's contents.
func parseConfig(data []byte, lookup func(string) (string, bool)) (*fileConfig, error) {
	text, err := substituteEnv(string(data), lookup)
	if err != nil {
		return nil, err
	}
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(text), &root); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	// Compaction is on unless the file turns it off: its defaults are in
	// place before the file is decoded over them.
	cfg := &fileConfig{Compaction: compaction.DefaultConfig()}
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, explainDecodeError(err, &root)
	}
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (c *fileConfig) applyDefaults() {
	c.Config.ApplyDefaults()
	c.Compaction.ApplyDefaults()
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
}

// validate reports every invalid key, the runtime's and the process's.
func (c *fileConfig) validate() error {
	var errs []error
	if err := c.Config.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Compaction.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := validateStoreURL(c.Store.URL); err != nil {
		errs = append(errs, fmt.Errorf("store.url: %w", err))
	}
	if err := c.validateCatalog(); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		errs = append(errs, fmt.Errorf("log.level: %w", err))
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		errs = append(errs, fmt.Errorf("log.format: %q is not one of text, json", c.Log.Format))
	}
	return errors.Join(errs...)
}

func validateStoreURL(raw string) error {
	if raw == "" {
		return errors.New("required (file:///path, s3://bucket/prefix or mem://)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "file", "mem":
	case "s3":
		if u.Host == "" {
			return fmt.Errorf("%q names no bucket (s3://bucket/prefix)", raw)
		}
	default:
		return fmt.Errorf("%q: scheme %q is not one of file, s3, mem", raw, u.Scheme)
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q is not one of debug, info, warn, error", s)
	}
	return l, nil
}

// envRef matches ${NAME} and ${NAME:-default}; $${ escapes a literal ${.
var envRef = regexp.MustCompile(`\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// substituteEnv replaces ${NAME} and ${NAME:-default} with environment
// values, line by line and outside comments (so a commented-out example
// needs no variable). A variable that is unset and has no default is an
// error naming it and its line; a variable set to the empty string is
// used as is by ${NAME} and replaced by the default in ${NAME:-default},
// as in the shell.
func substituteEnv(text string, lookup func(string) (string, bool)) (string, error) {
	var (
		out     strings.Builder
		missing []string
	)
	for i, line := range strings.SplitAfter(text, "\n") {
		code, comment := splitComment(line)
		code = envRef.ReplaceAllStringFunc(code, func(m string) string {
			if m == "$${" {
				return "${"
			}
			sub := envRef.FindStringSubmatch(m)
			name, hasDefault, def := sub[1], sub[2] != "", sub[3]
			v, ok := lookup(name)
			switch {
			case ok && (v != "" || !hasDefault):
				return v
			case hasDefault:
				return def
			}
			missing = append(missing, fmt.Sprintf("line %d: environment variable %s is not set (use ${%s:-default} for a default)", i+1, name, name))
			return ""
		})
		out.WriteString(code)
		out.WriteString(comment)
	}
	if len(missing) > 0 {
		return "", errors.New(strings.Join(missing, "; "))
	}
	return out.String(), nil
}

// splitComment splits a YAML line before a comment: a # at the start of
// the line or after a blank, outside quotes.
func splitComment(line string) (code, comment string) {
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return line[:i], line[i:]
		}
	}
	return line, ""
}

// newLogger builds the process logger.
func newLogger(w io.Writer, c logConfig) *slog.Logger {
	level, err := parseLevel(c.Level)
	if err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
