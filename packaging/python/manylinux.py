#!/usr/bin/env python3
"""Checks a Linux wheel of ioq against the manylinux rules and tags it.

    manylinux.py check FILE.so...          prints what each shared object needs
    manylinux.py tag WHEEL [--max 2.28]    checks every .so in WHEEL, then rewrites it as
                                           ioq-...-manylinux_2_<N>_<arch>.whl (in place)

A wheel may carry the tag manylinux_2_N when each of its shared objects needs only
libraries that every glibc system has (the manylinux policy's list) and no symbol version
newer than GLIBC_2.N. Both are read from the ELF files with readelf (binutils): the
NEEDED entries of the dynamic section and the version needs (.gnu.version_r). N is the
highest GLIBC version needed, but at least 17 (manylinux2014, the oldest tag pip still
installs from this kind of wheel). More than --max fails: ioq reaches newer kernel calls
through syscall(), and packaging/glibc-compat.h binds moved glibc functions to their old
versions; a failure names the symbols to look at.
"""
import argparse
import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

# The libraries of the manylinux policies (PEP 600 and auditwheel's policy file).
ALLOWED = {
    "libc.so.6", "libm.so.6", "libdl.so.2", "librt.so.1", "libpthread.so.0",
    "libresolv.so.2", "libutil.so.1", "libnsl.so.1", "libcrypt.so.1", "libgcc_s.so.1",
    "libstdc++.so.6", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1",
    "ld-linux-armhf.so.3", "ld64.so.2", "ld64.so.1", "ld-linux.so.2",
}
OLDEST = 17


def readelf(*args):
    try:
        return subprocess.run(["readelf", "-W"] + list(args), check=True, text=True,
                              stdout=subprocess.PIPE).stdout
    except FileNotFoundError:
        sys.exit("manylinux.py: readelf not found (install binutils)")


def inspect(path):
    """(needed libraries, {version: [symbols]} of libc versions, other versions)."""
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", readelf("-d", path))
    versions = {}
    other = set()
    needs = readelf("-V", path).split("Version needs section", 1)
    if len(needs) == 2:
        for name in re.findall(r"Name: (\S+)", needs[1]):
            if re.fullmatch(r"GLIBC_\d+(\.\d+)*", name):
                versions.setdefault(name, [])
            elif not name.startswith(("GCC_", "GLIBCXX_", "CXXABI_")):
                other.add(name)
    # Which symbols ask for which version (for the report).
    for line in readelf("--dyn-syms", path).splitlines():
        m = re.search(r"\bUND\s+(\S+)@(GLIBC_[\d.]+)", line)
        if m and m.group(2) in versions:
            versions[m.group(2)].append(m.group(1))
    return needed, versions, other


def glibc_minor(version):
    parts = version[len("GLIBC_"):].split(".")
    return (int(parts[0]), int(parts[1]) if len(parts) > 1 else 0)


def check(path, limit):
    """Prints the facts of one shared object; returns (ok, highest (major, minor))."""
    needed, versions, other = inspect(path)
    ok = True
    name = os.path.basename(path)
    top = max((glibc_minor(v) for v in versions), default=(2, 0))
    print("%s: NEEDED %s; highest symbol version GLIBC_%d.%d" % (name, ", ".join(needed), *top))
    bad_libs = [n for n in needed if n not in ALLOWED]
    if bad_libs:
        print("  not allowed by manylinux: %s (link it statically)" % ", ".join(bad_libs))
        ok = False
    if other:
        print("  unexpected symbol versions: %s" % ", ".join(sorted(other)))
        ok = False
    for v in sorted(versions, key=glibc_minor):
        if glibc_minor(v) > limit:
            print("  %s is newer than GLIBC_%d.%d: %s" % (
                v, *limit, ", ".join(sorted(set(versions[v])) or ["(no symbol named)"])))
            ok = False
    return ok, top


def parse_limit(text):
    major, minor = text.split(".")
    return (int(major), int(minor))


def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (name, digest, len(data))


def tag_wheel(wheel, limit):
    base = os.path.basename(wheel)
    m = re.fullmatch(r"(.+?-[^-]+)-([^-]+-[^-]+)-linux_([A-Za-z0-9_]+)\.whl", base)
    if not m:
        sys.exit("manylinux.py: %s is not a linux_<arch> wheel" % base)
    stem, pytags, arch = m.groups()
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        contents = {n: z.read(n) for n in names}
    tmp = tempfile.mkdtemp()
    try:
        ok = True
        top = (2, OLDEST)
        sos = [n for n in names if n.endswith(".so") or ".so." in n]
        if not sos:
            sys.exit("manylinux.py: no shared object in %s" % base)
        for n in sos:
            path = os.path.join(tmp, os.path.basename(n))
            with open(path, "wb") as f:
                f.write(contents[n])
            good, need = check(path, limit)
            ok = ok and good
            top = max(top, need)
    finally:
        shutil.rmtree(tmp)
    if not ok:
        sys.exit("manylinux.py: %s cannot be tagged manylinux_%d_%d" % (base, *limit))
    plats = ["manylinux_%d_%d_%s" % (top[0], top[1], arch)]
    if top == (2, 17):
        plats.append("manylinux2014_%s" % arch)
    info = next(n for n in names if re.fullmatch(r"[^/]+\.dist-info/WHEEL", n))
    lines = [l for l in contents[info].decode().splitlines() if l and not l.startswith("Tag:")]
    lines += ["Tag: %s-%s" % (pytags, p) for p in plats]
    contents[info] = ("\n".join(lines) + "\n").encode()
    record = info[:-len("WHEEL")] + "RECORD"
    rows = []
    for row in contents[record].decode().splitlines():
        name = row.split(",", 1)[0]
        rows.append(record_line(name, contents[name]) if name == info else row)
    contents[record] = ("\n".join(rows) + "\n").encode()
    out = os.path.join(os.path.dirname(wheel), "%s-%s-%s.whl" % (stem, pytags, ".".join(plats)))
    with zipfile.ZipFile(out + ".tmp", "w", zipfile.ZIP_DEFLATED) as z:
        for n in names:
            z.writestr(n, contents[n])
    os.replace(out + ".tmp", out)
    if out != wheel:
        os.remove(wheel)
    print(os.path.basename(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("files", nargs="+")
    c.add_argument("--max", default="2.28")
    t = sub.add_parser("tag")
    t.add_argument("wheel")
    t.add_argument("--max", default="2.28")
    args = ap.parse_args()
    limit = parse_limit(args.max)
    if args.cmd == "check":
        ok = all([check(f, limit)[0] for f in args.files])
        sys.exit(0 if ok else 1)
    tag_wheel(args.wheel, limit)


if __name__ == "__main__":
    main()
