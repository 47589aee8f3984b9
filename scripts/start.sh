#!/usr/bin/env bash
# The README's start command: install what is missing, then run the embedded default
# (Temporal dev server + demo PostgreSQL cluster + worker). Ctrl-C stops everything.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/ensure-deps.sh"
exec node "$ROOT/bin/pgdr" dev
