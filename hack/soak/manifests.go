package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The soak reuses hack/bench/manifests (key, provider, route, budgets) and changes two things
// in its copy: the mock's address, and the cache TTL. The load cycles through a bounded set of
// prompts; the TTL must be shorter than one cycle so that requests still miss and reach the
// provider, and short enough that the cache's size levels off well inside the warm-up (the
// bench's 10 m would not).
const (
	benchManifests = "hack/bench/manifests"
	budgetsFile    = "30-budgets.yaml"
	budgetLine     = `daily: "1000.00"`
	// extraRouteFile is added and removed by alternate reloads, so a reload also changes the
	// route table, not only a number.
	extraRouteFile = "25-soak-extra-route.yaml"
)

const extraRoute = `apiVersion: ai.nself.org/v1alpha1
kind: AIRoutePolicy
metadata:
  name: soak-extra
  namespace: bench
spec:
  match:
    models: ["soak-extra-%d"]
  targets:
    - provider: mock-openai
      model: gpt-4o-mini
  strategy: failover
  timeout: 30s
`

// copyManifests writes the bench manifests into dir with the upstream and cache TTL filled in.
func copyManifests(root, dir, upstream string, cacheTTL time.Duration) error {
	src := filepath.Join(root, benchManifests)
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("failed to read %s: %w", src, err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return fmt.Errorf("failed to read manifest: %w", err)
		}
		s := strings.ReplaceAll(string(b), "BENCH_UPSTREAM", upstream)
		s = strings.ReplaceAll(s, "ttl: 10m", "ttl: "+cacheTTL.String())
		if err := os.WriteFile(filepath.Join(dir, e.Name()), []byte(s), 0o600); err != nil {
			return fmt.Errorf("failed to write manifest: %w", err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, budgetsFile))
	if err != nil || !strings.Contains(string(b), budgetLine) {
		return fmt.Errorf("%s/%s no longer has %s, which the reloads bump", benchManifests, budgetsFile, budgetLine)
	}
	return nil
}

// reload makes change n to the folder: the per-user daily budget becomes 1000+n and the extra
// route appears (odd n) or goes (even n). The data plane polls the folder's fingerprint
// (--poll-interval), so a changed file is a new snapshot; files are written under a name the
// fingerprint ignores and renamed, so a poll never reads half a file.
func reload(dir string, n int) error {
	b, err := os.ReadFile(filepath.Join(dir, budgetsFile))
	if err != nil {
		return fmt.Errorf("failed to read %s: %w", budgetsFile, err)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "daily:") {
			lines[i] = strings.Repeat(" ", len(l)-len(strings.TrimLeft(l, " "))) + fmt.Sprintf(`daily: "%d.00"`, 1000+n)
			break
		}
	}
	if err := writeAtomic(filepath.Join(dir, budgetsFile), []byte(strings.Join(lines, "\n"))); err != nil {
		return err
	}
	extra := filepath.Join(dir, extraRouteFile)
	if n%2 == 1 {
		return writeAtomic(extra, fmt.Appendf(nil, extraRoute, n))
	}
	if err := os.Remove(extra); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("failed to remove %s: %w", extraRouteFile, err)
	}
	return nil
}

func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("failed to write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("failed to rename %s: %w", tmp, err)
	}
	return nil
}
