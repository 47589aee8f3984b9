#!/usr/bin/env bash
# The README's test command: install what is missing, then run the test suite against real components
# (Temporal dev server, PostgreSQL 15, pgBackRest). Arguments select test files, e.g. `npm test -- backup`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/ensure-deps.sh" --test
cd "$ROOT"
files=()
if [ $# -gt 0 ]; then
  for name in "$@"; do files+=(dist/test/"${name%.test.ts}".test.js); done
else
  files=(dist/test/*.test.js)
fi
export PGDR_LOG_LEVEL="${PGDR_LOG_LEVEL:-warn}"   # workers log through pino; warnings and errors only
# The workers' expected warnings (a test kills a worker on purpose, …) go to one file, not into the test output.
export PGDR_LOG_FILE="${PGDR_LOG_FILE:-$ROOT/.pgdr/test-logs/$(date -u +%Y%m%dT%H%M%SZ).log}"
mkdir -p "$(dirname "$PGDR_LOG_FILE")"
# Each file's wall time (scripts/file-clock.cjs, preloaded into every test process) is printed after the summary.
export PGDR_TEST_TIMES="${PGDR_LOG_FILE%.log}.times"
: > "$PGDR_TEST_TIMES"
set +e
node --require ./scripts/file-clock.cjs --test --test-concurrency="${PGDR_TEST_JOBS:-2}" --test-reporter=spec "${files[@]}"
status=$?
set -e
printf '\nper-file wall times (%s files at a time; slowest first):\n' "${PGDR_TEST_JOBS:-2}"
sort -rn "$PGDR_TEST_TIMES" | awk -F'\t' '{ printf "  %7.1f s  %s%s\n", $1, $2, ($3 == 0 ? "" : "  (exit " $3 ")"); sum += $1 } END { printf "  %7.1f s  sum of files\n", sum }'
if [ -f "$PGDR_LOG_FILE" ]; then
  printf 'worker logs: %s (%s warnings, %s errors)\n' "$PGDR_LOG_FILE" "$(grep -c '"level":40' "$PGDR_LOG_FILE" || true)" "$(grep -c '"level":5[0-9]' "$PGDR_LOG_FILE" || true)"
fi
exit $status
