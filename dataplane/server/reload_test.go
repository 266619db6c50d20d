package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
)

// jsonDirLoader stands in for the manifest compiler (cmd/dataplane's test covers real YAML).
func jsonDirLoader(dir string) (*config.Snapshot, []string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "snapshot.json"))
	if err != nil {
		return nil, nil, err
	}
	var s config.Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, nil, errors.New("snapshot.json does not parse")
	}
	return &s, nil, s.Seal()
}

func TestHotReloadUnderLoadServesTheNewConfigWithinTwoSecondsAndDropsNothing(t *testing.T) {
	withReply := func(reply string) func(*config.Snapshot) {
		return func(s *config.Snapshot) { s.Providers[0].Mock.Reply = reply }
	}
	h := newHarness(t, harnessOpts{mutate: []func(*config.Snapshot){withReply("v1")}})
	dir := t.TempDir()
	write := func(b []byte) {
		tmp := filepath.Join(dir, ".snapshot.tmp")
		require.NoError(t, os.WriteFile(tmp, b, 0o600))
		require.NoError(t, os.Rename(tmp, filepath.Join(dir, "snapshot.json")))
	}
	snapJSON := func(reply string) []byte {
		b, err := json.Marshal(testSnapshot(t, h.Upstream.BaseURL, withReply(reply)))
		require.NoError(t, err)
		return b
	}
	write(snapJSON("v1"))
	ctx, cancel := context.WithCancel(t.Context())
	watchDone := make(chan struct{})
	go func() { h.Holder.WatchDir(ctx, dir, 50*time.Millisecond, jsonDirLoader); close(watchDone) }()
	defer func() { cancel(); <-watchDone }()

	load := startChatLoad(t, h, chatBody("tiny-window", "hello"))
	defer load.stop()
	require.Eventually(t, func() bool { return load.lastReply.Load() == "v1" }, 2*time.Second, 10*time.Millisecond)

	changed := time.Now()
	write(snapJSON("v2"))
	require.Eventually(t, func() bool { return load.lastReply.Load() == "v2" }, 2*time.Second, 10*time.Millisecond)
	t.Logf("new config served %s after the manifest changed", time.Since(changed).Round(time.Millisecond))

	write([]byte("{broken"))
	require.Eventually(t, func() bool { return h.Holder.Status().LastError != "" }, 2*time.Second, 10*time.Millisecond)
	before := load.total.Load()
	require.Eventually(t, func() bool { return load.total.Load() > before+20 }, 5*time.Second, 10*time.Millisecond)
	load.stop()
	require.Equal(t, "v2", load.lastReply.Load(), "the broken manifest left the last good config serving")
	require.Zero(t, load.failures.Load(), "no request failed during %d requests across two reloads", load.total.Load())
}
