/*
 * Compiled as C99, C11 and C++ with every warning an error: the public header must stand
 * alone (it is included first, with nothing before it) and its frozen layouts must hold.
 * The checks are array typedefs rather than static_assert because C99 has no such keyword.
 */
#include "ioq.h"

#define IOQ_CHECK(name, cond) typedef char ioq_check_##name[(cond) ? 1 : -1]

IOQ_CHECK(cqe_size, sizeof(ioq_cqe) == 32);
IOQ_CHECK(cqe_token, offsetof(ioq_cqe, token) == 0);
IOQ_CHECK(cqe_result, offsetof(ioq_cqe, result) == 8);
IOQ_CHECK(cqe_value, offsetof(ioq_cqe, value) == 16);
IOQ_CHECK(cqe_op, offsetof(ioq_cqe, op) == 24);
IOQ_CHECK(cqe_flags, offsetof(ioq_cqe, flags) == 26);
IOQ_CHECK(cqe_reserved, offsetof(ioq_cqe, reserved) == 28);

IOQ_CHECK(addr_size, sizeof(ioq_addr) == 24);
IOQ_CHECK(addr_family, offsetof(ioq_addr, family) == 0);
IOQ_CHECK(addr_port, offsetof(ioq_addr, port) == 2);
IOQ_CHECK(addr_scope_id, offsetof(ioq_addr, scope_id) == 4);
IOQ_CHECK(addr_ip, offsetof(ioq_addr, ip) == 8);

IOQ_CHECK(options_size, sizeof(ioq_loop_options) == 48);
IOQ_CHECK(options_backend, offsetof(ioq_loop_options, backend) == 4);
IOQ_CHECK(options_flags, offsetof(ioq_loop_options, flags) == 8);
IOQ_CHECK(options_threadpool, offsetof(ioq_loop_options, threadpool_size) == 12);
IOQ_CHECK(options_reserved, offsetof(ioq_loop_options, reserved) == 16);

IOQ_CHECK(iov_size, sizeof(ioq_iov) == 2 * sizeof(void *));
IOQ_CHECK(handle_size, sizeof(ioq_handle) == 8);
IOQ_CHECK(version, IOQ_VERSION_NUMBER == IOQ_VERSION_MAJOR * 10000 + IOQ_VERSION_MINOR * 100
                                         + IOQ_VERSION_PATCH);

/* Binding a few functions to typed pointers proves the declarations are usable, not
 * only parsed, and that their signatures are the frozen ones. */
typedef uint32_t (*ioq_use_version_fn)(void);
typedef int (*ioq_use_poll_fn)(ioq_loop *, ioq_cqe *, uint32_t, int64_t);
typedef int (*ioq_use_format_fn)(const ioq_addr *, char *, size_t);
extern ioq_use_version_fn ioq_use_version;
extern ioq_use_poll_fn ioq_use_poll;
extern ioq_use_format_fn ioq_use_format;
ioq_use_version_fn ioq_use_version = ioq_version;
ioq_use_poll_fn ioq_use_poll = ioq_poll;
ioq_use_format_fn ioq_use_format = ioq_addr_format;
