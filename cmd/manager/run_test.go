package main

import (
	"testing"

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
			want: Settings{MetricsAddr: ":8080", ProbeAddr: ":8081", Namespace: defaultNamespace, SnapshotName: snapshotsecret.DefaultName},
		},
		"the pod namespace from the downward API is the default namespace": {
			env:  "ops",
			want: Settings{MetricsAddr: ":8080", ProbeAddr: ":8081", Namespace: "ops", SnapshotName: snapshotsecret.DefaultName},
		},
		"flags override every default": {
			args: []string{"--leader-elect", "--namespace=ai", "--snapshot-name=snap", "--metrics-bind-address=0", "--health-probe-bind-address=:9"},
			want: Settings{MetricsAddr: "0", ProbeAddr: ":9", LeaderElect: true, Namespace: "ai", SnapshotName: "snap"},
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

func TestRunRefusesBadFlagsBeforeConnecting(t *testing.T) {
	require.ErrorContains(t, Run(t.Context(), []string{"--bogus"}), "failed to parse flags")
}
