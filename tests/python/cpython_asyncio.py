"""CPython's own asyncio tests (test.test_asyncio) against ioq.aio.EventLoop.

Runs the loop-generic test modules once on asyncio's default loop and once per ioq backend,
each module in its own process, and prints per module the passed / failed / skipped counts
side by side. Fails (exit 1) when ioq fails a test that the default loop passes.

    python3 tests/python/cpython_asyncio.py [--backends epoll,io_uring] [--modules a,b]
                                            [--jobs N] [-v]

The loop reaches the tests through their own hooks: ``create_event_loop()`` (test_events,
test_sock_lowlevel, test_sendfile), ``new_loop()`` (test_server, test_buffered_proto) and
the event loop policy (the other modules: asyncio's default policy makes ioq loops).
Needs the test package of CPython (Debian: libpython3.X-testsuite).
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import time

# module -> (hook, class whose loop is replaced); policy modules run every class.
MODULES = {
    "test_events": ("create_event_loop", "EPollEventLoopTests"),
    "test_sock_lowlevel": ("create_event_loop", "EPollEventLoopTests"),
    "test_sendfile": ("create_event_loop", "EPollEventLoopTests"),
    "test_server": ("new_loop", "SelectorStartServerTests"),
    "test_buffered_proto": ("new_loop", "BufferedProtocolSelectorTests"),
    "test_streams": ("policy", None),
    "test_subprocess": ("policy", None),
    "test_ssl": ("policy", None),
    "test_timeouts": ("policy", None),
    "test_taskgroups": ("policy", None),
    "test_locks": ("policy", None),
    "test_queues": ("policy", None),
    "test_waitfor": ("policy", None),
}

# Tests skipped on ioq's loop, with the reason (bindings/python/README.md lists them too).
# Keys: "Class.method" of the original test class.
SKIPS = {
}

PER_TEST_TIMEOUT = 60


def child(module, loop_kind):
    """Run one module in this process and print one JSON line per test."""
    import faulthandler
    import unittest
    import importlib
    import asyncio
    from asyncio import unix_events

    mod = importlib.import_module("test.test_asyncio." + module)
    hook, cls_name = MODULES[module]
    loader = unittest.TestLoader()
    if loop_kind == "ioq":
        import ioq.aio
        factory = ioq.aio.EventLoop
    if hook == "policy":
        if loop_kind == "ioq":
            # asyncio.new_event_loop(), asyncio.run(), IsolatedAsyncioTestCase and
            # DefaultEventLoopPolicy() all go through the default policy's factory, also
            # after a test resets the policy with set_event_loop_policy(None).
            unix_events._UnixDefaultEventLoopPolicy._loop_factory = factory
        suite = loader.loadTestsFromModule(mod)
    else:
        base = getattr(mod, cls_name)
        cls = base
        if loop_kind == "ioq":
            attrs = {hook: lambda self: factory()}
            cls = type("Ioq" + base.__name__, (base,), attrs)
            cls.__module__ = base.__module__
        suite = loader.loadTestsFromTestCase(cls)

    def name_of(test):
        cls = type(test)
        if cls.__name__.startswith("Ioq") and hook != "policy":
            cls = cls.__mro__[1]
        return "%s.%s" % (cls.__name__, getattr(test, "_testMethodName", str(test)))

    if loop_kind == "ioq":
        def apply_skips(s):
            for t in s:
                if isinstance(t, unittest.TestSuite):
                    apply_skips(t)
                else:
                    reason = SKIPS.get(name_of(t))
                    if reason:
                        m = t._testMethodName
                        setattr(t, m, unittest.skip(reason)(getattr(t, m)))
        apply_skips(suite)

    out = sys.__stdout__

    class Result(unittest.TestResult):
        def emit(self, test, outcome, detail=""):
            out.write(json.dumps({"test": name_of(test), "outcome": outcome,
                                  "detail": detail[-3000:]}) + "\n")
            out.flush()

        def startTest(self, test):
            super().startTest(test)
            out.write(json.dumps({"start": name_of(test)}) + "\n")
            out.flush()
            faulthandler.dump_traceback_later(PER_TEST_TIMEOUT, exit=True)

        def stopTest(self, test):
            faulthandler.cancel_dump_traceback_later()
            super().stopTest(test)

        def addSuccess(self, test):
            super().addSuccess(test)
            self.emit(test, "pass")

        def addError(self, test, err):
            super().addError(test, err)
            if isinstance(test, unittest.suite._ErrorHolder):
                out.write(json.dumps({"test": str(test), "outcome": "error",
                                      "detail": self._exc_info_to_string(err, test)[-3000:]})
                          + "\n")
                return
            self.emit(test, "fail", self._exc_info_to_string(err, test))

        def addFailure(self, test, err):
            super().addFailure(test, err)
            self.emit(test, "fail", self._exc_info_to_string(err, test))

        def addSkip(self, test, reason):
            super().addSkip(test, reason)
            self.emit(test, "skip", reason)

        def addExpectedFailure(self, test, err):
            super().addExpectedFailure(test, err)
            self.emit(test, "pass")

        def addUnexpectedSuccess(self, test):
            super().addUnexpectedSuccess(test)
            self.emit(test, "fail", "unexpected success")

        def addSubTest(self, test, subtest, err):
            super().addSubTest(test, subtest, err)
            if err is not None:
                self.emit(test, "fail", self._exc_info_to_string(err, test))

    # Tests print warnings and log records to stderr; keep stdout for the records.
    sys.stdout = sys.stderr
    result = Result()
    suite.run(result)
    return 0


def run_module(module, loop_kind, backend, verbose):
    env = dict(os.environ)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if backend:
        env["IOQ_BACKEND"] = backend
    cmd = [sys.executable, os.path.abspath(__file__), "--child", module, loop_kind]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=900)
    elapsed = time.monotonic() - t0
    outcomes = {}
    details = {}
    started = None
    for line in proc.stdout.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if "start" in rec:
            started = rec["start"]
            continue
        name = rec["test"]
        started = None
        # subtests: a test fails if any subtest failed
        if outcomes.get(name) == "fail":
            continue
        outcomes[name] = rec["outcome"]
        if rec["outcome"] in ("fail", "error"):
            details[name] = rec["detail"]
    if started is not None:
        outcomes[started] = "fail"
        details[started] = "the process ended during this test (exit %s):\n%s" % (
            proc.returncode, proc.stderr[-3000:])
    elif proc.returncode != 0:
        outcomes["<%s process>" % module] = "fail"
        details["<%s process>" % module] = proc.stderr[-3000:]
    return outcomes, details, elapsed


def counts(outcomes):
    c = collections.Counter(outcomes.values())
    return c["pass"], c["fail"] + c["error"], c["skip"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", nargs=2)
    ap.add_argument("--backends", default=os.environ.get("IOQ_ASYNCIO_BACKENDS",
                                                         "epoll,io_uring"))
    ap.add_argument("--modules", default=",".join(MODULES))
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if args.child:
        return child(*args.child)
    try:
        import test.test_asyncio  # noqa: F401
    except ImportError:
        print("cpython_asyncio: CPython's test package is missing (Debian: "
              "libpython3.%d-testsuite); skipped" % sys.version_info[1])
        return 0
    import ioq
    backends = [b for b in args.backends.split(",") if b]
    modules = [m for m in args.modules.split(",") if m]
    usable = []
    for b in backends:
        try:
            ioq.Loop(b).close()
            usable.append(b)
        except Exception as e:
            print("cpython_asyncio: backend %s unavailable (%s); skipped" % (b, e))
    regressions = []
    flaky = []
    header = "%-20s %18s" % ("module", "default p/f/s") + "".join(
        " %18s" % ("ioq-%s p/f/s" % b) for b in usable)
    print(header)
    totals = collections.defaultdict(lambda: [0, 0, 0, 0.0])
    for module in modules:
        ref, _, t_ref = run_module(module, "default", None, args.verbose)
        row = "%-20s %18s" % (module, "%d/%d/%d %3.0fs" % (counts(ref) + (t_ref,)))
        for k, v in zip(range(3), counts(ref)):
            totals["default"][k] += v
        totals["default"][3] += t_ref
        for b in usable:
            got, details, t = run_module(module, "ioq", b, args.verbose)
            row += " %18s" % ("%d/%d/%d %3.0fs" % (counts(got) + (t,)))
            for k, v in zip(range(3), counts(got)):
                totals[b][k] += v
            totals[b][3] += t
            failed = [name for name, outcome in sorted(got.items())
                      if outcome in ("fail", "error") and ref.get(name) == "pass"]
            if failed:
                # Some of these tests race the peer (test_sendfile's close in the middle of
                # receiving: io_uring's receive pool may take in the whole file before the
                # protocol closes). A test that fails once is run again with its module and
                # listed as flaky when it passes then; failing twice is a failure.
                again, details2, _ = run_module(module, "ioq", b, args.verbose)
                for name in failed:
                    if again.get(name) == "pass":
                        flaky.append((b, module, name, details.get(name, "")))
                    else:
                        regressions.append((b, module, name, details.get(name, "") +
                                            "\n(and on a rerun:)\n" +
                                            details2.get(name, again.get(name, "not run"))))
            if args.verbose:
                for name, outcome in sorted(got.items()):
                    if outcome in ("fail", "error") and ref.get(name) != "pass":
                        print("  (fails on both) %s %s" % (b, name))
            for name in sorted(set(ref) - set(got)):
                if ref[name] == "pass":
                    regressions.append((b, module, name, "did not run on ioq"))
        print(row, flush=True)
    row = "%-20s %18s" % ("total", "%d/%d/%d %3.0fs" % tuple(totals["default"]))
    for b in usable:
        row += " %18s" % ("%d/%d/%d %3.0fs" % tuple(totals[b]))
    print(row)
    print("(p/f/s: passed/failed/skipped; a skip on ioq only is listed in SKIPS with its "
          "reason)")
    for b, module, name, detail in flaky:
        print("flaky: [%s] %s %s failed once and passed when run again; the first "
              "failure:\n%s" % (b, module, name, detail.rstrip()))
    if regressions:
        print("\n%d tests pass on the default loop but not on ioq's:" % len(regressions))
        for b, module, name, detail in regressions:
            print("--- [%s] %s %s" % (b, module, name))
            if args.verbose:
                print(detail)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
