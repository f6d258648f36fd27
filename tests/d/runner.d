/**
 * Runs every unittest of the ioq test modules one by one, named by its @("...") string,
 * and prints one line per test and a summary. The exit status is non-zero on a failure.
 */
module runner;

import core.runtime : Runtime, UnitTestResult;
import std.stdio : writefln, stdout;
import std.meta : AliasSeq;

import test_basics;
import test_ops;
import test_gc;
import test_fiber;
import test_safety;
import test_tasks;
import test_process;

alias testModules = AliasSeq!(test_basics, test_ops, test_gc, test_fiber, test_safety, test_tasks,
                             test_process);

private UnitTestResult runAll() {
    import std.process : environment;
    string only = environment.get("IOQ_D_TEST", "");
    size_t passed, failed;
    static foreach (m; testModules) {
        foreach (t; __traits(getUnitTests, m)) {{
            string name = __traits(identifier, t);
            foreach (attr; __traits(getAttributes, t))
                static if (is(typeof(attr) : string))
                    name = attr;
            import std.algorithm : canFind;
            if (only.length == 0 || name.canFind(only)) {
                try {
                    t();
                    passed++;
                    writefln("ok   %s", name);
                } catch (Throwable e) {
                    failed++;
                    writefln("FAIL %s\n     %s", name, e);
                }
                stdout.flush();
            }
        }}
    }
    writefln("%s passed, %s failed", passed, failed);
    UnitTestResult r;
    r.executed = passed + failed;
    r.passed = passed;
    r.runMain = false;
    r.summarize = false;
    return r;
}

/* IOQ_D_CHILD=overflow: the child process of the stack-overflow test, instead of tests. */
private UnitTestResult runChild() {
    test_tasks.overflowChild();
    UnitTestResult r;
    r.runMain = false;
    return r;
}

/* IOQ_D_CHILD=probe-uring: exit status 0 when an io_uring loop can be made here. */
private UnitTestResult probeUring() {
    import ioq : Loop, Backend;
    UnitTestResult r;
    r.runMain = false;
    r.summarize = false;
    try {
        auto l = new Loop(Backend.uring);
        l.close();
        r.executed = r.passed = 1;
    } catch (Exception) {
        r.executed = 1;
    }
    return r;
}

shared static this() {
    import std.process : environment;
    auto child = environment.get("IOQ_D_CHILD", "");
    if (child == "overflow")
        Runtime.extendedModuleUnitTester = &runChild;
    else if (child == "probe-uring")
        Runtime.extendedModuleUnitTester = &probeUring;
    else
        Runtime.extendedModuleUnitTester = &runAll;
}

void main() {}
