/**
 * Turns a fiber's stack overflow into a clear message instead of a bare segfault.
 *
 * Each fiber of a Scheduler has its stack above a guard region that is mapped without
 * access (core.thread.Fiber's guard page, made as large as the Scheduler asks). A function
 * whose frame does not fit faults there. A SIGSEGV handler, running on an alternate signal
 * stack (the faulting stack has no room left), looks at the fiber that runs on this thread:
 * when the fault address or the stack pointer lies below that fiber's stack, it writes
 * what happened and how to fix it to stderr and aborts (SIGABRT). Any other fault goes to
 * the handler that was there before (by default: the usual segfault).
 *
 * The process cannot go on: the overflowed fiber's frames are gone, and with them the
 * state of whatever it was doing. A frame larger than the guard region can jump past it;
 * the default region (1 MiB of address space, no memory) makes that unlikely.
 */
module ioq.stackguard;

version (Posix):

import core.stdc.string : strlen;
import core.sys.posix.signal;
import core.sys.posix.unistd : write;

package:

/* The fiber that runs on this thread: its stack is [stackLo, stackHi), its guard region
 * [guardLo, stackLo). 0 when no fiber of a Scheduler runs. Thread-local, read by the
 * handler of this thread's own fault. */
size_t stackLo, stackHi, guardLo;
/* What the handler writes; made when a Scheduler is created (the handler may not format). */
char[256] message = 0;

/** The fiber with this stack runs on this thread now (or none: all 0). */
void enter(size_t lo, size_t hi, size_t guard) @safe nothrow @nogc {
    stackLo = lo;
    stackHi = hi;
    guardLo = guard;
}

/** Installs the handler (once per process) and an alternate signal stack for this
 * thread (once per thread); text is the message for an overflow. */
void install(const(char)[] text) @trusted nothrow {
    import core.stdc.stdlib : malloc;
    auto n = text.length < message.length - 1 ? text.length : message.length - 1;
    message[0 .. n] = text[0 .. n];
    message[n] = 0;
    if (!altInstalled) {
        enum size_t size = 64 * 1024;
        auto mem = malloc(size);
        if (mem !is null) {
            stack_t ss;
            ss.ss_sp = mem;
            ss.ss_size = size;
            ss.ss_flags = 0;
            if (sigaltstack(&ss, null) == 0)
                altInstalled = true;
        }
    }
    import core.atomic : cas;
    if (cas(&installing, false, true)) {
        sigaction_t sa;
        sa.sa_sigaction = &onSegv;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, &previous);
    }
}

private:

bool altInstalled;                  // per thread
shared bool installing;             // once per process
__gshared sigaction_t previous;

/* The stack pointer of the interrupted code, where the platform says (else 0). */
size_t stackPointer(void* context) nothrow @nogc @system {
    import core.sys.posix.ucontext : ucontext_t;
    auto uc = cast(ucontext_t*) context;
    version (X86_64) {
        import core.sys.posix.ucontext : REG_RSP;
        return cast(size_t) uc.uc_mcontext.gregs[REG_RSP];
    } else version (AArch64) {
        return cast(size_t) uc.uc_mcontext.sp;
    } else {
        return 0;
    }
}

extern (C) void onSegv(int sig, siginfo_t* info, void* context) nothrow @nogc @system {
    import core.stdc.stdlib : abort;
    if (stackLo != 0) {
        auto addr = cast(size_t) info.si_addr;
        auto sp = stackPointer(context);
        // Below the stack and not far below its guard: this fiber ran out of stack.
        enum size_t slack = 64 * 1024 * 1024;
        bool faultBelow = addr < stackLo && addr + slack >= guardLo;
        bool spBelow = sp != 0 && sp < stackLo && sp + slack >= guardLo;
        if (faultBelow || spBelow) {
            write(2, message.ptr, strlen(message.ptr));
            abort();
        }
    }
    // Not ours: what was there before decides.
    alias Action = extern (C) void function(int, siginfo_t*, void*) nothrow @nogc;
    alias Handler = extern (C) void function(int) nothrow @nogc;
    if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction !is null) {
        (cast(Action) previous.sa_sigaction)(sig, info, context);
        return;
    }
    if (previous.sa_handler == SIG_IGN)
        return;
    if (previous.sa_handler !is SIG_DFL && previous.sa_handler !is null) {
        (cast(Handler) previous.sa_handler)(sig);
        return;
    }
    // The default: returning re-runs the faulting instruction, which now kills the
    // process as it would have without this handler.
    sigaction_t dfl;
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGSEGV, &dfl, null);
}
