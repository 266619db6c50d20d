package main

import (
	"bufio"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSlopeIsPerTenMinutes(t *testing.T) {
	// 1 MiB more every minute: 10 MiB per 10 min, whatever the noise around the line.
	var xs []sample
	for i := range 31 {
		noise := int64(0)
		if i%2 == 1 {
			noise = 1 << 19
		}
		xs = append(xs, sample{at: time.Duration(i) * time.Minute, rss: 100<<20 + int64(i)<<20 + noise, heap: 30 << 20, goroutines: 200})
	}
	s := summarise(xs, func(s sample) float64 { return mib(s.rss) })
	if math.Abs(s.per10m-10) > 0.1 {
		t.Fatalf("slope = %.3f MiB/10 min, want 10", s.per10m)
	}
	if s.min != 100 || s.max != 130 {
		t.Fatalf("min/max = %.1f/%.1f, want 100/130", s.min, s.max)
	}
}

func flatRun(span time.Duration) []sample {
	var xs []sample
	for at := 10 * time.Second; at <= span; at += 10 * time.Second {
		xs = append(xs, sample{at: at, rss: 110 << 20, heap: 35 << 20, goroutines: 236 + int64(at/time.Second)%3, chatOK: 3000, reloads: 1})
	}
	return xs
}

func TestVerdict(t *testing.T) {
	lim := limits{memSlopeMiB: 2, goroutineSlope: 10, goroutineBand: 232}
	if v := summarize(flatRun(35*time.Minute), 5*time.Minute, lim, 0, nil).verdict(); v != "verdict: flat" {
		t.Fatalf("steady run: %s", v)
	}
	if v := summarize(flatRun(2*time.Minute), 30*time.Second, lim, 0, nil).verdict(); !strings.HasPrefix(v, "verdict: inconclusive") {
		t.Fatalf("short steady run: %s", v)
	}

	leak := flatRun(35 * time.Minute)
	for i := range leak {
		leak[i].heap += int64(i) << 17 // 128 KiB per 10 s sample: 7.5 MiB per 10 min
	}
	if v := summarize(leak, 5*time.Minute, lim, 0, nil).verdict(); !strings.Contains(v, "NOT flat: heap grows 7.50") {
		t.Fatalf("heap leak: %s", v)
	}

	errs := flatRun(2 * time.Minute)
	errs[3].chatErr = 1
	if v := summarize(errs, 30*time.Second, lim, 0, nil).verdict(); !strings.Contains(v, "NOT flat: 1 request errors") {
		t.Fatalf("errors even in a short run: %s", v)
	}

	missed := flatRun(35 * time.Minute)
	for i := range missed {
		missed[i].writes = int64(i) // a change per sample, but reloads stay at the initial 1
	}
	if v := summarize(missed, 5*time.Minute, lim, int64(len(missed)), nil).verdict(); !strings.Contains(v, "snapshots swapped in") {
		t.Fatalf("missed reloads: %s", v)
	}
}

func TestParseMetricsReadsUnlabelledSeries(t *testing.T) {
	text := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 42
go_memstats_heap_inuse_bytes 1.2345e+07
aigw_requests_total{route="/v1/chat/completions",code="200"} 7
aigw_config_reloads_total 3
`
	m, err := parseMetrics(bufio.NewScanner(strings.NewReader(text)))
	if err != nil {
		t.Fatal(err)
	}
	if m[mGoroutines] != 42 || m[mHeapInuse] != 12345000 || m[mReloads] != 3 {
		t.Fatalf("parsed %v", m)
	}
	if _, err := parseMetrics(bufio.NewScanner(strings.NewReader("go_goroutines 1\n"))); err == nil {
		t.Fatal("a scrape without the heap series was accepted")
	}
}

func TestReloadChangesTheFolderEachTime(t *testing.T) {
	dir := t.TempDir()
	budgets := "spec:\n  scope: user\n  daily: \"1000.00\"\n"
	if err := os.WriteFile(filepath.Join(dir, budgetsFile), []byte(budgets), 0o600); err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 2; n++ {
		if err := reload(dir, n); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(dir, budgetsFile))
		want := "  daily: \"100" + string(rune('0'+n)) + ".00\"\n"
		if !strings.Contains(string(b), want) {
			t.Fatalf("after change %d the budgets read:\n%s", n, b)
		}
		_, err := os.Stat(filepath.Join(dir, extraRouteFile))
		if exists := err == nil; exists != (n%2 == 1) {
			t.Fatalf("after change %d the extra route exists = %v", n, exists)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Fatalf("left %s behind", e.Name())
		}
	}
}
