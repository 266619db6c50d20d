package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestWorkloadBodiesAreValidOpenAIRequestsWithUniquePrompts(t *testing.T) {
	w := newWorkload(300, 200)
	type msg struct{ Role, Content string }
	var a, b struct {
		Model    string `json:"model"`
		User     string `json:"user"`
		Stream   bool   `json:"stream"`
		Messages []msg  `json:"messages"`
	}
	require.NoError(t, json.Unmarshal(w.body(true, "n1", 7), &a))
	require.NoError(t, json.Unmarshal(w.body(true, "n1", 1007), &b))
	require.Equal(t, benchModel, a.Model)
	require.True(t, a.Stream)
	require.Equal(t, "bench-user-7", a.User)
	require.Equal(t, a.User, b.User, "users repeat over the population")
	require.Len(t, a.Messages, 2)
	require.Len(t, a.Messages[0].Content, 300)
	require.Equal(t, a.Messages[0], b.Messages[0], "the system message is the same in every request")
	require.NotEqual(t, a.Messages[1].Content, b.Messages[1].Content, "the prompt is unique, so the cache misses")
}

func TestParseWrkLine(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    loadResult
		wantErr string
	}{
		{name: "a normal cell gives rate and percentiles", line: "5000 2000000 150 300 900 0 0",
			want: loadResult{requests: 5000, rps: 2500, p50: 150 * time.Microsecond, p90: 300 * time.Microsecond, p99: 900 * time.Microsecond}},
		{name: "status and socket errors are summed", line: "10 1000000 1 2 3 2 1",
			want: loadResult{requests: 10, errors: 3, rps: 10, p50: time.Microsecond, p90: 2 * time.Microsecond, p99: 3 * time.Microsecond}},
		{name: "a cell where everything failed is an error", line: "10 1000000 1 2 3 10 0", wantErr: "every request failed"},
		{name: "a short line is refused", line: "1 2 3", wantErr: "malformed"},
		{name: "a non-number is refused", line: "1 2 3 4 5 x 7", wantErr: "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseWrkLine(tt.line)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestMedianOfRounds(t *testing.T) {
	require.Equal(t, 2*time.Millisecond, median([]time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond}))
	require.Equal(t, 2.5, median([]float64{4, 1, 2, 3}))
	require.Equal(t, int64(0), median([]int64{}))
	s := summarize([]cellResult{{rps: 10, errors: 1, peakRSS: 5}, {rps: 30, errors: 2, peakRSS: 9}, {rps: 20, peakRSS: 7}})
	require.Equal(t, 20.0, s.rps)
	require.Equal(t, int64(3), s.errors, "errors are summed over rounds")
	require.Equal(t, int64(9), s.peakRSS, "peak RSS is the maximum over rounds")
}
