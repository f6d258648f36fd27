module test_process;

import ioq;
import testutil;

/* Everything the child wrote to the read end r, up to end of stream. */
private ubyte[] drain(Collector c, Handle r) {
    ubyte[] got;
    for (;;) {
        auto x = c.wait(c.loop.recv(r, new ubyte[256]));
        assert(x.ok && x.op == Op.recv, x.name);
        if (x.result == 0)
            return got;
        got ~= x.data;
    }
}

@("process/pipe-send-recv-shutdown") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto c = new Collector(loop);
    auto ends = loop.pipe();
    assert(ends[0] && ends[1] && ends[0] != ends[1]);
    auto msg = cast(const(ubyte)[]) "through a pipe";
    auto s = c.wait(loop.send(ends[1], msg));
    assert(s.ok && s.result == msg.length);
    assert(c.wait(loop.shutdown(ends[1])).ok);
    assert(drain(c, ends[0]) == msg);
    // Each end goes one way.
    auto e = raises({ loop.recv(ends[1], new ubyte[8]); });
    assert(e.code == IoqError.badHandle);
    foreach (h; ends)
        assert(c.wait(loop.close(h)).ok);
    assert(loop.pending == 0);
}

@("process/spawn-stdout-exit-status") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto c = new Collector(loop);
    auto p = loop.spawn("/bin/sh", ["sh", "-c", "echo hello from $0; exit 3", "child"],
                        [Stdio.devNull(), Stdio.pipe(), Stdio.devNull()]);
    assert(p.handle && p.stdoutPipe && !p.stdinPipe && !p.stderrPipe);
    assert(loop.processPid(p.handle) > 0);
    assert(drain(c, p.stdoutPipe) == cast(const(ubyte)[]) "hello from child\n");
    auto w = c.wait(loop.processWait(p.handle));
    assert(w.ok && w.op == Op.processWait);
    assert(exitedNormally(w.result) && exitCode(w.result) == 3);
    assert(c.wait(loop.close(p.stdoutPipe)).ok);
    assert(c.wait(loop.close(p.handle)).ok);
}

@("process/spawn-stdin-env-cwd") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto c = new Collector(loop);
    auto p = loop.spawn("sh", ["sh", "-c", "read line; echo \"$line $IOQ_D_VAR $(pwd)\""],
                        [Stdio.pipe(), Stdio.pipe(), Stdio.inherit()],
                        ["IOQ_D_VAR=set", "PATH=/usr/bin:/bin"], "/", SpawnFlags.searchPath);
    assert(c.wait(loop.send(p.stdinPipe, cast(const(ubyte)[]) "ping\n")).ok);
    assert(c.wait(loop.close(p.stdinPipe)).ok);
    assert(drain(c, p.stdoutPipe) == cast(const(ubyte)[]) "ping set /\n");
    auto w = c.wait(loop.processWait(p.handle));
    assert(w.ok && exitCode(w.result) == 0);
    loop.closeQuietly(p.stdoutPipe);
    loop.closeQuietly(p.handle);
}

@("process/kill") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto c = new Collector(loop);
    auto p = loop.spawn("/bin/sleep", ["sleep", "30"], [Stdio.devNull(), Stdio.devNull(), Stdio.devNull()]);
    auto tok = loop.processWait(p.handle);
    loop.kill(p.handle, 15 /* SIGTERM */);
    auto w = c.wait(tok);
    assert(w.ok && !exitedNormally(w.result) && termSignal(w.result) == 15);
    // Reaped: a second kill finds no process.
    auto e = raises({ loop.kill(p.handle, 15); });
    assert(e.code == IoqError.noSuchProcess, e.name);
    assert(c.wait(loop.close(p.handle)).ok);
}

@("process/spawn-errors") unittest {
    auto loop = new Loop();
    scope (exit) loop.close();
    auto e = raises({ loop.spawn("/nonexistent/program"); });
    assert(e.code == IoqError.noEnt, e.name);
    // A process handle closed while the child runs does not kill it; the wait ends cancelled.
    auto c = new Collector(loop);
    auto p = loop.spawn("/bin/sleep", ["sleep", "0.1"], [Stdio.devNull(), Stdio.devNull(), Stdio.devNull()]);
    auto tok = loop.processWait(p.handle);
    assert(c.wait(loop.close(p.handle)).ok);
    auto w = c.wait(tok);
    assert(!w.ok && w.code == IoqError.canceled, w.name);
}
