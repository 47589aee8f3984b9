#!/usr/bin/env bash
# Benchmarks (not tests): each prints ratios measured side by side in one run; none pass or fail on time.
# `npm run bench` runs them all; `npm run bench -- backup` runs bench/backup.ts only.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/ensure-deps.sh"
cd "$ROOT"
export PGDR_LOG_LEVEL="${PGDR_LOG_LEVEL:-warn}"
files=()
if [ $# -gt 0 ]; then for n in "$@"; do files+=("dist/bench/${n%.ts}.js"); done; else files=(dist/bench/*.js); fi
for f in "${files[@]}"; do
  case "$f" in */helpers*) continue ;; esac
  echo "== $(basename "$f" .js)"
  node "$f"
done
