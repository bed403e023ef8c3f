package partitioner

import (
	"fmt"
	"strings"
)

// Size units used by the mode presets.
const (
	KiB int64 = 1 << 10
	MiB int64 = 1 << 20
	GiB int64 = 1 << 30
)

// Mode sizes a table's files. A block is what one flush writes (about
// BlockSize bytes); a partition is a compacted file covering a contiguous LSN
// range of a table, at most PartitionMax bytes, with row groups of about
// BlockSize.
type Mode struct {
	Name string
	// BlockSize is the flush target of a table buffer and the row group
	// size of compacted files.
	BlockSize int64
	// PartitionMax is the largest file compaction builds.
	PartitionMax int64
	// MaxMergeInputs bounds how many files one compaction merges, which
	// bounds the compactor's open readers and memory.
	MaxMergeInputs int
}

// Names of the preset modes.
const (
	ModeDOSQLite   = "do-sqlite"
	ModeStandard   = "standard"
	ModeEnterprise = "enterprise"
)

// DefaultMode is the mode used when a table's configuration names none.
const DefaultMode = ModeStandard

// Modes returns the preset modes, smallest first. The numbers are those of
// the original writer's PARTITION_MODES, so existing deployments keep their
// file sizes.
func Modes() []Mode {
	return []Mode{
		{Name: ModeDOSQLite, BlockSize: 64 * KiB, PartitionMax: 2 * MiB, MaxMergeInputs: 8},
		{Name: ModeStandard, BlockSize: 4 * MiB, PartitionMax: 500 * MiB, MaxMergeInputs: 8},
		{Name: ModeEnterprise, BlockSize: 32 * MiB, PartitionMax: 5 * GiB, MaxMergeInputs: 16},
	}
}

// ModeByName returns the preset called name. An empty name selects
// DefaultMode. An unknown name is an error that lists the allowed names, so
// a typo in a config file is reported with its fix.
func ModeByName(name string) (Mode, error) {
	if name == "" {
		name = DefaultMode
	}
	modes := Modes()
	names := make([]string, 0, len(modes))
	for _, m := range modes {
		if m.Name == name {
			return m, nil
		}
		names = append(names, m.Name)
	}
	return Mode{}, fmt.Errorf("unknown partition mode %q (allowed: %s)", name, strings.Join(names, ", "))
}

// ModeConfigKey is the key of a table's metadata configuration that records
// the partition mode the table was created with.
const ModeConfigKey = "evodb.partitionMode"

// TableMode returns the partition mode of a table: the one its metadata
// configuration records, or configured when it records none (a table made
// by another writer). The recorded mode wins over the configuration, so
// every process that sizes a table's files sizes them alike, whatever its
// configuration says today.
func TableMode(configuration map[string]string, configured Mode) (Mode, error) {
	name, ok := configuration[ModeConfigKey]
	if !ok || name == "" {
		return configured, nil
	}
	m, err := ModeByName(name)
	if err != nil {
		return Mode{}, fmt.Errorf("table metadata %s: %w", ModeConfigKey, err)
	}
	return m, nil
}

// Validate reports whether the mode's sizes are usable. The presets are
// valid; this guards modes assembled from configuration.
func (m Mode) Validate() error {
	switch {
	case m.BlockSize <= 0:
		return fmt.Errorf("partition mode %q: block size %d must be positive", m.Name, m.BlockSize)
	case m.PartitionMax < m.BlockSize:
		return fmt.Errorf("partition mode %q: partition max %d is smaller than block size %d", m.Name, m.PartitionMax, m.BlockSize)
	case m.MaxMergeInputs < 2:
		return fmt.Errorf("partition mode %q: max merge inputs %d must be at least 2", m.Name, m.MaxMergeInputs)
	}
	return nil
}
