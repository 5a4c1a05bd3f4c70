#!/usr/bin/env bash
# Run a command with a private PostgreSQL server started for it (pg_server.sh) and stopped after,
# whatever happens; its address in PGHOST/PGPORT/..., and CBX_PG_STATE and CBX_PG_SERVER so that
# the command can restart it. Exit 77 (skip) when PostgreSQL is not installed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
state=$(mktemp -d "${TMPDIR:-/tmp}/cbx-pg-state.XXXXXX")
trap 'bash "$here/pg_server.sh" stop "$state"; rm -rf "$state"' EXIT
bash "$here/pg_server.sh" start "$state"
rc=$?
[ $rc -eq 0 ] || exit $rc
# shellcheck disable=SC1091
source "$state/env"
export CBX_PG_STATE=$state CBX_PG_SERVER=$here/pg_server.sh
"$@"
