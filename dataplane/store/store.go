// Package store holds the shared state of every data-plane replica: rate-limit counters, budget
// spend and reservations, the usage ledger and the response-cache KV. Two implementations pass one
// conformance suite (package storetest): [Memory] (one process, one mutex, injected clock) and
// [Redis] (go-redis UniversalClient: single, Sentinel or Cluster; atomic Lua scripts).
//
// The store is deliberately low level: it knows four kinds of checks and how to consume and release
// them, not what a budget or a route is. Package governor turns a snapshot and a request into checks.
//
// # Semantics (both implementations)
//
// Times are microseconds on one clock: the Redis server's TIME (so replicas with skewed clocks agree),
// or the injected [Clock] for [Memory] and for tests of [Redis] (see [RedisOptions.Clock]).
//
//   - [KindTokenBucket]: GCRA. Limit units per Window refill continuously (one unit every
//     Window/Limit); the bucket holds Burst units (default Limit). A request of Cost units is admitted
//     when the bucket holds at least Cost; RetryAfter is the exact time until it will.
//   - [KindSlidingWindow]: a true sliding log. Every admitted request is an entry (time, cost); a
//     request is admitted when the costs of entries younger than Window plus Cost stay within Limit.
//     There is no approximation and hence no 2× burst across a window edge. RetryAfter is exact: the
//     time until enough of the oldest entries leave the window.
//   - [KindConcurrency]: at most Limit holders at once. Each holder (the admission ID) expires after
//     TTL, so a crashed replica's slot frees by itself. Refusals say RetryAfter = 1s (when a slot will
//     free depends on in-flight calls, which the store cannot know).
//   - [KindBudget]: a spend counter (nano-USD) and live reservations. A reservation of Cost is
//     admitted when spent + reserved + max(Cost,1) ≤ Limit (so an exhausted budget also refuses free
//     requests). Reservations expire after TTL, so a crashed replica's reservation disappears.
//
// Admit is all or nothing: when any check with Shadow unset refuses, nothing is consumed. A Shadow
// check never refuses the request; it is consumed when it alone would have admitted (so its counters
// show what the limit would have let through).
package store

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Clock tells the time. Tests inject a fake one; production uses [SystemClock] (and Redis's TIME).
type Clock interface{ Now() time.Time }

// SystemClock is the wall clock.
type SystemClock struct{}

// Now implements [Clock].
func (SystemClock) Now() time.Time { return time.Now() }

// CheckKind is what a [Check] evaluates.
type CheckKind uint8

// Check kinds; see the package documentation for their exact semantics.
const (
	KindTokenBucket CheckKind = iota + 1
	KindSlidingWindow
	KindConcurrency
	KindBudget
)

// String names the kind as the snapshot's algorithm does.
func (k CheckKind) String() string {
	switch k {
	case KindTokenBucket:
		return "token-bucket"
	case KindSlidingWindow:
		return "sliding-window"
	case KindConcurrency:
		return "concurrency"
	case KindBudget:
		return "budget"
	}
	return "unknown"
}

// Check is one limit or budget evaluated by [Store.Admit].
//
// Key names the state. It should carry a Redis Cluster hash tag ("{org}" or "{global}") so that
// every key of one org lives in one slot; checks with different tags are decided one call per tag
// on a Cluster (see [Redis]).
type Check struct {
	Kind CheckKind
	Key  string
	// Limit is units per Window (bucket, sliding window), holders (concurrency) or nano-USD (budget).
	Limit int64
	// Window is the refill period (bucket) or the window length (sliding window).
	Window time.Duration
	// Burst is the bucket capacity (token bucket only); 0 means Limit.
	Burst int64
	// Cost is what this request consumes: 1 for a request, the token estimate, or nano-USD to reserve.
	Cost int64
	// Shadow checks are evaluated and reported but never refuse.
	Shadow bool
	// TTL is how long a concurrency slot or budget reservation lives without Settle.
	TTL time.Duration
	// Expire is how long a budget's state is kept after the last write (past its period's end).
	Expire time.Duration
}

// AdmitRequest is one request's checks. ID must be unique per admission (it names reservations and
// concurrency holders).
type AdmitRequest struct {
	ID     string
	Checks []Check
	// Peek, when set, is a key of [Store.Cache] read in the same round trip as the checks, so
	// that a response-cache lookup costs no round trip of its own. It is read whatever the checks
	// decide (the caller uses it only once it has passed its own checks).
	Peek string
}

// CheckResult is the outcome of one check.
type CheckResult struct {
	// Evaluated is false when the check was not looked at, because an earlier slot refused (Redis
	// Cluster only); such a check is neither allowed nor consumed.
	Evaluated bool
	// Allowed says whether this check alone admits the request.
	Allowed bool
	// Consumed says whether Admit consumed it (the request was admitted, and for shadow checks the
	// check itself allowed). Settle acts only on consumed checks (budgets are charged regardless).
	Consumed bool
	// Remaining is what is left after this request (units, holders or nano-USD), never negative.
	Remaining int64
	// RetryAfter is when a refused check would admit the request; 0 when allowed.
	RetryAfter time.Duration
	// Reset is when the limit is back to full (bucket full, oldest entry gone); 0 for budgets.
	Reset time.Duration
	// Spent and Reserved are a budget's spend and live reservations before this request.
	Spent    int64
	Reserved int64
}

// AdmitResult is the outcome of [Store.Admit]; Results is parallel to the request's Checks.
type AdmitResult struct {
	// Allowed is true when every non-shadow check allowed; then every allowed check is consumed.
	Allowed bool
	Results []CheckResult
	// Peeked is the value under the request's Peek key, when PeekFound. PeekErr is a failed
	// read, which never fails the admission: the caller treats it as a miss.
	Peeked    []byte
	PeekFound bool
	PeekErr   error
}

// SettleOp finishes one check of an admitted request.
type SettleOp struct {
	Check
	// Consumed is CheckResult.Consumed from Admit.
	Consumed bool
	// Actual is the real amount: nano-USD charged to a budget's spend (charged also when the
	// reservation was not consumed or has expired: no cost is lost, even beyond the limit), or the
	// real token count of a token limit, whose counters are corrected by Actual − Cost. For request
	// limits pass Actual = Cost (no correction), or 0 to give the request back.
	Actual int64
}

// UsageRecord is one request's usage, aggregated into the ledger.
type UsageRecord struct {
	At       time.Time
	User     string
	Org      string
	APIKey   string
	Model    string
	Provider string
	Requests int64
	Tokens   int64
	// Cost is nano-USD.
	Cost int64
}

// Settlement is everything [Store.Settle] writes for one request, or [Store.Checkpoint] for one
// still running.
type Settlement struct {
	ID    string
	Ops   []SettleOp
	Usage *UsageRecord
	// Checkpointed says [Store.Checkpoint] may have run for ID (set it also when a checkpoint
	// failed: it may have been applied before the error reached the caller). Settle then reads the
	// budget Actuals and Usage as the call's totals and charges only what the checkpoints have not
	// recorded yet (negative when they recorded more), releases what is left of the shrunk
	// reservations, and marks ID finished so that a late checkpoint charges nothing.
	Checkpointed bool
	// Put, when set, is written to [Store.Cache] in the same round trip as the settle.
	Put *KVPut
}

// KVPut is a [KV.Set] carried by a [Settlement]. Settle reports a failed (or refused, oversize)
// write in Err rather than as its own error: the settle itself went through.
type KVPut struct {
	Key   string
	Value []byte
	TTL   time.Duration
	Err   error
}

// ProgressTTL is how long [Store.Checkpoint]'s record of what it charged for an admission lives
// after the last checkpoint: far beyond any call, so that the final settle always finds it; a killed
// replica's record lingers that long (a few bytes) and is then dropped.
const ProgressTTL = 24 * time.Hour

// FinishedTTL is how long a settled admission's progress record stays as a tombstone, so that a
// checkpoint that reaches the store after the final settle (a timed-out call still queued on
// another connection) charges nothing.
const FinishedTTL = time.Minute

// Ledger dimensions. The ledger keeps, per hour and per tag (an org, or [GlobalTag] for all orgs),
// totals (requests, tokens, nano-USD) per value of each dimension.
const (
	DimTotal     = "t"  // key ""
	DimUser      = "u"  // key: user
	DimOrg       = "o"  // key: org (global ledger only)
	DimAPIKey    = "k"  // key: API key name
	DimModel     = "m"  // key: model
	DimProvider  = "p"  // key: provider
	DimUserModel = "um" // key: user + [KeySep] + model
	// DimUserProvider is keyed user + [KeySep] + provider.
	DimUserProvider = "up"
	// DimUserOrg is keyed user + [KeySep] + org (global ledger only): which orgs a user spent in,
	// to find the keys of user budgets.
	DimUserOrg = "uo"
)

// dimDetail is the one cell a usage record writes per tag, keyed user, org, API key, model and
// provider joined by [KeySep]. Every dimension above is a sum of detail cells, made when the
// ledger is read ([expandLedger]): reads are rare and cheap to sum, while a request that wrote
// one cell per dimension paid for 16 cells × 3 counters on its settle. Readers never see it.
const dimDetail = "d"

// KeySep joins the parts of a composite ledger key (DimUserModel). It cannot occur in names.
const KeySep = "\x1f"

// GlobalTag is the ledger tag of usage across all orgs.
const GlobalTag = "global"

// OrgTag is the ledger tag of org's usage: the org's name, unless the name is [GlobalTag] or
// begins with "~", which gets a "~" in front. Org names are free-form, so an org called "global"
// would otherwise share the global ledger (and be counted in it twice); with the prefix no two
// orgs, and no org and all orgs, share a ledger.
func OrgTag(org string) string {
	if org == GlobalTag || strings.HasPrefix(org, "~") {
		return "~" + org
	}
	return org
}

// LedgerRetention is how long ledger hours are kept: a little over a year, so that a "last 365
// days" report and a year-over-year monthly comparison both work.
const LedgerRetention = 400 * 24 * time.Hour

// Totals are a ledger cell.
type Totals struct {
	Requests int64
	Tokens   int64
	Cost     int64
}

// Add adds o to t.
func (t *Totals) Add(o Totals) {
	t.Requests += o.Requests
	t.Tokens += o.Tokens
	t.Cost += o.Cost
}

// LedgerKey is a (dimension, value) pair of the ledger.
type LedgerKey struct {
	Dim string
	Key string
}

// LedgerHour is one hour of one tag's ledger.
type LedgerHour struct {
	// Hour is the start of the hour (UTC).
	Hour  time.Time
	Cells map[LedgerKey]Totals
}

// BudgetState is a budget key's current spend and live (unexpired) reservations.
type BudgetState struct {
	Spent    int64
	Reserved int64
}

// Store is the shared state behind the governor.
type Store interface {
	// Admit evaluates every check atomically (one round trip per hash tag on Redis Cluster, one
	// otherwise) and consumes them all only when every non-shadow check allows.
	Admit(ctx context.Context, req *AdmitRequest) (*AdmitResult, error)
	// Settle applies s's ops and appends its usage to the ledger, in one pipelined round trip.
	Settle(ctx context.Context, s *Settlement) error
	// Checkpoint records what a call that is still running has cost so far, in one pipelined round
	// trip: s's budget ops carry the cost since admission (Actual) and s.Usage the usage since
	// admission. Both are totals, not increments, so a repeated or retried checkpoint charges only
	// what changed since the last one the store applied: what it charges is exact even when a reply
	// was lost. Each budget's spend grows by the change and its reservation for s.ID shrinks by the
	// same amount (never below zero, never growing back), so spent + reserved stays what admission
	// decided while the call keeps within its worst case; what is left of the reservation is
	// renewed for its check's TTL, and so is a consumed concurrency slot, so a call still running
	// keeps its headroom and its slot however long it runs. They stay until Settle (with
	// [Settlement.Checkpointed]) or, once checkpoints stop (a killed replica), their TTL. Ops of
	// other kinds are ignored: token limits are corrected and slots released once, at Settle. A
	// checkpoint after the final settle charges nothing.
	Checkpoint(ctx context.Context, s *Settlement) error
	// Budgets reads the state of budget keys (same order as keys).
	Budgets(ctx context.Context, keys []string) ([]BudgetState, error)
	// Ledger returns the hours of tag's ledger that overlap [from, to), oldest first; hours
	// without usage are omitted.
	Ledger(ctx context.Context, tag string, from, to time.Time) ([]LedgerHour, error)
	// Now is the store's clock (Redis TIME, or the injected clock).
	Now(ctx context.Context) (time.Time, error)
	// Cache is the response-cache KV.
	Cache() KV
	// Close releases resources (the Redis client is closed only when the store created it).
	Close() error
}

// KV is the response cache: opaque values with a TTL, bounded in size.
type KV interface {
	// Get returns the value and true, or false when absent or expired.
	Get(ctx context.Context, key string) ([]byte, bool, error)
	// Set stores value for ttl. A value over the size bound is refused with ErrValueTooLarge.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
}

// ErrValueTooLarge is returned by [KV.Set] for a value over the configured bound.
var ErrValueTooLarge = errors.New("cache value too large")

// ErrInvalidCheck is returned by Admit for a malformed check (unknown kind, non-positive limit…).
var ErrInvalidCheck = errors.New("invalid check")

// HashTag returns the part of key between the first "{" and the next "}", as Redis Cluster
// hashes it; the whole key when there is none.
func HashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// HourOf truncates t to its UTC hour: the ledger's bucket.
func HourOf(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

// detailCell is the ledger cell a usage record writes.
func detailCell(u *UsageRecord) LedgerKey {
	return LedgerKey{dimDetail, u.User + KeySep + u.Org + KeySep + u.APIKey + KeySep + u.Model + KeySep + u.Provider}
}

// expandLedger turns one hour's stored cells into the dimensions readers ask for: each detail
// cell is added to every cell its record stands for; any other stored cell (written per
// dimension by an earlier version) is kept as it is, so hours written both ways still add up.
func expandLedger(stored map[LedgerKey]Totals, global bool) map[LedgerKey]Totals {
	out := make(map[LedgerKey]Totals, 2*len(stored))
	add := func(k LedgerKey, t Totals) {
		c := out[k]
		c.Add(t)
		out[k] = c
	}
	for k, t := range stored {
		if k.Dim != dimDetail {
			add(k, t)
			continue
		}
		parts := strings.Split(k.Key, KeySep)
		if len(parts) != 5 {
			continue
		}
		u := UsageRecord{User: parts[0], Org: parts[1], APIKey: parts[2], Model: parts[3], Provider: parts[4]}
		for _, c := range ledgerIncrements(&u, global) {
			add(c, t)
		}
	}
	return out
}

// ledgerIncrements lists the cells one usage record stands for, in the org and the global ledger.
func ledgerIncrements(u *UsageRecord, global bool) []LedgerKey {
	keys := make([]LedgerKey, 0, 9)
	keys = append(keys, LedgerKey{DimTotal, ""})
	if u.User != "" {
		keys = append(keys, LedgerKey{DimUser, u.User})
	}
	if global && u.Org != "" {
		keys = append(keys, LedgerKey{DimOrg, u.Org})
		if u.User != "" {
			keys = append(keys, LedgerKey{DimUserOrg, u.User + KeySep + u.Org})
		}
	}
	if u.APIKey != "" {
		keys = append(keys, LedgerKey{DimAPIKey, u.APIKey})
	}
	if u.Model != "" {
		keys = append(keys, LedgerKey{DimModel, u.Model})
	}
	if u.Provider != "" {
		keys = append(keys, LedgerKey{DimProvider, u.Provider})
	}
	if u.User != "" && u.Model != "" {
		keys = append(keys, LedgerKey{DimUserModel, u.User + KeySep + u.Model})
	}
	if u.User != "" && u.Provider != "" {
		keys = append(keys, LedgerKey{DimUserProvider, u.User + KeySep + u.Provider})
	}
	return keys
}

func validate(c *Check) error {
	if c.Key == "" {
		return ErrInvalidCheck
	}
	switch c.Kind {
	case KindTokenBucket, KindSlidingWindow:
		if c.Limit <= 0 || c.Window <= 0 || c.Cost < 0 || c.Burst < 0 {
			return ErrInvalidCheck
		}
	case KindConcurrency:
		if c.Limit <= 0 || c.TTL <= 0 {
			return ErrInvalidCheck
		}
	case KindBudget:
		if c.Limit < 0 || c.Cost < 0 || c.TTL <= 0 {
			return ErrInvalidCheck
		}
	default:
		return ErrInvalidCheck
	}
	return nil
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func usDur(us float64) time.Duration {
	if us <= 0 {
		return 0
	}
	return time.Duration(us * 1000)
}
