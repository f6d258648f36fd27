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
 *    has completed, which is never too early. The ioq module keeps these values in its
 *    own table of operations and says so (loop_unpinned): its loops are not pinned twice.
 *  - ioq.lua's hot paths are C functions here (loop_recv and loop_send, which are its
 *    Loop:recv and Loop:send, and complete), because a VM instruction costs far more than
 *    a C statement: every completion table is built by complete(), every byte-count
 *    receive takes its buffer from the loop's cache in C.
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
  int spare;        /* a receive buffer of ioq.lua's cache, never seen by its callers */
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

/* Registry key of the table {loop lightuserdata -> {token -> {[0] = count, values...}}}.
 * A loop whose entry is false keeps its values itself (ioq.lua does: loop_unpinned). */
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
  if (!lua_istable(L, -1)) {
    /* The caller keeps the values referenced (loop_unpinned): only mark the buffers. */
    lua_pop(L, 1);
    for (i = 0; i < 2; i++) {
      ioq_lua_buffer *buf = idx[i] ? ioq_lua_tobuffer(L, idx[i]) : NULL;
      if (buf && !buf->spare)
        buf->busy++;
    }
    return;
  }
  if (lua_rawgeti(L, -1, (lua_Integer)token) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_createtable(L, 2, 0);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, (lua_Integer)token);
  }
  /* Slot 0 counts the operations of the token; the values follow from slot 1. */
  lua_rawgeti(L, -1, 0);
  n = lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_pushinteger(L, n + 1);
  lua_rawseti(L, -2, 0);
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
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  for (i = 0; i < n; i++) {
    lua_Integer left;
    if (!ioq_lua_op_pins(cqe[i].op) || (cqe[i].flags & IOQ_CQE_MORE))
      continue;
    if (lua_rawgeti(L, -1, (lua_Integer)cqe[i].token) == LUA_TNIL) {
      lua_pop(L, 1);
      continue;
    }
    lua_rawgeti(L, -1, 0);
    left = lua_tointeger(L, -1) - 1;
    lua_pop(L, 1);
    if (left > 0) {
      lua_pushinteger(L, left);
      lua_rawseti(L, -2, 0);
      lua_pop(L, 1);
      continue;
    }
    ioq_lua_release_entry(L);
    lua_pushnil(L);
    lua_rawseti(L, -2, (lua_Integer)cqe[i].token);
  }
  lua_pop(L, 1);
}

/* After ioq_loop_free nothing refers to caller memory: drop the loop's pins. */
static void ioq_lua_unpin_all(lua_State *L, const void *loop) {
  ioq_lua_pintable(L, loop, 0);
  if (lua_istable(L, -1)) {
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
  if (lua_istable(L, -1)) {
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

/* ---- support of the ioq module (ioq.lua) -------------------------------------------- */

/* loop_unpinned(loop): from now on the caller keeps every value of the loop's accepted
 * operations referenced until their final completions, as ioq.lua does in its own table of
 * operations; a second registry pin per operation would only cost time. Buffers are still
 * marked busy while an operation holds them (a spare buffer never is: nobody else sees it).
 */
static int ioq_lua_loop_unpinned(lua_State *L) {
  ioq_loop *loop = ioq_lua_checkloop(L, 1);
  ioq_lua_unpin_all(L, loop);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &ioq_lua_pins_key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &ioq_lua_pins_key);
  }
  lua_pushboolean(L, 0);
  lua_rawsetp(L, -2, loop);
  lua_pop(L, 1);
  return 0;
}

/* ioq.lua's cache of receive buffers, a table: cap -> list of idle buffers; [0] buffers in
 * flight, [-1] the most in flight in this window, [-2] in the last window, [-3] buffers
 * that came back in this window, [-4] the window (buffers back; default below). It keeps
 * a quarter more than were in flight at once lately, and 16 more: a load that completes
 * many receives in one poll and submits them again after the sends finds them all, and a
 * past peak stops being kept after two windows. */
#define IOQ_LUA_SPARE_WINDOW 16384

static lua_Integer ioq_lua_geti(lua_State *L, int t, lua_Integer k) {
  lua_Integer v;
  lua_rawgeti(L, t, k);
  v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

static void ioq_lua_seti(lua_State *L, int t, lua_Integer k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_rawseti(L, t, k);
}

/* Push an idle buffer of n bytes, from the cache at index spare or new; count it in flight. */
static ioq_lua_buffer *ioq_lua_spare_take(lua_State *L, int spare, lua_Integer n) {
  ioq_lua_buffer *b = NULL;
  lua_Integer k, f;
  if (lua_rawgeti(L, spare, n) == LUA_TTABLE && (k = (lua_Integer)lua_rawlen(L, -1)) > 0) {
    lua_rawgeti(L, -1, k);
    lua_pushnil(L);
    lua_rawseti(L, -3, k);
    b = ioq_lua_tobuffer(L, -1);
    lua_remove(L, -2);
    if (!b || b->busy) /* only this file fills the lists, with idle buffers */
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
  f = ioq_lua_geti(L, spare, 0) + 1;
  ioq_lua_seti(L, spare, 0, f);
  if (f > ioq_lua_geti(L, spare, -1))
    ioq_lua_seti(L, spare, -1, f);
  return b;
}

/* The spare buffer at index buf is idle again: back to the cache at index spare, unless
 * the cache holds enough (then it, and one more of the list, are left to the collector). */
static void ioq_lua_spare_put(lua_State *L, int spare, int buf, size_t cap) {
  lua_Integer f = ioq_lua_geti(L, spare, 0) - 1;
  lua_Integer hi = ioq_lua_geti(L, spare, -1);
  lua_Integer back = ioq_lua_geti(L, spare, -3) + 1;
  lua_Integer window = ioq_lua_geti(L, spare, -4);
  lua_Integer keep, len;
  if (f < 0)
    f = 0;
  ioq_lua_seti(L, spare, 0, f);
  if (back >= (window > 0 ? window : IOQ_LUA_SPARE_WINDOW)) {
    ioq_lua_seti(L, spare, -2, hi);
    ioq_lua_seti(L, spare, -1, f);
    back = 0;
  }
  ioq_lua_seti(L, spare, -3, back);
  keep = ioq_lua_geti(L, spare, -2);
  if (hi > keep)
    keep = hi;
  keep += keep / 4 + 16;
  if (lua_rawgeti(L, spare, (lua_Integer)cap) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawseti(L, spare, (lua_Integer)cap);
  }
  len = (lua_Integer)lua_rawlen(L, -1);
  if (f + len < keep) {
    lua_pushvalue(L, buf);
    lua_rawseti(L, -2, len + 1);
  } else if (f + len > keep && len > 0) {
    lua_pushnil(L);
    lua_rawseti(L, -2, len);
  }
  lua_pop(L, 1);
}

/* spare_take(spare, n) -> an idle buffer of n bytes of the cache (see above). */
static int ioq_lua_spare_take_l(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argcheck(L, n >= 1 && n <= IOQ_MAX_LEN, 2, "size out of range");
  ioq_lua_spare_take(L, 1, n);
  return 1;
}

/* spare_put(spare, buf): buf, taken by spare_take, is idle again. */
static int ioq_lua_spare_put_l(lua_State *L) {
  ioq_lua_buffer *b = ioq_lua_tobuffer(L, 2);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argcheck(L, b && b->spare && !b->busy, 2, "idle spare buffer expected");
  ioq_lua_spare_put(L, 1, 2, b->cap);
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
  "timeout", "cancel", "resolve"
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

/* complete(cq, tok, pin, spare, fix, meta) -> list, finals, nfix
 *
 * Turns the records of the last poll into ioq.lua's completion tables, in C because this
 * is the per-completion work of every program: one table per record, created with room
 * for exactly its fields, with meta as its metatable (it supplies value = 0 and flags = 0,
 * which are not stored). The tables of ioq.lua, keyed by operation id (= token):
 *   tok   - the token given at submission; tok itself stands for nil.
 *   pin   - what the operation holds: a string or a buffer, or a table that describes an
 *           operation that ioq.lua finishes itself (those come back in fix: completion,
 *           description, completion, description ...; nfix pairs).
 *   spare - cap -> list of idle spare buffers; [0] = spare buffers in flight.
 * A final completion removes its entries from tok and pin; finals counts those. */
static int ioq_lua_complete(lua_State *L) {
  /* Stack: 1..6 the arguments, 7 the names, then the keys, the list, and per record the
   * token, the held value and the completion. */
  enum { NAMES = 7, KEYS = 8, LIST = KEYS + IOQ_LUA_NKEYS, TOKEN, HELD, C };
  ioq_lua_cqes *cq = (ioq_lua_cqes *)luaL_checkudata(L, 1, IOQ_LUA_CQES);
  uint32_t i, n = cq->n;
  lua_Integer finals = 0, nfix = 0;
  int has_meta, k;
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TTABLE);
  luaL_checktype(L, 5, LUA_TTABLE);
  has_meta = lua_istable(L, 6);
  lua_settop(L, 6);
  luaL_checkstack(L, IOQ_LUA_NKEYS + 8, "ioq complete");
  lua_rawgetp(L, LUA_REGISTRYINDEX, &ioq_lua_names_key);
  for (k = 0; k < IOQ_LUA_NKEYS; k++)
    lua_rawgeti(L, NAMES, k + 1);
  lua_createtable(L, (int)n, 0);
#define IOQ_LUA_SET(KEY) (lua_rawset(L, C))
#define IOQ_LUA_KEY(KEY) (lua_pushvalue(L, KEYS + IOQ_LUA_K_##KEY))
  for (i = 0; i < n; i++) {
    const ioq_cqe *e = &cq->cqe[i];
    lua_Integer id = (lua_Integer)e->token;
    lua_Integer res = (lua_Integer)e->result;
    int more = (e->flags & IOQ_CQE_MORE) != 0;
    int known, has_token, ptype, nf;
    int with_handle = 0, with_data = 0;
    ioq_lua_buffer *b = NULL;
    known = lua_rawgeti(L, 2, id) != LUA_TNIL; /* TOKEN */
    if (!known) {
      lua_pop(L, 1);
      lua_pushinteger(L, id);
    } else if (lua_rawequal(L, -1, 2)) {
      lua_pop(L, 1);
      lua_pushnil(L);
    }
    has_token = !lua_isnil(L, TOKEN);
    if (known) {
      ptype = lua_rawgeti(L, 3, id); /* HELD */
    } else {
      lua_pushnil(L);
      ptype = LUA_TNIL;
    }
    if (known && !more) {
      lua_pushnil(L);
      lua_rawseti(L, 2, id);
      if (ptype != LUA_TNIL) {
        lua_pushnil(L);
        lua_rawseti(L, 3, id);
      }
      finals++;
    }
    if (ptype == LUA_TUSERDATA)
      b = ioq_lua_tobuffer(L, HELD);
    switch (e->op) {
    case IOQ_OP_ACCEPT: case IOQ_OP_CONNECT: case IOQ_OP_LOCAL_CONNECT: case IOQ_OP_OPEN:
      with_handle = res >= 0;
      break;
    case IOQ_OP_RECV: case IOQ_OP_READ:
      if (b) {
        b->len = res > 0 ? (size_t)res : 0;
        with_data = !b->spare || res >= 0;
      }
      break;
    default:
      break;
    }
    nf = 6 + has_token + (e->value != 0) + (e->flags != 0) + (res < 0 ? 2 : 0) +
         with_handle + with_data;
    lua_createtable(L, 0, nf); /* C */
    IOQ_LUA_KEY(ID);
    lua_pushinteger(L, id);
    IOQ_LUA_SET(ID);
    if (has_token) {
      IOQ_LUA_KEY(TOKEN);
      lua_pushvalue(L, TOKEN);
      IOQ_LUA_SET(TOKEN);
    }
    IOQ_LUA_KEY(OP);
    if (e->op < IOQ_LUA_NOPS)
      lua_rawgeti(L, NAMES, IOQ_LUA_NKEYS + e->op + 1);
    else
      lua_pushinteger(L, (lua_Integer)e->op);
    IOQ_LUA_SET(OP);
    IOQ_LUA_KEY(OPCODE);
    lua_pushinteger(L, (lua_Integer)e->op);
    IOQ_LUA_SET(OPCODE);
    IOQ_LUA_KEY(RESULT);
    lua_pushinteger(L, res);
    IOQ_LUA_SET(RESULT);
    IOQ_LUA_KEY(OK);
    lua_pushboolean(L, res >= 0);
    IOQ_LUA_SET(OK);
    IOQ_LUA_KEY(MORE);
    lua_pushboolean(L, more);
    IOQ_LUA_SET(MORE);
    if (e->value != 0) {
      IOQ_LUA_KEY(VALUE);
      lua_pushinteger(L, (lua_Integer)e->value);
      IOQ_LUA_SET(VALUE);
    }
    if (e->flags != 0) {
      IOQ_LUA_KEY(FLAGS);
      lua_pushinteger(L, (lua_Integer)e->flags);
      IOQ_LUA_SET(FLAGS);
    }
    if (res < 0) {
      IOQ_LUA_KEY(CODE);
      lua_pushinteger(L, res);
      IOQ_LUA_SET(CODE);
      IOQ_LUA_KEY(ERR);
      lua_pushstring(L, ioq_strerror(res));
      IOQ_LUA_SET(ERR);
    }
    if (with_handle) {
      IOQ_LUA_KEY(HANDLE);
      lua_pushinteger(L, (lua_Integer)e->value);
      IOQ_LUA_SET(HANDLE);
    }
    if (b && !b->spare) {
      if (e->op == IOQ_OP_RECV || e->op == IOQ_OP_READ) {
        IOQ_LUA_KEY(BUF);
        lua_pushvalue(L, HELD);
        IOQ_LUA_SET(BUF);
      }
      if (!more && b->busy > 0)
        b->busy--;
    } else if (b && (e->op == IOQ_OP_RECV || e->op == IOQ_OP_READ)) {
      if (res >= 0) {
        IOQ_LUA_KEY(DATA);
        lua_pushlstring(L, (const char *)ioq_lua_bytes(b), b->len);
        IOQ_LUA_SET(DATA);
      }
      if (!more)
        ioq_lua_spare_put(L, 4, HELD, b->cap);
    } else if (ptype == LUA_TTABLE) {
      lua_pushvalue(L, C);
      lua_rawseti(L, 5, ++nfix);
      lua_pushvalue(L, HELD);
      lua_rawseti(L, 5, ++nfix);
    }
    if (has_meta) {
      lua_pushvalue(L, 6);
      lua_setmetatable(L, C);
    }
    lua_rawseti(L, LIST, (lua_Integer)i + 1);
    lua_pop(L, 2);
  }
#undef IOQ_LUA_KEY
#undef IOQ_LUA_SET
  lua_pushvalue(L, LIST);
  lua_pushinteger(L, finals);
  lua_pushinteger(L, nfix / 2);
  return 3;
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

/* An accepted operation of ioq.lua: tok[id] = token (tok itself for nil), pin[id] = held. */
static void ioq_lua_record(lua_State *L, lua_Integer id, int tok, int pin, int token,
                           int held) {
  lua_pushvalue(L, lua_isnoneornil(L, token) ? tok : token);
  lua_rawseti(L, tok, id);
  lua_pushvalue(L, held);
  lua_rawseti(L, pin, id);
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
 * cache at index spare, recorded as ioq_lua_send_op does. A count out of range: EINVAL. */
static int ioq_lua_recv_op(lua_State *L, ioq_loop *loop, lua_Integer h, int what,
                           lua_Integer id, int tok, int pin, int token, int spare) {
  ioq_lua_buffer *b;
  int rc;
  if (lua_isinteger(L, what)) {
    lua_Integer n = lua_tointeger(L, what);
    int top;
    luaL_checktype(L, spare, LUA_TTABLE);
    if (n < 1 || n > IOQ_MAX_LEN)
      return IOQ_EINVAL;
    b = ioq_lua_spare_take(L, spare, n);
    top = lua_gettop(L);
    rc = ioq_recv(loop, (ioq_handle)h, ioq_lua_bytes(b), b->cap, (uint64_t)id);
    if (rc == 0)
      ioq_lua_record(L, id, tok, pin, token, top);
    else
      ioq_lua_spare_put(L, spare, top, b->cap);
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

/* held_send(raw, h, data, id, tok, pin [, token]) -> rc: ioq_send, and on success the
 * operation is recorded in ioq.lua's tables (which keep data referenced) in the same call. */
static int ioq_lua_held_send(lua_State *L) {
  ioq_loop *loop = ioq_lua_liveloop(L, 1);
  lua_Integer h = luaL_checkinteger(L, 2);
  lua_Integer id = luaL_checkinteger(L, 4);
  luaL_checktype(L, 5, LUA_TTABLE);
  luaL_checktype(L, 6, LUA_TTABLE);
  lua_settop(L, 7);
  lua_pushinteger(L, ioq_lua_send_op(L, loop, h, 3, id, 5, 6, 7));
  return 1;
}

/* held_recv(raw, h, buf_or_n, id, tok, pin, token, spare) -> rc: ioq_recv into the given
 * buffer, or for a byte count into a spare buffer (the cache above), recorded as
 * held_send does. A byte count out of range is IOQ_EINVAL. */
static int ioq_lua_held_recv(lua_State *L) {
  ioq_loop *loop = ioq_lua_liveloop(L, 1);
  lua_Integer h = luaL_checkinteger(L, 2);
  lua_Integer id = luaL_checkinteger(L, 4);
  luaL_checktype(L, 5, LUA_TTABLE);
  luaL_checktype(L, 6, LUA_TTABLE);
  lua_settop(L, 8);
  lua_pushinteger(L, ioq_lua_recv_op(L, loop, h, 3, id, 5, 6, 7, 8));
  return 1;
}

/* An ioq.lua loop object keeps what its C methods need in its array part, so that they
 * read it without a string lookup. */
enum { IOQ_LUA_L_RAW = 1, IOQ_LUA_L_TOK, IOQ_LUA_L_PIN, IOQ_LUA_L_SPARE, IOQ_LUA_L_LAST };

/* The results of a method that submitted operation id: id, or nil, message, code. */
static int ioq_lua_method_result(lua_State *L, int self, lua_Integer id, int rc) {
  if (rc == 0) {
    lua_pushinteger(L, id);
    lua_rawseti(L, self, IOQ_LUA_L_LAST);
    lua_pushinteger(L, id);
    return 1;
  }
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
 * 7 pin, 8 spare. */
static void ioq_lua_method_args(lua_State *L, ioq_loop **loop, lua_Integer *id,
                                lua_Integer *h) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 4);
  lua_rawgeti(L, 1, IOQ_LUA_L_RAW);
  lua_rawgeti(L, 1, IOQ_LUA_L_TOK);
  lua_rawgeti(L, 1, IOQ_LUA_L_PIN);
  lua_rawgeti(L, 1, IOQ_LUA_L_SPARE);
  *loop = ioq_lua_liveloop(L, 5);
  *h = luaL_checkinteger(L, 2);
  lua_rawgeti(L, 1, IOQ_LUA_L_LAST);
  *id = lua_tointeger(L, -1) + 1;
  lua_pop(L, 1);
}

static int ioq_lua_loop_send(lua_State *L) {
  ioq_loop *loop;
  lua_Integer id, h;
  int rc;
  ioq_lua_method_args(L, &loop, &id, &h);
  rc = ioq_lua_send_op(L, loop, h, 3, id, 6, 7, 4);
  return ioq_lua_method_result(L, 1, id, rc);
}

static int ioq_lua_loop_recv(lua_State *L) {
  ioq_loop *loop;
  lua_Integer id, h;
  int rc;
  ioq_lua_method_args(L, &loop, &id, &h);
  rc = ioq_lua_recv_op(L, loop, h, 3, id, 6, 7, 4, 8);
  return ioq_lua_method_result(L, 1, id, rc);
}
%}

%native(held_send) int ioq_lua_held_send(lua_State *L);
%native(held_recv) int ioq_lua_held_recv(lua_State *L);
%native(loop_send) int ioq_lua_loop_send(lua_State *L);
%native(loop_recv) int ioq_lua_loop_recv(lua_State *L);

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
