package cluster_test

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
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/controllers"
	"github.com/nself-org/ai-orchestration/internal/snapshotsecret"
)

const (
	// operatorNS holds the snapshot Secret, as in config/default.
	operatorNS = "ai-orchestration-system"
	// appNS holds the CRs and the client key.
	appNS = "team-a"
	// clientKey is the bearer token of the admin client key Secret.
	clientKey = "cluster-test-admin-key"
	// waitFor bounds every wait for the manager or the data plane; both react in milliseconds.
	waitFor = 20 * time.Second
	// tick is the polling interval of those waits.
	tick = 10 * time.Millisecond
)

// cluster is one envtest API server with an admin client.
type cluster struct {
	env    *envtest.Environment
	cfg    *rest.Config
	scheme *k8sruntime.Scheme
	k8s    client.Client
}

// startCluster starts envtest with the CRDs of config/crd/bases and creates the namespaces.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: these tests need a real kube-apiserver and etcd. " +
			"Run `make test`, or `KUBEBUILDER_ASSETS=$(hack/envtest.sh) go test ./test/cluster/`.")
	}
	ctrl.SetLogger(logr.Discard())
	c := &cluster{env: &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}}
	var err error
	c.cfg, err = c.env.Start()
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.env.Stop()) })

	c.scheme = k8sruntime.NewScheme()
	require.NoError(t, errors.Join(clientgoscheme.AddToScheme(c.scheme), aiv1alpha1.AddToScheme(c.scheme)))
	c.k8s, err = client.New(c.cfg, client.Options{Scheme: c.scheme})
	require.NoError(t, err)
	for _, ns := range []string{operatorNS, appNS} {
		require.NoError(t, c.k8s.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	}
	return c
}

// kubeconfig writes a kubeconfig file for a cluster-admin user, for the data plane binary.
func (c *cluster) kubeconfig(t *testing.T) string {
	t.Helper()
	user, err := c.env.AddUser(envtest.User{Name: "dataplane", Groups: []string{"system:masters"}}, nil)
	require.NoError(t, err)
	b, err := user.KubeConfig()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path
}

// manager is one in-process controller manager running controllers.Setup.
type manager struct {
	cancel context.CancelFunc
	done   chan error
}

// startManager runs a manager (the caller stops it) as the operator's Deployment would (no metrics server, no probes,
// no leader election). Several managers may run one after another in the test process, so the
// controller-name uniqueness check is off.
func (c *cluster) startManager(t *testing.T) *manager {
	t.Helper()
	opts := controllers.ManagerOptions()
	opts.Scheme = c.scheme
	opts.Metrics = metricsserver.Options{BindAddress: "0"}
	opts.HealthProbeBindAddress = "0"
	opts.Controller.SkipNameValidation = ptr.To(true)
	mgr, err := ctrl.NewManager(c.cfg, opts)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	_, err = controllers.Setup(ctx, mgr, controllers.Options{Namespace: operatorNS})
	require.NoError(t, err)
	m := &manager{cancel: cancel, done: make(chan error, 1)}
	go func() { m.done <- mgr.Start(ctx) }()
	return m
}

// stop cancels the manager and waits for it to return; a second call is a no-op.
func (m *manager) stop(t *testing.T) {
	t.Helper()
	m.cancel()
	if m.done == nil {
		return
	}
	select {
	case err := <-m.done:
		require.NoError(t, err)
	case <-time.After(waitFor):
		require.FailNow(t, "the manager did not stop")
	}
	m.done = nil
}

// publishCount reads the in-process counter of publish passes with the given result.
func publishCount(t *testing.T, result string) float64 {
	t.Helper()
	mfs, err := ctrlmetrics.Registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "ai_orchestration_snapshot_publish_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// buildDataplane builds cmd/dataplane into dir; it returns an error (not a test failure) so that
// it can run on its own goroutine while envtest starts.
func buildDataplane(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "dataplane")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/dataplane")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("failed to build ./cmd/dataplane: %w\n%s", err, out)
	}
	return bin, nil
}

// dataplane is the running data plane binary.
type dataplane struct {
	url     string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
}

// startDataplane runs bin in cluster mode against kubeconfig on a free 127.0.0.1 port and waits
// until /readyz answers 200.
func startDataplane(t *testing.T, bin, kubeconfig string) *dataplane {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	d := &dataplane{url: "http://" + addr, logPath: filepath.Join(t.TempDir(), "dataplane.log"), done: make(chan struct{})}
	logf, err := os.Create(d.logPath)
	require.NoError(t, err)
	d.cmd = exec.Command(bin, "--kubeconfig", kubeconfig, "--snapshot-namespace", operatorNS,
		"--snapshot-name", snapshotsecret.DefaultName, "--addr", addr, "--log-level", "warn", "--shutdown-timeout", "2s")
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = dieWithTheTest()
	require.NoError(t, d.cmd.Start())
	go func() { _ = d.cmd.Wait(); _ = logf.Close(); close(d.done) }()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			b, _ := os.ReadFile(d.logPath)
			t.Logf("data plane log (tail):\n%s", b[max(0, len(b)-4000):])
		}
	})

	deadline := time.Now().Add(waitFor)
	for {
		select {
		case <-d.done:
			b, _ := os.ReadFile(d.logPath)
			require.FailNow(t, "the data plane exited before it was ready", "%s", b)
		default:
		}
		if code, _ := d.readyz(t); code == http.StatusOK {
			break
		}
		require.True(t, time.Now().Before(deadline), "the data plane never answered /readyz with 200")
		time.Sleep(tick) // polling /readyz as a readiness probe does, not synchronisation
	}
	return d
}

// stop sends SIGTERM and waits for the drain; a process that does not exit is killed.
func (d *dataplane) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// readyzBody is the part of /readyz the tests read.
type readyzBody struct {
	Ready  bool `json:"ready"`
	Config struct {
		Hash        string    `json:"hash"`
		LastError   string    `json:"lastError"`
		LastErrorAt time.Time `json:"lastErrorAt"`
	} `json:"config"`
}

// readyz returns /readyz's status code (0 when unreachable) and body.
func (d *dataplane) readyz(t *testing.T) (int, readyzBody) {
	t.Helper()
	var body readyzBody
	resp, err := http.Get(d.url + "/readyz")
	if err != nil {
		return 0, body
	}
	defer func() { _ = resp.Body.Close() }()
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body
}

// metric returns the value of an unlabelled metric from /metrics.
func (d *dataplane) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get(d.url + "/metrics")
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			require.NoError(t, err)
			return f
		}
	}
	require.NoError(t, sc.Err())
	require.FailNow(t, "metric not found", name)
	return 0
}

// --- objects ---------------------------------------------------------------------------------

// createObjects creates the mock provider (replying reply), a route sending "default" to it and
// the admin client key.
func (c *cluster) createObjects(t *testing.T, reply string) {
	t.Helper()
	objs := []client.Object{
		&aiv1alpha1.AIProvider{
			ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "mock"},
			Spec: aiv1alpha1.AIProviderSpec{
				Type: aiv1alpha1.ProviderTypeMock,
				Mock: &aiv1alpha1.MockConfig{Reply: reply},
				Models: []aiv1alpha1.ProviderModel{{Name: "mock-small", InputPerMillion: "0.15",
					OutputPerMillion: "0.60", ContextWindow: 128000, MaxOutputTokens: 1024}},
			},
		},
		&aiv1alpha1.AIRoutePolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "default"},
			Spec: aiv1alpha1.AIRoutePolicySpec{
				Match:    aiv1alpha1.RouteMatch{Models: []string{"default"}},
				Targets:  []aiv1alpha1.RouteTarget{{Provider: "mock", Model: "mock-small"}},
				Strategy: aiv1alpha1.RouteStrategyFailover,
			},
		},
		&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "admin",
				Labels:      map[string]string{aiv1alpha1.LabelAPIKey: "true"},
				Annotations: map[string]string{aiv1alpha1.AnnotationRole: "admin"}},
			StringData: map[string]string{"key": clientKey},
		},
	}
	for _, o := range objs {
		require.NoError(t, c.k8s.Create(t.Context(), o), "create %T %s", o, o.GetName())
	}
}

// setReply changes the mock provider's reply with a merge patch (the controllers write its
// status concurrently) and returns when the API server has accepted it.
func (c *cluster) setReply(t *testing.T, reply string) {
	t.Helper()
	p := &aiv1alpha1.AIProvider{}
	require.NoError(t, c.k8s.Get(t.Context(), client.ObjectKey{Namespace: appNS, Name: "mock"}, p))
	base := p.DeepCopy()
	p.Spec.Mock.Reply = reply
	require.NoError(t, c.k8s.Patch(t.Context(), p, client.MergeFrom(base)))
}

// snapshotHead returns the head snapshot Secret, or nil when it does not exist.
func (c *cluster) snapshotHead(t *testing.T) *corev1.Secret {
	t.Helper()
	sec := &corev1.Secret{}
	err := c.k8s.Get(t.Context(), client.ObjectKey{Namespace: operatorNS, Name: snapshotsecret.DefaultName}, sec)
	if client.IgnoreNotFound(err) != nil {
		require.NoError(t, err)
	}
	if err != nil {
		return nil
	}
	return sec
}

// --- load ------------------------------------------------------------------------------------

// result is one chat request as the client saw it.
type result struct {
	start, end time.Time
	status     int
	content    string
	err        error
}

// load sends chat requests at a fixed rate from a few workers until stopped.
type load struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	results []result
	started time.Time
	stopped time.Time
	sent    atomic.Int64
}

// startLoad sends rate requests per second to d's /api/ai/chat with workers workers. The
// dispatcher counts what should have been sent since the start, so a stalled scheduler is
// caught up rather than lost; a worker that is busy delays its next token, never drops it.
func startLoad(t *testing.T, d *dataplane, rate, workers int) *load {
	t.Helper()
	tr := &http.Transport{MaxIdleConns: workers, MaxIdleConnsPerHost: workers, IdleConnTimeout: 30 * time.Second}
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, started: time.Now()}
	tokens := make(chan struct{}, rate)
	l.wg.Go(func() {
		defer close(tokens)
		tk := time.NewTicker(time.Second / time.Duration(rate))
		defer tk.Stop()
		var sent int64
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tk.C:
				due := int64(now.Sub(l.started).Seconds() * float64(rate))
				for ; sent < due; sent++ {
					select {
					case tokens <- struct{}{}:
					case <-ctx.Done():
						return
					}
				}
			}
		}
	})
	body, err := json.Marshal(map[string]any{"model": "default", "userId": "u1",
		"messages": []map[string]string{{"role": "user", "content": "which version?"}}})
	require.NoError(t, err)
	for range workers {
		l.wg.Go(func() {
			var mine []result
			defer func() {
				l.mu.Lock()
				l.results = append(l.results, mine...)
				l.mu.Unlock()
			}()
			for range tokens {
				mine = append(mine, chat(hc, d.url, body))
				l.sent.Add(1)
			}
		})
	}
	t.Cleanup(func() { l.stop(); tr.CloseIdleConnections() })
	return l
}

// chat sends one request (not bound to the load's context: a stopped load lets the requests in
// flight finish, so that none is counted as failed by our own cancellation).
func chat(hc *http.Client, base string, body []byte) (r result) {
	r.start = time.Now()
	defer func() { r.end = time.Now() }()
	req, err := http.NewRequest(http.MethodPost, base+"/api/ai/chat", bytes.NewReader(body))
	if err != nil {
		r.err = err
		return r
	}
	req.Header.Set("Authorization", "Bearer "+clientKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		r.err = err
		return r
	}
	defer func() { _ = resp.Body.Close() }()
	r.status = resp.StatusCode
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		r.err = err
		return r
	}
	var reply struct {
		Content string `json:"content"`
	}
	if resp.StatusCode != http.StatusOK {
		r.err = fmt.Errorf("status %d: %s", resp.StatusCode, raw)
		return r
	}
	if err := json.Unmarshal(raw, &reply); err != nil {
		r.err = fmt.Errorf("failed to decode reply %q: %w", raw, err)
		return r
	}
	r.content = reply.Content
	return r
}

// stop ends the load, waits for the requests in flight and returns every result, by start time.
func (l *load) stop() []result {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped.IsZero() {
		l.stopped = time.Now()
		slices.SortFunc(l.results, func(a, b result) int { return a.start.Compare(b.start) })
	}
	return l.results
}

// rps is the achieved request rate.
func (l *load) rps() float64 {
	return float64(len(l.results)) / l.stopped.Sub(l.started).Seconds()
}

// verdict is what a load saw across one switch of the served reply from old to next.
type verdict struct {
	requests int
	// firstNext is when the first reply carrying next arrived (zero: none did).
	firstNext time.Time
	// failed are the requests that did not get a 200 with old or next, or got old after a
	// reply with next had already arrived before they started.
	failed []string
}

// judge checks every result: each is a 200 whose content is old or next, and a request that
// started after the first reply with next arrived gets next (a request uses one snapshot from
// start to end, and the swap is atomic, so an old reply then means the old config came back).
func judge(results []result, old, next string) verdict {
	v := verdict{requests: len(results)}
	for _, r := range results {
		if r.err == nil && r.content == next && (v.firstNext.IsZero() || r.end.Before(v.firstNext)) {
			v.firstNext = r.end
		}
	}
	for i, r := range results {
		switch {
		case r.err != nil:
			v.failed = append(v.failed, fmt.Sprintf("request %d: %v", i, r.err))
		case r.content != old && r.content != next:
			v.failed = append(v.failed, fmt.Sprintf("request %d: unexpected reply %q", i, r.content))
		case r.content == old && old != next && !v.firstNext.IsZero() && r.start.After(v.firstNext):
			v.failed = append(v.failed, fmt.Sprintf("request %d started %v after the first %q and got %q",
				i, r.start.Sub(v.firstNext), next, old))
		}
	}
	return v
}

// requireNoFailures fails the test with the first few failures of v.
func requireNoFailures(t *testing.T, v verdict) {
	t.Helper()
	require.Empty(t, v.failed, "%d of %d requests failed; first: %v", len(v.failed), v.requests,
		v.failed[:min(5, len(v.failed))])
}

// waitUntil polls cond on the test's goroutine (so cond may use require) until it holds, and
// returns how long that took; it fails after waitFor.
func waitUntil(t *testing.T, msg string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		require.Less(t, time.Since(start), waitFor, msg)
		time.Sleep(tick) // polling an observable state with a deadline, not synchronisation
	}
	return time.Since(start)
}
