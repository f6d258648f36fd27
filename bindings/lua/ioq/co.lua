--- ioq.co: coroutines over an ioq loop, so that I/O code reads as if it blocked.
--
-- local co = require "ioq.co"
-- co.spawn(function()
--   local srv <close> = assert(co.listen("127.0.0.1:8080"))
--   while true do
--     local s = assert(srv:accept())
--     co.spawn(function()
--       local conn <close> = s
--       for line in conn:lines() do conn:send(line .. "\n") end
--     end)
--   end
-- end)
-- co.run()
--
-- A scheduler owns one loop and runs many coroutines on it: an operation submits, the
-- coroutine yields, and the scheduler resumes it with the completion. Failures return
-- nil, message, code as in ioq; calling a waiting function outside a scheduler's
-- coroutine is misuse and raises an error, and so do arguments that are not numbers of
-- the right kind (NaN, a fraction where an integer is needed).
--
-- Every object that holds a handle (stream, listener, UDP socket, file, scheduler) closes
-- it when it is collected (__gc) and when a to-be-closed variable that holds it goes out
-- of scope (__close); close() says when. An object is never closed twice.
local ioq = require "ioq"
local core = ioq.core

local M = {}

-- Upvalues for the per-operation path: a global or field lookup per call adds up.
local co_create, co_resume, co_yield = coroutine.create, coroutine.resume, coroutine.yield
local co_running, co_status, co_close = coroutine.running, coroutine.status, coroutine.close
local co_isyieldable = coroutine.isyieldable
local find, sub, byte = string.find, string.sub, string.byte
local pack, unpack = table.pack, table.unpack
local strerror = ioq.strerror
local argint, numdesc, seconds_to_ns = ioq._argint, ioq._numdesc, ioq._seconds_to_ns
local ECANCELED, ETIMEDOUT, EINVAL = ioq.ECANCELED, ioq.ETIMEDOUT, ioq.EINVAL
local EMSGSIZE, ENOTFOUND = ioq.EMSGSIZE, ioq.ENOTFOUND
local MAX_LEN = ioq.MAX_LEN
local SLOT = ioq._SLOT -- operations are keyed by the slot of their id (see ioq.lua)

local WAIT = setmetatable({}, { __tostring = function() return "ioq.co.WAIT" end })
--- The error that unwinds an interrupted coroutine (sched:interrupt, co.any). Code that
-- catches errors with pcall should raise it again.
local INTERRUPTED = setmetatable({}, { __tostring = function() return "ioq.co: interrupted" end })
--- The code that read() returns at the end of a stream: nil, "end of stream", co.EOF.
local EOF = "eof"
local owner = setmetatable({}, { __mode = "k" }) -- coroutine -> scheduler

-- Slots of a stream (its array part; the C methods of lua.i read them by number).
local H, LOOP, SCHED, WB, WN, WERR, PARKED, PARK_AT, RBUF, TIMEOUT, WLIMIT, RPOS =
  1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12
-- 13: the coroutine that the C methods checked last; 14: the scheduler's waiting table

--- Bytes of sends in flight on a stream before send() waits (stream:setwritelimit).
M.WRITE_LIMIT = 65536
--- Longest line that stream:read("l") buffers (stream:setlinelimit).
M.LINE_LIMIT = 1 << 20
local READ_CHUNK = 16384

local function argerror(n, name, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, name, msg), level + 1)
end

-- Seconds of a timeout: nil, or a number that is not NaN (a negative one means none).
local function optseconds(v, n, name, level)
  if v == nil then return nil end
  if type(v) ~= "number" or v ~= v then
    argerror(n, name, "seconds must be a number, got " .. numdesc(v), (level or 2) + 1)
  end
  if v < 0 then return nil end
  return v
end

local Sched = {}
Sched.__index = Sched
M.Scheduler = Sched

--- co.new([loop or loop options]) -> a scheduler with its own loop (or the given one).
function M.new(arg)
  local loop
  if getmetatable(arg) == ioq.Loop then
    loop = arg
  else
    local err, code
    loop, err, code = ioq.loop(arg)
    if not loop then return nil, err, code end
  end
  local waiting = {}
  return setmetatable({
    waiting,        -- [1] operation id -> coroutine, stream (a send nobody waits for) or
                    --     function (an interrupted coroutine's operation)
    {},             -- [2] coroutine -> the stream it waits on for room (send) or a flush
    loop = loop,
    waiting = waiting,
    ready = {},     -- queue of {coroutine, args..., n = }
    head = 1,
    tail = 0,
    live = 0,
    events = {},    -- what a dispatch leaves to Lua (see ioq.lua's Loop:_dispatch)
    closing = {},   -- objects to close at the next step (collected, or <close> outside)
    interrupted = setmetatable({}, { __mode = "k" }), -- coroutine -> true
    fresh = setmetatable({}, { __mode = "k" }),       -- coroutines not started yet
    idle = setmetatable({}, { __mode = "k" }),        -- coroutines waiting for no operation
    on_exit = setmetatable({}, { __mode = "k" }),     -- coroutine -> function(ok, err)
  }, Sched)
end

local function push(self, item)
  self.tail = self.tail + 1
  self.ready[self.tail] = item
end

--- sched:spawn(fn, ...) -> the coroutine; it starts at the next turn of run().
function Sched:spawn(fn, ...)
  if type(fn) ~= "function" then error("bad argument #1 to 'spawn' (function expected)", 2) end
  local th = co_create(fn)
  owner[th] = self
  self.live = self.live + 1
  self.fresh[th] = true
  push(self, pack(th, ...))
  return th
end

-- A coroutine has ended: normally (ok), by an error or interrupted (not ok, err).
local function ended(self, th, ok, err)
  self.live = self.live - 1
  owner[th] = nil
  self.interrupted[th] = nil
  local f = self.on_exit[th]
  if f then
    self.on_exit[th] = nil
    f(ok, err)
  end
end

-- After a resume of th that did not yield WAIT (which means: alive, waiting). Returns the
-- error (with the coroutine's traceback) to raise from run(), if it failed.
local function resumed(self, th, ok, r)
  if not ok then
    local msg = r ~= INTERRUPTED and debug.traceback(th, tostring(r)) or nil
    -- Its to-be-closed variables (their __close cannot wait here: they close later).
    co_close(th)
    ended(self, th, false, r)
    return msg
  end
  if co_status(th) == "dead" then
    ended(self, th, true)
  elseif r ~= WAIT then
    -- A bare coroutine.yield() gives the other coroutines a turn.
    push(self, { th, n = 1 })
  end
end

local function resume(self, th, ...)
  local ok, r = co_resume(th, ...)
  if r ~= WAIT or not ok then return resumed(self, th, ok, r) end
end

local function current(level)
  local th, main = co_running()
  local s = owner[th]
  if main or not s then
    error("ioq.co: this call waits; make it inside a coroutine started by spawn", level or 3)
  end
  return s, th
end

-- The scheduler of obj, and the running coroutine, which must be one of its own.
local function mine(obj, level)
  local s = obj[SCHED]
  local th, main = co_running()
  if main or owner[th] ~= s then
    if main or not owner[th] then
      error("ioq.co: this call waits; make it inside a coroutine started by spawn", level or 3)
    end
    error("ioq.co: this call waits; make it inside a coroutine of the object's scheduler",
          level or 3)
  end
  return s, th
end

local function live(obj, level)
  local h = obj[H]
  if not h then error("ioq.co: object used after close", level or 3) end
  return h
end

------------------------------------------------------------------------------------------
-- Waiting, interruption
------------------------------------------------------------------------------------------

-- An interrupted coroutine gave back what its operation got: received bytes return to
-- the stream (the next read gets them), an accepted connection to the listener, a
-- connection or file that was being opened is closed. Then it unwinds.
local function on_interrupted(obj, op, res, x)
  if res and res >= 0 and x ~= nil then
    if op == "recv" or op == "recv_into" then
      if op == "recv_into" then x = res > 0 and obj.into and obj.into:tostring(1, res) or "" end
      if type(x) == "string" and x ~= "" then
        local buf, pos = obj[RBUF], obj[RPOS]
        if buf then obj[RBUF], obj[RPOS] = sub(buf, pos) .. x, 1
        else obj[RBUF], obj[RPOS] = x, 1 end
      end
    elseif op == "accept" then
      local b = obj.backlog
      if not b then b = {}; obj.backlog = b end
      b[#b + 1] = x
    elseif op == "recvfrom" then
      local q = obj.queue
      if not q then q = {}; obj.queue = q end
      q[#q + 1] = x
    elseif op == "connect" or op == "open" then
      obj.loop:close(x)
    end
  end
  error(INTERRUPTED, 0)
end

-- Wait for the final completion of operation id (id, msg, code as a submit returned):
-- -> result, x (see co_dispatch in lua.i; the completion table for operations that Lua
-- finishes). A submit that failed gives its code as the result.
local function await(s, obj, op, id, _, code)
  if not id then return code end
  s[1][id & SLOT] = (co_running())
  local res, x, _, intr, all = co_yield(WAIT)
  if intr then
    local r = all and all[id] or {}
    on_interrupted(obj, op, r[1], r[2])
  end
  return res, x
end

-- As await, but cancel the operation after `seconds` (ETIMEDOUT). A cancelled operation
-- may still have finished in the kernel: its own result wins over the timeout then.
local function await_timeout(s, obj, op, seconds, id, m, code)
  if not id then return code end
  if not seconds then return await(s, obj, op, id, m, code) end
  local th = co_running()
  local loop = s.loop
  local tid = assert(loop:timeout(seconds))
  local waiting = s[1]
  waiting[id & SLOT] = th
  waiting[tid & SLOT] = th
  local res, x, gid, intr, all = co_yield(WAIT)
  if intr then
    local r = all and all[id] or {}
    on_interrupted(obj, op, r[1], r[2])
  end
  if gid == id then
    waiting[tid & SLOT] = nil
    loop:cancel(tid)
    return res, x
  end
  loop:cancel(id)
  res, x, gid, intr, all = co_yield(WAIT)
  if intr then
    local r = all and all[id] or {}
    on_interrupted(obj, op, r[1], r[2])
  end
  if res == ECANCELED then return ETIMEDOUT end
  return res, x
end

-- Park the running coroutine on stream obj until the bytes of its sends in flight are at
-- most `at` (-1: until none is in flight) or one of them fails.
local function park(obj, s, at)
  local th = co_running()
  obj[PARKED], obj[PARK_AT] = th, at
  s[2][th] = obj
  local _, _, _, intr = co_yield(WAIT)
  if intr then on_interrupted(obj, "flush") end
end

--- sched:interrupt(co) -> true if co was running on this scheduler. The operation that co
-- waits for is cancelled; co then unwinds with the error co.INTERRUPTED (its <close>
-- variables close, the scheduler does not report the error). Nothing an operation got is
-- lost: received bytes go back to the stream, an accepted connection to the listener. A
-- send that was in flight may have sent part of its data.
function Sched:interrupt(th)
  if type(th) ~= "thread" then error("bad argument #1 to 'interrupt' (coroutine expected)", 2) end
  if owner[th] ~= self or co_status(th) == "dead" then return false end
  if self.interrupted[th] then return true end
  self.interrupted[th] = true
  if th == co_running() then error(INTERRUPTED, 0) end
  local waiting, loop = self[1], self.loop
  local slots = {}
  for slot, w in pairs(waiting) do
    if w == th then slots[#slots + 1] = slot end
  end
  if #slots > 0 then
    -- Resume it once every operation it waits for has completed, with their results.
    local left, all = #slots, {}
    local function wake(res, x, id)
      all[id] = { res, x }
      left = left - 1
      if left == 0 then return resume(self, th, res, x, id, INTERRUPTED, all) end
    end
    for _, slot in ipairs(slots) do
      waiting[slot] = wake
      loop:cancel(core.id_of(loop[5], slot))
    end
    return true
  end
  local st = self[2][th]
  if st then
    st[PARKED] = false
    self[2][th] = nil
    push(self, { th, nil, nil, nil, INTERRUPTED, n = 5 })
  elseif self.idle[th] then
    self.idle[th] = nil
    push(self, { th, nil, nil, nil, INTERRUPTED, n = 5 })
  end
  -- Otherwise it is in the ready queue: step() sees the mark.
  return true
end

------------------------------------------------------------------------------------------
-- Closing
------------------------------------------------------------------------------------------

-- Close obj's handle without waiting: now, or once its sends in flight are done (a close
-- would cancel them). For finalizers and <close> outside a coroutine: the next step does it.
local function release(obj)
  if not obj[H] then return end
  local s = obj[SCHED]
  local list = s.closing
  list[#list + 1] = obj
end

local function close_pending(self)
  local list = self.closing
  self.closing = {}
  local loop = self.loop
  if not loop.raw then return end
  for i = 1, #list do
    local obj = list[i]
    local h = obj[H]
    if h then
      if (obj[WN] or 0) > 0 then
        release(obj)
      else
        obj[H] = false
        loop:close(h)
        if obj.backlog then
          for _, a in ipairs(obj.backlog) do loop:close(a) end
          obj.backlog = nil
        end
      end
    end
  end
end

-- stream:flush() as used by close: wait until no send is in flight.
local function drain(obj, s)
  while (obj[WN] or 0) > 0 do park(obj, s, -1) end
end

--- obj:close() -> true - close the handle and wait for it; sends in flight finish first;
-- operations of other coroutines on it end with ECANCELED. Closing twice is harmless.
local function close(self)
  if not self[H] then return true end
  local s = mine(self)
  drain(self, s)
  local h = self[H]
  if not h then return true end
  self[H] = false
  local loop = self[LOOP]
  if self.backlog then
    for _, a in ipairs(self.backlog) do loop:close(a) end
    self.backlog = nil
  end
  local res = await(s, self, "close", loop:close(h))
  if res < 0 then return nil, strerror(res), res end
  return true
end

-- __close: inside a coroutine of the object's scheduler, close() (it waits); elsewhere
-- (the main program, a finalizer, a failed coroutine) the close happens at the next step.
local function tbc_close(self)
  if not self[H] then return end
  local th, main = co_running()
  if not main and owner[th] == self[SCHED] and co_isyieldable() and
     not self[SCHED].interrupted[th] then
    close(self)
  else
    release(self)
  end
end

local function gc_close(self)
  if self[H] then release(self) end
end

------------------------------------------------------------------------------------------
-- The scheduler's turn
------------------------------------------------------------------------------------------

--- sched:step([timeout]) - run the coroutines that are ready, then poll once and resume
-- the waiting ones. Returns true while coroutines are alive. A coroutine's error is raised
-- here (with its traceback) once the turn is over.
function Sched:step(timeout)
  timeout = optseconds(timeout, 1, "step")
  local err
  -- Only those ready now: a coroutine that yields at once runs again after the poll.
  local last = self.tail
  while self.head <= last do
    local item = self.ready[self.head]
    self.ready[self.head] = nil
    self.head = self.head + 1
    local th = item[1]
    local e
    if self.interrupted[th] and self.fresh[th] then
      self.fresh[th] = nil
      co_close(th)
      ended(self, th, false, INTERRUPTED)
    elseif self.interrupted[th] and item.n < 5 then
      e = resume(self, th, nil, nil, nil, INTERRUPTED)
    else
      self.fresh[th] = nil
      e = resume(self, th, unpack(item, 2, item.n))
    end
    if e and not err then err = e end
  end
  if err then error(err, 0) end
  if self.closing[1] then close_pending(self) end
  if self.live == 0 and self.head > self.tail then return false end
  local loop = self.loop
  if self.head <= self.tail then
    timeout = 0
  elseif loop:pending() == 0 then
    error("ioq.co: every coroutine waits, but no operation is pending (deadlock)", 2)
  end
  local events = self.events
  local nev, m, code = loop:_dispatch(timeout, self[1], WAIT, events)
  if not nev then error(m .. " (" .. tostring(code) .. ")", 2) end
  for i = 1, nev, 4 do
    local w, a, b, c = events[i], events[i + 1], events[i + 2], events[i + 3]
    events[i], events[i + 1], events[i + 2], events[i + 3] = nil, nil, nil, nil
    local e
    local tw = type(w)
    if tw == "thread" then
      e = resumed(self, w, a, b)
    elseif tw == "function" then
      e = w(a, b, c)
    elseif a then
      -- A completion that ioq.lua finished (recvfrom, resolve, sendv, recv_pool), and its
      -- waiter.
      if type(a) == "thread" then
        e = resume(self, a, w.result, w, w.id)
      elseif type(a) == "function" then
        e = a(w.result, w, w.id)
      end
    end
    if e and not err then err = e end
  end
  if err then error(err, 0) end
  return self.live > 0 or self.head <= self.tail
end

--- sched:run() - run until every coroutine has finished. An error in a coroutine stops
-- the run and is raised here with the coroutine's traceback.
function Sched:run()
  while self:step() do end
end

--- sched:close() - free the loop (its pending operations end without completions).
function Sched:close()
  self.loop:free()
end
Sched.__close = Sched.close

--- sched:loop() is sched.loop; co.loop() the loop of the running coroutine's scheduler.

------------------------------------------------------------------------------------------
-- Streams (TCP and local connections)
------------------------------------------------------------------------------------------

local Stream = {}
Stream.__index = Stream
M.Stream = Stream

local function stream(s, h)
  return setmetatable({ h, s.loop, s, 0, 0, false, false, 0, false, false, M.WRITE_LIMIT, 1,
                        false, s[1] }, Stream)
end

function Stream:__tostring() return "ioq.co.stream(" .. tostring(self[H]) .. ")" end
Stream.__gc = gc_close
Stream.__close = tbc_close

--- stream:settimeout(seconds or nil) - receives, reads and connects fail with ETIMEDOUT
-- after it; a send waits for its own completion, under the same timeout.
function Stream:settimeout(seconds)
  self[TIMEOUT] = optseconds(seconds, 1, "settimeout") or false
end

--- stream:setwritelimit(bytes) - how many bytes of sends may be in flight before send()
-- waits (default co.WRITE_LIMIT); 0 makes every send wait for its completion.
function Stream:setwritelimit(bytes)
  self[WLIMIT] = argint(bytes, 1, "setwritelimit", "bytes", 0, math.maxinteger)
end

--- stream:setlinelimit(bytes) - the longest line read("l") accepts (co.LINE_LIMIT).
function Stream:setlinelimit(bytes)
  self.linelimit = argint(bytes, 1, "setlinelimit", "bytes", 1, math.maxinteger)
end

-- Buffered bytes (read() keeps what it received beyond what it returned).
local function buffered(self)
  local buf = self[RBUF]
  if not buf then return 0 end
  return #buf - self[RPOS] + 1
end

-- Take the first n buffered bytes (all when n is nil).
local function take(self, n)
  local buf, pos = self[RBUF], self[RPOS]
  if not buf then return "" end
  local stop = n and pos + n - 1 or #buf
  if stop >= #buf then
    self[RBUF], self[RPOS] = false, 1
    if pos == 1 then return buf end
    return sub(buf, pos)
  end
  self[RPOS] = stop + 1
  return sub(buf, pos, stop)
end

-- One receive straight from the socket (not the buffer): data, or nil, message, code.
local function recv_raw(self, n)
  local s = self[SCHED]
  local res, x = await_timeout(s, self, "recv", self[TIMEOUT] or nil,
                               self[LOOP]:recv(live(self, 4), n))
  if res < 0 then return nil, strerror(res), res end
  return x
end

-- Receive more into the buffer: true, or false at the end of the stream, or nil,
-- message, code.
local function fill(self)
  local data, m, code = recv_raw(self, READ_CHUNK)
  if not data then return nil, m, code end
  if data == "" then return false end
  local buf = self[RBUF]
  if buf then
    local pos = self[RPOS]
    if pos > 1 then buf = sub(buf, pos) end
    self[RBUF], self[RPOS] = buf .. data, 1
  else
    self[RBUF], self[RPOS] = data, 1
  end
  return true
end

-- stream:recv when bytes are buffered or a timeout is set (the C method's other path).
local function slow_recv(self, n)
  n = n or 4096
  if self[RBUF] then
    if n < 1 or n > MAX_LEN then return nil, strerror(EINVAL), EINVAL end
    return take(self, n)
  end
  return recv_raw(self, n)
end

-- stream:send with a timeout: it waits for its own completion.
local function slow_send(self, data)
  local s = self[SCHED]
  local res, x = await_timeout(s, self, "send", self[TIMEOUT] or nil,
                               self[LOOP]:send(live(self, 4), data))
  if res < 0 then return nil, strerror(res), res, x or 0 end
  return res
end

local c_recv, c_send = core.co_methods(owner, WAIT, slow_recv, slow_send, on_interrupted)

--- stream:recv([n]) -> a string of 1..n bytes (default 4096); "" at the end of the stream.
-- Bytes that read() buffered come first.
Stream.recv = c_recv -- in C (lua.i): submit, note the coroutine, yield in one call

--- stream:send(data) -> #data once ioq holds the data (a string or an ioq.buffer). The send
-- goes on while the coroutine does: sends go out in order, and ioq keeps the data until
-- it is sent. When more than the write limit is in flight, send waits for room. A send in
-- flight that fails makes the next send (and flush) return nil, message, code, 0.
Stream.send = c_send

--- stream:flush() -> true once every send is out; or nil, message, code of a failed one.
function Stream:flush()
  local s = mine(self)
  drain(self, s)
  local e = self[WERR]
  if e then return nil, strerror(e), e end
  return true
end

--- stream:recv_into(buf) -> the number of bytes received into the ioq.buffer (0 at end).
function Stream:recv_into(buf)
  local s = mine(self)
  if self[RBUF] then
    local data = take(self, buf:cap())
    buf:set(data)
    return #data
  end
  self.into = buf -- for an interruption: what it received goes back to the stream
  local res = await_timeout(s, self, "recv_into", self[TIMEOUT] or nil,
                            self[LOOP]:recv(live(self), buf))
  self.into = nil
  if res < 0 then return nil, strerror(res), res end
  return res
end

--- stream:sendv(pieces) -> total bytes sent (it waits for them).
function Stream:sendv(pieces)
  local s = mine(self)
  local e = self[WERR]
  if e then return nil, strerror(e), e, 0 end
  local res, c = await_timeout(s, self, "sendv", self[TIMEOUT] or nil,
                               self[LOOP]:sendv(live(self), pieces))
  if res < 0 then return nil, strerror(res), res, type(c) == "table" and c.value or 0 end
  return res
end

-- The formats of read().
local function read_line(self, keep)
  local limit = self.linelimit or M.LINE_LIMIT
  local from = self[RPOS]
  while true do
    local buf, pos = self[RBUF], self[RPOS]
    if buf then
      local e = find(buf, "\n", from, true)
      if e and e - pos + 1 > limit then
        return nil, ("line longer than %d bytes"):format(limit), EMSGSIZE
      elseif e then
        local stop = e
        if not keep then
          stop = e - 1
          if stop >= pos and byte(buf, stop) == 13 then stop = stop - 1 end
        end
        local line = sub(buf, pos, stop)
        if e >= #buf then self[RBUF], self[RPOS] = false, 1 else self[RPOS] = e + 1 end
        return line
      end
      if #buf - pos + 1 > limit then
        return nil, ("line longer than %d bytes"):format(limit), EMSGSIZE
      end
    end
    local before = buffered(self)
    local ok, m, code = fill(self)
    if ok == false then
      if buffered(self) > 0 then return take(self) end
      return nil, "end of stream", EOF
    elseif not ok then
      return nil, m, code
    end
    from = self[RPOS] + before
  end
end

local function read_count(self, n)
  while buffered(self) < n do
    local ok, m, code = fill(self)
    if ok == false then
      return nil, "end of stream", EOF, take(self)
    elseif not ok then
      return nil, m, code
    end
  end
  return take(self, n)
end

local function read_all(self)
  while true do
    local ok, m, code = fill(self)
    if ok == false then return take(self) end
    if not ok then return nil, m, code end
  end
end

--- stream:read([format]) - buffered reads, with the formats of Lua's file:read:
--   "l" (default) a line without its end ("\n" or "\r\n"); the last line may lack it;
--   "L" a line with its end; "a" everything up to the end of the stream;
--   n   exactly n bytes.
-- At the end of the stream: nil, "end of stream", co.EOF (and for n, the bytes before
-- the end as a fourth value). A line longer than the line limit: nil, message,
-- ioq.EMSGSIZE, and the bytes stay buffered. Other failures: nil, message, code (the
-- buffered bytes stay). recv() returns buffered bytes first, so both may be mixed.
function Stream:read(fmt)
  mine(self)
  live(self)
  fmt = fmt or "l"
  if type(fmt) == "string" then
    local f = fmt:gsub("^%*", "")
    if f == "l" then return read_line(self, false) end
    if f == "L" then return read_line(self, true) end
    if f == "a" then return read_all(self) end
    error("bad argument #1 to 'read' (invalid format '" .. fmt .. "')", 2)
  end
  local n = argint(fmt, 1, "read", "byte count", 0, MAX_LEN)
  return read_count(self, n)
end

--- for line in stream:lines([format]) do ... end - read(format) until the end of the
-- stream; other failures raise an error.
function Stream:lines(fmt)
  return function()
    local v, m, code = self:read(fmt)
    if v == nil and code ~= EOF then error(m, 2) end
    return v
  end
end

function Stream:shutdown()
  local s = mine(self)
  local res = await(s, self, "shutdown", self[LOOP]:shutdown(live(self)))
  if res < 0 then return nil, strerror(res), res end
  return true
end

Stream.close = close

function Stream:sockname() return self[LOOP]:sockname(live(self)) end
function Stream:peername() return self[LOOP]:peername(live(self)) end
function Stream:setopt(opt, value) return self[LOOP]:setopt(live(self), opt, value) end
function Stream:handle() return self[H] or nil end

------------------------------------------------------------------------------------------
-- Listeners, UDP, files: the same slots 1..3 (handle, loop, scheduler)
------------------------------------------------------------------------------------------

local function object(s, h, mt)
  return setmetatable({ h, s.loop, s, loop = s.loop }, mt)
end

local Listener = {}
Listener.__index = Listener
M.Listener = Listener
Listener.__gc = gc_close
Listener.__close = tbc_close

function Listener:__tostring() return "ioq.co.listener(" .. tostring(self[H]) .. ")" end

--- listener:accept() -> a stream.
function Listener:accept()
  local s = mine(self)
  local b = self.backlog
  if b and b[1] then
    live(self)
    return stream(s, table.remove(b, 1))
  end
  local res, h = await(s, self, "accept", self[LOOP]:accept(live(self)))
  if res < 0 then return nil, strerror(res), res end
  return stream(s, h)
end
Listener.close = close
function Listener:sockname() return self[LOOP]:sockname(live(self)) end
function Listener:handle() return self[H] or nil end

local Udp = {}
Udp.__index = Udp
M.Udp = Udp
Udp.__gc = gc_close
Udp.__close = tbc_close

--- udp:sendto(data, addr) -> bytes sent.
function Udp:sendto(data, addr)
  local s = mine(self)
  local res = await(s, self, "sendto", self[LOOP]:sendto(live(self), data, addr))
  if res < 0 then return nil, strerror(res), res end
  return res
end

--- udp:recvfrom([n]) -> data, "ip:port" of the sender.
function Udp:recvfrom(n)
  local s = mine(self)
  local q = self.queue
  if q and q[1] then
    local c = table.remove(q, 1)
    return c.data, c.addr
  end
  if n ~= nil then n = argint(n, 1, "recvfrom", "byte count") end
  local res, c = await_timeout(s, self, "recvfrom", self.timeout,
                               self[LOOP]:recvfrom(live(self), n or 65536))
  if res < 0 then return nil, strerror(res), res end
  return c.data, c.addr
end
function Udp:settimeout(seconds) self.timeout = optseconds(seconds, 1, "settimeout") end
Udp.close = close
function Udp:sockname() return self[LOOP]:sockname(live(self)) end
function Udp:setopt(opt, value) return self[LOOP]:setopt(live(self), opt, value) end
function Udp:handle() return self[H] or nil end

local File = {}
File.__index = File
M.File = File
File.__gc = gc_close
File.__close = tbc_close

--- file:read(n [, offset]) -> a string of up to n bytes; "" at the end of the file.
function File:read(n, offset)
  local s = mine(self)
  n = argint(n, 1, "read", "byte count")
  local res, data = await(s, self, "read", self[LOOP]:read(live(self), n, offset or 0))
  if res < 0 then return nil, strerror(res), res end
  return data
end

--- file:write(data [, offset]) -> bytes written.
function File:write(data, offset)
  local s = mine(self)
  local res = await(s, self, "write", self[LOOP]:write(live(self), data, offset or 0))
  if res < 0 then return nil, strerror(res), res end
  return res
end

function File:fsync()
  local s = mine(self)
  local res = await(s, self, "fsync", self[LOOP]:fsync(live(self)))
  if res < 0 then return nil, strerror(res), res end
  return true
end
File.close = close
function File:handle() return self[H] or nil end

------------------------------------------------------------------------------------------
-- Addresses with host names
------------------------------------------------------------------------------------------

-- "host:port" or "[v6]:port" -> host, port; nil when text has no port.
local function split_hostport(text)
  local h, p = text:match("^%[(.-)%]:([%w%-]+)$")
  if h then return h, p end
  h, p = text:match("^([^:]*):([%w%-]+)$")
  if h then return h, p end
  return nil
end

-- host, port -> text that ioq.parse_addr takes, for a numeric host.
local function join_hostport(host, port)
  if host:find(":", 1, true) then return "[" .. host .. "]:" .. port end
  return host .. ":" .. port
end

-- The address arguments of connect and listen: (addr [, opts]) or (host, port [, opts]).
-- -> host (nil for an address object), port or address object, opts, opts' position
local function address_args(name, a, b, c)
  if type(a) == "userdata" then return nil, a, b, 2 end
  if type(a) ~= "string" then
    argerror(1, name, "address expected (\"host:port\"), got " .. numdesc(a), 3)
  end
  local host, port = split_hostport(a)
  if host then return host, port, b, 2 end
  if b == nil then
    argerror(2, name, "port expected (or \"host:port\" as the first argument)", 3)
  end
  if type(b) == "number" then
    b = tostring(argint(b, 2, name, "port", 0, 65535, 3))
  elseif type(b) ~= "string" then
    argerror(2, name, "port expected, got " .. numdesc(b), 3)
  end
  return a, b, c, 3
end

local function timeout_of(name, opts, n)
  local v
  if type(opts) == "table" then v = optseconds(opts.timeout, n, name, 3)
  else v = optseconds(opts, n, name, 3) end
  return v
end

-- Seconds left until deadline (a loop:now() value), or nil for none.
local function left(loop, deadline)
  if not deadline then return nil end
  local ns = deadline - loop:now()
  return ns > 0 and ns / 1e9 or 0
end

-- The addresses of host and port ("ip:port" texts): the address itself when numeric.
local function addresses(self, host, port, deadline)
  local numeric = ioq.parse_addr(join_hostport(host, port))
  if numeric then return { numeric } end
  local loop = self.loop
  local res, c = await_timeout(self, self, "resolve", left(loop, deadline),
                               loop:resolve(host, port))
  if res < 0 then return nil, strerror(res), res end
  if not c.addrs or #c.addrs == 0 then return nil, strerror(ENOTFOUND), ENOTFOUND end
  return c.addrs
end

------------------------------------------------------------------------------------------
-- Scheduler methods that create objects or wait
------------------------------------------------------------------------------------------

--- sched:listen(addr [, backlog [, flags]]) -> listener. addr is "ip:port" ("[::1]:80"),
-- an address object, or host and port; a host name is resolved first (only inside a
-- coroutine: resolving waits) and the first address is used.
function Sched:listen(addr, backlog, flags)
  local a = addr
  if type(addr) == "string" and not ioq.parse_addr(addr) then
    local host, port = split_hostport(addr)
    if host and host ~= "" then
      local th, main = co_running()
      if main or owner[th] ~= self then
        return nil, "host name '" .. host .. "' needs resolving: listen inside a coroutine",
               EINVAL
      end
      local list, m, code = addresses(self, host, port)
      if not list then return nil, m, code end
      a = list[1]
    end
  end
  local h, m, code = self.loop:tcp_listen(a, backlog, flags)
  if not h then return nil, m, code end
  return object(self, h, Listener)
end

function Sched:local_listen(path, backlog, flags)
  local h, m, code = self.loop:local_listen(path, backlog, flags)
  if not h then return nil, m, code end
  return object(self, h, Listener)
end

--- sched:udp(addr [, flags]) -> a bound UDP socket (does not wait).
function Sched:udp(addr, flags)
  local h, m, code = self.loop:udp_bind(addr, flags)
  if not h then return nil, m, code end
  return object(self, h, Udp)
end

-- One connect to an address (object or "ip:port"), within seconds.
local function connect_one(self, a, seconds)
  local res, h = await_timeout(self, self, "connect", seconds, self.loop:connect(a))
  if res < 0 then return nil, strerror(res), res end
  return stream(self, h)
end

--- sched:connect(addr [, timeout]) or sched:connect(host, port [, timeout]) -> stream
-- (waits). addr: "host:port", "[v6]:port" or an address object; host: a name or a numeric
-- address; port: a number or a service name. A name is resolved, then its addresses are
-- tried in order until one connects (the error of the last one otherwise). timeout:
-- seconds (or {timeout = seconds}) for all of it: ETIMEDOUT when it runs out.
function Sched:connect(addr, b, c)
  local host, port, opts, at = address_args("connect", addr, b, c)
  local seconds = timeout_of("connect", opts, at)
  if not host then return connect_one(self, port, seconds) end
  local loop = self.loop
  local deadline
  if seconds then
    local now, ns = loop:now(), seconds_to_ns(seconds, "connect", 2, 2)
    if ns < math.maxinteger - now then deadline = now + ns end
  end
  local list, m, code = addresses(self, host, port, deadline)
  if not list then return nil, m, code end
  for i = 1, #list do
    local st
    st, m, code = connect_one(self, list[i], left(loop, deadline))
    if st then return st end
    if code == ETIMEDOUT then break end
  end
  return nil, m, code
end

function Sched:local_connect(path)
  local res, h = await(self, self, "connect", self.loop:local_connect(path))
  if res < 0 then return nil, strerror(res), res end
  return stream(self, h)
end

--- sched:open(path [, mode [, perm]]) -> file (waits); mode as ioq's loop:open.
function Sched:open(path, mode, perm)
  local res, h = await(self, self, "open", self.loop:open(path, mode or "r", perm))
  if res < 0 then return nil, strerror(res), res end
  return object(self, h, File)
end

--- sched:sleep(seconds).
function Sched:sleep(seconds)
  if type(seconds) ~= "number" or seconds ~= seconds then
    argerror(1, "sleep", "seconds must be a number, got " .. numdesc(seconds), 2)
  end
  local res = await(self, self, "sleep", self.loop:timeout(seconds < 0 and 0 or seconds))
  if res < 0 then return nil, strerror(res), res end
  return true
end

--- sched:resolve(host, service [, flags]) -> list of "ip:port".
function Sched:resolve(host, service, flags)
  local res, c = await(self, self, "resolve", self.loop:resolve(host, service, flags))
  if res < 0 then return nil, strerror(res), res end
  return c.addrs or {}
end

--- sched:any(fn1, fn2, ...) -> i, results of fn_i: runs the functions as coroutines of
-- their own and returns when the first of them returns; the others are interrupted (see
-- sched:interrupt: a read that loses the race leaves its bytes in the stream) and have
-- unwound when any returns. Give co.sleep a function of its own to bound the wait:
--   local i, line = co.any(function() return a:read() end,
--                          function() return b:read() end,
--                          function() co.sleep(5) end)          -- i == 3: timed out
function Sched:any(...)
  local _, me = current()
  local n = select("#", ...)
  if n == 0 then error("bad argument #1 to 'any' (function expected)", 2) end
  local fns = { ... }
  for i = 1, n do
    if type(fns[i]) ~= "function" then
      argerror(i, "any", "function expected, got " .. numdesc(fns[i]), 2)
    end
  end
  local kids, remaining, winner, results = {}, n, nil, nil
  local function others(i)
    for j = 1, n do
      if j ~= i then self:interrupt(kids[j]) end
    end
  end
  for i = 1, n do
    local f = fns[i]
    kids[i] = self:spawn(function()
      local r = pack(f())
      if not winner then
        winner, results = i, r
        others(i)
      end
    end)
    self.on_exit[kids[i]] = function()
      remaining = remaining - 1
      if remaining == 0 and self.idle[me] then
        self.idle[me] = nil
        push(self, { me, n = 1 })
      end
    end
  end
  local interrupted = false
  while remaining > 0 do
    self.idle[me] = true
    local _, _, _, intr = co_yield(WAIT)
    self.idle[me] = nil
    if intr and not interrupted then
      interrupted = true
      others(0)
    end
  end
  if interrupted or not winner then error(INTERRUPTED, 0) end
  return winner, unpack(results, 1, results.n)
end

------------------------------------------------------------------------------------------
-- Module functions: the scheduler of the running coroutine, or the default one.
------------------------------------------------------------------------------------------

local default

--- co.default() -> the default scheduler (created on first use).
function M.default()
  if not default then default = assert(M.new()) end
  return default
end

local function here()
  local th, main = co_running()
  return (not main and owner[th]) or M.default()
end

function M.spawn(fn, ...) return here():spawn(fn, ...) end

--- co.run([fn, ...]) - spawn fn (if given) on the default scheduler and run it to the end.
function M.run(fn, ...)
  local s = M.default()
  if fn then s:spawn(fn, ...) end
  s:run()
end

--- co.yield() - let the other coroutines run.
function M.yield()
  local s, th = current()
  local _, _, _, intr = co_yield()
  if intr or s.interrupted[th] then error(INTERRUPTED, 0) end
end

--- co.interrupt(co) - see sched:interrupt.
function M.interrupt(th)
  local s = owner[th]
  if not s then return false end
  return s:interrupt(th)
end

function M.loop() return here().loop end
function M.listen(...) return here():listen(...) end
function M.local_listen(...) return here():local_listen(...) end
function M.udp(...) return here():udp(...) end

local function waiting(name)
  M[name] = function(...)
    local s = current()
    return s[name](s, ...)
  end
end
waiting("connect")
waiting("local_connect")
waiting("open")
waiting("sleep")
waiting("resolve")
waiting("any")

M.WAIT = WAIT
M.INTERRUPTED = INTERRUPTED
M.EOF = EOF
return M
