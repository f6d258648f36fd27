-- ioq.co streams: buffered reads, sends that go on while the coroutine does, connecting
-- by name and with a timeout, waiting for the first of several operations.
local ioq = require "ioq"
local co = require "ioq.co"

describe("ioq.co streams", function()
  local s
  before_each(function() s = assert(co.new()) end)
  after_each(function() s:close() end)

  -- Runs server(conn) and client(conn) on the two ends of a fresh connection.
  local function pair(server, client)
    local srv = assert(s:listen("127.0.0.1:0"))
    local addr = srv:sockname()
    s:spawn(function()
      local c = assert(srv:accept())
      srv:close()
      server(c)
      c:close()
    end)
    s:spawn(function()
      local c = assert(co.connect(addr))
      client(c)
      c:close()
    end)
    s:run()
  end

  it("reads lines, counts and everything, in pieces of any size", function()
    local got = {}
    pair(function(c)
      -- One byte per send, so that lines and counts span many receives.
      c:setwritelimit(0)
      local text = "first\r\nsecond\nthird\n" .. "0123456789" .. "tail\nrest"
      for i = 1, #text do assert(c:send(text:sub(i, i))) end
      c:shutdown()
    end, function(c)
      got[1] = c:read("l")
      got[2] = c:read("L")
      got[3] = c:read()          -- "l" is the default
      got[4] = c:read(4)
      got[5] = c:recv(1)         -- buffered bytes come first
      got[6] = c:read(5)
      got[7] = c:read("l")
      got[8] = c:read("a")
      got[9] = table.pack(c:read("l"))
      got[10] = table.pack(c:read(3))
      got[11] = c:read("a")
    end)
    assert.are.equal("first", got[1])
    assert.are.equal("second\n", got[2])
    assert.are.equal("third", got[3])
    assert.are.equal("0123", got[4])
    assert.are.equal("4", got[5])
    assert.are.equal("56789", got[6])
    assert.are.equal("tail", got[7])
    assert.are.equal("rest", got[8])
    assert.are.same({ nil, "end of stream", co.EOF, n = 3 }, got[9])
    assert.are.same({ nil, "end of stream", co.EOF, "", n = 4 }, got[10])
    assert.are.equal("", got[11])
  end)

  it("returns a last line without its end, and a short count with what came", function()
    local line, short
    pair(function(c)
      c:send("no newline")
      c:shutdown()
    end, function(c)
      line = c:read("l")
    end)
    pair(function(c)
      c:send("abc")
      c:shutdown()
    end, function(c)
      short = table.pack(c:read(10))
    end)
    assert.are.equal("no newline", line)
    assert.are.same({ nil, "end of stream", co.EOF, "abc", n = 4 }, short)
  end)

  it("iterates over lines and refuses a line longer than the limit, keeping it", function()
    local lines, long = {}, nil
    pair(function(c)
      c:send("a\nb\nc\n")
      c:send(string.rep("x", 100) .. "\n")
      c:shutdown()
    end, function(c)
      for _ = 1, 3 do lines[#lines + 1] = c:read() end
      c:setlinelimit(50)
      long = table.pack(c:read("l"))
      -- The bytes stay: a count read takes them.
      lines[#lines + 1] = c:read(101)
      for l in c:lines() do lines[#lines + 1] = l end
    end)
    assert.are.same({ "a", "b", "c", string.rep("x", 100) .. "\n" }, lines)
    assert.is_nil(long[1])
    assert.are.equal(ioq.EMSGSIZE, long[3])
  end)

  it("sends without waiting, in order, and reports a failed send later", function()
    local n, results = 2000, {}
    local sum = 0
    pair(function(c)
      for i = 1, n do
        local msg = ("line %d\n"):format(i)
        results[i] = c:send(msg)
      end
      assert(c:flush())
      c:shutdown()
    end, function(c)
      local i = 0
      for l in c:lines() do
        i = i + 1
        assert.are.equal(("line %d"):format(i), l)
        sum = sum + 1
      end
    end)
    assert.are.equal(n, sum)
    for i = 1, n do assert.are.equal(#(("line %d\n"):format(i)), results[i]) end

    -- The peer resets; a send that is in flight then fails, and the next one says so.
    local code, bytes
    pair(function(c)
      c:read(1)
      assert(c:setopt("linger", 0))
      c:close() -- with linger 0: a reset
    end, function(c)
      c:send("x")
      for _ = 1, 200 do
        local ok, _, e, b = c:send(string.rep("y", 1000))
        if not ok then code, bytes = e, b break end
        co.sleep(0.001)
      end
    end)
    assert.is_true(code == ioq.ECONNRESET or code == ioq.EPIPE, tostring(code))
    assert.are.equal(0, bytes)
  end)

  it("waits for room past the write limit, and every send with a limit of 0", function()
    local got
    local flights = {}
    pair(function(c)
      c:setwritelimit(0)
      local big = string.rep("z", 1 << 20)
      assert.are.equal(#big, c:send(big))
      flights[1] = c[5]            -- no send in flight once it returned
      c:setwritelimit(4096)
      for _ = 1, 100 do c:send(string.rep("w", 1000)) end
      flights[2] = c[4]            -- bytes in flight stay near the limit
      assert(c:flush())
      flights[3] = c[5]
      c:shutdown()
    end, function(c)
      got = assert(c:read("a"))
    end)
    assert.are.equal((1 << 20) + 100000, #got)
    assert.are.equal(0, flights[1])
    assert.is_true(flights[2] <= 4096 + 1000)
    assert.are.equal(0, flights[3])
  end)

  it("connects by host name, and by host and port", function()
    local srv = assert(s:listen("127.0.0.1:0"))
    local port = tonumber(srv:sockname():match(":(%d+)$"))
    local peers = {}
    s:spawn(function()
      for _ = 1, 3 do
        local c = assert(srv:accept())
        c:send("hi")
        c:close()
      end
      srv:close()
    end)
    s:spawn(function()
      -- "localhost" may resolve to ::1 first: that refuses, 127.0.0.1 answers.
      for _, args in ipairs({ { "localhost:" .. port }, { "localhost", port },
                              { "127.0.0.1", tostring(port), 5 } }) do
        local c = assert(co.connect(table.unpack(args)))
        peers[#peers + 1] = c:peername()
        assert.are.equal("hi", c:read(2))
        c:close()
      end
    end)
    s:run()
    assert.are.same({ "127.0.0.1:" .. port, "127.0.0.1:" .. port, "127.0.0.1:" .. port },
                    peers)
    -- listen resolves a name too, inside a coroutine (resolving waits); outside, it says so.
    local _, msg, code = s:listen("localhost:0")
    assert.are.equal(ioq.EINVAL, code)
    assert.matches("needs resolving", msg)
    s:spawn(function()
      local l <close> = assert(s:listen("localhost:0"))
      local a = l:sockname()
      assert.is_truthy(a == "127.0.0.1:" .. a:match(":(%d+)$") or a:find("^%[::1%]"))
    end)
    s:run()
  end)

  it("times out a connect that gets no answer", function()
    -- A listener whose backlog is full drops the SYNs of further connects.
    local srv = assert(s:listen("127.0.0.1:0", 1))
    local addr = srv:sockname()
    local results, took = {}, nil
    s:spawn(function()
      local held = {}
      for i = 1, 4 do
        local t0 = s.loop:now()
        local c, _, code = co.connect(addr, { timeout = 0.1 })
        if c then held[#held + 1] = c else results[#results + 1] = code end
        if i == 4 then took = (s.loop:now() - t0) / 1e9 end
      end
      for _, c in ipairs(held) do c:close() end
      srv:close()
    end)
    s:run()
    assert.is_true(#results >= 1)
    for _, code in ipairs(results) do assert.are.equal(ioq.ETIMEDOUT, code) end
    assert.is_true(took >= 0.1 and took < 5, tostring(took))
    assert.are.equal(0, s.loop:pending())
  end)

  it("returns the first of several operations and leaves nothing behind", function()
    local srv = assert(s:listen("127.0.0.1:0"))
    local addr = srv:sockname()
    local out = {}
    s:spawn(function()
      local a1 = assert(co.connect(addr))
      local a2 = assert(srv:accept())
      local b1 = assert(co.connect(addr))
      local b2 = assert(srv:accept())
      b1:send("from b\n")
      local i, line = co.any(function() return a2:read() end,
                             function() return b2:read() end,
                             function() co.sleep(5) end)
      out.first = { i, line }
      -- The read of a2 lost the race; it took nothing with it.
      a1:send("from a\n")
      out.after = a2:read()
      -- Both ready at once: one wins, the other's line stays readable.
      a1:send("a again\n")
      b1:send("b again\n")
      co.sleep(0.05)
      local j, l2 = co.any(function() return a2:read() end,
                           function() return b2:read() end)
      out.second = { j, l2 }
      out.other = (j == 1) and b2:read() or a2:read()
      -- Nothing comes: the sleep wins.
      local k = co.any(function() return a2:read() end, function() co.sleep(0.02) end)
      out.timeout = k
      for _, c in ipairs({ a1, a2, b1, b2 }) do c:close() end
      srv:close()
    end)
    s:run()
    assert.are.same({ 2, "from b" }, out.first)
    assert.are.equal("from a", out.after)
    assert.is_true(out.second[1] == 1 or out.second[1] == 2)
    local want = { "a again", "b again" }
    assert.are.equal(want[out.second[1]], out.second[2])
    assert.are.equal(want[3 - out.second[1]], out.other)
    assert.are.equal(2, out.timeout)
    assert.are.equal(0, s.loop:pending())
  end)

  it("interrupts a coroutine, which unwinds and closes what it held", function()
    local srv = assert(s:listen("127.0.0.1:0"))
    local addr = srv:sockname()
    local state = {}
    local waiter = s:spawn(function()
      local l <close> = assert(s:listen("127.0.0.1:0"))
      state.h = l:handle()
      state.started = true
      l:accept() -- never returns: interrupted
      state.after = true
    end)
    local sleeper = s:spawn(function() co.sleep(3600) state.woke = true end)
    local yielder = s:spawn(function() while true do co.yield() end end)
    local fresh
    s:spawn(function()
      co.sleep(0.01)
      fresh = s:spawn(function() state.fresh_ran = true end)
      assert.is_true(s:interrupt(fresh)) -- before it ever ran
      assert.is_true(s:interrupt(waiter))
      assert.is_true(co.interrupt(sleeper))
      assert.is_true(s:interrupt(yielder))
      assert.is_false(s:interrupt(coroutine.create(function() end)))
      -- A stream read interrupted mid-way keeps its bytes.
      local c = assert(co.connect(addr))
      local d = assert(srv:accept())
      local reader = s:spawn(function() state.line = d:read() end)
      c:send("par")
      co.sleep(0.01)
      s:interrupt(reader)
      co.sleep(0.01)
      c:send("tial\n")
      state.rest = d:read()
      c:close()
      d:close()
      srv:close()
    end)
    s:run()
    assert.is_true(state.started)
    assert.is_nil(state.after)
    assert.is_nil(state.woke)
    assert.is_nil(state.fresh_ran)
    assert.is_nil(state.line)
    assert.are.equal("partial", state.rest)
    local _, _, code = s.loop:sockname(state.h)
    assert.are.equal(ioq.EBADHANDLE, code)
    assert.are.equal(0, s.loop:pending())
  end)
end)
