-- Objects that hold a handle close it themselves: when collected (__gc) and when a
-- to-be-closed variable goes out of scope (__close); never twice.
local ioq = require "ioq"
local co = require "ioq.co"

-- Descriptors of this process (the shell of io.popen is its child: $PPID).
local function open_fds()
  local p = assert(io.popen("ls /proc/$PPID/fd | wc -l"))
  local n = tonumber(p:read("a"))
  p:close()
  return n
end

-- Counts the closes that objects submit on s's loop (an instance field shadows the method).
local function count_closes(s)
  local n = { closes = 0 }
  s.loop.close = function(loop, h, token)
    n.closes = n.closes + 1
    return ioq.Loop.close(loop, h, token)
  end
  return n
end

describe("ioq.co resources", function()
  local s
  before_each(function() s = assert(co.new()) end)
  after_each(function() s:close() end)

  it("closes dropped connections when they are collected", function()
    local srv = assert(s:listen("127.0.0.1:0", 512))
    local addr = srv:sockname()
    local n = 250
    local before = open_fds()
    local during
    s:spawn(function()
      -- 250 connections, both ends, dropped without close(): 500 descriptors. (Held in
      -- a table until all are made: the collector may run at any allocation.)
      local function make()
        local held = {}
        for _ = 1, n do
          held[#held + 1] = assert(co.connect(addr))
          held[#held + 1] = assert(srv:accept())
        end
        during = open_fds()
      end
      make()
      collectgarbage()
      collectgarbage()
      assert(co.sleep(0)) -- a turn of the scheduler closes what was collected
      assert(co.sleep(0))
      srv:close()
    end)
    s:run()
    assert.is_true(during >= before + 2 * n)
    local after = open_fds()
    assert.is_true(after <= before + 1, -- (+1: the listener was open before)
                   ("%d descriptors before, %d during, %d after"):format(before, during, after))
    assert.are.equal(0, s.loop:pending())
  end)

  it("closes on scope exit with <close>, inside and outside a coroutine", function()
    local h1, h2
    s:spawn(function()
      do
        local l <close> = assert(s:listen("127.0.0.1:0"))
        h1 = l:handle()
        assert(s.loop:sockname(h1))
      end
      -- Inside a coroutine the close has completed when the scope is left.
      local _, _, code = s.loop:sockname(h1)
      assert.are.equal(ioq.EBADHANDLE, code)
    end)
    s:run()
    do
      local l <close> = assert(s:listen("127.0.0.1:0"))
      h2 = l:handle()
    end
    -- Outside a coroutine nothing may wait: the next turn closes it.
    s:spawn(function() co.sleep(0) end)
    s:run()
    local _, _, code = s.loop:sockname(h2)
    assert.are.equal(ioq.EBADHANDLE, code)
  end)

  it("never closes twice", function()
    local n = count_closes(s)
    s:spawn(function()
      local srv = assert(s:listen("127.0.0.1:0"))
      local addr = srv:sockname()
      do
        local c <close> = assert(co.connect(addr))
        local a <close> = assert(srv:accept())
        assert(c:close())  -- explicit close, then <close>: one close each
        assert(c:close())  -- a second explicit close is harmless too
      end
      assert.are.equal(2, n.closes)
      srv:close()
      srv = nil
      collectgarbage()
      collectgarbage()
      co.sleep(0)
      assert.are.equal(3, n.closes)
    end)
    s:run()
    assert.are.equal(0, s.loop:pending())
  end)

  it("closes what a failing coroutine held in <close> variables", function()
    local h
    s:spawn(function()
      local l <close> = assert(s:listen("127.0.0.1:0"))
      h = l:handle()
      co.sleep(0)
      error("boom")
    end)
    assert.has_error(function() s:run() end)
    s:spawn(function() co.sleep(0) end)
    s:run()
    local _, _, code = s.loop:sockname(h)
    assert.are.equal(ioq.EBADHANDLE, code)
  end)

  it("closes UDP sockets and files, and frees a scheduler and a loop with <close>", function()
    local hu, hf
    local path = os.tmpname()
    finally(function() os.remove(path) end)
    s:spawn(function()
      do
        local u <close> = assert(s:udp("127.0.0.1:0"))
        local f <close> = assert(co.open(path, "w"))
        hu, hf = u:handle(), f:handle()
      end
      assert.is_nil(s.loop:sockname(hu))
      local _, _, code = s.loop:fsync(hf)
      assert.are.equal(ioq.EBADHANDLE, code)
    end)
    s:run()
    local loop
    do
      local other <close> = assert(co.new())
      loop = other.loop
      assert.is_truthy(loop.raw)
    end
    assert.is_nil(loop.raw)
    do
      local l <close> = assert(ioq.loop())
      loop = l
    end
    assert.is_nil(loop.raw)
  end)

  it("keeps a stream whose sends are in flight until they are out", function()
    local srv = assert(s:listen("127.0.0.1:0"))
    local addr = srv:sockname()
    local payload = string.rep("p", 300000)
    local got
    s:spawn(function()
      local c = assert(srv:accept())
      got = assert(c:read("a"))
      c:close()
      srv:close()
    end)
    s:spawn(function()
      local c = assert(co.connect(addr))
      c:setwritelimit(1 << 30)
      assert.are.equal(#payload, c:send(payload))
      c = nil
      -- Collected while its send is in flight or after: the send goes out before the
      -- close, which the reader sees as the end of the stream.
      while not got do
        collectgarbage()
        co.sleep(0.001)
      end
    end)
    s:run()
    -- The reader saw every byte, then the end of the stream.
    assert.are.equal(#payload, #got)
  end)
end)
