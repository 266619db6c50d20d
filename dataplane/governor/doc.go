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
//	aio:budget:{org}:<ns/name>:<subject>:<period>:<period start, local date>   scopes user, org
//	aio:budget:{global}:<ns/name>:<subject>:<period>:<period start>            scopes apiKey, global
//	aio:rl:{org}:<route>:<limit>:<per>:<subject>                               per user, org
//	aio:rl:{global}:<route>:<limit>:<per>:<subject>                            per apiKey, model, global
//
// The hash tag keeps an org's keys in one Redis Cluster slot, so a request touching only its org's
// limits and budgets is one EVALSHA; apiKey, model and global ones add one call on a Cluster (none
// on a single Redis or Sentinel). A consequence: a user budget counts a user's spend within one org
// (user ids are taken to be unique per org). Budget keys expire seven days after their period ends;
// the ledger keeps hours for [store.LedgerRetention] (400 days).
//
// # Periods
//
// [PeriodBounds] in the budget's TimeZone: local midnight, Monday 00:00 (ISO week), the 1st 00:00;
// the period key changes at that instant, so rollover needs no job. The period is chosen with
// Options.Clock (the replica's clock); rate-limit windows use the store's clock (Redis TIME).
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
// # Rate limits
//
// Route.RateLimits map to store checks: token-bucket (GCRA; Burst = capacity), sliding-window
// (exact sliding log), concurrency (slots held until Settle or ReservationTTL). requests limits
// cost 1; tokens limits cost Request.EstimatedTokens and are corrected by the real usage at settle
// (so a token limit admits at most its limit plus the largest single under-estimate). A token
// request larger than a bucket's burst or a window's limit can never pass; it is refused with
// RetryAfter = the window. Shadow limits count and report (metric result shadow_limited, debug log)
// but never refuse. Decision.RateLimit is the enforced limit with the smallest Remaining.
//
// # Store failures
//
// Store calls have a timeout (AdmitTimeout, SettleTimeout). When Admit's store call fails: if any
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
