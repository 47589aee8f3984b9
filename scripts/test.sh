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
# Per-file wall times are printed after the summary (scripts/file-times-reporter.mjs).
exec node --test --test-concurrency="${PGDR_TEST_JOBS:-1}" \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=./scripts/file-times-reporter.mjs --test-reporter-destination=stdout \
  "${files[@]}"
