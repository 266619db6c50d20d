package server_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/openapi"
)

// TestEveryRouteIsDescribedInOpenAPI fails when a route is added to the table without a
// description in openapi.json (or a description outlives its route).
func TestEveryRouteIsDescribedInOpenAPI(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	routes := make([]openapi.RouteInfo, 0, len(h.Server.Routes()))
	for _, r := range h.Server.Routes() {
		routes = append(routes, openapi.RouteInfo{Method: r.Method, Path: r.Path})
	}
	require.Empty(t, openapi.Undescribed(routes), "routes without an OpenAPI description")
	require.Empty(t, openapi.Unregistered(routes), "OpenAPI operations without a route")

	// A route the document does not know is reported: the check above can fail.
	require.NotEmpty(t, openapi.Undescribed(append(routes, openapi.RouteInfo{Method: http.MethodPost, Path: "/api/ai/new"})))
}

func TestOpenAPIDocumentIsServedWithAKey(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	code, _, body := h.do(http.MethodGet, openapi.Path, adminKey, nil)
	require.Equal(t, http.StatusOK, code)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(body, &doc))
	require.Equal(t, "3.1.0", doc["openapi"])
}
