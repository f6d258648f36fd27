#!/usr/bin/env bash
# Installs the Debian packages that a part of ioq needs, and only those that are missing.
# Usage: scripts/install-deps.sh GROUP...
#   groups: c bench python lua d rust dist windows macos
# Quiet and without network access when everything is already installed.
set -euo pipefail

usage() {
    echo "usage: $0 GROUP... (c bench python lua d rust dist windows macos tools)" >&2
    exit 2
}

packages_of() {
    case $1 in
        c)       echo cmake make gcc g++ clang pkg-config libcmocka-dev liburing-dev \
                      abigail-tools valgrind libclang-rt-14-dev binutils ;;
        bench)   echo libuv1-dev libev-dev libevent-dev wrk hyperfine gnuplot-nox python3 \
                      python3-uvloop strace lua5.4 liblua5.4-dev lua-luv swig ;;
        python)  echo python3 python3-dev python3-pytest python3-setuptools python3-wheel \
                      python3-venv python3-uvloop swig ;;
        lua)     echo lua5.4 liblua5.4-dev luarocks lua-busted lua-luv swig ;;
        d)       echo ldc dub swig ;;
        rust)    echo bindgen librust-cc-dev ;;
        # make dist and make test-dist: every binding's build tools, offline.
        dist)    echo swig binutils python3 python3-dev python3-setuptools python3-wheel \
                      python3-venv lua5.4 liblua5.4-dev luarocks ldc dub librust-cc-dev ;;
        windows) echo gcc-mingw-w64-x86-64 wine wine64 ;;
        macos)   echo nodejs npm ;;
        tools)   echo file ;;
        *)       echo "unknown group: $1" >&2; usage ;;
    esac
}

[ $# -gt 0 ] || usage

wanted=()
for group in "$@"; do
    # shellcheck disable=SC2207
    wanted+=($(packages_of "$group"))
done

missing=()
for pkg in "${wanted[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        case " ${missing[*]-} " in
            *" $pkg "*) ;;
            *) missing+=("$pkg") ;;
        esac
    fi
done

if [ ${#missing[@]} -gt 0 ]; then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo=(sudo)
    fi
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# cargo and rustc are not Debian packages here: they come with the machine.
for group in "$@"; do
    if [ "$group" = rust ] || [ "$group" = dist ]; then
        for tool in cargo rustc; do
            if ! command -v "$tool" >/dev/null 2>&1; then
                echo "install-deps: $tool is not on PATH; install a Rust toolchain" >&2
                exit 1
            fi
        done
    fi
done
