"""Build of the ioq Python package: the C library and the SWIG module in one extension.

Two ways to build, found by this file's surroundings:

- From an sdist (``csrc/`` beside this file): the C sources, the public header and the
  SWIG-generated wrapper are in ``csrc/``; neither SWIG nor the ioq repository is needed,
  and every build file stays in this directory's ``build/``.
- From a checkout of ioq (bindings/python): the C sources are read from ../.. (or
  $IOQ_SOURCE_DIR); the wrapper comes from bindings/generated/python when ``make dist``
  made it, else SWIG (4.1 or newer, on PATH or named by $SWIG) generates it. Build files
  go to <source>/build/python-setuptools ($IOQ_PYTHON_BUILD_DIR overrides it), so the
  source tree stays clean:

      pip install --no-build-isolation --no-index bindings/python
      pip wheel --no-build-isolation --no-index --no-deps -w dist bindings/python

``python -m build --sdist`` (or setuptools' build_sdist hook) of a checkout copies what
the sdist needs into its ``csrc/``.

Environment: IOQ_WITH_URING=0 leaves the io_uring backend out, =1 requires it (default:
built when liburing.a and liburing.h are found).
"""
import glob
import os
import platform
import shutil
import subprocess
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
from setuptools.command.egg_info import egg_info
from setuptools.command.sdist import sdist

HERE = os.path.dirname(os.path.abspath(__file__))
BUNDLED = os.path.join(HERE, "csrc")
if os.path.isdir(BUNDLED):
    SOURCE = BUNDLED
    BUILD = os.path.join(HERE, "build")
else:
    SOURCE = os.path.abspath(os.environ.get("IOQ_SOURCE_DIR", os.path.join(HERE, "..", "..")))
    BUILD = os.path.abspath(os.environ.get(
        "IOQ_PYTHON_BUILD_DIR", os.path.join(SOURCE, "build", "python-setuptools")))
    if not os.path.exists(os.path.join(SOURCE, "abi", "include", "ioq.h")):
        # Stop before anything is written: BUILD would lie outside any ioq tree.
        sys.exit("ioq: the C sources are missing: build from an ioq sdist (it carries them "
                 "in csrc/), from bindings/python of an ioq source tree, or set "
                 "IOQ_SOURCE_DIR to one (looked in %s)" % SOURCE)
SWIG_DIR = os.path.join(BUILD, "swig")
# Made by `make dist`; an sdist carries it in csrc/.
GENERATED = os.path.join(SOURCE, "bindings", "generated", "python")
GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


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


def backend_platform():
    if sys.platform.startswith("linux"):
        return "linux"
    if sys.platform == "darwin":
        return "darwin"
    if "bsd" in sys.platform or sys.platform.startswith("dragonfly"):
        return "bsd"
    return sys.platform


def backend_sources(options):
    """The core/backend files this platform builds, from core/backend/sources.txt."""
    here = backend_platform()
    names = []
    with open(os.path.join(SOURCE, "core", "backend", "sources.txt"), encoding="utf-8") as f:
        for line in f:
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            wants = [w[1:] for w in fields[1:] if w.startswith("+")]
            if here in fields[1:] and all(w in options for w in wants):
                names.append(fields[0])
    return [os.path.join(SOURCE, "core", "backend", n) for n in names]


def c_sources(uring):
    core = sorted(glob.glob(os.path.join(SOURCE, "core", "*.c")))
    if not core:
        sys.exit("ioq: no C sources in %s/core (set IOQ_SOURCE_DIR)" % SOURCE)
    backend = backend_sources({"uring"} if uring else set())
    return core + [p for p in backend if os.path.exists(p)]


def run_swig():
    """Generate ioq_wrap.c and the proxy _ioq.py (once; both steps below need them)."""
    wrap = os.path.join(GENERATED, "ioq_wrap.c")
    proxy = os.path.join(GENERATED, "_ioq.py")
    if os.path.exists(wrap) and os.path.exists(proxy):
        return wrap, proxy
    wrap = os.path.join(SWIG_DIR, "ioq_wrap.c")
    proxy = os.path.join(SWIG_DIR, "_ioq.py")
    inputs = [os.path.join(SOURCE, "bindings", "swig", n) for n in ("ioq.i", "python.i", "pins.h")]
    inputs.append(os.path.join(SOURCE, "abi", "include", "ioq.h"))
    if os.path.exists(wrap) and os.path.exists(proxy):
        newest = max(os.path.getmtime(p) for p in inputs)
        if min(os.path.getmtime(wrap), os.path.getmtime(proxy)) >= newest:
            return wrap, proxy
    swig = os.environ.get("SWIG") or shutil.which("swig4.0") or shutil.which("swig")
    if not swig:
        sys.exit("ioq: swig was not found (install the Debian package swig), and there is "
                 "no pregenerated wrapper in %s (`make dist` makes one)" % GENERATED)
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
        os.makedirs(BUILD, exist_ok=True)
        if sys.platform.startswith("linux"):
            script = os.path.join(BUILD, "exports.map")
            with open(script, "w", encoding="ascii") as f:
                # Only the module's init function leaves the .so: the built-in ioq stays
                # private.
                f.write("{ global: PyInit___ioq; local: *; };\n")
            for ext in self.extensions:
                ext.extra_link_args.append("-Wl,--version-script=" + script)
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


class EggInfo(egg_info):
    """Keeps the .egg-info directory in the build directory, made when it is needed."""

    def initialize_options(self):
        super().initialize_options()
        self.egg_base = BUILD

    def finalize_options(self):
        os.makedirs(self.egg_base, exist_ok=True)
        super().finalize_options()


class Sdist(sdist):
    """Puts the C sources, the header and the generated wrapper into the sdist's csrc/."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        if SOURCE == BUNDLED:
            return  # an sdist made from an sdist: csrc/ is among the files already
        wrap, proxy = run_swig()
        csrc = os.path.join(base_dir, "csrc")
        for sub in ("abi/include", "core"):
            for path in sorted(glob.glob(os.path.join(SOURCE, sub, "**"), recursive=True)):
                if os.path.isfile(path):
                    self._put(path, os.path.join(csrc, os.path.relpath(path, SOURCE)))
        self._put(os.path.join(SOURCE, "packaging", "glibc-compat.h"),
                  os.path.join(csrc, "packaging", "glibc-compat.h"))
        out = os.path.join(csrc, "bindings", "generated", "python")
        self._put(wrap, os.path.join(out, "ioq_wrap.c"))
        self._put(proxy, os.path.join(out, "_ioq.py"))

    def _put(self, src, dst):
        self.mkpath(os.path.dirname(dst))
        self.copy_file(src, dst)


compile_args = ["-std=gnu11", "-pthread", "-fvisibility=hidden",
                "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
link_args = ["-pthread"]
if GLIBC:
    # Binds the few glibc functions whose default version is newer than glibc 2.17 to
    # their old version, so that the wheel runs on older systems (manylinux); and names
    # libpthread.so.0, which provides those versions there (an empty stub since 2.34).
    compile_args += ["-include", os.path.join(SOURCE, "packaging", "glibc-compat.h")]
    link_args += ["-Wl,--no-as-needed", "-l:libpthread.so.0", "-Wl,--as-needed"]

ext = Extension(
    "ioq.__ioq",
    sources=[],
    include_dirs=[os.path.join(SOURCE, "abi", "include"), os.path.join(SOURCE, "core")],
    define_macros=[("IOQ_STATIC", None), ("IOQ_BUILDING", None), ("_GNU_SOURCE", None)],
    extra_compile_args=compile_args,
    extra_link_args=link_args,
    extra_objects=[],
)

setup(
    name="ioq",
    version=version(),
    description="Completion-based asynchronous I/O (Python binding of the ioq C library)",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    # LICENSE here is a link to the repository's; an sdist holds the file itself.
    license="MIT",
    license_files=["LICENSE"],
    classifiers=["License :: OSI Approved :: MIT License"],
    python_requires=">=3.8",
    packages=["ioq"],
    package_data={"ioq": ["py.typed", "*.pyi"]},
    ext_modules=[ext],
    cmdclass={"build_py": BuildPy, "build_ext": BuildExt, "egg_info": EggInfo, "sdist": Sdist},
    options={"build": {"build_base": os.path.join(BUILD, "build")}},
    zip_safe=False,
)
