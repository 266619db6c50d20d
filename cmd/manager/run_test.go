package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nself-org/ai-orchestration/internal/snapshotsecret"
)

func TestParseFlags(t *testing.T) {
	for name, tc := range map[string]struct {
		args    []string
		env     string
		want    Settings
		wantErr string
	}{
		"defaults run in the default namespace without leader election": {
			want: Settings{MetricsAddr: ":8080", ProbeAddr: ":8081", Namespace: defaultNamespace, SnapshotName: snapshotsecret.DefaultName,
				RedisMode: "single", BudgetStatusInterval: 30 * time.Second},
		},
		"the pod namespace from the downward API is the default namespace": {
			env: "ops",
			want: Settings{MetricsAddr: ":8080", ProbeAddr: ":8081", Namespace: "ops", SnapshotName: snapshotsecret.DefaultName,
				RedisMode: "single", BudgetStatusInterval: 30 * time.Second},
		},
		"flags override every default": {
			args: []string{"--leader-elect", "--namespace=ai", "--snapshot-name=snap", "--metrics-bind-address=0", "--health-probe-bind-address=:9",
				"--redis-url=redis://127.0.0.1:6379/0", "--redis-mode=cluster", "--budget-status-interval=5s"},
			want: Settings{MetricsAddr: "0", ProbeAddr: ":9", LeaderElect: true, Namespace: "ai", SnapshotName: "snap",
				RedisURL: "redis://127.0.0.1:6379/0", RedisMode: "cluster", BudgetStatusInterval: 5 * time.Second},
		},
		"an unknown flag is an error": {
			args: []string{"--nope"}, wantErr: "failed to parse flags",
		},
		"a stray argument is an error": {
			args: []string{"extra"}, wantErr: "unexpected arguments",
		},
		"an empty snapshot name is an error": {
			args: []string{"--snapshot-name="}, wantErr: "must not be empty",
		},
		"an unknown redis mode is an error": {
			args: []string{"--redis-mode=ring"}, wantErr: `invalid --redis-mode: unknown redis topology "ring"`,
		},
		"a budget status interval below a second is an error": {
			args: []string{"--budget-status-interval=10ms"}, wantErr: "must be at least 1s",
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("POD_NAMESPACE", tc.env)
			got, _, err := parseFlags(tc.args)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestSpendStoreRefusesAURLThatDoesNotParse(t *testing.T) {
	for topology, url := range map[string]string{"single": "http://not-redis", "sentinel": "redis://127.0.0.1:26379",
		"cluster": "redis://127.0.0.1:6379?bogus=1"} {
		_, _, err := spendStore(topology, url)
		require.ErrorContains(t, err, "failed to parse --redis-url: invalid "+topology+" redis url", topology)
	}
}

func TestSpendStoreDoesNotNeedTheServerAtStart(t *testing.T) {
	// Port 1 on loopback refuses connections: the store is built, and reads fail (UsageUnavailable).
	st, c, err := spendStore("single", "redis://127.0.0.1:1/0")
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Close()) }()
	_, err = st.Budgets(t.Context(), []string{"k"})
	require.Error(t, err)
}

func TestRunRefusesBadFlagsBeforeConnecting(t *testing.T) {
	require.ErrorContains(t, Run(t.Context(), []string{"--bogus"}), "failed to parse flags")
}
