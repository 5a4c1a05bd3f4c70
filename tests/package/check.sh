#!/usr/bin/env bash
# `make install PREFIX=...` into a new prefix, then build a program against it the two ways the
# README gives: pkg-config and find_package(cbx). Checks that the install wrote that prefix
# (also into cbx.pc) with the manual pages and completion scripts, built no tests or
# benchmarks, and that both programs run.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cbx-package.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"

fail() {
    echo "FAIL [package]: $*" >&2
    exit 1
}

make -C "$root" --no-print-directory install PREFIX="$prefix" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log" >&2; fail "make install PREFIX=$prefix"; }
[ -x "$prefix/bin/cbx" ] || fail "no cbx in $prefix/bin"
pc=$(find "$prefix" -name cbx.pc | head -1)
[ -n "$pc" ] || fail "no cbx.pc under $prefix"
grep -qx "prefix=$prefix" "$pc" || fail "cbx.pc names another prefix: $(grep ^prefix= "$pc")"
# the manual pages (one per subcommand) and the completion scripts
for cmd in $("$prefix/bin/cbx" --help | awk '/^Commands:/ { on = 1; next } on && /^$/ { exit }
        on && /^  [a-z]/ && $1 != "help" { print $1 }'); do
    [ -s "$prefix/share/man/man1/cbx-$cmd.1" ] || fail "no manual page cbx-$cmd.1 installed"
done
[ -s "$prefix/share/man/man1/cbx.1" ] || fail "no manual page cbx.1 installed"
[ -s "$prefix/share/bash-completion/completions/cbx" ] || fail "no bash completion installed"
[ -s "$prefix/share/zsh/site-functions/_cbx" ] || fail "no zsh completion installed"
[ ! -e "$root/build-install/tests" ] || fail "make install built the tests"
[ ! -e "$root/build-install/bench" ] || fail "make install built the benchmarks"

libdir=$(dirname "$(dirname "$pc")")
export PKG_CONFIG_PATH="$libdir/pkgconfig"
export LD_LIBRARY_PATH="$libdir"
# shellcheck disable=SC2046
cc -o "$tmp/by_pkgconfig" "$root/tests/package/consumer.c" $(pkg-config --cflags --libs cbx) ||
    fail "building against pkg-config --cflags --libs cbx"
[ "$("$tmp/by_pkgconfig")" = "open" ] || fail "the pkg-config build does not run"

cmake -S "$root/tests/package" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
    >"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log" >&2; fail "find_package(cbx)"; }
cmake --build "$tmp/consumer" >"$tmp/build.log" 2>&1 ||
    { cat "$tmp/build.log" >&2; fail "building with cbx::cbx"; }
[ "$("$tmp/consumer/consumer")" = "open" ] || fail "the find_package build does not run"
echo "package: make install PREFIX, pkg-config and find_package(cbx) work"
