package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRunStoreMisconfigured runs `sink run` against the real S3 server with
// each configuration mistake a newcomer makes and checks that it fails at
// once, before Kafka is contacted, with the key to fix on the first line.
func TestRunStoreMisconfigured(t *testing.T) {
	endpoint, bucket := os.Getenv("SINK_TEST_S3_ENDPOINT"), os.Getenv("SINK_TEST_S3_BUCKET")
	key, secret := os.Getenv("SINK_TEST_S3_ACCESS_KEY"), os.Getenv("SINK_TEST_S3_SECRET_KEY")
	if endpoint == "" || bucket == "" || key == "" || secret == "" {
		t.Skip("set SINK_TEST_S3_ENDPOINT, SINK_TEST_S3_BUCKET, SINK_TEST_S3_ACCESS_KEY and SINK_TEST_S3_SECRET_KEY to test against S3")
	}
	for _, tc := range []struct {
		name     string
		bucket   string
		query    string
		secret   string
		wantLine string
	}{
		{
			name: "wrong secret", bucket: bucket, query: "&path_style=true", secret: secret + "x",
			wantLine: `sink run: access denied to bucket "` + bucket + `": check store.s3.access_key_id and store.s3.secret_access_key`,
		},
		{
			name: "missing bucket", bucket: "evodb-no-such-bucket", query: "&path_style=true", secret: secret,
			wantLine: `sink run: bucket "evodb-no-such-bucket" does not exist (store.url)`,
		},
		{
			name: "no path style", bucket: bucket, secret: secret,
			wantLine: "sink run: host " + bucket + ".127.0.0.1 does not resolve: set store.s3.path_style: true",
		},
		{
			name: "no credentials", bucket: bucket, query: "&path_style=true",
			wantLine: `sink run: no credentials for bucket "` + bucket + `": set store.s3.access_key_id and store.s3.secret_access_key`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Kafka is never reached: the store is probed first, and no
			// broker listens on port 1.
			cfg := `
kafka:
  brokers: [127.0.0.1:1]
  topics: [cdc]
  connect_timeout: 1h
commit:
  store_retry_timeout: 1h
store:
  url: s3://` + tc.bucket + `/misconfigured?endpoint=` + endpoint + `&region=auto` + tc.query + `
  s3: {access_key_id: ` + key + `, secret_access_key: ` + tc.secret + `}
`
			if tc.secret == "" {
				// Nothing in the environment either: the credential
				// chain ends at the instance metadata, which is off.
				cfg = strings.Replace(cfg, "  s3: {access_key_id: "+key+", secret_access_key: }\n", "", 1)
				for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
					"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"} {
					t.Setenv(k, "")
				}
				t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "config"))
				t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "credentials"))
				t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
			}
			path := filepath.Join(t.TempDir(), "config.yaml")
			require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
			e, _, errOut := testEnv(nil)
			code := runMain(testContext(t), e, []string{"run", "-c", path})
			require.Equal(t, 1, code, "stderr: %s", errOut)
			lines := strings.Split(errOut.String(), "\n")
			var last string
			for _, l := range lines {
				if strings.HasPrefix(l, "sink run: ") {
					last = l
				}
			}
			require.True(t, strings.HasPrefix(last, tc.wantLine), "got %q", last)
			if tc.secret == "" {
				require.NotContains(t, cfg, "access_key_id", "the case must run without configured credentials")
			}
		})
	}
}
