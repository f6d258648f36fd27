/**
 * An echo server in the fiber style: one fiber per connection, each written as plain
 * blocking code; all of them share one ioq loop on one thread.
 *
 *   echo_server [address]      (default 127.0.0.1:7000; port 0 picks a free one)
 *
 * Build and run from bindings/d:  dub run -c echo-server --skip-registry=all -- 127.0.0.1:7000
 */
module echo_server;

import std.stdio : writeln, stdout;
import ioq;

void main(string[] args) {
    auto at = Address.parse(args.length > 1 ? args[1] : "127.0.0.1:7000");
    auto loop = new Loop();
    scope (exit) loop.close();
    auto sched = new Scheduler(loop);
    auto listener = sched.listen(at);
    writeln("echo server on ", listener.address(), " (", loop.backend, ")");
    stdout.flush();

    sched.spawn({
        for (;;) {
            auto accepted = listener.accept();
            if (!accepted.ok) {
                writeln("accept: ", accepted.name);
                break;
            }
            // The connection is an argument: each fiber gets its own copy.
            sched.spawn((Conn conn) {
                auto buf = new ubyte[16 * 1024];
                for (;;) {
                    auto n = conn.recv(buf);
                    if (!n.ok || n.value == 0)
                        break; // reset or end of stream: both end this client
                    if (!conn.send(buf[0 .. n.value]).ok)
                        break;
                }
                conn.close();
            }, accepted.value);
        }
    });
    sched.run();
}
