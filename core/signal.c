/*
 * Signals (ABI 1.1): argument checks. Catching is not built yet: a call that passes its
 * checks returns IOQ_ENOTSUP.
 */
#include "loop.h"

int ioq_signal(ioq_loop *loop, int signum, uint32_t flags, uint64_t token)
{
    (void)token;
    if (!loop || signum <= 0 || signum > 64 || (flags & ~(uint32_t)IOQ_MULTISHOT))
        return IOQ_EINVAL;
    if (loop->in_free)
        return IOQ_EMISUSE;
    return IOQ_ENOTSUP; /* not built yet */
}
