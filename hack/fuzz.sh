#!/usr/bin/env bash
# Runs every fuzz target of the module for a bounded time each: `hack/fuzz.sh [FUZZTIME]`.
#
# Targets are found by name (func FuzzXxx in *_test.go), so a new one is fuzzed without editing
# this script. Each seed corpus (testdata/fuzz) also runs in every plain `go test`; this adds
# FUZZTIME (default 10s) of coverage-guided inputs per target. A crash fails the run and leaves
# the failing input under the package's testdata/fuzz/<Target>/ to commit as a regression case.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fuzztime="${1:-${FUZZTIME:-10s}}"
status=0
while IFS=: read -r file name; do
  pkg="./$(dirname "$file")"
  echo "fuzz: $pkg $name for $fuzztime" >&2
  if ! go test "$pkg" -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" >/tmp/fuzz.$$.log 2>&1; then
    cat /tmp/fuzz.$$.log >&2
    status=1
  else
    tail -n 1 /tmp/fuzz.$$.log >&2
  fi
done < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | sed 's#^\./##; s#:func #:#' | sort)
rm -f /tmp/fuzz.$$.log
exit "$status"
