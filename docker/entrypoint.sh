#!/usr/bin/env bash
# Entrypoint of a pgdr database host: runs `pgdr <arguments>` (default: `worker`). For `worker` it first
# starts this host's PostgreSQL cluster the Debian way (postgresql-common: configuration in
# /etc/postgresql/<version>/<cluster>, started by pg_ctlcluster), creating it on the first start.
#
# Signals: TERM and INT go to pgdr; when pgdr has stopped, PostgreSQL is stopped (fast shutdown) and the
# script exits with pgdr's status. (tini, PID 1 in the image, forwards the container's SIGTERM here.)
#
# Every path comes from the environment (defaults: the image's layout):
#   PGDR_PG_VERSION (15)  PGDR_PG_CLUSTER (main)  PGDR_PG_PORT (5432)  PGDR_PG_SOCKET_DIR (/var/run/postgresql)
#   PGDR_PG_VOLUME (/var/lib/postgresql)  the volume that holds the data directory
#   PGDR_PG_DATA (<volume>/<version>/<cluster>)  must lie strictly below the volume: pgdr's in-place restore
#       renames the data directory aside (rename(2)), which fails with EBUSY on a mount point
#   PGDR_PG_LOG (/var/log/postgresql/postgresql-<version>-<cluster>.log)
#   PGDR_PG_LISTEN_ADDRESSES (localhost)
#   PGDR_STANZA (<cluster>)  PGDR_PGBACKREST_CONFIG (/etc/pgbackrest/pgbackrest.conf)
#   PGDR_RUNTIME_DIR (/run/pgdr)  where the postmaster's environment file lives (tmpfs: never on a volume)
#   PGDR_REPO<N>_CIPHER_PASS_FILE  secret files (compose secrets) whose content the postmaster gets
#       as PGBACKREST_REPO<N>_CIPHER_PASS, for its archive_command and restore_command
#   SLACK_BOT_TOKEN_FILE, SLACK_SIGNING_SECRET_FILE  secret files exported to pgdr as SLACK_BOT_TOKEN, …
#   PGDR_BIN (pgdr)  the pgdr command
set -euo pipefail

say() { printf 'pgdr-entrypoint: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

PG_VERSION=${PGDR_PG_VERSION:-15}
PG_CLUSTER=${PGDR_PG_CLUSTER:-main}
PG_PORT=${PGDR_PG_PORT:-5432}
SOCKET_DIR=${PGDR_PG_SOCKET_DIR:-/var/run/postgresql}
VOLUME=${PGDR_PG_VOLUME:-/var/lib/postgresql}
DATA=${PGDR_PG_DATA:-$VOLUME/$PG_VERSION/$PG_CLUSTER}
PG_LOG=${PGDR_PG_LOG:-/var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log}
LISTEN=${PGDR_PG_LISTEN_ADDRESSES:-localhost}
STANZA=${PGDR_STANZA:-$PG_CLUSTER}
PGBACKREST_CONFIG=${PGDR_PGBACKREST_CONFIG:-/etc/pgbackrest/pgbackrest.conf}
RUNTIME_DIR=${PGDR_RUNTIME_DIR:-/run/pgdr}
PGDR=${PGDR_BIN:-pgdr}
CONF_DIR=${PG_CLUSTER_CONF_ROOT:-/etc/postgresql}/$PG_VERSION/$PG_CLUSTER

# Secrets given as files become environment variables of pgdr (never written anywhere else).
for name in SLACK_BOT_TOKEN SLACK_SIGNING_SECRET; do
  file_var="${name}_FILE"
  if [ -n "${!file_var:-}" ]; then
    [ -r "${!file_var}" ] || die "$file_var names ${!file_var}, which cannot be read"
    export "$name=$(cat "${!file_var}")"
  fi
done

# --- PostgreSQL ----------------------------------------------------------------------------------------
# Everything is checked before anything is created or started.
check_layout() {
  [ -d "$VOLUME" ] || die "the volume $VOLUME (PGDR_PG_VOLUME) does not exist"
  local vol data
  vol=$(realpath -e "$VOLUME")
  data=$(realpath -m "$DATA")
  case "$data/" in
    "$vol"/?*/) ;;
    *) die "the data directory $DATA must lie below the volume $VOLUME (e.g. $VOLUME/$PG_VERSION/$PG_CLUSTER): pgdr's in-place restore renames the data directory aside, and a volume's mount point cannot be renamed" ;;
  esac
  if [ -d "$DATA" ] && mountpoint -q "$DATA"; then
    die "the data directory $DATA is a mount point: mount the volume at a parent folder ($VOLUME) instead"
  fi
}

# The postmaster's environment: pg_ctlcluster starts it with exactly the variables of the cluster's
# `environment` file. That file is a link into the runtime folder (tmpfs), rewritten at every start from
# the secret files, so the passphrases never land on a volume.
write_postmaster_environment() {
  install -d -m 0750 -o root -g postgres "$RUNTIME_DIR"
  local env_file="$RUNTIME_DIR/postgresql-$PG_VERSION-$PG_CLUSTER.environment" tmp var n pass
  tmp=$(mktemp "$env_file.XXXXXX")
  for var in $(compgen -e); do
    if [[ $var =~ ^PGDR_REPO([0-9]+)_CIPHER_PASS_FILE$ ]]; then
      n=${BASH_REMATCH[1]}
      [ -r "${!var}" ] || die "$var names ${!var}, which cannot be read"
      pass=$(tr -d '\n' <"${!var}")
      # postgresql-common's quoting: a quoted value, with \ and ' escaped (PgCommon::read_conf_file).
      pass=${pass//\\/\\\\}
      pass=${pass//\'/\'\'}
      printf "PGBACKREST_REPO%s_CIPHER_PASS = '%s'\n" "$n" "$pass" >>"$tmp"
    fi
  done
  chown root:postgres "$tmp"
  chmod 0640 "$tmp"
  mv -f "$tmp" "$env_file"
  ln -sfn "$env_file" "$CONF_DIR/environment"
}

# pgdr's part of the server configuration, rewritten at every start (change the environment, not this file).
write_pgdr_conf() {
  install -d -m 0755 -o postgres -g postgres "$CONF_DIR/conf.d"
  cat >"$CONF_DIR/conf.d/pgdr.conf" <<CONF
# Written by pgdr-entrypoint at every start; set PGDR_* in the environment instead of editing this file.
port = $PG_PORT
unix_socket_directories = '$SOCKET_DIR'
listen_addresses = '$LISTEN'
wal_level = replica
archive_mode = on
archive_command = 'pgbackrest --config=$PGBACKREST_CONFIG --stanza=$STANZA archive-push %p'
CONF
  chown postgres:postgres "$CONF_DIR/conf.d/pgdr.conf"
}

start_postgres() {
  check_layout
  install -d -m 2775 -o postgres -g postgres "$SOCKET_DIR"
  install -d -m 0750 -o postgres -g postgres /var/log/pgbackrest
  local have_conf=no have_data=no
  [ -f "$CONF_DIR/postgresql.conf" ] && have_conf=yes
  [ -f "$DATA/PG_VERSION" ] && have_data=yes
  if [ $have_conf = no ] && [ $have_data = no ]; then
    if [ -d "$DATA" ] && [ -n "$(ls -A "$DATA")" ]; then
      die "$DATA is not empty but holds no PostgreSQL cluster (no PG_VERSION): refusing to initialize over it"
    fi
    say "first start: creating cluster $PG_VERSION/$PG_CLUSTER in $DATA"
    install -d -m 0755 -o postgres -g postgres "$(dirname "$DATA")"
    # Local connections over the socket are trusted (pgdr connects as postgres from root); TCP needs a password.
    pg_createcluster --datadir "$DATA" --port "$PG_PORT" --socketdir "$SOCKET_DIR" --logfile "$PG_LOG" \
      --start-conf manual "$PG_VERSION" "$PG_CLUSTER" -- --data-checksums --auth-local=trust --auth-host=scram-sha-256 >&2
  elif [ $have_conf = yes ] && [ $have_data = yes ]; then
    local conf_data
    conf_data=$(pg_conftool "$PG_VERSION" "$PG_CLUSTER" show -s data_directory)
    [ "$(realpath -m "$conf_data")" = "$(realpath -m "$DATA")" ] ||
      die "cluster $PG_VERSION/$PG_CLUSTER has its data in $conf_data, not in $DATA (PGDR_PG_DATA)"
    say "reusing cluster $PG_VERSION/$PG_CLUSTER in $DATA"
  elif [ $have_conf = yes ]; then
    die "$CONF_DIR exists but $DATA holds no cluster: the data volume is missing or empty; refusing to create a new cluster beside the old configuration"
  else
    die "$DATA holds a cluster but its configuration $CONF_DIR is missing (is the /etc/postgresql volume mounted?); refusing to start it"
  fi
  write_pgdr_conf
  write_postmaster_environment
  if pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" status >/dev/null 2>&1; then
    say "cluster $PG_VERSION/$PG_CLUSTER already runs"
  else
    pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start
  fi
  PG_STARTED=yes
  say "PostgreSQL $PG_VERSION/$PG_CLUSTER accepts connections on $SOCKET_DIR port $PG_PORT"
}

stop_postgres() {
  [ "${PG_STARTED:-no}" = yes ] || return 0
  say "stopping PostgreSQL $PG_VERSION/$PG_CLUSTER (fast)"
  pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop -m fast || say "warning: pg_ctlcluster stop failed"
}

# --- pgdr ----------------------------------------------------------------------------------------------
[ $# -gt 0 ] || set -- worker
if [ "$1" = worker ]; then start_postgres; fi

child=''
forward() {
  if [ -n "$child" ]; then kill -s "$1" "$child" 2>/dev/null || true; fi
}
trap 'forward TERM' TERM
trap 'forward INT' INT
trap 'forward HUP' HUP

"$PGDR" "$@" &
child=$!
say "pgdr $1 runs (pid $child)"
status=0
while :; do
  # `wait` returns early (status > 128) when a trapped signal arrives; go on waiting until pgdr has exited.
  if wait "$child"; then status=0; else status=$?; fi
  kill -0 "$child" 2>/dev/null || break
done
say "pgdr $1 exited with status $status"
stop_postgres
exit "$status"
