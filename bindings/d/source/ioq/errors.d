/**
 * Errors of ioq in D.
 *
 * Two kinds of failure are kept apart. Misuse - a call that ioq refuses outright (a bad
 * argument, a stale handle, a closed loop) or a synchronous call that fails - throws an
 * IoqException carrying the pinned code and its name. Expected outcomes of I/O (a refused
 * connection, a reset, end of stream, a cancelled operation) are values: a Result whose
 * .ok, .code and .name the caller inspects, as it would inspect errno after a syscall.
 */
module ioq.errors;

static import ioq_raw;

/** The pinned IOQ_E* codes as a D enum. The numbers never change. */
enum IoqError : int {
    ok = ioq_raw.IOQ_OK,
    inval = ioq_raw.IOQ_EINVAL,
    badHandle = ioq_raw.IOQ_EBADHANDLE,
    noMem = ioq_raw.IOQ_ENOMEM,
    canceled = ioq_raw.IOQ_ECANCELED,
    timedOut = ioq_raw.IOQ_ETIMEDOUT,
    connRefused = ioq_raw.IOQ_ECONNREFUSED,
    connReset = ioq_raw.IOQ_ECONNRESET,
    connAborted = ioq_raw.IOQ_ECONNABORTED,
    pipe = ioq_raw.IOQ_EPIPE,
    addrInUse = ioq_raw.IOQ_EADDRINUSE,
    addrNotAvail = ioq_raw.IOQ_EADDRNOTAVAIL,
    netUnreach = ioq_raw.IOQ_ENETUNREACH,
    hostUnreach = ioq_raw.IOQ_EHOSTUNREACH,
    mFile = ioq_raw.IOQ_EMFILE,
    nFile = ioq_raw.IOQ_ENFILE,
    noEnt = ioq_raw.IOQ_ENOENT,
    acces = ioq_raw.IOQ_EACCES,
    perm = ioq_raw.IOQ_EPERM,
    exist = ioq_raw.IOQ_EEXIST,
    isDir = ioq_raw.IOQ_EISDIR,
    notDir = ioq_raw.IOQ_ENOTDIR,
    noSpc = ioq_raw.IOQ_ENOSPC,
    io = ioq_raw.IOQ_EIO,
    noBufs = ioq_raw.IOQ_ENOBUFS,
    msgSize = ioq_raw.IOQ_EMSGSIZE,
    notSup = ioq_raw.IOQ_ENOTSUP,
    busy = ioq_raw.IOQ_EBUSY,
    notConn = ioq_raw.IOQ_ENOTCONN,
    nameTooLong = ioq_raw.IOQ_ENAMETOOLONG,
    notFound = ioq_raw.IOQ_ENOTFOUND,
    again = ioq_raw.IOQ_EAGAIN,
    noSys = ioq_raw.IOQ_ENOSYS,
    fBig = ioq_raw.IOQ_EFBIG,
    roFs = ioq_raw.IOQ_EROFS,
    loop = ioq_raw.IOQ_ELOOP,
    afNoSupport = ioq_raw.IOQ_EAFNOSUPPORT,
    misuse = ioq_raw.IOQ_EMISUSE,
    destAddrReq = ioq_raw.IOQ_EDESTADDRREQ,
    shutdown = ioq_raw.IOQ_ESHUTDOWN,
    noSuchProcess = ioq_raw.IOQ_ESRCH,
    noExec = ioq_raw.IOQ_ENOEXEC,
    notTty = ioq_raw.IOQ_ENOTTY,
    unknown = ioq_raw.IOQ_EUNKNOWN,
}

/** "ECONNREFUSED" for -6, "OK" for 0 and for results >= 0. */
string errorName(long code) @trusted {
    return ioq_raw.ioq_errname(code < 0 ? code : 0);
}

/** A sentence describing a code. */
string errorText(long code) @trusted {
    return ioq_raw.ioq_strerror(code);
}

/** Thrown when ioq refuses a call: the operation was not accepted and completes nothing. */
class IoqException : Exception {
    /** The pinned IOQ_E* code (negative). */
    immutable int code;
    /** The code's name without prefix, e.g. "EBADHANDLE". */
    immutable string name;

    this(long code, string what, string file = __FILE__, size_t line = __LINE__) @safe {
        this.code = cast(int) code;
        this.name = errorName(code);
        super(what ~ ": " ~ errorText(code) ~ " (" ~ this.name ~ ")", file, line);
    }
}

/** Throws an IoqException for a negative return code; passes anything else through. */
long check(long rc, lazy string what, string file = __FILE__, size_t line = __LINE__) @safe {
    if (rc < 0)
        throw new IoqException(rc, what, file, line);
    return rc;
}

/**
 * The outcome of an operation: a value, or the pinned error code of an expected failure.
 * Reading .value of a failed Result throws an IoqException; test .ok first, or use
 * .valueOr for a default.
 */
struct Result(T) {
    private T value_;
    private int code_;

    static Result success(T v) { Result r; r.value_ = v; return r; }
    static Result failure(long code) {
        assert(code < 0, "a failure needs a negative code");
        Result r;
        r.code_ = cast(int) code;
        return r;
    }

    /** True when the operation succeeded. */
    bool ok() const @property { return code_ == 0; }
    /** 0, or the negative IOQ_E* code. */
    int code() const @property { return code_; }
    /** "OK", or the code's name ("ECONNRESET"). */
    string name() const @property { return errorName(code_); }
    /** The code as an IoqError. */
    IoqError error() const @property { return cast(IoqError) code_; }

    /** The value; throws an IoqException when the operation failed. */
    inout(T) value() inout @property {
        if (code_ != 0)
            throw new IoqException(code_, "operation failed");
        return value_;
    }

    inout(T) valueOr(inout(T) fallback) inout {
        if (code_ == 0)
            return value_;
        return fallback;
    }

    bool opCast(B : bool)() const { return ok; }

    string toString() const {
        import std.conv : to;
        return ok ? "ok(" ~ to!string(value_) ~ ")" : name;
    }
}
