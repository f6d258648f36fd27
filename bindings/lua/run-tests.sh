#!/usr/bin/env bash
# The Lua suite: builds the rock into build/lua-tree (offline, from this checkout) and
# runs busted on tests/lua once per backend that works on this machine.
#   bash bindings/lua/run-tests.sh [busted options...]
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
tree="$root/build/lua-tree"

scripts/install-deps.sh lua

luarocks --lua-version 5.4 make --tree "$tree" packaging/ioq-1.1.0-1.rockspec >/dev/null

export LUA_PATH="$tree/share/lua/5.4/?.lua;$tree/share/lua/5.4/?/init.lua;;"
export LUA_CPATH="$tree/lib/lua/5.4/?.so;;"
busted=$(command -v busted)

# io_uring may be absent or forbidden (seccomp, sysctl): then only epoll runs.
backends=epoll
if lua5.4 -e 'local c = require "ioq_core"
  local o = c.loop_options(); o.size = 48; o.backend = c.BACKEND_URING
  local rc, l = c.loop_new(o); if rc ~= 0 then os.exit(1) end; c.loop_free(l)' 2>/dev/null
then
    backends="epoll io_uring"
fi

status=0
for backend in $backends; do
    echo "== ioq Lua suite, backend $backend"
    IOQ_BACKEND=$backend lua5.4 "$busted" --output=plainTerminal "$@" tests/lua || status=1
done
exit $status
