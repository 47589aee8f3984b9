#!/usr/bin/env bash
# The README's test command: install what is missing, then run the test suite against real components
# (Temporal dev server, PostgreSQL 15, pgBackRest). Arguments select test files, e.g. `npm test -- backup`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/ensure-deps.sh" --test
cd "$ROOT"
# The files: those named (`npm test -- drill restore`), else all. Slowest first, so that the long ones do not
# start last and leave the other slots idle: ordered by the wall times of the last whole run
# (.pgdr/test-logs/*.times), else by this list; files in neither go first.
SLOW_FIRST="safety-in-place-kill multi-host safety-in-place-cancel drill safety-runbooks shared-config cli-oncall restore debian-cluster health deploy safety-in-place-reset full-site restore-reflink approval backup production-temporal backup-crash restored-cluster-paths runs restore-precision schedules"
mapfile -t every < <(cd dist/test && ls *.test.js | sed 's/\.test\.js$//')
if [ $# -gt 0 ]; then
  all=()
  for name in "$@"; do
    name="${name%.ts}"; name="${name%.test}"
    [ -f dist/test/"$name".test.js ] || { echo "no test file test/$name.test.ts" >&2; exit 2; }
    all+=("$name")
  done
else
  all=("${every[@]}")
fi
last_times="$(ls -t "$ROOT"/.pgdr/test-logs/*.times 2>/dev/null | while read -r f; do [ "$(wc -l <"$f")" -ge $(( ${#every[@]} * 4 / 5 )) ] && echo "$f" && break; done || true)"
if [ -n "$last_times" ]; then order="$(sort -rn "$last_times" | cut -f2 | sed 's/\.test\.ts$//')"; else order="$(tr ' ' '\n' <<<"$SLOW_FIRST")"; fi
files=()
for name in "${all[@]}"; do grep -qxF "$name" <<<"$order" || files+=(dist/test/"$name".test.js); done
while read -r name; do
  [ -n "$name" ] && printf '%s\n' "${all[@]}" | grep -qxF "$name" && files+=(dist/test/"$name".test.js)
done <<<"$order"
# The tests' clusters, repositories and restored copies live in memory (/dev/shm) when it is a tmpfs with room:
# on the disk, creating and syncing a cluster's ~1,000 files costs pgBackRest and PostgreSQL three to four
# times the CPU. PGDR_TEST_TMPDIR chooses another folder (e.g. /tmp, to run them on the disk).
if [ -z "${PGDR_TEST_TMPDIR:-}" ] && [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] && [ "$(df -Pk /dev/shm | awk 'NR == 2 { print $4 }')" -ge $((6 * 1024 * 1024)) ]; then
  PGDR_TEST_TMPDIR=/dev/shm
fi
export TMPDIR="${PGDR_TEST_TMPDIR:-${TMPDIR:-/tmp}}"
echo "test folders in $TMPDIR"
# Test files at a time. Most of a file's time is waiting (PostgreSQL, pgBackRest, Temporal timers): with the
# folders in memory, 6 keep 2 cores busy (4 left them idle a fifth of the time).
export PGDR_TEST_JOBS="${PGDR_TEST_JOBS:-6}"
export PGDR_LOG_LEVEL="${PGDR_LOG_LEVEL:-warn}"   # workers log through pino; warnings and errors only
# The workers' expected warnings (a test kills a worker on purpose, …) go to one file, not into the test output.
export PGDR_LOG_FILE="${PGDR_LOG_FILE:-$ROOT/.pgdr/test-logs/$(date -u +%Y%m%dT%H%M%SZ).log}"
mkdir -p "$(dirname "$PGDR_LOG_FILE")"
# Each file's wall time (scripts/file-clock.cjs, preloaded into every test process) is printed after the summary.
export PGDR_TEST_TIMES="${PGDR_LOG_FILE%.log}.times"
: > "$PGDR_TEST_TIMES"
cpu_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat; }   # busy, idle (all cores)
read -r busy0 idle0 < <(cpu_ticks); t0=$(date +%s.%N)
set +e
node --require ./scripts/file-clock.cjs scripts/run-tests.cjs "${files[@]}"
status=$?
set -e
read -r busy1 idle1 < <(cpu_ticks); t1=$(date +%s.%N)
printf '\nper-file wall times (%s files at a time; slowest first):\n' "$PGDR_TEST_JOBS"
sort -rn "$PGDR_TEST_TIMES" | awk -F'\t' '{ printf "  %7.1f s  %s%s\n", $1, $2, ($3 == 0 ? "" : "  (exit " $3 ")"); sum += $1 } END { printf "  %7.1f s  sum of files\n", sum }'
awk -v b="$((busy1 - busy0))" -v i="$((idle1 - idle0))" -v t0="$t0" -v t1="$t1" -v n="$(nproc)" -v hz="$(getconf CLK_TCK)" \
  'BEGIN { w = t1 - t0; printf "wall %.0f s on %d cores; the machine was busy %.0f%% of that (%.0f core-seconds: tests, servers, PostgreSQL, pgBackRest and anything else running)\n", w, n, 100 * b / (b + i), b / hz }'
if [ -f "$PGDR_LOG_FILE" ]; then
  printf 'worker logs: %s (%s warnings, %s errors)\n' "$PGDR_LOG_FILE" "$(grep -c '"level":40' "$PGDR_LOG_FILE" || true)" "$(grep -c '"level":5[0-9]' "$PGDR_LOG_FILE" || true)"
fi
exit $status
