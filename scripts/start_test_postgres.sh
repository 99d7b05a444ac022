#!/usr/bin/env bash
# Starts (idempotently) a throw-away PostgreSQL 15 cluster for the store tests and prints its URL
# on the last line: postgresql+psycopg://postgres@127.0.0.1:55432/prefine_test
# Data under /tmp (PREFINE_PG_DATA to override), trust auth on loopback only. Run by root, the server
# runs as user postgres; run by anyone else, it runs as that user (with a superuser named postgres).
set -euo pipefail
BIN=/usr/lib/postgresql/15/bin
DATA=${PREFINE_PG_DATA:-/tmp/prefine-pg15}
PORT=55432
DB=prefine_test
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
[ -x "$BIN/initdb" ] || { echo "PostgreSQL 15 is not installed ($BIN/initdb missing): apt-get install postgresql-15" >&2; exit 1; }
if [ ! -s "$DATA/PG_VERSION" ]; then
  mkdir -p "$DATA"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$DATA"
  chmod 700 "$DATA"
  as_postgres "$BIN/initdb" -D "$DATA" -U postgres -A trust --auth-host=trust --auth-local=trust -E UTF8 >/dev/null
fi
if ! as_postgres "$BIN/pg_isready" -q -h 127.0.0.1 -p $PORT; then
  # a server killed with its session leaves postmaster.pid behind, and its PID may since belong to
  # another process, which makes pg_ctl believe it still runs: nothing answers on the port, so it is stale
  rm -f "$DATA/postmaster.pid"
  as_postgres "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 start \
    -o "-p $PORT -c listen_addresses=127.0.0.1 -k /tmp -c max_connections=200 -c fsync=on" >/dev/null
fi
if ! as_postgres "$BIN/psql" -h 127.0.0.1 -p $PORT -U postgres -Atc "SELECT 1 FROM pg_database WHERE datname='$DB'" | grep -q 1; then
  as_postgres "$BIN/createdb" -h 127.0.0.1 -p $PORT -U postgres "$DB"
fi
echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/$DB"
