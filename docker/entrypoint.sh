#!/usr/bin/env bash
# Start PostgreSQL (initialising it with WAL archiving on first start), then the pgdr worker for this host.
set -euo pipefail
DATA=/var/lib/postgresql/15/main
BIN=/usr/lib/postgresql/15/bin
chown postgres:postgres "$DATA" /var/lib/pgbackrest
if [ ! -f "$DATA/PG_VERSION" ]; then
  runuser -u postgres -- "$BIN/initdb" -A trust -U postgres --data-checksums -D "$DATA"
  cat >> "$DATA/postgresql.conf" <<CONF
listen_addresses = '*'
unix_socket_directories = '/var/run/postgresql'
wal_level = replica
archive_mode = on
archive_command = 'pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --stanza=db1 archive-push %p'
CONF
fi
mkdir -p /var/run/postgresql && chown postgres:postgres /var/run/postgresql
export PGBACKREST_REPO1_CIPHER_PASS="${PGDR_REPO1_CIPHER_PASS}"
runuser -u postgres -- "$BIN/pg_ctl" -D "$DATA" -l /var/log/postgresql.log -w start
trap 'runuser -u postgres -- "$BIN/pg_ctl" -D "$DATA" -m fast stop' EXIT
pgdr worker --host "${PGDR_HOST}"
