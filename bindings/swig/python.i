/*
 * Python typemaps of the ioq SWIG interface (the raw extension ioq._ioq).
 *
 * Buffers are the one hard part. ioq owns an operation's memory from the submit call until
 * its final completion has been polled, so a buffer given to recv/send/read/write/... must
 * stay exported (Py_buffer held, exporter referenced) for that long: far beyond the end of
 * the wrapper call, which is where SWIG's stock pybuffer typemaps release it.
 *
 * Here every buffer-taking call turns its buffer(s) into a "pin" (a capsule that owns the
 * Py_buffer views plus any out-memory such as a sender address). Before the C call the pin
 * is filed in the loop's pin table (pins.h, shared with the Lua binding) under the
 * operation's token; if the call refuses the operation the pin is dropped at once.
 * ioq_py_poll() hands a pin back when it copies out a final completion (no IOQ_CQE_MORE)
 * of the same token and op; ioq_py_loop_free() drops the loop's pins after ioq_loop_free()
 * has returned, when ioq guarantees that nothing references them any more. Dropping
 * releases the views, so a pinned bytearray cannot be resized until its operation is over.
 *
 * Tokens may be shared, as in C: the pins of a token are held until the final completion
 * of its last pinning operation (pins.h says why). The results carried by pinned memory (a
 * recvfrom's sender, a resolve's addresses) come with each completion from the oldest
 * operation of that kind and token still waiting: give such operations tokens of their own
 * when their results must not be confused.
 *
 * The GIL is released only around an ioq_poll() that may block (timeout != 0) and around
 * ioq_loop_free(), which may wait for the thread pool.
 */

%insert("header") "pins.h"

%{
#include <string.h>
#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>

/* A pin: buffer views and out-memory of one in-flight operation. */
typedef struct ioq_py_pin {
    uint16_t out_kind;  /* IOQ_PY_OUT_* */
    uint32_t nout;      /* number of ioq_addr records in out */
    int nviews;
    Py_buffer *views;
    ioq_addr *out;      /* recvfrom: the sender; resolve: the results */
    ioq_iov *iov;       /* sendv: kept only to free it with the pin */
} ioq_py_pin;

enum { IOQ_PY_OUT_NONE, IOQ_PY_OUT_ADDR, IOQ_PY_OUT_ADDRS };

#define IOQ_PY_PIN_CAPSULE "ioq._ioq.pin"

static void ioq_py_pin_destroy(PyObject *capsule)
{
    ioq_py_pin *pin = (ioq_py_pin *)PyCapsule_GetPointer(capsule, IOQ_PY_PIN_CAPSULE);
    int i;
    if (pin == NULL) {
        PyErr_Clear();
        return;
    }
    for (i = 0; i < pin->nviews; i++)
        PyBuffer_Release(&pin->views[i]);
    PyMem_Free(pin->views);
    PyMem_Free(pin->out);
    PyMem_Free(pin->iov);
    PyMem_Free(pin);
}

static PyObject *ioq_py_pin_new(int nviews)
{
    ioq_py_pin *pin = (ioq_py_pin *)PyMem_Calloc(1, sizeof(*pin));
    PyObject *capsule;
    if (pin == NULL)
        return PyErr_NoMemory();
    if (nviews > 0) {
        pin->views = (Py_buffer *)PyMem_Calloc((size_t)nviews, sizeof(Py_buffer));
        if (pin->views == NULL) {
            PyMem_Free(pin);
            return PyErr_NoMemory();
        }
    }
    capsule = PyCapsule_New(pin, IOQ_PY_PIN_CAPSULE, ioq_py_pin_destroy);
    if (capsule == NULL) {
        PyMem_Free(pin->views);
        PyMem_Free(pin);
    }
    return capsule;
}

static ioq_py_pin *ioq_py_pin_of(PyObject *capsule)
{
    /* A bare bytes object pins the buffer of a send (ioq_py_send_bytes): immutable, it needs
     * no Py_buffer, only a reference. */
    if (!PyCapsule_CheckExact(capsule))
        return NULL;
    return (ioq_py_pin *)PyCapsule_GetPointer(capsule, IOQ_PY_PIN_CAPSULE);
}

/* Export obj into the next view of pin. A non-buffer or a read-only object where a writable
 * one is needed is a TypeError; a non-contiguous one is a ValueError. */
static int ioq_py_pin_view(PyObject *capsule, PyObject *obj, int writable)
{
    ioq_py_pin *pin = ioq_py_pin_of(capsule);
    Py_buffer *view = &pin->views[pin->nviews];
    int flags = writable ? PyBUF_WRITABLE : PyBUF_SIMPLE;
    if (!PyObject_CheckBuffer(obj)) {
        PyErr_Format(PyExc_TypeError, "a %s buffer object is required, not '%.100s'",
                     writable ? "writable" : "bytes-like", Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        if (PyErr_ExceptionMatches(PyExc_BufferError)) {
            PyErr_Clear();
            if (writable && PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) == 0) {
                PyBuffer_Release(view);
                PyErr_Format(PyExc_TypeError, "a writable buffer is required, not '%.100s'",
                             Py_TYPE(obj)->tp_name);
            } else {
                PyErr_Format(PyExc_ValueError, "'%.100s' is not a contiguous buffer",
                             Py_TYPE(obj)->tp_name);
            }
        }
        return -1;
    }
    pin->nviews++;
    return 0;
}

/* The loops whose completions ioq_py_dispatch is handing out on this thread (callbacks may
 * nest dispatches of other loops), each with whether a callback freed it: the records still
 * in hand must then be dropped without touching the loop. A loop belongs to one thread, so
 * it can only be freed on the thread that dispatches it. */
typedef struct ioq_py_dframe {
    ioq_loop *loop;
    int freed;
    struct ioq_py_dframe *up;
} ioq_py_dframe;
static _Thread_local ioq_py_dframe *ioq_py_dtop = NULL;

/* The pin table of each loop (pins.h). A table outlives its loop: ioq_py_loop_free() clears
 * it and the next new loop takes it, so that a release callback that runs Python code in
 * the middle of a table operation never finds the table freed. Guarded by the GIL. */
typedef struct ioq_py_pins {
    ioq_loop *loop; /* NULL: free for the next loop */
    ioq_pins t;
    struct ioq_py_pins *next;
} ioq_py_pins;
static ioq_py_pins *ioq_py_pins_all = NULL;
static ioq_py_pins *ioq_py_pins_last = NULL; /* the loop used last: no walk for a send */

static void ioq_py_release(void *ctx, uintptr_t obj)
{
    (void)ctx;
    Py_DECREF((PyObject *)obj);
}

static ioq_pins *ioq_py_table(ioq_loop *loop, int create)
{
    ioq_py_pins *p, *unused = NULL;
    if (ioq_py_pins_last != NULL && ioq_py_pins_last->loop == loop)
        return &ioq_py_pins_last->t;
    for (p = ioq_py_pins_all; p != NULL; p = p->next) {
        if (p->loop == loop) {
            ioq_py_pins_last = p;
            return &p->t;
        }
        if (p->loop == NULL && unused == NULL)
            unused = p;
    }
    if (!create)
        return NULL;
    if (unused == NULL) {
        unused = (ioq_py_pins *)PyMem_RawCalloc(1, sizeof(*unused));
        if (unused == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        ioq_pins_init(&unused->t);
        unused->next = ioq_py_pins_all;
        ioq_py_pins_all = unused;
    }
    unused->loop = loop;
    ioq_py_pins_last = unused;
    return &unused->t;
}

/* File the pin (a new reference) under token before the submit call, so that the operation
 * is never in flight with its memory unpinned. */
static int ioq_py_pin_store(ioq_loop *loop, uint64_t token, uint16_t op, PyObject *obj)
{
    ioq_pins *t;
    if (loop == NULL)
        return 0; /* ioq refuses the call with IOQ_EINVAL; the pin goes with the wrapper */
    t = ioq_py_table(loop, 1);
    if (t == NULL)
        return -1;
    Py_INCREF(obj);
    if (ioq_pins_add(t, token, op, (uintptr_t)obj, 0) < 0) {
        Py_DECREF(obj);
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* A final completion of op with token was polled: the pin of that operation (a new
 * reference, to read its results from) or NULL when none. Pins of the token's other
 * operations stay held while some are in flight, or are released here with it. */
static PyObject *ioq_py_pin_take(ioq_loop *loop, uint64_t token, uint16_t op)
{
    ioq_pins *t = ioq_py_table(loop, 0);
    uintptr_t out[2];
    int rc;
    if (t == NULL)
        return NULL;
    rc = ioq_pins_done(t, token, op, out, ioq_py_release, NULL);
    if (rc == IOQ_PINS_NONE)
        return NULL;
    if (rc == IOQ_PINS_HELD)
        Py_INCREF((PyObject *)out[0]); /* borrowed from the table */
    return (PyObject *)out[0];
}

/* ioq refused the operation whose pin was filed last under token: take it back. */
static void ioq_py_pin_drop(ioq_loop *loop, uint64_t token)
{
    PyObject *exc_type, *exc_value, *exc_tb;
    ioq_pins *t = loop == NULL ? NULL : ioq_py_table(loop, 0);
    if (t == NULL)
        return;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    ioq_pins_undo(t, token, ioq_py_release, NULL);
    PyErr_Restore(exc_type, exc_value, exc_tb);
}

/* The loop was freed: release its pins and give its table to the next loop. */
static void ioq_py_pins_forget(ioq_loop *loop)
{
    ioq_py_pins *p;
    for (p = ioq_py_pins_all; p != NULL; p = p->next) {
        if (p->loop == loop) {
            p->loop = NULL;
            if (ioq_py_pins_last == p)
                ioq_py_pins_last = NULL;
            ioq_pins_clear(&p->t, ioq_py_release, NULL);
            return;
        }
    }
}

/* --- addresses ------------------------------------------------------------------------ */

static PyObject *ioq_py_addr_to_obj(const ioq_addr *a)
{
    char text[INET6_ADDRSTRLEN];
    if (a->family == IOQ_AF_INET) {
        if (inet_ntop(AF_INET, a->ip, text, sizeof(text)) == NULL)
            Py_RETURN_NONE;
        return Py_BuildValue("(si)", text, (int)a->port);
    }
    if (a->family == IOQ_AF_INET6) {
        if (inet_ntop(AF_INET6, a->ip, text, sizeof(text)) == NULL)
            Py_RETURN_NONE;
        return Py_BuildValue("(siik)", text, (int)a->port, 0, (unsigned long)a->scope_id);
    }
    Py_RETURN_NONE;
}

/* (host, port) or (host, port, flowinfo, scope_id) with a numeric host, or "host:port" text
 * as ioq_addr_parse reads it. */
static int ioq_py_addr_from_obj(PyObject *obj, ioq_addr *a)
{
    PyObject *host;
    const char *text;
    long port, scope = 0;
    Py_ssize_t n;
    memset(a, 0, sizeof(*a));
    if (PyUnicode_Check(obj)) {
        text = PyUnicode_AsUTF8AndSize(obj, &n);
        if (text == NULL)
            return -1;
        if ((size_t)n != strlen(text) || ioq_addr_parse(text, a) != 0) {
            PyErr_Format(PyExc_ValueError, "not a numeric address: %R", obj);
            return -1;
        }
        return 0;
    }
    if (!PyTuple_Check(obj) || (PyTuple_GET_SIZE(obj) != 2 && PyTuple_GET_SIZE(obj) != 4)) {
        PyErr_Format(PyExc_TypeError,
                     "an address is a (host, port) tuple, not '%.100s'", Py_TYPE(obj)->tp_name);
        return -1;
    }
    host = PyTuple_GET_ITEM(obj, 0);
    if (!PyUnicode_Check(host)) {
        PyErr_SetString(PyExc_TypeError, "the host of an address must be a str");
        return -1;
    }
    if (!PyLong_Check(PyTuple_GET_ITEM(obj, 1))) {
        PyErr_SetString(PyExc_TypeError, "the port of an address must be an int");
        return -1;
    }
    port = PyLong_AsLong(PyTuple_GET_ITEM(obj, 1));
    if ((port == -1 && PyErr_Occurred()) || port < 0 || port > 65535) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "port must be 0-65535");
        return -1;
    }
    if (PyTuple_GET_SIZE(obj) == 4) {
        if (!PyLong_Check(PyTuple_GET_ITEM(obj, 3))) {
            PyErr_SetString(PyExc_TypeError, "scope_id must be an int");
            return -1;
        }
        scope = PyLong_AsLong(PyTuple_GET_ITEM(obj, 3));
        if ((scope == -1 && PyErr_Occurred()) || scope < 0 || scope > 0xffffffffL) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "scope_id out of range");
            return -1;
        }
    }
    text = PyUnicode_AsUTF8AndSize(host, &n);
    if (text == NULL)
        return -1;
    if ((size_t)n != strlen(text)) {
        PyErr_SetString(PyExc_ValueError, "embedded NUL in host");
        return -1;
    }
    if (inet_pton(AF_INET, text, a->ip) == 1) {
        a->family = IOQ_AF_INET;
    } else if (inet_pton(AF_INET6, text, a->ip) == 1) {
        a->family = IOQ_AF_INET6;
        a->scope_id = (uint32_t)scope;
    } else {
        PyErr_Format(PyExc_ValueError, "not a numeric IP address: %R (resolve names first)",
                     host);
        return -1;
    }
    a->port = (uint16_t)port;
    return 0;
}

/* str, bytes or os.PathLike -> bytes without NUL; the result stays alive in *keep. */
static int ioq_py_path(PyObject *obj, const char **out, PyObject **keep)
{
    if (!PyUnicode_FSConverter(obj, keep))
        return -1;
    *out = PyBytes_AS_STRING(*keep);
    return 0;
}

/* None or str -> NULL or UTF-8 text without NUL. */
static int ioq_py_text(PyObject *obj, const char **out, int allow_none)
{
    Py_ssize_t n;
    if (obj == Py_None && allow_none) {
        *out = NULL;
        return 0;
    }
    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "expected str, not '%.100s'", Py_TYPE(obj)->tp_name);
        return -1;
    }
    *out = PyUnicode_AsUTF8AndSize(obj, &n);
    if (*out == NULL)
        return -1;
    if ((size_t)n != strlen(*out)) {
        PyErr_SetString(PyExc_ValueError, "embedded NUL character");
        return -1;
    }
    return 0;
}
%}

/* --- what Python sees instead of the C signatures ------------------------------------- */

%ignore ioq_loop_new;
%ignore ioq_loop_free;
%ignore ioq_poll;
%ignore ioq_buf;
%ignore ioq_cqe;
%ignore ioq_addr;
%ignore ioq_iov;
%ignore ioq_loop_options;
/* Since 1.1; struct proxies inside the ioq package would reach the C module through a
 * name Python mangles in class bodies (__ioq), as for the structs above. */
%ignore ioq_stdio;
%ignore ioq_process_options;

/* Writable buffers (recv, recvfrom, read) and readable ones (send, sendto, write). */
%typemap(in) (void *buf, size_t len) (PyObject *pin = NULL) {
    pin = ioq_py_pin_new(1);
    if (pin == NULL || ioq_py_pin_view(pin, $input, 1) < 0)
        SWIG_fail;
    $1 = ioq_py_pin_of(pin)->views[0].buf;
    $2 = (size_t)ioq_py_pin_of(pin)->views[0].len;
}
%typemap(in) (const void *buf, size_t len) (PyObject *pin = NULL) {
    pin = ioq_py_pin_new(1);
    if (pin == NULL || ioq_py_pin_view(pin, $input, 0) < 0)
        SWIG_fail;
    $1 = ioq_py_pin_of(pin)->views[0].buf;
    $2 = (size_t)ioq_py_pin_of(pin)->views[0].len;
}
%typemap(freearg) (void *buf, size_t len), (const void *buf, size_t len) {
    Py_XDECREF(pin$argnum);
}

/* recvfrom: the buffer and the sender address, which ioq fills at completion. */
%typemap(in) (void *buf, size_t len, ioq_addr *addr_out) (PyObject *pin = NULL) {
    pin = ioq_py_pin_new(1);
    if (pin == NULL || ioq_py_pin_view(pin, $input, 1) < 0)
        SWIG_fail;
    ioq_py_pin_of(pin)->out = (ioq_addr *)PyMem_Calloc(1, sizeof(ioq_addr));
    if (ioq_py_pin_of(pin)->out == NULL) {
        PyErr_NoMemory();
        SWIG_fail;
    }
    ioq_py_pin_of(pin)->out_kind = IOQ_PY_OUT_ADDR;
    ioq_py_pin_of(pin)->nout = 1;
    $1 = ioq_py_pin_of(pin)->views[0].buf;
    $2 = (size_t)ioq_py_pin_of(pin)->views[0].len;
    $3 = ioq_py_pin_of(pin)->out;
}
%typemap(freearg) (void *buf, size_t len, ioq_addr *addr_out) {
    Py_XDECREF(pin$argnum);
}

/* sendv: a sequence of bytes-like objects. */
%typemap(in) (const ioq_iov *iov, uint32_t n) (PyObject *pin = NULL, PyObject *seq = NULL) {
    Py_ssize_t i, count;
    ioq_py_pin *p;
    seq = PySequence_Fast($input, "sendv needs a sequence of bytes-like objects");
    if (seq == NULL)
        SWIG_fail;
    count = PySequence_Fast_GET_SIZE(seq);
    if (count > IOQ_MAX_IOV) {
        PyErr_Format(PyExc_ValueError, "at most %d buffers", IOQ_MAX_IOV);
        SWIG_fail;
    }
    pin = ioq_py_pin_new((int)count);
    if (pin == NULL)
        SWIG_fail;
    p = ioq_py_pin_of(pin);
    p->iov = (ioq_iov *)PyMem_Calloc(count > 0 ? (size_t)count : 1, sizeof(ioq_iov));
    if (p->iov == NULL) {
        PyErr_NoMemory();
        SWIG_fail;
    }
    for (i = 0; i < count; i++) {
        if (ioq_py_pin_view(pin, PySequence_Fast_GET_ITEM(seq, i), 0) < 0)
            SWIG_fail;
        p->iov[i].base = p->views[i].buf;
        p->iov[i].len = (size_t)p->views[i].len;
    }
    $1 = p->iov;
    $2 = (uint32_t)count;
}
%typemap(freearg) (const ioq_iov *iov, uint32_t n) {
    Py_XDECREF(pin$argnum);
    Py_XDECREF(seq$argnum);
}

/* resolve: the Python argument is the largest number of addresses wanted. */
%typemap(in) (ioq_addr *out_addrs, uint32_t max) (PyObject *pin = NULL) {
    unsigned long long want;
    ioq_py_pin *p;
    int ecode = SWIG_AsVal_unsigned_SS_long_SS_long($input, &want);
    if (!SWIG_IsOK(ecode) || want > 4096) {
        PyErr_SetString(SWIG_IsOK(ecode) || ecode == SWIG_OverflowError ?
                        PyExc_ValueError : PyExc_TypeError,
                        "max must be an int in 0-4096");
        SWIG_fail;
    }
    pin = ioq_py_pin_new(0);
    if (pin == NULL)
        SWIG_fail;
    p = ioq_py_pin_of(pin);
    p->out = (ioq_addr *)PyMem_Calloc(want > 0 ? (size_t)want : 1, sizeof(ioq_addr));
    if (p->out == NULL) {
        PyErr_NoMemory();
        SWIG_fail;
    }
    p->out_kind = IOQ_PY_OUT_ADDRS;
    p->nout = (uint32_t)want;
    $1 = p->out;
    $2 = (uint32_t)want;
}
%typemap(freearg) (ioq_addr *out_addrs, uint32_t max) {
    Py_XDECREF(pin$argnum);
}

/* Before the call: file the pin under the token. After it: if ioq refused the operation,
 * nothing will complete, so the pin goes at once. ($argnum is the first pinned argument;
 * the loop is always the first argument, arg1.) */
%define IOQ_PY_PIN_TOKEN(PATTERN, OP, TOKEN)
%typemap(check) PATTERN {
    if (ioq_py_pin_store(arg1, TOKEN, OP, pin$argnum) < 0)
        SWIG_fail;
}
%typemap(argout) PATTERN {
    if (result != 0)
        ioq_py_pin_drop(arg1, TOKEN);
}
%enddef

IOQ_PY_PIN_TOKEN(%arg((void *buf, size_t len, uint64_t token)), IOQ_OP_RECV, $3)
IOQ_PY_PIN_TOKEN(%arg((const void *buf, size_t len, uint64_t token)), IOQ_OP_SEND, $3)
IOQ_PY_PIN_TOKEN(%arg((void *buf, size_t len, uint64_t offset, uint64_t token)),
                 IOQ_OP_READ, $4)
IOQ_PY_PIN_TOKEN(%arg((const void *buf, size_t len, uint64_t offset, uint64_t token)),
                 IOQ_OP_WRITE, $4)
IOQ_PY_PIN_TOKEN(%arg((const void *buf, size_t len, const ioq_addr *addr, uint64_t token)),
                 IOQ_OP_SENDTO, $4)
IOQ_PY_PIN_TOKEN(%arg((void *buf, size_t len, ioq_addr *addr_out, uint64_t token)),
                 IOQ_OP_RECVFROM, $4)
IOQ_PY_PIN_TOKEN(%arg((const ioq_iov *iov, uint32_t n, uint64_t token)), IOQ_OP_SENDV, $3)
IOQ_PY_PIN_TOKEN(%arg((ioq_addr *out_addrs, uint32_t max, uint64_t token)),
                 IOQ_OP_RESOLVE, $3)

/* Addresses passed in: (host, port) tuples or "host:port" text. */
%typemap(in) const ioq_addr *addr (ioq_addr tmp) {
    if (ioq_py_addr_from_obj($input, &tmp) < 0)
        SWIG_fail;
    $1 = &tmp;
}
%typemap(in, numinputs=0) ioq_addr *out (ioq_addr tmp) {
    memset(&tmp, 0, sizeof(tmp));
    $1 = &tmp;
}
%typemap(argout) ioq_addr *out {
    PyObject *o;
    if (result == 0) {
        o = ioq_py_addr_to_obj($1);
        if (o == NULL)
            SWIG_fail;
    } else {
        o = Py_None;
        Py_INCREF(o);
    }
    $result = SWIG_Python_AppendOutput($result, o);
}

/* Handles and OS descriptors returned through pointers: the call gives [rc, value]. */
%typemap(in, numinputs=0) ioq_handle *out (ioq_handle tmp = 0), uint64_t *out (uint64_t tmp = 0) {
    $1 = &tmp;
}
%typemap(argout) ioq_handle *out, uint64_t *out {
    $result = SWIG_Python_AppendOutput($result, PyLong_FromUnsignedLongLong(*$1));
}

/* ioq_addr_format: the text comes back as [length or error, str]. */
%typemap(in, numinputs=0) (char *buf, size_t len) (char tmp[64]) {
    tmp[0] = 0;
    $1 = tmp;
    $2 = sizeof(tmp);
}
%typemap(argout) (char *buf, size_t len) {
    $result = SWIG_Python_AppendOutput($result, PyUnicode_FromString(result >= 0 ? $1 : ""));
}

/* Paths: str, bytes or os.PathLike; names: str (host and service may be None). */
%typemap(in) const char *path (PyObject *keep = NULL) {
    if (ioq_py_path($input, (const char **)&$1, &keep) < 0)
        SWIG_fail;
}
%typemap(freearg) const char *path {
    Py_XDECREF(keep$argnum);
}
%typemap(in) const char *host, const char *service {
    if (ioq_py_text($input, (const char **)&$1, 1) < 0)
        SWIG_fail;
}
%typemap(in) const char *text {
    if (ioq_py_text($input, (const char **)&$1, 0) < 0)
        SWIG_fail;
}

/* a helper of the dispatcher, not for Python */
%ignore ioq_py_recv_copy;

%inline %{
/* ioq_py_loop_new - [rc, loop]: a loop with the given backend (IOQ_BACKEND_*). */
static PyObject *ioq_py_loop_new(uint32_t backend, uint32_t flags, uint32_t threadpool_size)
{
    ioq_loop_options opts;
    ioq_loop *loop = NULL;
    int rc;
    memset(&opts, 0, sizeof(opts));
    opts.size = sizeof(opts);
    opts.backend = backend;
    opts.flags = flags;
    opts.threadpool_size = threadpool_size;
    rc = ioq_loop_new(&opts, &loop);
    if (rc != 0)
        return Py_BuildValue("(iO)", rc, Py_None);
    return Py_BuildValue("(iN)", rc, SWIG_NewPointerObj(loop, SWIGTYPE_p_ioq_loop, 0));
}

/* ioq_py_loop_free - free the loop, then release every buffer its operations pinned. */
static void ioq_py_loop_free(ioq_loop *loop)
{
    if (loop == NULL)
        return;
    Py_BEGIN_ALLOW_THREADS
    ioq_loop_free(loop);
    Py_END_ALLOW_THREADS
    {
        ioq_py_dframe *f;
        for (f = ioq_py_dtop; f != NULL; f = f->up)
            if (f->loop == loop)
                f->freed = 1;
    }
    ioq_py_pins_forget(loop);
}

/* ioq_py_pinned - how many operations of loop have their memory held now (one that is over
 * counts while other operations of its token are in flight). */
static long ioq_py_pinned(ioq_loop *loop)
{
    ioq_pins *t = ioq_py_table(loop, 0);
    return t == NULL ? 0 : (long)ioq_pins_held(t);
}

/* ioq_py_poll - poll up to max completions as a list of
 * (token, result, value, op, flags, extra) tuples, where extra is the sender address of a
 * recvfrom, the address list of a resolve, else None. Returns an int IOQ_E* code when
 * ioq_poll fails. */
static PyObject *ioq_py_poll(ioq_loop *loop, uint32_t max, int64_t timeout_ns)
{
    ioq_cqe stack[64];
    ioq_cqe *cqes = stack;
    PyObject *list = NULL, *item, *extra, *capsule;
    ioq_py_pin *pin;
    int n, i;
    uint32_t k;
    if (max > 65536) {
        PyErr_SetString(PyExc_ValueError, "max must be 1-65536");
        return NULL;
    }
    if (max > 64) {
        cqes = (ioq_cqe *)PyMem_Malloc(sizeof(ioq_cqe) * max);
        if (cqes == NULL)
            return PyErr_NoMemory();
    }
    if (timeout_ns != 0) {
        Py_BEGIN_ALLOW_THREADS
        n = ioq_poll(loop, cqes, max, timeout_ns);
        Py_END_ALLOW_THREADS
    } else {
        n = ioq_poll(loop, cqes, max, timeout_ns);
    }
    if (n < 0) {
        list = PyLong_FromLong(n);
        goto out;
    }
    list = PyList_New(n);
    if (list == NULL)
        goto out;
    for (i = 0; i < n; i++) {
        const ioq_cqe *c = &cqes[i];
        extra = NULL;
        capsule = NULL;
        if (!(c->flags & IOQ_CQE_MORE)) {
            capsule = ioq_py_pin_take(loop, c->token, c->op);
            if (capsule == NULL && PyErr_Occurred())
                PyErr_Clear(); /* the completion still goes out; the pin stays */
        }
        if (capsule != NULL && (pin = ioq_py_pin_of(capsule)) != NULL && c->result >= 0) {
            if (pin->out_kind == IOQ_PY_OUT_ADDR) {
                extra = ioq_py_addr_to_obj(pin->out);
            } else if (pin->out_kind == IOQ_PY_OUT_ADDRS) {
                uint32_t cnt = c->result < (int64_t)pin->nout ? (uint32_t)c->result : pin->nout;
                extra = PyList_New(0);
                for (k = 0; extra != NULL && k < cnt; k++) {
                    PyObject *a = ioq_py_addr_to_obj(&pin->out[k]);
                    if (a == NULL || PyList_Append(extra, a) < 0) {
                        Py_XDECREF(a);
                        Py_CLEAR(extra);
                        break;
                    }
                    Py_DECREF(a);
                }
            }
            if (extra == NULL && PyErr_Occurred())
                PyErr_Clear();
        }
        /* Releasing here, after the record was copied out, is exactly when ioq hands the
         * memory back. */
        Py_XDECREF(capsule);
        if (extra == NULL) {
            extra = Py_None;
            Py_INCREF(extra);
        }
        item = Py_BuildValue("(KLKiiN)", (unsigned long long)c->token, (long long)c->result,
                             (unsigned long long)c->value, (int)c->op, (int)c->flags, extra);
        if (item == NULL) {
            Py_CLEAR(list);
            goto out;
        }
        PyList_SET_ITEM(list, i, item);
    }
out:
    if (cqes != stack)
        PyMem_Free(cqes);
    return list;
}

/* Send accounting of ioq_py_dispatch on acct = [inflight, pending, notify, on_done]: returns
 * a new reference to on_done when it must be called, None (new reference) when not, NULL
 * with an exception set. */
static PyObject *ioq_py_account(PyObject *acct, const ioq_cqe *c)
{
    PyObject *v;
    long long inflight = PyLong_AsLongLong(PyList_GET_ITEM(acct, 0));
    long long pending = PyLong_AsLongLong(PyList_GET_ITEM(acct, 1));
    int notify;
    if ((inflight == -1 || pending == -1) && PyErr_Occurred())
        return NULL;
    if ((v = PyLong_FromLongLong(inflight - 1)) == NULL)
        return NULL;
    PyList_SetItem(acct, 0, v);
    if (c->result > 0) {
        if ((v = PyLong_FromLongLong(pending - c->result)) == NULL)
            return NULL;
        PyList_SetItem(acct, 1, v);
    }
    notify = PyObject_IsTrue(PyList_GET_ITEM(acct, 2));
    if (notify < 0)
        return NULL;
    v = (c->result < 0 || notify) ? PyList_GET_ITEM(acct, 3) : Py_None;
    Py_INCREF(v);
    return v;
}

/* The value of a receive of ioq_py_recv_into: a bytes copy of the data received into the
 * bytearray b, or an int result for no data. Takes the reference to b. */
static PyObject *ioq_py_recv_copy(PyObject *b, int64_t result)
{
    PyObject *out;
    if (result <= 0 || result > PyByteArray_GET_SIZE(b))
        out = PyLong_FromLongLong(0);
    else
        out = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(b), (Py_ssize_t)result);
    Py_DECREF(b);
    return out;
}

/* ioq_py_recv_into - ioq_recv into the bytearray buf (all of it), which the pin table holds
 * until the final completion; that completion hands its callback in ioq_py_dispatch a bytes
 * copy of the data as value (0 for none). A transport keeps one such buffer for large reads:
 * reused, it stays warm in the cache, where io_uring takes the buffers of a pool in turn.
 * buf must not be resized meanwhile (it is the transport's own). Returns 0 or the negative
 * IOQ_E* code of ioq_recv. */
static PyObject *ioq_py_recv_into(ioq_loop *loop, ioq_handle h, PyObject *buf, uint64_t token)
{
    int rc;
    if (!PyByteArray_CheckExact(buf)) {
        PyErr_SetString(PyExc_TypeError, "recv_into(loop, h, bytearray, token)");
        return NULL;
    }
    if (loop == NULL || PyByteArray_GET_SIZE(buf) == 0)
        return PyLong_FromLong(IOQ_EINVAL);
    if (ioq_py_pin_store(loop, token, IOQ_OP_RECV, buf) < 0)
        return NULL;
    rc = ioq_recv(loop, h, PyByteArray_AS_STRING(buf), (size_t)PyByteArray_GET_SIZE(buf),
                  token);
    if (rc != 0)
        ioq_py_pin_drop(loop, token);
    return PyLong_FromLong(rc);
}

/* ioq_py_dispatch - the asyncio hot path: poll up to max completions without waiting and
 * hand each final completion whose token is a key of cbs to cbs.pop(token)(result, value,
 * flags); a multishot completion (IOQ_CQE_MORE) calls the callback and keeps it. A
 * completion that carries a buffer of pool (IOQ_CQE_BUFFER) reaches its callback as a bytes
 * copy of the received data in place of the buffer id, and the buffer goes back to the pool
 * at once, so receiving costs no call from Python at all. Completions without a callback
 * come back as the tuples of ioq_py_poll. Returns (number polled, list of the others or
 * None), or an int IOQ_E* code when ioq_poll fails.
 *
 * Two shapes of cbs values save a Python call per message on a stream:
 *  - (on_data, on_other): a buffer completion with data and IOQ_CQE_MORE goes straight to
 *    on_data(bytes) (a protocol's data_received); every other one to on_other as above. If
 *    on_data raises an Exception, on_other(result, exception, -1) gets it.
 *    (on_data, on_other, context): the same, with on_data run inside the contextvars
 *    context (a protocol's, as asyncio runs protocol callbacks in the transport's; None:
 *    no context).
 *    (on_data, on_other, context, big): the same, but a buffer completion of big bytes or
 *    more goes to on_other (which may turn the stream to large reads).
 *    (on_data, on_other, context, big, small, handle): also a final completion of a
 *    receive of ioq_py_recv_into with at least small bytes goes to on_data(bytes copy),
 *    and the receive is made again into the same bytearray on handle under the same token
 *    (the callback stays; if ioq refuses it, the completion goes to on_other as usual).
 *  - [inflight, pending, notify, on_done]: send accounting. A completion takes 1 from
 *    inflight and its byte count from pending; on_done(result, value, flags) is called only
 *    for an error or while notify is true.
 * An Exception raised by a callback is reported as unraisable (the records after it were
 * already taken from ioq and must still reach their owners); any other BaseException
 * (KeyboardInterrupt) is raised once the whole batch has been handed out. */
/* ioq_py_dispatch_wait - ioq_py_dispatch that may wait timeout_ns (-1: until a completion
 * or a wake-up) for the first completion, without the GIL: the poll of ioq.aio.EventLoop. */
static PyObject *ioq_py_dispatch_wait(ioq_loop *loop, PyObject *cbs, uint32_t max,
                                      ioq_handle pool, int64_t timeout_ns)
{
    ioq_cqe cqes[256];
    PyObject *rest = NULL, *item, *extra, *capsule, *key, *cb, *arg, *res, *out;
    PyObject *args[3];
    PyObject *fatal_type = NULL, *fatal_value = NULL, *fatal_tb = NULL;
    ioq_py_dframe frame;
    ioq_py_pin *pin;
    int n, i;
    uint32_t k;
    if (!PyDict_Check(cbs)) {
        PyErr_SetString(PyExc_TypeError, "cbs must be a dict");
        return NULL;
    }
    if (loop == NULL)
        return PyLong_FromLong(IOQ_EINVAL);
    if (max == 0 || max > 256)
        max = 256;
    if (timeout_ns != 0) {
        Py_BEGIN_ALLOW_THREADS
        n = ioq_poll(loop, cqes, max, timeout_ns);
        Py_END_ALLOW_THREADS
    } else {
        n = ioq_poll(loop, cqes, max, 0);
    }
    if (n < 0)
        return PyLong_FromLong(n);
    frame.loop = loop;
    frame.freed = 0;
    frame.up = ioq_py_dtop;
    ioq_py_dtop = &frame;
    for (i = 0; i < n && !frame.freed; i++) {
        const ioq_cqe *c = &cqes[i];
        int final = !(c->flags & IOQ_CQE_MORE);
        capsule = NULL;
        extra = NULL;
        if (final) {
            capsule = ioq_py_pin_take(loop, c->token, c->op);
            if (capsule == NULL && PyErr_Occurred())
                PyErr_Clear();
        }
        key = PyLong_FromUnsignedLongLong(c->token);
        cb = key == NULL ? NULL : PyDict_GetItemWithError(cbs, key);
        if (cb != NULL) {
            int again = 0;
            Py_INCREF(cb);
            /* callbacks are for ops whose results need no pin, but for a receive of
             * ioq_py_recv_into: a copy of the data is the value */
            if (capsule != NULL && (c->op != IOQ_OP_RECV || !PyByteArray_CheckExact(capsule)))
                Py_CLEAR(capsule);
            if (capsule != NULL && PyTuple_CheckExact(cb) && PyTuple_GET_SIZE(cb) == 6 &&
                c->result > 0) {
                /* (on_data, on_other, context, big, small, handle): a receive into the
                 * transport's buffer that brought at least small bytes goes to on_data
                 * and is made again at once, into the same buffer under the same token,
                 * as a multishot receive would be */
                long long small = PyLong_AsLongLong(PyTuple_GET_ITEM(cb, 4));
                unsigned long long hh = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(cb, 5));
                if (PyErr_Occurred()) {
                    PyErr_Clear();
                } else if ((long long)c->result >= small &&
                           c->result <= PyByteArray_GET_SIZE(capsule)) {
                    arg = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(capsule),
                                                    (Py_ssize_t)c->result);
                    if (arg == NULL) {
                        PyErr_Clear();
                    } else if (ioq_py_pin_store(loop, c->token, IOQ_OP_RECV, capsule) < 0) {
                        PyErr_Clear();
                        Py_CLEAR(arg);
                    } else if (ioq_recv(loop, (ioq_handle)hh, PyByteArray_AS_STRING(capsule),
                                        (size_t)PyByteArray_GET_SIZE(capsule), c->token) != 0) {
                        ioq_py_pin_drop(loop, c->token);
                        Py_CLEAR(arg);
                    } else {
                        again = 1;
                        Py_CLEAR(capsule);
                    }
                }
            }
            if (final && !again && PyDict_DelItem(cbs, key) < 0)
                PyErr_Clear();
            if (PyList_CheckExact(cb) && PyList_GET_SIZE(cb) == 4) {
                res = ioq_py_account(cb, c);
                if (res == Py_None) {
                    Py_DECREF(res);
                    Py_DECREF(cb);
                    Py_DECREF(key);
                    continue;
                }
                if (res != NULL) {
                    Py_DECREF(cb);
                    cb = res; /* on_done */
                } else {
                    PyErr_WriteUnraisable(cb);
                    Py_DECREF(cb);
                    Py_DECREF(key);
                    continue;
                }
            }
            if (again) {
                /* arg is the data */
            } else if (capsule != NULL) {
                arg = ioq_py_recv_copy(capsule, c->result);
                capsule = NULL;
            } else if ((c->flags & IOQ_CQE_BUFFER) && pool != 0) {
                void *p = ioq_buf(loop, pool, (uint32_t)c->value);
                if (p == NULL) {
                    arg = NULL;
                    PyErr_SetString(PyExc_RuntimeError, "completion for a buffer of another pool");
                } else {
                    arg = PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)c->result);
                }
                ioq_buf_release(loop, pool, (uint32_t)c->value);
            } else {
                arg = PyLong_FromUnsignedLongLong(c->value);
            }
            if (PyTuple_CheckExact(cb) &&
                PyTuple_GET_SIZE(cb) >= 2 && PyTuple_GET_SIZE(cb) <= 6) {
                PyObject *pair = cb;
                long long big = LLONG_MAX;
                res = NULL;
                if (PyTuple_GET_SIZE(pair) >= 4) {
                    big = PyLong_AsLongLong(PyTuple_GET_ITEM(pair, 3));
                    if (big == -1 && PyErr_Occurred()) {
                        PyErr_Clear();
                        big = LLONG_MAX;
                    }
                }
                if (again || (arg != NULL && (c->flags & IOQ_CQE_MORE) && c->result > 0 &&
                              (long long)c->result < big && (c->flags & IOQ_CQE_BUFFER))) {
                    /* (on_data, on_other, context): on_data runs in the protocol's context,
                     * as a Handle would run it (unless that context is entered already:
                     * then the call is inside it anyway) */
                    PyObject *ctx = PyTuple_GET_SIZE(pair) >= 3 ? PyTuple_GET_ITEM(pair, 2) : NULL;
                    if (ctx == Py_None)
                        ctx = NULL;
                    if (ctx != NULL && PyContext_Enter(ctx) < 0) {
                        PyErr_Clear();
                        ctx = NULL;
                    }
                    res = PyObject_Vectorcall(PyTuple_GET_ITEM(pair, 0), &arg, 1, NULL);
                    if (ctx != NULL) {
                        PyObject *et, *ev, *etb;
                        PyErr_Fetch(&et, &ev, &etb);
                        if (PyContext_Exit(ctx) < 0) /* entered just above: cannot fail */
                            PyErr_WriteUnraisable(ctx);
                        PyErr_Restore(et, ev, etb);
                    }
                    if (res != NULL || !PyErr_ExceptionMatches(PyExc_Exception)) {
                        Py_XDECREF(arg);
                        goto called;
                    }
                    /* on_data raised: on_other gets the exception */
                    {
                        PyObject *t, *v, *tb;
                        PyErr_Fetch(&t, &v, &tb);
                        PyErr_NormalizeException(&t, &v, &tb);
                        if (tb != NULL && v != NULL)
                            PyException_SetTraceback(v, tb);
                        Py_XDECREF(t);
                        Py_XDECREF(tb);
                        Py_XDECREF(arg);
                        arg = v;
                    }
                    cb = PyTuple_GET_ITEM(pair, 1);
                    Py_INCREF(cb);
                    Py_DECREF(pair);
                    args[0] = PyLong_FromLongLong((long long)c->result);
                    args[1] = arg;
                    args[2] = PyLong_FromLong(-1L);
                    goto call3;
                }
                cb = PyTuple_GET_ITEM(pair, 1);
                Py_INCREF(cb);
                Py_DECREF(pair);
            }
            args[0] = PyLong_FromLongLong((long long)c->result);
            args[1] = arg;
            args[2] = PyLong_FromLong((long)c->flags);
        call3:
            if (args[0] != NULL && args[1] != NULL && args[2] != NULL)
                res = PyObject_Vectorcall(cb, args, 3, NULL);
            else
                res = NULL;
            Py_XDECREF(args[0]);
            Py_XDECREF(args[1]);
            Py_XDECREF(args[2]);
        called:
            if (res == NULL) {
                if (!PyErr_ExceptionMatches(PyExc_Exception) && fatal_type == NULL)
                    PyErr_Fetch(&fatal_type, &fatal_value, &fatal_tb);
                else
                    PyErr_WriteUnraisable(cb);
            }
            Py_XDECREF(res);
            Py_DECREF(cb);
            Py_DECREF(key);
            continue;
        }
        if (PyErr_Occurred())
            PyErr_Clear();
        Py_XDECREF(key);
        if (capsule != NULL && (pin = ioq_py_pin_of(capsule)) != NULL && c->result >= 0) {
            if (pin->out_kind == IOQ_PY_OUT_ADDR) {
                extra = ioq_py_addr_to_obj(pin->out);
            } else if (pin->out_kind == IOQ_PY_OUT_ADDRS) {
                uint32_t cnt = c->result < (int64_t)pin->nout ? (uint32_t)c->result : pin->nout;
                extra = PyList_New(0);
                for (k = 0; extra != NULL && k < cnt; k++) {
                    PyObject *a = ioq_py_addr_to_obj(&pin->out[k]);
                    if (a == NULL || PyList_Append(extra, a) < 0) {
                        Py_XDECREF(a);
                        Py_CLEAR(extra);
                        break;
                    }
                    Py_DECREF(a);
                }
            }
            if (extra == NULL && PyErr_Occurred())
                PyErr_Clear();
        }
        Py_XDECREF(capsule);
        if (extra == NULL) {
            extra = Py_None;
            Py_INCREF(extra);
        }
        item = Py_BuildValue("(KLKiiN)", (unsigned long long)c->token, (long long)c->result,
                             (unsigned long long)c->value, (int)c->op, (int)c->flags, extra);
        if (rest == NULL)
            rest = PyList_New(0);
        if (item == NULL || rest == NULL || PyList_Append(rest, item) < 0)
            PyErr_WriteUnraisable(Py_None); /* out of memory: this record is lost */
        Py_XDECREF(item);
    }
    ioq_py_dtop = frame.up;
    if (fatal_type != NULL) {
        Py_XDECREF(rest);
        PyErr_Restore(fatal_type, fatal_value, fatal_tb);
        return NULL;
    }
    out = Py_BuildValue("(iO)", n, rest != NULL ? rest : Py_None);
    Py_XDECREF(rest);
    return out;
}

static PyObject *ioq_py_dispatch(ioq_loop *loop, PyObject *cbs, uint32_t max, ioq_handle pool)
{
    return ioq_py_dispatch_wait(loop, cbs, max, pool, 0);
}

/* ioq_py_send_bytes - the send of a transport: ioq_send of a bytes object, which stays
 * referenced by the pin table until the final completion, with the accounting of
 * ioq_py_dispatch done here too: cbs[token] = acct, acct[0] += 1, acct[1] += len(data).
 * Returns 0 or the negative IOQ_E* code of ioq_send (nothing is pinned or counted then). */
static PyObject *ioq_py_send_bytes(ioq_loop *loop, ioq_handle h, PyObject *data, uint64_t token,
                                   PyObject *cbs, PyObject *acct)
{
    PyObject *key, *v;
    long long inflight, pending;
    Py_ssize_t len;
    int rc;
    if (!PyBytes_CheckExact(data) || !PyDict_Check(cbs) || !PyList_CheckExact(acct) ||
        PyList_GET_SIZE(acct) != 4) {
        PyErr_SetString(PyExc_TypeError, "send_bytes(loop, h, bytes, token, dict, list)");
        return NULL;
    }
    if (loop == NULL)
        return PyLong_FromLong(IOQ_EINVAL);
    len = PyBytes_GET_SIZE(data);
    if (ioq_py_pin_store(loop, token, IOQ_OP_SEND, data) < 0)
        return NULL;
    rc = ioq_send(loop, h, PyBytes_AS_STRING(data), (size_t)len, token);
    if (rc != 0) {
        ioq_py_pin_drop(loop, token);
        return PyLong_FromLong(rc);
    }
    key = PyLong_FromUnsignedLongLong(token);
    if (key == NULL)
        return NULL; /* the send is in flight and keeps its pin */
    if (PyDict_SetItem(cbs, key, acct) < 0)
        goto fail;
    Py_DECREF(key);
    inflight = PyLong_AsLongLong(PyList_GET_ITEM(acct, 0));
    pending = PyLong_AsLongLong(PyList_GET_ITEM(acct, 1));
    if ((inflight == -1 || pending == -1) && PyErr_Occurred())
        return NULL;
    if ((v = PyLong_FromLongLong(inflight + 1)) == NULL)
        return NULL;
    PyList_SetItem(acct, 0, v);
    if ((v = PyLong_FromLongLong(pending + len)) == NULL)
        return NULL;
    PyList_SetItem(acct, 1, v);
    return PyLong_FromLong(0);
fail:
    /* The send is in flight and keeps its pin; only the accounting failed (no memory). */
    Py_DECREF(key);
    return NULL;
}

/* tr.name for ioq_py_flush, from the instance's __dict__ d when it holds it (the flush's
 * attributes are plain ones of the transport) and by getattr otherwise: a new reference,
 * or NULL with an exception set. */
static PyObject *ioq_py_tr_get(PyObject *tr, PyObject *d, PyObject *name)
{
    PyObject *v;
    if (d != NULL) {
        if ((v = PyDict_GetItemWithError(d, name)) != NULL) {
            Py_INCREF(v);
            return v;
        }
        if (PyErr_Occurred())
            return NULL;
    }
    return PyObject_GetAttr(tr, name);
}

/* tr.name = v for ioq_py_flush: into d, the instance's __dict__, when there is one. */
static int ioq_py_tr_set(PyObject *tr, PyObject *d, PyObject *name, PyObject *v)
{
    return d != NULL ? PyDict_SetItem(d, name, v) : PyObject_SetAttr(tr, name, v);
}

/* The try-write of ioq_py_flush: sends the bytes *pend on the transport's socket (its
 * attribute fd_name) without waiting. Returns 1 when all of them went out, 0 when some are
 * left for ioq (*pend is then the rest, a new bytes object, when part went out; the socket
 * buffer is full, or the send failed and ioq's send reports the error), -1 with an
 * exception set (no memory). */
static int ioq_py_try_send(PyObject *tr, PyObject *d, PyObject *fd_name, PyObject **pend)
{
#ifdef _WIN32
    (void)tr; (void)d; (void)fd_name; (void)pend;
    return 0;
#else
    PyObject *v = ioq_py_tr_get(tr, d, fd_name), *rest;
    Py_ssize_t len = PyBytes_GET_SIZE(*pend);
    ssize_t n;
    long fd;
    if (v == NULL)
        return -1;
    fd = PyLong_AsLong(v);
    Py_DECREF(v);
    if (fd < 0) {
        if (PyErr_Occurred())
            PyErr_Clear();
        return 0;
    }
    do
        n = send((int)fd, PyBytes_AS_STRING(*pend), (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n == len)
        return 1;
    if (n <= 0)
        return 0;
    if ((rest = PyBytes_FromStringAndSize(PyBytes_AS_STRING(*pend) + n, len - n)) == NULL)
        return -1;
    Py_SETREF(*pend, rest);
    return 0;
#endif
}

/* Gathered writes of one transport up to this many bytes together go out as one send of
 * their concatenation (the same bound as _IoqSocketTransport._ioq_flush); larger ones are
 * sent one by one, uncopied. */
#ifndef SWIG /* the C side's bound, not a constant of the module */
#define IOQ_PY_JOIN_MAX 65536
#endif

/* ioq_py_join_small - *out = the concatenation of a list of bytes objects of at most
 * IOQ_PY_JOIN_MAX bytes together (a new reference), or NULL when the list is larger or
 * holds anything else. Returns 0, or -1 with an exception (no memory). */
static int ioq_py_join_small(PyObject *list, PyObject **out)
{
    Py_ssize_t i, n = PyList_GET_SIZE(list), total = 0;
    PyObject *b;
    char *p;
    *out = NULL;
    for (i = 0; i < n; i++) {
        b = PyList_GET_ITEM(list, i);
        if (!PyBytes_CheckExact(b))
            return 0;
        total += PyBytes_GET_SIZE(b);
        if (total > IOQ_PY_JOIN_MAX)
            return 0;
    }
    if ((b = PyBytes_FromStringAndSize(NULL, total)) == NULL)
        return -1;
    p = PyBytes_AS_STRING(b);
    for (i = 0; i < n; i++) {
        PyObject *part = PyList_GET_ITEM(list, i);
        memcpy(p, PyBytes_AS_STRING(part), (size_t)PyBytes_GET_SIZE(part));
        p += PyBytes_GET_SIZE(part);
    }
    *out = b;
    return 0;
}

/* ioq_py_flush - the gathered writes of ioq.aio.EventLoop's transports, sent before the
 * loop polls (what each transport's _ioq_flush() does, without a Python call per
 * transport): takes every transport out of the list q; one whose _wpend is a bytes object,
 * or a list of bytes objects of at most IOQ_PY_JOIN_MAX bytes together (a response written
 * as headers and body; joined here), gets it sent by ioq_py_send_bytes under the token
 * al._next_token (counted up), with _wpend = None and _wpend_n = 0 first; any other with a
 * _wpend (larger lists, or a lost connection) has its _ioq_flush() called; a send ioq
 * refuses goes to _ioq_send_failed(rc). Returns None, or NULL with the exception of such
 * a call (the transports after it stay in q).
 * With direct non-zero (a readiness backend, where ioq_send would try the send in its own
 * call anyway), a transport with no send in flight (acct[0] == 0) first sends its bytes
 * itself on its socket _sock_fd, without waiting (as uvloop's try-write): what goes out
 * costs no ioq op, token, pin or completion; a rest (a full socket buffer) or an error goes
 * to ioq_send as before, which waits for room or reports the error through the completion.
 * Nothing is in flight in ioq for the stream then, so the order of its bytes is kept. */
static PyObject *ioq_py_flush(ioq_loop *loop, PyObject *cbs, PyObject *q, PyObject *al,
                              int direct)
{
    static PyObject *s_wpend, *s_wpend_n, *s_conn_lost, *s_h, *s_acct, *s_next, *s_flush,
                    *s_failed, *s_fd;
    PyObject *items, *tr, *pend = NULL, *v, *res, *zero, *d = NULL;
    unsigned long long token;
    Py_ssize_t i, n;
    if (s_wpend == NULL) {
        s_wpend = PyUnicode_InternFromString("_wpend");
        s_wpend_n = PyUnicode_InternFromString("_wpend_n");
        s_conn_lost = PyUnicode_InternFromString("_conn_lost");
        s_h = PyUnicode_InternFromString("_h");
        s_acct = PyUnicode_InternFromString("_acct");
        s_next = PyUnicode_InternFromString("_next_token");
        s_flush = PyUnicode_InternFromString("_ioq_flush");
        s_failed = PyUnicode_InternFromString("_ioq_send_failed");
        s_fd = PyUnicode_InternFromString("_sock_fd");
        if (!s_wpend || !s_wpend_n || !s_conn_lost || !s_h || !s_acct || !s_next || !s_flush
            || !s_failed || !s_fd)
            return NULL;
    }
    if (!PyList_CheckExact(q) || !PyDict_Check(cbs)) {
        PyErr_SetString(PyExc_TypeError, "flush(loop, dict, list, asyncloop)");
        return NULL;
    }
    n = PyList_GET_SIZE(q);
    if (n == 0)
        Py_RETURN_NONE;
    /* The list is emptied first: a transport written to by a callback below goes into
     * the next flush. */
    if ((items = PyList_GetSlice(q, 0, n)) == NULL)
        return NULL;
    if (PyList_SetSlice(q, 0, n, NULL) < 0)
        goto fail_items;
    zero = PyLong_FromLong(0);
    if (zero == NULL)
        goto fail_items;
    for (i = 0; i < n; i++) {
        int lost, rc;
        ioq_handle h;
        tr = PyList_GET_ITEM(items, i);
        Py_XDECREF(d);
        if ((d = PyObject_GenericGetDict(tr, NULL)) == NULL || !PyDict_CheckExact(d)) {
            PyErr_Clear();
            Py_CLEAR(d);
        }
        if ((pend = ioq_py_tr_get(tr, d, s_wpend)) == NULL)
            goto fail;
        if (pend == Py_None) {
            Py_CLEAR(pend);
            continue;
        }
        if ((v = ioq_py_tr_get(tr, d, s_conn_lost)) == NULL)
            goto fail;
        lost = PyObject_IsTrue(v);
        Py_DECREF(v);
        if (lost < 0)
            goto fail;
        if (PyList_CheckExact(pend) && !lost && loop != NULL) {
            PyObject *joined;
            if (ioq_py_join_small(pend, &joined) < 0)
                goto fail;
            if (joined != NULL)
                Py_SETREF(pend, joined);
        }
        if (!PyBytes_CheckExact(pend) || lost || loop == NULL) {
            Py_CLEAR(pend);
            res = PyObject_CallMethodNoArgs(tr, s_flush);
            if (res == NULL)
                goto fail;
            Py_DECREF(res);
            continue;
        }
        if ((v = ioq_py_tr_get(tr, d, s_acct)) == NULL)
            goto fail;
        if (direct && PyList_CheckExact(v) && PyList_GET_SIZE(v) == 4 &&
            PyLong_CheckExact(PyList_GET_ITEM(v, 0)) &&
            PyLong_AsLong(PyList_GET_ITEM(v, 0)) == 0) {
            int sent = ioq_py_try_send(tr, d, s_fd, &pend);
            if (sent < 0) {
                Py_DECREF(v);
                goto fail;
            }
            if (sent) {
                Py_DECREF(v);
                if (ioq_py_tr_set(tr, d, s_wpend, Py_None) < 0 ||
                    ioq_py_tr_set(tr, d, s_wpend_n, zero) < 0)
                    goto fail;
                Py_CLEAR(pend);
                continue;
            }
        }
        Py_DECREF(v);
        if ((v = PyObject_GetAttr(tr, s_h)) == NULL)
            goto fail;
        h = PyLong_AsUnsignedLongLong(v);
        Py_DECREF(v);
        if (h == (ioq_handle)-1 && PyErr_Occurred())
            goto fail;
        if ((v = PyObject_GetAttr(tr, s_acct)) == NULL)
            goto fail;
        if ((res = PyObject_GetAttr(al, s_next)) == NULL) {
            Py_DECREF(v);
            goto fail;
        }
        token = PyLong_AsUnsignedLongLong(res);
        Py_DECREF(res);
        if (token == (unsigned long long)-1 && PyErr_Occurred()) {
            Py_DECREF(v);
            goto fail;
        }
        if ((res = PyLong_FromUnsignedLongLong(token + 1)) == NULL ||
            PyObject_SetAttr(al, s_next, res) < 0 ||
            ioq_py_tr_set(tr, d, s_wpend, Py_None) < 0 ||
            ioq_py_tr_set(tr, d, s_wpend_n, zero) < 0) {
            Py_XDECREF(res);
            Py_DECREF(v);
            goto fail;
        }
        Py_DECREF(res);
        res = ioq_py_send_bytes(loop, h, pend, token, cbs, v);
        Py_DECREF(v);
        Py_CLEAR(pend);
        if (res == NULL)
            goto fail;
        rc = (int)PyLong_AsLong(res);
        Py_DECREF(res);
        if (rc < 0) {
            if ((v = PyLong_FromLong(rc)) == NULL)
                goto fail;
            res = PyObject_CallMethodOneArg(tr, s_failed, v);
            Py_DECREF(v);
            if (res == NULL)
                goto fail;
            Py_DECREF(res);
        }
    }
    Py_XDECREF(d);
    Py_DECREF(zero);
    Py_DECREF(items);
    Py_RETURN_NONE;
fail:
    /* the transports not flushed yet go back into q */
    Py_XDECREF(d);
    Py_XDECREF(pend);
    Py_DECREF(zero);
    if (i + 1 < n) {
        PyObject *left = PyList_GetSlice(items, i + 1, n);
        if (left != NULL) {
            PyObject *et, *ev, *etb;
            PyErr_Fetch(&et, &ev, &etb);
            if (PyList_SetSlice(q, 0, 0, left) < 0)
                PyErr_WriteUnraisable(q);
            PyErr_Restore(et, ev, etb);
            Py_DECREF(left);
        }
    }
fail_items:
    Py_DECREF(items);
    return NULL;
}

/* ioq_py_buf_read - a copy of the first length bytes of buffer id of pool, or None for a
 * bad pool or id. length must not exceed the pool's buffer size. */
static PyObject *ioq_py_buf_read(ioq_loop *loop, ioq_handle pool, uint32_t id, uint32_t length)
{
    void *p = ioq_buf(loop, pool, id);
    if (p == NULL)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)length);
}
%}

/* --- the write() of ioq.aio.EventLoop's socket transports ------------------------------ */
%{
/* What _IoqSocketTransport.write (Python, kept as _write_py) does for a bytes object while
 * the transport takes writes (not at EOF, no sendfile, connection not lost): gather it in
 * _wpend (a bytes object, or a list of them), put the transport into _flushq once, count it
 * in _wpend_n, and past the high-water mark set acct[2] and call _maybe_pause_protocol().
 * The attributes are read and set in the instance's __dict__ (plain attributes of asyncio's
 * transport and ours; _high_water is a slot of asyncio's flow control); anything else (another type of data, empty data, an attribute that
 * is not there, the rarer states) takes the Python method, which raises what asyncio
 * raises. Without a Python frame per write, as uvloop's transports write. */
static PyObject *ioq_py_write_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                   PyObject *kwnames)
{
    static PyObject *s_eof, *s_waiter, *s_lost, *s_wpend, *s_wpend_n, *s_flushq, *s_acct,
                    *s_high, *s_slow, *s_pause;
    PyObject *d, *data, *v, *pend, *acct, *n_obj, *high;
    long long n, inflight_bytes, high_v;
    int over;
    if (s_eof == NULL) {
        s_eof = PyUnicode_InternFromString("_eof");
        s_waiter = PyUnicode_InternFromString("_empty_waiter");
        s_lost = PyUnicode_InternFromString("_conn_lost");
        s_wpend = PyUnicode_InternFromString("_wpend");
        s_wpend_n = PyUnicode_InternFromString("_wpend_n");
        s_flushq = PyUnicode_InternFromString("_flushq");
        s_acct = PyUnicode_InternFromString("_acct");
        s_high = PyUnicode_InternFromString("_high_water");
        s_slow = PyUnicode_InternFromString("_write_py");
        s_pause = PyUnicode_InternFromString("_maybe_pause_protocol");
        if (!s_eof || !s_waiter || !s_lost || !s_wpend || !s_wpend_n || !s_flushq ||
            !s_acct || !s_high || !s_slow || !s_pause) {
            Py_CLEAR(s_eof);
            return NULL;
        }
    }
    if (nargs != 1 || kwnames != NULL)
        goto slow;
    data = args[0];
    if (!PyBytes_CheckExact(data) || PyBytes_GET_SIZE(data) == 0)
        goto slow;
    if ((d = PyObject_GenericGetDict(self, NULL)) == NULL)
        return NULL;
    if (!PyDict_CheckExact(d))
        goto slow_d;
    if (PyDict_GetItemWithError(d, s_eof) != Py_False ||
        PyDict_GetItemWithError(d, s_waiter) != Py_None)
        goto slow_d;
    v = PyDict_GetItemWithError(d, s_lost);
    if (v == NULL || !PyLong_CheckExact(v) || PyLong_AsLong(v) != 0)
        goto slow_d;
    pend = PyDict_GetItemWithError(d, s_wpend);
    n_obj = PyDict_GetItemWithError(d, s_wpend_n);
    acct = PyDict_GetItemWithError(d, s_acct);
    if (PyErr_Occurred())
        goto slow_d;
    if ((high = PyObject_GetAttr(self, s_high)) == NULL)
        goto slow_d;
    high_v = PyLong_CheckExact(high) ? PyLong_AsLongLong(high) : -1;
    Py_DECREF(high);
    if (pend == NULL || n_obj == NULL || !PyLong_CheckExact(n_obj) || acct == NULL ||
        !PyList_CheckExact(acct) || PyList_GET_SIZE(acct) != 4 ||
        !PyLong_CheckExact(PyList_GET_ITEM(acct, 1)) || high_v < 0)
        goto slow_d;
    if (pend != Py_None && !PyBytes_CheckExact(pend) && !PyList_CheckExact(pend))
        goto slow_d;
    n = PyLong_AsLongLong(n_obj);
    inflight_bytes = PyLong_AsLongLong(PyList_GET_ITEM(acct, 1));
    if (PyErr_Occurred())
        goto slow_d;
    /* from here on the write is taken */
    if (pend == Py_None) {
        PyObject *q = PyDict_GetItemWithError(d, s_flushq);
        if (q == NULL || !PyList_CheckExact(q))
            goto slow_d;
        if (PyList_Append(q, self) < 0 || PyDict_SetItem(d, s_wpend, data) < 0)
            goto fail;
    } else if (PyList_CheckExact(pend)) {
        if (PyList_Append(pend, data) < 0)
            goto fail;
    } else {
        PyObject *l = PyList_New(2);
        if (l == NULL)
            goto fail;
        Py_INCREF(pend);
        PyList_SET_ITEM(l, 0, pend);
        Py_INCREF(data);
        PyList_SET_ITEM(l, 1, data);
        if (PyDict_SetItem(d, s_wpend, l) < 0) {
            Py_DECREF(l);
            goto fail;
        }
        Py_DECREF(l);
    }
    n += PyBytes_GET_SIZE(data);
    if ((v = PyLong_FromLongLong(n)) == NULL)
        goto fail;
    if (PyDict_SetItem(d, s_wpend_n, v) < 0) {
        Py_DECREF(v);
        goto fail;
    }
    Py_DECREF(v);
    over = inflight_bytes + n > high_v;
    Py_DECREF(d);
    if (over) {
        Py_INCREF(Py_True);
        PyList_SetItem(acct, 2, Py_True);
        return PyObject_CallMethodNoArgs(self, s_pause);
    }
    Py_RETURN_NONE;
fail:
    Py_DECREF(d);
    return NULL;
slow_d:
    Py_DECREF(d);
    if (PyErr_Occurred())
        PyErr_Clear();
slow:
    {
        PyObject *m = PyObject_GetAttr(self, s_slow), *res;
        if (m == NULL)
            return NULL;
        res = PyObject_Vectorcall(m, args, (size_t)nargs, kwnames);
        Py_DECREF(m);
        return res;
    }
}

static PyMethodDef ioq_py_write_def = {
    "write", (PyCFunction)(void (*)(void))ioq_py_write_call, METH_FASTCALL | METH_KEYWORDS,
    "write(data): gather the bytes for the next flush (see _write_py)."
};
%}

%inline %{
/* ioq_py_write_method - the method descriptor of the C write() for the transport class
 * cls (a subclass of asyncio's socket transport with _write_py). */
static PyObject *ioq_py_write_method(PyObject *cls)
{
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "write_method(class)");
        return NULL;
    }
    return PyDescr_NewMethod((PyTypeObject *)cls, &ioq_py_write_def);
}
%}

/* --- since 1.1: pipes, terminals, child processes --------------------------------------- */

/* ioq_pipe: [rc, read_end, write_end]. */
%typemap(in, numinputs=0) ioq_handle out[2] (ioq_handle tmp[2]) {
    tmp[0] = tmp[1] = 0;
    $1 = tmp;
}
%typemap(argout) ioq_handle out[2] {
    $result = SWIG_Python_AppendOutput($result, PyLong_FromUnsignedLongLong($1[0]));
    $result = SWIG_Python_AppendOutput($result, PyLong_FromUnsignedLongLong($1[1]));
}

/* ioq_spawn: the options are a dict (see ioq_py_spawn_opts); the call gives
 * [rc, process, (stdin, stdout, stderr)] with 0 for a stream that is not a PIPE. */
%typemap(in, numinputs=0) ioq_handle *process (ioq_handle tmp = 0) {
    $1 = &tmp;
}
%typemap(argout) ioq_handle *process {
    $result = SWIG_Python_AppendOutput($result, PyLong_FromUnsignedLongLong(*$1));
}
%typemap(in, numinputs=0) ioq_handle pipes[3] (ioq_handle tmp[3]) {
    tmp[0] = tmp[1] = tmp[2] = 0;
    $1 = tmp;
}
%typemap(argout) ioq_handle pipes[3] {
    $result = SWIG_Python_AppendOutput($result, Py_BuildValue("(KKK)",
        (unsigned long long)$1[0], (unsigned long long)$1[1], (unsigned long long)$1[2]));
}
%typemap(in) const ioq_process_options *opts (ioq_py_spawn tmp) {
    memset(&tmp, 0, sizeof tmp);
    if (ioq_py_spawn_opts($input, &tmp) < 0) {
        ioq_py_spawn_free(&tmp);
        SWIG_fail;
    }
    $1 = &tmp.o;
}
/* Zeroed before any argument is checked: a bad loop argument jumps to the cleanup, which
 * frees what tmp holds. */
%typemap(arginit) const ioq_process_options *opts {
    memset(&tmp$argnum, 0, sizeof tmp$argnum);
}
%typemap(freearg) const ioq_process_options *opts {
    ioq_py_spawn_free(&tmp$argnum);
}

/* ioq_process_pid: [rc, pid]; ioq_tty_get_size: [rc, cols, rows]. */
%typemap(in, numinputs=0) int64_t *pid (int64_t tmp = 0) {
    $1 = &tmp;
}
%typemap(argout) int64_t *pid {
    $result = SWIG_Python_AppendOutput($result, PyLong_FromLongLong(*$1));
}
%typemap(in, numinputs=0) uint32_t *cols (uint32_t tmp = 0), uint32_t *rows (uint32_t tmp = 0) {
    $1 = &tmp;
}
%typemap(argout) uint32_t *cols, uint32_t *rows {
    $result = SWIG_Python_AppendOutput($result, PyLong_FromUnsignedLong(*$1));
}

/* The option structs are built from the dict: no proxy classes for them. */
%ignore ioq_process_options;
%ignore ioq_stdio;

%{
/* ioq_spawn's options as a Python dict:
 *   {"file": str, "argv": [str, ...], "env": [str, ...] or None, "cwd": str or None,
 *    "flags": int, "stdio": [(mode, value), (mode, value), (mode, value)]}
 * file and argv are required; the rest default to 0 / None / inherit. The strings stay
 * owned by their Python objects, which the dict keeps alive for the call. */
typedef struct {
    ioq_process_options o;
    const char **argv, **env;
} ioq_py_spawn;

static void ioq_py_spawn_free(ioq_py_spawn *s)
{
    free(s->argv);
    free(s->env);
    s->argv = s->env = NULL;
}

/* A list of str as a NULL-terminated array (malloc'ed) into *out. */
static int ioq_py_strv(PyObject *list, const char ***out, const char *what)
{
    Py_ssize_t n;
    if (!PyList_Check(list) && !PyTuple_Check(list)) {
        PyErr_Format(PyExc_TypeError, "spawn option '%s' must be a list of str", what);
        return -1;
    }
    n = PySequence_Size(list);
    if ((*out = calloc((size_t)n + 1, sizeof **out)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(list, i);
        if (ioq_py_text(item, &(*out)[i], 0) < 0)
            return -1;
    }
    return 0;
}

static int ioq_py_spawn_opts(PyObject *d, ioq_py_spawn *s)
{
    PyObject *v;
    s->o.size = sizeof s->o;
    if (!PyDict_Check(d)) {
        PyErr_SetString(PyExc_TypeError, "spawn options must be a dict");
        return -1;
    }
    if ((v = PyDict_GetItemString(d, "file")) == NULL || ioq_py_text(v, &s->o.file, 0) < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "spawn option 'file' is required");
        return -1;
    }
    if ((v = PyDict_GetItemString(d, "argv")) == NULL) {
        PyErr_SetString(PyExc_ValueError, "spawn option 'argv' is required");
        return -1;
    }
    if (ioq_py_strv(v, &s->argv, "argv") < 0)
        return -1;
    s->o.argv = s->argv;
    if ((v = PyDict_GetItemString(d, "env")) != NULL && v != Py_None) {
        if (ioq_py_strv(v, &s->env, "env") < 0)
            return -1;
        s->o.env = s->env;
    }
    if ((v = PyDict_GetItemString(d, "cwd")) != NULL && ioq_py_text(v, &s->o.cwd, 1) < 0)
        return -1;
    if ((v = PyDict_GetItemString(d, "flags")) != NULL) {
        unsigned long f = PyLong_AsUnsignedLong(v);
        if (f == (unsigned long)-1 && PyErr_Occurred())
            return -1;
        s->o.flags = (uint32_t)f;
    }
    if ((v = PyDict_GetItemString(d, "stdio")) != NULL && v != Py_None) {
        if (!PySequence_Check(v) || PySequence_Size(v) != 3) {
            PyErr_SetString(PyExc_TypeError, "spawn option 'stdio' must hold 3 (mode, value)");
            return -1;
        }
        for (Py_ssize_t i = 0; i < 3; i++) {
            PyObject *e = PySequence_GetItem(v, i);
            unsigned int mode = 0;
            unsigned long long value = 0;
            int ok = e && PyArg_ParseTuple(e, "I|K", &mode, &value);
            Py_XDECREF(e);
            if (!ok)
                return -1;
            s->o.stdio[i].mode = mode;
            s->o.stdio[i].value = value;
        }
    }
    return 0;
}
%}
