#!/usr/bin/env bash
# pgBackRest with stop points, for deterministic crash tests (PGDR_PGBACKREST_BIN=<this file>).
# When $PGDR_HOOK_DIR/pgbackrest-<command>.hold exists, the wrapper writes its pid to
# $PGDR_HOOK_DIR/pgbackrest-<command>.reached and waits until the .hold file is removed; then it runs the
# real pgBackRest. A test kills the worker while the command waits: what is left is a stray pgBackRest.
set -u
cmd=""
for a in "$@"; do
  case "$a" in --*) ;; *) cmd="$a"; break ;; esac
done
dir="${PGDR_HOOK_DIR:-}"
if [ -n "$dir" ] && [ -n "$cmd" ] && [ -e "$dir/pgbackrest-$cmd.hold" ]; then
  echo $$ > "$dir/pgbackrest-$cmd.reached"
  while [ -e "$dir/pgbackrest-$cmd.hold" ]; do sleep 0.05; done
fi
exec "${PGDR_REAL_PGBACKREST:-pgbackrest}" "$@"
