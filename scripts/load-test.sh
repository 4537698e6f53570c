#!/usr/bin/env bash
# The suite on a busy machine: each run starts from no lab and runs ./lab suite while
# stress-ng keeps every host core busy, as a first run beside other work does. Prints each
# run's stage durations (from its report) and each node's confirm latency (the change
# taking effect -> confirmed, from the network stage's output).
#   scripts/load-test.sh [runs, default 3] [extra ./lab suite args...]
# Not part of ./lab test: it takes about ten minutes a run and holds both cores.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${1:-3}"
[ $# -gt 0 ] && shift
cd "$ROOT"
if ! command -v stress-ng >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq stress-ng >/dev/null; else sudo apt-get install -y -qq stress-ng >/dev/null; fi
fi
cores="$(nproc)"
out="$ROOT/tests/output/load-test"
mkdir -p "$out"
for run in $(seq 1 "$runs"); do
  ./lab teardown >/dev/null
  stress-ng --cpu "$cores" --timeout 7200 --quiet &
  hog=$!
  started=$(date +%s)
  log="$out/run-$run.log"
  rc=0
  ./lab suite "$@" >"$log" 2>&1 || rc=$?
  kill "$hog" 2>/dev/null || true
  wait "$hog" 2>/dev/null || true
  report="$(grep -o 'results/[0-9A-Za-z-]*/summary.md' "$log" | tail -1 || true)"
  stages="$(sed -n 's/^- stages_s: //p' "${report:-/dev/null}" 2>/dev/null || true)"
  echo "run $run: exit $rc in $(( $(date +%s) - started )) s with $cores CPU hogs; stages ${stages:-?} (log $log)"
  tr -s ' \n' ' ' <"$log" | grep -o "\[[^]]*\] => msg: '\?confirmed [0-9.?]* s after the change took effect" | sed 's/^/  /' || true
  [ "$rc" -eq 0 ] || exit "$rc"
done
