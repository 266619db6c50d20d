package server_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// An admin asking for a user's usage sees every org the user acted in; an app key bound to one
// org sees only that org's part.
func TestUsageOfAUserSpansOrgsForAdminsAndOneOrgForAnOrgKey(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	for _, org := range []string{"acme", "globex"} {
		b := chatBody("gpt-4o-mini", "hello from "+org)
		b["userId"], b["orgId"] = "dana", org
		code, _, body := h.do(http.MethodPost, "/api/ai/chat", adminKey, b)
		require.Equal(t, http.StatusOK, code, "%s", body)
	}
	requests := func(key string) int64 {
		code, _, body := h.do(http.MethodGet, "/api/ai/usage?userId=dana&window=1d", key, nil)
		require.Equal(t, http.StatusOK, code, "%s", body)
		var u struct{ Requests int64 }
		require.NoError(t, json.Unmarshal(body, &u))
		return u.Requests
	}
	require.Equal(t, int64(2), requests(adminKey))
	require.Equal(t, int64(1), requests(appKey), "the acme key sees acme's part only")
}
