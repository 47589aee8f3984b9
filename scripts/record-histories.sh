#!/usr/bin/env bash
# Re-record the replay histories in test/histories/ on purpose (test/record-histories.ts): its own Temporal dev
# server, a small PostgreSQL 15 cluster with pgBackRest, and a pgdr worker. Arguments name runbooks to
# re-record (default: all), e.g. `npm run record-histories -- restoreInPlace fullSiteRecovery`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/ensure-deps.sh" --test
cd "$ROOT"
export PGDR_LOG_LEVEL="${PGDR_LOG_LEVEL:-warn}"
exec node dist/test/record-histories.js "$@"
