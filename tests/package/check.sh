#!/usr/bin/env bash
# `make install PREFIX=...` into a new prefix, then build a program against it the two ways the
# README gives: pkg-config and find_package(cbx). Checks that the install wrote that prefix
# (also into cbx.pc), built no tests or benchmarks, and that both programs run.
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
