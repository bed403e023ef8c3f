package sink

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// A mirror section in the defaults applies to every table, an override's
// section inherits the keys it does not set, and unset keys take the
// mirror defaults.
func TestConfigMirrorMergesAndDefaults(t *testing.T) {
	var cfg Config
	require.NoError(t, yaml.Unmarshal([]byte(`
kafka: {brokers: [b:9092], topics: [cdc]}
tables:
  default:
    mirror: {enabled: true, interval: 5s}
  overrides:
    users:
      mirror: {key: [id], path: "{path}_now"}
    orders:
      format: iceberg
      mirror: {enabled: false}
`), &cfg))
	cfg.ApplyDefaults()
	require.NoError(t, cfg.Validate())

	d := cfg.TableConfig("accounts")
	require.True(t, d.MirrorEnabled())
	require.Equal(t, MirrorConfig{Enabled: true, Path: "{path}_current", Interval: 5 * time.Second, MaxFiles: 16, TargetFileRows: 131072}, *d.Mirror)
	require.Equal(t, "db/public/accounts_current", d.Mirror.TablePath("db/public/accounts"))

	u := cfg.TableConfig("users")
	require.False(t, u.MirrorEnabled(), "an override's mirror section replaces enabled: it is false unless set")
	require.Equal(t, []string{"id"}, u.Mirror.Key)
	require.Equal(t, 5*time.Second, u.Mirror.Interval)
	require.Equal(t, "x_now", u.Mirror.TablePath("x"))

	require.False(t, cfg.TableConfig("orders").MirrorEnabled())

	var none Config
	none.ApplyDefaults()
	require.False(t, none.TableConfig("t").MirrorEnabled())
	require.Equal(t, "{path}_current", none.TableConfig("t").Mirror.Path)
}

// Each invalid mirror key is named, and a mirror of an Iceberg table is
// refused with the reason.
func TestConfigMirrorValidation(t *testing.T) {
	cfg := testConfig([]string{"127.0.0.1:9092"}, "cdc")
	cfg.Tables.Overrides = map[string]TableConfig{
		"ice":  {Format: FormatIceberg, Mirror: &MirrorConfig{Enabled: true}},
		"self": {Mirror: &MirrorConfig{Enabled: true, Path: "{path}"}},
		"in":   {Mirror: &MirrorConfig{Enabled: true, Path: "{path}/current"}},
		"same": {Path: "a/{table}", Mirror: &MirrorConfig{Enabled: true, Path: "a/{table}"}},
		"bad":  {Mirror: &MirrorConfig{Enabled: true, Key: []string{"a,b"}, Interval: -time.Second, MaxFiles: 1, TargetFileRows: -1}},
	}
	cfg.ApplyDefaults()
	err := cfg.Validate()
	require.Error(t, err)
	for _, want := range []string{
		"tables.overrides.ice.mirror: mirror tables need format: delta",
		"tables.overrides.self.mirror.path",
		"tables.overrides.in.mirror.path: \"{path}/current\" puts the mirror inside its change log",
		"tables.overrides.same.mirror.path",
		"tables.overrides.bad.mirror.key[0]",
		"tables.overrides.bad.mirror.interval",
		"tables.overrides.bad.mirror.max_files",
		"tables.overrides.bad.mirror.target_file_rows",
	} {
		require.ErrorContains(t, err, want)
	}
}
