// Package e2e holds black-box end-to-end tests of the data plane: the real `dataplane` binary,
// several replicas of it, and a real redis-server, driven only through HTTP. They prove the
// behaviours users rely on (see DESIGN.md): budgets and rate limits exact across replicas, an exact
// ledger, and the declared behaviour when a replica or Redis dies.
//
// Run them with a throw-away Redis: `hack/with-redis.sh go test ./test/e2e/ -v -count=1`. Without
// REDIS_URL the harness starts its own redis-server from PATH.
package e2e
