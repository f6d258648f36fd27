/*
 * D (SWIG -d2) typemaps of ioq. The generated modules are ioq_raw_im (function pointers
 * loaded from the wrapper library at run time) and ioq_raw (thin D functions over them);
 * the idiomatic package in bindings/d builds on ioq_raw.
 *
 * SWIG's defaults would wrap every struct in a proxy class that owns C heap memory and
 * every pointer in an opaque SWIGTYPE_p_* class. ioq's structs are plain fixed-layout
 * records that D can declare exactly, and completions must be polled into an array, so
 * the structs are declared as D structs below and pointers to them (and to buffers and
 * out-parameters) cross as native D pointers.
 */

/* Every #define becomes a D manifest constant (enum) instead of a getter call into C. */
%dmanifestconst;

/* The D structs below mirror ioq.h. The same sizes and offsets are asserted at compile
 * time on both sides: here in the C wrapper against the header, and in the generated D
 * module against the D declarations, so a drift fails the build rather than a poll. */
%{
#include <stddef.h>
_Static_assert(sizeof(ioq_cqe) == 32 && offsetof(ioq_cqe, result) == 8 &&
               offsetof(ioq_cqe, value) == 16 && offsetof(ioq_cqe, op) == 24 &&
               offsetof(ioq_cqe, flags) == 26 && offsetof(ioq_cqe, reserved) == 28,
               "ioq_cqe layout");
_Static_assert(sizeof(ioq_addr) == 24 && offsetof(ioq_addr, port) == 2 &&
               offsetof(ioq_addr, scope_id) == 4 && offsetof(ioq_addr, ip) == 8,
               "ioq_addr layout");
_Static_assert(sizeof(ioq_iov) == 2 * sizeof(size_t) &&
               offsetof(ioq_iov, len) == sizeof(size_t), "ioq_iov layout");
_Static_assert(sizeof(ioq_loop_options) == 48 && offsetof(ioq_loop_options, backend) == 4 &&
               offsetof(ioq_loop_options, threadpool_size) == 12 &&
               offsetof(ioq_loop_options, reserved) == 16, "ioq_loop_options layout");
_Static_assert(sizeof(ioq_stdio) == 16 && offsetof(ioq_stdio, value) == 8, "ioq_stdio layout");
_Static_assert(offsetof(ioq_process_options, file) == 8 &&
               offsetof(ioq_process_options, argv) == 8 + sizeof(void *) &&
               offsetof(ioq_process_options, env) == 8 + 2 * sizeof(void *) &&
               offsetof(ioq_process_options, cwd) == 8 + 3 * sizeof(void *) &&
               offsetof(ioq_process_options, stdio) == 8 + 4 * sizeof(void *) &&
               sizeof(ioq_process_options) == 8 + 4 * sizeof(void *) + 48,
               "ioq_process_options layout");
%}
%ignore ioq_cqe;
%ignore ioq_addr;
%ignore ioq_iov;
%ignore ioq_loop_options;
%ignore ioq_stdio;
%ignore ioq_process_options;

%pragma(d) imdmodulecode = %{
/** The opaque loop of ioq.h. */
struct ioq_loop;

/** ioq_cqe: a completion record, 32 bytes, frozen. */
struct ioq_cqe {
  ulong token;
  long result;
  ulong value;
  ushort op;
  ushort flags;
  uint reserved;
}
static assert(ioq_cqe.sizeof == 32 && ioq_cqe.result.offsetof == 8
  && ioq_cqe.value.offsetof == 16 && ioq_cqe.op.offsetof == 24
  && ioq_cqe.flags.offsetof == 26 && ioq_cqe.reserved.offsetof == 28);

/** ioq_addr: a network address (port in host order, ip in network order). */
struct ioq_addr {
  ushort family;
  ushort port;
  uint scope_id;
  ubyte[16] ip;
}
static assert(ioq_addr.sizeof == 24 && ioq_addr.port.offsetof == 2
  && ioq_addr.scope_id.offsetof == 4 && ioq_addr.ip.offsetof == 8);

/** ioq_iov: one piece of a gather send. */
struct ioq_iov {
  const(void)* base;
  size_t len;
}
static assert(ioq_iov.sizeof == 2 * size_t.sizeof && ioq_iov.len.offsetof == size_t.sizeof);

/** ioq_loop_options: set size to ioq_loop_options.sizeof. */
struct ioq_loop_options {
  uint size;
  uint backend;
  uint flags;
  uint threadpool_size;
  uint[8] reserved;
}
static assert(ioq_loop_options.sizeof == 48 && ioq_loop_options.backend.offsetof == 4
  && ioq_loop_options.threadpool_size.offsetof == 12 && ioq_loop_options.reserved.offsetof == 16);

/** ioq_stdio (since 1.1): one stdio stream of a child process. */
struct ioq_stdio {
  uint mode;
  uint reserved;
  ulong value;
}
static assert(ioq_stdio.sizeof == 16 && ioq_stdio.value.offsetof == 8);

/** ioq_process_options (since 1.1): set size to ioq_process_options.sizeof; the strings
 * are NUL-terminated, argv and env NULL-terminated arrays of them (env null: inherit). */
struct ioq_process_options {
  uint size;
  uint flags;
  const(char)* file;
  const(char*)* argv;
  const(char*)* env;
  const(char)* cwd;
  ioq_stdio[3] stdio;
}
static assert(ioq_process_options.file.offsetof == 8
  && ioq_process_options.argv.offsetof == 8 + size_t.sizeof
  && ioq_process_options.env.offsetof == 8 + 2 * size_t.sizeof
  && ioq_process_options.cwd.offsetof == 8 + 3 * size_t.sizeof
  && ioq_process_options.stdio.offsetof == 8 + 4 * size_t.sizeof
  && ioq_process_options.sizeof == 8 + 4 * size_t.sizeof + 48);
%}

/* The proxy module re-exports the record types so users of ioq_raw need one import. */
%pragma(d) globalproxyimports = %{
static import core.stdc.config;
public import ioq_raw_im : ioq_loop, ioq_cqe, ioq_addr, ioq_iov, ioq_loop_options, ioq_stdio,
  ioq_process_options;
%}

/* A C pointer (matched by PATTERN, which may name the parameter) that crosses unchanged as
 * the C type CTYPE and the D pointer type DTYPE. */
%define IOQ_D_POINTER_AS(PATTERN, CTYPE, DTYPE)
%typemap(ctype) PATTERN "CTYPE"
%typemap(imtype) PATTERN "DTYPE"
%typemap(dtype) PATTERN "DTYPE"
%typemap(in) PATTERN "$1 = ($1_ltype)$input;"
%typemap(out) PATTERN "$result = (CTYPE)$1;"
%typemap(din) PATTERN "$dinput"
%typemap(dout, excode=SWIGEXCODE) PATTERN {
  auto ret = $imcall;$excode
  return ret;
}
%enddef
%define IOQ_D_POINTER(CTYPE, DTYPE)
IOQ_D_POINTER_AS(CTYPE, CTYPE, DTYPE)
%enddef

IOQ_D_POINTER(ioq_loop *, ioq_loop*)
IOQ_D_POINTER(const ioq_loop *, const(ioq_loop)*)
IOQ_D_POINTER(ioq_loop **, ioq_loop**)
IOQ_D_POINTER(ioq_cqe *, ioq_cqe*)
IOQ_D_POINTER(ioq_addr *, ioq_addr*)
IOQ_D_POINTER(const ioq_addr *, const(ioq_addr)*)
IOQ_D_POINTER(const ioq_iov *, const(ioq_iov)*)
IOQ_D_POINTER(const ioq_loop_options *, const(ioq_loop_options)*)
IOQ_D_POINTER(const ioq_process_options *, const(ioq_process_options)*)

/* Out-parameters: handles and OS descriptors. */
IOQ_D_POINTER(ioq_handle *, ulong*)
/* Arrays of handles filled by ioq_pipe (2) and ioq_spawn (3, or null): D pointers too. */
IOQ_D_POINTER_AS(ioq_handle out[2], ioq_handle *, ulong*)
IOQ_D_POINTER_AS(ioq_handle pipes[3], ioq_handle *, ulong*)
IOQ_D_POINTER(uint64_t *, ulong*)

/* Data buffers are bytes on the D side: ubyte[] slices pass their .ptr. */
IOQ_D_POINTER_AS(void *buf, void *, ubyte*)
IOQ_D_POINTER_AS(const void *buf, const void *, const(ubyte)*)
IOQ_D_POINTER(void *, ubyte*)

/* ioq_addr_format writes into buf: SWIG's default would pass a temporary copy of a D
 * string, so the text would never reach the caller. */
IOQ_D_POINTER_AS(char *buf, char *, char*)


/* The C wrapper and ioq are linked into the program (the D package builds them into a
 * static library), so the wrapper functions are bound by symbol at link time instead of
 * SWIG's default, which dlopen()s libioq_raw_wrap.so by name at start-up and so ties every
 * program to a library path. The function pointers of the intermediary module are
 * thread-local, hence a module constructor per thread, as in SWIG's loader. */
%pragma(d) wrapperloadercode = %{
private template swigLinkedSymbol(string name) {
  pragma(mangle, name) extern(C) void swigLinkedSymbol();
}

private string bindCode(string functionPointer, string symbol) {
  return functionPointer ~ " = cast(typeof(" ~ functionPointer ~
    "))&swigLinkedSymbol!`" ~ symbol ~ "`;";
}

static this() {
  //#if !defined(SWIG_D_NO_EXCEPTION_HELPER)
  mixin(bindCode("swigRegisterExceptionCallbacks$module", "SWIGRegisterExceptionCallbacks_$module"));
  //#endif // SWIG_D_NO_EXCEPTION_HELPER
  //#if !defined(SWIG_D_NO_STRING_HELPER)
  mixin(bindCode("swigRegisterStringCallback$module", "SWIGRegisterStringCallback_$module"));
  //#endif // SWIG_D_NO_STRING_HELPER
  $wrapperloaderbindcode
}

//#if !defined(SWIG_D_NO_EXCEPTION_HELPER)
extern(C) void function(
  SwigExceptionCallback exceptionCallback,
  SwigExceptionCallback illegalArgumentCallback,
  SwigExceptionCallback illegalElementCallback,
  SwigExceptionCallback ioCallback,
  SwigExceptionCallback noSuchElementCallback) swigRegisterExceptionCallbacks$module;
//#endif // SWIG_D_NO_EXCEPTION_HELPER

//#if !defined(SWIG_D_NO_STRING_HELPER)
extern(C) void function(SwigStringCallback callback) swigRegisterStringCallback$module;
//#endif // SWIG_D_NO_STRING_HELPER
%}
