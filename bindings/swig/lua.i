/*
 * Lua 5.4 typemaps of ioq (module ioq_core). The idiomatic layer (bindings/lua/ioq.lua,
 * ioq/co.lua) is plain Lua over this module.
 *
 * What this file changes in SWIG's defaults, and why:
 *  - Integers. SWIG 4.1 pushes every C integer as a lua_Number (a double), so a token or
 *    handle above 2^53 would lose bits. Every integer type here is read with
 *    lua_tointegerx and pushed with lua_pushinteger. uint64_t values (tokens, handles,
 *    values) above 2^63-1 appear as negative Lua integers: the bits are the same, so a
 *    value read from a completion and passed back in is exactly the value C saw.
 *  - Out-parameters (ioq_handle *out, uint64_t *out, ioq_loop **out, ioq_addr *out, the
 *    text buffer of ioq_addr_format) are not Lua arguments; they are returned after the
 *    error code: local rc, h = ioq_core.tcp_listen(loop, addr, 0, 0).
 *  - Memory an in-flight operation refers to must outlive it (contract rule 3) although
 *    Lua's collector knows nothing of ioq. Each data operation that is accepted pins its
 *    string, buffer, iovec strings or address object in a registry table of its loop, keyed
 *    by token, and the completion that ends it (returned by poll) unpins it. Tokens may be
 *    shared by several operations: a token's pins are then held until the last of them
 *    has completed, which is never too early.
 *  - Receive memory is a userdata of type ioq.buffer (ioq_core.buffer(n)): fixed capacity,
 *    a data length, and a count of operations that hold it.
 *  - Completions are polled into an ioq.cqes userdata (ioq_core.cqes(max)); cq:get(i)
 *    returns token, result, value, op, flags as plain integers, without a table per call.
 */

%{
#include <stdlib.h>
#include <string.h>
#include <stddef.h>

#define IOQ_LUA_BUFFER "ioq.buffer"
#define IOQ_LUA_CQES "ioq.cqes"

typedef struct ioq_lua_buffer {
  size_t cap;
  size_t len;
  lua_Integer busy; /* accepted operations that still refer to the bytes */
  /* the bytes follow; Lua never moves a userdata, so their address is stable */
} ioq_lua_buffer;

typedef struct ioq_lua_cqes {
  uint32_t max;
  uint32_t n;
  ioq_cqe cqe[1];
} ioq_lua_cqes;

static unsigned char *ioq_lua_bytes(ioq_lua_buffer *b) {
  return (unsigned char *)(b + 1);
}

static ioq_lua_buffer *ioq_lua_tobuffer(lua_State *L, int idx) {
  return (ioq_lua_buffer *)luaL_testudata(L, idx, IOQ_LUA_BUFFER);
}

/* Registry key of the table {loop lightuserdata -> {token -> {n = count, values...}}}. */
static const char ioq_lua_pins_key = 0;

static void ioq_lua_pintable(lua_State *L, const void *loop, int create) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &ioq_lua_pins_key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &ioq_lua_pins_key);
  }
  lua_rawgetp(L, -1, loop);
  if (lua_isnil(L, -1) && create) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, -3, loop);
  }
  lua_remove(L, -2);
}

/* Pin the Lua values at stack indices a and b (0 = none, nil is skipped) under token. */
static void ioq_lua_pin(lua_State *L, const void *loop, uint64_t token, int a, int b) {
  int idx[2];
  int i;
  lua_Integer n;
  idx[0] = a;
  idx[1] = b;
  ioq_lua_pintable(L, loop, 1);
  lua_pushinteger(L, (lua_Integer)token);
  if (lua_rawget(L, -2) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_createtable(L, 2, 1);
    lua_pushinteger(L, (lua_Integer)token);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
  }
  lua_getfield(L, -1, "n");
  n = lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_pushinteger(L, n + 1);
  lua_setfield(L, -2, "n");
  for (i = 0; i < 2; i++) {
    ioq_lua_buffer *buf;
    if (idx[i] == 0 || lua_isnoneornil(L, idx[i]))
      continue;
    buf = ioq_lua_tobuffer(L, idx[i]);
    if (buf)
      buf->busy++;
    lua_pushvalue(L, idx[i]);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  }
  lua_pop(L, 2);
}

/* Drop every value of the pin entry on top of the stack (pops it). */
static void ioq_lua_release_entry(lua_State *L) {
  lua_Integer i, k = (lua_Integer)lua_rawlen(L, -1);
  for (i = 1; i <= k; i++) {
    ioq_lua_buffer *buf;
    lua_rawgeti(L, -1, i);
    buf = ioq_lua_tobuffer(L, -1);
    if (buf && buf->busy > 0)
      buf->busy--;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

static int ioq_lua_op_pins(uint16_t op) {
  switch (op) {
  case IOQ_OP_RECV: case IOQ_OP_SEND: case IOQ_OP_SENDV: case IOQ_OP_SENDTO:
  case IOQ_OP_RECVFROM: case IOQ_OP_READ: case IOQ_OP_WRITE: case IOQ_OP_RESOLVE:
    return 1;
  default:
    return 0;
  }
}

static void ioq_lua_after_poll(lua_State *L, const void *loop, ioq_cqe *cqe, int n) {
  ioq_lua_cqes *cq = (ioq_lua_cqes *)((char *)cqe - offsetof(ioq_lua_cqes, cqe));
  int i;
  cq->n = n > 0 ? (uint32_t)n : 0;
  if (n <= 0)
    return;
  ioq_lua_pintable(L, loop, 0);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  for (i = 0; i < n; i++) {
    lua_Integer left;
    if (!ioq_lua_op_pins(cqe[i].op) || (cqe[i].flags & IOQ_CQE_MORE))
      continue;
    lua_pushinteger(L, (lua_Integer)cqe[i].token);
    if (lua_rawget(L, -2) == LUA_TNIL) {
      lua_pop(L, 1);
      continue;
    }
    lua_getfield(L, -1, "n");
    left = lua_tointeger(L, -1) - 1;
    lua_pop(L, 1);
    if (left > 0) {
      lua_pushinteger(L, left);
      lua_setfield(L, -2, "n");
      lua_pop(L, 1);
      continue;
    }
    ioq_lua_release_entry(L);
    lua_pushinteger(L, (lua_Integer)cqe[i].token);
    lua_pushnil(L);
    lua_rawset(L, -3);
  }
  lua_pop(L, 1);
}

/* After ioq_loop_free nothing refers to caller memory: drop the loop's pins. */
static void ioq_lua_unpin_all(lua_State *L, const void *loop) {
  ioq_lua_pintable(L, loop, 0);
  if (!lua_isnil(L, -1)) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      ioq_lua_release_entry(L);
    }
  }
  lua_pop(L, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &ioq_lua_pins_key);
  if (!lua_isnil(L, -1)) {
    lua_pushnil(L);
    lua_rawsetp(L, -2, loop);
  }
  lua_pop(L, 1);
}

/* Values that will be read by the OS: a string, or the data of a buffer. */
static const void *ioq_lua_srcbytes(lua_State *L, int idx, size_t *len) {
  ioq_lua_buffer *buf;
  if (lua_type(L, idx) == LUA_TSTRING)
    return lua_tolstring(L, idx, len);
  buf = ioq_lua_tobuffer(L, idx);
  if (buf) {
    *len = buf->len;
    return ioq_lua_bytes(buf);
  }
  return NULL;
}

/* A buffer the OS will write into: refuse one that an operation already holds, since two
 * writers (or a writer and a sender) on the same bytes break contract rule 3. */
static ioq_lua_buffer *ioq_lua_dstbuffer(lua_State *L, int idx) {
  ioq_lua_buffer *buf = ioq_lua_tobuffer(L, idx);
  if (!buf)
    luaL_typeerror(L, idx, IOQ_LUA_BUFFER);
  if (buf->busy > 0)
    luaL_argerror(L, idx, "buffer is in use by an in-flight operation");
  return buf;
}

/* ---- ioq.buffer ------------------------------------------------------------------ */

static int ioq_lua_buffer_new(lua_State *L) {
  ioq_lua_buffer *b;
  size_t len = 0, cap;
  const char *init = NULL;
  if (lua_type(L, 1) == LUA_TSTRING) {
    init = lua_tolstring(L, 1, &len);
    cap = len;
  } else {
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 0 && n <= IOQ_MAX_LEN, 1, "size out of range");
    cap = (size_t)n;
  }
  b = (ioq_lua_buffer *)lua_newuserdatauv(L, sizeof(*b) + cap, 0);
  b->cap = cap;
  b->len = len;
  b->busy = 0;
  if (init)
    memcpy(ioq_lua_bytes(b), init, len);
  luaL_setmetatable(L, IOQ_LUA_BUFFER);
  return 1;
}

static int ioq_lua_buffer_len(lua_State *L) {
  ioq_lua_buffer *b = (ioq_lua_buffer *)luaL_checkudata(L, 1, IOQ_LUA_BUFFER);
  lua_pushinteger(L, (lua_Integer)b->len);
  return 1;
}

static int ioq_lua_buffer_cap(lua_State *L) {
  ioq_lua_buffer *b = (ioq_lua_buffer *)luaL_checkudata(L, 1, IOQ_LUA_BUFFER);
  lua_pushinteger(L, (lua_Integer)b->cap);
  return 1;
}

static int ioq_lua_buffer_busy(lua_State *L) {
  ioq_lua_buffer *b = (ioq_lua_buffer *)luaL_checkudata(L, 1, IOQ_LUA_BUFFER);
  lua_pushinteger(L, b->busy);
  return 1;
}

static int ioq_lua_buffer_setlen(lua_State *L) {
  ioq_lua_buffer *b = (ioq_lua_buffer *)luaL_checkudata(L, 1, IOQ_LUA_BUFFER);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_argcheck(L, n >= 0 && (size_t)n <= b->cap, 2, "length out of range");
  b->len = (size_t)n;
  return 0;
}

/* buf:tostring([i [, j]]) - like string.sub over the data. */
static int ioq_lua_buffer_tostring(lua_State *L) {
  ioq_lua_buffer *b = (ioq_lua_buffer *)luaL_checkudata(L, 1, IOQ_LUA_BUFFER);
  lua_Integer len = (lua_Integer)b->len;
  lua_Integer i = luaL_optinteger(L, 2, 1);
  lua_Integer j = luaL_optinteger(L, 3, -1);
  if (i < 0) i = len + i + 1 < 1 ? 1 : len + i + 1;
  else if (i == 0) i = 1;
  if (j < 0) j = len + j + 1;
  else if (j > len) j = len;
  if (i > j)
    lua_pushliteral(L, "");
  else
    lua_pushlstring(L, (const char *)ioq_lua_bytes(b) + i - 1, (size_t)(j - i + 1));
  return 1;
}

/* buf:set(s) - copy s into the buffer (its capacity is fixed). */
static int ioq_lua_buffer_set(lua_State *L) {
  ioq_lua_buffer *b = (ioq_lua_buffer *)luaL_checkudata(L, 1, IOQ_LUA_BUFFER);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  luaL_argcheck(L, b->busy == 0, 1, "buffer is in use by an in-flight operation");
  luaL_argcheck(L, n <= b->cap, 2, "string longer than the buffer");
  memcpy(ioq_lua_bytes(b), s, n);
  b->len = n;
  return 0;
}

static int ioq_lua_buffer_repr(lua_State *L) {
  ioq_lua_buffer *b = (ioq_lua_buffer *)luaL_checkudata(L, 1, IOQ_LUA_BUFFER);
  lua_pushfstring(L, "ioq.buffer(%d/%d)", (int)b->len, (int)b->cap);
  return 1;
}

/* ---- ioq.cqes -------------------------------------------------------------------- */

static int ioq_lua_cqes_new(lua_State *L) {
  lua_Integer max = luaL_optinteger(L, 1, 64);
  ioq_lua_cqes *cq;
  luaL_argcheck(L, max >= 1 && max <= 65536, 1, "count out of range");
  cq = (ioq_lua_cqes *)lua_newuserdatauv(L, offsetof(ioq_lua_cqes, cqe) +
                                               (size_t)max * sizeof(ioq_cqe), 0);
  cq->max = (uint32_t)max;
  cq->n = 0;
  luaL_setmetatable(L, IOQ_LUA_CQES);
  return 1;
}

/* cq:get(i) -> token, result, value, op, flags of the i-th record of the last poll. */
static int ioq_lua_cqes_get(lua_State *L) {
  ioq_lua_cqes *cq = (ioq_lua_cqes *)luaL_checkudata(L, 1, IOQ_LUA_CQES);
  lua_Integer i = luaL_checkinteger(L, 2);
  const ioq_cqe *c;
  luaL_argcheck(L, i >= 1 && i <= (lua_Integer)cq->n, 2, "no such completion");
  c = &cq->cqe[i - 1];
  lua_pushinteger(L, (lua_Integer)c->token);
  lua_pushinteger(L, (lua_Integer)c->result);
  lua_pushinteger(L, (lua_Integer)c->value);
  lua_pushinteger(L, (lua_Integer)c->op);
  lua_pushinteger(L, (lua_Integer)c->flags);
  return 5;
}

static int ioq_lua_cqes_count(lua_State *L) {
  ioq_lua_cqes *cq = (ioq_lua_cqes *)luaL_checkudata(L, 1, IOQ_LUA_CQES);
  lua_pushinteger(L, (lua_Integer)cq->n);
  return 1;
}

/* ---- helpers over ABI calls whose raw form Lua cannot use -------------------------- */

static ioq_loop *ioq_lua_checkloop(lua_State *L, int idx);

/* buf_string(loop, pool, id, len [, offset]) -> the bytes of a pool buffer as a string,
 * or nil for a bad pool or id. */
static int ioq_lua_buf_string(lua_State *L) {
  ioq_loop *loop = ioq_lua_checkloop(L, 1);
  lua_Integer pool = luaL_checkinteger(L, 2);
  lua_Integer id = luaL_checkinteger(L, 3);
  lua_Integer len = luaL_checkinteger(L, 4);
  lua_Integer off = luaL_optinteger(L, 5, 0);
  const char *p;
  luaL_argcheck(L, id >= 0 && id <= 0xffffffff, 3, "buffer id out of range");
  luaL_argcheck(L, len >= 0 && len <= IOQ_MAX_LEN, 4, "length out of range");
  luaL_argcheck(L, off >= 0 && off <= IOQ_MAX_LEN, 5, "offset out of range");
  p = (const char *)ioq_buf(loop, (ioq_handle)pool, (uint32_t)id);
  if (!p) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushlstring(L, p + off, (size_t)len);
  return 1;
}

/* addr_at(buf, i) -> the i-th address (1-based) written into buf by resolve, as text. */
static int ioq_lua_addr_at(lua_State *L) {
  ioq_lua_buffer *b = (ioq_lua_buffer *)luaL_checkudata(L, 1, IOQ_LUA_BUFFER);
  lua_Integer i = luaL_checkinteger(L, 2);
  ioq_addr a;
  char text[64];
  int n;
  luaL_argcheck(L, i >= 1 && (size_t)i <= b->cap / sizeof(ioq_addr), 2, "index out of range");
  memcpy(&a, ioq_lua_bytes(b) + (size_t)(i - 1) * sizeof(ioq_addr), sizeof(a));
  n = ioq_addr_format(&a, text, sizeof(text));
  if (n < 0) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushlstring(L, text, (size_t)n);
  return 1;
}

/* pinned(loop) -> number of values pinned for the loop's in-flight operations. */
static int ioq_lua_pinned(lua_State *L) {
  ioq_loop *loop = ioq_lua_checkloop(L, 1);
  lua_Integer total = 0;
  ioq_lua_pintable(L, loop, 0);
  if (!lua_isnil(L, -1)) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      total += (lua_Integer)lua_rawlen(L, -1);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  lua_pushinteger(L, total);
  return 1;
}

/* The loop's address, to key tables by loop. */
static int ioq_lua_loop_id(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)(uintptr_t)ioq_lua_checkloop(L, 1));
  return 1;
}

static void ioq_lua_register(lua_State *L) {
  static const luaL_Reg buffer_methods[] = {
    {"len", ioq_lua_buffer_len},
    {"cap", ioq_lua_buffer_cap},
    {"busy", ioq_lua_buffer_busy},
    {"setlen", ioq_lua_buffer_setlen},
    {"tostring", ioq_lua_buffer_tostring},
    {"set", ioq_lua_buffer_set},
    {NULL, NULL}
  };
  static const luaL_Reg cqes_methods[] = {
    {"get", ioq_lua_cqes_get},
    {"count", ioq_lua_cqes_count},
    {NULL, NULL}
  };
  if (luaL_newmetatable(L, IOQ_LUA_BUFFER)) {
    luaL_newlib(L, buffer_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ioq_lua_buffer_len);
    lua_setfield(L, -2, "__len");
    lua_pushcfunction(L, ioq_lua_buffer_repr);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, IOQ_LUA_CQES)) {
    luaL_newlib(L, cqes_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ioq_lua_cqes_count);
    lua_setfield(L, -2, "__len");
  }
  lua_pop(L, 1);
}
%}

/* Lua names drop the prefix: ioq_core.recv, ioq_core.EINVAL, ioq_core.addr. */
%rename("%(regex:/^(ioq|IOQ)_(.*)/\\2/)s") "";

/* The metatables must exist before any wrapper can meet a buffer. */
%init %{
  ioq_lua_register(L);
%}

%native(buffer) int ioq_lua_buffer_new(lua_State *L);
%native(cqes) int ioq_lua_cqes_new(lua_State *L);
%native(buf_string) int ioq_lua_buf_string(lua_State *L);
%native(addr_at) int ioq_lua_addr_at(lua_State *L);
%native(pinned) int ioq_lua_pinned(lua_State *L);
%native(loop_id) int ioq_lua_loop_id(lua_State *L);

/* The raw pointer of a pool buffer is useless in Lua; buf_string copies it out. */
%ignore ioq_buf;

/* ---- integers ------------------------------------------------------------------------ */

%define IOQ_LUA_INT(TYPE, LO, HI)
%typemap(in, checkfn="lua_isnumber") TYPE {
  int isnum_ = 0;
  lua_Integer v_ = lua_tointegerx(L, $input, &isnum_);
  if (!isnum_) {
    SWIG_Lua_pushferrstring(L, "Error in $symname (arg %d), expected an integer", $argnum);
    SWIG_fail;
  }
  if (v_ < (lua_Integer)(LO) || v_ > (lua_Integer)(HI)) {
    SWIG_Lua_pushferrstring(L, "Error in $symname (arg %d), integer out of range", $argnum);
    SWIG_fail;
  }
  $1 = ($1_ltype)v_;
}
%typemap(in, checkfn="lua_isnumber") const TYPE & ($*1_ltype temp) {
  int isnum_ = 0;
  lua_Integer v_ = lua_tointegerx(L, $input, &isnum_);
  if (!isnum_ || v_ < (lua_Integer)(LO) || v_ > (lua_Integer)(HI)) {
    SWIG_Lua_pushferrstring(L, "Error in $symname (arg %d), expected an integer in range",
                            $argnum);
    SWIG_fail;
  }
  temp = ($*1_ltype)v_;
  $1 = &temp;
}
%typemap(out) TYPE %{ lua_pushinteger(L, (lua_Integer)$1); SWIG_arg++; %}
%typemap(out) const TYPE & %{ lua_pushinteger(L, (lua_Integer)*$1); SWIG_arg++; %}
%typemap(typecheck, precedence=SWIG_TYPECHECK_INTEGER) TYPE, const TYPE & {
  $1 = lua_isinteger(L, $input);
}
%enddef

IOQ_LUA_INT(signed char, -128, 127)
IOQ_LUA_INT(unsigned char, 0, 255)
IOQ_LUA_INT(short, -32768, 32767)
IOQ_LUA_INT(unsigned short, 0, 65535)
IOQ_LUA_INT(int, INT32_MIN, INT32_MAX)
IOQ_LUA_INT(unsigned int, 0, UINT32_MAX)
/* 64-bit: every Lua integer is accepted; unsigned ones wrap (2^64-1 is -1 in Lua). */
IOQ_LUA_INT(long, LUA_MININTEGER, LUA_MAXINTEGER)
IOQ_LUA_INT(unsigned long, LUA_MININTEGER, LUA_MAXINTEGER)
IOQ_LUA_INT(long long, LUA_MININTEGER, LUA_MAXINTEGER)
IOQ_LUA_INT(unsigned long long, LUA_MININTEGER, LUA_MAXINTEGER)

/* ---- out-parameters ------------------------------------------------------------------ */

%typemap(in, numinputs=0) uint64_t *out (uint64_t temp), ioq_handle *out (ioq_handle temp) {
  temp = 0;
  $1 = &temp;
}
%typemap(argout) uint64_t *out, ioq_handle *out {
  lua_pushinteger(L, (lua_Integer)*$1);
  SWIG_arg++;
}

%typemap(in, numinputs=0) ioq_loop **out (ioq_loop *temp) {
  temp = NULL;
  $1 = &temp;
}
%typemap(argout) ioq_loop **out {
  if (*$1)
    SWIG_NewPointerObj(L, *$1, $*1_descriptor, 0);
  else
    lua_pushnil(L);
  SWIG_arg++;
}

%typemap(in, numinputs=0) ioq_addr *out {
  $1 = (ioq_addr *)calloc(1, sizeof(ioq_addr));
  if (!$1) {
    SWIG_Lua_pushferrstring(L, "out of memory");
    SWIG_fail;
  }
}
%typemap(argout) ioq_addr *out {
  if (result == 0) {
    SWIG_NewPointerObj(L, $1, $1_descriptor, 1);
    $1 = NULL;
  } else {
    lua_pushnil(L);
  }
  SWIG_arg++;
}
%typemap(freearg) ioq_addr *out {
  free($1);
}

%typemap(in, numinputs=0) (char *buf, size_t len) (char temp[64]) {
  $1 = temp;
  $2 = sizeof(temp);
}
%typemap(argout) (char *buf, size_t len) {
  if (result >= 0)
    lua_pushlstring(L, $1, (size_t)result);
  else
    lua_pushnil(L);
  SWIG_arg++;
}

/* ---- data of operations -------------------------------------------------------------- */

/* Sent bytes: a string or an ioq.buffer (its data length). */
%typemap(in, checkfn="ioq_lua_any") (const void *buf, size_t len) {
  size_t n_ = 0;
  const void *p_ = ioq_lua_srcbytes(L, $input, &n_);
  if (!p_) {
    SWIG_Lua_pushferrstring(L, "Error in $symname (arg %d), expected a string or %s",
                            $argnum, IOQ_LUA_BUFFER);
    SWIG_fail;
  }
  $1 = (void *)p_;
  $2 = n_;
}

/* Received bytes: an ioq.buffer, filled from its start up to its capacity. */
%typemap(in, checkfn="ioq_lua_any") (void *buf, size_t len) {
  ioq_lua_buffer *b_ = ioq_lua_dstbuffer(L, $input);
  $1 = ioq_lua_bytes(b_);
  $2 = b_->cap;
}

/* Resolve output: an ioq.buffer of room for cap / 24 addresses (ioq_core.ADDR_SIZE). */
%typemap(in, checkfn="ioq_lua_any") (ioq_addr *out_addrs, uint32_t max) {
  ioq_lua_buffer *b_ = ioq_lua_dstbuffer(L, $input);
  size_t m_ = b_->cap / sizeof(ioq_addr);
  $1 = (ioq_addr *)(void *)ioq_lua_bytes(b_);
  $2 = (uint32_t)(m_ > UINT32_MAX ? UINT32_MAX : m_);
}

/* Gather send: a sequence of strings and buffers. The array is copied by ioq; the pieces
 * are pinned through a private copy of the sequence that replaces the argument, so that
 * the caller may change its table at once. */
%typemap(in, checkfn="lua_istable") (const ioq_iov *iov, uint32_t n) {
  lua_Integer k_ = (lua_Integer)lua_rawlen(L, $input), i_;
  ioq_iov *v_ = NULL;
  if (k_ > 0) {
    v_ = (ioq_iov *)calloc((size_t)k_, sizeof(ioq_iov));
    if (!v_) {
      SWIG_Lua_pushferrstring(L, "out of memory");
      SWIG_fail;
    }
  }
  $1 = v_;
  $2 = (uint32_t)(k_ > UINT32_MAX ? UINT32_MAX : k_);
  lua_createtable(L, (int)(k_ > 4096 ? 4096 : k_), 0);
  for (i_ = 1; i_ <= k_; i_++) {
    size_t n_ = 0;
    const void *p_;
    lua_rawgeti(L, $input, i_);
    p_ = ioq_lua_srcbytes(L, -1, &n_);
    if (!p_) {
      lua_pop(L, 2);
      SWIG_Lua_pushferrstring(L, "Error in $symname, piece %d is not a string or %s",
                              (int)i_, IOQ_LUA_BUFFER);
      SWIG_fail;
    }
    v_[i_ - 1].base = (void *)p_;
    v_[i_ - 1].len = n_;
    lua_rawseti(L, -2, i_);
  }
  lua_replace(L, $input);
}
%typemap(freearg) (const ioq_iov *iov, uint32_t n) {
  free((void *)$1);
}

/* Completions: an ioq.cqes userdata; max is its size. */
%typemap(in, checkfn="ioq_lua_any") (ioq_cqe *cqes, uint32_t max) {
  ioq_lua_cqes *cq_ = (ioq_lua_cqes *)luaL_checkudata(L, $input, IOQ_LUA_CQES);
  cq_->n = 0;
  $1 = cq_->cqe;
  $2 = cq_->max;
}

%{
static int ioq_lua_any(lua_State *L, int idx) {
  (void)L;
  (void)idx;
  return 1;
}

/* The loop of a SWIG ioq_loop object, for the hand-written functions. */
static ioq_loop *ioq_lua_checkloop(lua_State *L, int idx) {
  void *p = NULL;
  if (!SWIG_IsOK(SWIG_ConvertPtr(L, idx, &p, SWIGTYPE_p_ioq_loop, 0)))
    luaL_typeerror(L, idx, "ioq_loop");
  return (ioq_loop *)p;
}
%}

/* ---- pinning and unpinning ----------------------------------------------------------- */

%define IOQ_LUA_PINNED(FN, A, B, TOKEN)
%exception FN {
  $action
  if (result == 0)
    ioq_lua_pin(L, arg1, TOKEN, A, B);
}
%enddef

/* Lua argument positions of the pinned values; C argument of the token. */
IOQ_LUA_PINNED(ioq_recv, 3, 0, arg5)
IOQ_LUA_PINNED(ioq_send, 3, 0, arg5)
IOQ_LUA_PINNED(ioq_sendv, 3, 0, arg5)
IOQ_LUA_PINNED(ioq_sendto, 3, 0, arg6)
IOQ_LUA_PINNED(ioq_recvfrom, 3, 4, arg6)
IOQ_LUA_PINNED(ioq_read, 3, 0, arg6)
IOQ_LUA_PINNED(ioq_write, 3, 0, arg6)
IOQ_LUA_PINNED(ioq_resolve, 5, 0, arg7)

%exception ioq_poll {
  $action
  ioq_lua_after_poll(L, arg1, arg2, result);
}

/* Freeing also clears the pointer inside the Lua object, so that a later call gets NULL
 * (IOQ_EINVAL) instead of touching freed memory. */
%exception ioq_loop_free {
  $action
  ioq_lua_unpin_all(L, arg1);
  if (lua_isuserdata(L, 1) && arg1)
    ((swig_lua_userdata *)lua_touserdata(L, 1))->ptr = NULL;
}

%constant int ADDR_SIZE = sizeof(ioq_addr);
