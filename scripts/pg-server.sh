#!/usr/bin/env bash
# A private PostgreSQL server on loopback for the tests: Debian's
# `postgresql` binaries, a fresh cluster in DIR run by the `postgres` user,
# trust authentication on loopback only, fsync off (test data only).
#
#   scripts/pg-server.sh start DIR PORT   initdb DIR (if new), start, print the postmaster's pid
#   scripts/pg-server.sh stop DIR         stop it (fast shutdown)
#
# The tests then use IMGAPI_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:PORT/postgres
set -euo pipefail

die() { echo "pg-server.sh: $*" >&2; exit 1; }

bindir() {
  local d
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir; return
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ]; then echo "$d"; return; fi
  done
  die "no PostgreSQL server binaries (initdb) under /usr/lib/postgresql/*/bin: apt-get install postgresql"
}

# Run a command as the postgres user (directly when already that user).
as_pg() {
  if [ "$(id -un)" = postgres ]; then "$@"
  elif command -v runuser >/dev/null 2>&1; then runuser -u postgres -- "$@"
  else su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
  fi
}

case "${1:-}" in
  start)
    [ $# -eq 3 ] || die "usage: $0 start DIR PORT"
    dir=$2; port=$3
    bin=$(bindir)
    id postgres >/dev/null 2>&1 || die "there is no postgres user (install the postgresql package)"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    chown postgres: "$dir"
    chmod 700 "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --no-locale \
        >"$dir/initdb.log" 2>&1 || die "initdb failed; see $dir/initdb.log"
      # Loopback only, trust (a private test server).
      cat >"$dir/data/pg_hba.conf" <<'EOF'
local all all trust
host all all 127.0.0.1/32 trust
host all all ::1/128 trust
EOF
    fi
    if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      die "port $port is in use"
    fi
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
      start >/dev/null || die "the server did not start; see $dir/server.log"
    head -1 "$dir/data/postmaster.pid" ;;
  stop)
    [ $# -eq 2 ] || die "usage: $0 stop DIR"
    dir=$(cd "$2" && pwd)
    [ -f "$dir/data/postmaster.pid" ] || exit 0
    as_pg "$(bindir)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || die "could not stop the server in $dir" ;;
  *) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
