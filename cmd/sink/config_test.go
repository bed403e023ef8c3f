package main

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/evodb/sink/sink"
)

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

const minimal = `
kafka:
  brokers: [127.0.0.1:9092]
  topics: [cdc]
store:
  url: file:///tmp/x
`

func TestSubstituteEnv(t *testing.T) {
	env := envMap(map[string]string{"A": "alpha", "EMPTY": ""})
	for _, tc := range []struct {
		name, in, want, err string
	}{
		{name: "plain", in: "x: ${A}", want: "x: alpha"},
		{name: "default unused", in: "x: ${A:-beta}", want: "x: alpha"},
		{name: "default used", in: "x: ${B:-beta}", want: "x: beta"},
		{name: "empty default", in: "x: ${B:-}", want: "x: "},
		{name: "set empty", in: "x: ${EMPTY}", want: "x: "},
		{name: "set empty takes default", in: "x: ${EMPTY:-d}", want: "x: d"},
		{name: "several", in: "x: ${A}-${B:-b}\ny: ${A}", want: "x: alpha-b\ny: alpha"},
		{name: "escaped", in: "x: $${A}", want: "x: ${A}"},
		{name: "comment skipped", in: "# ${MISSING}\nx: 1 # ${MISSING}", want: "# ${MISSING}\nx: 1 # ${MISSING}"},
		{name: "hash in quotes", in: `x: "a #${A}"`, want: `x: "a #alpha"`},
		{name: "missing", in: "x: 1\ny: ${MISSING}", err: "line 2: environment variable MISSING is not set"},
		{name: "no dollar", in: "x: {a: 1}", want: "x: {a: 1}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := substituteEnv(tc.in, env)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		yaml  string
		env   map[string]string
		check func(t *testing.T, c *fileConfig)
		errs  []string
	}{
		{
			name: "minimal gets defaults",
			yaml: minimal,
			check: func(t *testing.T, c *fileConfig) {
				require.Equal(t, "evodb-sink", c.Kafka.Group)
				require.Equal(t, "evodb", c.Kafka.Format)
				require.Equal(t, 30*time.Second, c.Tables.Default.FlushInterval)
				require.Equal(t, "info", c.Log.Level)
				require.Equal(t, "text", c.Log.Format)
			},
		},
		{
			name: "env substituted",
			yaml: `
kafka:
  brokers: ["${BROKER}"]
  topics: [cdc]
  sasl: {mechanism: PLAIN, username: u, password: "${PW}"}
store:
  url: ${URL:-mem://}
  s3: {access_key_id: "${KEY:-}", secret_access_key: "${SECRET:-}"}
`,
			env: map[string]string{"BROKER": "b1:9092", "PW": "p#w"},
			check: func(t *testing.T, c *fileConfig) {
				require.Equal(t, []string{"b1:9092"}, c.Kafka.Brokers)
				require.Equal(t, "p#w", c.Kafka.SASL.Password)
				require.Equal(t, "mem://", c.Store.URL)
			},
		},
		{
			name: "durations, presets and overrides",
			yaml: minimal + `
tables:
  default: {preset: enterprise}
  overrides:
    small: {mode: do-sqlite, flush_interval: 500ms}
shutdown_timeout: 1m
log: {level: debug, format: json}
`,
			check: func(t *testing.T, c *fileConfig) {
				require.Equal(t, "enterprise", c.Tables.Default.Mode)
				require.Equal(t, 100_000, c.Tables.Default.FlushThreshold)
				require.Equal(t, 500*time.Millisecond, c.TableConfig("small").FlushInterval)
				require.Equal(t, "do-sqlite", c.TableConfig("small").Mode)
				require.Equal(t, time.Minute, c.ShutdownTimeout)
			},
		},
		{
			name: "unknown top-level key",
			yaml: minimal + "bogus: 1\n",
			errs: []string{"line 7: unknown key bogus (top-level keys: catalog, commit, compaction, "},
		},
		{
			name: "unknown nested key",
			yaml: minimal + "memory:\n  budget: 5\n",
			errs: []string{"line 8: unknown key memory.budget (did you mean budget_bytes?)"},
		},
		{
			name: "wrong type names the key",
			yaml: minimal + "memory:\n  budget_bytes: lots\n",
			errs: []string{"line 8 (memory.budget_bytes): want a whole number, got lots"},
		},
		{
			name: "bad duration",
			yaml: minimal + "shutdown_timeout: soon\n",
			errs: []string{"line 7 (shutdown_timeout): want a duration such as 5s, 1m30s or 2h, got soon"},
		},
		{
			name: "duration without a unit",
			yaml: minimal + "tables:\n  default:\n    flush_interval: 5\n",
			errs: []string{"line 9 (tables.default.flush_interval): want a duration such as 5s, 1m30s or 2h, got 5"},
		},
		{
			name: "misspelt key in a table override",
			yaml: minimal + "tables:\n  default:\n    flush_intervall: 5s\n  overrides:\n    users: {mode: standard, flush_intervall: 5s}\n",
			errs: []string{
				"line 9: unknown key tables.default.flush_intervall (did you mean flush_interval?)",
				"line 11: unknown key tables.overrides.users.flush_intervall (did you mean flush_interval?)",
			},
		},
		{
			name: "key at the wrong level",
			yaml: minimal + "kafka_columns: true\n",
			errs: []string{"line 7: unknown key kafka_columns (kafka_columns is a key under tables.default and tables.overrides.<name>)"},
		},
		{
			name: "mapping where a list belongs",
			yaml: "kafka:\n  brokers: {a: 1}\n  topics: [cdc]\nstore: {url: 'mem://'}\n",
			errs: []string{"line 2 (kafka.brokers): want a list, got a mapping"},
		},
		{
			name: "missing env",
			yaml: minimal + "instance: ${HOSTNAME_X}\n",
			errs: []string{"environment variable HOSTNAME_X is not set"},
		},
		{
			name: "validation names keys",
			yaml: `
kafka: {brokers: [b:9092], topics: [t], format: avro}
store: {url: "ftp://x"}
tables: {default: {mode: huge}}
log: {level: loud, format: xml}
`,
			errs: []string{
				"kafka.format", "avro", "tables.default.mode", "store.url", "ftp",
				"log.level", "loud", "log.format", "xml",
			},
		},
		{
			name: "iceberg tables need a catalog and an s3 store",
			yaml: `
kafka: {brokers: [b:9092], topics: [t]}
store: {url: "file:///tmp/x"}
tables: {default: {format: iceberg}}
`,
			errs: []string{"catalog.uri: required when a table's format is iceberg", "store.url: Iceberg tables need an s3:// store"},
		},
		{
			name: "bad table format and catalog auth",
			yaml: `
kafka: {brokers: [b:9092], topics: [t]}
store: {url: "s3://b/p"}
tables: {default: {format: hudi}, overrides: {orders: {format: iceberg}}}
catalog: {uri: "ftp://cat", namespace: "a..b", auth: {token: x, oauth2: {client_id: id}}}
`,
			errs: []string{
				`tables.default.format: "hudi" is not one of delta, iceberg`, `catalog.uri: "ftp://cat" is not an http(s) URL`,
				"catalog.auth: set token or oauth2, not both", "client_id and client_secret must be set together",
				`catalog namespace "a..b" has an empty level`,
			},
		},
		{
			name: "iceberg per table",
			yaml: `
kafka: {brokers: [b:9092], topics: [t]}
store: {url: "s3://bucket/tables?endpoint=http://127.0.0.1:9000&path_style=true"}
tables: {overrides: {orders: {format: iceberg}}}
catalog: {uri: "https://catalog.example/v1/acct", warehouse: acct_bucket, namespace: "lake.{parent_}", auth: {token: tok}}
`,
			check: func(t *testing.T, c *fileConfig) {
				require.Equal(t, "delta", c.TableConfig("users").Format)
				require.Equal(t, "iceberg", c.TableConfig("orders").Format)
				ic, err := c.icebergConfig()
				require.NoError(t, err)
				require.Equal(t, "s3://bucket/tables", ic.Location)
				require.Equal(t, "http://127.0.0.1:9000", ic.S3.Endpoint)
				require.True(t, ic.S3.PathStyle)
				require.Equal(t, "tok", ic.Token)
				require.Equal(t, "acct_bucket", ic.Warehouse)
			},
		},
		{
			name: "store url required",
			yaml: "kafka: {brokers: [b:9092], topics: [t]}\n",
			errs: []string{"store.url: required"},
		},
		{
			name: "s3 url needs a bucket",
			yaml: "kafka: {brokers: [b:9092], topics: [t]}\nstore: {url: 's3:///prefix'}\n",
			errs: []string{"store.url", "names no bucket"},
		},
		{
			name: "empty file",
			yaml: "",
			errs: []string{"kafka.brokers", "store.url"},
		},
		{
			name: "not yaml",
			yaml: "kafka: [unclosed\n",
			errs: []string{"parse"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseConfig([]byte(tc.yaml), envMap(tc.env))
			if len(tc.errs) > 0 {
				require.Error(t, err)
				for _, e := range tc.errs {
					require.ErrorContains(t, err, e)
				}
				return
			}
			require.NoError(t, err)
			tc.check(t, cfg)
		})
	}
}

// TestExampleConfig keeps config.example.yaml loadable and in step with
// the configuration structs: unknown keys would fail here.
func TestExampleConfig(t *testing.T) {
	path := filepath.Join("..", "..", "config.example.yaml")
	env := map[string]string{
		"KAFKA_BROKERS":   "broker-1:9092",
		"KAFKA_TOPIC":     "dbserver1.inventory.customers",
		"EVODB_STORE_URL": "s3://lake/tables?endpoint=https://acct.r2.cloudflarestorage.com&region=auto",
		"EVODB_S3_REGION": "auto",
		"EVODB_LOG_LEVEL": "debug",
	}
	cfg, err := loadConfig(path, envMap(env))
	require.NoError(t, err)
	require.Equal(t, []string{"broker-1:9092"}, cfg.Kafka.Brokers)
	require.Equal(t, []string{"dbserver1.inventory.customers"}, cfg.Kafka.Topics)
	require.Equal(t, env["EVODB_STORE_URL"], cfg.Store.URL)
	require.Equal(t, "auto", cfg.Store.S3.Region)
	require.Equal(t, "debug", cfg.Log.Level)

	// Without any variable set, every reference has a default.
	cfg, err = loadConfig(path, envMap(nil))
	require.NoError(t, err)
	require.Equal(t, []string{"127.0.0.1:9092"}, cfg.Kafka.Brokers)

	// The values the example shows are the defaults.
	want := sink.DefaultConfig()
	want.Kafka.Brokers, want.Kafka.Topics = cfg.Kafka.Brokers, cfg.Kafka.Topics
	want.Kafka.Formats = map[string]string{}
	want.Kafka.KeyFormats = map[string]string{}
	want.SchemaRegistry.URLs = []string{}
	want.Tables.Overrides = map[string]sink.TableConfig{}
	want.HTTP.Addr = cfg.HTTP.Addr
	require.Equal(t, want, cfg.Config)
	require.False(t, cfg.HTTP.Pprof, "the profiler is opt-in")
	require.Empty(t, sink.DefaultConfig().HTTP.Addr, "no HTTP server unless configured")
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := loadConfig(filepath.Join(t.TempDir(), "nope.yaml"), envMap(nil))
	require.ErrorContains(t, err, "read config")
	require.ErrorContains(t, err, "(start from the example: cp config.example.yaml ")
	require.ErrorIs(t, err, os.ErrNotExist)
}

// TestComposeConfig keeps the docker-compose configuration loadable.
func TestComposeConfig(t *testing.T) {
	path := filepath.Join("..", "..", "e2e", "compose", "config.yaml")
	cfg, err := loadConfig(path, envMap(map[string]string{"S3_ACCESS_KEY": "evodb", "S3_SECRET_KEY": "evodb-secret"}))
	require.NoError(t, err)
	require.Equal(t, "debezium", cfg.Kafka.Formats["cdc.debezium"])
	require.Equal(t, "evodb", cfg.Store.S3.AccessKeyID)
}

// TestComposeFile keeps docker-compose.yml usable as documented: the sink's
// HTTP port is published (on the host's loopback) at the address its
// configuration serves, the sink and the S3 server have healthchecks on
// endpoints they serve, the image is stamped with a version, and a local
// config.yaml is never committed.
func TestComposeFile(t *testing.T) {
	root := filepath.Join("..", "..")
	data, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	require.NoError(t, err)
	type service struct {
		Command     []string `yaml:"command"`
		Ports       []string `yaml:"ports"`
		Healthcheck *struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		DependsOn map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Build struct {
			Args map[string]string `yaml:"args"`
		} `yaml:"build"`
	}
	var compose struct {
		Services map[string]service `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(data, &compose))

	cfg, err := loadConfig(filepath.Join(root, "e2e", "compose", "config.yaml"), envMap(map[string]string{"S3_ACCESS_KEY": "k", "S3_SECRET_KEY": "s"}))
	require.NoError(t, err)
	_, port, err := net.SplitHostPort(cfg.HTTP.Addr)
	require.NoError(t, err)
	require.False(t, cfg.HTTP.Pprof)

	sinkSvc := compose.Services["sink"]
	require.Contains(t, sinkSvc.Ports, "127.0.0.1:"+port+":"+port)
	require.NotNil(t, sinkSvc.Healthcheck, "sink healthcheck")
	require.Contains(t, strings.Join(sinkSvc.Healthcheck.Test, " "), "http://127.0.0.1:"+port+"/readyz")
	require.Contains(t, sinkSvc.Build.Args, "VERSION")

	s3 := compose.Services["s3"]
	require.NotNil(t, s3.Healthcheck, "s3 healthcheck")
	i := slices.Index(s3.Command, "--health")
	require.Positive(t, i, "the S3 server serves a health endpoint")
	require.Contains(t, strings.Join(s3.Healthcheck.Test, " "), "http://127.0.0.1:7070"+s3.Command[i+1])
	require.Equal(t, "service_healthy", compose.Services["bucket"].DependsOn["s3"].Condition)

	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	require.NoError(t, err)
	require.Contains(t, string(dockerfile), "ARG VERSION")
	require.Contains(t, string(dockerfile), "-X main.version=${VERSION}")

	ignore, err := os.ReadFile(filepath.Join(root, ".gitignore"))
	require.NoError(t, err)
	require.Contains(t, strings.Split(string(ignore), "\n"), "/config.yaml")
}
