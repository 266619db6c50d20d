package runtime_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/metrics"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/runtime"
)

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func snapshot(t testing.TB, reply string, mutate ...func(*config.Snapshot)) *config.Snapshot {
	t.Helper()
	s := &config.Snapshot{
		Providers: []config.Provider{{Name: "ns/mock", Type: config.ProviderMock, Mock: &config.Mock{Reply: reply},
			Models: []config.Model{{Name: "m1"}}}},
		APIKeys: []config.APIKey{{Name: "ns/key", SHA256: sum("secret-token"), Role: config.RoleAdmin}},
	}
	for _, m := range mutate {
		m(s)
	}
	require.NoError(t, s.Seal())
	return s
}

func newHolder() (*runtime.Holder, *metrics.Metrics) {
	m := metrics.New()
	return runtime.NewHolder(runtime.Options{NewProvider: providers.New, HTTPClient: http.DefaultClient}, m,
		slog.New(slog.NewJSONHandler(io.Discard, nil))), m
}

func TestHolderIsNotReadyUntilTheFirstLoad(t *testing.T) {
	h, _ := newHolder()
	require.Nil(t, h.Load())
	require.False(t, h.Status().Ready)
	s := snapshot(t, "a")
	require.NoError(t, h.Apply(s))
	st := h.Status()
	require.True(t, st.Ready)
	require.Equal(t, s.Hash, st.Hash)
	require.Equal(t, config.SchemaVersion, st.Version)
}

func TestABadSnapshotIsRefusedAndTheLastGoodKeepsServing(t *testing.T) {
	cases := map[string]func(*config.Snapshot){
		"an unknown provider type":   func(s *config.Snapshot) { s.Providers[0].Type = "carrier-pigeon" },
		"a key hash that is not hex": func(s *config.Snapshot) { s.APIKeys[0].SHA256 = "zz" },
		"a route to a missing provider": func(s *config.Snapshot) {
			s.Routes = []config.Route{{Name: "r", Targets: []config.Target{{Provider: "ns/none", Model: "m"}}}}
		},
		"a provider listed twice": func(s *config.Snapshot) { s.Providers = append(s.Providers, s.Providers[0]) },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			h, m := newHolder()
			good := snapshot(t, "good")
			require.NoError(t, h.Apply(good))
			require.Error(t, h.Apply(snapshot(t, "bad", mutate)))
			require.Equal(t, good.Hash, h.Load().Snapshot.Hash)
			require.NotEmpty(t, h.Status().LastError)
			require.Equal(t, 1.0, testutil.ToFloat64(m.ConfigLoadErrors))
		})
	}
}

func TestASnapshotWhoseHashLiesOrWhoseVersionDiffersIsRefused(t *testing.T) {
	h, _ := newHolder()
	s := snapshot(t, "a")
	s.Providers[0].Mock.Reply = "tampered"
	require.ErrorContains(t, h.Apply(s), "does not match")
	s = snapshot(t, "a")
	s.Version = "ai.nself.org/snapshot/v0"
	require.NoError(t, s.Seal())
	s.Version = "ai.nself.org/snapshot/v0"
	s.Hash = ""
	require.ErrorContains(t, h.Apply(s), "version")
	require.Nil(t, h.Load())
}

func TestAuthenticateMatchesOnlyTheRightToken(t *testing.T) {
	h, _ := newHolder()
	require.NoError(t, h.Apply(snapshot(t, "a")))
	rt := h.Load()
	k, ok := rt.Authenticate("secret-token")
	require.True(t, ok)
	require.Equal(t, "ns/key", k.Name)
	for _, bad := range []string{"", "secret-token ", "Secret-token", "x"} {
		_, ok := rt.Authenticate(bad)
		require.False(t, ok, bad)
	}
}

// jsonLoader reads snapshot.json from dir: a stand-in for the manifest compiler, which this
// package must not import.
func jsonLoader(dir string) (*config.Snapshot, []string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "snapshot.json"))
	if err != nil {
		return nil, nil, err
	}
	var s config.Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, nil, errors.New("broken snapshot.json")
	}
	if err := s.Seal(); err != nil {
		return nil, nil, err
	}
	return &s, nil, nil
}

func writeJSON(t testing.TB, dir string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	writeRaw(t, dir, b)
}

// writeRaw replaces snapshot.json atomically, so the watcher never sees a half-written file.
func writeRaw(t testing.TB, dir string, b []byte) {
	t.Helper()
	tmp := filepath.Join(dir, ".tmp")
	require.NoError(t, os.WriteFile(tmp, b, 0o600))
	require.NoError(t, os.Rename(tmp, filepath.Join(dir, "snapshot.json")))
}

func TestWatchDirReloadsChangedManifestsAndKeepsServingOnBrokenOnes(t *testing.T) {
	dir := t.TempDir()
	writeJSON(t, dir, snapshot(t, "v1"))
	h, m := newHolder()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { h.WatchDir(ctx, dir, 20*time.Millisecond, jsonLoader); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	reply := func() string {
		rt := h.Load()
		if rt == nil {
			return ""
		}
		return rt.Snapshot.Providers[0].Mock.Reply
	}
	require.Eventually(t, func() bool { return reply() == "v1" }, 2*time.Second, 5*time.Millisecond)

	writeJSON(t, dir, snapshot(t, "v2"))
	require.Eventually(t, func() bool { return reply() == "v2" }, 2*time.Second, 5*time.Millisecond)

	writeRaw(t, dir, []byte("{not json"))
	require.Eventually(t, func() bool { return h.Status().LastError != "" }, 2*time.Second, 5*time.Millisecond)
	require.Equal(t, "v2", reply(), "a broken manifest leaves the last good config serving")
	require.Equal(t, 1.0, testutil.ToFloat64(m.ConfigLoadErrors))

	writeJSON(t, dir, snapshot(t, "v3"))
	require.Eventually(t, func() bool { return reply() == "v3" }, 2*time.Second, 5*time.Millisecond)
	require.Empty(t, h.Status().LastError, "a good load clears the error")
}

// A manifest listed but gone when read (removed while the folder is edited) is left out of the
// fingerprint rather than failing it: a dangling link holds that moment still.
func TestFingerprintSkipsAFileRemovedWhileHashing(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("kind: x\n"), 0o600))
	before, err := runtime.Fingerprint(dir)
	require.NoError(t, err)
	require.NoError(t, os.Symlink(filepath.Join(dir, "gone.yaml"), filepath.Join(dir, "b.yaml")))
	after, err := runtime.Fingerprint(dir)
	require.NoError(t, err)
	require.Equal(t, before, after)
}
