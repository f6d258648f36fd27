/*
 * I/O progress: what every backend does with the result of a system call, written once.
 */
#include "backend.h"

void ioq__sendv_advance(ioq__op *op, size_t n)
{
    op->done += n;
    while (op->iovpos < op->iovcnt) {
        size_t left = op->iov[op->iovpos].len - op->iovoff;
        if (n < left) {
            op->iovoff += n;
            return;
        }
        /* a whole entry (or a zero-length one) is behind us */
        n -= left;
        op->iovpos++;
        op->iovoff = 0;
    }
}
