package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nself-org/ai-orchestration/hack/internal/harness"
)

type profileResult struct {
	// target is the data plane profiled: "dataplane", or --profile-bare's bareTarget.
	target                   string
	kind                     string
	load                     loadResult
	conc                     int
	seconds                  time.Duration
	cpuFile, allocFile       string
	cpuFlat, cpuCum          string
	allocSpace, allocObjects string
}

// profileDataplane starts the pprof build of the data plane (see pprofOverlay) on the same
// manifests and mock, drives chat load with wrk, and takes a CPU profile and an allocation
// profile (the delta over the same window) at the same time.
func profileDataplane(ctx context.Context, o options, pm *procs, bins map[string]string, root, tmp, upstream string, w *workload, wrkPath, lua string) (*profileResult, error) {
	port, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	pprofAddr := "127.0.0.1:" + strconv.Itoa(port)
	name, logLevel := "dataplane-pprof", o.dataplaneLog
	if o.profileBare {
		name, logLevel = bareTarget+"-pprof", "warn"
	}
	dp, err := startDataplane(ctx, pm, name, bins["dataplane-pprof"], root, tmp, upstream, o.redisURL, logLevel, "BENCH_PPROF_ADDR="+pprofAddr)
	if err != nil {
		return nil, err
	}
	defer pm.stop(dp)
	logf("profiling the data plane for %s under %s load at c=%d", o.profileFor, o.profileKind, o.profileConc)
	gen := func(d time.Duration) (loadResult, error) {
		if o.profileKind == "stream" {
			return runGo(ctx, true, dp.url, o.profileConc, d, w)
		}
		return runWrk(ctx, wrkPath, lua, dp.url, o.profileConc, d, w)
	}
	if _, err := gen(2 * time.Second); err != nil {
		return nil, fmt.Errorf("profile warm-up failed: %w", err)
	}
	dir := o.resultsDir
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create %s: %w", dir, err)
	}
	stamp := time.Now().UTC().Format("2006-01-02T1504Z")
	if o.redisURL != "" {
		stamp += "-redis"
	}
	if o.profileKind != "chat" {
		stamp += "-" + o.profileKind
	}
	if o.profileBare {
		stamp += "-bare"
	}
	res := &profileResult{target: strings.TrimSuffix(name, "-pprof"), kind: o.profileKind, conc: o.profileConc, seconds: o.profileFor,
		cpuFile: filepath.Join(dir, stamp+"-cpu.pprof"), allocFile: filepath.Join(dir, stamp+"-allocs.pprof")}
	secs := strconv.Itoa(int(o.profileFor.Seconds()))
	var wg sync.WaitGroup
	var loadErr, cpuErr, allocErr error
	wg.Go(func() {
		res.load, loadErr = gen(o.profileFor + 2*time.Second)
	})
	wg.Go(func() {
		cpuErr = fetch(ctx, "http://"+pprofAddr+"/debug/pprof/profile?seconds="+secs, res.cpuFile)
	})
	wg.Go(func() {
		allocErr = fetch(ctx, "http://"+pprofAddr+"/debug/pprof/allocs?seconds="+secs, res.allocFile)
	})
	wg.Wait()
	for _, err := range []error{loadErr, cpuErr, allocErr} {
		if err != nil {
			return nil, err
		}
	}
	top := func(args ...string) string {
		out, err := exec.CommandContext(ctx, "go", append([]string{"tool", "pprof", "-top", "-nodecount=25"}, args...)...).Output()
		if err != nil {
			return "pprof failed: " + err.Error()
		}
		return trimPprofHeader(string(out))
	}
	res.cpuFlat = top(res.cpuFile)
	res.cpuCum = top("-cum", res.cpuFile)
	res.allocSpace = top("-sample_index=alloc_space", res.allocFile)
	res.allocObjects = top("-sample_index=alloc_objects", res.allocFile)
	return res, nil
}

// trimPprofHeader drops pprof's file/build lines, keeping the totals and the table.
func trimPprofHeader(s string) string {
	var keep []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.HasPrefix(line, "File:") || strings.HasPrefix(line, "Build ID:") || strings.HasPrefix(line, "Type:") || strings.HasPrefix(line, "Time:") {
			continue
		}
		keep = append(keep, line)
	}
	return strings.TrimSpace(strings.Join(keep, "\n"))
}

func fetch(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("failed to fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("failed to fetch %s: HTTP %d: %s", url, resp.StatusCode, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("failed to create %s: %w", path, err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return fmt.Errorf("failed to save %s: %w", path, err)
	}
	return f.Close()
}

func (p *profileResult) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Profile of %s (%s, c=%d, %s; %.0f req/s, p50 %s during the profile)\n\n",
		p.target, p.kind, p.conc, p.seconds, p.load.rps, us(p.load.p50))
	fmt.Fprintf(&b, "Profiles: `%s`, `%s` (`go tool pprof -top FILE`).\n\n", filepath.Base(p.cpuFile), filepath.Base(p.allocFile))
	for _, s := range []struct{ title, body string }{
		{"CPU, flat", p.cpuFlat}, {"CPU, cumulative", p.cpuCum},
		{"Allocations, bytes", p.allocSpace}, {"Allocations, objects", p.allocObjects},
	} {
		fmt.Fprintf(&b, "%s:\n\n```\n%s\n```\n\n", s.title, s.body)
	}
	return b.String()
}

// holdProfile is what the pprof build of the data plane held while the streams were open.
type holdProfile struct {
	open                        int64
	heapFile, goroutineFile     string
	stacksFile, smapsFile       string
	heapTop, goroutineTop       string
	memStats                    string
	goroutines, goroutineGroups int
	// proc is the process's own view when the profiles were taken: threads and the
	// smaps_rollup lines (Rss, Anonymous…), to tell the runtime's memory from what it does not
	// count (thread stacks, the C library's).
	proc string
}

// profileHeld waits until n streams are open through the data plane at pprofAddr (or most of
// the hold has passed), then saves its in-use heap (after a GC), its goroutine profile and the
// goroutines' stacks as text, and the runtime's memory statistics, into hr.prof.
func profileHeld(ctx context.Context, o options, root, pprofAddr string, pid, n int, hr *holdResult) error {
	deadline := time.Now().Add(o.holdFor * 4 / 5)
	for streamsOpen.Load() < int64(n) && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	dir := o.resultsDir
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("failed to create %s: %w", dir, err)
	}
	stamp := time.Now().UTC().Format("2006-01-02T150405Z") + "-hold" + strconv.Itoa(n)
	p := &holdProfile{open: streamsOpen.Load(),
		heapFile: filepath.Join(dir, stamp+"-heap.pprof"), goroutineFile: filepath.Join(dir, stamp+"-goroutine.pprof"),
		stacksFile: filepath.Join(dir, stamp+"-goroutines.txt")}
	p.proc = procMemory(pid)
	// The whole map too, to tell the Go heap's arenas from thread stacks and the C library's.
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps"); err == nil {
		p.smapsFile = filepath.Join(dir, stamp+"-smaps.txt")
		if err := os.WriteFile(p.smapsFile, b, 0o644); err != nil {
			return fmt.Errorf("failed to write %s: %w", p.smapsFile, err)
		}
	}
	base := "http://" + pprofAddr + "/debug/pprof/"
	memFile := filepath.Join(dir, stamp+"-heap.txt")
	// Goroutines first: they are quick to take, and the heap profile (a GC and its encoding)
	// takes long enough on a busy machine for the first streams to end meanwhile.
	for _, f := range []struct{ url, path string }{
		{base + "goroutine", p.goroutineFile}, {base + "goroutine?debug=1", p.stacksFile},
		{base + "heap?debug=1", memFile}, {base + "heap?gc=1", p.heapFile},
	} {
		if err := fetch(ctx, f.url, f.path); err != nil {
			return err
		}
	}
	top := func(args ...string) string {
		out, err := exec.CommandContext(ctx, "go", append([]string{"tool", "pprof", "-top", "-nodecount=30"}, args...)...).Output()
		if err != nil {
			return "pprof failed: " + err.Error()
		}
		return trimPprofHeader(string(out))
	}
	p.heapTop = top("-sample_index=inuse_space", p.heapFile)
	p.goroutineTop = top("-cum", p.goroutineFile)
	if b, err := os.ReadFile(memFile); err == nil {
		// The text heap profile ends with runtime.MemStats; the stack and heap lines say how the
		// process's own memory splits.
		var keep []string
		for line := range strings.SplitSeq(string(b), "\n") {
			for _, k := range []string{"# HeapAlloc ", "# HeapInuse ", "# HeapIdle ", "# HeapReleased ", "# HeapObjects ", "# Stack ", "# MSpan ", "# MCache ", "# BuckHashSys ", "# GCSys ", "# OtherSys ", "# NextGC ", "# Sys ", "# NumGC "} {
				if strings.HasPrefix(line, k) {
					keep = append(keep, strings.TrimPrefix(line, "# "))
				}
			}
		}
		p.memStats = strings.Join(keep, "\n")
	}
	if b, err := os.ReadFile(p.stacksFile); err == nil {
		// "goroutine profile: total N", then one "COUNT @ PCs" line per distinct stack.
		for line := range strings.SplitSeq(string(b), "\n") {
			if t, ok := strings.CutPrefix(line, "goroutine profile: total "); ok {
				p.goroutines, _ = strconv.Atoi(strings.TrimSpace(t))
			} else if strings.Contains(line, " @ 0x") {
				p.goroutineGroups++
			}
		}
	}
	hr.prof = p
	logf("    profiles with %d streams open: %s, %s, %s (%d goroutines)", p.open, filepath.Base(p.heapFile),
		filepath.Base(p.goroutineFile), filepath.Base(p.stacksFile), p.goroutines)
	return nil
}

func (p *holdProfile) markdown(target string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#### %s with %d streams open: heap and goroutines\n\n", target, p.open)
	fmt.Fprintf(&b, "Profiles: `%s`, `%s`; stacks `%s`. %d goroutines in %d distinct stacks.\n\n",
		filepath.Base(p.heapFile), filepath.Base(p.goroutineFile), filepath.Base(p.stacksFile), p.goroutines, p.goroutineGroups)
	if p.smapsFile != "" {
		fmt.Fprintf(&b, "Memory map (/proc/PID/smaps) then: `%s`.\n\n", filepath.Base(p.smapsFile))
	}
	for _, s := range []struct{ title, body string }{
		{"runtime.MemStats", p.memStats}, {"The process (/proc/PID/status Threads, smaps_rollup), just before", p.proc},
		{"In-use heap (after a GC)", p.heapTop}, {"Goroutines, cumulative", p.goroutineTop},
	} {
		fmt.Fprintf(&b, "%s:\n\n```\n%s\n```\n\n", s.title, s.body)
	}
	return b.String()
}

// procMemory is the thread count and the memory lines of /proc/PID/smaps_rollup of a process.
func procMemory(pid int) string {
	var keep []string
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if strings.HasPrefix(line, "Threads:") {
				keep = append(keep, line)
			}
		}
	}
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			for _, k := range []string{"Rss:", "Anonymous:", "AnonHugePages:", "Private_Clean:", "Shared_Clean:"} {
				if strings.HasPrefix(line, k) {
					keep = append(keep, line)
				}
			}
		}
	}
	return strings.Join(keep, "\n")
}
