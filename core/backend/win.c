/*
 * The Windows OS layer: clock, error translation, socket and named-pipe creation, options,
 * file work and name resolution for the thread pool. Used by the IOCP backend.
 */
#include "win.h"

#include <limits.h>
#include <signal.h>
#include <mstcpip.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const ioq__backend *const ioq__os_backends[] = {&ioq__backend_iocp, NULL};

#define PIPE_PREFIX L"\\\\.\\pipe\\"
#define PIPE_NAME_MAX 256
#define LOCAL_PATH_MAX 108
#define PIPE_BUF_SIZE 65536

#ifndef ERROR_DIRECTORY_NOT_SUPPORTED
#  define ERROR_DIRECTORY_NOT_SUPPORTED 336L
#endif

/* --- start-up ------------------------------------------------------------------------------ */

static INIT_ONCE wsa_once = INIT_ONCE_STATIC_INIT;
static int wsa_rc;

static BOOL CALLBACK wsa_init(PINIT_ONCE once, PVOID param, PVOID *ctx)
{
    WSADATA wd;
    int rc = WSAStartup(MAKEWORD(2, 2), &wd);
    (void)once;
    (void)param;
    (void)ctx;
    wsa_rc = rc ? ioq__win_error_map((DWORD)rc) : 0;
    return TRUE;
}

int ioq__win_startup(void)
{
    InitOnceExecuteOnce(&wsa_once, wsa_init, NULL, NULL);
    return wsa_rc;
}

/* --- process-wide barrier ------------------------------------------------------------------- */

/* FlushProcessWriteBuffers: every processor that runs a thread of the process passes a
 * barrier (Vista and later). */
bool ioq__os_barrier_init(void) { return true; }
void ioq__os_barrier(void) { FlushProcessWriteBuffers(); }

/* --- clock and errors ------------------------------------------------------------------------ */

uint64_t ioq__os_now(void)
{
    static LARGE_INTEGER freq;
    LARGE_INTEGER c;
    uint64_t f;
    if (freq.QuadPart == 0)
        QueryPerformanceFrequency(&freq); /* the same value in every thread: a benign race */
    QueryPerformanceCounter(&c);
    f = (uint64_t)freq.QuadPart;
    return (uint64_t)c.QuadPart / f * 1000000000u + (uint64_t)c.QuadPart % f * 1000000000u / f;
}

int ioq__win_error_map(DWORD e)
{
    switch (e) {
    case ERROR_SUCCESS: return IOQ_OK;
    case ERROR_INVALID_PARAMETER: case WSAEINVAL: case ERROR_INVALID_FUNCTION:
    case WSAEFAULT: case ERROR_NEGATIVE_SEEK:
        return IOQ_EINVAL;
    case ERROR_INVALID_HANDLE: case WSAEBADF: case WSAENOTSOCK:
        return IOQ_EBADHANDLE;
    case ERROR_NOT_ENOUGH_MEMORY: case ERROR_OUTOFMEMORY: case ERROR_NO_SYSTEM_RESOURCES:
        return IOQ_ENOMEM;
    case ERROR_OPERATION_ABORTED: case WSAEINTR: case ERROR_CANCELLED:
        return IOQ_ECANCELED;
    case WSAETIMEDOUT: case ERROR_SEM_TIMEOUT: case ERROR_TIMEOUT:
        return IOQ_ETIMEDOUT;
    case WSAECONNREFUSED: case ERROR_CONNECTION_REFUSED: case ERROR_PORT_UNREACHABLE:
        return IOQ_ECONNREFUSED;
    case WSAECONNRESET: case WSAENETRESET: case ERROR_NETNAME_DELETED:
        return IOQ_ECONNRESET;
    case WSAECONNABORTED: case ERROR_CONNECTION_ABORTED: case ERROR_REQUEST_ABORTED:
        return IOQ_ECONNABORTED;
    case ERROR_BROKEN_PIPE: case ERROR_NO_DATA: case ERROR_PIPE_NOT_CONNECTED:
    case WSAESHUTDOWN:
        return IOQ_EPIPE;
    case WSAEADDRINUSE: case ERROR_ADDRESS_ALREADY_ASSOCIATED:
        return IOQ_EADDRINUSE;
    case WSAEADDRNOTAVAIL:
        return IOQ_EADDRNOTAVAIL;
    case WSAENETUNREACH: case WSAENETDOWN: case ERROR_NETWORK_UNREACHABLE:
        return IOQ_ENETUNREACH;
    case WSAEHOSTUNREACH: case WSAEHOSTDOWN: case ERROR_HOST_UNREACHABLE:
        return IOQ_EHOSTUNREACH;
    case WSAEMFILE: case ERROR_TOO_MANY_OPEN_FILES:
        return IOQ_EMFILE;
    case ERROR_FILE_NOT_FOUND: case ERROR_PATH_NOT_FOUND: case ERROR_INVALID_NAME:
    case ERROR_BAD_PATHNAME: case ERROR_INVALID_DRIVE: case ERROR_MOD_NOT_FOUND:
        return IOQ_ENOENT;
    case ERROR_ACCESS_DENIED: case WSAEACCES: case ERROR_SHARING_VIOLATION:
    case ERROR_LOCK_VIOLATION: case ERROR_PRIVILEGE_NOT_HELD:
        return IOQ_EACCES;
    case ERROR_FILE_EXISTS: case ERROR_ALREADY_EXISTS:
        return IOQ_EEXIST;
    case ERROR_DIRECTORY_NOT_SUPPORTED:
        return IOQ_EISDIR;
    case ERROR_DIRECTORY:
        return IOQ_ENOTDIR;
    case ERROR_DISK_FULL: case ERROR_HANDLE_DISK_FULL:
        return IOQ_ENOSPC;
    case ERROR_IO_DEVICE: case ERROR_CRC: case ERROR_GEN_FAILURE:
        return IOQ_EIO;
    case WSAENOBUFS:
        return IOQ_ENOBUFS;
    case WSAEMSGSIZE: case ERROR_MORE_DATA:
        return IOQ_EMSGSIZE;
    case WSAEOPNOTSUPP: case WSAEPROTONOSUPPORT: case WSAESOCKTNOSUPPORT:
    case ERROR_NOT_SUPPORTED: case ERROR_CALL_NOT_IMPLEMENTED:
        return IOQ_ENOTSUP;
    case ERROR_BUSY: case ERROR_PIPE_BUSY:
        return IOQ_EBUSY;
    case WSAENOTCONN:
        return IOQ_ENOTCONN;
    case WSAENAMETOOLONG: case ERROR_FILENAME_EXCED_RANGE: case ERROR_BUFFER_OVERFLOW:
        return IOQ_ENAMETOOLONG;
    case WSAHOST_NOT_FOUND: case WSANO_DATA: case WSATYPE_NOT_FOUND: case WSANO_RECOVERY:
        return IOQ_ENOTFOUND;
    case WSATRY_AGAIN: case WSAEWOULDBLOCK: case WSAEINPROGRESS:
        return IOQ_EAGAIN;
    case ERROR_FILE_TOO_LARGE:
        return IOQ_EFBIG;
    case ERROR_WRITE_PROTECT:
        return IOQ_EROFS;
    case ERROR_CANT_RESOLVE_FILENAME:
        return IOQ_ELOOP;
    case WSAEAFNOSUPPORT: case WSAEPFNOSUPPORT:
        return IOQ_EAFNOSUPPORT;
    case WSAEDESTADDRREQ:
        return IOQ_EDESTADDRREQ;
    default:
        return IOQ_EUNKNOWN;
    }
}

int ioq__os_errno_map(int oserr) { return ioq__win_error_map((DWORD)oserr); }

/* --- addresses ------------------------------------------------------------------------------ */

int ioq__win_family(uint16_t f) { return f == IOQ_AF_INET6 ? AF_INET6 : AF_INET; }

/* --- sockets -------------------------------------------------------------------------------- */

int ioq__win_socket(int family, int type, SOCKET *out)
{
    u_long one = 1;
    int rc = ioq__win_startup();
    SOCKET s;
    if (rc != 0)
        return rc;
    s = WSASocketW(family, type, type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP, NULL, 0,
                   WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (s == INVALID_SOCKET)
        return ioq__win_error_map((DWORD)WSAGetLastError());
    /* Overlapped calls ignore this; the plain recv of ioq_recv_pool relies on it. */
    ioctlsocket(s, FIONBIO, &one);
    if (type == SOCK_DGRAM) {
        /* An ICMP port-unreachable must not fail later receives (Linux ignores it on
         * unconnected sockets too). */
        BOOL off = FALSE;
        DWORD n;
        WSAIoctl(s, SIO_UDP_CONNRESET, &off, sizeof off, NULL, 0, &n, NULL, NULL);
    }
    *out = s;
    return 0;
}

bool ioq__win_is_socket(int64_t fd)
{
    int type = 0, len = sizeof type;
    return getsockopt((SOCKET)fd, SOL_SOCKET, SO_TYPE, (char *)&type, &len) == 0;
}

static int bind_inet(SOCKET s, const ioq_addr *addr, uint32_t flags)
{
    struct sockaddr_storage ss;
    int len = 0;
    /* Windows keeps no TIME_WAIT lock on listening ports, and its SO_REUSEADDR would let a
     * second listener steal a live port: it is set only for IOQ_REUSEPORT. */
    if (flags & IOQ_REUSEPORT) {
        BOOL one = TRUE;
        if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, (const char *)&one, sizeof one) != 0)
            return ioq__win_error_map((DWORD)WSAGetLastError());
    }
    if (addr->family == IOQ_AF_INET6) {
        DWORD v6only = (flags & IOQ_V6ONLY) ? 1 : 0;
        if (setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, (const char *)&v6only, sizeof v6only) != 0)
            return ioq__win_error_map((DWORD)WSAGetLastError());
    }
    ioq__to_sockaddr(addr, &ss, &len);
    if (bind(s, (struct sockaddr *)&ss, len) != 0)
        return ioq__win_error_map((DWORD)WSAGetLastError());
    return 0;
}

int ioq__os_tcp_listen(const ioq_addr *addr, uint32_t backlog, uint32_t flags, int64_t *out)
{
    SOCKET s;
    int rc = ioq__win_socket(ioq__win_family(addr->family), SOCK_STREAM, &s);
    if (rc != 0)
        return rc;
    if ((rc = bind_inet(s, addr, flags)) != 0 ||
        (listen(s, (int)backlog) != 0 &&
         (rc = ioq__win_error_map((DWORD)WSAGetLastError())) != 0)) {
        closesocket(s);
        return rc;
    }
    *out = (int64_t)s;
    return 0;
}

int ioq__os_udp_bind(const ioq_addr *addr, uint32_t flags, int64_t *out)
{
    SOCKET s;
    int rc = ioq__win_socket(ioq__win_family(addr->family), SOCK_DGRAM, &s);
    if (rc != 0)
        return rc;
    if ((rc = bind_inet(s, addr, flags)) != 0) {
        closesocket(s);
        return rc;
    }
    *out = (int64_t)s;
    return 0;
}

/* --- named pipes ---------------------------------------------------------------------------- */

static wchar_t *utf16(const char *s, int *rc)
{
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
    wchar_t *w;
    if (n <= 0) {
        *rc = IOQ_EINVAL;
        return NULL;
    }
    w = malloc((size_t)n * sizeof *w);
    if (!w) {
        *rc = IOQ_ENOMEM;
        return NULL;
    }
    MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n);
    *rc = 0;
    return w;
}

wchar_t *ioq__win_pipe_name(const char *path, int *rc)
{
    static const wchar_t prefix[] = PIPE_PREFIX;
    const size_t plen = sizeof prefix / sizeof prefix[0] - 1;
    wchar_t *w = utf16(path, rc), *name;
    size_t n;
    if (!w)
        return NULL;
    if (wcsncmp(w, prefix, plen) == 0)
        return w; /* already a pipe name */
    n = wcslen(w);
    /* The limit of AF_UNIX paths (sun_path, 108 bytes with the NUL, on Windows too), so
     * that a path that works here works everywhere. */
    if (strlen(path) >= LOCAL_PATH_MAX || plen + n > PIPE_NAME_MAX) {
        free(w);
        *rc = IOQ_ENAMETOOLONG;
        return NULL;
    }
    name = malloc((plen + n + 1) * sizeof *name);
    if (!name) {
        free(w);
        *rc = IOQ_ENOMEM;
        return NULL;
    }
    memcpy(name, prefix, plen * sizeof *name);
    /* A backslash would be a path separator in the pipe namespace: a Unix-style path maps
     * to one flat name. */
    for (size_t i = 0; i < n; i++)
        name[plen + i] = w[i] == L'\\' ? L'/' : w[i];
    name[plen + n] = 0;
    free(w);
    return name;
}

int ioq__win_pipe_instance(const wchar_t *name, bool first, HANDLE *out)
{
    DWORD mode = PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED;
    HANDLE p;
    if (first)
        mode |= FILE_FLAG_FIRST_PIPE_INSTANCE;
    p = CreateNamedPipeW(name, mode, PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT |
                         PIPE_REJECT_REMOTE_CLIENTS, PIPE_UNLIMITED_INSTANCES, PIPE_BUF_SIZE,
                         PIPE_BUF_SIZE, 0, NULL);
    if (p == INVALID_HANDLE_VALUE) {
        DWORD e = GetLastError();
        /* FIRST_PIPE_INSTANCE reports a taken name as access denied. */
        if (first && (e == ERROR_ACCESS_DENIED || e == ERROR_PIPE_BUSY))
            return IOQ_EADDRINUSE;
        return ioq__win_error_map(e);
    }
    *out = p;
    return 0;
}

/* Names of listener pipes between ioq__os_local_listen and the backend's handle_open. */
typedef struct pipe_name {
    struct pipe_name *next;
    int64_t fd;
    wchar_t *name;
} pipe_name;

static SRWLOCK names_lock = SRWLOCK_INIT;
static pipe_name *names;

wchar_t *ioq__win_pipe_name_take(int64_t fd)
{
    pipe_name **pp, *p;
    wchar_t *w = NULL;
    AcquireSRWLockExclusive(&names_lock);
    for (pp = &names; (p = *pp) != NULL; pp = &p->next) {
        if (p->fd == fd) {
            *pp = p->next;
            w = p->name;
            free(p);
            break;
        }
    }
    ReleaseSRWLockExclusive(&names_lock);
    return w;
}

/* A local path names a place in the file system on every OS: its directory must exist,
 * even though the pipe itself lives in the pipe namespace. */
static int local_dir_check(const char *path)
{
    const char *slash = NULL;
    char *dir;
    wchar_t *w;
    DWORD a;
    int rc;
    for (const char *c = path; *c; c++)
        if (*c == '/' || *c == '\\')
            slash = c;
    if (!slash || slash == path || strncmp(path, "\\\\.\\pipe\\", 9) == 0)
        return 0;
    dir = malloc((size_t)(slash - path) + 1);
    if (!dir)
        return IOQ_ENOMEM;
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = 0;
    w = utf16(dir, &rc);
    free(dir);
    if (!w)
        return rc;
    a = GetFileAttributesW(w);
    free(w);
    if (a == INVALID_FILE_ATTRIBUTES)
        return IOQ_ENOENT;
    return (a & FILE_ATTRIBUTE_DIRECTORY) ? 0 : IOQ_ENOTDIR;
}

int ioq__os_local_listen(const char *path, uint32_t backlog, uint32_t flags, int64_t *out)
{
    pipe_name *pn;
    HANDLE p;
    int rc;
    wchar_t *name;
    (void)backlog;
    (void)flags; /* a pipe leaves no file behind: nothing to unlink */
    if ((rc = local_dir_check(path)) != 0)
        return rc;
    if (!(name = ioq__win_pipe_name(path, &rc)))
        return rc;
    pn = malloc(sizeof *pn);
    if (!pn) {
        free(name);
        return IOQ_ENOMEM;
    }
    /* FILE_FLAG_FIRST_PIPE_INSTANCE is not honoured everywhere (wine): ask first whether
     * the name is served. Any answer but "not found" means it is. */
    if (!WaitNamedPipeW(name, 1) && GetLastError() == ERROR_FILE_NOT_FOUND)
        rc = ioq__win_pipe_instance(name, true, &p);
    else
        rc = IOQ_EADDRINUSE;
    if (rc != 0) {
        free(name);
        free(pn);
        return rc;
    }
    pn->fd = (int64_t)(intptr_t)p;
    pn->name = name;
    AcquireSRWLockExclusive(&names_lock);
    pn->next = names;
    names = pn;
    ReleaseSRWLockExclusive(&names_lock);
    *out = pn->fd;
    return 0;
}

/* --- queries and options ------------------------------------------------------------------ */

int ioq__os_sockname(int64_t fd, bool peer, ioq_addr *out)
{
    return ioq__sock_addr(fd, peer, out) == 0 ? 0
                                              : ioq__win_error_map((DWORD)WSAGetLastError());
}

static int set_int(SOCKET s, int level, int name, int v)
{
    if (setsockopt(s, level, name, (const char *)&v, sizeof v) != 0)
        return ioq__win_error_map((DWORD)WSAGetLastError());
    return 0;
}

int ioq__os_setopt(int64_t fd, uint8_t kind, uint32_t opt, int64_t value)
{
    SOCKET s = (SOCKET)fd;
    int level, name;
    /* Local handles are named pipes here: no socket options at all. */
    if (kind == IOQ__K_LOCAL || kind == IOQ__K_LOCAL_LISTENER)
        return IOQ_ENOTSUP;
    if (ioq__opt_int(opt, &level, &name))
        return set_int(s, level, name, (int)value);
    switch (opt) {
    case IOQ_OPT_KEEPALIVE: {
        struct tcp_keepalive ka;
        DWORD n;
        int rc = set_int(s, SOL_SOCKET, SO_KEEPALIVE, value ? 1 : 0);
        if (rc != 0 || value <= 1)
            return rc;
#if defined(TCP_KEEPIDLE)
        /* Windows 10 1709 and later take the idle time as an option of its own. */
        if (set_int(s, IPPROTO_TCP, TCP_KEEPIDLE, (int)value) == 0)
            return 0;
#endif
        ka.onoff = 1;
        ka.keepalivetime = (ULONG)value * 1000;
        ka.keepaliveinterval = 1000;
        if (WSAIoctl(s, SIO_KEEPALIVE_VALS, &ka, sizeof ka, NULL, 0, &n, NULL, NULL) != 0)
            return ioq__win_error_map((DWORD)WSAGetLastError());
        return 0;
    }
    case IOQ_OPT_LINGER: {
        struct linger l;
        l.l_onoff = value >= 0;
        l.l_linger = value >= 0 ? (u_short)value : 0;
        if (setsockopt(s, SOL_SOCKET, SO_LINGER, (const char *)&l, sizeof l) != 0)
            return ioq__win_error_map((DWORD)WSAGetLastError());
        return 0;
    }
    default:
        return IOQ_EINVAL;
    }
}

bool ioq__os_valid_fd(uint64_t h)
{
    DWORD fl;
    if (h == 0 || h == (uint64_t)(intptr_t)INVALID_HANDLE_VALUE || h > (uint64_t)INT64_MAX)
        return false;
    if (ioq__win_startup() == 0 && ioq__win_is_socket((int64_t)h))
        return true;
    return GetHandleInformation((HANDLE)(uintptr_t)h, &fl) != 0;
}

int ioq__os_adopt(int64_t fd, uint32_t kind, uint8_t *family)
{
    SOCKET s = (SOCKET)fd;
    int type = 0, len = sizeof type, listening = 0;
    struct sockaddr_storage ss;
    int slen = sizeof ss;
    u_long one = 1;

    *family = 0;
    if (kind == IOQ_KIND_WATCH)
        return ioq__win_is_socket(fd) ? 0 : IOQ_ENOTSUP; /* AFD polls sockets only */
    if (kind == IOQ_KIND_FILE)
        return GetFileType((HANDLE)(intptr_t)fd) == FILE_TYPE_DISK ? 0 : IOQ_EINVAL;
    if (kind == IOQ_KIND_LOCAL)
        return !ioq__win_is_socket(fd) && GetFileType((HANDLE)(intptr_t)fd) == FILE_TYPE_PIPE
                   ? 0
                   : IOQ_EINVAL;
    if (kind == IOQ_KIND_LOCAL_LISTENER)
        return IOQ_ENOTSUP; /* a pipe listener needs its name, which a HANDLE does not give */
    if (getsockopt(s, SOL_SOCKET, SO_TYPE, (char *)&type, &len) != 0 ||
        getsockname(s, (struct sockaddr *)&ss, &slen) != 0 ||
        (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
        return IOQ_EINVAL;
    len = sizeof listening;
    getsockopt(s, SOL_SOCKET, SO_ACCEPTCONN, (char *)&listening, &len);
    switch (kind) {
    case IOQ_KIND_TCP:
    case IOQ_KIND_TCP_LISTENER:
        if (type != SOCK_STREAM || (listening != 0) != (kind == IOQ_KIND_TCP_LISTENER))
            return IOQ_EINVAL;
        break;
    case IOQ_KIND_UDP:
        if (type != SOCK_DGRAM)
            return IOQ_EINVAL;
        break;
    default:
        return IOQ_EINVAL;
    }
    *family = ss.ss_family == AF_INET6 ? IOQ_AF_INET6 : IOQ_AF_INET;
    ioctlsocket(s, FIONBIO, &one);
    return 0;
}

void ioq__os_close(int64_t fd)
{
    if (fd < 0)
        return;
    /* Sockets and other handles share one number space: a socket answers SO_TYPE. */
    if (ioq__win_is_socket(fd))
        closesocket((SOCKET)fd);
    else
        CloseHandle((HANDLE)(intptr_t)fd);
}

/* --- thread-pool work ------------------------------------------------------------------------ */

static int open_file(ioq__op *op, HANDLE *out)
{
    uint32_t f = op->flags;
    DWORD access = 0, disp, attrs = FILE_ATTRIBUTE_NORMAL;
    HANDLE fh;
    wchar_t *w;
    int rc;

    if (f & IOQ_OPEN_READ)
        access |= GENERIC_READ;
    if (f & IOQ_OPEN_WRITE) {
        /* Append access without FILE_WRITE_DATA makes every write go to the end, as
         * O_APPEND does. */
        if (f & IOQ_OPEN_APPEND)
            access |= FILE_APPEND_DATA | FILE_WRITE_ATTRIBUTES | FILE_WRITE_EA | SYNCHRONIZE;
        else
            access |= GENERIC_WRITE;
    }
    if ((f & IOQ_OPEN_CREATE) && (f & IOQ_OPEN_EXCL))
        disp = CREATE_NEW;
    else if ((f & IOQ_OPEN_CREATE) && (f & IOQ_OPEN_TRUNC))
        disp = CREATE_ALWAYS;
    else if (f & IOQ_OPEN_CREATE)
        disp = OPEN_ALWAYS;
    else if (f & IOQ_OPEN_TRUNC)
        disp = TRUNCATE_EXISTING;
    else
        disp = OPEN_EXISTING;
    if ((f & IOQ_OPEN_CREATE) && !(op->mode & 0222))
        attrs = FILE_ATTRIBUTE_READONLY;
    if (!(w = utf16(op->path, &rc)))
        return rc;
    fh = CreateFileW(w, access, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                     disp, attrs | FILE_FLAG_OVERLAPPED, NULL);
    if (fh == INVALID_HANDLE_VALUE) {
        DWORD e = GetLastError(), a = GetFileAttributesW(w);
        free(w);
        int rc2;
        /* Opening a directory is refused as access denied; POSIX says EISDIR. */
        if (e == ERROR_ACCESS_DENIED && a != INVALID_FILE_ATTRIBUTES &&
            (a & FILE_ATTRIBUTE_DIRECTORY))
            return IOQ_EISDIR;
        /* A regular file used as a directory: POSIX says ENOTDIR. */
        if (e == ERROR_PATH_NOT_FOUND && (rc2 = local_dir_check(op->path)) == IOQ_ENOTDIR)
            return rc2;
        return ioq__win_error_map(e);
    }
    free(w);
    *out = fh;
    return 0;
}

void ioq__os_file_work(ioq__op *op)
{
    HANDLE fh = (HANDLE)(intptr_t)op->res_fd;
    op->res_value = 0;
    switch (op->code) {
    case IOQ_OP_OPEN: {
        HANDLE nh = INVALID_HANDLE_VALUE;
        op->res = open_file(op, &nh);
        op->res_fd = op->res == 0 ? (int64_t)(intptr_t)nh : -1;
        break;
    }
    case IOQ_OP_FSYNC:
        op->res = FlushFileBuffers(fh) ? 0 : ioq__win_error_map(GetLastError());
        break;
    default:
        op->res = IOQ_ENOTSUP; /* reads and writes are overlapped in the backend */
        break;
    }
}

void ioq__os_resolve_work(ioq__op *op)
{
    struct addrinfo *res = NULL;
    int rc = ioq__win_startup();

    if (rc != 0) {
        op->res = rc;
        return;
    }
    rc = ioq__resolve_lookup(op, &res);
    if (rc != 0) {
        op->res = rc == EAI_FAMILY ? IOQ_EAFNOSUPPORT : ioq__win_error_map((DWORD)rc);
        if (op->res == IOQ_EINVAL || op->res == IOQ_EUNKNOWN)
            op->res = IOQ_ENOTFOUND;
        return;
    }
    ioq__resolve_results(op, res);
}

/* --- pipes and terminals (since 1.1) ------------------------------------------------------ */

/* An anonymous pipe is a named pipe with a name nobody else knows, as libuv makes them: the
 * server end is created with FILE_FLAG_OVERLAPPED so that the loop's port can serve it; the
 * client end is overlapped too when it is ioq's, and a plain synchronous handle when it is
 * a child's stdio (a child expects ordinary blocking ReadFile/WriteFile). Every end is
 * non-inheritable ("close-on-exec"): ioq_spawn hands a child inheritable copies only. */
static volatile LONG pipe_serial;

int ioq__os_pipe(int64_t out[2], unsigned ours)
{
    /* The server end is one of ours (the read end if both are). */
    bool server_reads = (ours & 1u) != 0;
    DWORD open_mode = (server_reads ? PIPE_ACCESS_INBOUND : PIPE_ACCESS_OUTBOUND) |
                      FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE;
    DWORD client_access = server_reads ? GENERIC_WRITE | FILE_READ_ATTRIBUTES
                                       : GENERIC_READ | FILE_WRITE_ATTRIBUTES;
    DWORD client_flags = (ours & (server_reads ? 2u : 1u)) ? FILE_FLAG_OVERLAPPED : 0;
    HANDLE server = INVALID_HANDLE_VALUE, client;
    wchar_t name[96];
    OVERLAPPED ov;
    DWORD e = 0;

    for (int tries = 0; tries < 32; tries++) {
        _snwprintf(name, sizeof name / sizeof name[0], L"\\\\.\\pipe\\ioq-%lu-%ld-%p",
                   (unsigned long)GetCurrentProcessId(), (long)InterlockedIncrement(&pipe_serial),
                   (void *)&pipe_serial);
        name[sizeof name / sizeof name[0] - 1] = 0;
        server = CreateNamedPipeW(name, open_mode,
                                  PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT |
                                      PIPE_REJECT_REMOTE_CLIENTS,
                                  1, PIPE_BUF_SIZE, PIPE_BUF_SIZE, 0, NULL);
        if (server != INVALID_HANDLE_VALUE)
            break;
        e = GetLastError();
        /* A name taken (by whom?) is tried again with the next number. */
        if (e != ERROR_PIPE_BUSY && e != ERROR_ACCESS_DENIED)
            return ioq__win_error_map(e);
    }
    if (server == INVALID_HANDLE_VALUE)
        return ioq__win_error_map(e);
    client = CreateFileW(name, client_access, 0, NULL, OPEN_EXISTING, client_flags, NULL);
    if (client == INVALID_HANDLE_VALUE) {
        e = GetLastError();
        CloseHandle(server);
        return ioq__win_error_map(e);
    }
    /* The client is there, so this finishes at once (ERROR_PIPE_CONNECTED). */
    memset(&ov, 0, sizeof ov);
    if (!(ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL))) {
        e = GetLastError();
        goto fail;
    }
    if (!ConnectNamedPipe(server, &ov)) {
        DWORD n;
        e = GetLastError();
        if (e == ERROR_IO_PENDING && GetOverlappedResult(server, &ov, &n, TRUE))
            e = 0;
        else if (e == ERROR_PIPE_CONNECTED)
            e = 0;
    }
    CloseHandle(ov.hEvent);
    if (e != 0)
        goto fail;
    out[server_reads ? 0 : 1] = (int64_t)(intptr_t)server;
    out[server_reads ? 1 : 0] = (int64_t)(intptr_t)client;
    return 0;
fail:
    CloseHandle(client);
    CloseHandle(server);
    return ioq__win_error_map(e);
}

/* NtQueryInformationFile and NtQueryObject, for what a foreign pipe HANDLE is. */
typedef struct {
    union {
        LONG Status;
        PVOID Pointer;
    } u;
    ULONG_PTR Information;
} io_status;
typedef LONG(NTAPI *nt_query_file_fn)(HANDLE, io_status *, PVOID, ULONG, int);
typedef LONG(NTAPI *nt_query_object_fn)(HANDLE, int, PVOID, ULONG, PULONG);
#define FILE_MODE_INFORMATION_CLASS 16
#define OBJECT_BASIC_INFORMATION_CLASS 0
#define FILE_SYNC_IO_ALERT 0x10u
#define FILE_SYNC_IO_NONALERT 0x20u
#define ACCESS_READ_DATA 0x1u
#define ACCESS_WRITE_DATA 0x2u

typedef struct {
    ULONG Attributes;
    ACCESS_MASK GrantedAccess;
    ULONG rest[12]; /* the counts, lengths and times after it: 56 bytes in all */
} object_basic_info;

static FARPROC ntdll_fn(const char *name)
{
    HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
    return ntdll ? GetProcAddress(ntdll, name) : NULL;
}

/* 1 if the handle was opened for overlapped I/O, 0 if synchronous, < 0 unknown. */
static int overlapped_handle(HANDLE h)
{
    nt_query_file_fn q = (nt_query_file_fn)(void (*)(void))ntdll_fn("NtQueryInformationFile");
    io_status iosb;
    ULONG mode = 0;
    if (!q || q(h, &iosb, &mode, sizeof mode, FILE_MODE_INFORMATION_CLASS) < 0)
        return -1;
    return (mode & (FILE_SYNC_IO_ALERT | FILE_SYNC_IO_NONALERT)) ? 0 : 1;
}

/* A console handle: 1 input (CONIN$, ReadConsoleW), 2 output (a screen buffer,
 * WriteConsoleW), 0 not a console. */
static int console_dir(HANDLE h)
{
    DWORD mode, n;
    if (!GetConsoleMode(h, &mode))
        return 0;
    return GetNumberOfConsoleInputEvents(h, &n) ? 1 : 2;
}

int ioq__win_stream_class(HANDLE h)
{
    if (console_dir(h))
        return IOQ__WIN_CONSOLE;
    if (GetFileType(h) == FILE_TYPE_PIPE && overlapped_handle(h) == 1)
        return IOQ__WIN_OVERLAPPED;
    return IOQ__WIN_SYNC;
}

/* The directions a handle was opened for, from its granted access rights. */
static void access_dir(HANDLE h, uint16_t *rstate)
{
    nt_query_object_fn qo = (nt_query_object_fn)(void (*)(void))ntdll_fn("NtQueryObject");
    object_basic_info info;
    ULONG len = 0;
    if (qo && qo(h, OBJECT_BASIC_INFORMATION_CLASS, &info, sizeof info, &len) >= 0) {
        if (!(info.GrantedAccess & ACCESS_READ_DATA))
            *rstate |= IOQ__R_NOREAD;
        if (!(info.GrantedAccess & ACCESS_WRITE_DATA))
            *rstate |= IOQ__R_NOWRITE;
    }
}

/* Pipes of every sort, the NUL device and consoles. What cannot be overlapped (anonymous
 * pipes from CreatePipe, clients opened without FILE_FLAG_OVERLAPPED, NUL, consoles) is
 * served by the backend with blocking calls on a thread of its own (iocp.c). A disk file
 * is IOQ_KIND_FILE, as on POSIX. */
int ioq__os_stream_adopt(int64_t fd, uint32_t kind, uint16_t *rstate)
{
    HANDLE h = (HANDLE)(intptr_t)fd;
    DWORD type;
    int con;

    *rstate = 0;
    if (ioq__win_startup() == 0 && ioq__win_is_socket(fd))
        return kind == IOQ_KIND_TTY ? IOQ_ENOTTY : IOQ_EINVAL; /* a socket is TCP here */
    /* A console goes one way: its input buffer is read, its screen buffer written. */
    if ((con = console_dir(h)) != 0) {
        *rstate = con == 1 ? IOQ__R_NOWRITE : IOQ__R_NOREAD;
        return 0;
    }
    if (kind == IOQ_KIND_TTY)
        return IOQ_ENOTTY;
    SetLastError(0);
    type = GetFileType(h);
    if (type == FILE_TYPE_UNKNOWN && GetLastError() != 0)
        return IOQ_EINVAL;
    if (type != FILE_TYPE_PIPE && type != FILE_TYPE_CHAR)
        return IOQ_EINVAL; /* a disk file is IOQ_KIND_FILE */
    access_dir(h, rstate);
    return 0;
}

/* Terminal mode and size on a console. Raw and normal are modes of the console's input
 * buffer, so an output handle changes the mode of CONIN$ (as a POSIX terminal's mode is
 * one for both directions); the size is the visible window of the screen buffer (CONOUT$
 * for an input handle). */
typedef struct {
    DWORD mode; /* the input mode before ioq changed it */
    bool raw;
} tty_saved;

#define TTY_RAW_OFF (ENABLE_LINE_INPUT | ENABLE_ECHO_INPUT | ENABLE_PROCESSED_INPUT)

static HANDLE console_open(const wchar_t *name)
{
    return CreateFileW(name, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE,
                       NULL, OPEN_EXISTING, 0, NULL);
}

/* The console input handle for h: h itself, or CONIN$ opened (*opened set). */
static HANDLE console_input(HANDLE h, bool *opened)
{
    int con = console_dir(h);
    *opened = false;
    if (con == 1)
        return h;
    if (con == 0)
        return INVALID_HANDLE_VALUE;
    h = console_open(L"CONIN$");
    *opened = h != INVALID_HANDLE_VALUE;
    return h;
}

int ioq__os_tty_mode(int64_t fd, void **saved, uint32_t mode)
{
    bool opened;
    HANDLE in = console_input((HANDLE)(intptr_t)fd, &opened);
    tty_saved *sv = *saved;
    DWORD cur, want;
    int rc = 0;

    if (in == INVALID_HANDLE_VALUE || !GetConsoleMode(in, &cur)) {
        rc = in == INVALID_HANDLE_VALUE ? IOQ_ENOTTY : ioq__win_error_map(GetLastError());
        goto out;
    }
    if (!sv) {
        if (mode == IOQ_TTY_MODE_NORMAL)
            goto out; /* never changed: as it is */
        if (!(sv = malloc(sizeof *sv))) {
            rc = IOQ_ENOMEM;
            goto out;
        }
        sv->mode = cur;
        sv->raw = false;
        *saved = sv;
    }
    want = mode == IOQ_TTY_MODE_RAW ? (sv->mode & ~(DWORD)TTY_RAW_OFF) | ENABLE_WINDOW_INPUT
                                    : sv->mode;
    if (!SetConsoleMode(in, want))
        rc = ioq__win_error_map(GetLastError());
    else
        sv->raw = mode == IOQ_TTY_MODE_RAW;
out:
    if (opened)
        CloseHandle(in);
    return rc;
}

int ioq__os_tty_size(int64_t fd, uint32_t *cols, uint32_t *rows)
{
    HANDLE h = (HANDLE)(intptr_t)fd, out = h;
    CONSOLE_SCREEN_BUFFER_INFO info;
    int con = console_dir(h), rc = 0;

    if (con == 0)
        return IOQ_ENOTTY;
    if (con == 1 && (out = console_open(L"CONOUT$")) == INVALID_HANDLE_VALUE)
        return ioq__win_error_map(GetLastError());
    if (!GetConsoleScreenBufferInfo(out, &info)) {
        rc = ioq__win_error_map(GetLastError());
    } else {
        *cols = (uint32_t)(info.srWindow.Right - info.srWindow.Left + 1);
        *rows = (uint32_t)(info.srWindow.Bottom - info.srWindow.Top + 1);
    }
    if (out != h)
        CloseHandle(out);
    return rc;
}

/* Put back a console left raw. */
void ioq__os_tty_free(int64_t fd, void *saved)
{
    tty_saved *sv = saved;
    if (sv && sv->raw && fd >= 0) {
        bool opened;
        HANDLE in = console_input((HANDLE)(intptr_t)fd, &opened);
        if (in != INVALID_HANDLE_VALUE)
            SetConsoleMode(in, sv->mode);
        if (opened)
            CloseHandle(in);
    }
    free(sv);
}

/* --- child processes (since 1.1) ---------------------------------------------------------- */

/* A child: its process handle (the handle's descriptor is a copy of it, closed by the
 * core), its id, and its status once it ended. Windows leaves no zombies: closing the
 * handles is all it takes, and does not end the child. */
typedef struct {
    HANDLE process;
    DWORD pid;
    bool ended;
    bool ctrl_group; /* a process group of its own in our console: SIGINT is Ctrl-Break */
    int64_t result;
} win_proc;

/* Append one argument to the command line, quoted as the Microsoft C runtime parses it
 * (CommandLineToArgvW): quotes only when needed; backslashes doubled only before a quote. */
static size_t quote_arg(const wchar_t *a, wchar_t *out)
{
    size_t n = 0, len = wcslen(a);
    bool quote = len == 0 || wcspbrk(a, L" \t\n\v\"") != NULL;
    if (!quote) {
        if (out)
            memcpy(out, a, len * sizeof *a);
        return len;
    }
    if (out)
        out[n] = L'"';
    n++;
    for (size_t i = 0;; i++) {
        size_t bs = 0;
        while (i < len && a[i] == L'\\')
            i++, bs++;
        if (i == len) {
            /* Before the closing quote: every backslash doubled. */
            for (size_t k = 0; k < bs * 2; k++, n++)
                if (out)
                    out[n] = L'\\';
            break;
        }
        if (a[i] == L'"') {
            for (size_t k = 0; k < bs * 2 + 1; k++, n++)
                if (out)
                    out[n] = L'\\';
        } else {
            for (size_t k = 0; k < bs; k++, n++)
                if (out)
                    out[n] = L'\\';
        }
        if (out)
            out[n] = a[i];
        n++;
    }
    if (out)
        out[n] = L'"';
    return n + 1;
}

static wchar_t *command_line(const char *const *argv, int *rc)
{
    size_t total = 1, n = 0;
    wchar_t *line, **w;
    size_t argc = 0;
    while (argv[argc])
        argc++;
    if (!(w = calloc(argc, sizeof *w))) {
        *rc = IOQ_ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < argc; i++) {
        if (!(w[i] = utf16(argv[i], rc))) {
            line = NULL;
            goto out;
        }
        total += quote_arg(w[i], NULL) + 1;
    }
    if (!(line = malloc(total * sizeof *line))) {
        *rc = IOQ_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < argc; i++) {
        if (i)
            line[n++] = L' ';
        n += quote_arg(w[i], line + n);
    }
    line[n] = 0;
    *rc = 0;
out:
    for (size_t i = 0; i < argc; i++)
        free(w[i]);
    free(w);
    return line;
}

/* A UTF-16 environment block from "NAME=value" strings. SYSTEMROOT is added from ours when
 * missing: without it Winsock (and more) fails in the child. */
static wchar_t *env_block(const char *const *env, int *rc)
{
    size_t total = 1, n = 0;
    bool has_root = false;
    wchar_t root[MAX_PATH + 12], *block;
    DWORD rl;
    for (const char *const *e = env; *e; e++) {
        int k = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, *e, -1, NULL, 0);
        if (k <= 0 || !strchr(*e, '=')) {
            *rc = IOQ_EINVAL;
            return NULL;
        }
        total += (size_t)k;
        if (_strnicmp(*e, "SYSTEMROOT=", 11) == 0)
            has_root = true;
    }
    root[0] = 0;
    if (!has_root) {
        memcpy(root, L"SYSTEMROOT=", 12 * sizeof(wchar_t));
        rl = GetEnvironmentVariableW(L"SYSTEMROOT", root + 11, MAX_PATH);
        if (rl == 0 || rl >= MAX_PATH)
            root[0] = 0;
        else
            total += wcslen(root) + 1;
    }
    if (!(block = malloc(total * sizeof *block))) {
        *rc = IOQ_ENOMEM;
        return NULL;
    }
    for (const char *const *e = env; *e; e++)
        n += (size_t)MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, *e, -1, block + n,
                                         (int)(total - n));
    if (root[0]) {
        memcpy(block + n, root, (wcslen(root) + 1) * sizeof *block);
        n += wcslen(root) + 1;
    }
    block[n] = 0;
    *rc = 0;
    return block;
}

/* The program to run: file as given (a path, or a name in the current directory), or with
 * IOQ_SPAWN_SEARCH_PATH a name without a directory looked up in the child's PATH (ours
 * when env is NULL), ".exe" added when it has no extension. */
static wchar_t *program_path(const ioq_process_options *o, int *rc)
{
    wchar_t *file = utf16(o->file, rc), *path = NULL, *found;
    DWORD n;
    if (!file)
        return NULL;
    if (!(o->flags & IOQ_SPAWN_SEARCH_PATH) || wcspbrk(file, L"/\\:"))
        return file;
    if (o->env) {
        for (const char *const *e = o->env; *e; e++)
            if (_strnicmp(*e, "PATH=", 5) == 0 && !(path = utf16(*e + 5, rc))) {
                free(file);
                return NULL;
            }
    } else if ((n = GetEnvironmentVariableW(L"PATH", NULL, 0)) > 0) {
        if (!(path = malloc(n * sizeof *path))) {
            free(file);
            *rc = IOQ_ENOMEM;
            return NULL;
        }
        GetEnvironmentVariableW(L"PATH", path, n);
    }
    found = NULL;
    if (path && *path) {
        n = SearchPathW(path, file, L".exe", 0, NULL, NULL);
        if (n > 0 && (found = malloc(n * sizeof *found)) != NULL &&
            SearchPathW(path, file, L".exe", n, found, NULL) == 0) {
            free(found);
            found = NULL;
        }
    }
    free(path);
    free(file);
    *rc = found ? 0 : IOQ_ENOENT;
    return found;
}

/* What the child gets as stdio i (std: the standard handle of ours): NULL when there is
 * nothing to give (the child then has none). */
static HANDLE stdio_source(int64_t fd, DWORD std, HANDLE nul)
{
    HANDLE src = fd == -1                 ? GetStdHandle(std)
                 : fd == IOQ__OS_DEVNULL ? nul
                                          : (HANDLE)(intptr_t)fd;
    return src == INVALID_HANDLE_VALUE ? NULL : src;
}

/* An inheritable copy of src for the child; NULL (and 0) when we have nothing to give. */
static int stdio_copy(HANDLE src, bool ours, HANDLE *out)
{
    *out = NULL;
    if (src == NULL)
        return 0;
    if (!DuplicateHandle(GetCurrentProcess(), src, GetCurrentProcess(), out, 0, TRUE,
                         DUPLICATE_SAME_ACCESS)) {
        *out = NULL;
        /* Our own standard handle may be gone or not duplicable: the child has none. */
        if (ours)
            return 0;
        return ioq__win_error_map(GetLastError());
    }
    return 0;
}

/* The child inherits exactly its stdio copies: PROC_THREAD_ATTRIBUTE_HANDLE_LIST names them
 * (every entry inheritable, none twice), so that no other inheritable handle of the host
 * (or of another spawn running at the same time) reaches it, as libuv and CPython do. The
 * list must outlive CreateProcessW: it lives in the caller's frame. */
typedef struct {
    LPPROC_THREAD_ATTRIBUTE_LIST attrs;
    HANDLE list[3];
    DWORD n;
} handle_list;

static int handle_list_make(handle_list *hl, const HANDLE child_std[3])
{
    SIZE_T size = 0;
    hl->attrs = NULL;
    hl->n = 0;
    for (int i = 0; i < 3; i++) {
        bool seen = child_std[i] == NULL;
        for (DWORD j = 0; j < hl->n && !seen; j++)
            seen = hl->list[j] == child_std[i];
        if (!seen)
            hl->list[hl->n++] = child_std[i];
    }
    if (hl->n == 0)
        return 0; /* nothing to inherit: CreateProcessW is told to inherit none */
    /* The first call only says how much room one attribute takes (and fails for that). */
    InitializeProcThreadAttributeList(NULL, 1, 0, &size);
    if (size == 0 || !(hl->attrs = malloc(size)))
        return IOQ_ENOMEM;
    if (!InitializeProcThreadAttributeList(hl->attrs, 1, 0, &size)) {
        int rc = ioq__win_error_map(GetLastError());
        free(hl->attrs);
        hl->attrs = NULL;
        return rc;
    }
    if (!UpdateProcThreadAttribute(hl->attrs, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, hl->list,
                                   hl->n * sizeof hl->list[0], NULL, NULL)) {
        int rc = ioq__win_error_map(GetLastError());
        DeleteProcThreadAttributeList(hl->attrs);
        free(hl->attrs);
        hl->attrs = NULL;
        return rc;
    }
    return 0;
}

static void handle_list_free(handle_list *hl)
{
    if (hl->attrs) {
        DeleteProcThreadAttributeList(hl->attrs);
        free(hl->attrs);
    }
}

int ioq__os_spawn(const ioq_process_options *o, const int64_t fds[3], void **proc,
                  int64_t *wait_fd)
{
    static const DWORD stds[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
    wchar_t *prog = NULL, *line = NULL, *env = NULL, *cwd = NULL;
    HANDLE nul = INVALID_HANDLE_VALUE, child_std[3] = {NULL, NULL, NULL}, wait_h = NULL;
    HANDLE src[3] = {NULL, NULL, NULL};
    handle_list hl = {NULL, {NULL, NULL, NULL}, 0};
    STARTUPINFOEXW si;
    PROCESS_INFORMATION pi;
    win_proc *p = NULL;
    DWORD flags = CREATE_UNICODE_ENVIRONMENT;
    int rc = 0;

    if (!(prog = program_path(o, &rc)) || !(line = command_line(o->argv, &rc)))
        goto out;
    if (o->env && !(env = env_block(o->env, &rc)))
        goto out;
    if (o->cwd) {
        DWORD a;
        if (!(cwd = utf16(o->cwd, &rc)))
            goto out;
        /* CreateProcessW says ERROR_DIRECTORY for any bad directory: tell them apart. */
        a = GetFileAttributesW(cwd);
        if (a == INVALID_FILE_ATTRIBUTES) {
            rc = IOQ_ENOENT;
            goto out;
        }
        if (!(a & FILE_ATTRIBUTE_DIRECTORY)) {
            rc = IOQ_ENOTDIR;
            goto out;
        }
    }
    if (!(p = calloc(1, sizeof *p))) {
        rc = IOQ_ENOMEM;
        goto out;
    }
    for (int i = 0; i < 3; i++) {
        if (fds[i] == IOQ__OS_DEVNULL && nul == INVALID_HANDLE_VALUE) {
            SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, FALSE};
            nul = CreateFileW(L"NUL", GENERIC_READ | GENERIC_WRITE,
                              FILE_SHARE_READ | FILE_SHARE_WRITE, &sa, OPEN_EXISTING, 0, NULL);
            if (nul == INVALID_HANDLE_VALUE) {
                rc = ioq__win_error_map(GetLastError());
                goto out;
            }
        }
    }
    memset(&si, 0, sizeof si);
    si.StartupInfo.cb = sizeof si;
    si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    if (o->flags & IOQ_SPAWN_NEW_SESSION)
        flags |= CREATE_NEW_PROCESS_GROUP;
    for (int i = 0; i < 3 && rc == 0; i++) {
        src[i] = stdio_source(fds[i], stds[i], nul);
        /* One copy per distinct handle: stdout and stderr are often the same. */
        for (int j = 0; j < i && !child_std[i]; j++)
            if (src[j] == src[i])
                child_std[i] = child_std[j];
        if (!child_std[i])
            rc = stdio_copy(src[i], fds[i] == -1, &child_std[i]);
    }
    if (rc == 0)
        rc = handle_list_make(&hl, child_std);
    if (rc == 0) {
        si.StartupInfo.hStdInput = child_std[0];
        si.StartupInfo.hStdOutput = child_std[1];
        si.StartupInfo.hStdError = child_std[2];
        si.lpAttributeList = hl.attrs;
        if (hl.attrs)
            flags |= EXTENDED_STARTUPINFO_PRESENT;
        if (!CreateProcessW(prog, line, NULL, NULL, hl.attrs != NULL, flags, env, cwd,
                            &si.StartupInfo, &pi)) {
            DWORD e = GetLastError();
            rc = e == ERROR_BAD_EXE_FORMAT || e == ERROR_EXE_MACHINE_TYPE_MISMATCH ||
                         e == ERROR_BAD_FORMAT
                     ? IOQ_ENOEXEC
                 : e == ERROR_DIRECTORY ? IOQ_ENOENT
                                        : ioq__win_error_map(e);
        }
    }
    handle_list_free(&hl);
    for (int i = 0; i < 3; i++)
        if (child_std[i] && (i < 1 || child_std[i] != child_std[0]) &&
            (i < 2 || child_std[i] != child_std[1]))
            CloseHandle(child_std[i]);
    if (rc != 0)
        goto out;
    CloseHandle(pi.hThread);
    /* The loop's copy (the handle's descriptor, which the core closes) and the record's. */
    if (!DuplicateHandle(GetCurrentProcess(), pi.hProcess, GetCurrentProcess(), &wait_h, 0,
                         FALSE, DUPLICATE_SAME_ACCESS)) {
        rc = ioq__win_error_map(GetLastError());
        TerminateProcess(pi.hProcess, 1);
        CloseHandle(pi.hProcess);
        goto out;
    }
    p->process = pi.hProcess;
    p->pid = pi.dwProcessId;
    /* The child shares our console (it inherits it), where its group can be sent events. */
    p->ctrl_group = (o->flags & IOQ_SPAWN_NEW_SESSION) && GetConsoleCP() != 0;
    *proc = p;
    p = NULL;
    *wait_fd = (int64_t)(intptr_t)wait_h;
out:
    if (nul != INVALID_HANDLE_VALUE)
        CloseHandle(nul);
    free(p);
    free(prog);
    free(line);
    free(env);
    free(cwd);
    return rc;
}

int ioq__os_process_reap(void *proc, int64_t *result)
{
    win_proc *p = proc;
    DWORD code;
    if (!p->ended) {
        if (WaitForSingleObject(p->process, 0) != WAIT_OBJECT_0)
            return 0;
        if (!GetExitCodeProcess(p->process, &code))
            return ioq__win_error_map(GetLastError());
        p->result = (int64_t)code;
        p->ended = true;
    }
    *result = p->result;
    return 1;
}

/* POSIX signal numbers (the same on every platform ioq runs on). */
#define IOQ__SIGINT 2
#define IOQ__SIGQUIT 3
#define IOQ__SIGKILL 9
#define IOQ__SIGTERM 15

int ioq__os_process_kill(void *proc, int signum)
{
    win_proc *p = proc;
    int64_t res;
    if (ioq__os_process_reap(p, &res) == 1)
        return IOQ_ESRCH;
    if (signum == 0)
        return 0;
    if (signum != IOQ__SIGINT && signum != IOQ__SIGQUIT && signum != IOQ__SIGKILL &&
        signum != IOQ__SIGTERM)
        return IOQ_ENOTSUP;
    /* SIGINT to a child in a process group of its own (IOQ_SPAWN_NEW_SESSION) that shares
     * our console: Ctrl-Break to its group, which the child may handle, as a POSIX child
     * may handle SIGINT (Ctrl-C cannot be sent to one group: a new group ignores it).
     * Where the event cannot be sent, SIGINT ends the child as the other signals do. */
    if (signum == IOQ__SIGINT && p->ctrl_group &&
        GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, p->pid))
        return 0;
    /* The exit code says which signal, as the POSIX status does: 256 + signum. */
    if (!TerminateProcess(p->process, 256u + (UINT)signum)) {
        DWORD e = GetLastError();
        /* Ended meanwhile: TerminateProcess on a process going away is refused. */
        if (ioq__os_process_reap(p, &res) == 1)
            return IOQ_ESRCH;
        return ioq__win_error_map(e);
    }
    return 0;
}

int64_t ioq__os_process_pid(void *proc) { return ((win_proc *)proc)->pid; }

void ioq__os_process_free(void *proc, bool kill)
{
    win_proc *p = proc;
    if (!p)
        return;
    if (kill)
        ioq__os_process_kill(p, IOQ__SIGKILL);
    CloseHandle(p->process);
    free(p);
}

/* --- signals ---------------------------------------------------------------------------- */

/* Windows has no POSIX signals: the console's control events stand for three of them,
 * Ctrl-C for SIGINT, Ctrl-Break for SIGBREAK and closing the console for SIGHUP. The
 * handler runs on a thread of its own, where counting and waking loops is allowed. */
#define IOQ__SIGHUP 1
#ifndef SIGBREAK
#define SIGBREAK 21
#endif
static volatile LONG caught[IOQ__NSIG];
static volatile LONG ctrl_installed;

static BOOL WINAPI on_console_event(DWORD type)
{
    int sig = type == CTRL_C_EVENT       ? SIGINT
              : type == CTRL_BREAK_EVENT ? SIGBREAK
              : type == CTRL_CLOSE_EVENT ? IOQ__SIGHUP
                                         : 0;
    if (sig == 0 || !caught[sig])
        return FALSE; /* not ours: the next handler (or the default) decides */
    ioq__signal_raised(sig);
    return TRUE;
}

int ioq__os_signal_check(int signum)
{
    if (signum <= 0 || signum >= IOQ__NSIG)
        return IOQ_EINVAL;
    return signum == SIGINT || signum == SIGBREAK || signum == IOQ__SIGHUP ? 0 : IOQ_ENOTSUP;
}

int ioq__os_signal_catch(int signum, bool on)
{
    /* Installed once for good: removing it could race an event being handled. */
    if (on && !ctrl_installed) {
        if (!SetConsoleCtrlHandler(on_console_event, TRUE))
            return ioq__os_errno_map((int)GetLastError());
        ctrl_installed = 1;
    }
    caught[signum] = on;
    return 0;
}
