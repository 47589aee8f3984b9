#!/bin/sh
# One-shot setup of the Temporal cluster, run by the compose stack in the temporalio/admin-tools image:
#   temporal-setup.sh schema      create the databases and bring their schemas to the image's version
#                                 (temporal-sql-tool against the PostgreSQL persistence; idempotent)
#   temporal-setup.sh namespace   wait until the frontend answers, then create the namespace if missing
# Environment: POSTGRES_SEEDS, DB_PORT, POSTGRES_USER, SQL_PASSWORD, TEMPORAL_SCHEMA_DIR (schema); TEMPORAL_ADDRESS,
# TEMPORAL_NAMESPACE, TEMPORAL_NAMESPACE_RETENTION (namespace).
set -eu

schema() {
  : "${POSTGRES_SEEDS:?POSTGRES_SEEDS is required}" "${POSTGRES_USER:?POSTGRES_USER is required}" "${SQL_PASSWORD:?SQL_PASSWORD is required}"
  dir=${TEMPORAL_SCHEMA_DIR:-/etc/temporal/schema/postgresql/v12}   # where the admin-tools image keeps the schema
  for db in temporal temporal_visibility; do
    case $db in temporal) versioned=$dir/temporal/versioned ;; *) versioned=$dir/visibility/versioned ;; esac
    temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "${DB_PORT:-5432}" -u "$POSTGRES_USER" --db "$db" create
    temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "${DB_PORT:-5432}" -u "$POSTGRES_USER" --db "$db" setup-schema -v 0.0
    temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "${DB_PORT:-5432}" -u "$POSTGRES_USER" --db "$db" update-schema -d "$versioned"
  done
  echo "temporal-setup: schemas of temporal and temporal_visibility are current"
}

namespace() {
  address=${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS is required}
  ns=${TEMPORAL_NAMESPACE:-default}
  tries=0
  until temporal operator cluster health --address "$address" >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt 60 ] || { echo "temporal-setup: $address did not become healthy" >&2; exit 1; }
    sleep 2
  done
  if temporal operator namespace describe --address "$address" --namespace "$ns" >/dev/null 2>&1; then
    echo "temporal-setup: namespace $ns exists"
  else
    temporal operator namespace create --address "$address" --namespace "$ns" --retention "${TEMPORAL_NAMESPACE_RETENTION:-30d}"
    echo "temporal-setup: namespace $ns created"
  fi
}

case "${1:-}" in
  schema) schema ;;
  namespace) namespace ;;
  *) echo "usage: temporal-setup.sh schema|namespace" >&2; exit 2 ;;
esac
