#!/usr/bin/env bash
# A private PostgreSQL server for the tests and benchmarks: initdb and pg_ctl on a free loopback
# port, its socket and data in a fresh directory under $TMPDIR. As root, the server runs as the
# `postgres` user (PostgreSQL refuses to run as root).
#
#   pg_server.sh start STATE   start; STATE/env gets PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE
#                              (and CBX_PG_DIR, CBX_PG_BIN) for `source`
#   pg_server.sh restart STATE pg_ctl restart -m fast (connections are dropped)
#   pg_server.sh stop STATE    stop it and remove its directory
#
# Exit 77 when PostgreSQL's server programs are not installed (scripts/deps test installs them).
set -euo pipefail

cmd=${1:?usage: pg_server.sh start|restart|stop STATE}
state=${2:?usage: pg_server.sh start|restart|stop STATE}

bin=""
for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && bin=$d
done
if [ -z "$bin" ]; then
    echo "pg_server: PostgreSQL's initdb/pg_ctl not found (apt-get install postgresql)" >&2
    exit 77
fi

as_server() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_opts() {
    echo "-p $PGPORT -k $CBX_PG_DIR/sock -c listen_addresses=127.0.0.1 -c max_connections=100"
}

case "$cmd" in
start)
    mkdir -p "$state"
    # as root the server runs as postgres, which must reach the directory: /tmp, not a TMPDIR
    # that may sit under a private home
    base=${TMPDIR:-/tmp}
    [ "$(id -u)" -eq 0 ] && base=/tmp
    dir=$(mktemp -d "$base/cbx-pg.XXXXXX")
    mkdir -p "$dir/sock"
    echo "cbx-test-pw" >"$dir/pw"
    [ "$(id -u)" -eq 0 ] && chown -R postgres: "$dir"
    as_server "$bin/initdb" -D "$dir/data" -U cbx --pwfile="$dir/pw" --auth-local=trust \
        --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        exit 1
    }
    export CBX_PG_DIR=$dir
    started=""
    for _ in 1 2 3 4 5 6 7 8; do
        PGPORT=$((20000 + RANDOM % 30000))
        if as_server "$bin/pg_ctl" -D "$dir/data" -o "$(pg_opts)" -l "$dir/server.log" -w -t 60 \
            start >/dev/null 2>&1; then
            started=1
            break
        fi
    done
    if [ -z "$started" ]; then
        echo "pg_server: the server did not start; its log:" >&2
        cat "$dir/server.log" >&2
        exit 1
    fi
    cat >"$state/env" <<ENV
export PGHOST=127.0.0.1 PGPORT=$PGPORT PGUSER=cbx PGPASSWORD=cbx-test-pw PGDATABASE=postgres
export CBX_PG_DIR=$dir CBX_PG_BIN=$bin
ENV
    echo "pg_server: PostgreSQL $("$bin/postgres" -V | awk '{print $3}') on 127.0.0.1:$PGPORT ($dir)" >&2
    ;;
restart)
    # shellcheck disable=SC1091
    source "$state/env"
    as_server "$bin/pg_ctl" -D "$CBX_PG_DIR/data" -o "$(pg_opts)" -l "$CBX_PG_DIR/server.log" \
        -m fast -w -t 60 restart >/dev/null
    ;;
stop)
    [ -f "$state/env" ] || exit 0
    # shellcheck disable=SC1091
    source "$state/env"
    as_server "$bin/pg_ctl" -D "$CBX_PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$CBX_PG_DIR" "$state/env"
    ;;
*)
    echo "usage: pg_server.sh start|restart|stop STATE" >&2
    exit 2
    ;;
esac
