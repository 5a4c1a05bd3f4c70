#!/usr/bin/env bash
# h2o and the libraries it brings are loaded by cbx-serve only: `cbx --version`, `cbx exec` and
# `cbx serve --help` map none of them.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/serve_lib.bash"

libs() { LD_DEBUG=libs "$@" 2>&1 >/dev/null | sed -n 's/.*calling init: //p'; }
for cmd in "--version" "exec --no-journal -- true" "serve --help"; do
    # shellcheck disable=SC2086
    out=$(libs "$CBX" $cmd)
    [ -n "$out" ] || fail "LD_DEBUG showed nothing for cbx $cmd"
    echo "$out" | grep -E 'libh2o|libssl|libcrypto|libwslay' &&
        fail "cbx $cmd loads a server library"
done
libs "$SERVE_BIN" --version | grep -q libh2o || fail "cbx-serve does not load libh2o (LD_DEBUG)"
echo "ok [$TEST]"
