package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// series summarises one quantity over the samples after warm-up.
type series struct {
	min, median, max float64
	// per10m is the least-squares slope, in the quantity's unit per 10 minutes.
	per10m float64
}

func summarise(xs []sample, value func(sample) float64) series {
	if len(xs) == 0 {
		return series{}
	}
	vs := make([]float64, len(xs))
	for i, s := range xs {
		vs[i] = value(s)
	}
	sorted := slices.Clone(vs)
	slices.Sort(sorted)
	out := series{min: sorted[0], max: sorted[len(sorted)-1], median: sorted[len(sorted)/2]}
	if len(sorted)%2 == 0 {
		out.median = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	ts := make([]float64, len(xs))
	for i, s := range xs {
		ts[i] = s.at.Minutes() / 10
	}
	out.per10m = slope(ts, vs)
	return out
}

// slope is the least-squares slope of y over x (0 with fewer than two distinct x).
func slope(x, y []float64) float64 {
	n := float64(len(x))
	if n < 2 {
		return 0
	}
	var sx, sy float64
	for i := range x {
		sx += x[i]
		sy += y[i]
	}
	mx, my := sx/n, sy/n
	var num, den float64
	for i := range x {
		num += (x[i] - mx) * (y[i] - my)
		den += (x[i] - mx) * (x[i] - mx)
	}
	if den == 0 {
		return 0
	}
	return num / den
}

// limits are the verdict's thresholds.
type limits struct {
	memSlopeMiB float64 // RSS and heap, MiB per 10 min
	// goroutineSlope bounds the goroutine trend per 10 min; goroutineBand bounds max-min after
	// warm-up, which in-flight requests and streams explain (a few goroutines each).
	goroutineSlope float64
	goroutineBand  int64
}

type summary struct {
	warmup                 time.Duration
	samples                int
	span                   time.Duration // covered by the samples after warm-up
	rss, heap, goroutines  series
	fds                    series
	chatOK, streamOK, cuts int64
	errs, loadErrors       int64
	// swaps are the snapshots swapped in after the initial one (aigw_config_reloads_total
	// counts that one too); writes the manifest changes the soak made.
	swaps, writes int64
	firstErr      error
	// failures fail the verdict whatever the run's length; trends (slopes) only when the run
	// had at least minTrendSpan after warm-up, below which they are too noisy to judge.
	failures, trends []string
}

// minTrendSpan is the least time after warm-up over which a slope per 10 min is judged.
const minTrendSpan = 10 * time.Minute

func summarize(all []sample, warmup time.Duration, lim limits, writes int64, firstErr error) summary {
	var after []sample
	for _, s := range all {
		if s.at >= warmup {
			after = append(after, s)
		}
	}
	sm := summary{warmup: warmup, samples: len(after), writes: writes, firstErr: firstErr}
	for _, s := range all {
		sm.chatOK += s.chatOK
		sm.streamOK += s.streamOK
		sm.cuts += s.cutOff
		sm.errs += s.chatErr + s.streamErr
	}
	if n := len(all); n > 0 {
		sm.swaps, sm.loadErrors = all[n-1].reloads-1, all[n-1].loadErrors
		// A change made before the previous sample had a whole interval (> the 1 s poll) to
		// be picked up by the last one.
		if n > 1 && sm.swaps < all[n-2].writes {
			sm.failures = append(sm.failures, fmt.Sprintf("%d manifest changes made but only %d snapshots swapped in", all[n-2].writes, sm.swaps))
		}
	}
	if sm.errs > 0 {
		sm.failures = append(sm.failures, fmt.Sprintf("%d request errors (first: %v)", sm.errs, firstErr))
	}
	if sm.loadErrors > 0 {
		sm.failures = append(sm.failures, fmt.Sprintf("%d snapshots refused by the data plane", sm.loadErrors))
	}
	if len(after) < 3 {
		sm.failures = append(sm.failures, fmt.Sprintf("only %d samples after warm-up (need 3)", len(after)))
		return sm
	}
	sm.span = after[len(after)-1].at - after[0].at
	sm.rss = summarise(after, func(s sample) float64 { return mib(s.rss) })
	sm.heap = summarise(after, func(s sample) float64 { return mib(s.heap) })
	sm.goroutines = summarise(after, func(s sample) float64 { return float64(s.goroutines) })
	sm.fds = summarise(after, func(s sample) float64 { return float64(s.fds) })
	if band := int64(sm.goroutines.max - sm.goroutines.min); band > lim.goroutineBand {
		sm.failures = append(sm.failures, fmt.Sprintf("goroutines vary by %d, more than the in-flight load explains (%d)", band, lim.goroutineBand))
	}
	if sm.rss.per10m >= lim.memSlopeMiB {
		sm.trends = append(sm.trends, fmt.Sprintf("RSS grows %.2f MiB/10 min (limit %.1f)", sm.rss.per10m, lim.memSlopeMiB))
	}
	if sm.heap.per10m >= lim.memSlopeMiB {
		sm.trends = append(sm.trends, fmt.Sprintf("heap grows %.2f MiB/10 min (limit %.1f)", sm.heap.per10m, lim.memSlopeMiB))
	}
	if sm.goroutines.per10m >= lim.goroutineSlope {
		sm.trends = append(sm.trends, fmt.Sprintf("goroutines grow %.1f/10 min (limit %.0f)", sm.goroutines.per10m, lim.goroutineSlope))
	}
	return sm
}

// verdict is "flat", "NOT flat: reasons" or, for a run too short to judge a trend,
// "inconclusive" with what the trends would say.
func (sm summary) verdict() string {
	short := sm.span < minTrendSpan
	bad := sm.failures
	if !short {
		bad = append(slices.Clone(bad), sm.trends...)
	}
	var v string
	switch {
	case len(bad) > 0:
		v = "NOT flat: " + strings.Join(bad, "; ")
	case short:
		v = fmt.Sprintf("inconclusive: %s after warm-up, slopes are judged from %s on", fmtDur(sm.span), minTrendSpan)
	default:
		v = "flat"
	}
	if short && len(sm.trends) > 0 {
		v += " (extrapolated trends: " + strings.Join(sm.trends, "; ") + ")"
	}
	return "verdict: " + v
}

func (sm summary) markdown(lim limits) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Summary (after the first %s; %d samples over %s)\n\n", sm.warmup, sm.samples, fmtDur(sm.span))
	if sm.samples >= 3 {
		sm.table(&b)
	}
	fmt.Fprintf(&b, "Requests over the whole run: %d chat ok, %d streams ok, %d streams cut by the client on purpose, %d errors.\n",
		sm.chatOK, sm.streamOK, sm.cuts, sm.errs)
	fmt.Fprintf(&b, "Snapshot reloads: %d manifest changes made, %d snapshots swapped in after the initial one, %d refused.\n",
		sm.writes, sm.swaps, sm.loadErrors)
	fmt.Fprintf(&b, "Thresholds: RSS and heap slope < %.1f MiB/10 min and goroutine slope < %.0f/10 min (judged with >= %s after warm-up), "+
		"goroutine range <= %d, 0 errors, every manifest change swapped in.\n\n",
		lim.memSlopeMiB, lim.goroutineSlope, minTrendSpan, lim.goroutineBand)
	b.WriteString(sm.verdict() + "\n")
	return b.String()
}

// table is min, median, max and slope of each quantity after warm-up.
func (sm summary) table(b *strings.Builder) {
	b.WriteString("| quantity | min | median | max | slope per 10 min |\n|---|---:|---:|---:|---:|\n")
	row := func(name, f string, s series) {
		fmt.Fprintf(b, "| %s | "+f+" | "+f+" | "+f+" | %+.2f |\n", name, s.min, s.median, s.max, s.per10m)
	}
	row("RSS MiB", "%.1f", sm.rss)
	row("heap in use MiB", "%.1f", sm.heap)
	row("goroutines", "%.0f", sm.goroutines)
	row("open fds", "%.0f", sm.fds)
	b.WriteString("\n")
}

var csvHeader = "seconds,rss_bytes,heap_inuse_bytes,goroutines,open_fds,streams_open,chat_ok,chat_err,stream_ok,stream_err,stream_cut,manifest_changes,reloads_total,load_errors_total"

func (s sample) csv() string {
	return fmt.Sprintf("%.0f,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d", s.at.Seconds(), s.rss, s.heap, s.goroutines, s.fds, s.streamsNow,
		s.chatOK, s.chatErr, s.streamOK, s.streamErr, s.cutOff, s.writes, s.reloads, s.loadErrors)
}

func samplesMarkdown(xs []sample, warmup time.Duration) string {
	var b strings.Builder
	b.WriteString("| time | RSS MiB | heap MiB | goroutines | fds | streams open | chat ok | chat err | stream ok | stream err | cut | changes | reloads |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range xs {
		t := fmtDur(s.at)
		if s.at < warmup {
			t += " (warm-up)"
		}
		fmt.Fprintf(&b, "| %s | %.1f | %.1f | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d |\n", t, mib(s.rss), mib(s.heap),
			s.goroutines, s.fds, s.streamsNow, s.chatOK, s.chatErr, s.streamOK, s.streamErr, s.cutOff, s.writes, s.reloads)
	}
	return b.String()
}
