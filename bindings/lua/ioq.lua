--- ioq: completion-based asynchronous I/O for Lua 5.4.
--
-- local ioq = require "ioq"
-- local loop = ioq.loop()
-- local id = loop:timeout(0.01, "tick")
-- for _, c in ipairs(loop:poll()) do print(c.op, c.token, c.result) end
--
-- Every ABI call is a method of a loop. A submit method returns the operation's id (an
-- integer unique in its loop) when ioq accepted it; the completion carries the same id and
-- the optional token given at submission (any Lua value). Expected failures return
-- nil, message, code (code is the negative ioq.E* integer); misuse (wrong argument types,
-- a freed loop) raises an error.
--
-- Handles, tokens and completion values are 64-bit integers that round-trip exactly.
-- uint64_t values above 2^63-1 appear as negative Lua integers (same bits).
local core = require "ioq_core"

local M = {}

-- Hot-path functions and constants as upvalues: a global or field lookup per call adds up.
local math_type, math_tointeger = math.type, math.tointeger
local c_poll, c_complete, c_dispatch = core.poll, core.complete, core.co_dispatch
local c_strerror, c_unhold = core.strerror, core.unhold
local c_spare_take, c_spare_put = core.spare_take, core.spare_put
local MAX_LEN, EINVAL, EMISUSE, ENOMEM = core.MAX_LEN, core.EINVAL, core.EMISUSE, core.ENOMEM

-- Constants without their prefix: ioq.EINVAL, ioq.MULTISHOT, ioq.OP_RECV ...
for k, v in pairs(core) do
  if (type(v) == "number" or type(v) == "string") and k:match("^[A-Z][A-Z0-9_]*$") then
    M[k] = v
  end
end

M.core = core
M.buffer = core.buffer
M.VERSION = core.version_string()

--- ioq.version() -> number, string of the library.
function M.version() return core.version(), core.version_string() end
--- ioq.strerror(code) -> sentence; ioq.errname(code) -> "ECONNREFUSED".
function M.strerror(code) return core.strerror(code) end
function M.errname(code) return core.errname(code) end

local OPNAMES = {
  [core.OP_NONE] = "none", [core.OP_POST] = "post", [core.OP_ACCEPT] = "accept",
  [core.OP_CONNECT] = "connect", [core.OP_LOCAL_CONNECT] = "local_connect",
  [core.OP_RECV] = "recv", [core.OP_RECV_POOL] = "recv_pool", [core.OP_SEND] = "send",
  [core.OP_SENDV] = "sendv", [core.OP_SENDTO] = "sendto", [core.OP_RECVFROM] = "recvfrom",
  [core.OP_SHUTDOWN] = "shutdown", [core.OP_CLOSE] = "close", [core.OP_OPEN] = "open",
  [core.OP_READ] = "read", [core.OP_WRITE] = "write", [core.OP_FSYNC] = "fsync",
  [core.OP_TIMEOUT] = "timeout", [core.OP_CANCEL] = "cancel", [core.OP_RESOLVE] = "resolve",
  [core.OP_WATCH] = "watch", [core.OP_SIGNAL] = "signal",
  [core.OP_PROCESS_WAIT] = "process_wait", [core.OP_NOTIFY_WAIT] = "notify_wait",
}
M.opnames = OPNAMES

local function fail(rc)
  return nil, c_strerror(rc), rc
end
M._fail = fail

--- ioq.parse_addr("127.0.0.1:80") -> an address object, or nil, message, code.
function M.parse_addr(text)
  if type(text) ~= "string" then
    error("bad argument #1 to 'parse_addr' (string expected, got " .. type(text) .. ")", 2)
  end
  local rc, a = core.addr_parse(text)
  if rc ~= 0 then return fail(rc) end
  return a
end

--- ioq.format_addr(addr) -> "127.0.0.1:80".
function M.format_addr(a)
  local rc, s = core.addr_format(a)
  if rc < 0 then return fail(rc) end
  return s
end

local function toaddr(a, level)
  if type(a) == "string" then
    local rc, obj = core.addr_parse(a)
    if rc ~= 0 then return nil, rc end
    return obj
  elseif type(a) == "userdata" then
    return a
  end
  error("address expected (\"host:port\" or an ioq address), got " .. type(a), level or 3)
end

-- Numbers given to the C ABI: a number that cannot be the C argument at all (not a number,
-- NaN, a float with a fraction, beyond the C type) is an error raised at the caller, with
-- what it was; a value of the right type that ioq refuses comes back as nil, message, code.
local function numdesc(v)
  if type(v) ~= "number" then return "a " .. type(v) end
  if v ~= v then return "NaN" end
  return ("%.14g"):format(v)
end
M._numdesc = numdesc

local function argerror(n, name, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, name, msg), level + 1)
end

--- An integer argument (a float with an integral value is accepted), lo..hi when given.
local function argint(v, n, name, what, lo, hi, level)
  local i = math_tointeger(v)
  if not i or type(v) ~= "number" then
    argerror(n, name, what .. " must be an integer, got " .. numdesc(v), (level or 2) + 1)
  end
  if (lo and i < lo) or (hi and i > hi) then
    argerror(n, name, ("%s out of range %d..%d, got %d"):format(what, lo or math.mininteger,
             hi or math.maxinteger, i), (level or 2) + 1)
  end
  return i
end
M._argint = argint

local BUFFER_MT = getmetatable(core.buffer(0))

-- Arguments checked before an id is taken (a SWIG error after it would leak the id).
local function argbytes(v, n, name)
  if type(v) ~= "string" and getmetatable(v) ~= BUFFER_MT then
    argerror(n, name, "string or ioq.buffer expected, got " .. numdesc(v), 3)
  end
end
local function argstring(v, n, name, optional)
  if type(v) ~= "string" and not (optional and v == nil) then
    argerror(n, name, "string expected, got " .. numdesc(v), 3)
  end
end

local U32 = 0xffffffff

--- Seconds as nanoseconds, rounded up (a timeout never fires early, and neither does a
-- wait); negative -> -1; NaN and non-numbers are errors; +inf is the largest wait.
local function seconds_to_ns(s, name, n, level)
  if type(s) ~= "number" or s ~= s then
    argerror(n or 1, name, "seconds must be a number, got " .. numdesc(s), (level or 2) + 1)
  end
  if s < 0 then return -1 end
  local ns = math.ceil(s * 1e9)
  if ns >= math.maxinteger then return math.maxinteger end
  return math_tointeger(ns)
end
M._seconds_to_ns = seconds_to_ns

local OPEN_MODES = {
  r = core.OPEN_READ,
  w = core.OPEN_WRITE | core.OPEN_CREATE | core.OPEN_TRUNC,
  a = core.OPEN_WRITE | core.OPEN_CREATE | core.OPEN_APPEND,
  ["r+"] = core.OPEN_READ | core.OPEN_WRITE,
  ["w+"] = core.OPEN_READ | core.OPEN_WRITE | core.OPEN_CREATE | core.OPEN_TRUNC,
  ["a+"] = core.OPEN_READ | core.OPEN_WRITE | core.OPEN_CREATE | core.OPEN_APPEND,
}

--- ioq.open_flags("w") -> IOQ_OPEN_* bits; "x" anywhere adds OPEN_EXCL.
function M.open_flags(mode)
  if math.type(mode) == "integer" then return mode end
  if type(mode) ~= "string" then error("open mode expected", 3) end
  local excl = mode:find("x", 1, true) ~= nil
  local base = OPEN_MODES[(mode:gsub("[xb]", ""))]
  if not base then error("bad open mode '" .. mode .. "'", 3) end
  if excl then base = base | core.OPEN_EXCL end
  return base
end

local OPTS = {
  nodelay = core.OPT_NODELAY, keepalive = core.OPT_KEEPALIVE, rcvbuf = core.OPT_RCVBUF,
  sndbuf = core.OPT_SNDBUF, reuseaddr = core.OPT_REUSEADDR, broadcast = core.OPT_BROADCAST,
  linger = core.OPT_LINGER,
}

local BACKENDS = {
  auto = core.BACKEND_AUTO, epoll = core.BACKEND_EPOLL, io_uring = core.BACKEND_URING,
  uring = core.BACKEND_URING, kqueue = core.BACKEND_KQUEUE, iocp = core.BACKEND_IOCP,
}

------------------------------------------------------------------------------------------
-- Loop
------------------------------------------------------------------------------------------

local Loop = {}
Loop.__index = Loop
M.Loop = Loop

local STATE = 5 -- loop[STATE]: ids and spare-buffer counts, in C (ioq.state of lua.i)
local SLOT = (1 << 24) - 1 -- id & SLOT: the key of an operation in tok, pin (see lua.i)
M._SLOT = SLOT

--- ioq.loop([opts]) -> loop, or nil, message, code.
-- opts.backend: "auto", "epoll", "io_uring", "kqueue", "iocp" (or an ioq.BACKEND_*);
-- opts.threads: worker threads for blocking work; opts.max: completions per poll.
function M.loop(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument #1 to 'loop' (table expected)", 2) end
  local max = argint(opts.max or 256, 1, "loop", "max", 1, 65536)
  local threads = argint(opts.threads or 0, 1, "loop", "threads", 0, U32)
  local o = nil
  if opts.backend or opts.threads then
    o = core.loop_options()
    o.size = 48
    local b = opts.backend or "auto"
    if type(b) == "string" then
      b = BACKENDS[b]
      if not b then error("unknown backend '" .. tostring(opts.backend) .. "'", 2) end
    end
    o.backend = b
    o.threadpool_size = threads
  end
  local rc, raw = core.loop_new(o)
  if rc ~= 0 then return fail(rc) end
  -- This table keeps what in-flight operations use; ioq_core need not pin it again.
  core.loop_unpinned(raw)
  local tok, pin, spare = {}, {}, {}
  -- The array part is for the functions written in C (loop_send, loop_recv, complete):
  -- raw, tok, pin, spare and the state. tok and pin are keyed by the slot of an operation's
  -- id (id & SLOT), which is reused once the operation has its final completion.
  local self = setmetatable({
    raw, tok, pin, spare, core.state_new(raw),
    raw = raw,
    cq = core.cqes(max),
    tok = tok,         -- slot -> the token of an operation, when one was given
    pin = pin,         -- slot -> what it holds: string, buffer, or a table (see complete)
    spare = spare,     -- size -> list of idle receive buffers (see lua.i)
  }, Loop)
  return self
end

function Loop:__gc()
  if self.raw then self:free() end
end

--- local loop <close> = ioq.loop(): freed when the variable goes out of scope.
function Loop:__close()
  if self.raw then self:free() end
end

function Loop:__tostring()
  return "ioq.loop(" .. (self.raw and core.loop_backend(self.raw) or "freed") .. ")"
end

-- The error for a self without a live loop: a loop that was freed, or no loop at all.
local function no_loop(self, level)
  if getmetatable(self) ~= Loop then
    local mt = getmetatable(self)
    local name = type(mt) == "table" and rawget(mt, "__name") or type(self)
    error("ioq loop expected, got " .. tostring(name), level + 1)
  end
  error("ioq loop used after free", level + 1)
end

local function raw(self)
  local r = type(self) == "table" and self.raw
  if not r then no_loop(self, 3) end
  return r
end

-- The id of the next operation (nil when no slot is left); track() keeps it when ioq
-- accepts the operation, else frees it.
local c_id_new, c_id_free = core.id_new, core.id_free
local function new_id(self)
  return c_id_new(self[STATE])
end

-- Record an accepted operation; rc is the submit call's result, held what it uses (nil,
-- a string or buffer, or a table that complete() leaves to finish()).
local function track(self, rc, id, token, held)
  if rc ~= 0 then
    c_id_free(self[STATE], id)
    if rc == EMISUSE then error(c_strerror(rc), 3) end
    return fail(rc)
  end
  local slot = id & SLOT
  if token ~= nil then self.tok[slot] = token end
  if held ~= nil then self.pin[slot] = held end
  return id
end

-- Values the caller sees as held (loop:pinned()): a description counts its own.
local function held_count(v)
  if type(v) == "table" then return v.n or 0 end
  return 1
end

-- Drop the busy mark of what v holds (gather-send pieces are never marked).
local function unhold(v)
  if type(v) == "table" then
    if v.buf then c_unhold(v.buf) end
  else
    c_unhold(v)
  end
end

--- loop:free() - end every operation without completions and free the loop.
function Loop:free()
  if self.raw then
    core.loop_free(self.raw)
    self.raw, self[1] = nil, nil
    for _, v in pairs(self.pin) do unhold(v) end
    self.tok, self.pin = {}, {}
    self[2], self[3] = self.tok, self.pin
    core.state_reset(self[STATE])
  end
end

function Loop:backend() return core.loop_backend(raw(self)) end
function Loop:caps() return core.loop_caps(raw(self)) end
function Loop:now() return core.now(raw(self)) end
--- loop:pending() -> number of operations without their final completion yet.
function Loop:pending() return core.state_pending(self[STATE]) end
--- loop:pinned() -> number of Lua values held for in-flight operations.
function Loop:pinned()
  raw(self)
  local n = 0
  for _, v in pairs(self.pin) do n = n + held_count(v) end
  return n
end

function Loop:fd()
  local fd = core.loop_fd(raw(self))
  if fd < 0 then return fail(fd) end
  return fd
end

function Loop:submit()
  local rc = core.submit(raw(self))
  if rc ~= 0 then return fail(rc) end
  return true
end

function Loop:wake()
  local rc = core.wake(raw(self))
  if rc ~= 0 then return fail(rc) end
  return true
end

--- loop:post(result [, token]) -> id. Completes with op "post" and the given result.
function Loop:post(result, token)
  result = argint(result or 0, 1, "post", "result")
  local id = new_id(self)
  if not id then return fail(ENOMEM) end
  return track(self, core.post(raw(self), id, result), id, token)
end

-- Sockets ------------------------------------------------------------------------------

--- loop:tcp_listen(addr [, backlog [, flags]]) -> handle.
function Loop:tcp_listen(addr, backlog, flags)
  local a, err = toaddr(addr)
  if not a then return fail(err) end
  backlog = argint(backlog or 0, 2, "tcp_listen", "backlog", 0, U32)
  flags = argint(flags or 0, 3, "tcp_listen", "flags", 0, U32)
  local rc, h = core.tcp_listen(raw(self), a, backlog, flags)
  if rc ~= 0 then return fail(rc) end
  return h
end

--- loop:udp_bind(addr [, flags]) -> handle.
function Loop:udp_bind(addr, flags)
  local a, err = toaddr(addr)
  if not a then return fail(err) end
  flags = argint(flags or 0, 2, "udp_bind", "flags", 0, U32)
  local rc, h = core.udp_bind(raw(self), a, flags)
  if rc ~= 0 then return fail(rc) end
  return h
end

--- loop:local_listen(path [, backlog [, flags]]) -> handle.
function Loop:local_listen(path, backlog, flags)
  backlog = argint(backlog or 0, 2, "local_listen", "backlog", 0, U32)
  flags = argint(flags or 0, 3, "local_listen", "flags", 0, U32)
  local rc, h = core.local_listen(raw(self), path, backlog, flags)
  if rc ~= 0 then return fail(rc) end
  return h
end

-- Operations: each returns the id, or nil, message, code. ------------------------------

function Loop:accept(listener, flags, token)
  listener = argint(listener, 1, "accept", "handle")
  flags = argint(flags or 0, 2, "accept", "flags", 0, U32)
  local id = new_id(self)
  if not id then return fail(ENOMEM) end
  return track(self, core.accept(raw(self), listener, flags, id), id, token)
end

function Loop:connect(addr, token)
  local a, err = toaddr(addr)
  if not a then return fail(err) end
  local id = new_id(self)
  if not id then return fail(ENOMEM) end
  return track(self, core.connect(raw(self), a, 0, id), id, token)
end

function Loop:local_connect(path, token)
  argstring(path, 1, "local_connect")
  local id = new_id(self)
  if not id then return fail(ENOMEM) end
  return track(self, core.local_connect(raw(self), path, 0, id), id, token)
end

-- A receive buffer of exactly n bytes from the loop's cache (they are reused, so a
-- receive that returns a string costs that string and nothing else). complete() puts it
-- back; the cache keeps about as many as were lately in flight at once.
local function take_spare(self, n)
  if math_type(n) ~= "integer" or n < 1 or n > MAX_LEN then
    return nil
  end
  return c_spare_take(self, n)
end

-- A spare buffer that no operation took after all.
local function give_spare(self, b)
  c_spare_put(self, b)
end

-- A buffer given by the caller, or a spare one for a byte count (own = true).
local function recv_target(self, what)
  if type(what) == "number" then
    local b = take_spare(self, argint(what, 2, "recv", "byte count", nil, nil, 3))
    if not b then return nil end
    return b, true
  end
  if type(what) == "userdata" then return what, false end
  error("receive target must be an ioq.buffer or a byte count", 3)
end

--- loop:recv(h, buf_or_n [, token]). With an ioq.buffer the completion has .buf (its
-- length set to the bytes received); with a byte count it has .data, a string.
Loop.recv = core.loop_recv -- in C: the receive of every stream

--- loop:recv_pool(h, pool [, flags [, token]]): completions carry .buffer_id and .data
-- (the bytes, copied out); the buffer goes back to the pool at once unless .keep = true
-- was given in flags table form: loop:recv_pool(h, pool, {multishot=true, keep=true}).
function Loop:recv_pool(h, pool, flags, token)
  local keep = false
  if type(flags) == "table" then
    keep = flags.keep and true or false
    flags = flags.multishot and core.MULTISHOT or 0
  end
  h = argint(h, 1, "recv_pool", "handle")
  pool = argint(pool, 2, "recv_pool", "pool")
  flags = argint(flags or 0, 3, "recv_pool", "flags", 0, U32)
  local id = new_id(self)
  if not id then return fail(ENOMEM) end
  return track(self, core.recv_pool(raw(self), h, pool, flags, id), id, token,
               { pool = pool, keep = keep, n = 0 })
end

--- loop:send(h, data [, token]); data is a string or an ioq.buffer (its data length).
Loop.send = core.loop_send -- in C, as recv

--- loop:sendv(h, pieces [, token]); pieces is a sequence of strings and buffers. The
-- caller may change its table at once: the loop keeps a copy.
function Loop:sendv(h, pieces, token)
  h = argint(h, 1, "sendv", "handle")
  if type(pieces) ~= "table" then
    argerror(2, "sendv", "table expected, got " .. numdesc(pieces), 2)
  end
  for i = 1, #pieces do argbytes(pieces[i], 2, "sendv") end
  local id = new_id(self)
  if not id then return fail(ENOMEM) end
  local rc = core.sendv(raw(self), h, pieces, id)
  local held = nil
  if rc == 0 then
    local copy = table.move(pieces, 1, #pieces, 1, {})
    held = { pieces = copy, n = 1 }
  end
  return track(self, rc, id, token, held)
end

function Loop:sendto(h, data, addr, token)
  h = argint(h, 1, "sendto", "handle")
  argbytes(data, 2, "sendto")
  local a, err = toaddr(addr)
  if not a then return fail(err) end
  local id = new_id(self)
  if not id then return fail(ENOMEM) end
  return track(self, core.sendto(raw(self), h, data, a, id), id, token, data)
end

--- loop:recvfrom(h, buf_or_n [, token]): the completion has .addr ("ip:port") besides
-- .buf or .data as for recv.
function Loop:recvfrom(h, what, token)
  h = argint(h, 1, "recvfrom", "handle")
  local b, own = recv_target(self, what)
  if not b then return fail(EINVAL) end
  local a = core.addr()
  local id = new_id(self)
  if not id then
    if own then give_spare(self, b) end
    return fail(ENOMEM)
  end
  local r, m, c = track(self, core.recvfrom(raw(self), h, b, a, id), id, token,
                        { recvfrom = true, buf = b, own = own, addr = a, n = 2 })
  if not r and own then give_spare(self, b) end
  return r, m, c
end

function Loop:shutdown(h, token)
  h = argint(h, 1, "shutdown", "handle")
  local id = new_id(self)
  if not id then return fail(ENOMEM) end
  return track(self, core.shutdown(raw(self), h, id), id, token)
end

--- loop:close(h [, token]) - ioq_close of a socket, listener, file or pool (loop:free()
-- frees the loop itself).
function Loop:close(h, token)
  h = argint(h, 1, "close", "handle")
  local id = new_id(self)
  if not id then return fail(ENOMEM) end
  return track(self, core.close(raw(self), h, id), id, token)
end

--- loop:open(path, mode [, perm [, token]]); mode "r", "w", "a", "r+", "w+", "a+" (add
-- "x" for exclusive creation) or IOQ_OPEN_* bits; perm defaults to 0644.
function Loop:open(path, mode, perm, token)
  argstring(path, 1, "open")
  local flags = M.open_flags(mode or "r")
  perm = argint(perm or 420, 3, "open", "permissions", 0, U32)
  local id = new_id(self)
  if not id then return fail(ENOMEM) end
  return track(self, core.open(raw(self), path, flags, perm, id), id, token)
end

function Loop:read(h, what, offset, token)
  h = argint(h, 1, "read", "handle")
  offset = argint(offset or 0, 3, "read", "offset")
  local b, own = recv_target(self, what)
  if not b then return fail(EINVAL) end
  local id = new_id(self)
  if not id then
    if own then give_spare(self, b) end
    return fail(ENOMEM)
  end
  local r, m, c = track(self, core.read(raw(self), h, b, offset, id), id, token, b)
  if not r and own then give_spare(self, b) end
  return r, m, c
end

function Loop:write(h, data, offset, token)
  h = argint(h, 1, "write", "handle")
  argbytes(data, 2, "write")
  offset = argint(offset or 0, 3, "write", "offset")
  local id = new_id(self)
  if not id then return fail(ENOMEM) end
  return track(self, core.write(raw(self), h, data, offset, id), id, token, data)
end

function Loop:fsync(h, token)
  h = argint(h, 1, "fsync", "handle")
  local id = new_id(self)
  if not id then return fail(ENOMEM) end
  return track(self, core.fsync(raw(self), h, id), id, token)
end

--- loop:timeout(seconds [, token]).
function Loop:timeout(seconds, token)
  local ns = seconds_to_ns(seconds, "timeout", 1)
  if ns < 0 then return fail(core.EINVAL) end
  local id = new_id(self)
  if not id then return fail(ENOMEM) end
  return track(self, core.timeout(raw(self), ns, id), id, token)
end

--- loop:timeout_at(deadline_ns [, token]) - complete when loop:now() >= deadline_ns (an
-- integer on loop:now()'s clock, never earlier); a deadline already past completes at the
-- next poll. One base for many timers: local t = loop:now(); loop:timeout_at(t + d).
-- A negative deadline is EINVAL. Since ABI 1.1.
function Loop:timeout_at(deadline, token)
  deadline = argint(deadline, 1, "timeout_at", "deadline")
  if deadline < 0 then return fail(core.EINVAL) end
  local id = new_id(self)
  if not id then return fail(ENOMEM) end
  return track(self, core.timeout_at(raw(self), deadline, id), id, token)
end

--- loop:cancel(target_id [, token]) - cancel the operation with that id.
function Loop:cancel(target, token)
  if math_type(target) ~= "integer" then
    argerror(1, "cancel", "operation id expected, got " .. numdesc(target), 2)
  end
  local id = new_id(self)
  if not id then return fail(ENOMEM) end
  return track(self, core.cancel(raw(self), target, id), id, token)
end

--- loop:resolve(host, service [, flags [, max [, token]]]): the completion has .addrs,
-- a list of "ip:port" strings.
function Loop:resolve(host, service, flags, max, token)
  argstring(host, 1, "resolve", true)
  argstring(service, 2, "resolve", true)
  max = argint(max or 16, 4, "resolve", "max", 1, 4096)
  flags = argint(flags or 0, 3, "resolve", "flags", 0, U32)
  local b = core.buffer(core.ADDR_SIZE * max)
  local id = new_id(self)
  if not id then return fail(ENOMEM) end
  return track(self, core.resolve(raw(self), host, service, flags, b, id), id, token,
               { resolve = true, buf = b, n = 1 })
end

-- Pools ---------------------------------------------------------------------------------

function Loop:pool_new(count, size)
  count = argint(count, 1, "pool_new", "count", 0, U32)
  size = argint(size, 2, "pool_new", "size", 0, U32)
  local rc, h = core.pool_new(raw(self), count, size)
  if rc ~= 0 then return fail(rc) end
  return h
end

--- loop:buf(pool, id, len [, offset]) -> the bytes of a pool buffer as a string.
function Loop:buf(pool, id, len, offset)
  id = argint(id, 2, "buf", "buffer id", 0, U32)
  len = argint(len, 3, "buf", "length", 0, MAX_LEN)
  offset = argint(offset or 0, 4, "buf", "offset", 0, MAX_LEN)
  local s = core.buf_string(raw(self), pool, id, len, offset)
  if not s then return fail(core.EINVAL) end
  return s
end

function Loop:buf_release(pool, id)
  id = argint(id, 2, "buf_release", "buffer id", 0, U32)
  local rc = core.buf_release(raw(self), pool, id)
  if rc ~= 0 then return fail(rc) end
  return true
end

-- Queries -------------------------------------------------------------------------------

function Loop:sockname(h)
  local rc, a = core.sockname(raw(self), h)
  if rc ~= 0 then return fail(rc) end
  return M.format_addr(a)
end

function Loop:peername(h)
  local rc, a = core.peername(raw(self), h)
  if rc ~= 0 then return fail(rc) end
  return M.format_addr(a)
end

--- loop:setopt(h, "nodelay" | ioq.OPT_*, value); booleans become 0 / 1.
function Loop:setopt(h, opt, value)
  if type(opt) == "string" then
    local o = OPTS[opt]
    if not o then error("unknown option '" .. opt .. "'", 2) end
    opt = o
  end
  if value == true then value = 1 elseif value == false then value = 0 end
  opt = argint(opt, 2, "setopt", "option", 0, U32)
  value = argint(value, 3, "setopt", "value")
  local rc = core.setopt(raw(self), h, opt, value)
  if rc ~= 0 then return fail(rc) end
  return true
end

--- loop:adopt(fd, kind) -> handle; kind is an ioq.KIND_* or "tcp", "udp", "file" ...
local KINDS = {
  tcp = core.KIND_TCP, tcp_listener = core.KIND_TCP_LISTENER, udp = core.KIND_UDP,
  ["local"] = core.KIND_LOCAL, local_listener = core.KIND_LOCAL_LISTENER,
  file = core.KIND_FILE,
}
function Loop:adopt(fd, kind)
  if type(kind) == "string" then
    local k = KINDS[kind]
    if not k then error("unknown kind '" .. kind .. "'", 2) end
    kind = k
  end
  fd = argint(fd, 1, "adopt", "descriptor")
  kind = argint(kind, 2, "adopt", "kind", 0, U32)
  local rc, h = core.adopt(raw(self), fd, kind)
  if rc ~= 0 then return fail(rc) end
  return h
end

function Loop:os_handle(h)
  local rc, fd = core.os_handle(raw(self), h)
  if rc ~= 0 then return fail(rc) end
  return fd
end

-- Pipes and child processes (since 1.1) --------------------------------------------------

--- loop:pipe() -> read_end, write_end: a new pipe as two PIPE handles, streams for recv,
-- send, sendv, shutdown (the write end) and close.
function Loop:pipe()
  local rc, r, w = core.pipe(raw(self), 0)
  if rc ~= 0 then return fail(rc) end
  return r, w
end

local STDIO = { inherit = core.STDIO_INHERIT, pipe = core.STDIO_PIPE, null = core.STDIO_NULL }

local function stdio_of(v, name)
  if v == nil then return { core.STDIO_INHERIT, 0 } end
  if type(v) == "string" then
    local mode = STDIO[v]
    if not mode then error("bad spawn option '" .. name .. "' (\"" .. v .. "\": use "
                           .. "\"inherit\", \"pipe\", \"null\", {fd = n} or {handle = h})", 3) end
    return { mode, 0 }
  end
  if type(v) == "table" and v.fd ~= nil then
    return { core.STDIO_OS, argint(v.fd, 2, "spawn", name .. ".fd", 0, math.maxinteger, 4) }
  end
  if type(v) == "table" and v.handle ~= nil then
    return { core.STDIO_HANDLE, argint(v.handle, 2, "spawn", name .. ".handle", nil, nil, 4) }
  end
  error("bad spawn option '" .. name .. "' (use \"inherit\", \"pipe\", \"null\", "
        .. "{fd = n} or {handle = h})", 3)
end

--- loop:spawn(argv [, opts]) -> process, or nil, message, code. Starts a child process.
-- argv: {program, args...}; the program is opts.file or argv[1], looked up in PATH when it
-- has no "/" (opts.search_path decides otherwise). opts: stdin, stdout, stderr ("inherit"
-- (default), "pipe", "null", {fd = n} a descriptor the caller keeps, {handle = h} an ioq
-- handle), env (a list of "K=V" or a map; nil inherits), cwd, new_session.
-- process: {handle =, pid =, stdin =, stdout =, stderr =}: the PROCESS handle and the
-- parent's ends of the "pipe" streams (nil for the others). Synchronous: returns once
-- the program runs. Its end comes with loop:process_wait(); loop:close() each handle
-- (closing the process handle does not kill the child).
function Loop:spawn(argv, opts)
  if type(argv) ~= "table" or type(argv[1]) ~= "string" then
    error("bad argument #1 to 'spawn' (a list {program, args...} expected)", 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument #2 to 'spawn' (table expected)", 2) end
  local file = opts.file or argv[1]
  argstring(file, 2, "spawn")
  local search = opts.search_path
  if search == nil then search = not file:find("/", 1, true) end
  local env = opts.env
  if type(env) == "table" and #env == 0 and next(env) ~= nil then
    local list = {}
    for k, v in pairs(env) do list[#list + 1] = tostring(k) .. "=" .. tostring(v) end
    env = list
  end
  local flags = (search and core.SPAWN_SEARCH_PATH or 0) |
                (opts.new_session and core.SPAWN_NEW_SESSION or 0)
  local rc, p, i, o, e = core.spawn(raw(self), {
    file = file, argv = argv, env = env, cwd = opts.cwd, flags = flags,
    stdio = { stdio_of(opts.stdin, "stdin"), stdio_of(opts.stdout, "stdout"),
              stdio_of(opts.stderr, "stderr") } })
  if rc ~= 0 then return fail(rc) end
  local _, pid = core.process_pid(raw(self), p)
  return { handle = p, pid = pid, stdin = i ~= 0 and i or nil,
           stdout = o ~= 0 and o or nil, stderr = e ~= 0 and e or nil }
end

local function proc_handle(p, name)
  if type(p) == "table" then p = p.handle end
  return argint(p, 1, name, "process handle", nil, nil, 4)
end

--- loop:process_wait(process [, token]) -> id: the completion's result is the child's exit
-- code (0..255), or 256 + the signal that ended it (ioq.exit_code, ioq.term_signal).
function Loop:process_wait(p, token)
  p = proc_handle(p, "process_wait")
  local id = new_id(self)
  if not id then return fail(ENOMEM) end
  return track(self, core.process_wait(raw(self), p, id), id, token)
end

-- The signals whose numbers POSIX systems share.
local SIGNALS = { HUP = 1, INT = 2, QUIT = 3, KILL = 9, ALRM = 14, TERM = 15 }

--- loop:kill(process, signal) -> true, or nil, message, code (ioq.ESRCH once the child
-- has ended and was reaped). signal: a number or "TERM", "KILL", "INT", "HUP", "QUIT".
function Loop:kill(p, sig)
  p = proc_handle(p, "kill")
  if type(sig) == "string" then
    local n = SIGNALS[sig:gsub("^SIG", "")]
    if not n then error("bad argument #2 to 'kill' (unknown signal '" .. sig .. "')", 2) end
    sig = n
  end
  sig = argint(sig, 2, "kill", "signal", 0, 1 << 30)
  local rc = core.kill(raw(self), p, sig)
  if rc ~= 0 then return fail(rc) end
  return true
end

--- loop:process_pid(process) -> the OS process id.
function Loop:process_pid(p)
  local rc, pid = core.process_pid(raw(self), proc_handle(p, "process_pid"))
  if rc ~= 0 then return fail(rc) end
  return pid
end

--- ioq.exit_code(result) -> the exit code in a process_wait result, nil if a signal
-- ended the child; ioq.term_signal(result) -> that signal, nil if it exited.
function M.exit_code(result) if result >= 0 and result < 256 then return result end end
function M.term_signal(result) if result >= 256 then return result - 256 end end

-- Polling -------------------------------------------------------------------------------

-- Completions that complete() leaves to Lua: desc is what the operation holds, a table.
local function finish(self, c, desc)
  local final = not c.more
  local result = c.result
  if desc.recvfrom then
    local b = desc.buf
    b:setlen(result > 0 and result or 0)
    if desc.own then
      if result >= 0 then c.data = b:tostring() end
      if final then give_spare(self, b) end
    else
      c.buf = b
      if final then c_unhold(b) end
    end
    if result >= 0 then c.addr = M.format_addr(desc.addr) end
  elseif desc.resolve then
    if result > 0 then
      local list = {}
      for i = 1, result do list[i] = core.addr_at(desc.buf, i) end
      c.addrs = list
    end
    if final then c_unhold(desc.buf) end
  elseif desc.pool then
    if (c.flags & core.CQE_BUFFER) ~= 0 then
      local value = c.value
      c.buffer_id = value
      c.pool = desc.pool
      c.data = core.buf_string(self.raw, desc.pool, value, result)
      if not desc.keep then core.buf_release(self.raw, desc.pool, value) end
    end
  elseif final then
    unhold(desc)
  end
end

-- A completion's fields that are 0 are not stored; reading them gives 0 all the same.
local COMPLETION = { __index = { value = 0, flags = 0 } }

local FIX = {} -- complete() leaves completion, description pairs here

--- loop:poll([timeout]) -> list of completion tables (empty on timeout or wake-up), or
-- nil, message, code. timeout in seconds; nil or negative waits for one completion.
-- A completion: {id, token, op ("recv"...), opcode, result, value, flags, more, ok,
-- err, code, and per operation: handle, data, buf, addr, addrs, buffer_id, pool}.
-- value and flags read 0 when they are 0 (through the metatable, so pairs() skips them).
function Loop:poll(timeout)
  local ns = -1
  if timeout ~= nil then ns = seconds_to_ns(timeout, "poll", 1) end
  local r = type(self) == "table" and self.raw
  if not r then no_loop(self, 2) end
  if self.dispatching then error("ioq: poll inside a dispatch of the same loop", 2) end
  local cq = self.cq
  local n = c_poll(r, cq, ns)
  if n < 0 then
    if n == EMISUSE then error(c_strerror(n), 2) end
    return fail(n)
  end
  local out, nfix = c_complete(cq, self, FIX, COMPLETION)
  if nfix > 0 then
    for i = 1, 2 * nfix, 2 do
      local c, desc = FIX[i], FIX[i + 1]
      FIX[i], FIX[i + 1] = nil, nil
      finish(self, c, desc)
    end
  end
  return out
end

local FIXD = {} -- co_dispatch() leaves completion, description pairs here

--- loop:_dispatch(timeout, waiting, wait, events) -> the number of entries of events, or
-- nil, message, code. ioq.co's poll: one poll whose final completions resume the
-- coroutines of waiting (operation id -> coroutine) in C, without completion tables
-- (see co_dispatch in lua.i); events gets what the scheduler must do after, four values
-- per entry, and the completions that Lua finishes (recvfrom, resolve, sendv, recv_pool)
-- as completion, waiter (or nil), false, false.
function Loop:_dispatch(timeout, waiting, wait, events)
  local ns = -1
  if timeout ~= nil then ns = seconds_to_ns(timeout, "step", 1, 3) end
  if not (type(self) == "table" and self.raw) then no_loop(self, 3) end
  if self.dispatching then error("ioq: poll inside a dispatch of the same loop", 3) end
  self.dispatching = true
  local n, nfix, nev = c_dispatch(self.cq, self, FIXD, COMPLETION, waiting, events, wait, ns)
  self.dispatching = false
  if n <= 0 then
    if n == EMISUSE then error(c_strerror(n), 3) end
    if n < 0 then return fail(n) end
    return 0
  end
  nev = 4 * nev
  if nfix > 0 then
    for i = 1, 3 * nfix, 3 do
      local c, desc, w = FIXD[i], FIXD[i + 1], FIXD[i + 2]
      FIXD[i], FIXD[i + 1], FIXD[i + 2] = nil, nil, nil
      if self.raw then finish(self, c, desc) end
      events[nev + 1], events[nev + 2], events[nev + 3], events[nev + 4] = c, w, false, false
      nev = nev + 4
    end
  end
  return nev
end

--- for c in loop:completions([timeout]) do ... end - one poll, iterated.
function Loop:completions(timeout)
  local list = assert(self:poll(timeout))
  local i = 0
  return function()
    i = i + 1
    return list[i]
  end
end

return M
