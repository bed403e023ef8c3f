package compaction

import (
	"errors"
	"fmt"
	"time"
)

// Config configures compaction and vacuum: the `compaction:` section of the
// configuration file. Zero values take the defaults of DefaultConfig (use
// ApplyDefaults), except Enabled: `sink run` decodes the file over
// DefaultConfig, so the scheduler runs unless the file says
// `enabled: false`.
type Config struct {
	// Enabled runs the scheduler inside `sink run`.
	Enabled bool `yaml:"enabled"`
	// Interval is the pause between scheduling rounds over all tables.
	Interval time.Duration `yaml:"interval"`
	// MinInputs is the fewest files a job merges unless its output is a
	// finished file; default 4.
	MinInputs int `yaml:"min_inputs"`
	// MaxInputs is the most files a job merges; 0 means the partition
	// mode's (8, or 16 for enterprise).
	MaxInputs int `yaml:"max_inputs"`
	// MaxJobBytes bounds the input bytes of one job. Inputs are decoded
	// whole in memory, so this bounds the compactor's memory (several times
	// this, decoded). Below a mode's partition max it also lowers the
	// largest file compaction builds. Default 256 MiB.
	MaxJobBytes int64 `yaml:"max_job_bytes"`
	// Concurrency bounds the tables compacted at once; default 1, so
	// compaction never competes with flushes for more than one core's share.
	Concurrency int `yaml:"concurrency"`
	// LeaseTTL is how long a table's compaction lease lasts unless renewed;
	// it is renewed after every job. Default 10m.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// Retention is how long vacuum keeps files removed from the log and
	// files never committed. Default 168h, Delta's default; at least 1h.
	Retention time.Duration `yaml:"retention"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Enabled:     true,
		Interval:    5 * time.Minute,
		MinInputs:   DefaultMinInputs,
		MaxJobBytes: DefaultMaxJobBytes,
		Concurrency: 1,
		LeaseTTL:    10 * time.Minute,
		Retention:   7 * 24 * time.Hour,
	}
}

// ApplyDefaults fills every unset key but Enabled from DefaultConfig.
func (c *Config) ApplyDefaults() {
	d := DefaultConfig()
	if c.Interval == 0 {
		c.Interval = d.Interval
	}
	if c.MinInputs == 0 {
		c.MinInputs = d.MinInputs
	}
	if c.MaxJobBytes == 0 {
		c.MaxJobBytes = d.MaxJobBytes
	}
	if c.Concurrency == 0 {
		c.Concurrency = d.Concurrency
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = d.LeaseTTL
	}
	if c.Retention == 0 {
		c.Retention = d.Retention
	}
}

// Validate reports every invalid key, named as in the configuration file.
func (c Config) Validate() error {
	var errs []error
	if c.Interval < 0 {
		errs = append(errs, fmt.Errorf("compaction.interval: %s is negative", c.Interval))
	}
	if c.MinInputs < 0 || c.MinInputs == 1 {
		errs = append(errs, fmt.Errorf("compaction.min_inputs: %d must be at least 2", c.MinInputs))
	}
	if c.MaxInputs < 0 || c.MaxInputs == 1 {
		errs = append(errs, fmt.Errorf("compaction.max_inputs: %d must be 0 (the mode's) or at least 2", c.MaxInputs))
	}
	if c.MaxInputs > 0 && c.MinInputs > c.MaxInputs {
		errs = append(errs, fmt.Errorf("compaction.min_inputs: %d is above max_inputs %d", c.MinInputs, c.MaxInputs))
	}
	if c.MaxJobBytes < 0 {
		errs = append(errs, fmt.Errorf("compaction.max_job_bytes: %d is negative", c.MaxJobBytes))
	}
	if c.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("compaction.concurrency: %d is negative", c.Concurrency))
	}
	if c.LeaseTTL < 0 || (c.LeaseTTL > 0 && c.LeaseTTL < time.Second) {
		errs = append(errs, fmt.Errorf("compaction.lease_ttl: %s must be at least 1s", c.LeaseTTL))
	}
	if c.Retention < 0 {
		errs = append(errs, fmt.Errorf("compaction.retention: %s is negative", c.Retention))
	} else if c.Retention > 0 && c.Retention < MinRetention {
		// Vacuum would refuse it; say so when the file is read, not at the
		// first vacuum.
		errs = append(errs, fmt.Errorf("compaction.retention: %s is under the 1h minimum", c.Retention))
	}
	return errors.Join(errs...)
}

// planOptions is the planner's view of c.
func (c Config) planOptions() PlanOptions {
	return PlanOptions{MinInputs: c.MinInputs, MaxInputs: c.MaxInputs, MaxJobBytes: c.MaxJobBytes}
}
