/*
 * ioq_addr <-> sockaddr and name resolution, shared by the POSIX layer (posix.h) and the
 * Windows layer (win.h). The includer brings the socket headers (netinet/in.h and netdb.h,
 * or ws2tcpip.h): the structures and field names are the same on both, so one definition
 * serves every backend.
 */
#ifndef IOQ_SOCKADDR_H
#define IOQ_SOCKADDR_H

#include "backend.h"

#include <string.h>

/* Fill ss from a (IOQ_AF_INET or IOQ_AF_INET6); IOQ_EAFNOSUPPORT for another family. */
static inline int ioq__to_sockaddr(const ioq_addr *a, struct sockaddr_storage *ss,
                                   socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    *len = 0;
    if (a->family == IOQ_AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(a->port);
        memcpy(&sin->sin_addr, a->ip, 4);
        *len = (socklen_t)sizeof *sin;
        return 0;
    }
    if (a->family == IOQ_AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(a->port);
        sin6->sin6_scope_id = a->scope_id;
        memcpy(&sin6->sin6_addr, a->ip, 16);
        *len = (socklen_t)sizeof *sin6;
        return 0;
    }
    return IOQ_EAFNOSUPPORT;
}

/* An IPv4 or IPv6 sockaddr as an ioq_addr; any other family gives family 0. */
static inline void ioq__from_sockaddr(const struct sockaddr *sa, ioq_addr *a)
{
    memset(a, 0, sizeof *a);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        a->family = IOQ_AF_INET;
        a->port = ntohs(sin->sin_port);
        memcpy(a->ip, &sin->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        a->family = IOQ_AF_INET6;
        a->port = ntohs(sin6->sin6_port);
        a->scope_id = sin6->sin6_scope_id;
        memcpy(a->ip, &sin6->sin6_addr, 16);
    }
}

/* getsockname (peer false) or getpeername of socket fd as an ioq_addr: 0, or -1 with the
 * error in errno / WSAGetLastError(). */
static inline int ioq__sock_addr(int64_t fd, bool peer, ioq_addr *out)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
#if defined(_WIN32)
    SOCKET s = (SOCKET)fd;
#else
    int s = (int)fd;
#endif
    if ((peer ? getpeername(s, (struct sockaddr *)&ss, &len)
              : getsockname(s, (struct sockaddr *)&ss, &len)) != 0)
        return -1;
    ioq__from_sockaddr((struct sockaddr *)&ss, out);
    return 0;
}

/* The level and name of an IOQ_OPT_* that is set as a plain int, the same on every OS;
 * false for the others (KEEPALIVE, LINGER), which each OS layer sets its own way. */
static inline bool ioq__opt_int(uint32_t opt, int *level, int *name)
{
    switch (opt) {
    case IOQ_OPT_NODELAY: *level = IPPROTO_TCP; *name = TCP_NODELAY; return true;
    case IOQ_OPT_RCVBUF: *level = SOL_SOCKET; *name = SO_RCVBUF; return true;
    case IOQ_OPT_SNDBUF: *level = SOL_SOCKET; *name = SO_SNDBUF; return true;
    case IOQ_OPT_REUSEADDR: *level = SOL_SOCKET; *name = SO_REUSEADDR; return true;
    case IOQ_OPT_BROADCAST: *level = SOL_SOCKET; *name = SO_BROADCAST; return true;
    default: return false;
    }
}

/* getaddrinfo for a resolve op (host in path, service in path2, IOQ_RESOLVE_* flags):
 * getaddrinfo's own return code. */
static inline int ioq__resolve_lookup(const ioq__op *op, struct addrinfo **res)
{
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    if ((op->flags & IOQ_RESOLVE_INET) && !(op->flags & IOQ_RESOLVE_INET6))
        hints.ai_family = AF_INET;
    else if ((op->flags & IOQ_RESOLVE_INET6) && !(op->flags & IOQ_RESOLVE_INET))
        hints.ai_family = AF_INET6;
    /* One socket type, or every address comes back once per type. */
    hints.ai_socktype = SOCK_STREAM;
    if (op->flags & IOQ_RESOLVE_NUMERIC)
        hints.ai_flags |= AI_NUMERICHOST;
    return getaddrinfo(op->path, op->path2, &hints, res);
}

/* The IPv4 and IPv6 addresses of res into the op's output array, then freeaddrinfo: the
 * op's result is their count, or IOQ_ENOTFOUND for none. */
static inline void ioq__resolve_results(ioq__op *op, struct addrinfo *res)
{
    uint32_t n = 0;
    for (struct addrinfo *ai = res; ai && n < op->max; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        ioq__from_sockaddr(ai->ai_addr, &op->addr_out[n++]);
    }
    freeaddrinfo(res);
    op->res = n ? (int64_t)n : IOQ_ENOTFOUND;
}

#endif /* IOQ_SOCKADDR_H */
