--[[ TCP echo servers in Lua 5.4 for the benchmark suite, one per style, each written the
way its library's documentation writes it. Same interface as echo_py.py:

    lua5.4 tests/bench/echo_lua.lua STYLE [addr:port]     (default 127.0.0.1:7000)

STYLE: luv      Debian's lua-luv (libuv): uv.new_tcp, listen, read_start, write
       ioq      the ioq module's loop: loop:poll() returns completion tables, a
                multishot accept, per connection a receive, then a send of what arrived,
                then a receive again. Of the two idiomatic ioq styles it is the one
                that costs less CPU per round trip, so it is the one to compare.
       ioq-co   ioq.co coroutines, one per connection: conn:recv() / conn:send()
       ioq-core ioq_core, the SWIG layer under the ioq module: no table per completion,
                the received ioq.buffer itself is sent back. Not how the README writes
                Lua code; it measures what the idiomatic layers cost.

IOQ_BACKEND applies to the ioq styles. The ioq modules must be on LUA_PATH / LUA_CPATH:
eval "$(tests/bench/lua_env.sh BUILD-DIR)" sets both. The server prints one line when it
listens, then echoes until it is killed. Every style sets TCP_NODELAY on its connections,
so that none of them waits on Nagle's algorithm when a message is echoed in pieces.
]]

-- 64 KiB reads, as libuv (and so luv) suggests to its read callback.
local READ_SIZE = 65536
local BACKLOG = 1024

local function parse(where)
  local host, port = where:match("^%[?(.-)%]?:(%d+)$")
  if not host then error("bad address " .. where .. " (host:port expected)", 0) end
  return host, tonumber(port)
end

local function ready(style, where, extra)
  io.stdout:write("echo_lua ", style, " listening on ", where, extra or "", "\n")
  io.stdout:flush()
end

local styles = {}

function styles.luv(where)
  local uv = require "luv"
  local host, port = parse(where)
  local server = uv.new_tcp()
  assert(server:bind(host, port))
  assert(server:listen(BACKLOG, function(err)
    assert(not err, err)
    local client = uv.new_tcp()
    server:accept(client)
    client:nodelay(true)
    client:read_start(function(rerr, chunk)
      if rerr or not chunk then
        client:close()
      else
        client:write(chunk)
      end
    end)
  end))
  ready("luv", where)
  uv.run()
end

function styles.ioq(where)
  local ioq = require "ioq"
  local loop = assert(ioq.loop())
  local listener = assert(loop:tcp_listen(where, BACKLOG))
  -- The token of a connection's operations is its handle.
  assert(loop:accept(listener, ioq.MULTISHOT))
  ready("ioq", where, " (backend " .. loop:backend() .. ")")
  while true do
    local list = assert(loop:poll())
    for i = 1, #list do
      local c = list[i]
      local op, h = c.op, c.token
      if op == "recv" then
        if not (c.ok and c.result > 0 and loop:send(h, c.data, h)) then loop:close(h, h) end
      elseif op == "send" then
        if not (c.ok and loop:recv(h, READ_SIZE, h)) then loop:close(h, h) end
      elseif op == "accept" then
        if c.ok then
          h = c.handle
          loop:setopt(h, "nodelay", true)
          if not loop:recv(h, READ_SIZE, h) then loop:close(h, h) end
        end
        -- A multishot accept can end (a transient error such as EMFILE): start another.
        if not c.more then assert(loop:accept(listener, ioq.MULTISHOT)) end
      end
    end
  end
end

styles["ioq-co"] = function(where)
  local co = require "ioq.co"
  co.run(function()
    local server = assert(co.listen(where, BACKLOG))
    ready("ioq-co", where, " (backend " .. co.loop():backend() .. ")")
    while true do
      local conn = server:accept()
      if conn then
        co.spawn(function()
          conn:setopt("nodelay", true)
          while true do
            local data = conn:recv(READ_SIZE)
            if not data or data == "" or not conn:send(data) then break end
          end
          conn:close()
        end)
      end
    end
  end)
end

styles["ioq-core"] = function(where)
  local core = require "ioq_core"
  local rc, loop = core.loop_new(nil)
  assert(rc == 0, core.strerror(rc))
  local addr
  rc, addr = core.addr_parse(where)
  assert(rc == 0, core.strerror(rc))
  local listener
  rc, listener = core.tcp_listen(loop, addr, BACKLOG, 0)
  assert(rc == 0, core.strerror(rc))
  local OP_ACCEPT, OP_RECV, OP_SEND = core.OP_ACCEPT, core.OP_RECV, core.OP_SEND
  local MORE, NODELAY = core.CQE_MORE, core.OPT_NODELAY
  local recv, send, close, poll = core.recv, core.send, core.close, core.poll
  -- Token 0 is the listener; a connection's token is its handle, which ioq never makes 0.
  assert(core.accept(loop, listener, core.MULTISHOT, 0) == 0)
  local bufs = {} -- handle -> its ioq.buffer, received into and sent from in turn
  local cq = core.cqes(256)
  ready("ioq-core", where, " (backend " .. core.loop_backend(loop) .. ")")
  while true do
    local n = poll(loop, cq, -1)
    assert(n >= 0, core.strerror(n))
    for i = 1, n do
      local h, res, value, op, flags = cq:get(i)
      if op == OP_ACCEPT then
        if res >= 0 then
          local b = core.buffer(READ_SIZE)
          bufs[value] = b
          core.setopt(loop, value, NODELAY, 1)
          if recv(loop, value, b, value) ~= 0 then close(loop, value, value) end
        end
        if flags & MORE == 0 then assert(core.accept(loop, listener, core.MULTISHOT, 0) == 0) end
      elseif op == OP_RECV then
        local b = bufs[h]
        if res > 0 then
          b:setlen(res)
          if send(loop, h, b, h) ~= 0 then close(loop, h, h) end
        else
          close(loop, h, h)
        end
      elseif op == OP_SEND then
        if res < 0 or recv(loop, h, bufs[h], h) ~= 0 then close(loop, h, h) end
      elseif op == core.OP_CLOSE then
        bufs[h] = nil
      end
    end
  end
end

local style, where = arg[1], arg[2] or "127.0.0.1:7000"
if not styles[style] then
  io.stderr:write("usage: echo_lua.lua luv|ioq|ioq-co|ioq-core [addr:port]\n")
  os.exit(2)
end
styles[style](where)
