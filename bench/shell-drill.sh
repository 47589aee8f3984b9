#!/usr/bin/env bash
# The hand-written drill pgdr is compared with (seed 000's test-restore commands, sequential):
# verify, restore into a scratch folder, start on another port, count tables, stop, delete.
# Usage: shell-drill.sh <pgbackrest.conf> <stanza> <scratch dir> <port> <pg bin dir>   (run as postgres)
set -euo pipefail
CONF="$1"; STANZA="$2"; DIR="$3"; PORT="$4"; BIN="$5"
PGBR=(pgbackrest "--config=$CONF" "--stanza=$STANZA")
out=$("${PGBR[@]}" --log-level-console=detail verify)
if grep -Eq 'status: (invalid|error)|invalid checksum|missing' <<<"$out"; then echo "verify found damage" >&2; exit 1; fi
mkdir -p "$DIR"
"${PGBR[@]}" --log-level-console=warn "--pg1-path=$DIR/data" --archive-mode=off --type=immediate --target-action=promote restore
"$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/postgresql.log" -w start -o "-p $PORT -k $DIR -c listen_addresses='' -c archive_mode=off" >/dev/null
"$BIN/psql" -h "$DIR" -p "$PORT" -U postgres -Atc "SELECT count(*) FROM information_schema.tables;"
"$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null
rm -rf "$DIR"
