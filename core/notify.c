/*
 * Notifiers (ABI 1.1): argument checks. The coalescing machinery is not built yet: the
 * calls that pass their checks return IOQ_ENOTSUP.
 */
#include "loop.h"

int ioq_notifier_new(ioq_loop *loop, ioq_handle *out)
{
    if (!loop || !out)
        return IOQ_EINVAL;
    if (loop->in_free)
        return IOQ_EMISUSE;
    return IOQ_ENOTSUP; /* not built yet */
}

int ioq_notify(ioq_loop *loop, ioq_handle notifier)
{
    (void)notifier;
    if (!loop)
        return IOQ_EINVAL;
    return IOQ_EBADHANDLE; /* no notifier can exist yet */
}

int ioq_notify_wait(ioq_loop *loop, ioq_handle notifier, uint32_t flags, uint64_t token)
{
    (void)token;
    if (!loop)
        return IOQ_EINVAL;
    if (loop->in_free)
        return IOQ_EMISUSE;
    if (!ioq__handle_get(loop, notifier, IOQ__KIND_BIT(IOQ__K_NOTIFIER)))
        return IOQ_EBADHANDLE;
    if (flags & ~(uint32_t)IOQ_MULTISHOT)
        return IOQ_EINVAL;
    return IOQ_ENOTSUP; /* not built yet */
}
