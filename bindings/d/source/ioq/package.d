/**
 * ioq for D: a completion-based asynchronous I/O loop.
 *
 * ioq.loop    Loop: every call of the C ABI with D types, buffers kept for the GC
 * ioq.fiber   Scheduler: fibers whose I/O calls read like blocking code; Task; Conn,
 *             Listener, Udp, File (closed by their last copy)
 * ioq.address Address
 * ioq.errors  IoqException (refused calls) and Result (outcomes of operations)
 *
 * The generated raw layer is the module ioq_raw.
 */
module ioq;

public import ioq.errors;
public import ioq.address;
public import ioq.loop;
public import ioq.fiber;
