#!/usr/bin/env bash
# Installs the Debian packages that a part of ioq needs, and only those that are missing.
# Usage: scripts/install-deps.sh [--check] GROUP...
#   groups: c bench python lua d rust dist windows macos
#   --check: install nothing; exit 0 when every package is there, 1 otherwise.
# Quiet and without network access when everything is already installed. When another apt
# or dpkg holds the package lock, it waits for it (up to IOQ_APT_LOCK_WAIT seconds, 900).
set -euo pipefail

usage() {
    echo "usage: $0 [--check] GROUP... (c bench python lua d rust dist windows macos tools)" >&2
    exit 2
}

check=0
if [ "${1:-}" = --check ]; then
    check=1
    shift
fi

packages_of() {
    case $1 in
        c)       echo cmake make gcc g++ clang pkg-config libcmocka-dev liburing-dev \
                      abigail-tools valgrind libclang-rt-14-dev binutils ;;
        bench)   echo libuv1-dev libev-dev libevent-dev wrk hyperfine gnuplot-nox python3 \
                      python3-uvloop python3-aiohttp strace lua5.4 liblua5.4-dev lua-luv swig \
                      librust-tokio-dev librust-futures-util-dev ;;
        python)  echo python3 python3-dev python3-pytest python3-setuptools python3-wheel \
                      python3-venv python3-uvloop python3-aiohttp libpython3.11-testsuite swig ;;
        lua)     echo lua5.4 liblua5.4-dev luarocks lua-busted lua-luv swig ;;
        d)       echo ldc dub swig ;;
        # The Rust binding: bindgen, the cc crate (ioq-sys's build), and the crates of the
        # ioq crate's optional features and tests, from Debian's directory registry
        # (/usr/share/cargo/registry; see bindings/rust/.cargo/config.toml).
        rust)    echo bindgen librust-cc-dev librust-tokio-dev librust-tokio-util-dev \
                      librust-futures-io-dev librust-futures-util-dev ;;
        # make dist and make test-dist: every binding's build tools, offline.
        dist)    echo swig binutils python3 python3-dev python3-setuptools python3-wheel \
                      python3-venv lua5.4 liblua5.4-dev luarocks ldc dub librust-cc-dev \
                      librust-tokio-dev librust-tokio-util-dev librust-futures-io-dev \
                      librust-futures-util-dev ;;
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

# One dpkg-query for every package: the common case (nothing missing) costs one process.
installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${wanted[@]}" 2>/dev/null || true)
missing=()
for pkg in "${wanted[@]}"; do
    if ! grep -qx "$pkg install ok installed" <<<"$installed"; then
        case " ${missing[*]-} " in
            *" $pkg "*) ;;
            *) missing+=("$pkg") ;;
        esac
    fi
done

if [ "$check" = 1 ]; then
    [ ${#missing[@]} -eq 0 ]
    exit
fi

# apt-get, waiting while another apt or dpkg (someone else's install, unattended upgrades)
# holds a lock instead of failing at once. DPkg::Lock::Timeout covers the dpkg lock; the
# lists lock of apt-get update is retried here.
apt_wait() {
    local deadline=$((SECONDS + ${IOQ_APT_LOCK_WAIT:-900})) err
    err=$(mktemp)
    while :; do
        if "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get \
            -o DPkg::Lock::Timeout="${IOQ_APT_LOCK_WAIT:-900}" "$@" 2>"$err"; then
            rm -f "$err"
            return 0
        fi
        if grep -q "Could not get lock\|Unable to lock\|Unable to acquire" "$err" &&
           [ $SECONDS -lt $deadline ]; then
            echo "install-deps: apt is busy (another install holds its lock); waiting" >&2
            sleep 10
            continue
        fi
        cat "$err" >&2
        rm -f "$err"
        return 1
    done
}

if [ ${#missing[@]} -gt 0 ]; then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo=(sudo)
    fi
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt_wait update -qq
    apt_wait install -y -qq --no-install-recommends "${missing[@]}"
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
