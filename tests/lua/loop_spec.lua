-- The idiomatic layer: every operation of a loop, completions as tables, errors.
local ioq = require "ioq"

-- Poll until pred(completions so far) is true; polls wait at most 5 s each so that a bug
-- fails the test instead of hanging it.
local function until_done(loop, n)
  local out = {}
  for _ = 1, 1000 do
    if #out >= n then break end
    local list = assert(loop:poll(5))
    for _, c in ipairs(list) do out[#out + 1] = c end
  end
  assert.are.equal(n, #out)
  return out
end

local function by_id(list)
  local t = {}
  for _, c in ipairs(list) do t[c.id] = c end
  return t
end

local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir -m 700 '" .. p .. "'"))
  return p
end

local function tcp_pair(loop)
  local l = assert(loop:tcp_listen("127.0.0.1:0"))
  local addr = assert(loop:sockname(l))
  local a = assert(loop:accept(l, 0, "accept"))
  local c = assert(loop:connect(addr, "connect"))
  local got = by_id(until_done(loop, 2))
  assert.is_true(got[a].ok and got[c].ok)
  assert.are.equal("accept", got[a].op)
  assert.are.equal("connect", got[c].token)
  return l, got[a].handle, got[c].handle, addr
end

describe("ioq loop", function()
  local loop
  before_each(function() loop = assert(ioq.loop()) end)
  after_each(function() loop:free() end)

  it("describes itself", function()
    local b = loop:backend()
    assert.is_true(b == "epoll" or b == "io_uring" or b == "kqueue")
    if os.getenv("IOQ_BACKEND") then assert.are.equal(os.getenv("IOQ_BACKEND"), b) end
    assert.are.equal("integer", math.type(loop:caps()))
    assert.are.equal("integer", math.type(loop:now()))
    assert.is_true(loop:fd() >= 0)
    assert.is_true(loop:submit())
    local v, s = ioq.version()
    assert.are.equal(ioq.VERSION_NUMBER, v)
    assert.are.equal(ioq.VERSION_STRING, s)
    assert.are.equal("ENOENT", ioq.errname(ioq.ENOENT))
  end)

  it("posts, wakes and polls without waiting", function()
    assert.are.same({}, loop:poll(0))
    assert.is_true(loop:wake())
    assert.are.same({}, loop:poll())
    local token = { any = "Lua value" }
    local id = assert(loop:post(42, token))
    local c = until_done(loop, 1)[1]
    assert.are.equal(id, c.id)
    assert.are.equal(token, c.token)
    assert.are.equal("post", c.op)
    assert.are.equal(42, c.result)
    assert.are.equal(0, loop:pending())
  end)

  it("fires timeouts in order and cancels them", function()
    local late = assert(loop:timeout(3600, "late"))
    local early = assert(loop:timeout(0, "early"))
    local c = until_done(loop, 1)[1]
    assert.are.equal(early, c.id)
    assert.are.equal("timeout", c.op)
    local cancel = assert(loop:cancel(late, "cancel"))
    local got = by_id(until_done(loop, 2))
    assert.are.equal(ioq.ECANCELED, got[late].code)
    assert.is_string(got[late].err)
    assert.are.equal(1, got[cancel].result)
    assert.are.equal("cancel", got[cancel].op)
    assert.has_error(function() loop:cancel("late") end)
  end)

  it("fires absolute timeouts, never early, and cancels them", function()
    local base = loop:now()
    local second = assert(loop:timeout_at(base + 20000000, "second"))
    local first = assert(loop:timeout_at(base + 10000000, "first"))
    local got = until_done(loop, 2)
    assert.are.equal(first, got[1].id)
    assert.are.equal(second, got[2].id)
    assert.are.equal("timeout", got[1].op)
    assert.is_true(loop:now() >= base + 20000000)
    -- Past deadlines complete at the next poll, in submission order.
    local a = assert(loop:timeout_at(0))
    local b = assert(loop:timeout_at(base))
    local cs = loop:poll(0)
    assert.are.equal(2, #cs)
    assert.are.equal(a, cs[1].id)
    assert.are.equal(b, cs[2].id)
    local far = assert(loop:timeout_at(math.maxinteger))
    local cancel = assert(loop:cancel(far))
    got = by_id(until_done(loop, 2))
    assert.are.equal(ioq.ECANCELED, got[far].code)
    assert.are.equal(1, got[cancel].result)
    local h, _, code = loop:timeout_at(-1)
    assert.is_nil(h)
    assert.are.equal(ioq.EINVAL, code)
    assert.has_error(function() loop:timeout_at(1.5) end)
    assert.has_error(function() loop:timeout_at("1") end)
    assert.are.equal(0, loop:pending())
  end)

  it("connects, sends, receives, shuts down and closes TCP streams", function()
    local l, server, client, addr = tcp_pair(loop)
    assert.are.equal(addr, loop:peername(client))
    assert.is_string(loop:sockname(server))
    assert.is_true(loop:setopt(client, "nodelay", true))
    assert.is_true(loop:setopt(client, ioq.OPT_SNDBUF, 65536))
    local s = assert(loop:send(client, "hello"))
    local r = assert(loop:recv(server, 100))
    local got = by_id(until_done(loop, 2))
    assert.are.equal(5, got[s].result)
    assert.are.equal("hello", got[r].data)

    local buf = ioq.buffer(16)
    s = assert(loop:sendv(client, { "a", ioq.buffer("bc"), "def" }))
    r = assert(loop:recv(server, buf))
    got = by_id(until_done(loop, 2))
    assert.are.equal(6, got[s].result)
    assert.are.equal(buf, got[r].buf)
    assert.are.equal("abcdef", buf:tostring())
    assert.are.equal(6, #buf)

    local sh = assert(loop:shutdown(client))
    r = assert(loop:recv(server, 100))
    got = by_id(until_done(loop, 2))
    assert.are.equal(0, got[sh].result)
    assert.are.equal("", got[r].data)

    local pending = assert(loop:recv(client, 10))
    local cl = assert(loop:close(client))
    got = until_done(loop, 2)
    assert.are.equal(pending, got[1].id)
    assert.are.equal(ioq.ECANCELED, got[1].code)
    assert.are.equal(cl, got[2].id)
    assert.are.equal("close", got[2].op)
    local _, _, code = loop:send(client, "x")
    assert.are.equal(ioq.EBADHANDLE, code)
    assert(loop:close(server))
    assert(loop:close(l))
    until_done(loop, 2)
    assert.are.equal(0, loop:pinned())
  end)

  it("accepts many connections with one multishot accept", function()
    local l = assert(loop:tcp_listen("127.0.0.1:0"))
    local addr = loop:sockname(l)
    local acc = assert(loop:accept(l, ioq.MULTISHOT))
    for _ = 1, 3 do assert(loop:connect(addr)) end
    local accepted = 0
    local handles = {}
    for _, c in ipairs(until_done(loop, 6)) do
      assert.is_true(c.ok)
      if c.id == acc then
        assert.is_true(c.more)
        accepted = accepted + 1
      end
      handles[#handles + 1] = c.handle
    end
    assert.are.equal(3, accepted)
    assert(loop:close(l))
    local got = until_done(loop, 2)
    assert.are.equal(acc, got[1].id)
    assert.is_false(got[1].more)
    for _, h in ipairs(handles) do assert(loop:close(h)) end
    until_done(loop, #handles)
  end)

  it("reports refused connections as completions", function()
    local l = assert(loop:tcp_listen("127.0.0.1:0"))
    local addr = loop:sockname(l)
    assert(loop:close(l))
    until_done(loop, 1)
    local id = assert(loop:connect(addr))
    local c = until_done(loop, 1)[1]
    assert.are.equal(id, c.id)
    assert.is_false(c.ok)
    assert.are.equal(ioq.ECONNREFUSED, c.code)
  end)

  it("returns nil, message, code for expected failures", function()
    local h, msg, code = loop:tcp_listen("nonsense")
    assert.is_nil(h)
    assert.is_string(msg)
    assert.are.equal(ioq.EINVAL, code)
    local l = assert(loop:tcp_listen("127.0.0.1:0"))
    h, msg, code = loop:tcp_listen(loop:sockname(l))
    assert.is_nil(h)
    assert.are.equal(ioq.EADDRINUSE, code)
    h, msg, code = loop:recv(987654321, 10)
    assert.is_nil(h)
    assert.are.equal(ioq.EBADHANDLE, code)
    h, msg, code = loop:adopt(-1, "tcp")
    assert.is_nil(h)
    assert.are.equal(ioq.EINVAL, code)
    h, msg, code = loop:timeout(-1)
    assert.is_nil(h)
    assert.are.equal(ioq.EINVAL, code)
    assert.are.equal(0, loop:pending())
  end)

  it("raises errors for misuse", function()
    assert.has_error(function() loop:recv(1, "not a buffer") end)
    assert.has_error(function() loop:send(1, {}) end)
    assert.has_error(function() loop:setopt(1, "nosuchoption", 1) end)
    assert.has_error(function() loop:open("/x", "q") end)
    assert.has_error(function() loop:adopt(0, "nosuchkind") end)
    assert.has_error(function() ioq.loop({ backend = "nosuchbackend" }) end)
    local other = assert(ioq.loop())
    other:free()
    other:free() -- freeing twice is harmless
    assert.has_error(function() other:post(1) end)
    assert.has_error(function() other:poll(0) end)
  end)

  it("round-trips 64-bit handles", function()
    local _, server, client = tcp_pair(loop)
    for _, h in ipairs({ server, client }) do
      assert.are.equal("integer", math.type(h))
      assert.is_true(loop:setopt(h, "keepalive", 1))
    end
    local fd = assert(loop:os_handle(client))
    assert.are.equal("integer", math.type(fd))
  end)

  it("talks over local sockets", function()
    local dir = tmpdir()
    finally(function() os.execute("rm -rf '" .. dir .. "'") end)
    local path = dir .. "/ioq.sock"
    local l = assert(loop:local_listen(path, 0, ioq.UNLINK))
    local a = assert(loop:accept(l))
    local c = assert(loop:local_connect(path))
    local got = by_id(until_done(loop, 2))
    assert(loop:send(got[c].handle, "local"))
    local r = assert(loop:recv(got[a].handle, 16))
    for _, x in ipairs(until_done(loop, 2)) do
      if x.id == r then assert.are.equal("local", x.data) end
    end
    local _, _, code = loop:sockname(got[a].handle)
    assert.are.equal(ioq.ENOTSUP, code)
    local _, _, code2 = loop:local_connect(dir .. "/missing.sock") -- accepted; fails later
    assert.is_nil(code2)
    local f = until_done(loop, 1)[1]
    assert.are.equal(ioq.ENOENT, f.code)
    assert(loop:close(got[a].handle))
    assert(loop:close(got[c].handle))
    assert(loop:close(l))
    until_done(loop, 3)
  end)

  it("sends and receives UDP datagrams", function()
    local a = assert(loop:udp_bind("127.0.0.1:0"))
    local b = assert(loop:udp_bind("127.0.0.1:0"))
    local baddr = loop:sockname(b)
    local r = assert(loop:recvfrom(b, 100))
    local s = assert(loop:sendto(a, "datagram", baddr))
    local got = by_id(until_done(loop, 2))
    assert.are.equal(8, got[s].result)
    assert.are.equal("datagram", got[r].data)
    assert.are.equal(loop:sockname(a), got[r].addr)
    assert(loop:close(a))
    assert(loop:close(b))
    until_done(loop, 2)
  end)

  it("opens, writes, reads, syncs and closes files", function()
    local dir = tmpdir()
    finally(function() os.execute("rm -rf '" .. dir .. "'") end)
    local path = dir .. "/data.bin"
    local o = assert(loop:open(path, "w+", 384))
    local h = until_done(loop, 1)[1].handle
    assert.is_not_nil(h, o)
    local w = assert(loop:write(h, "0123456789", 0))
    local c = until_done(loop, 1)[1]
    assert.are.equal(w, c.id)
    assert.are.equal(10, c.result)
    assert(loop:fsync(h))
    assert.are.equal(0, until_done(loop, 1)[1].result)
    assert(loop:read(h, 4, 3))
    assert.are.equal("3456", until_done(loop, 1)[1].data)
    local buf = ioq.buffer(32)
    assert(loop:read(h, buf, 0))
    assert.are.equal(10, until_done(loop, 1)[1].result)
    assert.are.equal("0123456789", buf:tostring())
    assert(loop:read(h, 4, 100))
    assert.are.equal("", until_done(loop, 1)[1].data)
    assert(loop:close(h))
    until_done(loop, 1)
    assert(loop:open(dir .. "/missing", "r"))
    assert.are.equal(ioq.ENOENT, until_done(loop, 1)[1].code)
    assert(loop:open(path, "wx"))
    assert.are.equal(ioq.EEXIST, until_done(loop, 1)[1].code)
    local f = assert(io.open(path, "rb"))
    assert.are.equal("0123456789", f:read("a"))
    f:close()
  end)

  it("resolves numeric names off the loop thread", function()
    local id = assert(loop:resolve("127.0.0.1", "8080", ioq.RESOLVE_NUMERIC, 4))
    local c = until_done(loop, 1)[1]
    assert.are.equal(id, c.id)
    assert.is_true(c.result >= 1)
    assert.are.equal("127.0.0.1:8080", c.addrs[1])
    assert.are.equal(0, loop:pinned())
  end)

  it("receives into pool buffers, once and multishot", function()
    local _, server, client = tcp_pair(loop)
    local pool = assert(loop:pool_new(8, 64))
    local r = assert(loop:recv_pool(server, pool))
    assert(loop:send(client, "first"))
    for _, c in ipairs(until_done(loop, 2)) do
      if c.id == r then
        assert.are.equal("first", c.data)
        assert.is_number(c.buffer_id)
      end
    end
    r = assert(loop:recv_pool(server, pool, { multishot = true, keep = true }))
    assert(loop:send(client, "second"))
    local kept
    for _, c in ipairs(until_done(loop, 2)) do
      if c.id == r then
        assert.is_true(c.more)
        assert.are.equal("second", c.data)
        kept = c.buffer_id
      end
    end
    assert.are.equal("sec", loop:buf(pool, kept, 3))
    assert.is_true(loop:buf_release(pool, kept))
    local _, _, code = loop:buf_release(pool, kept)
    assert.are.equal(ioq.EINVAL, code)
    local _, _, busy = loop:close(pool)
    assert.are.equal(ioq.EBUSY, busy)
    assert(loop:cancel(r))
    local done = by_id(until_done(loop, 2))
    assert.is_false(done[r].more)
    assert(loop:close(pool))
    until_done(loop, 1)
  end)

  it("releases every pin once operations complete or the loop is freed", function()
    local _, server, client = tcp_pair(loop)
    local weak = setmetatable({}, { __mode = "k" })
    for i = 1, 10 do
      local b = ioq.buffer(8)
      weak[b] = true
      assert(loop:recv(server, b, i))
    end
    assert.are.equal(10, loop:pinned())
    local big = string.rep("z", 80)
    assert(loop:send(client, big))
    until_done(loop, 11)
    assert.are.equal(0, loop:pinned())
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(weak))

    local other = assert(ioq.loop())
    local _, s2 = tcp_pair(other)
    local b = ioq.buffer(8)
    assert(other:recv(s2, b))
    assert.are.equal(1, b:busy())
    other:free()
    assert.are.equal(0, b:busy())
  end)
  it("builds completion tables whose zero value and flags read 0", function()
    local id = assert(loop:post(7))
    local c = until_done(loop, 1)[1]
    assert.are.equal(id, c.id)
    assert.is_nil(c.token)
    assert.are.equal("post", c.op)
    assert.are.equal(ioq.OP_POST, c.opcode)
    assert.are.equal(7, c.result)
    assert.are.equal(0, c.value)
    assert.are.equal(0, c.flags)
    assert.is_true(c.ok)
    assert.is_false(c.more)
    assert.is_nil(c.err)
    assert.is_nil(c.code)
    assert.is_nil(c.data)
    -- a false token is a token, not "no token"
    assert(loop:post(-3, false))
    c = until_done(loop, 1)[1]
    assert.is_false(c.token)
    assert.is_false(c.ok)
    assert.are.equal(-3, c.code)
    assert.is_string(c.err)
  end)

  it("keeps sent strings and busy buffers until the final completion", function()
    local _, server, client = tcp_pair(loop)
    local weak = setmetatable({}, { __mode = "k" })
    do
      local b = ioq.buffer(string.rep("b", 1000))
      weak[b] = true
      assert(loop:send(client, b))
      assert.are.equal(1, b:busy())
      assert.has_error(function() b:set("x") end)
      assert(loop:send(client, string.rep("s", 1000)))
    end
    collectgarbage()
    collectgarbage()
    assert.is_not_nil(next(weak))
    assert.are.equal(2, loop:pinned())
    local into = ioq.buffer(4000)
    assert(loop:recv(server, into))
    assert.are.equal(3, loop:pinned())
    assert.has_error(function() loop:recv(server, into) end)
    local got, sends, n = {}, 0, 0
    for _ = 1, 100 do
      if sends == 2 and n == 2000 then break end
      for _, c in ipairs(assert(loop:poll(5))) do
        if c.op == "send" then
          sends = sends + 1
        else
          assert.are.equal(into, c.buf)
          got[#got + 1] = into:tostring()
          n = n + c.result
          if n < 2000 then assert(loop:recv(server, into)) end
        end
      end
    end
    assert.are.equal(2000, n)
    assert.are.equal(string.rep("b", 1000) .. string.rep("s", 1000), table.concat(got))
    assert.are.equal(0, into:busy())
    assert.are.equal(0, loop:pinned())
    assert.are.equal(0, loop:pending())
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(weak))
  end)

  it("reuses receive buffers, keeping about as many as receives in flight", function()
    local _, server, client = tcp_pair(loop)
    local function round(k)
      for i = 1, k do assert(loop:recv(server, 64, i)) end
      assert.are.equal(k, ioq.core.spare_inflight(loop[5]))
      -- Each receive may get any part of the bytes; with twice what they can hold, every
      -- one of them completes whatever the segments (the rest waits in the socket).
      assert(loop:send(client, string.rep("x", 2 * 64 * k)))
      local bytes, recvs = 0, 0
      for _ = 1, 1000 do
        if recvs == k then break end
        for _, c in ipairs(assert(loop:poll(5))) do
          if c.op == "recv" then
            recvs = recvs + 1
            assert.is_true(c.ok)
            assert.are.equal(string.rep("x", c.result), c.data)
            assert.is_nil(c.buf)
            bytes = bytes + c.result
          end
        end
      end
      assert.are.equal(k, recvs)
      assert.are.equal(0, ioq.core.spare_inflight(loop[5]))
      return bytes
    end
    -- 40 receives in flight, all completed in a burst: the cache keeps all 40, so that
    -- submitting them again allocates nothing (a fixed cap of 16 would not).
    assert.is_true(round(40) > 0)
    assert.are.equal(40, #loop.spare[64])
    assert.is_true(round(40) > 0)
    assert.are.equal(40, #loop.spare[64])
    -- After a lighter load for long enough (two windows of returned buffers, made short
    -- here), the cache lets the past peak go.
    ioq.core.state_window(loop[5], 64)
    for _ = 1, 100 do round(4) end
    assert.is_true(#loop.spare[64] <= 4 + 1 + 16) -- the peak of 4, a quarter, 16
    assert.are.equal(0, loop:pending())
    assert.are.equal(0, loop:pinned())
  end)

  it("counts pending operations without the refused ones", function()
    assert.is_nil(loop:recv(987654321, 10))
    assert.is_nil(loop:send(987654321, "x"))
    assert.is_nil(loop:recv(987654321, ioq.buffer(4)))
    local _, _, code = loop:recv(987654321, 0)
    assert.are.equal(ioq.EINVAL, code)
    assert.are.equal(0, loop:pending())
    local a = assert(loop:post(1))
    local b = assert(loop:post(2))
    assert.is_true(b > a)
    assert.are.equal(2, loop:pending())
    until_done(loop, 2)
    assert.are.equal(0, loop:pending())
    assert.are.equal(0, ioq.core.spare_inflight(loop[5]))
  end)
end)
