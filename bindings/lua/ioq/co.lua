--- ioq.co: coroutines over an ioq loop, so that I/O code reads as if it blocked.
--
-- local co = require "ioq.co"
-- co.spawn(function()
--   local srv = assert(co.listen("127.0.0.1:8080"))
--   while true do
--     local s = assert(srv:accept())
--     co.spawn(function()
--       while true do
--         local data = s:recv(4096)
--         if not data or data == "" then break end   -- "" is the end of the stream
--         s:send(data)
--       end
--       s:close()
--     end)
--   end
-- end)
-- co.run()
--
-- A scheduler owns one loop and runs many coroutines on it: an operation submits, the
-- coroutine yields, and the scheduler resumes it with the completion. Failures return
-- nil, message, code as in ioq; calling a waiting function outside a scheduler's
-- coroutine is misuse and raises an error.
local ioq = require "ioq"

local M = {}

-- Upvalues for the per-operation path: a global or field lookup per call adds up.
local co_create, co_resume, co_yield = coroutine.create, coroutine.resume, coroutine.yield
local co_running, co_status = coroutine.running, coroutine.status

local WAIT = setmetatable({}, { __tostring = function() return "ioq.co.WAIT" end })
local owner = setmetatable({}, { __mode = "k" }) -- coroutine -> scheduler

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
  return setmetatable({
    loop = loop,
    waiting = {},   -- operation id -> coroutine
    ready = {},     -- queue of {coroutine, args...}
    head = 1,
    tail = 0,
    live = 0,
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
  push(self, table.pack(th, ...))
  return th
end

-- After a resume of th that did not yield WAIT (which means: alive, waiting).
local function resumed(self, th, ok, r)
  if not ok then
    self.live = self.live - 1
    owner[th] = nil
    error(debug.traceback(th, tostring(r)), 0)
  end
  if co_status(th) == "dead" then
    self.live = self.live - 1
    owner[th] = nil
  elseif r ~= WAIT then
    -- A bare coroutine.yield() gives the other coroutines a turn.
    push(self, { th, n = 1 })
  end
end

local function resume(self, th, ...)
  local ok, r = co_resume(th, ...)
  if r ~= WAIT or not ok then resumed(self, th, ok, r) end
end

--- sched:step([timeout]) - run ready coroutines, then poll once and resume the waiting
-- ones. Returns true while coroutines are alive.
function Sched:step(timeout)
  while self.head <= self.tail do
    local item = self.ready[self.head]
    self.ready[self.head] = nil
    self.head = self.head + 1
    resume(self, table.unpack(item, 1, item.n))
  end
  if self.live == 0 then return false end
  local loop = self.loop
  if loop:pending() == 0 then
    error("ioq.co: every coroutine waits, but no operation is pending (deadlock)", 2)
  end
  local list, err, code = loop:poll(timeout)
  if not list then error(err .. " (" .. tostring(code) .. ")", 2) end
  local waiting = self.waiting
  for i = 1, #list do
    local c = list[i]
    local id = c.id
    local th = waiting[id]
    if th and not c.more then
      waiting[id] = nil
      local ok, r = co_resume(th, c)
      if r ~= WAIT or not ok then resumed(self, th, ok, r) end
    end
  end
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

local function current(level)
  local th, main = co_running()
  local s = owner[th]
  if main or not s then
    error("ioq.co: this call waits; make it inside a coroutine started by spawn", level or 3)
  end
  return s, th
end

-- Wait for the final completion of operation id (id, msg, code as a submit returned).
local function await(s, id, msg, code)
  if not id then return nil, msg, code end
  s.waiting[id] = (co_running())
  return co_yield(WAIT)
end

-- As await, but cancel the operation after `seconds`. A cancelled operation may still
-- have finished in the kernel: its own result wins over the timeout then.
local function await_timeout(s, seconds, id, msg, code)
  if not id then return nil, msg, code end
  if not seconds then return await(s, id) end
  local th = coroutine.running()
  local tid = assert(s.loop:timeout(seconds))
  s.waiting[id] = th
  s.waiting[tid] = th
  local c = coroutine.yield(WAIT)
  if c.id == id then
    s.waiting[tid] = nil
    s.loop:cancel(tid)
    return c
  end
  s.loop:cancel(id)
  c = coroutine.yield(WAIT)
  if c.code == ioq.ECANCELED then
    return { id = id, ok = false, result = ioq.ETIMEDOUT, code = ioq.ETIMEDOUT,
             err = ioq.strerror(ioq.ETIMEDOUT) }
  end
  return c
end

local function result(c, m, code)
  if not c then return nil, m, code end
  if not c.ok then return nil, c.err, c.code end
  return c
end

------------------------------------------------------------------------------------------
-- Streams (TCP and local connections)
------------------------------------------------------------------------------------------

local Stream = {}
Stream.__index = Stream
M.Stream = Stream

local function stream(s, h)
  return setmetatable({ sched = s, loop = s.loop, h = h }, Stream)
end

function Stream:__tostring() return "ioq.co.stream(" .. tostring(self.h) .. ")" end

local function live(obj)
  local h = obj.h
  if not h then error("ioq.co: object used after close", 3) end
  return h
end

--- stream:settimeout(seconds or nil) - receives and sends fail with ETIMEDOUT after it.
function Stream:settimeout(seconds) self.timeout = seconds end

--- stream:recv([n]) -> a string of 1..n bytes; "" at the end of the stream.
function Stream:recv(n)
  local th, main = co_running()
  local s = owner[th]
  if main or not s then current() end
  local h = self.h
  if not h then error("ioq.co: object used after close", 2) end
  local id, m, code = self.loop:recv(h, n or 4096)
  if not id then return nil, m, code end
  local c
  local seconds = self.timeout
  if seconds then
    c = await_timeout(s, seconds, id)
  else
    s.waiting[id] = th
    c = co_yield(WAIT)
  end
  if not c.ok then return nil, c.err, c.code end
  return c.data
end

--- stream:recv_into(buf) -> the number of bytes received into the ioq.buffer (0 at end).
function Stream:recv_into(buf)
  local s = current()
  local c, m, code = result(await_timeout(s, self.timeout, self.loop:recv(live(self), buf)))
  if not c then return nil, m, code end
  return c.result
end

--- stream:send(data) -> bytes sent (all of them), or nil, message, code, bytes_sent.
function Stream:send(data)
  local th, main = co_running()
  local s = owner[th]
  if main or not s then current() end
  local h = self.h
  if not h then error("ioq.co: object used after close", 2) end
  local id, m, code = self.loop:send(h, data)
  if not id then return nil, m, code, 0 end
  local c
  local seconds = self.timeout
  if seconds then
    c = await_timeout(s, seconds, id)
  else
    s.waiting[id] = th
    c = co_yield(WAIT)
  end
  if not c.ok then return nil, c.err, c.code, c.value or 0 end
  return c.result
end

--- stream:sendv(pieces) -> total bytes sent.
function Stream:sendv(pieces)
  local s = current()
  local c, m, code = await_timeout(s, self.timeout, self.loop:sendv(live(self), pieces))
  if not c then return nil, m, code, 0 end
  if not c.ok then return nil, c.err, c.code, c.value or 0 end
  return c.result
end

function Stream:shutdown()
  local s = current()
  local c, m, code = result(await(s, self.loop:shutdown(live(self))))
  if not c then return nil, m, code end
  return true
end

--- obj:close() - close the handle; operations of other coroutines on it end ECANCELED.
local function close(self)
  if not self.h then return true end
  local s = current()
  local h = self.h
  self.h = nil
  local c, m, code = result(await(s, self.loop:close(h)))
  if not c then return nil, m, code end
  return true
end
Stream.close = close

function Stream:sockname() return self.loop:sockname(live(self)) end
function Stream:peername() return self.loop:peername(live(self)) end
function Stream:setopt(opt, value) return self.loop:setopt(live(self), opt, value) end
function Stream:handle() return self.h end

------------------------------------------------------------------------------------------
-- Listeners
------------------------------------------------------------------------------------------

local Listener = {}
Listener.__index = Listener
M.Listener = Listener

function Listener:__tostring() return "ioq.co.listener(" .. tostring(self.h) .. ")" end

--- listener:accept() -> a stream.
function Listener:accept()
  local s = current()
  local c, m, code = result(await(s, self.loop:accept(live(self))))
  if not c then return nil, m, code end
  return stream(s, c.handle)
end
Listener.close = close
function Listener:sockname() return self.loop:sockname(live(self)) end
function Listener:handle() return self.h end

------------------------------------------------------------------------------------------
-- UDP
------------------------------------------------------------------------------------------

local Udp = {}
Udp.__index = Udp
M.Udp = Udp

--- udp:sendto(data, addr) -> bytes sent.
function Udp:sendto(data, addr)
  local s = current()
  local c, m, code = result(await(s, self.loop:sendto(live(self), data, addr)))
  if not c then return nil, m, code end
  return c.result
end

--- udp:recvfrom([n]) -> data, "ip:port" of the sender.
function Udp:recvfrom(n)
  local s = current()
  local c, m, code = result(await_timeout(s, self.timeout,
                                          self.loop:recvfrom(live(self), n or 65536)))
  if not c then return nil, m, code end
  return c.data, c.addr
end
Udp.settimeout = Stream.settimeout
Udp.close = close
function Udp:sockname() return self.loop:sockname(live(self)) end
function Udp:setopt(opt, value) return self.loop:setopt(live(self), opt, value) end
function Udp:handle() return self.h end

------------------------------------------------------------------------------------------
-- Files
------------------------------------------------------------------------------------------

local File = {}
File.__index = File
M.File = File

--- file:read(n [, offset]) -> a string of up to n bytes; "" at the end of the file.
function File:read(n, offset)
  local s = current()
  local c, m, code = result(await(s, self.loop:read(live(self), n, offset or 0)))
  if not c then return nil, m, code end
  return c.data
end

--- file:write(data [, offset]) -> bytes written.
function File:write(data, offset)
  local s = current()
  local c, m, code = result(await(s, self.loop:write(live(self), data, offset or 0)))
  if not c then return nil, m, code end
  return c.result
end

function File:fsync()
  local s = current()
  local c, m, code = result(await(s, self.loop:fsync(live(self))))
  if not c then return nil, m, code end
  return true
end
File.close = close
function File:handle() return self.h end

------------------------------------------------------------------------------------------
-- Scheduler methods that create objects or wait
------------------------------------------------------------------------------------------

--- sched:listen(addr [, backlog [, flags]]) -> listener (does not wait).
function Sched:listen(addr, backlog, flags)
  local h, m, code = self.loop:tcp_listen(addr, backlog, flags)
  if not h then return nil, m, code end
  return setmetatable({ sched = self, loop = self.loop, h = h }, Listener)
end

function Sched:local_listen(path, backlog, flags)
  local h, m, code = self.loop:local_listen(path, backlog, flags)
  if not h then return nil, m, code end
  return setmetatable({ sched = self, loop = self.loop, h = h }, Listener)
end

--- sched:udp(addr [, flags]) -> a bound UDP socket (does not wait).
function Sched:udp(addr, flags)
  local h, m, code = self.loop:udp_bind(addr, flags)
  if not h then return nil, m, code end
  return setmetatable({ sched = self, loop = self.loop, h = h }, Udp)
end

--- sched:connect(addr) -> stream (waits).
function Sched:connect(addr)
  local c, m, code = result(await(self, self.loop:connect(addr)))
  if not c then return nil, m, code end
  return stream(self, c.handle)
end

function Sched:local_connect(path)
  local c, m, code = result(await(self, self.loop:local_connect(path)))
  if not c then return nil, m, code end
  return stream(self, c.handle)
end

--- sched:open(path [, mode [, perm]]) -> file (waits); mode as ioq's loop:open.
function Sched:open(path, mode, perm)
  local c, m, code = result(await(self, self.loop:open(path, mode or "r", perm)))
  if not c then return nil, m, code end
  return setmetatable({ sched = self, loop = self.loop, h = c.handle }, File)
end

--- sched:sleep(seconds).
function Sched:sleep(seconds)
  local c, m, code = result(await(self, self.loop:timeout(seconds)))
  if not c then return nil, m, code end
  return true
end

--- sched:resolve(host, service [, flags]) -> list of "ip:port".
function Sched:resolve(host, service, flags)
  local c, m, code = result(await(self, self.loop:resolve(host, service, flags)))
  if not c then return nil, m, code end
  return c.addrs or {}
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
  local th, main = coroutine.running()
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
  current()
  coroutine.yield()
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

M.WAIT = WAIT
return M
