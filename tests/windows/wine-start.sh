#!/bin/sh
# Makes the WINEPREFIX (from the environment) and starts one persistent wineserver for the
# whole test run. Every descriptor is detached from the caller: the server and wine's
# services outlive this script, and ctest waits until no process holds its output pipe.
# Usage: wine-start.sh WINESERVER WINEBOOT
exec </dev/null >/dev/null 2>&1
mkdir -p "$WINEPREFIX"
"$1" -k
"$1" -w
"$1" -p && "$2" -i
