"""Build of the ioq Python package: the C library and the SWIG module, from source.

The C sources are not copied into this directory: they are read from the ioq source tree,
found as ../.. of this file or through the environment variable IOQ_SOURCE_DIR. pip builds
local directories in place, so

    pip install --no-build-isolation --no-index bindings/python
    pip wheel --no-build-isolation --no-index --no-deps -w dist bindings/python

work from a checkout of ioq. Build files go to <source>/build/python-setuptools
(IOQ_PYTHON_BUILD_DIR overrides it), so the source tree stays clean.

Environment: IOQ_WITH_URING=0 leaves the io_uring backend out, =1 requires it (default:
built when liburing.a and liburing.h are found). SWIG (4.1 or newer) must be on PATH or
named by SWIG.
"""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.environ.get("IOQ_SOURCE_DIR", os.path.join(HERE, "..", "..")))
BUILD = os.path.abspath(
    os.environ.get("IOQ_PYTHON_BUILD_DIR", os.path.join(SOURCE, "build", "python-setuptools")))
SWIG_DIR = os.path.join(BUILD, "swig")


def version():
    header = os.path.join(SOURCE, "abi", "include", "ioq.h")
    try:
        with open(header, encoding="utf-8") as f:
            for line in f:
                if line.startswith("#define IOQ_VERSION_STRING"):
                    return line.split('"')[1]
    except OSError:
        pass
    return "0.0.0"


def find_liburing():
    """Return the path of liburing.a when the io_uring backend should be built, else None."""
    want = os.environ.get("IOQ_WITH_URING", "auto").lower()
    if want in ("0", "off", "no", "false"):
        return None
    dirs = []
    multiarch = sysconfig.get_config_var("MULTIARCH")
    for prefix in ("/usr", "/usr/local"):
        if multiarch:
            dirs.append(os.path.join(prefix, "lib", multiarch))
        dirs += [os.path.join(prefix, "lib64"), os.path.join(prefix, "lib")]
    archive = next((os.path.join(d, "liburing.a") for d in dirs
                    if os.path.exists(os.path.join(d, "liburing.a"))), None)
    header = any(os.path.exists(os.path.join(p, "include", "liburing.h"))
                 for p in ("/usr", "/usr/local"))
    found = archive if (archive and header) else None
    if found is None and want in ("1", "on", "yes", "true"):
        sys.exit("IOQ_WITH_URING=1 but liburing.a / liburing.h were not found")
    return found


def c_sources(uring):
    core = sorted(glob.glob(os.path.join(SOURCE, "core", "*.c")))
    if not core:
        sys.exit("ioq: no C sources in %s/core (set IOQ_SOURCE_DIR)" % SOURCE)
    names = ["posix.c", "readiness.c"]
    if sys.platform.startswith("linux"):
        names.append("epoll.c")
        if uring:
            names.append("uring.c")
    elif sys.platform == "darwin" or "bsd" in sys.platform:
        names.append("kqueue.c")
    backend = [os.path.join(SOURCE, "core", "backend", n) for n in names]
    return core + [p for p in backend if os.path.exists(p)]


def run_swig():
    """Generate ioq_wrap.c and the proxy _ioq.py (once; both steps below need them)."""
    wrap = os.path.join(SWIG_DIR, "ioq_wrap.c")
    proxy = os.path.join(SWIG_DIR, "_ioq.py")
    inputs = [os.path.join(SOURCE, "bindings", "swig", n) for n in ("ioq.i", "python.i")]
    inputs.append(os.path.join(SOURCE, "abi", "include", "ioq.h"))
    if os.path.exists(wrap) and os.path.exists(proxy):
        newest = max(os.path.getmtime(p) for p in inputs)
        if min(os.path.getmtime(wrap), os.path.getmtime(proxy)) >= newest:
            return wrap, proxy
    swig = os.environ.get("SWIG") or shutil.which("swig4.0") or shutil.which("swig")
    if not swig:
        sys.exit("ioq: swig was not found (install the Debian package swig)")
    os.makedirs(SWIG_DIR, exist_ok=True)
    cmd = [swig, "-python", "-I" + os.path.join(SOURCE, "abi", "include"),
           "-I" + os.path.join(SOURCE, "bindings", "swig"),
           "-outdir", SWIG_DIR, "-o", wrap, inputs[0]]
    print(" ".join(cmd))
    subprocess.check_call(cmd)
    return wrap, proxy


class BuildPy(build_py):
    # build_py runs before build_ext, so the SWIG proxy module is made here.
    def run(self):
        super().run()
        _, proxy = run_swig()
        target = os.path.join(self.build_lib, "ioq")
        os.makedirs(target, exist_ok=True)
        self.copy_file(proxy, os.path.join(target, "_ioq.py"))

    def get_outputs(self, include_bytecode=1):
        return super().get_outputs(include_bytecode) + [
            os.path.join(self.build_lib, "ioq", "_ioq.py")]


class BuildExt(build_ext):
    def run(self):
        wrap, proxy = run_swig()
        uring = find_liburing()
        if not os.path.exists(os.path.join(SOURCE, "core", "backend", "uring.c")):
            uring = None
        for ext in self.extensions:
            ext.sources = [wrap] + c_sources(uring)
            if uring:
                ext.define_macros.append(("IOQ_HAVE_URING", "1"))
                ext.extra_objects.append(uring)
        # Timestamps do not see a changed backend set or macro: always compile afresh.
        self.force = True
        super().run()
        # An editable or in-place build still needs the proxy beside the extension.
        if self.inplace:
            shutil.copy(proxy, os.path.join(HERE, "ioq", "_ioq.py"))


script = os.path.join(BUILD, "exports.map")
os.makedirs(BUILD, exist_ok=True)
with open(script, "w", encoding="ascii") as f:
    # Only the module's init function leaves the .so: the statically built ioq stays private.
    f.write("{ global: PyInit___ioq; local: *; };\n")

ext = Extension(
    "ioq.__ioq",
    sources=[],
    include_dirs=[os.path.join(SOURCE, "abi", "include"), os.path.join(SOURCE, "core")],
    define_macros=[("IOQ_STATIC", None), ("IOQ_BUILDING", None), ("_GNU_SOURCE", None)],
    extra_compile_args=["-std=gnu11", "-pthread", "-fvisibility=hidden",
                        "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
    extra_link_args=["-pthread", "-Wl,--version-script=" + script],
    extra_objects=[],
)

setup(
    name="ioq",
    version=version(),
    description="Completion-based asynchronous I/O (Python binding of the ioq C library)",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.8",
    packages=["ioq"],
    ext_modules=[ext],
    cmdclass={"build_py": BuildPy, "build_ext": BuildExt},
    options={
        "build": {"build_base": os.path.join(BUILD, "build")},
        "egg_info": {"egg_base": BUILD},
    },
    zip_safe=False,
)
