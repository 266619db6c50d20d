#!/usr/bin/env bash
# Runs the side-by-side benchmark (go run ./hack/bench, see main.go for the flags).
#
#   hack/bench/run.sh [FLAGS...]           # direct / floor / dataplane, embedded store
#   hack/bench/run.sh --redis [FLAGS...]   # also dataplane+redis on a throw-away redis-server
#
# The report is printed and written to hack/bench/results/<UTC time>.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ "${1:-}" == "--redis" ]]; then
  shift
  exec hack/with-redis.sh bash -c 'exec go run ./hack/bench --redis-url "$REDIS_URL" "$@"' bench "$@"
fi
exec go run ./hack/bench "$@"
