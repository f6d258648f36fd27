-- ioq.co: coroutines that read like blocking code, many of them on one loop.
local ioq = require "ioq"
local co = require "ioq.co"

local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir -m 700 '" .. p .. "'"))
  return p
end

describe("ioq.co", function()
  local s
  before_each(function() s = assert(co.new()) end)
  after_each(function() s:close() end)

  it("echoes for many clients at once", function()
    local srv = assert(s:listen("127.0.0.1:0"))
    local addr = srv:sockname()
    local clients = 20
    local results = {}
    s:spawn(function()
      for _ = 1, clients do
        local c = assert(srv:accept())
        co.spawn(function()
          while true do
            local data = assert(c:recv(4096))
            if data == "" then break end
            assert(c:send(data))
          end
          assert(c:close())
        end)
      end
      assert(srv:close())
    end)
    for i = 1, clients do
      s:spawn(function()
        local c = assert(co.connect(addr))
        local got = {}
        for k = 1, 5 do
          local msg = ("client %d message %d"):format(i, k)
          assert.are.equal(#msg, c:send(msg))
          local want = #msg
          local parts = {}
          while want > 0 do
            local d = assert(c:recv(4096))
            parts[#parts + 1] = d
            want = want - #d
          end
          got[k] = table.concat(parts)
        end
        assert(c:shutdown())
        assert.are.equal("", c:recv(16))
        assert(c:close())
        results[i] = got
      end)
    end
    s:run()
    for i = 1, clients do
      assert.are.equal(5, #results[i])
      assert.are.equal(("client %d message 5"):format(i), results[i][5])
    end
    assert.are.equal(0, s.loop:pending())
    assert.are.equal(0, s.loop:pinned())
  end)

  it("moves a large payload in order with sendv and recv_into", function()
    local srv = assert(s:listen("127.0.0.1:0"))
    local addr = srv:sockname()
    local payload = {}
    for i = 1, 200 do payload[i] = string.rep(string.char(65 + i % 26), 997) end
    local want = table.concat(payload)
    local got
    s:spawn(function()
      local c = assert(srv:accept())
      local buf = ioq.buffer(8192)
      local parts = {}
      while true do
        local n = assert(c:recv_into(buf))
        if n == 0 then break end
        parts[#parts + 1] = buf:tostring()
      end
      got = table.concat(parts)
      c:close()
      srv:close()
    end)
    s:spawn(function()
      local c = assert(co.connect(addr))
      assert.are.equal(#want, c:sendv(payload))
      c:shutdown()
      c:close()
    end)
    s:run()
    assert.are.equal(#want, #got)
    assert.is_true(got == want)
  end)

  it("sleeps and wakes coroutines in deadline order", function()
    local order = {}
    -- Started shortest first, so the deadlines increase whatever the machine's speed.
    for _, d in ipairs({ 0.01, 0.02, 0.03 }) do
      s:spawn(function()
        assert(co.sleep(d))
        order[#order + 1] = d
      end)
    end
    s:run()
    assert.are.same({ 0.01, 0.02, 0.03 }, order)
  end)

  it("yields to other coroutines", function()
    local trace = {}
    for name in ("ab"):gmatch(".") do
      s:spawn(function()
        for i = 1, 2 do
          trace[#trace + 1] = name .. i
          co.yield()
        end
      end)
    end
    s:run()
    assert.are.same({ "a1", "b1", "a2", "b2" }, trace)
  end)

  it("returns nil, message, code for failures", function()
    local l = assert(s:listen("127.0.0.1:0"))
    local addr = l:sockname()
    s:spawn(function()
      assert(l:close())
      local c, msg, code = co.connect(addr)
      assert.is_nil(c)
      assert.is_string(msg)
      assert.are.equal(ioq.ECONNREFUSED, code)
      local f, _, code2 = co.open("/nonexistent/dir/file")
      assert.is_nil(f)
      assert.are.equal(ioq.ENOENT, code2)
    end)
    s:run()
  end)

  it("cancels a receive of another coroutine when its socket closes", function()
    local srv = assert(s:listen("127.0.0.1:0"))
    local addr = srv:sockname()
    local code
    s:spawn(function()
      local c = assert(srv:accept())
      co.spawn(function()
        local d, _, e = c:recv(10)
        assert.is_nil(d)
        code = e
      end)
      co.yield()
      assert(c:close())
      assert(srv:close())
    end)
    s:spawn(function()
      local c = assert(co.connect(addr))
      while not code do co.sleep(0.001) end
      c:close()
    end)
    s:run()
    assert.are.equal(ioq.ECANCELED, code)
  end)

  it("times out a receive that gets no data", function()
    local srv = assert(s:listen("127.0.0.1:0"))
    local addr = srv:sockname()
    local timed_out = false
    s:spawn(function()
      local c = assert(srv:accept())
      c:settimeout(0.02)
      local d, msg, code = c:recv(10)
      timed_out = true
      assert.is_nil(d)
      assert.is_string(msg)
      assert.are.equal(ioq.ETIMEDOUT, code)
      -- Data that arrives later is not lost.
      c:settimeout(nil)
      assert.are.equal("late", c:recv(10))
      c:close()
      srv:close()
    end)
    s:spawn(function()
      local c = assert(co.connect(addr))
      while not timed_out do co.sleep(0.001) end
      c:send("late")
      assert.are.equal("", c:recv(10))
      c:close()
    end)
    s:run()
    assert.are.equal(0, s.loop:pending())
  end)

  it("does UDP, files and name resolution", function()
    local dir = tmpdir()
    finally(function() os.execute("rm -rf '" .. dir .. "'") end)
    s:spawn(function()
      local a = assert(s:udp("127.0.0.1:0"))
      local b = assert(s:udp("127.0.0.1:0"))
      co.spawn(function()
        assert.are.equal(3, a:sendto("udp", b:sockname()))
      end)
      local data, from = b:recvfrom()
      assert.are.equal("udp", data)
      assert.are.equal(a:sockname(), from)
      a:close()
      b:close()

      local f = assert(co.open(dir .. "/f.txt", "w+"))
      assert.are.equal(5, f:write("hello"))
      assert.are.equal(6, f:write(" world", 5))
      assert(f:fsync())
      assert.are.equal("world", f:read(100, 6))
      assert.are.equal("", f:read(1, 11))
      assert(f:close())

      local addrs = assert(co.resolve("127.0.0.1", "53", ioq.RESOLVE_NUMERIC))
      assert.are.equal("127.0.0.1:53", addrs[1])
    end)
    s:run()
  end)

  it("talks over local sockets", function()
    local dir = tmpdir()
    finally(function() os.execute("rm -rf '" .. dir .. "'") end)
    local path = dir .. "/co.sock"
    local l = assert(s:local_listen(path))
    s:spawn(function()
      local c = assert(l:accept())
      c:send(c:recv(100))
      c:close()
      l:close()
    end)
    s:spawn(function()
      local c = assert(co.local_connect(path))
      c:send("over unix")
      assert.are.equal("over unix", c:recv(100))
      c:close()
    end)
    s:run()
  end)

  it("raises coroutine errors from run with a traceback", function()
    s:spawn(function()
      co.sleep(0)
      error("boom")
    end)
    assert.has_error(function() s:run() end)
    local ok, err = pcall(function()
      local other = assert(co.new())
      other:spawn(function() error("second boom") end)
      other:run()
    end)
    assert.is_false(ok)
    assert.is_truthy(err:find("second boom", 1, true))
    assert.is_truthy(err:find("traceback", 1, true))
  end)

  it("refuses waiting calls outside a coroutine", function()
    assert.has_error(function() co.sleep(0.01) end)
    assert.has_error(function() co.connect("127.0.0.1:1") end)
    assert.has_error(function() s:spawn("not a function") end)
  end)

  it("detects coroutines that wait for nothing", function()
    s:spawn(function() coroutine.yield(co.WAIT) end)
    assert.has_error(function() s:run() end)
  end)

  it("runs on the default scheduler with co.run", function()
    local done = false
    co.run(function()
      co.sleep(0)
      done = true
    end)
    assert.is_true(done)
  end)
  it("returns nil, message, code when ioq refuses a receive or a send", function()
    local srv = assert(s:listen("127.0.0.1:0"))
    local addr = srv:sockname()
    local got = {}
    s:spawn(function()
      local c = assert(srv:accept())
      assert(c:close())
      assert(srv:close())
    end)
    s:spawn(function()
      local c = assert(co.connect(addr))
      assert(s.loop:close(c:handle())) -- behind the stream's back: its handle is stale now
      got.recv = table.pack(c:recv(16))
      got.send = table.pack(c:send("x"))
      c.h = nil
      assert(s:sleep(0)) -- lets the close complete
    end)
    s:run()
    assert.is_nil(got.recv[1])
    assert.is_string(got.recv[2])
    assert.are.equal(ioq.EBADHANDLE, got.recv[3])
    assert.is_nil(got.send[1])
    assert.are.equal(ioq.EBADHANDLE, got.send[3])
    assert.are.equal(0, got.send[4])
    assert.are.equal(0, s.loop:pending())
  end)
end)
