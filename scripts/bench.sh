#!/usr/bin/env bash
# Benchmarks (not tests): each prints ratios and figures measured side by side in one run; none pass or
# fail on time. Everything runs on loopback (a Temporal dev server, local PostgreSQL clusters).
#   npm run bench                      the side-by-side benchmarks: approval-latency, backup, drill, restore
#   npm run bench -- backup            one of them (any file name in bench/, without .ts)
#   npm run bench -- overhead          pgdr's added time inside each run (workflow − pgBackRest), ≥ 5 runs (~15 min)
#   npm run bench -- scale             one worker for 20 then 200 clusters, 1,400 schedules, 1,000 pending approvals
#                                      (default 10 + 10 min of firing; PGDR_BENCH_SCALE_SERVER=sql: the tests' Go-built
#                                      server on PostgreSQL instead of the dev server; see bench/scale.ts for the knobs)
#   npm run bench -- rto               in-place restore on a loop-mounted XFS: bare delta / bare full / pgdr full /
#                                      pgdr reflink+delta, two sizes (root and xfsprogs; ~2 GB, ~15 min)
#   npm run bench -- all               every benchmark
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/ensure-deps.sh"
cd "$ROOT"
export PGDR_LOG_LEVEL="${PGDR_LOG_LEVEL:-warn}"
DEFAULT=(approval-latency backup drill restore)
names=("$@")
if [ ${#names[@]} -eq 0 ]; then names=("${DEFAULT[@]}"); fi
if [ "${names[*]}" = "all" ]; then names=(); for f in dist/bench/*.js; do names+=("$(basename "$f" .js)"); done; fi
for n in "${names[@]}"; do
  f="dist/bench/${n%.ts}.js"
  if [ ! -f "$f" ]; then echo "no benchmark \"$n\" (bench/${n%.ts}.ts)" >&2; exit 2; fi
  echo "== ${n%.ts}"
  node "$f"
done
