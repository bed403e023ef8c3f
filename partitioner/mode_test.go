package partitioner

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestModeByName(t *testing.T) {
	cases := []struct {
		name      string
		want      Mode
		wantError string
	}{
		{name: "do-sqlite", want: Mode{Name: "do-sqlite", BlockSize: 64 << 10, PartitionMax: 2 << 20, MaxMergeInputs: 8}},
		{name: "standard", want: Mode{Name: "standard", BlockSize: 4 << 20, PartitionMax: 500 << 20, MaxMergeInputs: 8}},
		{name: "enterprise", want: Mode{Name: "enterprise", BlockSize: 32 << 20, PartitionMax: 5 << 30, MaxMergeInputs: 16}},
		{name: "", want: Mode{Name: "standard", BlockSize: 4 << 20, PartitionMax: 500 << 20, MaxMergeInputs: 8}},
		{name: "Standard", wantError: `unknown partition mode "Standard" (allowed: do-sqlite, standard, enterprise)`},
		{name: "huge", wantError: "allowed: do-sqlite, standard, enterprise"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ModeByName(tc.name)
			if tc.wantError != "" {
				require.ErrorContains(t, err, tc.wantError)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.NoError(t, got.Validate())
		})
	}
}

func TestModesAreIndependentCopies(t *testing.T) {
	m := Modes()
	m[0].BlockSize = 1
	require.Equal(t, 64*KiB, Modes()[0].BlockSize)
}

func TestModeValidate(t *testing.T) {
	cases := []struct {
		name      string
		mode      Mode
		wantError string
	}{
		{name: "ok", mode: Mode{Name: "x", BlockSize: 1, PartitionMax: 1, MaxMergeInputs: 2}},
		{name: "zero block", mode: Mode{Name: "x", BlockSize: 0, PartitionMax: 1, MaxMergeInputs: 2}, wantError: "block size 0"},
		{name: "negative block", mode: Mode{Name: "x", BlockSize: -1, PartitionMax: 1, MaxMergeInputs: 2}, wantError: "block size -1"},
		{name: "max below block", mode: Mode{Name: "x", BlockSize: 2, PartitionMax: 1, MaxMergeInputs: 2}, wantError: "smaller than block size"},
		{name: "one input", mode: Mode{Name: "x", BlockSize: 1, PartitionMax: 1, MaxMergeInputs: 1}, wantError: "max merge inputs 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.mode.Validate()
			if tc.wantError == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantError)
		})
	}
}

func TestTableMode(t *testing.T) {
	configured := Mode{Name: "test", BlockSize: 4 << 10, PartitionMax: 48 << 10, MaxMergeInputs: 8}
	sqlite, err := ModeByName(ModeDOSQLite)
	require.NoError(t, err)
	cases := []struct {
		name          string
		configuration map[string]string
		want          Mode
		wantError     string
	}{
		{name: "no configuration", want: configured},
		{name: "none recorded", configuration: map[string]string{"other": "x"}, want: configured},
		{name: "empty recorded", configuration: map[string]string{ModeConfigKey: ""}, want: configured},
		{name: "recorded wins", configuration: map[string]string{ModeConfigKey: ModeDOSQLite}, want: sqlite},
		{name: "unknown recorded", configuration: map[string]string{ModeConfigKey: "huge"},
			wantError: `table metadata evodb.partitionMode: unknown partition mode "huge"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := TableMode(tc.configuration, configured)
			if tc.wantError != "" {
				require.ErrorContains(t, err, tc.wantError)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}
