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
 *    string, buffer, iovec strings or address object (registry references) in the pin
 *    table of its loop, keyed by token (pins.h, shared with the Python binding), and the
 *    completion that ends it (returned by poll) unpins it. Tokens may be shared by several
 *    operations: a token's pins are then held until the last of them has completed, which
 *    is never too early. The ioq module keeps these values in its own table of operations
 *    and says so (loop_unpinned): its loops are not pinned twice.
 *  - ioq.lua's hot paths are C functions here (loop_recv and loop_send, which are its
 *    Loop:recv and Loop:send, and complete), because a VM instruction costs far more than
 *    a C statement: every completion table is built by complete(), every byte-count
 *    receive takes its buffer from the loop's cache in C.
 *  - Receive memory is a userdata of type ioq.buffer (ioq_core.buffer(n)): fixed capacity,
 *    a data length, and a count of operations that hold it.
 *  - Completions are polled into an ioq.cqes userdata (ioq_core.cqes(max)); cq:get(i)
 *    returns token, result, value, op, flags as plain integers, without a table per call.
 */

%insert("header") "pins.h"

%{
#include <stdlib.h>
#include <string.h>
#include <stddef.h>

#define IOQ_LUA_BUFFER "ioq.buffer"
#define IOQ_LUA_CQES "ioq.cqes"

/* SWIG's Lua runtime takes every full userdata for one of its own (a swig_lua_userdata)
 * and reads its type pointer, so an io.stdout or an ioq.buffer passed where a loop is
 * expected crashed it; and it takes a light userdata for a pointer of any type. Here a
 * value is converted only when it is a SWIG object of this module (its size and its type
 * pointer say so), or nil, and an error names what was passed instead. */
static int ioq_lua_isswig(lua_State *L, int idx) {
  const swig_lua_userdata *u;
  size_t i;
  if (lua_type(L, idx) != LUA_TUSERDATA || lua_rawlen(L, idx) != sizeof(swig_lua_userdata))
    return 0;
  u = (const swig_lua_userdata *)lua_touserdata(L, idx);
  for (i = 0; i < sizeof(swig_types) / sizeof(swig_types[0]); i++)
    if (swig_types[i] && u->type == swig_types[i])
      return 1;
  return 0;
}

static int ioq_lua_convertptr(lua_State *L, int idx, void **ptr, swig_type_info *type,
                              int flags) {
  int untyped = type == NULL || type == SWIGTYPE_p_void;
  if (!lua_isnil(L, idx) && !ioq_lua_isswig(L, idx) &&
      !(untyped && lua_islightuserdata(L, idx)))
    return SWIG_ERROR;
  return SWIG_Lua_ConvertPtr(L, idx, ptr, type, flags);
}

/* What the value at idx is, for an error message: a SWIG type, a metatable's __name
 * (FILE*, ioq.buffer), else the Lua type. */
static const char *ioq_lua_typename(lua_State *L, int idx) {
  const char *name;
  if (ioq_lua_isswig(L, idx))
    return SWIG_Lua_typename(L, idx);
  if (luaL_getmetafield(L, idx, "__name") == LUA_TSTRING) {
    name = lua_tostring(L, -1); /* still referenced by the metatable */
    lua_pop(L, 1);
    return name;
  }
  return luaL_typename(L, idx);
}

#undef SWIG_ConvertPtr
#define SWIG_ConvertPtr(L, idx, ptr, type, flags) ioq_lua_convertptr(L, idx, ptr, type, flags)
#undef SWIG_fail_arg
#define SWIG_fail_arg(func_name, argnum, type) \
  { SWIG_Lua_pushferrstring(L, "Error in %s (arg %d), expected '%s' got '%s'", func_name, \
                            argnum, type, ioq_lua_typename(L, argnum)); \
    goto fail; }

typedef struct ioq_lua_buffer {
  size_t cap;
  size_t len;
  lua_Integer busy; /* accepted operations that still refer to the bytes */
  int spare;        /* a receive buffer of ioq.lua's cache, never seen by its callers */
  /* the bytes follow; Lua never moves a userdata, so their address is stable */
} ioq_lua_buffer;

#define IOQ_LUA_CQES_MAGIC 0x696f7163u /* lets the hot paths skip the metatable check */

typedef struct ioq_lua_cqes {
  uint32_t magic;
  uint32_t max;
  uint32_t n;
  ioq_cqe cqe[1];
} ioq_lua_cqes;

static unsigned char *ioq_lua_bytes(ioq_lua_buffer *b) {
  return (unsigned char *)(b + 1);
}

/* Registry keys (by address, so that a lookup compares no string): the metatable of
 * ioq.buffer, and the key strings and op names of completion tables. */
static const char ioq_lua_buffer_mt_key = 0;
static const char ioq_lua_names_key = 0;

static ioq_lua_buffer *ioq_lua_tobuffer(lua_State *L, int idx) {
  void *p = lua_touserdata(L, idx);
  int same;
  if (!p || lua_islightuserdata(L, idx) || !lua_getmetatable(L, idx))
    return NULL;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &ioq_lua_buffer_mt_key);
  same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same ? (ioq_lua_buffer *)p : NULL;
}

/* A short description of the value at idx for error messages: "NaN", "1.5", "a string". */
static const char *ioq_lua_numdesc(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Number d = lua_tonumber(L, idx);
    if (d != d)
      return "NaN";
    return lua_pushfstring(L, "%f", d);
  }
  return lua_pushfstring(L, "a %s", luaL_typename(L, idx));
}

/* The integer at idx, in lo..hi; else a clear argument error that names what the number
 * is (a float with a fraction, NaN, an infinity, a value out of range, not a number). */
static lua_Integer ioq_lua_checkint(lua_State *L, int idx, lua_Integer lo, lua_Integer hi,
                                    const char *what) {
  int isnum = 0;
  lua_Integer v = lua_tointegerx(L, idx, &isnum);
  if (!isnum)
    luaL_argerror(L, idx, lua_pushfstring(L, "%s must be an integer, got %s", what,
                                          ioq_lua_numdesc(L, idx)));
  if (v < lo || v > hi)
    luaL_argerror(L, idx, lua_pushfstring(L, "%s out of range %I..%I, got %I", what,
                                          (LUAI_UACINT)lo, (LUAI_UACINT)hi,
                                          (LUAI_UACINT)v));
  return v;
}

/* Registry keys of the table {loop lightuserdata -> ioq.pins userdata (the loop's pin
 * table, pins.h) or false} and of the table of the pinned values themselves (luaL_ref
 * references: what a pin table holds). A loop whose entry is false keeps its values itself
 * (ioq.lua does: loop_unpinned). */
static const char ioq_lua_pins_key = 0;
static const char ioq_lua_refs_key = 0;
#define IOQ_LUA_PINS "ioq.pins"

/* Pushes the registry table at key, made on first use. */
static void ioq_lua_regtable(lua_State *L, const char *key) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, key);
  }
}

/* Release callback of pins.h: drop reference ref (ctx is the lua_State). A buffer is no
 * longer held by that operation. */
static void ioq_lua_unref(void *ctx, uintptr_t ref) {
  lua_State *L = (lua_State *)ctx;
  ioq_lua_buffer *buf;
  ioq_lua_regtable(L, &ioq_lua_refs_key);
  lua_rawgeti(L, -1, (lua_Integer)ref);
  buf = ioq_lua_tobuffer(L, -1);
  if (buf && buf->busy > 0)
    buf->busy--;
  lua_pop(L, 1);
  luaL_unref(L, -1, (int)ref);
  lua_pop(L, 1);
}

static void ioq_lua_noref(void *ctx, uintptr_t ref) {
  (void)ctx;
  (void)ref;
}

/* The table itself goes with its userdata; its references go with the registry (this
 * runs only after unpin_all, or when the Lua state closes). */
static int ioq_lua_pins_gc(lua_State *L) {
  ioq_pins *t = (ioq_pins *)lua_touserdata(L, 1);
  if (t)
    ioq_pins_clear(t, ioq_lua_noref, NULL);
  return 0;
}

/* The pin table of loop, or NULL: none yet and create is 0, or the caller keeps the
 * loop's values itself (*unpinned set). Leaves the stack as it was. */
static ioq_pins *ioq_lua_pins(lua_State *L, const void *loop, int create, int *unpinned) {
  ioq_pins *t = NULL;
  int type;
  *unpinned = 0;
  ioq_lua_regtable(L, &ioq_lua_pins_key);
  type = lua_rawgetp(L, -1, loop);
  if (type == LUA_TUSERDATA) {
    t = (ioq_pins *)lua_touserdata(L, -1);
  } else if (type == LUA_TBOOLEAN) {
    *unpinned = 1;
  } else if (create) {
    t = (ioq_pins *)lua_newuserdatauv(L, sizeof(*t), 0);
    ioq_pins_init(t);
    if (luaL_newmetatable(L, IOQ_LUA_PINS)) {
      lua_pushcfunction(L, ioq_lua_pins_gc);
      lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    lua_rawsetp(L, -3, loop);
  }
  lua_pop(L, 2);
  return t;
}

/* After an accepted operation op: pin the Lua values at stack indices a and b (0 = none,
 * nil is skipped) under token. */
static void ioq_lua_pin(lua_State *L, const void *loop, uint16_t op, uint64_t token, int a,
                        int b) {
  int idx[2], i, unpinned;
  uintptr_t ref[2] = { 0, 0 };
  ioq_pins *t;
  idx[0] = a;
  idx[1] = b;
  t = ioq_lua_pins(L, loop, 1, &unpinned);
  for (i = 0; i < 2; i++) {
    ioq_lua_buffer *buf;
    if (idx[i] == 0 || lua_isnoneornil(L, idx[i]))
      continue;
    buf = ioq_lua_tobuffer(L, idx[i]);
    if (buf && !(unpinned && buf->spare))
      buf->busy++;
    if (unpinned)
      continue; /* the caller keeps the values referenced (loop_unpinned) */
    ioq_lua_regtable(L, &ioq_lua_refs_key);
    lua_pushvalue(L, idx[i]);
    ref[i] = (uintptr_t)luaL_ref(L, -2);
    lua_pop(L, 1);
  }
  /* Out of memory: the references stay in the registry for good, since the operation is
   * in flight and its memory must outlive it; leaking is the safe side. */
  if (t)
    (void)ioq_pins_add(t, token, op, ref[0], ref[1]);
}

static void ioq_lua_after_poll(lua_State *L, const void *loop, ioq_cqe *cqe, int n) {
  ioq_lua_cqes *cq = (ioq_lua_cqes *)((char *)cqe - offsetof(ioq_lua_cqes, cqe));
  ioq_pins *t;
  int i, unpinned;
  cq->n = n > 0 ? (uint32_t)n : 0;
  if (n <= 0)
    return;
  t = ioq_lua_pins(L, loop, 0, &unpinned);
  if (!t || ioq_pins_held(t) == 0)
    return;
  for (i = 0; i < n; i++) {
    uintptr_t out[2];
    if (cqe[i].flags & IOQ_CQE_MORE)
      continue;
    if (ioq_pins_done(t, cqe[i].token, cqe[i].op, out, ioq_lua_unref, L) == IOQ_PINS_ENDED) {
      if (out[0])
        ioq_lua_unref(L, out[0]);
      if (out[1])
        ioq_lua_unref(L, out[1]);
    }
  }
}

/* After ioq_loop_free nothing refers to caller memory: drop the loop's pins. */
static void ioq_lua_unpin_all(lua_State *L, const void *loop) {
  int unpinned;
  ioq_pins *t = ioq_lua_pins(L, loop, 0, &unpinned);
  if (t)
    ioq_pins_clear(t, ioq_lua_unref, L);
  ioq_lua_regtable(L, &ioq_lua_pins_key);
  lua_pushnil(L);
  lua_rawsetp(L, -2, loop);
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
    lua_Integer n = ioq_lua_checkint(L, 1, 0, IOQ_MAX_LEN, "size");
    cap = (size_t)n;
  }
  b = (ioq_lua_buffer *)lua_newuserdatauv(L, sizeof(*b) + cap, 0);
  b->cap = cap;
  b->len = len;
  b->busy = 0;
  b->spare = 0;
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
  lua_Integer max = lua_isnoneornil(L, 1) ? 64 : ioq_lua_checkint(L, 1, 1, 65536, "count");
  ioq_lua_cqes *cq;
  cq = (ioq_lua_cqes *)lua_newuserdatauv(L, offsetof(ioq_lua_cqes, cqe) +
                                               (size_t)max * sizeof(ioq_cqe), 0);
  cq->magic = IOQ_LUA_CQES_MAGIC;
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

/* pinned(loop) -> number of operations whose values are held (one that is over counts
 * while another operation of its token is in flight). */
static int ioq_lua_pinned(lua_State *L) {
  ioq_loop *loop = ioq_lua_checkloop(L, 1);
  int unpinned;
  ioq_pins *t = ioq_lua_pins(L, loop, 0, &unpinned);
  lua_pushinteger(L, t ? (lua_Integer)ioq_pins_held(t) : 0);
  return 1;
}

/* The loop's address, to key tables by loop. */
static int ioq_lua_loop_id(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)(uintptr_t)ioq_lua_checkloop(L, 1));
  return 1;
}

/* ---- support of the ioq module (ioq.lua) -------------------------------------------- */

/* loop_unpinned(loop): from now on the caller keeps every value of the loop's accepted
 * operations referenced until their final completions, as ioq.lua does in its own table of
 * operations; a second registry pin per operation would only cost time. Buffers are still
 * marked busy while an operation holds them (a spare buffer never is: nobody else sees it).
 */
static int ioq_lua_loop_unpinned(lua_State *L) {
  ioq_loop *loop = ioq_lua_checkloop(L, 1);
  ioq_lua_unpin_all(L, loop);
  ioq_lua_regtable(L, &ioq_lua_pins_key);
  lua_pushboolean(L, 0);
  lua_rawsetp(L, -2, loop);
  lua_pop(L, 1);
  return 0;
}

/* The state of an ioq.lua loop that lives in C (a userdata, the loop table's [5]):
 *
 * Operation ids. An id is slot + 2^24 * n, n counting the loop's operations: the slot
 * (1..2^24-1) is reused once the operation has its final completion, so the tables keyed
 * by it (tok, pin, and ioq.co's waiting) stay dense and live in their array parts (a
 * table keyed by ever-growing ids keeps hashing new keys), while the id as a whole names
 * one operation for as long as the loop lives: a stale id matches no slot, and cancel()
 * of it finds nothing. ids[slot] is the id in the slot, 0 when the slot is free.
 *
 * The cache of receive buffers (spare buffers; the lists, cap -> idle buffers, are in the
 * loop table's [4]): it keeps a quarter more than were in flight at once lately, and 16
 * more: a load that completes many receives in one poll and submits them again after the
 * sends finds them all, and a past peak stops being kept after two windows (a window
 * ends after `window` buffers came back). */
#define IOQ_LUA_STATE "ioq.state"
#define IOQ_LUA_SLOT_BITS 24
#define IOQ_LUA_SLOT_MASK ((lua_Integer)((1 << IOQ_LUA_SLOT_BITS) - 1))
#define IOQ_LUA_SPARE_WINDOW 16384

#define IOQ_LUA_STATE_MAGIC 0x696f7173u

typedef struct ioq_lua_state {
  uint32_t magic;       /* lets the hot paths skip the metatable check */
  ioq_loop *loop;       /* the loop, NULL once it is freed (state_reset) */
  lua_Integer seq;      /* operations started */
  uint32_t high;        /* slots in use or free: 1..high */
  uint32_t nfree;       /* free slots, on the stack free[] */
  uint32_t cap;         /* room of free[] and ids[] */
  uint32_t *free;
  lua_Integer *ids;
  lua_Integer inflight; /* spare buffers in flight */
  lua_Integer peak;     /* the most in flight at once in this window */
  lua_Integer prev;     /* ... in the window before */
  lua_Integer back;     /* buffers back in this window */
  lua_Integer window;
} ioq_lua_state;

static int ioq_lua_state_gc(lua_State *L) {
  ioq_lua_state *s = (ioq_lua_state *)luaL_checkudata(L, 1, IOQ_LUA_STATE);
  free(s->free);
  free(s->ids);
  s->free = NULL;
  s->ids = NULL;
  s->cap = s->high = s->nfree = 0;
  return 0;
}

static ioq_loop *ioq_lua_checkloop(lua_State *L, int idx);

/* state_new([loop]) -> a new state (of the loop). */
static int ioq_lua_state_new(lua_State *L) {
  ioq_loop *loop = lua_isnoneornil(L, 1) ? NULL : ioq_lua_checkloop(L, 1);
  ioq_lua_state *s = (ioq_lua_state *)lua_newuserdatauv(L, sizeof(*s), 0);
  memset(s, 0, sizeof(*s));
  s->magic = IOQ_LUA_STATE_MAGIC;
  s->loop = loop;
  s->window = IOQ_LUA_SPARE_WINDOW;
  luaL_setmetatable(L, IOQ_LUA_STATE);
  return 1;
}

static void ioq_lua_seti(lua_State *L, int t, lua_Integer k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_rawseti(L, t, k);
}

static ioq_lua_state *ioq_lua_tostate(lua_State *L, int idx) {
  ioq_lua_state *s = (ioq_lua_state *)lua_touserdata(L, idx);
  if (s && lua_rawlen(L, idx) == sizeof(*s) && s->magic == IOQ_LUA_STATE_MAGIC)
    return s;
  return (ioq_lua_state *)luaL_checkudata(L, idx, IOQ_LUA_STATE);
}

/* The cqes userdata at idx, checked without its metatable when it has our marks. */
static ioq_lua_cqes *ioq_lua_tocqes(lua_State *L, int idx) {
  ioq_lua_cqes *cq = (ioq_lua_cqes *)lua_touserdata(L, idx);
  if (cq && lua_rawlen(L, idx) >= sizeof(*cq) && cq->magic == IOQ_LUA_CQES_MAGIC &&
      lua_rawlen(L, idx) == offsetof(ioq_lua_cqes, cqe) + (size_t)cq->max * sizeof(ioq_cqe))
    return cq;
  return (ioq_lua_cqes *)luaL_checkudata(L, idx, IOQ_LUA_CQES);
}

/* A new id, or 0 when no slot is left (IOQ_ENOMEM for the caller). */
static lua_Integer ioq_lua_id_new(ioq_lua_state *s) {
  uint32_t slot;
  if (s->nfree > 0) {
    slot = s->free[--s->nfree];
  } else {
    if (s->high >= (uint32_t)IOQ_LUA_SLOT_MASK)
      return 0;
    if (s->high + 1 >= s->cap) {
      uint32_t cap = s->cap ? 2 * s->cap : 64;
      uint32_t *f = (uint32_t *)realloc(s->free, cap * sizeof(*f));
      lua_Integer *ids;
      if (!f)
        return 0;
      s->free = f;
      ids = (lua_Integer *)realloc(s->ids, cap * sizeof(*ids));
      if (!ids)
        return 0;
      memset(ids + s->cap, 0, (cap - s->cap) * sizeof(*ids));
      s->ids = ids;
      s->cap = cap;
    }
    slot = ++s->high;
  }
  s->seq++;
  s->ids[slot] = (s->seq << IOQ_LUA_SLOT_BITS) | (lua_Integer)slot;
  return s->ids[slot];
}

/* The slot of id when id is the operation in it, else 0. */
static lua_Integer ioq_lua_id_slot(const ioq_lua_state *s, lua_Integer id) {
  lua_Integer slot = id & IOQ_LUA_SLOT_MASK;
  if (slot < 1 || slot > (lua_Integer)s->high || s->ids[slot] != id)
    return 0;
  return slot;
}

/* The operation in the slot has ended. */
static void ioq_lua_id_free(ioq_lua_state *s, lua_Integer slot) {
  s->ids[slot] = 0;
  s->free[s->nfree++] = (uint32_t)slot;
}

/* id_new(state) -> a new id (or nil: no slot left). */
static int ioq_lua_id_new_l(lua_State *L) {
  lua_Integer id = ioq_lua_id_new(ioq_lua_tostate(L, 1));
  if (id)
    lua_pushinteger(L, id);
  else
    lua_pushnil(L);
  return 1;
}

/* id_free(state, id): id was not accepted after all (or has ended). */
static int ioq_lua_id_free_l(lua_State *L) {
  ioq_lua_state *s = ioq_lua_tostate(L, 1);
  lua_Integer slot = ioq_lua_id_slot(s, luaL_checkinteger(L, 2));
  if (slot)
    ioq_lua_id_free(s, slot);
  return 0;
}

/* id_of(state, slot) -> the id of the operation in the slot, or nil. */
static int ioq_lua_id_of(lua_State *L) {
  ioq_lua_state *s = ioq_lua_tostate(L, 1);
  lua_Integer slot = luaL_checkinteger(L, 2);
  if (slot >= 1 && slot <= (lua_Integer)s->high && s->ids[slot] != 0)
    lua_pushinteger(L, s->ids[slot]);
  else
    lua_pushnil(L);
  return 1;
}

/* state_pending(state) -> operations without their final completion yet. */
static int ioq_lua_state_pending(lua_State *L) {
  ioq_lua_state *s = ioq_lua_tostate(L, 1);
  lua_pushinteger(L, (lua_Integer)(s->high - s->nfree));
  return 1;
}

/* state_reset(state): every operation has ended (the loop was freed); spare counts too. */
static int ioq_lua_state_reset(lua_State *L) {
  ioq_lua_state *s = ioq_lua_tostate(L, 1);
  uint32_t slot;
  s->loop = NULL;
  s->nfree = 0;
  for (slot = s->high; slot >= 1; slot--) {
    s->ids[slot] = 0;
    s->free[s->nfree++] = slot;
  }
  s->inflight = s->peak = s->prev = s->back = 0;
  return 0;
}

/* state_window(state, n): a window of the spare cache ends after n buffers came back. */
static int ioq_lua_state_window(lua_State *L) {
  ioq_lua_state *s = ioq_lua_tostate(L, 1);
  s->window = ioq_lua_checkint(L, 2, 1, LUA_MAXINTEGER, "window");
  return 0;
}

/* spare_inflight(state) -> spare buffers held by operations. */
static int ioq_lua_spare_inflight(lua_State *L) {
  lua_pushinteger(L, ioq_lua_tostate(L, 1)->inflight);
  return 1;
}

/* Push an idle buffer of n bytes, from the lists at index spare or new; count it in flight. */
static ioq_lua_buffer *ioq_lua_spare_take(lua_State *L, ioq_lua_state *s, int spare,
                                          lua_Integer n) {
  ioq_lua_buffer *b = NULL;
  lua_Integer k;
  if (lua_rawgeti(L, spare, n) == LUA_TTABLE && (k = (lua_Integer)lua_rawlen(L, -1)) > 0) {
    lua_rawgeti(L, -1, k);
    lua_pushnil(L);
    lua_rawseti(L, -3, k);
    b = (ioq_lua_buffer *)lua_touserdata(L, -1);
    lua_remove(L, -2);
    if (!b || !b->spare || b->busy) /* only this file fills the lists, with idle buffers */
      luaL_error(L, "ioq: corrupt spare buffer list");
  } else {
    lua_pop(L, 1);
    b = (ioq_lua_buffer *)lua_newuserdatauv(L, sizeof(*b) + (size_t)n, 0);
    b->cap = (size_t)n;
    b->len = 0;
    b->busy = 0;
    b->spare = 1;
    luaL_setmetatable(L, IOQ_LUA_BUFFER);
  }
  if (++s->inflight > s->peak)
    s->peak = s->inflight;
  return b;
}

/* The spare buffer at index buf is idle again: back to the lists at index spare, unless
 * the cache holds enough (then it, and one more of the list, are left to the collector). */
static void ioq_lua_spare_put(lua_State *L, ioq_lua_state *s, int spare, int buf, size_t cap) {
  lua_Integer keep, len;
  if (s->inflight > 0)
    s->inflight--;
  if (++s->back >= s->window) {
    s->prev = s->peak;
    s->peak = s->inflight;
    s->back = 0;
  }
  keep = s->prev > s->peak ? s->prev : s->peak;
  keep += keep / 4 + 16;
  if (lua_rawgeti(L, spare, (lua_Integer)cap) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawseti(L, spare, (lua_Integer)cap);
  }
  len = (lua_Integer)lua_rawlen(L, -1);
  if (s->inflight + len < keep) {
    lua_pushvalue(L, buf);
    lua_rawseti(L, -2, len + 1);
  } else if (s->inflight + len > keep && len > 0) {
    lua_pushnil(L);
    lua_rawseti(L, -2, len);
  }
  lua_pop(L, 1);
}

/* An ioq.lua loop object keeps what its C methods need in its array part, so that they
 * read it without a string lookup. */
enum { IOQ_LUA_L_RAW = 1, IOQ_LUA_L_TOK, IOQ_LUA_L_PIN, IOQ_LUA_L_SPARE, IOQ_LUA_L_STATE };

/* spare_take(loop, n) -> an idle buffer of n bytes of the loop's cache (see above). */
static int ioq_lua_spare_take_l(lua_State *L) {
  lua_Integer n;
  ioq_lua_state *s;
  luaL_checktype(L, 1, LUA_TTABLE);
  n = ioq_lua_checkint(L, 2, 1, IOQ_MAX_LEN, "size");
  lua_settop(L, 2);
  lua_rawgeti(L, 1, IOQ_LUA_L_SPARE); /* 3 */
  lua_rawgeti(L, 1, IOQ_LUA_L_STATE); /* 4 */
  s = ioq_lua_tostate(L, 4);
  luaL_checktype(L, 3, LUA_TTABLE);
  ioq_lua_spare_take(L, s, 3, n);
  return 1;
}

/* spare_put(loop, buf): buf, taken by spare_take, is idle again. */
static int ioq_lua_spare_put_l(lua_State *L) {
  ioq_lua_buffer *b = ioq_lua_tobuffer(L, 2);
  ioq_lua_state *s;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argcheck(L, b && b->spare && !b->busy, 2, "idle spare buffer expected");
  lua_settop(L, 2);
  lua_rawgeti(L, 1, IOQ_LUA_L_SPARE); /* 3 */
  lua_rawgeti(L, 1, IOQ_LUA_L_STATE); /* 4 */
  s = ioq_lua_tostate(L, 4);
  luaL_checktype(L, 3, LUA_TTABLE);
  ioq_lua_spare_put(L, s, 3, 2, b->cap);
  return 0;
}

/* unhold(v): v is no longer held by an operation of an unpinned loop (any value may be
 * given; only a buffer changes). */
static int ioq_lua_unhold(lua_State *L) {
  ioq_lua_buffer *b = ioq_lua_tobuffer(L, 1);
  if (b && b->busy > 0)
    b->busy--;
  return 0;
}

static const char *const ioq_lua_opnames[] = {
  "none", "post", "accept", "connect", "local_connect", "recv", "recv_pool", "send",
  "sendv", "sendto", "recvfrom", "shutdown", "close", "open", "read", "write", "fsync",
  "timeout", "cancel", "resolve", "watch", "signal", "process_wait", "notify_wait"
};
#define IOQ_LUA_NOPS ((int)(sizeof(ioq_lua_opnames) / sizeof(ioq_lua_opnames[0])))

/* Keys of completion tables; complete() keeps them on its stack from K_BASE on. */
static const char *const ioq_lua_keys[] = {
  "id", "token", "op", "opcode", "result", "ok", "more", "value", "flags", "code", "err",
  "handle", "buf", "data"
};
enum {
  IOQ_LUA_K_ID, IOQ_LUA_K_TOKEN, IOQ_LUA_K_OP, IOQ_LUA_K_OPCODE, IOQ_LUA_K_RESULT,
  IOQ_LUA_K_OK, IOQ_LUA_K_MORE, IOQ_LUA_K_VALUE, IOQ_LUA_K_FLAGS, IOQ_LUA_K_CODE,
  IOQ_LUA_K_ERR, IOQ_LUA_K_HANDLE, IOQ_LUA_K_BUF, IOQ_LUA_K_DATA, IOQ_LUA_NKEYS
};

/* One record of the last poll as complete() and co_dispatch() see it. */
typedef struct ioq_lua_rec {
  const ioq_cqe *e;
  lua_Integer id, res;
  lua_Integer slot;     /* the slot of a known operation's id; 0: unknown */
  int more;             /* IOQ_CQE_MORE: the operation goes on */
  int ptype;            /* Lua type of what the operation held (LUA_TNIL: nothing) */
  ioq_lua_buffer *b;    /* the ioq.buffer it held, if it held one */
} ioq_lua_rec;

/* The tables of ioq.lua, keyed by the slot of the operation's id (see ioq_lua_state):
 *   tok   - the token given at submission, when one was given.
 *   pin   - what the operation holds: a string or a buffer, or a table that describes an
 *           operation that ioq.lua finishes itself (in Lua: fix below).
 *   spare - cap -> list of idle spare buffers.
 * ioq_lua_account does the bookkeeping of one record: it pushes the record's token (nil
 * when none was given; the id itself for an operation ioq.lua does not know) and what the
 * operation held (nil for nothing), drops a final completion's entries from tok and pin
 * and frees its id, and sets the data length of a receive buffer. r->slot is 0 for an
 * operation that ioq.lua does not know. */
static void ioq_lua_account(lua_State *L, ioq_lua_state *s, int tok, int pin,
                            const ioq_cqe *e, ioq_lua_rec *r) {
  int has_token;
  r->e = e;
  r->id = (lua_Integer)e->token;
  r->res = (lua_Integer)e->result;
  r->more = (e->flags & IOQ_CQE_MORE) != 0;
  r->b = NULL;
  r->slot = ioq_lua_id_slot(s, r->id);
  if (!r->slot) {
    lua_pushinteger(L, r->id);
    lua_pushnil(L);
    r->ptype = LUA_TNIL;
    return;
  }
  has_token = lua_rawgeti(L, tok, r->slot) != LUA_TNIL;
  r->ptype = lua_rawgeti(L, pin, r->slot);
  if (!r->more) {
    if (has_token) {
      lua_pushnil(L);
      lua_rawseti(L, tok, r->slot);
    }
    if (r->ptype != LUA_TNIL) {
      lua_pushnil(L);
      lua_rawseti(L, pin, r->slot);
    }
    ioq_lua_id_free(s, r->slot);
  }
  if (r->ptype == LUA_TUSERDATA) {
    /* Only buffers are pinned as userdata (this file pins them); their size says so. */
    ioq_lua_buffer *b = (ioq_lua_buffer *)lua_touserdata(L, -1);
    r->b = lua_rawlen(L, -1) >= sizeof(*b) && lua_rawlen(L, -1) == sizeof(*b) + b->cap
               ? b : ioq_lua_tobuffer(L, -1);
    if (r->b && (e->op == IOQ_OP_RECV || e->op == IOQ_OP_READ))
      r->b->len = r->res > 0 ? (size_t)r->res : 0;
  }
}

static int ioq_lua_is_read(uint16_t op) {
  return op == IOQ_OP_RECV || op == IOQ_OP_READ;
}

/* After the record's data was taken: a final completion frees what the operation held (a
 * caller's buffer is no longer busy; a spare buffer at index held goes back to the cache at
 * index spare). */
static void ioq_lua_release(lua_State *L, ioq_lua_state *s, int spare, int held,
                            const ioq_lua_rec *r) {
  if (!r->b || r->more)
    return;
  if (!r->b->spare) {
    if (r->b->busy > 0)
      r->b->busy--;
  } else if (ioq_lua_is_read(r->e->op)) {
    ioq_lua_spare_put(L, s, spare, held, r->b->cap);
  }
}

/* Pushes the completion table of record r, with room for exactly its fields. The keys are
 * on the stack from index keys on (in ioq_lua_keys order), the op names in the table at
 * index names; meta (0: none) becomes its metatable. token and held: the values that
 * ioq_lua_account pushed. */
static void ioq_lua_build(lua_State *L, const ioq_lua_rec *r, int token, int held, int keys,
                          int names, int meta) {
  const ioq_cqe *e = r->e;
  lua_Integer res = r->res;
  int has_token = !lua_isnil(L, token);
  int with_handle = 0, with_data = 0, nf, c;
  switch (e->op) {
  case IOQ_OP_ACCEPT: case IOQ_OP_CONNECT: case IOQ_OP_LOCAL_CONNECT: case IOQ_OP_OPEN:
    with_handle = res >= 0;
    break;
  case IOQ_OP_RECV: case IOQ_OP_READ:
    if (r->b)
      with_data = !r->b->spare || res >= 0;
    break;
  default:
    break;
  }
  nf = 6 + has_token + (e->value != 0) + (e->flags != 0) + (res < 0 ? 2 : 0) +
       with_handle + with_data;
  lua_createtable(L, 0, nf);
  c = lua_gettop(L);
#define IOQ_LUA_KEY(KEY) (lua_pushvalue(L, keys + IOQ_LUA_K_##KEY))
  IOQ_LUA_KEY(ID);
  lua_pushinteger(L, r->id);
  lua_rawset(L, c);
  if (has_token) {
    IOQ_LUA_KEY(TOKEN);
    lua_pushvalue(L, token);
    lua_rawset(L, c);
  }
  IOQ_LUA_KEY(OP);
  if (e->op < IOQ_LUA_NOPS)
    lua_rawgeti(L, names, IOQ_LUA_NKEYS + e->op + 1);
  else
    lua_pushinteger(L, (lua_Integer)e->op);
  lua_rawset(L, c);
  IOQ_LUA_KEY(OPCODE);
  lua_pushinteger(L, (lua_Integer)e->op);
  lua_rawset(L, c);
  IOQ_LUA_KEY(RESULT);
  lua_pushinteger(L, res);
  lua_rawset(L, c);
  IOQ_LUA_KEY(OK);
  lua_pushboolean(L, res >= 0);
  lua_rawset(L, c);
  IOQ_LUA_KEY(MORE);
  lua_pushboolean(L, r->more);
  lua_rawset(L, c);
  if (e->value != 0) {
    IOQ_LUA_KEY(VALUE);
    lua_pushinteger(L, (lua_Integer)e->value);
    lua_rawset(L, c);
  }
  if (e->flags != 0) {
    IOQ_LUA_KEY(FLAGS);
    lua_pushinteger(L, (lua_Integer)e->flags);
    lua_rawset(L, c);
  }
  if (res < 0) {
    IOQ_LUA_KEY(CODE);
    lua_pushinteger(L, res);
    lua_rawset(L, c);
    IOQ_LUA_KEY(ERR);
    lua_pushstring(L, ioq_strerror(res));
    lua_rawset(L, c);
  }
  if (with_handle) {
    IOQ_LUA_KEY(HANDLE);
    lua_pushinteger(L, (lua_Integer)e->value);
    lua_rawset(L, c);
  }
  if (with_data) {
    if (!r->b->spare) {
      IOQ_LUA_KEY(BUF);
      lua_pushvalue(L, held);
    } else {
      IOQ_LUA_KEY(DATA);
      lua_pushlstring(L, (const char *)ioq_lua_bytes(r->b), r->b->len);
    }
    lua_rawset(L, c);
  }
#undef IOQ_LUA_KEY
  if (meta) {
    lua_pushvalue(L, meta);
    lua_setmetatable(L, c);
  }
}

/* Pushes the keys of completion tables (from the names table at index names). */
static void ioq_lua_pushkeys(lua_State *L, int names) {
  int k;
  for (k = 0; k < IOQ_LUA_NKEYS; k++)
    lua_rawgeti(L, names, k + 1);
}

/* complete(cq, loop, fix, meta) -> list, nfix
 *
 * Turns the records of the last poll into ioq.lua's completion tables, in C because this
 * is the per-completion work of every program: one table per record, created with room
 * for exactly its fields, with meta as its metatable (it supplies value = 0 and flags = 0,
 * which are not stored). loop is ioq.lua's loop object (its tables: see ioq_lua_account).
 * Operations that ioq.lua finishes itself come back in fix: completion, description,
 * completion, description ...; nfix pairs. */
static int ioq_lua_complete(lua_State *L) {
  /* Stack: 1..4 the arguments, 5 tok, 6 pin, 7 spare, 8 state, 9 the names, then the keys,
   * the list, and per record the token, the held value and the completion. */
  enum { TOK = 5, PIN, SPARE, STATE, NAMES, KEYS, LIST = KEYS + IOQ_LUA_NKEYS, TOKEN, HELD,
         C };
  ioq_lua_cqes *cq = ioq_lua_tocqes(L, 1);
  uint32_t i, n = cq->n;
  lua_Integer nfix = 0;
  ioq_lua_state *s;
  int has_meta;
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  has_meta = lua_istable(L, 4);
  lua_settop(L, 4);
  luaL_checkstack(L, IOQ_LUA_NKEYS + 12, "ioq complete");
  lua_rawgeti(L, 2, IOQ_LUA_L_TOK);
  lua_rawgeti(L, 2, IOQ_LUA_L_PIN);
  lua_rawgeti(L, 2, IOQ_LUA_L_SPARE);
  lua_rawgeti(L, 2, IOQ_LUA_L_STATE);
  s = ioq_lua_tostate(L, STATE);
  luaL_checktype(L, TOK, LUA_TTABLE);
  luaL_checktype(L, PIN, LUA_TTABLE);
  luaL_checktype(L, SPARE, LUA_TTABLE);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &ioq_lua_names_key);
  ioq_lua_pushkeys(L, NAMES);
  lua_createtable(L, (int)n, 0);
  for (i = 0; i < n; i++) {
    ioq_lua_rec r;
    ioq_lua_account(L, s, TOK, PIN, &cq->cqe[i], &r); /* TOKEN, HELD */
    ioq_lua_build(L, &r, TOKEN, HELD, KEYS, NAMES, has_meta ? 4 : 0); /* C */
    if (r.ptype == LUA_TTABLE) {
      lua_pushvalue(L, C);
      lua_rawseti(L, 3, ++nfix);
      lua_pushvalue(L, HELD);
      lua_rawseti(L, 3, ++nfix);
    }
    ioq_lua_release(L, s, SPARE, HELD, &r);
    lua_rawseti(L, LIST, (lua_Integer)i + 1);
    lua_pop(L, 2);
  }
  lua_pushvalue(L, LIST);
  lua_pushinteger(L, nfix / 2);
  return 2;
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
  lua_rawsetp(L, LUA_REGISTRYINDEX, &ioq_lua_buffer_mt_key);
  {
    int i;
    lua_createtable(L, IOQ_LUA_NKEYS + IOQ_LUA_NOPS, 0);
    for (i = 0; i < IOQ_LUA_NKEYS; i++) {
      lua_pushstring(L, ioq_lua_keys[i]);
      lua_rawseti(L, -2, i + 1);
    }
    for (i = 0; i < IOQ_LUA_NOPS; i++) {
      lua_pushstring(L, ioq_lua_opnames[i]);
      lua_rawseti(L, -2, IOQ_LUA_NKEYS + i + 1);
    }
    lua_rawsetp(L, LUA_REGISTRYINDEX, &ioq_lua_names_key);
  }
  if (luaL_newmetatable(L, IOQ_LUA_STATE)) {
    lua_pushcfunction(L, ioq_lua_state_gc);
    lua_setfield(L, -2, "__gc");
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
%native(loop_unpinned) int ioq_lua_loop_unpinned(lua_State *L);
%native(spare_take) int ioq_lua_spare_take_l(lua_State *L);
%native(spare_put) int ioq_lua_spare_put_l(lua_State *L);
%native(unhold) int ioq_lua_unhold(lua_State *L);
%native(complete) int ioq_lua_complete(lua_State *L);

/* The raw pointer of a pool buffer is useless in Lua; buf_string copies it out. */
%ignore ioq_buf;

/* ---- integers ------------------------------------------------------------------------ */

%define IOQ_LUA_INT(TYPE, LO, HI)
%typemap(in, checkfn="lua_isnumber") TYPE {
  int isnum_ = 0;
  lua_Integer v_ = lua_tointegerx(L, $input, &isnum_);
  if (!isnum_) {
    SWIG_Lua_pushferrstring(L, "Error in $symname (arg %d), expected an integer, got %s",
                            $argnum, ioq_lua_numdesc(L, $input));
    SWIG_fail;
  }
  if (v_ < (lua_Integer)(LO) || v_ > (lua_Integer)(HI)) {
    SWIG_Lua_pushferrstring(L, "Error in $symname (arg %d), integer out of range %I..%I, "
                            "got %I", $argnum, (LUAI_UACINT)(LO), (LUAI_UACINT)(HI),
                            (LUAI_UACINT)v_);
    SWIG_fail;
  }
  $1 = ($1_ltype)v_;
}
%typemap(in, checkfn="lua_isnumber") const TYPE & ($*1_ltype temp) {
  int isnum_ = 0;
  lua_Integer v_ = lua_tointegerx(L, $input, &isnum_);
  if (!isnum_ || v_ < (lua_Integer)(LO) || v_ > (lua_Integer)(HI)) {
    SWIG_Lua_pushferrstring(L, "Error in $symname (arg %d), expected an integer in range "
                            "%I..%I, got %s", $argnum, (LUAI_UACINT)(LO), (LUAI_UACINT)(HI),
                            ioq_lua_numdesc(L, $input));
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

/* Addresses passed in: SWIG's own typemap numbers the argument by its C position, which is
 * not the Lua one after a (buffer, length) pair. nil stays NULL (ioq: IOQ_EINVAL). */
%typemap(in, checkfn="ioq_lua_any") const ioq_addr *addr, ioq_addr *addr_out {
  if (!SWIG_IsOK(SWIG_ConvertPtr(L, $input, (void **)&$1, $descriptor, 0))) {
    SWIG_Lua_pushferrstring(L, "Error in $symname (arg %d), expected 'ioq_addr' got '%s'",
                            $input, ioq_lua_typename(L, $input));
    SWIG_fail;
  }
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
  if (lua_isnoneornil(L, idx) ||
      !SWIG_IsOK(SWIG_ConvertPtr(L, idx, &p, SWIGTYPE_p_ioq_loop, 0)))
    luaL_typeerror(L, idx, "ioq_loop");
  return (ioq_loop *)p;
}
%}

%{
/* The loop of ioq.lua's raw field: nil (or a NULL pointer) once the loop is freed. */
static ioq_loop *ioq_lua_liveloop(lua_State *L, int idx) {
  void *p = NULL;
  swig_lua_userdata *u = (swig_lua_userdata *)lua_touserdata(L, idx);
  /* The common case without SWIG's check, which compares type names as strings. */
  if (u && !lua_islightuserdata(L, idx) && lua_rawlen(L, idx) == sizeof(*u) &&
      u->type == SWIGTYPE_p_ioq_loop)
    p = u->ptr;
  else if (!lua_isnil(L, idx) &&
           !SWIG_IsOK(SWIG_ConvertPtr(L, idx, &p, SWIGTYPE_p_ioq_loop, 0)))
    luaL_typeerror(L, idx, "ioq_loop");
  if (!p)
    luaL_error(L, "ioq loop used after free");
  return (ioq_loop *)p;
}

/* An accepted operation of ioq.lua: tok[slot] = token, pin[slot] = what it holds (each
 * only when there is one). */
static void ioq_lua_record(lua_State *L, lua_Integer id, int tok, int pin, int token,
                           int held) {
  lua_Integer slot = id & IOQ_LUA_SLOT_MASK;
  if (!lua_isnoneornil(L, token)) {
    lua_pushvalue(L, token);
    lua_rawseti(L, tok, slot);
  }
  if (!lua_isnoneornil(L, held)) {
    lua_pushvalue(L, held);
    lua_rawseti(L, pin, slot);
  }
}

/* ioq_send of the bytes at index data, recorded in ioq.lua's tables on success. */
static int ioq_lua_send_op(lua_State *L, ioq_loop *loop, lua_Integer h, int data,
                           lua_Integer id, int tok, int pin, int token) {
  size_t len = 0;
  const void *p = ioq_lua_srcbytes(L, data, &len);
  int rc;
  if (!p)
    luaL_typeerror(L, data, "string or " IOQ_LUA_BUFFER);
  rc = ioq_send(loop, (ioq_handle)h, p, len, (uint64_t)id);
  if (rc == 0) {
    ioq_lua_buffer *b = ioq_lua_tobuffer(L, data);
    if (b && !b->spare)
      b->busy++;
    ioq_lua_record(L, id, tok, pin, token, data);
  }
  return rc;
}

/* ioq_recv into the buffer at index what, or for a byte count into a spare buffer of the
 * cache (lists at index spare, counts in s), recorded as ioq_lua_send_op does. A count
 * out of range: IOQ_EINVAL. */
static int ioq_lua_recv_op(lua_State *L, ioq_loop *loop, ioq_lua_state *s, lua_Integer h,
                           int what, lua_Integer id, int tok, int pin, int token, int spare) {
  ioq_lua_buffer *b;
  int rc;
  if (lua_type(L, what) == LUA_TNUMBER) {
    lua_Integer n = ioq_lua_checkint(L, what, LUA_MININTEGER, LUA_MAXINTEGER, "byte count");
    int top;
    if (n < 1 || n > IOQ_MAX_LEN)
      return IOQ_EINVAL;
    b = ioq_lua_spare_take(L, s, spare, n);
    top = lua_gettop(L);
    rc = ioq_recv(loop, (ioq_handle)h, ioq_lua_bytes(b), b->cap, (uint64_t)id);
    if (rc == 0)
      ioq_lua_record(L, id, tok, pin, token, top);
    else
      ioq_lua_spare_put(L, s, spare, top, b->cap);
    lua_pop(L, 1);
    return rc;
  }
  if (!ioq_lua_tobuffer(L, what))
    return luaL_error(L, "receive target must be an ioq.buffer or a byte count");
  b = ioq_lua_dstbuffer(L, what);
  rc = ioq_recv(loop, (ioq_handle)h, ioq_lua_bytes(b), b->cap, (uint64_t)id);
  if (rc == 0) {
    b->busy++;
    ioq_lua_record(L, id, tok, pin, token, what);
  }
  return rc;
}

/* The results of a method that submitted operation id: id, or nil, message, code (the
 * id is free again then). */
static int ioq_lua_method_result(lua_State *L, ioq_lua_state *s, lua_Integer id, int rc) {
  if (rc == 0) {
    lua_pushinteger(L, id);
    return 1;
  }
  if (id)
    ioq_lua_id_free(s, ioq_lua_id_slot(s, id));
  if (rc == IOQ_EMISUSE)
    return luaL_error(L, "%s", ioq_strerror(rc));
  lua_pushnil(L);
  lua_pushstring(L, ioq_strerror(rc));
  lua_pushinteger(L, rc);
  return 3;
}

/* Loop:send(h, data [, token]) and Loop:recv(h, buf_or_n [, token]) of ioq.lua, in C:
 * they are the operations of every stream, and a Lua method around them would cost about
 * as much again as the submission. Stack: 1 self, 2 h, 3 data, 4 token, 5 raw, 6 tok,
 * 7 pin, 8 spare, 9 state. */
static ioq_lua_state *ioq_lua_method_args(lua_State *L, ioq_loop **loop, lua_Integer *id,
                                          lua_Integer *h) {
  ioq_lua_state *s;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 4);
  lua_rawgeti(L, 1, IOQ_LUA_L_RAW);
  lua_rawgeti(L, 1, IOQ_LUA_L_TOK);
  lua_rawgeti(L, 1, IOQ_LUA_L_PIN);
  lua_rawgeti(L, 1, IOQ_LUA_L_SPARE);
  lua_rawgeti(L, 1, IOQ_LUA_L_STATE);
  if (lua_type(L, 9) != LUA_TUSERDATA) /* a loop keeps its state after free too */
    luaL_typeerror(L, 1, "ioq loop");
  *loop = ioq_lua_liveloop(L, 5);
  *h = ioq_lua_checkint(L, 2, LUA_MININTEGER, LUA_MAXINTEGER, "handle");
  s = ioq_lua_tostate(L, 9);
  *id = 0;
  return s;
}

static int ioq_lua_loop_send(lua_State *L) {
  ioq_loop *loop;
  lua_Integer id, h;
  size_t n;
  ioq_lua_state *s = ioq_lua_method_args(L, &loop, &id, &h);
  int rc;
  /* Every error is raised before the id is taken. */
  if (!ioq_lua_srcbytes(L, 3, &n))
    return luaL_typeerror(L, 3, "string or " IOQ_LUA_BUFFER);
  id = ioq_lua_id_new(s);
  rc = id ? ioq_lua_send_op(L, loop, h, 3, id, 6, 7, 4) : IOQ_ENOMEM;
  return ioq_lua_method_result(L, s, id, rc);
}

static int ioq_lua_loop_recv(lua_State *L) {
  ioq_loop *loop;
  lua_Integer id, h;
  ioq_lua_state *s = ioq_lua_method_args(L, &loop, &id, &h);
  int rc;
  /* Every error is raised before the id is taken. */
  if (lua_type(L, 3) == LUA_TNUMBER)
    ioq_lua_checkint(L, 3, LUA_MININTEGER, LUA_MAXINTEGER, "byte count");
  else if (!ioq_lua_tobuffer(L, 3))
    return luaL_error(L, "receive target must be an ioq.buffer or a byte count");
  else
    ioq_lua_dstbuffer(L, 3);
  luaL_checktype(L, 8, LUA_TTABLE);
  id = ioq_lua_id_new(s);
  rc = id ? ioq_lua_recv_op(L, loop, s, h, 3, id, 6, 7, 4, 8) : IOQ_ENOMEM;
  return ioq_lua_method_result(L, s, id, rc);
}
/* ---- coroutine support of ioq.co ------------------------------------------------------
 *
 * ioq.co runs coroutines on one loop. Its two hot paths are here: the dispatch of a poll's
 * records to the coroutines that wait for them (co_dispatch), and the receive and send
 * of streams (the methods made by co_methods), which submit, note the waiting coroutine
 * and yield in one C call. Per completion that saves the completion table, the Lua loop
 * over the records and the Lua frames of the methods.
 *
 * A coroutine waits for an operation with waiting[id] = the coroutine; it is resumed with
 * result, x, id where x is the received string (recv and read into a spare buffer; nil
 * on error), else the completion's value (a new handle for accept, connect, open). The
 * other kinds of waiter: a stream table (a send that nobody waits for: see below), and a
 * function (ioq.co's own, called from Lua with result, x, id). Records that ioq.lua must
 * finish (their pin is a table) go back to Lua as completion tables. */

/* Slots of an ioq.co stream table (its array part), shared with co.lua. */
enum {
  IOQ_CO_H = 1,   /* handle, or false once closed */
  IOQ_CO_LOOP,    /* the ioq.lua loop object */
  IOQ_CO_SCHED,   /* the scheduler: [1] waiting (id -> waiter), [2] parked (co -> stream) */
  IOQ_CO_WB,      /* bytes of sends in flight that no coroutine waits for */
  IOQ_CO_WN,      /* number of those sends */
  IOQ_CO_WERR,    /* IOQ_E* code of the first of them that failed, or false */
  IOQ_CO_PARKED,  /* coroutine waiting until WB <= PARK_AT (PARK_AT < 0: WN == 0), or false */
  IOQ_CO_PARK_AT,
  IOQ_CO_RBUF,    /* received bytes that were not read yet (a string), or false */
  IOQ_CO_TIMEOUT, /* seconds, or false */
  IOQ_CO_WLIMIT,  /* bytes of sends in flight before a send waits */
  IOQ_CO_RPOS,    /* where the unread bytes of RBUF start (co.lua's) */
  IOQ_CO_SEEN,    /* the coroutine that passed ioq_co_check last, or false */
  IOQ_CO_WAITING  /* the scheduler's waiting table */
};

/* Outcome of resuming a coroutine that did not yield ioq.co's WAIT (it finished, failed,
 * or yielded to give the others a turn): events gets co, ok, value, false for Lua. */
static void ioq_co_event(lua_State *L, int events, lua_Integer *nev, int a, int b, int c,
                         int d) {
  lua_pushvalue(L, a);
  lua_rawseti(L, events, ++*nev);
  lua_pushvalue(L, b);
  lua_rawseti(L, events, ++*nev);
  lua_pushvalue(L, c);
  lua_rawseti(L, events, ++*nev);
  lua_pushvalue(L, d);
  lua_rawseti(L, events, ++*nev);
}

/* Resumes the coroutine th (at index thi of L) with its nargs pushed arguments. */
static void ioq_co_resume(lua_State *L, int thi, lua_State *th, int nargs, int waitv,
                          int events, lua_Integer *nev) {
  int nres = 0, status, top;
  status = lua_resume(th, L, nargs, &nres);
  if (status == LUA_YIELD && nres == 1 &&
      lua_topointer(th, -1) == lua_topointer(L, waitv)) {
    lua_pop(th, 1);
    return;
  }
  top = lua_gettop(L);
  if (status == LUA_YIELD || status == LUA_OK) {
    lua_pushboolean(L, 1);
    if (nres > 0) {
      lua_pushvalue(th, -nres);
      lua_xmove(th, L, 1);
    } else {
      lua_pushnil(L);
    }
    lua_pop(th, nres);
  } else {
    lua_pushboolean(L, 0);
    lua_xmove(th, L, 1); /* the error object; the coroutine keeps its frames */
  }
  lua_pushboolean(L, 0);
  ioq_co_event(L, events, nev, thi, top + 1, top + 2, top + 3);
  lua_settop(L, top);
}

/* The byte length of a value an operation sent: a string or an ioq.buffer. */
static lua_Integer ioq_co_sentlen(lua_State *L, int idx) {
  ioq_lua_buffer *b;
  if (lua_type(L, idx) == LUA_TSTRING)
    return (lua_Integer)lua_rawlen(L, idx);
  b = ioq_lua_tobuffer(L, idx);
  return b ? (lua_Integer)b->len : 0;
}

static lua_Integer ioq_co_geti(lua_State *L, int t, lua_Integer k) {
  lua_Integer v;
  lua_rawgeti(L, t, k);
  v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* A send that nobody waits for has completed: account for it in its stream (index w),
 * keep its error, and wake the coroutine parked on the stream when its condition holds. */
static void ioq_co_sent(lua_State *L, int w, int held, lua_Integer res, int waitv,
                        int events, lua_Integer *nev) {
  lua_Integer wb = ioq_co_geti(L, w, IOQ_CO_WB) - ioq_co_sentlen(L, held);
  lua_Integer wn = ioq_co_geti(L, w, IOQ_CO_WN) - 1;
  if (wn <= 0)
    wn = wb = 0;
  if (wb < 0)
    wb = 0;
  ioq_lua_seti(L, w, IOQ_CO_WB, wb);
  ioq_lua_seti(L, w, IOQ_CO_WN, wn);
  if (res < 0) {
    if (lua_rawgeti(L, w, IOQ_CO_WERR) != LUA_TNUMBER)
      ioq_lua_seti(L, w, IOQ_CO_WERR, res);
    lua_pop(L, 1);
  }
  if (lua_rawgeti(L, w, IOQ_CO_PARKED) == LUA_TTHREAD) {
    lua_Integer at = ioq_co_geti(L, w, IOQ_CO_PARK_AT);
    if (res < 0 || (at >= 0 ? wb <= at : wn == 0)) {
      int thi = lua_gettop(L);
      lua_pushboolean(L, 0);
      lua_rawseti(L, w, IOQ_CO_PARKED);
      lua_rawgeti(L, w, IOQ_CO_SCHED);
      lua_rawgeti(L, -1, 2);
      lua_pushvalue(L, thi);
      lua_pushnil(L);
      lua_rawset(L, -3);
      lua_pop(L, 2);
      ioq_co_resume(L, thi, lua_tothread(L, thi), 0, waitv, events, nev);
    }
  }
  lua_pop(L, 1);
}

/* co_dispatch(cq, loop, fix, meta, waiting, events, WAIT, timeout_ns) -> n, nfix, nev
 *
 * One poll of the loop into cq (n: its result, an IOQ_E* code when negative), and its
 * records after ioq.lua's bookkeeping (as complete() does it):
 * each final completion resumes the coroutine that waits for it (waiting is keyed by the
 * slot of the operation's id, as tok and pin are). What Lua must do after is in events,
 * four values per entry: co, ok, value, false after a coroutine that finished, failed or
 * yielded something else than WAIT (as coroutine.resume returned it); fn, result, x, id
 * for a waiter that is a function. Completions of operations that ioq.lua finishes come
 * back in fix as completion, description, waiter (taken out of waiting; nil for none). */
static int ioq_lua_co_dispatch(lua_State *L) {
  enum { CQ = 1, LOOPT, FIX, META, WAITING, EVENTS, WAITV, NS, TOK, PIN, SPARE, STATE,
         NAMES, KEYS, TOKEN = KEYS + IOQ_LUA_NKEYS, HELD, W };
  ioq_lua_cqes *cq = ioq_lua_tocqes(L, CQ);
  lua_Integer ns = luaL_checkinteger(L, NS);
  uint32_t i, n;
  lua_Integer nfix = 0, nev = 0;
  ioq_lua_state *s;
  int rc;
  luaL_checktype(L, LOOPT, LUA_TTABLE);
  luaL_checktype(L, FIX, LUA_TTABLE);
  luaL_checktype(L, WAITING, LUA_TTABLE);
  luaL_checktype(L, EVENTS, LUA_TTABLE);
  lua_settop(L, NS);
  luaL_checkstack(L, IOQ_LUA_NKEYS + 20, "ioq co_dispatch");
  lua_rawgeti(L, LOOPT, IOQ_LUA_L_TOK);
  lua_rawgeti(L, LOOPT, IOQ_LUA_L_PIN);
  lua_rawgeti(L, LOOPT, IOQ_LUA_L_SPARE);
  lua_rawgeti(L, LOOPT, IOQ_LUA_L_STATE);
  s = ioq_lua_tostate(L, STATE);
  if (!s->loop)
    return luaL_error(L, "ioq loop used after free");
  cq->n = 0;
  rc = ioq_poll(s->loop, cq->cqe, cq->max, (int64_t)ns);
  if (rc <= 0) {
    lua_pushinteger(L, rc);
    lua_pushinteger(L, 0);
    lua_pushinteger(L, 0);
    return 3;
  }
  n = cq->n = (uint32_t)rc;
  luaL_checktype(L, TOK, LUA_TTABLE);
  luaL_checktype(L, PIN, LUA_TTABLE);
  luaL_checktype(L, SPARE, LUA_TTABLE);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &ioq_lua_names_key);
  ioq_lua_pushkeys(L, NAMES);
  for (i = 0; i < n; i++) {
    ioq_lua_rec r;
    const ioq_cqe *e = &cq->cqe[i];
    int wt;
    ioq_lua_account(L, s, TOK, PIN, e, &r); /* TOKEN, HELD */
    if (r.ptype == LUA_TTABLE) {
      /* The waiter leaves waiting now: the slot may serve a new operation before Lua
       * gets to this completion. */
      ioq_lua_build(L, &r, TOKEN, HELD, KEYS, NAMES, lua_istable(L, META) ? META : 0);
      lua_rawseti(L, FIX, ++nfix);
      lua_pushvalue(L, HELD);
      lua_rawseti(L, FIX, ++nfix);
      if (!r.more && lua_rawgeti(L, WAITING, r.slot) != LUA_TNIL) {
        lua_pushnil(L);
        lua_rawseti(L, WAITING, r.slot);
      }
      lua_rawseti(L, FIX, ++nfix);
      lua_settop(L, TOKEN - 1);
      continue;
    }
    wt = (r.more || !r.slot) ? LUA_TNONE : lua_rawgeti(L, WAITING, r.slot); /* W */
    if (wt == LUA_TNONE || wt == LUA_TNIL) {
      ioq_lua_release(L, s, SPARE, HELD, &r);
    } else if (wt == LUA_TTHREAD) {
      lua_State *th = lua_tothread(L, W);
      lua_pushnil(L);
      lua_rawseti(L, WAITING, r.slot);
      if (!lua_checkstack(th, 4))
        return luaL_error(L, "ioq co_dispatch: coroutine stack overflow");
      lua_pushinteger(th, r.res);
      if (r.b && r.b->spare && ioq_lua_is_read(e->op)) {
        if (r.res >= 0)
          lua_pushlstring(th, (const char *)ioq_lua_bytes(r.b), r.b->len);
        else
          lua_pushnil(th);
      } else {
        lua_pushinteger(th, (lua_Integer)e->value);
      }
      lua_pushinteger(th, r.id);
      ioq_lua_release(L, s, SPARE, HELD, &r);
      ioq_co_resume(L, W, th, 3, WAITV, EVENTS, &nev);
    } else if (wt == LUA_TTABLE) {
      lua_pushnil(L);
      lua_rawseti(L, WAITING, r.slot);
      ioq_co_sent(L, W, HELD, r.res, WAITV, EVENTS, &nev);
      ioq_lua_release(L, s, SPARE, HELD, &r);
    } else {
      int top = lua_gettop(L);
      lua_pushnil(L);
      lua_rawseti(L, WAITING, r.slot);
      lua_pushinteger(L, r.res);
      if (r.b && r.b->spare && ioq_lua_is_read(e->op) && r.res >= 0)
        lua_pushlstring(L, (const char *)ioq_lua_bytes(r.b), r.b->len);
      else
        lua_pushinteger(L, (lua_Integer)e->value);
      lua_pushinteger(L, r.id);
      ioq_co_event(L, EVENTS, &nev, W, top + 1, top + 2, top + 3);
      ioq_lua_release(L, s, SPARE, HELD, &r);
    }
    lua_settop(L, TOKEN - 1);
  }
  lua_pushinteger(L, (lua_Integer)n);
  lua_pushinteger(L, nfix / 3);
  lua_pushinteger(L, nev / 4);
  return 3;
}

/* Upvalues of the stream methods that co_methods makes. */
enum { IOQ_CO_UP_OWNER = 1, IOQ_CO_UP_WAIT, IOQ_CO_UP_SLOW_RECV, IOQ_CO_UP_SLOW_SEND,
       IOQ_CO_UP_INTERRUPTED };

/* The handle of stream self, after checking that the running coroutine belongs to the
 * stream's scheduler (else waiting would never end). */
static lua_Integer ioq_co_check(lua_State *L, int self) {
  lua_Integer h;
  int same;
  luaL_checktype(L, self, LUA_TTABLE);
  if (lua_rawgeti(L, self, IOQ_CO_H) != LUA_TNUMBER)
    luaL_error(L, "ioq.co: object used after close");
  h = lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (lua_pushthread(L))
    luaL_error(L, "ioq.co: this call waits; make it inside a coroutine started by spawn");
  /* A coroutine never changes its scheduler: the one that passed last passes again. */
  lua_rawgeti(L, self, IOQ_CO_SEEN);
  same = lua_rawequal(L, -1, -2);
  lua_pop(L, 1);
  if (same) {
    lua_pop(L, 1);
    return h;
  }
  lua_pushvalue(L, -1);
  lua_rawget(L, lua_upvalueindex(IOQ_CO_UP_OWNER));
  lua_rawgeti(L, self, IOQ_CO_SCHED);
  same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  if (!same)
    luaL_error(L, "ioq.co: this call waits; make it inside a coroutine of the stream's "
                  "scheduler");
  lua_rawseti(L, self, IOQ_CO_SEEN);
  return h;
}

/* A slot that is set (not nil, not false). */
static int ioq_co_slot(lua_State *L, int t, lua_Integer k) {
  int set;
  lua_rawgeti(L, t, k);
  set = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return set;
}

static int ioq_co_passk(lua_State *L, int status, lua_KContext base) {
  (void)status;
  return lua_gettop(L) - (int)base;
}

/* Calls the Lua function of upvalue up with the arguments 1..nargs and returns what it
 * returns (it may yield). */
static int ioq_co_slow(lua_State *L, int up, int nargs) {
  int i;
  lua_settop(L, nargs);
  lua_pushvalue(L, lua_upvalueindex(up));
  for (i = 1; i <= nargs; i++)
    lua_pushvalue(L, i);
  lua_callk(L, nargs, LUA_MULTRET, nargs, ioq_co_passk);
  return ioq_co_passk(L, LUA_OK, nargs);
}

/* The loop of stream self and the id of its next operation (0: none left): pushes loop,
 * pin, spare, state and a nil (no token; it also stands for tok, which ioq_lua_record
 * never reads without a token) from index base + 1 on. */
static ioq_loop *ioq_co_loop(lua_State *L, int self, int base, ioq_lua_state **s,
                             lua_Integer *id) {
  lua_rawgeti(L, self, IOQ_CO_LOOP);        /* base+1 loop */
  lua_rawgeti(L, base + 1, IOQ_LUA_L_PIN);   /* base+2 pin */
  lua_rawgeti(L, base + 1, IOQ_LUA_L_SPARE); /* base+3 spare */
  lua_rawgeti(L, base + 1, IOQ_LUA_L_STATE); /* base+4 state */
  lua_pushnil(L);                           /* base+5 token */
  *s = ioq_lua_tostate(L, base + 4);
  if (!(*s)->loop)
    luaL_error(L, "ioq loop used after free");
  *id = ioq_lua_id_new(*s);
  return (*s)->loop;
}

/* waiting[slot of id] = the value at index v (the scheduler of stream self). */
static void ioq_co_wait_for(lua_State *L, int self, lua_Integer id, int v) {
  lua_rawgeti(L, self, IOQ_CO_WAITING);
  lua_pushvalue(L, v);
  lua_rawseti(L, -2, id & IOQ_LUA_SLOT_MASK);
  lua_pop(L, 1);
}

/* The coroutine was interrupted (a fourth resume value): the Lua function of ioq.co keeps
 * what the operation got (received bytes go back to the stream) and raises. */
static int ioq_co_interrupted(lua_State *L, const char *op, int res, int x) {
  lua_pushvalue(L, lua_upvalueindex(IOQ_CO_UP_INTERRUPTED));
  lua_pushvalue(L, 1);
  lua_pushstring(L, op);
  lua_pushvalue(L, res);
  lua_pushvalue(L, x);
  lua_call(L, 4, 0);
  return luaL_error(L, "ioq.co: interrupted"); /* not reached: the function raises */
}

static int ioq_co_fail(lua_State *L, lua_Integer code, int with_bytes) {
  lua_pushnil(L);
  lua_pushstring(L, ioq_strerror(code));
  lua_pushinteger(L, code);
  if (with_bytes)
    lua_pushinteger(L, 0);
  return with_bytes ? 4 : 3;
}

/* After a receive: stack 1 self, 2 n, then result, x, id [, interrupted]. */
static int ioq_co_recv_k(lua_State *L, int status, lua_KContext ctx) {
  lua_Integer res;
  (void)status;
  (void)ctx;
  if (lua_gettop(L) >= 6 && lua_toboolean(L, 6))
    return ioq_co_interrupted(L, "recv", 3, 4);
  res = lua_tointeger(L, 3);
  if (res >= 0) {
    lua_settop(L, 4);
    return 1;
  }
  return ioq_co_fail(L, res, 0);
}

/* stream:recv([n]) -> 1..n bytes as a string, "" at the end of the stream; or nil,
 * message, code. Buffered bytes and timeouts take the Lua path. */
static int ioq_co_recv(lua_State *L) {
  lua_Integer h, n = 4096, id;
  ioq_lua_state *s;
  ioq_loop *loop;
  int rc;
  h = ioq_co_check(L, 1);
  if (!lua_isnoneornil(L, 2))
    n = ioq_lua_checkint(L, 2, LUA_MININTEGER, LUA_MAXINTEGER, "byte count");
  if (ioq_co_slot(L, 1, IOQ_CO_RBUF) || ioq_co_slot(L, 1, IOQ_CO_TIMEOUT))
    return ioq_co_slow(L, IOQ_CO_UP_SLOW_RECV, 2);
  lua_settop(L, 2);
  loop = ioq_co_loop(L, 1, 2, &s, &id); /* 3 loop, 4 pin, 5 spare, 6 state, 7 token */
  lua_pushinteger(L, n);                /* 8 */
  rc = id ? ioq_lua_recv_op(L, loop, s, h, 8, id, 7, 4, 7, 5) : IOQ_ENOMEM;
  if (rc != 0) {
    if (id)
      ioq_lua_id_free(s, ioq_lua_id_slot(s, id));
    if (rc == IOQ_EMISUSE)
      return luaL_error(L, "%s", ioq_strerror(rc));
    return ioq_co_fail(L, rc, 0);
  }
  lua_pushthread(L);
  ioq_co_wait_for(L, 1, id, lua_gettop(L));
  lua_settop(L, 2);
  lua_pushvalue(L, lua_upvalueindex(IOQ_CO_UP_WAIT));
  return lua_yieldk(L, 1, 0, ioq_co_recv_k);
}

/* After a send that waited for room: stack 1 self, 2 data, 3 its length [, the resume
 * values of an interruption]. */
static int ioq_co_send_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  if (lua_gettop(L) >= 7 && lua_toboolean(L, 7))
    return ioq_co_interrupted(L, "send", 4, 5);
  if (lua_rawgeti(L, 1, IOQ_CO_WERR) == LUA_TNUMBER)
    return ioq_co_fail(L, lua_tointeger(L, -1), 1);
  lua_settop(L, 3);
  return 1;
}

/* stream:send(data) -> #data once ioq holds the data: the send goes on while the coroutine
 * does; sends go out in order. Past the stream's limit of bytes in flight the call waits
 * for room. Failures of sends in flight are returned by the next send (and flush, close).
 * With a timeout the Lua path waits for the send itself. */
static int ioq_co_send(lua_State *L) {
  lua_Integer h, id, wb, len;
  size_t n = 0;
  ioq_lua_state *s;
  ioq_loop *loop;
  int rc;
  h = ioq_co_check(L, 1);
  if (!ioq_lua_srcbytes(L, 2, &n))
    return luaL_typeerror(L, 2, "string or " IOQ_LUA_BUFFER);
  lua_settop(L, 2);
  if (lua_rawgeti(L, 1, IOQ_CO_WERR) == LUA_TNUMBER)
    return ioq_co_fail(L, lua_tointeger(L, -1), 1);
  lua_pop(L, 1);
  if (ioq_co_slot(L, 1, IOQ_CO_TIMEOUT))
    return ioq_co_slow(L, IOQ_CO_UP_SLOW_SEND, 2);
  len = (lua_Integer)n;
  loop = ioq_co_loop(L, 1, 2, &s, &id); /* 3 loop, 4 pin, 5 spare, 6 state, 7 token */
  rc = id ? ioq_lua_send_op(L, loop, h, 2, id, 7, 4, 7) : IOQ_ENOMEM;
  if (rc != 0) {
    if (id)
      ioq_lua_id_free(s, ioq_lua_id_slot(s, id));
    if (rc == IOQ_EMISUSE)
      return luaL_error(L, "%s", ioq_strerror(rc));
    return ioq_co_fail(L, rc, 1);
  }
  ioq_co_wait_for(L, 1, id, 1);
  wb = ioq_co_geti(L, 1, IOQ_CO_WB) + len;
  ioq_lua_seti(L, 1, IOQ_CO_WB, wb);
  ioq_lua_seti(L, 1, IOQ_CO_WN, ioq_co_geti(L, 1, IOQ_CO_WN) + 1);
  lua_settop(L, 2);
  lua_pushinteger(L, len); /* 3 */
  if (wb > ioq_co_geti(L, 1, IOQ_CO_WLIMIT)) {
    /* Park until the bytes in flight are back under the limit. */
    lua_pushthread(L);
    lua_rawseti(L, 1, IOQ_CO_PARKED);
    ioq_lua_seti(L, 1, IOQ_CO_PARK_AT, ioq_co_geti(L, 1, IOQ_CO_WLIMIT));
    lua_rawgeti(L, 1, IOQ_CO_SCHED);
    lua_rawgeti(L, -1, 2);
    lua_pushthread(L);
    lua_pushvalue(L, 1);
    lua_rawset(L, -3);
    lua_settop(L, 3);
    lua_pushvalue(L, lua_upvalueindex(IOQ_CO_UP_WAIT));
    return lua_yieldk(L, 1, 0, ioq_co_send_k);
  }
  return 1;
}

/* co_methods(owner, WAIT, slow_recv, slow_send, interrupted) -> recv, send: the stream
 * methods above as closures over ioq.co's tables and Lua paths. */
static int ioq_lua_co_methods(lua_State *L) {
  int i;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkany(L, 2);
  for (i = 3; i <= 5; i++)
    luaL_checktype(L, i, LUA_TFUNCTION);
  lua_settop(L, 5);
  for (i = 1; i <= 5; i++)
    lua_pushvalue(L, i);
  lua_pushcclosure(L, ioq_co_recv, 5);
  for (i = 1; i <= 5; i++)
    lua_pushvalue(L, i);
  lua_pushcclosure(L, ioq_co_send, 5);
  return 2;
}

%}

%native(loop_send) int ioq_lua_loop_send(lua_State *L);
%native(loop_recv) int ioq_lua_loop_recv(lua_State *L);
%native(co_dispatch) int ioq_lua_co_dispatch(lua_State *L);
%native(co_methods) int ioq_lua_co_methods(lua_State *L);
%native(state_new) int ioq_lua_state_new(lua_State *L);
%native(state_pending) int ioq_lua_state_pending(lua_State *L);
%native(state_reset) int ioq_lua_state_reset(lua_State *L);
%native(spare_inflight) int ioq_lua_spare_inflight(lua_State *L);
%native(state_window) int ioq_lua_state_window(lua_State *L);
%native(id_new) int ioq_lua_id_new_l(lua_State *L);
%native(id_free) int ioq_lua_id_free_l(lua_State *L);
%native(id_of) int ioq_lua_id_of(lua_State *L);

/* ---- pinning and unpinning ----------------------------------------------------------- */

%define IOQ_LUA_PINNED(FN, OP, A, B, TOKEN)
%exception FN {
  $action
  if (result == 0)
    ioq_lua_pin(L, arg1, OP, TOKEN, A, B);
}
%enddef

/* The op, the Lua argument positions of the pinned values, the C argument of the token. */
IOQ_LUA_PINNED(ioq_recv, IOQ_OP_RECV, 3, 0, arg5)
IOQ_LUA_PINNED(ioq_send, IOQ_OP_SEND, 3, 0, arg5)
IOQ_LUA_PINNED(ioq_sendv, IOQ_OP_SENDV, 3, 0, arg5)
IOQ_LUA_PINNED(ioq_sendto, IOQ_OP_SENDTO, 3, 0, arg6)
IOQ_LUA_PINNED(ioq_recvfrom, IOQ_OP_RECVFROM, 3, 4, arg6)
IOQ_LUA_PINNED(ioq_read, IOQ_OP_READ, 3, 0, arg6)
IOQ_LUA_PINNED(ioq_write, IOQ_OP_WRITE, 3, 0, arg6)
IOQ_LUA_PINNED(ioq_resolve, IOQ_OP_RESOLVE, 5, 0, arg7)

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

/* ---- since 1.1: pipes, terminals, child processes ------------------------------------- */

/* pipe(loop, flags) -> rc, read_end, write_end */
%typemap(in, numinputs=0) ioq_handle out[2] (ioq_handle temp[2]) {
  temp[0] = temp[1] = 0;
  $1 = temp;
}
%typemap(argout) ioq_handle out[2] {
  lua_pushinteger(L, (lua_Integer)$1[0]);
  lua_pushinteger(L, (lua_Integer)$1[1]);
  SWIG_arg += 2;
}

/* spawn(loop, opts) -> rc, process, stdin, stdout, stderr (0 for a stream not a PIPE), with
 * opts a table {file = str, argv = {str...}, env = {str...} or nil, cwd = str or nil,
 * flags = int, stdio = {{mode, value}, {mode, value}, {mode, value}}}. The strings stay the
 * table's for the call. */
%typemap(in, checkfn="lua_istable") const ioq_process_options *opts (ioq_lua_spawn temp) {
  memset(&temp, 0, sizeof temp);
  if (ioq_lua_spawn_opts(L, $input, &temp) != 0) {
    ioq_lua_spawn_free(&temp);
    SWIG_fail;
  }
  $1 = &temp.o;
}
/* Zeroed before any argument is checked: a wrong first argument jumps to the cleanup,
 * which frees what temp holds. */
%typemap(arginit) const ioq_process_options *opts {
  memset(&temp$argnum, 0, sizeof temp$argnum);
}
%typemap(freearg) const ioq_process_options *opts {
  ioq_lua_spawn_free(&temp$argnum);
}
%typemap(in, numinputs=0) ioq_handle *process (ioq_handle temp) {
  temp = 0;
  $1 = &temp;
}
%typemap(argout) ioq_handle *process {
  lua_pushinteger(L, (lua_Integer)*$1);
  SWIG_arg++;
}
%typemap(in, numinputs=0) ioq_handle pipes[3] (ioq_handle temp[3]) {
  temp[0] = temp[1] = temp[2] = 0;
  $1 = temp;
}
%typemap(argout) ioq_handle pipes[3] {
  for (int i_ = 0; i_ < 3; i_++)
    lua_pushinteger(L, (lua_Integer)$1[i_]);
  SWIG_arg += 3;
}
/* process_pid(loop, p) -> rc, pid; tty_get_size(loop, t) -> rc, cols, rows */
%typemap(in, numinputs=0) int64_t *pid (int64_t temp) {
  temp = 0;
  $1 = &temp;
}
%typemap(argout) int64_t *pid {
  lua_pushinteger(L, (lua_Integer)*$1);
  SWIG_arg++;
}
%typemap(in, numinputs=0) uint32_t *cols (uint32_t temp), uint32_t *rows (uint32_t temp) {
  temp = 0;
  $1 = &temp;
}
%typemap(argout) uint32_t *cols, uint32_t *rows {
  lua_pushinteger(L, (lua_Integer)*$1);
  SWIG_arg++;
}
%ignore ioq_process_options;
%ignore ioq_stdio;

%{
typedef struct {
  ioq_process_options o;
  const char **argv, **env;
} ioq_lua_spawn;

static void ioq_lua_spawn_free(ioq_lua_spawn *s)
{
  free(s->argv);
  free(s->env);
  s->argv = s->env = NULL;
}

/* The sequence of strings at field `name` of table t as a NULL-terminated array. */
static int ioq_lua_strv(lua_State *L, int t, const char *name, const char ***out, int required)
{
  lua_Integer n, i;
  lua_getfield(L, t, name);
  if (lua_isnil(L, -1) && !required) {
    lua_pop(L, 1);
    return 0;
  }
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    SWIG_Lua_pushferrstring(L, "spawn option '%s' must be a table of strings", name);
    return -1;
  }
  n = (lua_Integer)lua_rawlen(L, -1);
  if (!(*out = (const char **)calloc((size_t)n + 1, sizeof **out))) {
    lua_pop(L, 1);
    SWIG_Lua_pushferrstring(L, "out of memory");
    return -1;
  }
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    if (lua_type(L, -1) != LUA_TSTRING) {
      lua_pop(L, 2);
      SWIG_Lua_pushferrstring(L, "spawn option '%s'[%d] is not a string", name, (int)i);
      return -1;
    }
    (*out)[i - 1] = lua_tostring(L, -1); /* kept alive by the table */
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 0;
}

static int ioq_lua_spawn_opts(lua_State *L, int t, ioq_lua_spawn *s)
{
  s->o.size = sizeof s->o;
  lua_getfield(L, t, "file");
  if (lua_type(L, -1) != LUA_TSTRING) {
    lua_pop(L, 1);
    SWIG_Lua_pushferrstring(L, "spawn option 'file' (a string) is required");
    return -1;
  }
  s->o.file = lua_tostring(L, -1);
  lua_pop(L, 1);
  if (ioq_lua_strv(L, t, "argv", &s->argv, 1) != 0 || ioq_lua_strv(L, t, "env", &s->env, 0) != 0)
    return -1;
  s->o.argv = s->argv;
  s->o.env = s->env;
  lua_getfield(L, t, "cwd");
  if (lua_type(L, -1) == LUA_TSTRING)
    s->o.cwd = lua_tostring(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, t, "flags");
  s->o.flags = (uint32_t)lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, t, "stdio");
  if (lua_istable(L, -1)) {
    for (int i = 0; i < 3; i++) {
      lua_rawgeti(L, -1, i + 1);
      if (lua_istable(L, -1)) {
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        s->o.stdio[i].mode = (uint32_t)lua_tointeger(L, -2);
        s->o.stdio[i].value = (uint64_t)lua_tointeger(L, -1);
        lua_pop(L, 2);
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return 0;
}
%}
