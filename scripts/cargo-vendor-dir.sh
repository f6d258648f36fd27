#!/usr/bin/env bash
# Makes a cargo directory source that holds Debian's crate sources (the directory named in
# bindings/rust/.cargo/config.toml) plus the given .crate files, unpacked: how the
# packaged ioq crates are built and used offline, as if they came from a registry.
#   scripts/cargo-vendor-dir.sh OUTDIR FILE.crate...
# Use it with: cargo --config 'source.debian-packages.directory="OUTDIR"' ...
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out=$1
shift
registry="$(sed -n 's/^directory = "\(.*\)"$/\1/p' "$root/bindings/rust/.cargo/config.toml")"
[ -d "$registry" ] || { echo "cargo-vendor-dir: no crate directory $registry" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out"
for crate in "$@"; do
    base="$(basename "$crate" .crate)"
    tar -C "$out" -xzf "$crate"
    sum="$(sha256sum "$crate" | cut -d' ' -f1)"
    printf '{"files":{},"package":"%s"}\n' "$sum" > "$out/$base/.cargo-checksum.json"
done
for dir in "$registry"/*/; do
    dir="${dir%/}"
    [ -e "$out/$(basename "$dir")" ] || ln -s "$dir" "$out/$(basename "$dir")"
done
