/**
 * An echo round trip through the installed ioq dub package, on the raw layer (ioq_raw:
 * the C ABI with D types) so that it depends on nothing but the ABI. Prints
 * "d: echo ok: <line> (backend <name>, ioq <version>)".
 */
import core.stdc.stdlib : exit;
import std.stdio : stderr, writefln;
import ioq_raw;

enum : ulong { ACCEPT = 1, CONNECT, CSEND, SRECV, SSEND, CRECV }

ioq_cqe[ulong] done;

ioq_cqe waitFor(ioq_loop* loop, ulong token) {
    while (token !in done) {
        ioq_cqe[8] cqes;
        auto n = ioq_poll(loop, cqes.ptr, 8, 5_000_000_000L);
        if (n <= 0) {
            stderr.writefln("d: poll failed or timed out (%s)", n);
            exit(1);
        }
        foreach (ref c; cqes[0 .. n])
            done[c.token] = c;
    }
    auto c = done[token];
    if (c.result < 0) {
        stderr.writefln("d: token %s: %s", token, ioq_strerror(c.result));
        exit(1);
    }
    return c;
}

void main() {
    ioq_loop* loop;
    ioq_addr addr;
    ulong listener;
    immutable line = "hello through ioq";
    auto sbuf = new ubyte[64], cbuf = new ubyte[64];

    if (ioq_loop_new(null, &loop) != 0 || ioq_addr_parse("127.0.0.1:0", &addr) != 0
        || ioq_tcp_listen(loop, &addr, 0, 0, &listener) != 0
        || ioq_sockname(loop, listener, &addr) != 0) {
        stderr.writeln("d: set-up failed");
        exit(1);
    }
    ioq_accept(loop, listener, 0, ACCEPT);
    ioq_connect(loop, &addr, 0, CONNECT);
    auto server = waitFor(loop, ACCEPT).value;
    auto client = waitFor(loop, CONNECT).value;
    ioq_send(loop, client, cast(const(ubyte)*) line.ptr, line.length, CSEND);
    ioq_recv(loop, server, sbuf.ptr, sbuf.length, SRECV);
    waitFor(loop, CSEND);
    auto n = cast(size_t) waitFor(loop, SRECV).result;
    ioq_send(loop, server, sbuf.ptr, n, SSEND);
    ioq_recv(loop, client, cbuf.ptr, cbuf.length, CRECV);
    waitFor(loop, SSEND);
    n = cast(size_t) waitFor(loop, CRECV).result;
    if (cast(string) cbuf[0 .. n] != line) {
        stderr.writefln("d: echo differs: %s", cast(string) cbuf[0 .. n]);
        exit(1);
    }
    writefln("d: echo ok: %s (backend %s, ioq %s)", cast(string) cbuf[0 .. n],
             ioq_loop_backend(loop), ioq_version_string());
    ioq_loop_free(loop);
}
