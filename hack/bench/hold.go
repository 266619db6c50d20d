package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nself-org/ai-orchestration/hack/internal/harness"
)

// holdResult is one target of the open-streams test.
type holdResult struct {
	target          string
	streams         int
	completed, errs int64
	ttfb50, ttfb99  time.Duration
	idleRSS, peak   int64
	// maxOpen is the most streams seen open at once (first byte received, not ended);
	// anonAtMax and rssAtMax are the process's RssAnon and VmRSS sampled then.
	maxOpen             int64
	anonAtMax, rssAtMax int64
	// prof is the heap and goroutine profile taken while the streams were open (pprof build only).
	prof *holdProfile
}

type holdReport struct {
	n    int
	hold time.Duration
	// tls says the mock served HTTPS with HTTP/2 (--hold-tls).
	tls     bool
	results []holdResult
}

// holdStreams holds n streams open at once for about hold each, through the floor and the data
// plane in front of a slow mock (its own process: 50 chunks spread over hold), and reports each
// process's peak RSS — the memory target is stated with 1 000 open streams.
//
// With --hold-tls the mock serves HTTPS with HTTP/2 on a certificate it makes at start, which
// the floor and the data plane both trust through SSL_CERT_FILE (Go reads it on Linux in place
// of the system roots), so neither needs an option of its own: the held streams then share a
// few upstream connections, as with a hosted provider, instead of holding one each.
func holdStreams(ctx context.Context, o options, pm *procs, bins map[string]string, root, tmp string, w *workload) (*holdReport, error) {
	delay := o.holdFor / 50
	mockArgs := []string{"--addr", "127.0.0.1:0", "--kind", "openai", "--chunks", "50", "--chunk-delay", delay.String()}
	var env []string
	if o.holdTLS {
		cert := filepath.Join(tmp, "slow-mock-cert.pem")
		mockArgs = append(mockArgs, "--tls-cert-out", cert)
		env = []string{"SSL_CERT_FILE=" + cert}
	}
	mock, err := pm.startListening(ctx, "slow-mock", bins["mockupstream"], mockArgs...)
	if err != nil {
		return nil, err
	}
	defer pm.stop(mock)
	if o.holdTLS && !strings.HasPrefix(mock.url, "https://") {
		return nil, fmt.Errorf("the slow mock serves %s, want https", mock.url)
	}
	floor, err := pm.startListeningEnv(ctx, "slow-floor", bins["floor"], env, "--addr", "127.0.0.1:0", "--upstream", mock.url)
	if err != nil {
		return nil, err
	}
	defer pm.stop(floor)
	targets := []*proc{floor}
	dp, err := startDataplane(ctx, pm, "slow-dataplane", bins["dataplane"], root, tmp, mock.url, "", o.dataplaneLog, env...)
	if err != nil {
		return nil, err
	}
	defer pm.stop(dp)
	targets = append(targets, dp)
	if name, bin := compareTarget(bins); bin != "" {
		dpc, err := startDataplane(ctx, pm, "slow-"+name, bin, root, tmp, mock.url, "", o.dataplaneLog, env...)
		if err != nil {
			return nil, err
		}
		defer pm.stop(dpc)
		targets = append(targets, dpc)
	}
	if o.redisURL != "" {
		dpr, err := startDataplane(ctx, pm, "slow-dataplane+redis", bins["dataplane"], root, tmp, mock.url, o.redisURL, o.dataplaneLog, env...)
		if err != nil {
			return nil, err
		}
		defer pm.stop(dpr)
		targets = append(targets, dpr)
	}
	pprofAddr := ""
	if o.holdProfile {
		// The shipped binary is measured above; the pprof build runs as one more target so that
		// its profiles show where a held stream's memory goes.
		port, err := harness.FreePort()
		if err != nil {
			return nil, err
		}
		pprofAddr = "127.0.0.1:" + strconv.Itoa(port)
		dpp, err := startDataplane(ctx, pm, "slow-dataplane-pprof", bins["dataplane-pprof"], root, tmp, mock.url, o.redisURL, o.dataplaneLog,
			append([]string{"BENCH_PPROF_ADDR=" + pprofAddr, "BENCH_MEMPROFILE_RATE=2048"}, env...)...)
		if err != nil {
			return nil, err
		}
		defer pm.stop(dpp)
		targets = append(targets, dpp)
	}
	rep := &holdReport{n: o.holdStreams, hold: o.holdFor, tls: o.holdTLS}
	for _, t := range targets {
		// Warm up (tokenizer, connection pools) with a few streams, then measure from there.
		if _, err := runGo(ctx, true, t.url, 4, o.holdFor+time.Second, w); err != nil {
			return nil, fmt.Errorf("warm-up of %s failed: %w", t.Name, err)
		}
		idle := t.statusKB("VmRSS:")
		t.resetPeak()
		logf("holding %d streams open through %s for %s", o.holdStreams, t.Name, o.holdFor)
		// One stream per worker: the cell ends just after the first streams complete. Meanwhile
		// sample how many are open and the memory when the most were.
		hr := holdResult{target: strings.TrimPrefix(t.Name, "slow-"), streams: o.holdStreams, idleRSS: idle}
		done := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				if n := streamsOpen.Load(); n >= hr.maxOpen {
					hr.maxOpen, hr.anonAtMax, hr.rssAtMax = n, t.statusKB("RssAnon:"), t.statusKB("VmRSS:")
				}
			}
		}()
		profiled := make(chan error, 1)
		if pprofAddr != "" && strings.HasSuffix(t.Name, "-pprof") {
			go func() { profiled <- profileHeld(ctx, o, root, pprofAddr, t.PID, o.holdStreams, &hr) }()
		} else {
			profiled <- nil
		}
		res, err := runGo(ctx, true, t.url, o.holdStreams, o.holdFor+o.holdFor/2, w)
		close(done)
		<-sampled
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		if err := <-profiled; err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		hr.completed, hr.errs, hr.ttfb50, hr.ttfb99, hr.peak = res.requests, res.errors, res.ttfb50, res.ttfb99, t.peakRSS()
		rep.results = append(rep.results, hr)
		logf("    peak RSS %.1f MiB, at most %d open at once (RSS %.1f MiB, anonymous %.1f MiB then), %d completed, %d errors",
			float64(hr.peak)/(1<<20), hr.maxOpen, float64(hr.rssAtMax)/(1<<20), float64(hr.anonAtMax)/(1<<20), res.requests, res.errors)
	}
	return rep, nil
}

func (r *holdReport) markdown() string {
	var b strings.Builder
	upstream := "HTTP/1.1: one upstream connection per stream"
	if r.tls {
		upstream = "HTTPS with HTTP/2: the streams share a few upstream connections"
	}
	fmt.Fprintf(&b, "### %d streams held open at once (mock: 50 chunks over %s; %s)\n\n", r.n, r.hold, upstream)
	b.WriteString("| target | streams completed | errors | most open at once | TTFB p50 | TTFB p99 | RSS before MiB | peak RSS MiB | RSS / anonymous RSS with the most open, MiB | per stream KiB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, x := range r.results {
		per := float64(x.peak-x.idleRSS) / 1024 / float64(max(x.streams, 1))
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %s | %s | %.1f | %.1f | %.1f / %.1f | %.0f |\n", x.target, x.completed, x.errs, x.maxOpen,
			us(x.ttfb50), us(x.ttfb99), float64(x.idleRSS)/(1<<20), float64(x.peak)/(1<<20),
			float64(x.rssAtMax)/(1<<20), float64(x.anonAtMax)/(1<<20), per)
	}
	for _, x := range r.results {
		if x.prof != nil {
			b.WriteString("\n" + x.prof.markdown(x.target))
		}
	}
	b.WriteString("\nRSS counts the pages of the executable that were touched (tens of MiB for the data plane's binary, depending on the page cache); anonymous RSS is the process's own memory.\n")
	for _, x := range r.results {
		if strings.HasPrefix(x.target, "dataplane") && !strings.HasSuffix(x.target, "-pprof") && !strings.Contains(x.target, "@") { // not --compare-rev's
			ok := "yes"
			if x.peak >= 100<<20 || x.errs > 0 {
				ok = "**no**"
			}
			fmt.Fprintf(&b, "\nTarget: %s RSS < 100 MiB with %s open streams: %.1f MiB, %d errors — met: %s\n", x.target, strconv.Itoa(r.n), float64(x.peak)/(1<<20), x.errs, ok)
		}
	}
	return b.String()
}
