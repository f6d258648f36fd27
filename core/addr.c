/*
 * ioq_addr text forms, parsed and printed here rather than with inet_pton/inet_ntop so the
 * result is the same on every platform and needs no socket library.
 */
#include "ioq.h"

#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Dotted quad over [s, e): exactly four decimal parts 0..255, no leading '+'. */
static int parse_v4(const char *s, const char *e, uint8_t out[4])
{
    int part = 0;
    while (part < 4) {
        unsigned v = 0;
        int digits = 0;
        while (s < e && *s >= '0' && *s <= '9') {
            v = v * 10 + (unsigned)(*s - '0');
            if (++digits > 3 || v > 255)
                return -1;
            s++;
        }
        if (digits == 0)
            return -1;
        out[part++] = (uint8_t)v;
        if (part < 4) {
            if (s >= e || *s != '.')
                return -1;
            s++;
        }
    }
    return s == e ? 0 : -1;
}

/* RFC 4291 text over [s, e), with "::" and a trailing dotted quad. */
static int parse_v6(const char *s, const char *e, uint8_t out[16])
{
    uint16_t words[8];
    int n = 0, gap = -1;

    if (e - s >= 2 && s[0] == ':' && s[1] == ':') {
        gap = 0;
        s += 2;
    } else if (s < e && *s == ':') {
        return -1;
    }
    while (s < e) {
        const char *start = s;
        unsigned v = 0;
        int digits = 0, d;
        if (n >= 8)
            return -1;
        while (s < e && (d = hexval(*s)) >= 0) {
            v = v * 16 + (unsigned)d;
            if (++digits > 4)
                return -1;
            s++;
        }
        if (s < e && *s == '.') {
            /* an embedded IPv4 address takes the last two words */
            uint8_t q[4];
            if (n > 6 || parse_v4(start, e, q) != 0)
                return -1;
            words[n++] = (uint16_t)(q[0] << 8 | q[1]);
            words[n++] = (uint16_t)(q[2] << 8 | q[3]);
            s = e;
            break;
        }
        if (digits == 0)
            return -1;
        words[n++] = (uint16_t)v;
        if (s == e)
            break;
        if (*s != ':')
            return -1;
        s++;
        if (s < e && *s == ':') {
            if (gap >= 0)
                return -1;
            gap = n;
            s++;
        } else if (s == e) {
            return -1; /* trailing single ':' */
        }
    }
    if (gap < 0 && n != 8)
        return -1;
    if (gap >= 0 && n > 7)
        return -1;
    memset(out, 0, 16);
    if (gap < 0) {
        for (int i = 0; i < 8; i++) {
            out[2 * i] = (uint8_t)(words[i] >> 8);
            out[2 * i + 1] = (uint8_t)words[i];
        }
    } else {
        int tail = n - gap;
        for (int i = 0; i < gap; i++) {
            out[2 * i] = (uint8_t)(words[i] >> 8);
            out[2 * i + 1] = (uint8_t)words[i];
        }
        for (int i = 0; i < tail; i++) {
            int w = 8 - tail + i;
            out[2 * w] = (uint8_t)(words[gap + i] >> 8);
            out[2 * w + 1] = (uint8_t)words[gap + i];
        }
    }
    return 0;
}

static int parse_uint(const char *s, const char *e, uint32_t max, uint32_t *out)
{
    uint32_t v = 0;
    if (s == e)
        return -1;
    for (; s < e; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (uint32_t)(*s - '0');
        if (v > max)
            return -1;
    }
    *out = v;
    return 0;
}

int ioq_addr_parse(const char *text, ioq_addr *out)
{
    ioq_addr a;
    const char *end, *colon;
    uint32_t port = 0;

    if (!text || !out)
        return IOQ_EINVAL;
    memset(&a, 0, sizeof a);
    end = text + strlen(text);
    if (end - text > 128)
        return IOQ_EINVAL;

    if (*text == '[') {
        const char *close = memchr(text, ']', (size_t)(end - text));
        const char *pct;
        if (!close)
            return IOQ_EINVAL;
        pct = memchr(text, '%', (size_t)(close - text));
        if (parse_v6(text + 1, pct ? pct : close, a.ip) != 0)
            return IOQ_EINVAL;
        if (pct && parse_uint(pct + 1, close, UINT32_MAX, &a.scope_id) != 0)
            return IOQ_EINVAL;
        if (close + 1 != end) {
            if (close[1] != ':' || parse_uint(close + 2, end, 65535, &port) != 0)
                return IOQ_EINVAL;
        }
        a.family = IOQ_AF_INET6;
    } else if ((colon = memchr(text, ':', (size_t)(end - text))) != NULL &&
               memchr(colon + 1, ':', (size_t)(end - colon - 1)) != NULL) {
        /* two or more colons and no brackets: a bare IPv6 address, no port */
        const char *pct = memchr(text, '%', (size_t)(end - text));
        if (parse_v6(text, pct ? pct : end, a.ip) != 0)
            return IOQ_EINVAL;
        if (pct && parse_uint(pct + 1, end, UINT32_MAX, &a.scope_id) != 0)
            return IOQ_EINVAL;
        a.family = IOQ_AF_INET6;
    } else {
        if (parse_v4(text, colon ? colon : end, a.ip) != 0)
            return IOQ_EINVAL;
        if (colon && parse_uint(colon + 1, end, 65535, &port) != 0)
            return IOQ_EINVAL;
        a.family = IOQ_AF_INET;
    }
    a.port = (uint16_t)port;
    *out = a;
    return 0;
}

static size_t put(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return n;
}

static size_t put_uint(char *p, uint32_t v)
{
    char tmp[12];
    size_t n = 0, i;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

/* RFC 5952: lowercase, no leading zeros, the longest run (>= 2) of zero words as "::". */
static size_t format_v6(char *p, const uint8_t ip[16])
{
    static const char hex[] = "0123456789abcdef";
    uint16_t w[8];
    int best = -1, bestlen = 0;
    size_t n = 0;

    for (int i = 0; i < 8; i++)
        w[i] = (uint16_t)(ip[2 * i] << 8 | ip[2 * i + 1]);
    for (int i = 0; i < 8;) {
        int j = i;
        while (j < 8 && w[j] == 0)
            j++;
        if (j - i > bestlen && j - i >= 2) {
            best = i;
            bestlen = j - i;
        }
        i = j > i ? j : i + 1;
    }
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            p[n++] = ':';
            p[n++] = ':';
            i += bestlen - 1;
            continue;
        }
        if (i > 0 && i != best + bestlen)
            p[n++] = ':';
        {
            int started = 0;
            for (int s = 12; s >= 0; s -= 4) {
                int d = (w[i] >> s) & 0xf;
                if (d || started || s == 0) {
                    p[n++] = hex[d];
                    started = 1;
                }
            }
        }
    }
    return n;
}

int ioq_addr_format(const ioq_addr *addr, char *buf, size_t len)
{
    char tmp[80];
    size_t n = 0;

    if (!addr || !buf)
        return IOQ_EINVAL;
    if (addr->family == IOQ_AF_INET) {
        for (int i = 0; i < 4; i++) {
            if (i)
                tmp[n++] = '.';
            n += put_uint(tmp + n, addr->ip[i]);
        }
    } else if (addr->family == IOQ_AF_INET6) {
        tmp[n++] = '[';
        n += format_v6(tmp + n, addr->ip);
        if (addr->scope_id) {
            tmp[n++] = '%';
            n += put_uint(tmp + n, addr->scope_id);
        }
        tmp[n++] = ']';
    } else {
        return IOQ_EINVAL;
    }
    n += put(tmp + n, ":");
    n += put_uint(tmp + n, addr->port);
    if (n + 1 > len)
        return IOQ_ENOBUFS;
    memcpy(buf, tmp, n);
    buf[n] = '\0';
    return (int)n;
}
