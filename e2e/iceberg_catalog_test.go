package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The Iceberg REST catalog that scripts/iceberg-rest.sh starts answers its
// configuration endpoint, and it serves the table commit endpoint the sink
// commits through. It starts nothing itself: CI exports
// EVODB_ICEBERG_REST_URL (`iceberg-rest.sh env`) once the catalog runs.
func TestIcebergRESTCatalogConfig(t *testing.T) {
	base := os.Getenv("EVODB_ICEBERG_REST_URL")
	if base == "" {
		t.Skip("EVODB_ICEBERG_REST_URL is not set: no Iceberg REST catalog to check (see scripts/iceberg-rest.sh)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/v1/config", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err, "GET %s/v1/config", base)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s/v1/config: %s", base, body)

	// The REST specification's CatalogConfig: defaults and overrides are
	// required; endpoints, when listed, are all the client may call.
	var cfg struct {
		Defaults  map[string]string `json:"defaults"`
		Overrides map[string]string `json:"overrides"`
		Endpoints []string          `json:"endpoints"`
	}
	require.NoError(t, json.Unmarshal(body, &cfg), "GET %s/v1/config: %s", base, body)
	require.NotNil(t, cfg.Defaults, "no defaults in %s", body)
	require.NotNil(t, cfg.Overrides, "no overrides in %s", body)
	if cfg.Endpoints != nil {
		require.Contains(t, cfg.Endpoints, "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}",
			"the catalog does not serve table commits")
	}
}
