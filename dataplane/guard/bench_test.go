package guard

import (
	"strconv"
	"testing"

	"github.com/nself-org/ai-orchestration/dataplane/config"

	"github.com/nself-org/ai-orchestration/internal/loadtext"
)

// loadText is the load harness's prose (hack/bench): a fixed 1 KiB system message and a
// 512 B user message made unique per request.
func loadText(n, seed int) string { return loadtext.Prose(n, seed) }

var (
	loadSystem = loadText(1024, 0)
	loadFiller = loadText(512-32, 3)
)

func loadUser(i int) string { return "Request " + strconv.Itoa(i) + ": " + loadFiller }

// BenchmarkScanSystemAndUserUnique scans both messages of a hack/bench request with the memo
// bypassed: the scanner's own speed.
func BenchmarkScanSystemAndUserUnique(b *testing.B) {
	d := NewDetector(DetectorOptions{})
	user := loadUser(1)
	b.SetBytes(int64(len(loadSystem) + len(user)))
	b.ReportAllocs()
	for b.Loop() {
		d.redact(loadSystem, maskAll)
		d.redact(user, maskAll)
	}
}

// BenchmarkScanSystemAndUserRepeatedPrefix is the request path: the route's input guard checks
// the fixed system message (memoised after the first request) and a new user message.
func BenchmarkScanSystemAndUserRepeatedPrefix(b *testing.B) {
	e := NewEngine(Options{})
	g := config.Guardrails{PII: &config.PIIGuard{Action: config.GuardRedact, ApplyTo: []string{ApplyInput}}}
	users := make([]string, 4096)
	for i := range users {
		users[i] = loadUser(i)
	}
	ctx := b.Context()
	b.SetBytes(int64(len(loadSystem) + len(users[0])))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		for _, m := range []string{loadSystem, users[i%len(users)]} {
			res, err := e.CheckInput(ctx, g, m)
			if err != nil || res.Redacted != m {
				b.Fatal(err, res.Reason)
			}
		}
	}
}

// BenchmarkScanRepeated is a message seen before (a system prompt, conversation history).
func BenchmarkScanRepeated(b *testing.B) {
	d := NewDetector(DetectorOptions{})
	b.SetBytes(int64(len(loadSystem)))
	b.ReportAllocs()
	for b.Loop() {
		d.Redact(loadSystem)
	}
}

// BenchmarkScanPII2KB scans the PII-rich prompt with the memo bypassed.
func BenchmarkScanPII2KB(b *testing.B) {
	d := NewDetector(DetectorOptions{})
	b.SetBytes(int64(len(benchPrompt)))
	b.ReportAllocs()
	for b.Loop() {
		d.redact(benchPrompt, maskAll)
	}
}
