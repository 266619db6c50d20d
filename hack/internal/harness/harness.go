// Package harness starts and stops the programs that hack/bench and hack/soak measure, and reads
// their memory from /proc. Each program runs in its own process group, so a stop reaches all of
// it and a Ctrl-C on the terminal reaches only the harness, which then stops them in order.
package harness

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ModuleRoot is the folder holding go.mod, so a harness runs from anywhere inside the repository.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("failed to run go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the ai-orchestration module: run from the repository")
	}
	return filepath.Dir(mod), nil
}

// FreePort is a port of 127.0.0.1 free at the time of the call.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("failed to find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Proc is one started program.
type Proc struct {
	Name string
	PID  int
	// Log is the file its stderr (and stdout, unless Start was given a writer) goes to.
	Log string
	// Done is closed once the process has exited.
	Done chan struct{}
}

// Group is the programs a harness started, to stop exactly those.
type Group struct{ list []*Proc }

// Start runs bin with args and env added to the harness's environment. Its stdout goes to
// stdout, or to logPath when stdout is nil.
func (g *Group) Start(name, bin string, stdout io.Writer, logPath string, env []string, args ...string) (*Proc, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("failed to create %s: %w", logPath, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = stdout, lf
	if stdout == nil {
		cmd.Stdout = lf
	}
	if err := cmd.Start(); err != nil {
		_ = lf.Close()
		return nil, fmt.Errorf("failed to start %s: %w", name, err)
	}
	p := &Proc{Name: name, PID: cmd.Process.Pid, Log: logPath, Done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = lf.Close()
		close(p.Done)
	}()
	g.list = append(g.list, p)
	return p, nil
}

// killAfter is how long a stopped program may take to exit; the data plane drains in-flight
// requests for up to 25 s after SIGTERM.
const killAfter = 30 * time.Second

// StopAll sends SIGTERM to every started process group and waits; what has not exited after
// 30 s is killed.
func (g *Group) StopAll() {
	for _, p := range g.list {
		_ = syscall.Kill(-p.PID, syscall.SIGTERM)
	}
	deadline := time.After(killAfter)
	for _, p := range g.list {
		select {
		case <-p.Done:
		case <-deadline:
			_ = syscall.Kill(-p.PID, syscall.SIGKILL)
			<-p.Done
		}
	}
	g.list = nil
}

// Stop stops one started program the same way.
func (g *Group) Stop(p *Proc) {
	_ = syscall.Kill(-p.PID, syscall.SIGTERM)
	select {
	case <-p.Done:
	case <-time.After(killAfter):
		_ = syscall.Kill(-p.PID, syscall.SIGKILL)
		<-p.Done
	}
	for i, q := range g.list {
		if q == p {
			g.list = append(g.list[:i], g.list[i+1:]...)
			break
		}
	}
}

// StatusBytes reads a "Field:   N kB" line of /proc/PID/status (field with its colon, e.g.
// "VmRSS:"), in bytes; 0 when the process or the field is gone.
func StatusBytes(pid int, field string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// Tail is the last 4 000 bytes of a log, for an error message.
func Tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
