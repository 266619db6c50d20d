package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/dataplane/providers"
)

// copySamples copies the dev sample folder (the one `make dev` serves) into a temp folder and
// sets the mock reply and latency.
func copySamples(t *testing.T, reply string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join("..", "..", "config", "samples", "dev")
	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600))
	}
	setReply(t, dir, reply)
	return dir
}

func setReply(t *testing.T, dir, reply string) {
	t.Helper()
	p := filepath.Join(dir, "provider-mock.yaml")
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	s := string(b)
	i := strings.Index(s, "    reply: ")
	j := strings.Index(s[i:], "\n")
	s = s[:i] + fmt.Sprintf("    reply: %q", reply) + s[i+j:]
	s = strings.Replace(s, "latency: 20ms", "latency: 1ms", 1)
	tmp := filepath.Join(dir, ".provider.tmp")
	require.NoError(t, os.WriteFile(tmp, []byte(s), 0o600))
	require.NoError(t, os.Rename(tmp, p))
}

func start(t *testing.T, dir string) string {
	t.Helper()
	return startWith(t, Settings{Manifests: dir})
}

// startWith serves s (with the tests' poll interval, shutdown timeout and body limit) on a free
// port until t ends, and returns its URL once it is ready.
func startWith(t *testing.T, s Settings) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	s.Addr, s.PollInterval, s.ShutdownTimeout, s.MaxBodyBytes = ln.Addr().String(), 100*time.Millisecond, 5*time.Second, 1<<20
	go func() { done <- serve(ctx, s, ln, slog.New(slog.NewJSONHandler(io.Discard, nil))) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	url := "http://" + ln.Addr().String()
	require.Eventually(t, func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 5*time.Second, 20*time.Millisecond)
	return url
}

func chat(url string, user int) (int, string, error) {
	body, _ := json.Marshal(map[string]any{"model": "gpt-4o-mini", "userId": fmt.Sprintf("user-%d", user),
		"messages": []map[string]string{{"role": "user", "content": "hello"}}})
	req, _ := http.NewRequest("POST", url+"/api/ai/chat", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer dev-admin-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var r struct{ Content string }
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &r)
	return resp.StatusCode, r.Content, nil
}

func TestTheDevSampleServesAChatAsTheREADMEShows(t *testing.T) {
	url := start(t, filepath.Join("..", "..", "config", "samples", "dev"))
	code, content, err := chat(url, 1)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "hello", content, "the mock echoes the last user message")
}

func TestAChangedManifestIsServedWithinTwoSecondsUnderLoadAndABrokenOneChangesNothing(t *testing.T) {
	dir := copySamples(t, "v1")
	url := start(t, dir)

	var (
		failures, total atomic.Int64
		last            atomic.Value
		seq             atomic.Int64
		wg              sync.WaitGroup
	)
	last.Store("")
	began := time.Now()
	loadCtx, stop := context.WithCancel(t.Context())
	for range 8 {
		wg.Go(func() {
			for loadCtx.Err() == nil {
				code, content, err := chat(url, int(seq.Add(1)))
				total.Add(1)
				if err != nil || code != http.StatusOK {
					failures.Add(1)
					continue
				}
				last.Store(content)
			}
		})
	}
	require.Eventually(t, func() bool { return last.Load() == "v1" }, 2*time.Second, 10*time.Millisecond)
	changed := time.Now()
	setReply(t, dir, "v2")
	require.Eventually(t, func() bool { return last.Load() == "v2" }, 2*time.Second, 10*time.Millisecond)
	t.Logf("manifest change served after %s", time.Since(changed).Round(time.Millisecond))

	tmp := filepath.Join(dir, ".route.tmp")
	require.NoError(t, os.WriteFile(tmp, []byte("kind: AIRoutePolicy\nspec: [unclosed\n"), 0o600))
	require.NoError(t, os.Rename(tmp, filepath.Join(dir, "route-default.yaml")))
	readyz := func() (ready bool, lastError string) {
		resp, err := http.Get(url + "/readyz")
		require.NoError(t, err)
		defer resp.Body.Close()
		var rz struct {
			Ready  bool
			Config struct{ LastError string }
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&rz))
		return rz.Ready, rz.Config.LastError
	}
	require.Eventually(t, func() bool { _, e := readyz(); return e != "" }, 2*time.Second, 10*time.Millisecond,
		"readyz reports the refused manifest")
	before := total.Load()
	require.Eventually(t, func() bool { return total.Load() > before+50 }, 5*time.Second, 10*time.Millisecond)
	ready, _ := readyz()
	stop()
	wg.Wait()
	t.Logf("%d requests in %s (%.0f/s), %d failed", total.Load(), time.Since(began).Round(time.Millisecond),
		float64(total.Load())/time.Since(began).Seconds(), failures.Load())
	require.True(t, ready, "still ready: the last good snapshot serves")
	require.Equal(t, "v2", last.Load())
	require.Zero(t, failures.Load(), "no request of %d failed", total.Load())
}

func TestRunRefusesBadFlags(t *testing.T) {
	for name, args := range map[string][]string{
		"an unknown flag":      {"--nope"},
		"a stray argument":     {"--manifests", "x", "extra"},
		"a missing folder":     {"--manifests", filepath.Join(t.TempDir(), "missing"), "--addr", "127.0.0.1:0"},
		"an invalid log level": {"--log-level", "loud"},
	} {
		require.Error(t, Run(t.Context(), args), name)
	}
}

// Plain-HTTP upstreams go direct unless --upstream-direct=false sends them through Go's HTTP
// transport; TLS settings reach the same net/http transport either way.
func TestUpstreamDirectFlagChoosesTheTransport(t *testing.T) {
	s, err := parseFlags(nil, &strings.Builder{})
	require.NoError(t, err)
	require.True(t, s.UpstreamDirect)
	hc := upstreamClient(s)
	require.NotNil(t, providers.HTTPTransport(hc))
	require.NotSame(t, providers.HTTPTransport(hc), hc.Transport, "plain-HTTP calls go direct by default")

	s, err = parseFlags([]string{"--upstream-direct=false"}, &strings.Builder{})
	require.NoError(t, err)
	require.False(t, s.UpstreamDirect)
	hc = upstreamClient(s)
	require.Same(t, providers.HTTPTransport(hc), hc.Transport)
}
