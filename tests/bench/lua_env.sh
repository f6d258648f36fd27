#!/usr/bin/env bash
# Makes the ioq Lua modules loadable by the Lua benchmark servers (tests/bench/echo_lua.lua)
# and prints the shell lines that point Lua 5.4 at them:
#
#   eval "$(tests/bench/lua_env.sh BUILD-DIR)"
#   lua5.4 tests/bench/echo_lua.lua ioq 127.0.0.1:7000
#
# ioq_core.so is built (incrementally, with bindings/lua/Makefile, the recipe of the rock)
# into BUILD-DIR/lua-bench; the pure Lua modules ioq and ioq.co are read from
# bindings/lua in this checkout, so an edit there needs no rebuild. The system's own
# modules (luv from Debian's lua-luv) stay reachable: the default paths are kept (";;").
# Prints the two export lines on stdout and nothing else; build output goes to stderr.
# Exits non-zero (and prints nothing on stdout) when the module cannot be built, so that
# a caller can leave the Lua variants out.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: lua_env.sh BUILD-DIR" >&2; exit 2; }
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)/lua-bench

# The Makefile names sources relative to the repository root.
if ! make -s -C "$root" -f bindings/lua/Makefile OUT="$out" >&2; then
  echo "lua_env.sh: building ioq_core.so failed (needs swig, a C compiler, liblua5.4-dev)" >&2
  exit 1
fi
printf 'export LUA_PATH=%q\n' "$root/bindings/lua/?.lua;$root/bindings/lua/?/init.lua;;"
printf 'export LUA_CPATH=%q\n' "$out/?.so;;"
