package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nself-org/ai-orchestration/hack/internal/harness"
)

// pprofOverlay adds net/http/pprof to a second data plane binary, used only for --profile, so
// the binary that is measured is exactly cmd/dataplane as shipped.
const pprofOverlay = "hack/bench/overlay/pprof.go.txt"

// dataplaneBuildFlags are the flags the Makefile builds the shipped data plane with
// (DATAPLANE_BUILD_FLAGS), so that the binary measured here is the one that ships; a test checks
// that the two agree.
var dataplaneBuildFlags = []string{"-tags=nomsgpack"}

// build compiles the three programs into dir (a measured process must be the program itself,
// not `go run`, whose child would escape the CPU and memory accounting).
func build(ctx context.Context, root, dir string, profile bool) (map[string]string, error) {
	bins := map[string]string{
		"mockupstream": "./cmd/mockupstream",
		"floor":        "./hack/bench/floor",
		"dataplane":    "./cmd/dataplane",
	}
	out := map[string]string{}
	for name, pkg := range bins {
		path := filepath.Join(dir, name)
		var flags []string
		if name == "dataplane" {
			flags = dataplaneBuildFlags
		}
		if err := goBuild(ctx, root, path, pkg, flags...); err != nil {
			return nil, err
		}
		out[name] = path
	}
	if profile {
		overlay := map[string]map[string]string{"Replace": {
			filepath.Join(root, "cmd", "dataplane", "zz_bench_pprof.go"): filepath.Join(root, pprofOverlay),
		}}
		b, _ := json.Marshal(overlay)
		of := filepath.Join(dir, "overlay.json")
		if err := os.WriteFile(of, b, 0o600); err != nil {
			return nil, fmt.Errorf("failed to write the build overlay: %w", err)
		}
		path := filepath.Join(dir, "dataplane-pprof")
		if err := goBuild(ctx, root, path, "./cmd/dataplane", append([]string{"-overlay", of}, dataplaneBuildFlags...)...); err != nil {
			return nil, err
		}
		out["dataplane-pprof"] = path
	}
	return out, nil
}

// compareKey is the bins entry of the data plane built by --compare-rev: "dataplane@<hash>".
const compareKey = "dataplane@"

// buildRevision builds the data plane of git revision rev (with the shipped flags) from an
// exported copy of that revision's tree, so the working tree and the repository stay as they
// are, and adds it to bins as dataplane@<short hash>.
func buildRevision(ctx context.Context, root, dir, rev string, bins map[string]string) error {
	out, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short", rev+"^{commit}").Output()
	if err != nil {
		return fmt.Errorf("--compare-rev %q is not a commit of this repository: %w", rev, err)
	}
	hash := strings.TrimSpace(string(out))
	src := filepath.Join(dir, "src-"+hash)
	if err := os.MkdirAll(src, 0o700); err != nil {
		return err
	}
	logf("building the data plane of %s (%s)", rev, hash)
	archive := exec.CommandContext(ctx, "git", "-C", root, "archive", "--format=tar", hash)
	untar := exec.CommandContext(ctx, "tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return err
	}
	untar.Stdin = pipe
	if err := untar.Start(); err != nil {
		return fmt.Errorf("failed to start tar: %w", err)
	}
	if err := archive.Run(); err != nil {
		_ = untar.Wait()
		return fmt.Errorf("failed to export %s: %w", hash, err)
	}
	if err := untar.Wait(); err != nil {
		return fmt.Errorf("failed to unpack %s: %w", hash, err)
	}
	path := filepath.Join(dir, "dataplane-"+hash)
	if err := goBuild(ctx, src, path, "./cmd/dataplane", dataplaneBuildFlags...); err != nil {
		return err
	}
	bins[compareKey+hash] = path
	return nil
}

// compareTarget returns the name and binary of the --compare-rev data plane, if one was built.
func compareTarget(bins map[string]string) (name, bin string) {
	for k, v := range bins {
		if strings.HasPrefix(k, compareKey) {
			return k, v
		}
	}
	return "", ""
}

func goBuild(ctx context.Context, root, out, pkg string, extra ...string) error {
	args := append([]string{"build", "-o", out}, extra...)
	args = append(args, pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("failed to build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// ensureWrk returns wrk's path, installing Debian's package when it is missing.
func ensureWrk(ctx context.Context) (string, error) {
	if p, err := exec.LookPath("wrk"); err == nil {
		return p, nil
	}
	logf("wrk not found; installing it with apt-get")
	sudo := []string{}
	if os.Geteuid() != 0 {
		sudo = []string{"sudo"}
	}
	install := func() error {
		args := append(append([]string{}, sudo...), "apt-get", "install", "-y", "-qq", "wrk")
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		b, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, b)
		}
		return nil
	}
	if err := install(); err != nil {
		args := append(append([]string{}, sudo...), "apt-get", "update", "-qq")
		_ = exec.CommandContext(ctx, args[0], args[1:]...).Run()
		if err := install(); err != nil {
			return "", fmt.Errorf("failed to install wrk (or run with --wrk=false): %w", err)
		}
	}
	return exec.LookPath("wrk")
}

// proc is one started program and, for a server, its base URL.
type proc struct {
	*harness.Proc
	url string
}

type procs struct{ harness.Group }

func (pm *procs) start(name, bin string, stdout io.Writer, logPath string, env []string, args ...string) (*proc, error) {
	p, err := pm.Group.Start(name, bin, stdout, logPath, env, args...)
	if err != nil {
		return nil, err
	}
	return &proc{Proc: p}, nil
}

// startListening starts a program that prints "listening on http://ADDR" (or https) once it
// serves.
func (pm *procs) startListening(ctx context.Context, name, bin string, args ...string) (*proc, error) {
	return pm.startListeningEnv(ctx, name, bin, nil, args...)
}

// startListeningEnv is startListening with env added to the program's environment.
func (pm *procs) startListeningEnv(ctx context.Context, name, bin string, env []string, args ...string) (*proc, error) {
	pr, pw := io.Pipe()
	p, err := pm.start(name, bin, pw, filepath.Join(filepath.Dir(bin), name+".log"), env, args...)
	if err != nil {
		return nil, err
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				select {
				case lines <- u:
				default:
				}
			}
		}
	}()
	select {
	case u := <-lines:
		p.url = strings.TrimSpace(u)
		return p, nil
	case <-p.Done:
		return nil, fmt.Errorf("%s exited at start; see %s", name, p.Log)
	case <-time.After(15 * time.Second):
		return nil, fmt.Errorf("%s did not start listening within 15 s", name)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (pm *procs) stop(p *proc) { pm.Group.Stop(p.Proc) }

// bareTarget is the data plane --bare adds: the manifests' key and provider with
// hack/bench/manifests-bare's route (no rate limit, budget, guardrail or cache) and no access log.
const bareTarget = "dataplane-bare"

// manifestFiles lists the manifests the data plane called name runs on.
func manifestFiles(root, name string) ([]string, error) {
	dirs := []string{filepath.Join(root, "hack", "bench", "manifests")}
	keep := func(string) bool { return true }
	if name == bareTarget || name == bareTarget+"-pprof" {
		dirs = append(dirs, filepath.Join(root, "hack", "bench", "manifests-bare"))
		keep = func(path string) bool {
			base := filepath.Base(path)
			return filepath.Base(filepath.Dir(path)) == "manifests-bare" || base == "00-keys.yaml" || base == "10-provider.yaml"
		}
	}
	var files []string
	for _, dir := range dirs {
		paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			return nil, err
		}
		for _, p := range paths {
			if keep(p) {
				files = append(files, p)
			}
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no manifests for %s under %s", name, dirs[0])
	}
	return files, nil
}

// startDataplane copies its manifests ([manifestFiles]) to a fresh folder with the mock's address
// filled in, starts the data plane on it and waits until /readyz says the snapshot is loaded.
func startDataplane(ctx context.Context, pm *procs, name, bin, root, tmp, upstream, redisURL, logLevel string, env ...string) (*proc, error) {
	dir := filepath.Join(tmp, "manifests-"+strings.NewReplacer("+", "-").Replace(name))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create %s: %w", dir, err)
	}
	files, err := manifestFiles(root, name)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("failed to read manifest: %w", err)
		}
		b = []byte(strings.ReplaceAll(string(b), "BENCH_UPSTREAM", upstream))
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o600); err != nil {
			return nil, fmt.Errorf("failed to write manifest: %w", err)
		}
	}
	port, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := []string{"--manifests", dir, "--addr", addr, "--log-level", logLevel, "--poll-interval", "5s"}
	if redisURL != "" {
		args = append(args, "--redis-url", redisURL)
	}
	logPath := filepath.Join(tmp, strings.NewReplacer("+", "-").Replace(name)+".log")
	p, err := pm.start(name, bin, nil, logPath, env, args...)
	if err != nil {
		return nil, err
	}
	p.url = "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case <-p.Done:
			return nil, fmt.Errorf("%s exited at start:\n%s", name, harness.Tail(logPath))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s not ready within 30 s:\n%s", name, harness.Tail(logPath))
		}
	}
}

// clockTick is USER_HZ, the unit of utime/stime in /proc/PID/stat (100 on every Linux ABI Go
// supports).
const clockTick = 10 * time.Millisecond

// cpuOf is the CPU time (user + system) a process has used so far; 0 when unknown.
func cpuOf(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may contain spaces; the fields after its ')' are fixed.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * clockTick
}

func (p *proc) cpu() time.Duration { return cpuOf(p.PID) }

// ioCalls is a process's count of read- and write-family system calls (/proc/PID/io `syscr`,
// `syscw`): read, readv, pread64, preadv and write, writev, pwrite64, pwritev (sendfile and
// copy_file_range count as both). A call counts whether it moves data or fails with EAGAIN, so
// the reads Go's netpoller makes on a not-yet-readable socket count too. Calls outside the VFS
// read/write paths do not: epoll_wait, futex, accept4, connect, setsockopt, nanosleep, and
// sendmsg/recvmsg/sendto/recvfrom. Go's TCP connections read and write with read(2)/write(2),
// so for an HTTP proxy these are its socket and log I/O calls.
type ioCalls struct{ reads, writes int64 }

// parseProcIO reads the syscr and syscw lines of a /proc/PID/io file.
func parseProcIO(b []byte) (ioCalls, error) {
	var c ioCalls
	seen := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "syscr" && k != "syscw") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return ioCalls{}, fmt.Errorf("malformed /proc io line %q: %w", line, err)
		}
		if k == "syscr" {
			c.reads = n
		} else {
			c.writes = n
		}
		seen++
	}
	if seen != 2 {
		return ioCalls{}, errors.New("malformed /proc io: want both syscr and syscw")
	}
	return c, nil
}

// ioCallsOf is the process's I/O system calls so far. /proc/PID/io (unlike /proc/PID/status) is
// the whole thread group: the kernel sums every live thread and keeps the counts of exited ones,
// so one file is the process. Zero when unknown (the process is gone, or not ours to read).
func ioCallsOf(pid int) ioCalls {
	if pid <= 0 {
		return ioCalls{}
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return ioCalls{}
	}
	c, _ := parseProcIO(b)
	return c
}

// ctxSwitches counts a thread's context switches: voluntary (it blocked: futex, epoll_wait
// with nothing ready, nanosleep) and involuntary (the scheduler preempted it, which on a shared
// machine also counts other processes' demand, or it called sched_yield).
type ctxSwitches struct{ voluntary, involuntary int64 }

// parseCtxSwitches reads the voluntary_ctxt_switches and nonvoluntary_ctxt_switches lines of a
// /proc/PID/task/TID/status file.
func parseCtxSwitches(b []byte) (ctxSwitches, error) {
	var c ctxSwitches
	seen := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "voluntary_ctxt_switches" && k != "nonvoluntary_ctxt_switches") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return ctxSwitches{}, fmt.Errorf("malformed /proc status line %q: %w", line, err)
		}
		if k == "voluntary_ctxt_switches" {
			c.voluntary = n
		} else {
			c.involuntary = n
		}
		seen++
	}
	if seen != 2 {
		return ctxSwitches{}, errors.New("malformed /proc status: want both context switch counts")
	}
	return c, nil
}

// ctxSwitchesOf reads every thread's context switches, by thread id. The counts must be read
// per thread: /proc/PID/status and /proc/PID/schedstat show only the main thread (the kernel
// prints that one task's nvcsw/nivcsw and sched_info), while a Go program does its work on
// the runtime's other threads, and no per-process file sums them.
func ctxSwitchesOf(pid int) map[int]ctxSwitches {
	if pid <= 0 {
		return nil
	}
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := make(map[int]ctxSwitches, len(entries))
	for _, e := range entries {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "status"))
		if err != nil {
			continue // the thread exited between the listing and the read
		}
		if c, err := parseCtxSwitches(b); err == nil {
			out[tid] = c
		}
	}
	return out
}

// ctxSwitchDelta sums, over the threads alive at the end, what each did since the start (all
// of it for a thread started since). Subtracting per thread keeps the sum from going negative
// when a thread exits in between (Go rarely retires an OS thread); that thread's switches
// during the cell are then missed, a small undercount. A count below its earlier reading is a
// new thread that was given a retired one's id, and counts whole.
func ctxSwitchDelta(before, after map[int]ctxSwitches) ctxSwitches {
	var d ctxSwitches
	for tid, a := range after {
		b := before[tid]
		if a.voluntary < b.voluntary || a.involuntary < b.involuntary {
			b = ctxSwitches{}
		}
		d.voluntary += a.voluntary - b.voluntary
		d.involuntary += a.involuntary - b.involuntary
	}
	return d
}

// counters is what a cell reads from a target before and after it, besides CPU.
type counters struct {
	io  ioCalls
	ctx map[int]ctxSwitches
}

func (p *proc) counters() counters { return counters{io: ioCallsOf(p.PID), ctx: ctxSwitchesOf(p.PID)} }

// resetPeak resets the process's peak RSS (VmHWM) so the next reading is the cell's own peak
// (Linux ≥ 4.0; needs to own the process, which we do).
func (p *proc) resetPeak() {
	_ = os.WriteFile("/proc/"+strconv.Itoa(p.PID)+"/clear_refs", []byte("5"), 0)
}

// peakRSS is VmHWM in bytes.
func (p *proc) peakRSS() int64 { return p.statusKB("VmHWM:") }

// statusKB reads a "Field:   N kB" line of /proc/PID/status, in bytes.
func (p *proc) statusKB(field string) int64 { return harness.StatusBytes(p.PID, field) }

// redisProcessID asks the server for its pid (INFO server), to account its CPU too.
func redisProcessID(ctx context.Context, url string) (int, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return 0, fmt.Errorf("failed to parse --redis-url: %w", err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return 0, fmt.Errorf("failed to query redis: %w", err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("no process_id in INFO server")
}
