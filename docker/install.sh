#!/usr/bin/env bash
# The install steps of a pgdr database host, as the image runs them (docker/Dockerfile) — a plain Debian 12
# host can run them too. Two steps:
#
#   install.sh system [--root DIR] [--simulate]
#       Debian packages (PostgreSQL 15 without its default cluster, pgBackRest, tini) and pgdr's folders.
#       --simulate: apt-get only simulates (apt-get -s: proves every package resolves, installs nothing);
#       --root DIR: every file and folder this script writes goes below DIR (the test runs it that way).
#   install.sh app [--root DIR] PREFIX
#       pgdr's runtime dependencies in PREFIX (npm ci --omit=dev from PREFIX/package-lock.json) and the
#       `pgdr` command in /usr/local/bin. The compiled dist/ and bin/ come from the build stage.
set -euo pipefail

say() { printf 'pgdr install: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

PG_MAJOR=15
step=${1:-}
[ -n "$step" ] || die "usage: install.sh system [--root DIR] [--simulate] | install.sh app [--root DIR] PREFIX"
shift
ROOT=''
SIMULATE=no
PREFIX=''
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=${2:?--root needs a folder}; shift 2 ;;
    --simulate) SIMULATE=yes; shift ;;
    -*) die "unknown option $1" ;;
    *) PREFIX=$1; shift ;;
  esac
done
ROOT=${ROOT%/}

apt_install() {
  if [ "$SIMULATE" = yes ]; then
    # -s resolves every name and dependency against the package lists and changes nothing.
    apt-get install -s -y --no-install-recommends "$@" >/dev/null || die "apt-get cannot resolve: $*"
    say "resolved (simulated): $*"
  else
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
  fi
}

system_step() {
  local conf="$ROOT/etc/postgresql-common/createcluster.conf"
  if [ "$SIMULATE" = no ]; then apt-get update -q; fi
  # 1. postgresql-common first, so that its createcluster.conf can say "no default cluster" before the
  #    server package's postinst reads it (Debian would otherwise create and fill 15/main at install,
  #    and the data volume would start out holding a cluster nobody configured).
  apt_install postgresql-common
  [ -f "$conf" ] || die "$conf is missing (postgresql-common not installed below ${ROOT:-/}?)"
  pg_conftool "$conf" set create_main_cluster false
  # The very test the server package's postinst makes (maintscripts-functions: configure_version).
  [ "$(pg_conftool "$conf" show -bs create_main_cluster)" = off ] || die "create_main_cluster is not off in $conf"
  local had_main=no
  [ -e "$ROOT/etc/postgresql/$PG_MAJOR/main" ] && had_main=yes
  # 2. The server, the client tools (pg_amcheck), pgBackRest, and tini as PID 1 (reaps the postmaster
  #    that pg_ctlcluster daemonizes; forwards signals to the entrypoint).
  apt_install "postgresql-$PG_MAJOR" "postgresql-client-$PG_MAJOR" pgbackrest tini ca-certificates
  if [ "$had_main" = no ] && [ -e "$ROOT/etc/postgresql/$PG_MAJOR/main" ] && [ "$SIMULATE" = no ]; then
    die "the package created the default cluster $PG_MAJOR/main despite create_main_cluster = false"
  fi
  # 3. Folders: pgBackRest's repository and log (the postgres user writes both: archive-push runs as
  #    postgres), pgdr's state (audit log, DR reports, health state), the config folders. (The package
  #    made /var/lib/postgresql, the postgres user's home and the data volume's root, owned by postgres.)
  install -d -m 0750 -o postgres -g postgres "$ROOT/var/lib/pgbackrest" "$ROOT/var/log/pgbackrest"
  install -d -m 0750 -o root -g root "$ROOT/var/lib/pgdr"
  install -d -m 0755 -o root -g root "$ROOT/etc/pgdr" "$ROOT/etc/pgbackrest" "$ROOT/etc/postgresql"
  if [ "$SIMULATE" = no ]; then
    apt-get clean
    rm -rf /var/lib/apt/lists/*
  fi
  say "system step done${ROOT:+ below $ROOT}"
}

app_step() {
  [ -n "$PREFIX" ] || die "app: name the install folder (PREFIX)"
  [ -f "$PREFIX/package-lock.json" ] || die "app: $PREFIX/package-lock.json is missing (copy package.json and package-lock.json there first)"
  # Runtime dependencies only: the TypeScript compiler, @temporalio/testing and the type packages stay in
  # the build stage.
  (cd "$PREFIX" && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
  install -d -m 0755 "$ROOT/usr/local/bin"
  ln -sfn "$PREFIX/bin/pgdr" "$ROOT/usr/local/bin/pgdr"
  say "app step done in $PREFIX"
}

case "$step" in
  system) system_step ;;
  app) app_step ;;
  *) die "unknown step \"$step\" (system or app)" ;;
esac
