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

alias testModules = AliasSeq!(test_basics, test_ops, test_gc, test_fiber);

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

shared static this() {
    Runtime.extendedModuleUnitTester = &runAll;
}

void main() {}
