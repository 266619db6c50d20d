package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// dataplaneBin is the binary built once by TestMain from ./cmd/dataplane.
var dataplaneBin string

// sharedRedis is the redis-server the tests share (REDIS_URL, or one started by the harness);
// each test takes its own database number and flushes it, so tests never see each other's keys.
var (
	sharedRedisOnce sync.Once
	sharedRedisURL  string
	sharedRedisErr  error
	ownRedis        *redisServer
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "e2e-dataplane-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: failed to create a temp dir:", err)
		os.Exit(1)
	}
	dataplaneBin = filepath.Join(dir, "dataplane")
	build := exec.Command("go", "build", "-o", dataplaneBin, "github.com/nself-org/ai-orchestration/cmd/dataplane")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: failed to build ./cmd/dataplane:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if ownRedis != nil {
		ownRedis.kill()
		_ = os.RemoveAll(ownRedis.dir)
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// redisDB returns a redis:// URL of a database of the shared server that only the calling test
// uses, flushed first. db must be unique per test (1..15; 0 is left to other packages).
func redisDB(t *testing.T, db int) string {
	t.Helper()
	sharedRedisOnce.Do(func() {
		if u := os.Getenv("REDIS_URL"); u != "" {
			sharedRedisURL = u
			return
		}
		if _, err := exec.LookPath("redis-server"); err != nil {
			sharedRedisErr = errors.New("REDIS_URL is unset and redis-server is not on PATH: run make test (or hack/with-redis.sh go test ./test/e2e/)")
			return
		}
		dir, err := os.MkdirTemp("", "e2e-redis-")
		if err != nil {
			sharedRedisErr = err
			return
		}
		ownRedis, sharedRedisErr = launchRedis(freePort(t), dir)
		if sharedRedisErr == nil {
			sharedRedisURL = ownRedis.url(0)
		}
	})
	require.NoError(t, sharedRedisErr, "run make test")
	u, err := url.Parse(sharedRedisURL)
	require.NoError(t, err)
	u.Path = "/" + strconv.Itoa(db)
	o, err := redis.ParseURL(u.String())
	require.NoError(t, err)
	c := redis.NewClient(o)
	defer func() { _ = c.Close() }()
	require.NoError(t, c.FlushDB(t.Context()).Err(), "failed to flush database %d of %s", db, u.Host)
	return u.String()
}

// redisServer is a redis-server process a test owns, so that it can stop and restart it.
type redisServer struct {
	port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

func (r *redisServer) url(db int) string { return fmt.Sprintf("redis://127.0.0.1:%d/%d", r.port, db) }

// launchRedis starts redis-server on port without persistence and waits until it answers PING.
func launchRedis(port int, dir string) (*redisServer, error) {
	r := &redisServer{port: port, dir: dir}
	r.cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning",
		"--logfile", filepath.Join(dir, "redis.log"))
	r.cmd.SysProcAttr = dieWithTheTest()
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start redis-server: %w", err)
	}
	r.done = make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), DialTimeout: 200 * time.Millisecond})
	defer func() { _ = c.Close() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return r, nil
		}
		select {
		case <-r.done:
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			return nil, fmt.Errorf("redis-server exited before answering PING: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			r.kill()
			return nil, fmt.Errorf("redis-server did not answer PING within 10s: %w", err)
		}
		time.Sleep(20 * time.Millisecond) // polling PING: the readiness probe, not synchronisation
	}
}

// startRedis starts a redis-server the test owns on a free port; it is killed at cleanup.
func startRedis(t *testing.T) *redisServer {
	t.Helper()
	r, err := launchRedis(freePort(t), t.TempDir())
	require.NoError(t, err)
	t.Cleanup(r.kill)
	return r
}

// restart starts redis-server again on the same port (after kill), empty.
func (r *redisServer) restart(t *testing.T) {
	t.Helper()
	n, err := launchRedis(r.port, r.dir)
	require.NoError(t, err)
	r.cmd, r.done = n.cmd, n.done
}

// kill stops redis-server with SIGKILL (a crash) and waits for it to exit.
func (r *redisServer) kill() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGCONT) // a stopped process cannot die otherwise
	_ = r.cmd.Process.Kill()
	<-r.done
}

// signal sends sig (SIGSTOP / SIGCONT to hang and resume it).
func (r *redisServer) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	require.NoError(t, r.cmd.Process.Signal(sig))
}

// freePort returns a port that was free on 127.0.0.1 a moment ago.
func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("failed to find a free port: %v", err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port
}

// replica is one running dataplane process.
type replica struct {
	name    string
	url     string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
}

// replicaOptions are a replica's flags; RedisURL empty means the embedded in-memory store.
type replicaOptions struct {
	Manifests string
	RedisURL  string
	Extra     []string
}

// startReplicas starts n replicas and waits until every one answers /readyz with 200.
func startReplicas(t *testing.T, n int, o replicaOptions) []*replica {
	t.Helper()
	rs := make([]*replica, n)
	for i := range rs {
		rs[i] = launchReplica(t, fmt.Sprintf("replica-%c", 'A'+i), o)
	}
	for _, r := range rs {
		r.waitReady(t)
	}
	return rs
}

func launchReplica(t *testing.T, name string, o replicaOptions) *replica {
	t.Helper()
	port := freePort(t)
	r := &replica{name: name, url: fmt.Sprintf("http://127.0.0.1:%d", port),
		logPath: filepath.Join(t.TempDir(), name+".log"), done: make(chan struct{})}
	args := []string{"--manifests", o.Manifests, "--addr", fmt.Sprintf("127.0.0.1:%d", port),
		"--log-level", "warn", "--shutdown-timeout", "1s", "--poll-interval", "200ms"}
	if o.RedisURL != "" {
		args = append(args, "--redis-url", o.RedisURL)
	}
	args = append(args, o.Extra...)
	logf, err := os.Create(r.logPath)
	require.NoError(t, err)
	r.cmd = exec.Command(dataplaneBin, args...)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	r.cmd.SysProcAttr = dieWithTheTest()
	require.NoError(t, r.cmd.Start())
	go func() { _ = r.cmd.Wait(); _ = logf.Close(); close(r.done) }()
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("%s stderr (tail):\n%s", r.name, r.logTail(4000))
		}
	})
	return r
}

// waitReady polls /readyz until it answers 200; it fails at once if the process exits.
func (r *replica) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-r.done:
			t.Fatalf("%s exited before it was ready:\n%s", r.name, r.logTail(4000))
		default:
		}
		resp, err := http.Get(r.url + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not ready after 20s: %d %s", r.name, resp.StatusCode, body)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 20s: %v\n%s", r.name, err, r.logTail(4000))
		}
		time.Sleep(25 * time.Millisecond) // polling /readyz (the readiness probe), not synchronisation
	}
}

// alive reports whether the process is still running.
func (r *replica) alive() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// sigkill kills the replica as a crash would (no drain, no settle) and waits for it to exit.
func (r *replica) sigkill() {
	_ = r.cmd.Process.Kill()
	<-r.done
}

// stop sends SIGTERM, waits for the drain, and kills the process if it does not exit.
func (r *replica) stop() {
	if !r.alive() {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		r.sigkill()
	}
}

func (r *replica) logTail(n int) string {
	b, _ := os.ReadFile(r.logPath)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// manifests writes YAML documents into a new folder and returns it.
func manifests(t *testing.T, docs map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range docs {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600))
	}
	return dir
}

// Tokens of the client keys every test folder holds.
const (
	adminKey = "e2e-admin-key"
	appKey   = "e2e-app-key"
)

// apiKeys are an admin key and an app key for any org.
const apiKeys = `apiVersion: v1
kind: Secret
metadata:
  name: e2e-admin
  namespace: default
  labels:
    ai.nself.org/api-key: "true"
  annotations:
    ai.nself.org/role: admin
stringData:
  key: ` + adminKey + `
---
apiVersion: v1
kind: Secret
metadata:
  name: e2e-app
  namespace: default
  labels:
    ai.nself.org/api-key: "true"
  annotations:
    ai.nself.org/role: app
stringData:
  key: ` + appKey + `
`

// modelSpec is one model of a mock provider; prices are decimal USD per million tokens.
type modelSpec struct {
	Name, In, Out string
}

// mockProvider is an AIProvider of type mock named name.
func mockProvider(name string, completionTokens int, latency string, models ...modelSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: ai.nself.org/v1alpha1\nkind: AIProvider\nmetadata:\n  name: %s\n  namespace: default\nspec:\n  type: mock\n  mock:\n", name)
	if completionTokens > 0 {
		fmt.Fprintf(&b, "    completionTokens: %d\n", completionTokens)
	}
	if latency != "" {
		fmt.Fprintf(&b, "    latency: %s\n", latency)
	}
	b.WriteString("    reply: \"\"\n  models:\n")
	for _, m := range models {
		fmt.Fprintf(&b, "    - name: %s\n      inputPerMillion: %q\n      outputPerMillion: %q\n      contextWindow: 128000\n      maxOutputTokens: 4096\n", m.Name, m.In, m.Out)
	}
	return b.String()
}

// userBudget is a blocking AIBudget giving every user (subject "*") daily USD a day.
func userBudget(name, daily string) string {
	return fmt.Sprintf(`apiVersion: ai.nself.org/v1alpha1
kind: AIBudget
metadata:
  name: %s
  namespace: default
spec:
  scope: user
  subject: "*"
  daily: %q
  action: block
`, name, daily)
}

// rateLimitedRoute is an AIRoutePolicy serving alias → provider/model with one per-user request
// limit.
func rateLimitedRoute(name, alias, provider, model, algorithm string, requests int, window, failMode string) string {
	return fmt.Sprintf(`apiVersion: ai.nself.org/v1alpha1
kind: AIRoutePolicy
metadata:
  name: %s
  namespace: default
spec:
  match:
    models: [%q]
  targets:
    - provider: %s
      model: %s
  strategy: failover
  rateLimits:
    - name: %s-per-user
      per: user
      algorithm: %s
      requests: %d
      window: %q
      failMode: %s
`, name, alias, provider, model, name, algorithm, requests, window, failMode)
}

// chatRequest is the body of POST /api/ai/chat.
type chatRequest struct {
	Model     string    `json:"model"`
	Messages  []message `json:"messages"`
	UserID    string    `json:"userId"`
	OrgID     string    `json:"orgId,omitempty"`
	MaxTokens int64     `json:"maxTokens,omitempty"`
	Stream    bool      `json:"stream,omitempty"`
}

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

func userMessage(s string) []message { return []message{{Role: "user", Content: s}} }

// chatReply is what one request got, reduced to what the tests assert.
type chatReply struct {
	Status int
	// Cost is the reply's cost field (done event for streams), exact nano-USD.
	Cost int64
	// HeaderCost is X-AI-Cost (non-streamed served replies); -1 when absent.
	HeaderCost int64
	Tokens     int64
	RetryAfter string
	// RateLimit and RateRemaining are X-RateLimit-Limit and X-RateLimit-Remaining.
	RateLimit     string
	RateRemaining string
	ErrType       string
	ErrCode       string
	Duration      time.Duration
	Body          string
	TransportEr   error
}

// client sends requests to the replicas with enough connections for a flood.
type client struct{ hc *http.Client }

func newClient() *client {
	tr := &http.Transport{MaxIdleConns: 2000, MaxIdleConnsPerHost: 1000, IdleConnTimeout: 30 * time.Second,
		DisableCompression: true}
	return &client{hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (c *client) close() { c.hc.CloseIdleConnections() }

// chat posts req to base and decodes the reply (JSON or SSE).
func (c *client) chat(ctx context.Context, base, key string, req chatRequest) chatReply {
	out := chatReply{HeaderCost: -1}
	body, _ := json.Marshal(req)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/ai/chat", bytes.NewReader(body))
	if err != nil {
		out.TransportEr = err
		return out
	}
	hr.Header.Set("Authorization", "Bearer "+key)
	hr.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := c.hc.Do(hr)
	if err != nil {
		out.TransportEr = err
		out.Duration = time.Since(start)
		return out
	}
	defer func() { _ = resp.Body.Close() }()
	out.Status = resp.StatusCode
	out.RetryAfter = resp.Header.Get("Retry-After")
	out.RateLimit, out.RateRemaining = resp.Header.Get("X-RateLimit-Limit"), resp.Header.Get("X-RateLimit-Remaining")
	if h := resp.Header.Get("X-AI-Cost"); h != "" {
		if n, err := parseNanos(h); err == nil {
			out.HeaderCost = n
		} else {
			out.TransportEr = fmt.Errorf("X-AI-Cost %q: %w", h, err)
		}
	}
	raw, err := io.ReadAll(resp.Body)
	out.Duration = time.Since(start)
	out.Body = string(raw)
	if err != nil {
		out.TransportEr = err
		return out
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Type, Code string } `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		out.ErrType, out.ErrCode = e.Error.Type, e.Error.Code
		return out
	}
	data := raw
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		data = nil
		ev := ""
		sc := bufio.NewScanner(bytes.NewReader(raw))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && ev == "done":
				data = []byte(strings.TrimPrefix(line, "data: "))
			case strings.HasPrefix(line, "data: ") && ev == "error":
				out.TransportEr = fmt.Errorf("stream ended with an error event: %s", line)
			}
		}
		if data == nil {
			out.TransportEr = errors.Join(out.TransportEr, fmt.Errorf("stream has no done event: %q", raw))
			return out
		}
	}
	var r struct {
		Cost  json.Number `json:"cost"`
		Usage struct {
			TotalTokens int64 `json:"totalTokens"`
		} `json:"usage"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		out.TransportEr = fmt.Errorf("failed to decode reply %q: %w", data, err)
		return out
	}
	n, err := parseNanos(r.Cost.String())
	if err != nil {
		out.TransportEr = fmt.Errorf("cost %q: %w", r.Cost, err)
		return out
	}
	out.Cost, out.Tokens = n, r.Usage.TotalTokens
	return out
}

// getJSON GETs base+path with key and decodes the reply into v, numbers as json.Number.
func (c *client) getJSON(t *testing.T, base, key, path string, v any) {
	t.Helper()
	hr, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path, nil)
	require.NoError(t, err)
	hr.Header.Set("Authorization", "Bearer "+key)
	resp, err := c.hc.Do(hr)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", path, raw)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	require.NoError(t, dec.Decode(v), "GET %s: %s", path, raw)
}

// usageReply is GET /api/ai/usage.
type usageReply struct {
	Requests int64       `json:"requests"`
	Tokens   int64       `json:"tokens"`
	Cost     json.Number `json:"cost"`
	Budgets  []struct {
		Name      string      `json:"name"`
		Period    string      `json:"period"`
		Limit     json.Number `json:"limit"`
		Spent     json.Number `json:"spent"`
		Remaining json.Number `json:"remaining"`
	} `json:"budgets"`
	Remaining *json.Number `json:"remaining"`
}

// costsReply is GET /api/ai/costs.
type costsReply struct {
	Total     json.Number `json:"total"`
	Breakdown []struct {
		Key      string      `json:"key"`
		Cost     json.Number `json:"cost"`
		Requests int64       `json:"requests"`
		Tokens   int64       `json:"tokens"`
	} `json:"breakdown"`
}

// parseNanos reads a decimal USD amount ("0.05", "0.00000225", "3") as exact nano-USD. The data
// plane renders money as exact decimals (never exponents), so no float is involved.
func parseNanos(s string) (int64, error) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || strings.ContainsAny(s, "eE+-") || len(frac) > 9 {
		return 0, fmt.Errorf("not an exact decimal of at most 9 places: %q", s)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad whole part of %q: %w", s, err)
	}
	f := int64(0)
	if frac != "" {
		f, err = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bad fraction of %q: %w", s, err)
		}
	}
	return w*1_000_000_000 + f, nil
}

func mustNanos(t *testing.T, n json.Number) int64 {
	t.Helper()
	v, err := parseNanos(n.String())
	require.NoError(t, err)
	return v
}

// usd renders nanos for logs.
func usd(n int64) string { return fmt.Sprintf("$%d.%09d", n/1_000_000_000, n%1_000_000_000) }

// flood sends every request at once (each in its own goroutine, released together) and returns
// the replies in order. pick chooses the replica of request i.
func flood(ctx context.Context, c *client, reqs []chatRequest, key string, pick func(i int) string) []chatReply {
	out := make([]chatReply, len(reqs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i] = c.chat(ctx, pick(i), key, reqs[i])
		}()
	}
	close(start)
	wg.Wait()
	return out
}

// tally counts replies by status (and "error" for transport failures).
func tally(rs []chatReply) map[string]int {
	m := map[string]int{}
	for _, r := range rs {
		switch {
		case r.TransportEr != nil:
			m["error"]++
		default:
			m[strconv.Itoa(r.Status)]++
		}
	}
	return m
}

// firstTransportError returns the first transport or decoding failure, to report it.
func firstTransportError(rs []chatReply) error {
	for i, r := range rs {
		if r.TransportEr != nil {
			return fmt.Errorf("request %d: %w", i, r.TransportEr)
		}
	}
	return nil
}

// warmUp sends one request to each replica as user "warm-up" (org "warm-up"), so that one-time
// start-up work (tokenizer tables, first Redis connection, script load) does not decide which
// replica wins a race. The warm-up user has budgets and limits of its own.
func warmUp(t *testing.T, c *client, rs []*replica, model string) {
	t.Helper()
	for _, r := range rs {
		rep := c.chat(t.Context(), r.url, adminKey, chatRequest{Model: model, Messages: userMessage("warm up"),
			UserID: "warm-up", OrgID: "warm-up", MaxTokens: 10})
		require.NoError(t, rep.TransportEr)
		require.Equal(t, http.StatusOK, rep.Status, "warm-up request to %s: %s", r.name, rep.Body)
	}
}

// floodBounded is [flood] with at most inFlight requests in flight (0: all at once).
func floodBounded(ctx context.Context, c *client, reqs []chatRequest, key string, pick func(i int) string, inFlight int) []chatReply {
	if inFlight <= 0 {
		return flood(ctx, c, reqs, key, pick)
	}
	out := make([]chatReply, len(reqs))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				out[i] = c.chat(ctx, pick(i), key, reqs[i])
			}
		}()
	}
	for i := range reqs {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return out
}
