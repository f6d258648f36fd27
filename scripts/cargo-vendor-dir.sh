#!/usr/bin/env bash
# Makes a cargo directory source that holds Debian's crate sources (the directory named in
# bindings/rust/.cargo/config.toml) plus the given .crate files, unpacked: how the
# packaged ioq crates are built and used offline, as if they came from a registry.
#   scripts/cargo-vendor-dir.sh OUTDIR FILE.crate...
# Prints the cargo --config argument that makes the replaced crates.io read OUTDIR:
#   cargo --config "$(scripts/cargo-vendor-dir.sh OUTDIR a.crate)" build ...
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out=$1
shift
config="$root/bindings/rust/.cargo/config.toml"
source="$(sed -n 's/^replace-with *= *"\(.*\)"/\1/p' "$config" | head -n 1)"
registry="$(sed -n 's/^directory *= *"\(.*\)"/\1/p' "$config" | head -n 1)"
[ -n "$source" ] || { echo "cargo-vendor-dir: no replace-with in $config" >&2; exit 1; }
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
printf 'source.%s.directory="%s"\n' "$source" "$out"
