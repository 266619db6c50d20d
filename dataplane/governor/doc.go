package governor

// This file documents the implementation behind [New]; the contract is in governor.go.
//
// # Which budgets apply
//
// Every budget of the snapshot whose scope and subject match the request's [Identity]: scope user
// (subject = the user, or "*"), org, apiKey (only when the request names a key) and global. "*"
// means each subject separately: it is counted under the request's own user/org/key. Every period
// of every applicable budget (daily, weekly, monthly) is one check; all must admit a request.
// Lookup is by an index built once per snapshot, so 10 000 budgets cost a map lookup, not a scan.
//
// # Store keys
//
//	aio:budget:{u:<user>}:<ns/name>:<user>:<period>:<period start, local date>   scope user
//	aio:budget:{org}:<ns/name>:<org>:<period>:<period start>                     scope org
//	aio:budget:{global}:<ns/name>:<subject>:<period>:<period start>              scopes apiKey, global
//	aio:rl:{u:<user>}:<route>:<limit>:user:<user>                                per user
//	aio:rl:{org}:<route>:<limit>:org:<org>                                       per org
//	aio:rl:{global}:<route>:<limit>:<per>:<subject>                              per apiKey, model, global
//
// A user's budgets and per-user limits are keyed by the user alone, not by org: a user is one
// subject whatever orgId a request names, so "each user $1 a day" cannot become $1 per org, and
// a per-user limit cannot be multiplied by changing orgs (user ids are global, as the identity
// the caller's auth asserts). An org's budgets and limits stay under the org.
//
// The hash tags ({u:<user>}, {org}, {global}) are Redis Cluster slots. On a single Redis or
// Sentinel they do not matter: every check of a request is decided in one EVALSHA of admit.lua,
// one round trip, all or nothing. On a Cluster (store.RedisOptions.SplitByTag, always on for a
// ClusterClient) a request is one call per slot it touches — typically {u:<user>}, {org} and
// {global}, so up to three round trips — decided in order; when a later slot refuses (or fails),
// what the earlier slots consumed is given back (store.Redis rollback), and a rollback that
// cannot reach Redis leaves reservations that expire after ReservationTTL. Budget keys expire
// seven days after their period ends; the ledger keeps hours for [store.LedgerRetention] (400
// days). Reports read the same keys: [Governor.Usage] and [BudgetReporter] derive them with the
// same function as Admit, and list a user budget's subjects from the users of the global ledger.
//
// # Periods
//
// [PeriodBounds] in the budget's TimeZone: local midnight, Monday 00:00 (ISO week), the 1st 00:00;
// the period key changes at that instant, so rollover needs no job. The period is chosen with
// Options.Clock, by default the replica's clock corrected by its offset to Redis TIME (measured
// in the background), so replicas whose clocks disagree by seconds still charge the same period;
// rate-limit windows use Redis TIME inside the scripts.
//
// # Actions
//
//   - block: the check is enforced; refusal is a *DeniedError (Kind DeniedByBudget) with ResetsAt =
//     the period's end and RetryAfter until then.
//   - alert: the check is shadow (reserved while it fits, never refuses); crossing a threshold
//     (spent + reserved before this request < threshold ≤ after) adds an [Alert] and a metric.
//   - downgrade: shadow as well; once the request would pass the limit, Decision.Downgrade names
//     DowngradeTo.
//
// Spend past a limit (a settle larger than the reservation, or usage under an alert budget) is
// always added to spent: no cost is lost.
//
// # Streams: settled as they go
//
// A stream may run for minutes, and a replica killed in the middle (SIGKILL, OOM, node loss) never
// reaches its settle. [Governor.Checkpoint] records a running call's cost so far — the caller
// passes totals since admission — to every budget's spend and to the ledger, moving the same amount
// out of its reservations; the final Settle charges only the remainder (negative when the running
// estimate exceeded what the provider finally reported), so the totals end equal to the reported
// usage. The store keeps what it charged per admission and charges differences, so a retried or
// lost-reply checkpoint is never charged twice; Checkpoint and Settle of a ticket are serialized.
// A call counts as one request from its first checkpoint. After a kill the ledger keeps what the
// last checkpoint recorded and the shrunk reservation expires with ReservationTTL. Successful and
// failed checkpoints are counted in aio_stream_checkpoints_total{result}.
//
// # Rate limits
//
// Route.RateLimits map to store checks: token-bucket (GCRA; Burst = capacity), sliding-window
// (exact sliding log), concurrency (slots held until Settle or ReservationTTL). requests limits
// cost 1; tokens limits cost Request.EstimatedTokens and are corrected by the real usage at settle
// (so a token limit admits at most its limit plus the under-estimates of the requests in flight
// together: the largest single one when requests come one after another; nothing when estimates
// never undercount, i.e. the upstream honours maxTokens and counts the prompt as we do). A token
// request larger than a bucket's burst or a window's limit can never pass; it is refused with
// RetryAfter = the window. Shadow limits count and report (metric result shadow_limited, debug log)
// but never refuse. Decision.RateLimit is the enforced limit with the smallest Remaining.
//
// # Store failures
//
// Store calls have a timeout (AdmitTimeout [DefaultAdmitTimeout, 2s], SettleTimeout). The
// timeout is for a hung Redis; a down one (connection refused) fails at once, since the client
// dials once without retries (store.DialRedis). It must be generous enough for a burst on a
// healthy Redis: an admission that times out takes the fail mode, which under a flood means
// serving past the limit (open) or spurious 503s (closed). When Admit's store call fails: if any
// enforced limit has failMode closed, or a block budget applies and BudgetFailOpen is false, Admit
// returns an error wrapping [ErrStoreUnavailable] (503) and counts aio_store_fail_closed_total;
// otherwise it admits and counts aio_store_fail_open_total. An open admission still carries its
// budgets, so Settle charges them (and the ledger) once the store answers again.
//
// # Optional interfaces
//
// The Governor from [New] also implements [BudgetReporter] (AIBudget status for the controller:
// spend, reservations, forecast and subjects over budget, from the shared store) and
// [ProviderLimiter] (upstream account quotas, so routing can pick another target instead of
// sending a call that would certainly get a 429).
