#!/usr/bin/env bash
# Runs a command with a throw-away redis-server: `hack/with-redis.sh CMD ARGS...`.
#
# The store's conformance suite and benchmarks need a real Redis (Lua scripts, TIME, EVALSHA), not a
# fake. This script installs redis-server when it is missing (Debian apt, quietly), starts it on a
# free 127.0.0.1 port in a temporary directory with persistence off, waits until it answers PING,
# exports REDIS_URL=redis://127.0.0.1:PORT/0, runs the command, stops the server and exits with the
# command's exit code. Nothing is left behind (the temp dir is removed).
set -euo pipefail

if [[ $# -eq 0 ]]; then
  echo "usage: hack/with-redis.sh CMD [ARGS...]" >&2
  exit 2
fi

log() { echo "with-redis: $*" >&2; }

if ! command -v redis-server >/dev/null 2>&1; then
  log "redis-server not found; installing it with apt-get (quietly)"
  SUDO=""
  if [[ "$(id -u)" != "0" ]]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi

dir="$(mktemp -d)"
pid=""
cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ping() {
  if command -v redis-cli >/dev/null 2>&1; then
    [[ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == "PONG" ]]
  else
    # Speak RESP over bash's /dev/tcp when redis-cli is absent.
    local reply
    reply="$(exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'PING\r\n' >&3 && timeout 1 head -c 7 <&3)" 2>/dev/null || return 1
    [[ "$reply" == "+PONG"* ]]
  fi
}

# Pick a random free port; retry when another process wins the race for it.
for attempt in $(seq 1 20); do
  port=$(( 20000 + RANDOM % 40000 ))
  port_free "$port" || continue
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save "" --appendonly no \
    --daemonize no --protected-mode yes --loglevel warning --logfile "$dir/redis.log" &
  pid=$!
  for _ in $(seq 1 100); do
    if ping "$port"; then break 2; fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.05
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
done

if [[ -z "$pid" ]]; then
  log "could not start redis-server; log follows"
  cat "$dir/redis.log" >&2 2>/dev/null || true
  exit 1
fi

export REDIS_URL="redis://127.0.0.1:${port}/0"
log "redis-server $pid on $REDIS_URL"
set +e
"$@"
rc=$?
set -e
exit "$rc"
