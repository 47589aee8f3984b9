#!/usr/bin/env bash
# pgBackRest with its wall time recorded, for bench/overhead.ts (PGDR_PGBACKREST_BIN=<this file>).
# Runs the real pgBackRest ($PGDR_REAL_PGBACKREST, default `pgbackrest`) with the same arguments, stdin,
# stdout and stderr, exits with its exit code, and appends one line to $PGDR_BENCH_TIMING_FILE:
#   <command> <start> <end> <exit code> <pid>      (times: epoch seconds with microseconds, $EPOCHREALTIME)
# No fork besides pgBackRest itself, so what it adds (bash start-up, ~2 ms) is counted as pgdr's time.
set -u
cmd=""
for a in "$@"; do
  case "$a" in --*) ;; *) cmd="$a"; break ;; esac
done
start=$EPOCHREALTIME
"${PGDR_REAL_PGBACKREST:-pgbackrest}" "$@"
rc=$?
end=$EPOCHREALTIME
if [ -n "${PGDR_BENCH_TIMING_FILE:-}" ]; then echo "${cmd:-?} $start $end $rc $$" >>"$PGDR_BENCH_TIMING_FILE"; fi
exit $rc
