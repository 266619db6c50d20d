package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nself-org/ai-orchestration/dataplane/config"
	"github.com/nself-org/ai-orchestration/dataplane/metrics"
)

// Holder holds the current [Runtime] and swaps in new ones. The swap is one atomic store: a
// request that already loaded the old runtime finishes with it, the next one sees the new one.
type Holder struct {
	cur  atomic.Pointer[Runtime]
	opts Options
	m    *metrics.Metrics
	log  *slog.Logger

	// mu serialises Apply so that two sources cannot interleave build and swap.
	mu       sync.Mutex
	lastErr  string
	lastErrT time.Time
	problems []string
}

// NewHolder returns an empty Holder: [Holder.Load] is nil (and /readyz false) until the first
// successful [Holder.Apply].
func NewHolder(opts Options, m *metrics.Metrics, log *slog.Logger) *Holder {
	if log == nil {
		log = slog.Default()
	}
	return &Holder{opts: opts, m: m, log: log}
}

// Load returns the current runtime, nil before the first load. Call it once per request.
func (h *Holder) Load() *Runtime { return h.cur.Load() }

// Apply builds snap and swaps it in. On error the current runtime keeps serving, the error is
// recorded for /readyz and counted in config_load_errors. A snapshot with the hash already
// loaded changes nothing but clears a recorded error: its source is sound again (a damaged
// Secret was restored).
func (h *Holder) Apply(snap *config.Snapshot) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if cur := h.cur.Load(); cur != nil && snap != nil && snap.Hash != "" && cur.Snapshot.Hash == snap.Hash {
		h.lastErr, h.lastErrT = "", time.Time{}
		return nil
	}
	if snap != nil && snap.Hash != "" {
		want, err := snap.ComputeHash()
		if err != nil {
			return h.failLocked(err)
		}
		if want != snap.Hash {
			return h.failLocked(fmt.Errorf("snapshot hash %s does not match its content", snap.Hash))
		}
	}
	rt, err := Build(snap, h.opts)
	if err != nil {
		return h.failLocked(err)
	}
	rt.LoadedAt = time.Now()
	h.cur.Store(rt)
	h.lastErr, h.lastErrT = "", time.Time{}
	if h.m != nil {
		h.m.SetConfig(snap.Version, snap.Hash)
		h.m.ConfigLoadedAt.Set(float64(rt.LoadedAt.Unix()))
	}
	h.log.Info("configuration loaded", "hash", snap.Hash, "providers", len(snap.Providers),
		"routes", len(snap.Routes), "budgets", len(snap.Budgets), "apiKeys", len(snap.APIKeys))
	return nil
}

// Fail records a snapshot that a source could not even produce (unreadable folder, broken
// YAML, undecodable Secret). The current runtime keeps serving.
func (h *Holder) Fail(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	_ = h.failLocked(err)
}

func (h *Holder) failLocked(err error) error {
	err = fmt.Errorf("failed to load configuration: %w", err)
	h.lastErr, h.lastErrT = err.Error(), time.Now()
	if h.m != nil {
		h.m.ConfigLoadErrors.Inc()
	}
	h.log.Error("configuration refused; the last good one keeps serving", "error", err)
	return err
}

// SetProblems records per-object problems of the last compile (objects left out of the
// snapshot); they are shown by /readyz but do not refuse the snapshot.
func (h *Holder) SetProblems(p []string) {
	h.mu.Lock()
	h.problems = slices.Clone(p)
	h.mu.Unlock()
}

// Status is what /readyz reports.
type Status struct {
	Ready       bool      `json:"ready"`
	Version     string    `json:"version,omitempty"`
	Hash        string    `json:"hash,omitempty"`
	LoadedAt    time.Time `json:"loadedAt,omitzero"`
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
	Problems    []string  `json:"problems,omitempty"`
}

// Status reports readiness and the loaded snapshot.
func (h *Holder) Status() Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := Status{LastError: h.lastErr, LastErrorAt: h.lastErrT, Problems: slices.Clone(h.problems)}
	if rt := h.cur.Load(); rt != nil {
		s.Ready, s.Version, s.Hash, s.LoadedAt = true, rt.Snapshot.Version, rt.Snapshot.Hash, rt.LoadedAt
	}
	return s
}

// DirLoader compiles a folder of manifests into a snapshot (cmd/dataplane injects the
// compiler, which this package must not import). problems are per-object issues: those objects
// are left out and the rest is served; err refuses the whole folder.
type DirLoader func(dir string) (snap *config.Snapshot, problems []string, err error)

// LoadDir runs load once and applies the result.
func (h *Holder) LoadDir(dir string, load DirLoader) error {
	snap, problems, err := load(dir)
	if err != nil {
		h.Fail(err)
		return err
	}
	for _, p := range problems {
		h.log.Warn("manifest problem: object left out of the snapshot", "problem", p)
	}
	h.SetProblems(problems)
	return h.Apply(snap)
}

// WatchDir polls dir every interval and reloads when the content of its manifest files
// changes (content, not mtime: editors and `cp` can keep mtimes, and a hash of a small folder
// costs microseconds). It loads once at start and returns when ctx ends.
func (h *Holder) WatchDir(ctx context.Context, dir string, interval time.Duration, load DirLoader) {
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	last, err := Fingerprint(dir)
	if err != nil {
		h.Fail(err)
	}
	_ = h.LoadDir(dir, load)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fp, err := Fingerprint(dir)
		if err != nil {
			h.Fail(err)
			continue
		}
		if fp == last {
			continue
		}
		last = fp
		_ = h.LoadDir(dir, load)
	}
}

// Fingerprint hashes the names and contents of the manifest files (*.yaml, *.yml, *.json)
// under dir, recursively, in a fixed order.
func Fingerprint(dir string) (string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir // editors' and kubectl's scratch folders
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yaml", ".yml", ".json":
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("failed to list manifests in %s: %w", dir, err)
	}
	slices.Sort(files)
	sum := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the listing: no longer part of the folder
		}
		if err != nil {
			return "", fmt.Errorf("failed to read manifest %s: %w", f, err)
		}
		fmt.Fprintf(sum, "%s\x00%d\x00", f, len(b))
		sum.Write(b)
	}
	return hex.EncodeToString(sum.Sum(nil)), nil
}
