/* Error names and texts: the table is indexed by -code (designated initializers), so codes
 * and text cannot drift. */
#include "ioq.h"

typedef struct {
    int code;
    const char *name;
    const char *text;
} ioq__errdesc;

static const ioq__errdesc errs[] = {
    [0] = {IOQ_OK, "OK", "success"},
    [-IOQ_EINVAL] = {IOQ_EINVAL, "EINVAL", "invalid argument"},
    [-IOQ_EBADHANDLE] = {IOQ_EBADHANDLE, "EBADHANDLE", "bad handle: stale, closed, foreign, made up or of the wrong kind"},
    [-IOQ_ENOMEM] = {IOQ_ENOMEM, "ENOMEM", "out of memory"},
    [-IOQ_ECANCELED] = {IOQ_ECANCELED, "ECANCELED", "operation cancelled"},
    [-IOQ_ETIMEDOUT] = {IOQ_ETIMEDOUT, "ETIMEDOUT", "connection timed out"},
    [-IOQ_ECONNREFUSED] = {IOQ_ECONNREFUSED, "ECONNREFUSED", "connection refused"},
    [-IOQ_ECONNRESET] = {IOQ_ECONNRESET, "ECONNRESET", "connection reset by peer"},
    [-IOQ_ECONNABORTED] = {IOQ_ECONNABORTED, "ECONNABORTED", "connection aborted"},
    [-IOQ_EPIPE] = {IOQ_EPIPE, "EPIPE", "broken pipe"},
    [-IOQ_EADDRINUSE] = {IOQ_EADDRINUSE, "EADDRINUSE", "address already in use"},
    [-IOQ_EADDRNOTAVAIL] = {IOQ_EADDRNOTAVAIL, "EADDRNOTAVAIL", "address not available"},
    [-IOQ_ENETUNREACH] = {IOQ_ENETUNREACH, "ENETUNREACH", "network is unreachable"},
    [-IOQ_EHOSTUNREACH] = {IOQ_EHOSTUNREACH, "EHOSTUNREACH", "host is unreachable"},
    [-IOQ_EMFILE] = {IOQ_EMFILE, "EMFILE", "too many open files in this process"},
    [-IOQ_ENFILE] = {IOQ_ENFILE, "ENFILE", "too many open files in the system"},
    [-IOQ_ENOENT] = {IOQ_ENOENT, "ENOENT", "no such file or directory"},
    [-IOQ_EACCES] = {IOQ_EACCES, "EACCES", "permission denied"},
    [-IOQ_EPERM] = {IOQ_EPERM, "EPERM", "operation not permitted (for io_uring: disabled by sysctl kernel.io_uring_disabled)"},
    [-IOQ_EEXIST] = {IOQ_EEXIST, "EEXIST", "file exists"},
    [-IOQ_EISDIR] = {IOQ_EISDIR, "EISDIR", "is a directory"},
    [-IOQ_ENOTDIR] = {IOQ_ENOTDIR, "ENOTDIR", "not a directory"},
    [-IOQ_ENOSPC] = {IOQ_ENOSPC, "ENOSPC", "no space left on device"},
    [-IOQ_EIO] = {IOQ_EIO, "EIO", "input/output error"},
    [-IOQ_ENOBUFS] = {IOQ_ENOBUFS, "ENOBUFS", "no buffer space available (provided-buffer pool empty)"},
    [-IOQ_EMSGSIZE] = {IOQ_EMSGSIZE, "EMSGSIZE", "message too long"},
    [-IOQ_ENOTSUP] = {IOQ_ENOTSUP, "ENOTSUP", "operation not supported for this handle, backend or platform"},
    [-IOQ_EBUSY] = {IOQ_EBUSY, "EBUSY", "resource busy"},
    [-IOQ_ENOTCONN] = {IOQ_ENOTCONN, "ENOTCONN", "socket is not connected"},
    [-IOQ_ENAMETOOLONG] = {IOQ_ENAMETOOLONG, "ENAMETOOLONG", "name too long"},
    [-IOQ_ENOTFOUND] = {IOQ_ENOTFOUND, "ENOTFOUND", "host or service not found"},
    [-IOQ_EAGAIN] = {IOQ_EAGAIN, "EAGAIN", "temporary failure, try again"},
    [-IOQ_ENOSYS] = {IOQ_ENOSYS, "ENOSYS", "not implemented by this kernel, or forbidden by seccomp"},
    [-IOQ_EFBIG] = {IOQ_EFBIG, "EFBIG", "file too large"},
    [-IOQ_EROFS] = {IOQ_EROFS, "EROFS", "read-only file system"},
    [-IOQ_ELOOP] = {IOQ_ELOOP, "ELOOP", "too many levels of symbolic links"},
    [-IOQ_EAFNOSUPPORT] = {IOQ_EAFNOSUPPORT, "EAFNOSUPPORT", "address family not supported"},
    [-IOQ_EMISUSE] = {IOQ_EMISUSE, "EMISUSE", "call breaks a rule of the API"},
    [-IOQ_EDESTADDRREQ] = {IOQ_EDESTADDRREQ, "EDESTADDRREQ", "destination address required"},
    [-IOQ_ESHUTDOWN] = {IOQ_ESHUTDOWN, "ESHUTDOWN", "cannot send after the write side was shut down"},
    [-IOQ_ESRCH] = {IOQ_ESRCH, "ESRCH", "no such process"},
    [-IOQ_ENOEXEC] = {IOQ_ENOEXEC, "ENOEXEC", "exec format error: not an executable"},
    [-IOQ_ENOTTY] = {IOQ_ENOTTY, "ENOTTY", "not a terminal"},
};

static const ioq__errdesc unknown = {IOQ_EUNKNOWN, "EUNKNOWN", "unknown error"};

static const ioq__errdesc *find(int64_t code)
{
    if (code >= 0)
        return &errs[0];
    if (code == IOQ_EUNKNOWN)
        return &unknown;
    /* Compared without negating: -INT64_MIN does not exist. */
    if (code > -(int64_t)(sizeof errs / sizeof errs[0]) && errs[-code].name)
        return &errs[-code];
    return NULL;
}

const char *ioq_strerror(int64_t code)
{
    const ioq__errdesc *d = find(code);
    return d ? d->text : "unknown error";
}

const char *ioq_errname(int64_t code)
{
    const ioq__errdesc *d = find(code);
    return d ? d->name : "UNKNOWN";
}

uint32_t ioq_version(void) { return IOQ_VERSION_NUMBER; }

const char *ioq_version_string(void) { return IOQ_VERSION_STRING; }
