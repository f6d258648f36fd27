/*
 * ioq_addr <-> sockaddr, shared by the POSIX layer (posix.h) and the Windows layer (win.h).
 * The includer brings the socket headers (netinet/in.h or ws2tcpip.h): the structures and
 * field names are the same on both, so one definition serves every backend.
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

#endif /* IOQ_SOCKADDR_H */
