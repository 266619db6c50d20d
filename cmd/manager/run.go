package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	aiv1alpha1 "github.com/nself-org/ai-orchestration/api/v1alpha1"
	"github.com/nself-org/ai-orchestration/controllers"
	"github.com/nself-org/ai-orchestration/dataplane/governor"
	"github.com/nself-org/ai-orchestration/dataplane/store"
	"github.com/nself-org/ai-orchestration/internal/snapshotsecret"
)

// defaultNamespace is used when neither --namespace nor POD_NAMESPACE (the downward API, set by
// config/manager) says where the operator runs.
const defaultNamespace = "ai-orchestration-system"

// Settings are the manager's flags, with their defaults in one place.
type Settings struct {
	MetricsAddr      string
	ProbeAddr        string
	LeaderElect      bool
	LeaderElectionNS string
	Namespace        string
	SnapshotName     string
	// RedisURL is the shared usage store of the data planes; empty = no spend in AIBudget status.
	RedisURL string
	// RedisMode is the Redis deployment RedisURL names: single (""), sentinel or cluster.
	RedisMode string
	// BudgetStatusInterval is how often each AIBudget's spend is re-read from RedisURL.
	BudgetStatusInterval time.Duration
}

// parseFlags reads args into Settings and configures the zap logger flags.
func parseFlags(args []string) (Settings, *zap.Options, error) {
	var s Settings
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.StringVar(&s.MetricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus /metrics endpoint; \"0\" disables it.")
	fs.StringVar(&s.ProbeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	fs.BoolVar(&s.LeaderElect, "leader-elect", false, "Elect one active manager among replicas (a Lease in --namespace).")
	fs.StringVar(&s.Namespace, "namespace", cmp.Or(os.Getenv("POD_NAMESPACE"), defaultNamespace),
		"Namespace of the snapshot Secret and the leader-election Lease (the operator's own).")
	fs.StringVar(&s.SnapshotName, "snapshot-name", snapshotsecret.DefaultName,
		"Name of the snapshot Secret; parts are <name>-1, <name>-2, …")
	fs.StringVar(&s.RedisURL, "redis-url", "",
		"redis://host:port/db of the store the data planes share (their --redis-url), read for AIBudget spend, forecast and "+
			"Warning/Exceeded; empty = budgets show only Ready.")
	fs.StringVar(&s.RedisMode, "redis-mode", store.TopologySingle,
		"What --redis-url names (as the data planes' --redis-mode): single, sentinel (with ?master_name=NAME) or cluster.")
	fs.DurationVar(&s.BudgetStatusInterval, "budget-status-interval", 30*time.Second,
		"How often each AIBudget's spend is re-read from --redis-url.")
	opts := &zap.Options{}
	opts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return s, nil, fmt.Errorf("failed to parse flags: %w", err)
	}
	if fs.NArg() > 0 {
		return s, nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if s.Namespace == "" || s.SnapshotName == "" {
		return s, nil, errors.New("--namespace and --snapshot-name must not be empty")
	}
	if err := store.CheckTopology(s.RedisMode); err != nil {
		return s, nil, fmt.Errorf("invalid --redis-mode: %w", err)
	}
	if s.BudgetStatusInterval < time.Second {
		return s, nil, fmt.Errorf("--budget-status-interval must be at least 1s, got %s", s.BudgetStatusInterval)
	}
	return s, opts, nil
}

// Scheme returns the types the manager works with: the core API and ai.nself.org/v1alpha1.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(aiv1alpha1.AddToScheme(s))
	return s
}

// Run parses args, connects to the cluster of the current kubeconfig (or the in-cluster config)
// and runs the controllers until ctx is cancelled.
func Run(ctx context.Context, args []string) error {
	s, zopts, err := parseFlags(args)
	if err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(zopts)))
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("failed to load the cluster config: %w", err)
	}
	return RunWithConfig(ctx, cfg, s)
}

// RunWithConfig runs the manager against cfg; Run's testable core.
func RunWithConfig(ctx context.Context, cfg *rest.Config, s Settings) error {
	opts := controllers.ManagerOptions()
	opts.Scheme = Scheme()
	opts.Metrics = metricsserver.Options{BindAddress: s.MetricsAddr}
	opts.HealthProbeBindAddress = s.ProbeAddr
	opts.LeaderElection = s.LeaderElect
	opts.LeaderElectionID = "ai-orchestration.ai.nself.org"
	opts.LeaderElectionNamespace = s.Namespace
	// A new leader takes over at once on a clean shutdown instead of waiting for the lease.
	opts.LeaderElectionReleaseOnCancel = true
	opts.GracefulShutdownTimeout = ptr.To(30 * time.Second)
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return fmt.Errorf("failed to create the manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("failed to add the health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("failed to add the ready check: %w", err)
	}
	copts := controllers.Options{Namespace: s.Namespace, SnapshotName: s.SnapshotName, SpendInterval: s.BudgetStatusInterval}
	if s.RedisURL != "" {
		st, rc, err := spendStore(s.RedisMode, s.RedisURL)
		if err != nil {
			return err
		}
		defer func() { _ = rc.Close() }()
		reporter, ok := governor.New(st, governor.Options{}).(governor.BudgetReporter)
		if !ok {
			return errors.New("failed to set up budget status: the governor does not report budgets")
		}
		copts.Spend = controllers.NewGovernorSpend(reporter, mgr.GetClient(), s.BudgetStatusInterval/2)
	}
	if _, err := controllers.Setup(ctx, mgr, copts); err != nil {
		return err
	}
	ctrl.Log.WithName("manager").Info("starting", "namespace", s.Namespace, "snapshot", s.SnapshotName,
		"leaderElection", s.LeaderElect, "budgetSpend", s.RedisURL != "", "budgetStatusInterval", s.BudgetStatusInterval)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("failed to run the manager: %w", err)
	}
	return nil
}

// spendStore opens the data planes' Redis (topology as their --redis-mode) for reading budget
// spend. Unlike the data plane it does not require the server to answer at start: the manager has
// other work, and a store that is down shows as Warning/Exceeded Unknown (reason
// UsageUnavailable) until it answers. A URL that does not parse is a configuration error and
// stops the manager.
func spendStore(topology, url string) (*store.Redis, redis.UniversalClient, error) {
	// Fail fast on a down server (the governor also bounds each read); the next pass retries.
	// One status refresh runs at a time, with a few commands per refresh.
	c, err := store.NewClient(topology, url, store.ClientDefaults{DialTimeout: time.Second,
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, PoolSize: 4})
	if err != nil {
		return nil, nil, fmt.Errorf("failed to parse --redis-url: %w", err)
	}
	return store.NewRedis(c, store.RedisOptions{}), c, nil
}
