package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nself-org/ai-orchestration/dataplane/cache"
	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/guard"
	"github.com/nself-org/ai-orchestration/dataplane/handlers"
	"github.com/nself-org/ai-orchestration/dataplane/metrics"
	"github.com/nself-org/ai-orchestration/dataplane/providers"
	"github.com/nself-org/ai-orchestration/dataplane/route"
	"github.com/nself-org/ai-orchestration/dataplane/runtime"
	"github.com/nself-org/ai-orchestration/dataplane/server"
	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/dataplane/tracing"
	"github.com/nself-org/ai-orchestration/internal/budgetwriter"
	"github.com/nself-org/ai-orchestration/internal/compiler"
	"github.com/nself-org/ai-orchestration/internal/kubeclient"
	"github.com/nself-org/ai-orchestration/internal/logbuf"
	"github.com/nself-org/ai-orchestration/internal/seedenv"
	"github.com/nself-org/ai-orchestration/internal/snapshotsecret"
)

// Settings are the data plane's flags, with their defaults in one place.
type Settings struct {
	Manifests string
	Addr      string
	RedisURL  string
	// RedisMode is the Redis deployment RedisURL names: single (""), sentinel or cluster.
	RedisMode       string
	SnapshotSecret  string
	Namespace       string
	LogLevel        string
	ShutdownTimeout time.Duration
	MaxBodyBytes    int64
	PollInterval    time.Duration
	// StoreTimeout bounds a request's admission call to the limit store (governor.Options
	// .AdmitTimeout); past it the fail modes apply. Zero takes the governor's default.
	StoreTimeout time.Duration
	// ReservationTTL is how long a budget reservation or concurrency slot of a replica that died
	// mid-call holds (governor.Options.ReservationTTL). Zero takes the governor's default.
	ReservationTTL time.Duration
	// StreamCheckpoint is how often a running stream charges its cost so far
	// (handlers.Deps.StreamCheckpointInterval); 0 charges streams only when they end.
	StreamCheckpoint time.Duration
	// Kubeconfig selects a cluster outside the pod (tests, local runs); empty = in-cluster config.
	Kubeconfig string
	// UpstreamDirect calls plain-HTTP upstreams over the data plane's own HTTP/1.1 connections,
	// in the request's goroutine; false sends them through Go's HTTP transport, as TLS ones are.
	UpstreamDirect bool
	// seed holds the objects built from the seed's environment variables, when they are used.
	seed *compiler.Input
	// addrSet is true when --addr was given, so AI_ORCHESTRATION_PORT does not override it.
	addrSet bool
}

// DefaultShutdownTimeout stays below Kubernetes' default 30 s termination grace period, so the
// drain finishes (and streams are settled) before the kubelet's SIGKILL.
const DefaultShutdownTimeout = 25 * time.Second

// DefaultSnapshotSecret is the name of the Secret the operator publishes the snapshot in.
const DefaultSnapshotSecret = "ai-orchestration-snapshot"

func parseFlags(args []string, stderr io.Writer) (Settings, error) {
	var s Settings
	fs := flag.NewFlagSet("dataplane", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&s.Manifests, "manifests", "", "standalone: compile and hot-reload this folder of AIProvider, AIBudget, AIRoutePolicy and Secret YAML")
	fs.StringVar(&s.Addr, "addr", server.DefaultAddr, "listen address")
	fs.StringVar(&s.RedisURL, "redis-url", "", "redis://host:port/db of the shared limit/budget store; empty = embedded in-memory store (one replica)")
	fs.StringVar(&s.RedisMode, "redis-mode", store.TopologySingle,
		"what --redis-url names: single (one server), sentinel (a sentinel, with ?master_name=NAME) or cluster (any node of a Redis Cluster)")
	fs.StringVar(&s.SnapshotSecret, "snapshot-secret", DefaultSnapshotSecret, "cluster: name of the snapshot Secret to watch")
	fs.StringVar(&s.SnapshotSecret, "snapshot-name", DefaultSnapshotSecret, "alias of --snapshot-secret")
	fs.StringVar(&s.Namespace, "namespace", "", "cluster: namespace of the snapshot Secret (default: POD_NAMESPACE or the service account's)")
	fs.StringVar(&s.Namespace, "snapshot-namespace", "", "alias of --namespace")
	fs.StringVar(&s.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.DurationVar(&s.ShutdownTimeout, "shutdown-timeout", DefaultShutdownTimeout, "how long in-flight requests and streams may finish after SIGTERM")
	fs.Int64Var(&s.MaxBodyBytes, "max-body-bytes", server.DefaultMaxBodyBytes, "largest request body accepted (413 above)")
	fs.DurationVar(&s.PollInterval, "poll-interval", 500*time.Millisecond, "standalone: how often the manifest folder is checked for changes")
	fs.DurationVar(&s.StoreTimeout, "store-timeout", governor.DefaultAdmitTimeout,
		"how long admitting a request may wait for the limit store before the fail modes apply (a hung Redis; a down one fails at once)")
	fs.DurationVar(&s.ReservationTTL, "reservation-ttl", governor.DefaultReservationTTL,
		"how long a crashed replica's budget reservations and concurrency slots hold; must exceed the longest call, streams included")
	fs.DurationVar(&s.StreamCheckpoint, "stream-checkpoint", handlers.DefaultStreamCheckpointInterval,
		"how often a running stream charges what it has cost so far, so a killed replica loses at most that much; 0 = only when it ends")
	fs.StringVar(&s.Kubeconfig, "kubeconfig", "", "cluster: kubeconfig file (default: in-cluster config)")
	fs.BoolVar(&s.UpstreamDirect, "upstream-direct", true,
		"call plain-HTTP upstreams (Ollama, in-cluster model servers) over the data plane's own keep-alive connections in the request's goroutine; false = through Go's HTTP transport, as TLS upstreams")
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	fs.Visit(func(f *flag.Flag) { s.addrSet = s.addrSet || f.Name == "addr" })
	if s.StoreTimeout <= 0 {
		return s, fmt.Errorf("invalid --store-timeout %v: must be positive", s.StoreTimeout)
	}
	if s.ReservationTTL <= 0 {
		return s, fmt.Errorf("invalid --reservation-ttl %v: must be positive", s.ReservationTTL)
	}
	if err := store.CheckTopology(s.RedisMode); err != nil {
		return s, fmt.Errorf("invalid --redis-mode: %w", err)
	}
	if s.RedisURL == "" && s.RedisMode != "" && s.RedisMode != store.TopologySingle {
		return s, fmt.Errorf("--redis-mode=%s needs --redis-url", s.RedisMode)
	}
	if s.StreamCheckpoint < 0 {
		return s, fmt.Errorf("invalid --stream-checkpoint %v: must not be negative", s.StreamCheckpoint)
	}
	if fs.NArg() > 0 {
		return s, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return s, nil
}

// Run starts the data plane with args (without the program name) and serves until ctx ends,
// then drains in-flight requests. Standalone (--manifests) it compiles the folder itself; in a
// cluster it watches the snapshot Secret with the pod's service account.
//
// With no --manifests and any of the seed's AI_* environment variables set, it builds providers,
// a default route and budgets from them (see internal/seedenv). `dataplane manifests` prints
// those objects as YAML, to move them to custom resources.
func Run(ctx context.Context, args []string) error {
	return run(ctx, args, os.Stderr, logbuf.DefaultInterval)
}

// run is [Run] logging to stderr, whose log lines wait at most flushEvery before they are
// written (tests stretch it to prove that nothing buffered is lost at shutdown).
func run(ctx context.Context, args []string, stderr io.Writer, flushEvery time.Duration) error {
	if len(args) > 0 && args[0] == "manifests" {
		return printManifests(args[1:], os.Getenv, os.Stdout, stderr)
	}
	s, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if s.Manifests == "" {
		in, present, err := seedenv.FromEnv(os.Getenv)
		if err != nil {
			return err
		}
		if present {
			s.seed = &in
			if !s.addrSet {
				s.Addr = seedenv.ListenAddr(os.Getenv)
			}
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(s.LogLevel)); err != nil {
		return fmt.Errorf("invalid --log-level: %w", err)
	}
	// Lines are written in batches (one write per request was a visible share of a request's
	// CPU); error lines at once; Close writes the rest after the drain and every deferred log.
	log, logw := logbuf.New(stderr, level, logbuf.Options{Interval: flushEvery})
	defer func() { _ = logw.Close() }()
	applyMemoryLimit(os.Getenv, os.ReadFile, log)
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("failed to listen on %s: %w", s.Addr, err)
	}
	return serve(ctx, s, ln, log)
}

// serve runs the data plane on ln (tests pass a 127.0.0.1 listener).
func serve(ctx context.Context, s Settings, ln net.Listener, log *slog.Logger) error {
	// Traces are exported only when the OTEL_* environment asks for them; otherwise tp is nil
	// and tracing costs the request path nothing.
	tp, terr := tracing.Setup(ctx, os.Getenv, tracing.Options{})
	if terr != nil {
		_ = ln.Close()
		return terr
	}
	if tp != nil {
		log.Info("exporting OpenTelemetry traces over OTLP/HTTP")
		defer func() {
			// After the drain, so the spans of the last requests are sent.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := tp.Shutdown(sctx); err != nil {
				log.Warn("failed to flush traces at exit", "error", err)
			}
		}()
	}
	m := metrics.New()
	var st store.Store
	if s.RedisURL != "" {
		redis.SetLogger(redisLog{log})
		rs, err := store.Dial(ctx, s.RedisMode, s.RedisURL, store.RedisOptions{})
		if err != nil {
			_ = ln.Close()
			return err
		}
		st = rs
	} else {
		st = store.NewMemory(store.MemoryOptions{})
	}
	defer func() { _ = st.Close() }()

	holder := runtime.NewHolder(runtime.Options{NewProvider: providers.New, HTTPClient: upstreamClient(s)}, m, log)
	gov := governor.New(st, governor.Options{Logger: log, Registerer: m.Registry,
		AdmitTimeout: s.StoreTimeout, ReservationTTL: s.ReservationTTL})
	svc := handlers.NewService(handlers.Deps{
		Governor: gov,
		Planner:  route.NewPlanner(route.NewHealth(route.HealthOptions{}), route.PlannerOptions{}),
		Guard:    handlers.NewGuard(guard.NewEngine(guard.Options{})),
		Cache:    cache.New(st.Cache(), cache.Options{Logger: log}),
		Metrics:  m,
		Log:      log,
		// Zero in Deps means the default; the flag's 0 means off.
		StreamCheckpointInterval: cmp.Or(s.StreamCheckpoint, -1),
	})
	h := handlers.New(svc, holder, m)

	// The config source runs until ctx ends; the server keeps serving the last good snapshot
	// whatever the source does. Budgets set through the API are written where the source reads
	// (manifest files in the folder, or AIBudgets through the API server), so there is one truth.
	var source func(ctx context.Context)
	switch {
	case s.Manifests != "":
		if _, err := os.Stat(s.Manifests); err != nil {
			_ = ln.Close()
			return fmt.Errorf("failed to open --manifests folder: %w", err)
		}
		h.Budgets = handlers.NewBudgetHandlers(budgetwriter.NewFiles(s.Manifests), gov, holder)
		source = func(ctx context.Context) { holder.WatchDir(ctx, s.Manifests, s.PollInterval, LoadManifests) }
	case s.seed != nil:
		res := compiler.Compile(*s.seed)
		if err := holder.Apply(res.Snapshot); err != nil {
			_ = ln.Close()
			return fmt.Errorf("failed to load the configuration built from the environment: %w", err)
		}
		log.Info("serving the configuration built from AI_* environment variables",
			"providers", len(res.Snapshot.Providers), "routes", len(res.Snapshot.Routes), "budgets", len(res.Snapshot.Budgets))
		// Budgets live in the environment here; the budgets API answers not_ready.
		source = func(ctx context.Context) { <-ctx.Done() }
	default:
		secrets, budgets, ns, err := clusterClient(s.Kubeconfig, s.Namespace)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("no --manifests folder and not in a cluster: %w", err)
		}
		h.Budgets = handlers.NewBudgetHandlers(budgets, gov, holder)
		source = func(ctx context.Context) {
			err := snapshotsecret.Watch(ctx, secrets, ns, s.SnapshotSecret,
				func(snap *config.Snapshot) { _ = holder.Apply(snap) }, holder.Fail)
			if err != nil {
				holder.Fail(err)
			}
		}
	}
	srv := server.New(server.Config{Addr: s.Addr, MaxBodyBytes: s.MaxBodyBytes, ShutdownTimeout: s.ShutdownTimeout},
		h, holder, m, log)
	srcCtx, stopSource := context.WithCancel(ctx)
	defer stopSource()
	srcDone := make(chan struct{})
	go func() {
		defer close(srcDone)
		source(srcCtx)
	}()
	err := srv.Serve(ctx, ln)
	stopSource()
	<-srcDone
	return err
}

// LoadManifests compiles a folder of manifests into a snapshot: YAML that does not parse
// refuses the whole folder (the last good snapshot keeps serving); objects the compiler judges
// broken are left out and reported as problems.
func LoadManifests(dir string) (*config.Snapshot, []string, error) {
	in, err := compiler.LoadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	res := compiler.Compile(in)
	problems := make([]string, 0, len(res.Problems))
	for _, p := range res.Problems {
		problems = append(problems, fmt.Sprintf("%s %s/%s: %s: %s", p.Kind, p.Namespace, p.Name, p.Reason, p.Message))
	}
	return res.Snapshot, problems, nil
}

const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// clusterClient returns the reader of the snapshot Secrets, the writer of AIBudgets set through
// the budgets API, and the namespace of both. They are REST clients of exactly those two resources
// (internal/kubeclient): the generated clientset and controller-runtime's client would make the
// binary and its memory much larger for nothing the data plane uses.
func clusterClient(kubeconfig, ns string) (*kubeclient.Secrets, *budgetwriter.Cluster, string, error) {
	cfg, err := kubeclient.LoadConfig(kubeconfig)
	if err != nil {
		return nil, nil, "", err
	}
	if ns == "" {
		ns = os.Getenv("POD_NAMESPACE")
	}
	if ns == "" {
		b, err := os.ReadFile(serviceAccountNamespace)
		if err != nil {
			return nil, nil, "", errors.New("no --namespace, POD_NAMESPACE or service-account namespace")
		}
		ns = strings.TrimSpace(string(b))
	}
	core, err := kubeclient.NewCore(cfg)
	if err != nil {
		return nil, nil, "", err
	}
	budgets, err := budgetwriter.NewClusterFromConfig(cfg, ns)
	if err != nil {
		return nil, nil, "", err
	}
	return kubeclient.NewSecrets(core, ns), budgets, ns, nil
}

// printManifests implements `dataplane manifests [--include-secrets]`: the objects the seed's
// environment variables describe, as YAML for kubectl or a GitOps repository. Key values are
// printed only with --include-secrets; otherwise each Secret says how to fill it.
func printManifests(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dataplane manifests", flag.ContinueOnError)
	fs.SetOutput(stderr)
	include := fs.Bool("include-secrets", false, "print API key values from the environment into the Secrets")
	if err := fs.Parse(args); err != nil {
		return err
	}
	in, present, err := seedenv.FromEnv(getenv)
	if err != nil {
		return err
	}
	if !present {
		return errors.New("no AI_* settings in the environment: nothing to print")
	}
	out, err := seedenv.Manifests(in, seedenv.ManifestOptions{IncludeSecrets: *include})
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}

// upstreamClient is the one HTTP client every provider shares, with the transport s asks for.
func upstreamClient(s Settings) *http.Client {
	hc := providers.NewHTTPClient(0)
	if !s.UpstreamDirect {
		hc.Transport = providers.HTTPTransport(hc)
	}
	return hc
}
