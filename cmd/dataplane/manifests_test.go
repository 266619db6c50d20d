package main

import (
	"bytes"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestManifestsSubcommandPrintsTheSeedSettingsWithoutKeys(t *testing.T) {
	env := map[string]string{
		"AI_OPENAI_API_KEY":     "sk-test-0123456789abcdef0123456789",
		"AI_API_KEY":            "client-key-0123456789abcdef",
		"AI_DEFAULT_CHAT_MODEL": "gpt-4o-mini",
		"AI_USER_DAILY_LIMIT":   "1.00",
	}
	var out bytes.Buffer
	require.NoError(t, printManifests(nil, func(k string) string { return env[k] }, &out, io.Discard))
	y := out.String()
	for _, kind := range []string{"kind: AIProvider", "kind: AIRoutePolicy", "kind: AIBudget", "kind: Secret"} {
		require.Contains(t, y, kind)
	}
	require.NotContains(t, y, env["AI_OPENAI_API_KEY"], "provider keys are printed only with --include-secrets")
	require.NotContains(t, y, env["AI_API_KEY"])

	out.Reset()
	require.NoError(t, printManifests([]string{"--include-secrets"}, func(k string) string { return env[k] }, &out, io.Discard))
	require.Contains(t, out.String(), env["AI_OPENAI_API_KEY"])
}

func TestManifestsSubcommandWithoutSettingsSaysSo(t *testing.T) {
	err := printManifests(nil, func(string) string { return "" }, io.Discard, io.Discard)
	require.ErrorContains(t, err, "no AI_* settings")
}
