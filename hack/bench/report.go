package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

type cellKey struct {
	kind   string
	c      int
	target string
}

type report struct {
	opts              options
	started, finished time.Time
	targets           []string
	results           map[cellKey][]cellResult
}

type cellResult = loadResult

// summary is the median over rounds of each metric (errors summed, peak RSS the maximum).
type summary struct {
	rounds                        int
	rps                           float64
	p50, p90, p99, ttfb50, ttfb99 time.Duration
	cpu, upstreamCPU, redisCPU    float64
	peakRSS                       int64
	errors, requests              int64
	// Per request: the target's read/write-family system calls and its threads' voluntary and
	// involuntary context switches (see [ioCalls], [ctxSwitches]).
	readCalls, writeCalls, volCS, involCS float64
}

func (s summary) ioCalls() float64     { return s.readCalls + s.writeCalls }
func (s summary) ctxSwitches() float64 { return s.volCS + s.involCS }

func median[T int64 | float64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func summarize(rs []cellResult) summary {
	col := func(f func(r cellResult) time.Duration) time.Duration {
		xs := make([]time.Duration, len(rs))
		for i, r := range rs {
			xs[i] = f(r)
		}
		return median(xs)
	}
	colf := func(f func(r cellResult) float64) float64 {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = f(r)
		}
		return median(xs)
	}
	s := summary{rounds: len(rs)}
	s.rps = colf(func(r cellResult) float64 { return r.rps })
	s.p50 = col(func(r cellResult) time.Duration { return r.p50 })
	s.p90 = col(func(r cellResult) time.Duration { return r.p90 })
	s.p99 = col(func(r cellResult) time.Duration { return r.p99 })
	s.ttfb50 = col(func(r cellResult) time.Duration { return r.ttfb50 })
	s.ttfb99 = col(func(r cellResult) time.Duration { return r.ttfb99 })
	s.cpu = colf(func(r cellResult) float64 { return r.cpuMsPerReq })
	s.upstreamCPU = colf(func(r cellResult) float64 { return r.upstreamCPUMsPerReq })
	s.redisCPU = colf(func(r cellResult) float64 { return r.redisCPUMsPerReq })
	s.readCalls = colf(func(r cellResult) float64 { return r.readCallsPerReq })
	s.writeCalls = colf(func(r cellResult) float64 { return r.writeCallsPerReq })
	s.volCS = colf(func(r cellResult) float64 { return r.volCSPerReq })
	s.involCS = colf(func(r cellResult) float64 { return r.involCSPerReq })
	for _, r := range rs {
		s.errors += r.errors
		s.requests += r.requests
		s.peakRSS = max(s.peakRSS, r.peakRSS)
	}
	return s
}

func us(d time.Duration) string { return fmt.Sprintf("%d µs", d.Microseconds()) }

func signedUS(d time.Duration) string {
	if d >= 0 {
		return fmt.Sprintf("+%d µs", d.Microseconds())
	}
	return fmt.Sprintf("−%d µs", -d.Microseconds())
}

func (r *report) get(kind string, c int, target string) (summary, bool) {
	rs, ok := r.results[cellKey{kind, c, target}]
	if !ok || len(rs) == 0 {
		return summary{}, false
	}
	return summarize(rs), true
}

func (r *report) markdown() string {
	var b strings.Builder
	o := r.opts
	fmt.Fprintf(&b, "Measured %s – %s UTC; %d round(s) × %s per cell, targets interleaved (order rotated each round); medians over rounds.\n\n",
		r.started.Format("2006-01-02 15:04:05"), r.finished.Format("15:04:05"), o.rounds, o.duration)
	fmt.Fprintf(&b, "Request: POST %s, model %s, system message %d B (fixed), user message %d B (unique per request), %d users; "+
		"mock upstream latency %s, %d chunks per stream, chunk delay %s. Chat cells: wrk; stream cells: Go client (TTFB = first body byte).\n\n",
		benchPath, benchModel, o.systemBytes, o.promptBytes, benchUsers, o.latency, o.chunks, o.chunkDelay)
	b.WriteString("Columns: *added p50* = target p50 − direct p50; *CPU* = the target process's own CPU (user+sys from /proc) per request; " +
		"*upstream CPU* = the mock's; *peak RSS* = VmHWM during the cell (reset before it); ratios and Δ are against the floor in the same run.\n" +
		"The second table of each cell is per request of the target process: *I/O syscalls* = read- plus write-family calls (/proc/PID/io syscr + syscw: " +
		"read, readv, write, writev…, EAGAIN included; not epoll_wait, futex, accept or sendmsg); *context switches* = voluntary + involuntary, " +
		"summed over the process's threads (/proc/PID/task/*/status).\n")
	for _, kind := range o.kinds {
		for _, c := range o.concurrency {
			fmt.Fprintf(&b, "\n### %s, concurrency %d\n\n", kind, c)
			floor, hasFloor := r.get(kind, c, "floor")
			direct, hasDirect := r.get(kind, c, "direct")
			hdr := "| target | req/s | p50 | p90 | p99 |"
			sep := "|---|---:|---:|---:|---:|"
			if kind == "stream" {
				hdr += " TTFB p50 | TTFB p99 |"
				sep += "---:|---:|"
			}
			hdr += " added p50 | CPU ms/req | upstream CPU ms/req | peak RSS MiB | errors | req/s ÷ floor | added p50 − floor's |"
			sep += "---:|---:|---:|---:|---:|---:|---:|"
			if kind == "stream" {
				hdr += " TTFB p50 − floor's |"
				sep += "---:|"
			}
			b.WriteString(hdr + "\n" + sep + "\n")
			for _, t := range r.targets {
				s, ok := r.get(kind, c, t)
				if !ok {
					continue
				}
				fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %s |", t, s.rps, us(s.p50), us(s.p90), us(s.p99))
				if kind == "stream" {
					fmt.Fprintf(&b, " %s | %s |", us(s.ttfb50), us(s.ttfb99))
				}
				added := "—"
				if hasDirect && t != "direct" {
					added = signedUS(s.p50 - direct.p50)
				}
				up := "—"
				if t != "direct" {
					up = fmt.Sprintf("%.3f", s.upstreamCPU)
				}
				cpu := fmt.Sprintf("%.3f", s.cpu)
				if s.redisCPU > 0 {
					cpu += fmt.Sprintf(" (+ redis %.3f)", s.redisCPU)
				}
				ratio, dAdded, dTTFB := "—", "—", "—"
				if hasFloor && t != "direct" && t != "floor" {
					ratio = fmt.Sprintf("%.2f", s.rps/floor.rps)
					dAdded = signedUS(s.p50 - floor.p50)
					dTTFB = signedUS(s.ttfb50 - floor.ttfb50)
				}
				fmt.Fprintf(&b, " %s | %s | %s | %.1f | %d | %s | %s |", added, cpu, up, float64(s.peakRSS)/(1<<20), s.errors, ratio, dAdded)
				if kind == "stream" {
					fmt.Fprintf(&b, " %s |", dTTFB)
				}
				b.WriteString("\n")
			}
			r.kernelTable(&b, kind, c)
			r.compareTable(&b, kind, c)
		}
	}
	b.WriteString("\n" + r.verdicts())
	return b.String()
}

// kernelTable writes, under a cell's main table, what each target asked of the kernel per
// request: a table of its own rather than more columns on rows already a screen wide.
func (r *report) kernelTable(b *strings.Builder, kind string, c int) {
	floor, hasFloor := r.get(kind, c, "floor")
	b.WriteString("\n| target | read calls/req | write calls/req | I/O syscalls/req | voluntary cs/req | involuntary cs/req | context switches/req | I/O syscalls ÷ floor | context switches ÷ floor |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	ratio := func(x, f float64) string {
		if f == 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f", x/f)
	}
	for _, t := range r.targets {
		s, ok := r.get(kind, c, t)
		if !ok {
			continue
		}
		rio, rcs := "—", "—"
		if hasFloor && t != "direct" && t != "floor" {
			rio, rcs = ratio(s.ioCalls(), floor.ioCalls()), ratio(s.ctxSwitches(), floor.ctxSwitches())
		}
		fmt.Fprintf(b, "| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %s | %s |\n",
			t, s.readCalls, s.writeCalls, s.ioCalls(), s.volCS, s.involCS, s.ctxSwitches(), rio, rcs)
	}
}

// compareTable writes, under a cell measured with --compare-rev, the working tree's data plane
// against the other revision's round by round: the two ran in the same rounds, next to each other
// or nearly, so a round's difference cancels most of what the machine did to both, and the median
// of the differences (with how many rounds went each way) tells a small change from the noise
// better than the difference of the two medians above.
func (r *report) compareTable(b *strings.Builder, kind string, c int) {
	var base string
	for _, t := range r.targets {
		if strings.HasPrefix(t, compareKey) {
			base = t
		}
	}
	now, before := r.results[cellKey{kind, c, "dataplane"}], r.results[cellKey{kind, c, base}]
	n := min(len(now), len(before))
	if base == "" || n == 0 {
		return
	}
	type metric struct {
		name string
		// diff is round i's change from before to now, in the unit printed; lower is better when
		// lowerBetter.
		diff        func(a, b cellResult) float64
		unit        string
		lowerBetter bool
	}
	metrics := []metric{
		{"p50", func(a, b cellResult) float64 { return float64((a.p50 - b.p50).Microseconds()) }, " µs", true},
		{"req/s", func(a, b cellResult) float64 { return 100 * (a.rps/b.rps - 1) }, " %", false},
		{"CPU ms/req", func(a, b cellResult) float64 { return a.cpuMsPerReq - b.cpuMsPerReq }, " ms", true},
	}
	if kind == "stream" {
		metrics = append(metrics[:1:1], append([]metric{{"TTFB p50", func(a, b cellResult) float64 { return float64((a.ttfb50 - b.ttfb50).Microseconds()) }, " µs", true}}, metrics[1:]...)...)
	}
	fmt.Fprintf(b, "\nRound by round, dataplane against %s (%d rounds):\n\n| metric | median change | rounds better / worse | smallest … largest change |\n|---|---:|---:|---:|\n", base, n)
	for _, m := range metrics {
		ds := make([]float64, n)
		better, worse := 0, 0
		for i := range n {
			ds[i] = m.diff(now[i], before[i])
			if ds[i] != 0 && (ds[i] < 0) == m.lowerBetter {
				better++
			} else if ds[i] != 0 {
				worse++
			}
		}
		digits := 0
		if m.unit == " ms" {
			digits = 3
		} else if m.unit == " %" {
			digits = 1
		}
		fmt.Fprintf(b, "| %s | %+.*f%s | %d / %d | %+.*f … %+.*f |\n", m.name, digits, median(ds), m.unit, better, worse,
			digits, slices.Min(ds), digits, slices.Max(ds))
	}
}

// pairedMedian returns, for a verdict's "measured" column, the median over rounds of target's
// value minus the floor's in the same round ("; per round +N µs"), or "" with a single round. The
// verdict itself stays on the difference of the medians shown beside it.
func (r *report) pairedMedian(kind string, c int, target string, v func(cellResult) time.Duration) string {
	t, f := r.results[cellKey{kind, c, target}], r.results[cellKey{kind, c, "floor"}]
	n := min(len(t), len(f))
	if n < 2 {
		return ""
	}
	ds := make([]time.Duration, n)
	for i := range n {
		ds[i] = v(t[i]) - v(f[i])
	}
	return "; round by round " + signedUS(median(ds))
}

// verdicts checks the targets of DESIGN.md ("Targets") that this run measures.
func (r *report) verdicts() string {
	var b strings.Builder
	b.WriteString("### Targets (DESIGN.md)\n\n| target | measured | met |\n|---|---|---|\n")
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	hi := slices.Max(r.opts.concurrency)
	lo := slices.Min(r.opts.concurrency)
	for _, dp := range []string{"dataplane", "dataplane+redis"} {
		slack := 50 * time.Microsecond
		if dp == "dataplane+redis" {
			slack = 150 * time.Microsecond
		}
		if s, ok := r.get("chat", hi, dp); ok {
			if f, ok := r.get("chat", hi, "floor"); ok {
				ratio := s.rps / f.rps
				fmt.Fprintf(&b, "| %s chat c=%d req/s ≥ 0.95 × floor | %.0f vs %.0f (%.2f×) | %s |\n", dp, hi, s.rps, f.rps, ratio, yes(ratio >= 0.95))
			}
		}
		if s, ok := r.get("chat", lo, dp); ok {
			if f, ok := r.get("chat", lo, "floor"); ok {
				d := s.p50 - f.p50
				paired := r.pairedMedian("chat", lo, dp, func(x cellResult) time.Duration { return x.p50 })
				fmt.Fprintf(&b, "| %s chat c=%d p50 ≤ floor's + %d µs | %s vs %s (%s%s) | %s |\n", dp, lo, slack.Microseconds(), us(s.p50), us(f.p50), signedUS(d), paired, yes(d <= slack))
			}
		}
		if s, ok := r.get("stream", lo, dp); ok {
			if f, ok := r.get("stream", lo, "floor"); ok {
				d := s.ttfb50 - f.ttfb50
				paired := r.pairedMedian("stream", lo, dp, func(x cellResult) time.Duration { return x.ttfb50 })
				fmt.Fprintf(&b, "| %s stream c=%d TTFB p50 ≤ floor's + 500 µs | %s vs %s (%s%s) | %s |\n", dp, lo, us(s.ttfb50), us(f.ttfb50), signedUS(d), paired, yes(d <= 500*time.Microsecond))
			}
		}
		for _, kind := range r.opts.kinds {
			var worst float64
			any := false
			for _, c := range r.opts.concurrency {
				if s, ok := r.get(kind, c, dp); ok {
					worst = max(worst, s.cpu)
					any = true
				}
			}
			if any {
				fmt.Fprintf(&b, "| %s %s CPU ≤ 0.15 ms/request (worst concurrency) | %.3f ms | %s |\n", dp, kind, worst, yes(worst <= 0.15))
			}
		}
	}
	return b.String()
}

func machineNote() string {
	load, _ := os.ReadFile("/proc/loadavg")
	rev, _ := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	return fmt.Sprintf("Machine: %d CPUs, %s, load average %s; commit %s (plus uncommitted work in the tree).\n",
		runtime.NumCPU(), runtime.Version(), strings.Join(strings.Fields(string(load))[:3], " "), strings.TrimSpace(string(rev)))
}

// writeReport prints the report and writes it to RESULTS/<UTC time>.md.
func writeReport(o options, root string, rep *report, prof *profileResult, hold *holdReport) error {
	var b strings.Builder
	now := time.Now().UTC()
	title := "Data plane vs floor"
	if o.redisURL != "" {
		title += " (+ Redis)"
	}
	fmt.Fprintf(&b, "## %s — %s\n\n", title, now.Format("2006-01-02 15:04 UTC"))
	b.WriteString(machineNote() + "\n")
	fmt.Fprintf(&b, "Command: `go run ./hack/bench %s`\n\n", strings.Join(os.Args[1:], " "))
	if rep != nil {
		b.WriteString(rep.markdown())
	}
	if hold != nil {
		b.WriteString("\n" + hold.markdown())
	}
	if prof != nil {
		b.WriteString("\n" + prof.markdown())
	}
	fmt.Print(b.String())
	dir := o.resultsDir
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("failed to create %s: %w", dir, err)
	}
	name := now.Format("2006-01-02T1504Z")
	if o.redisURL != "" {
		name += "-redis"
	}
	if rep == nil && prof != nil {
		if o.profileBare {
			name += "-bare"
		}
		name += "-profile"
	}
	if rep == nil && hold != nil {
		name += "-streams"
	}
	path := filepath.Join(dir, name+".md")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	logf("report written to %s", path)
	return nil
}
