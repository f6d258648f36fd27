-- The raw module ioq_core: integer typemaps, out-parameters, pinning, misuse.
local core = require "ioq_core"

local function new_loop()
  local rc, loop = core.loop_new(nil)
  assert.are.equal(0, rc)
  return loop
end

-- Poll until n records have arrived; returns them as lists {token, result, value, op, flags}.
local function collect(loop, cq, n)
  local out = {}
  for _ = 1, 1000 do
    if #out >= n then break end
    local k = core.poll(loop, cq, 5000000000)
    assert.is_true(k >= 0)
    for i = 1, k do out[#out + 1] = { cq:get(i) } end
  end
  assert.are.equal(n, #out)
  return out
end

local function pair(loop, cq)
  local rc, l = core.tcp_listen(loop, select(2, core.addr_parse("127.0.0.1:0")), 0, 0)
  assert.are.equal(0, rc)
  local _, a = core.sockname(loop, l)
  assert.are.equal(0, core.accept(loop, l, 0, 1))
  assert.are.equal(0, core.connect(loop, a, 0, 2))
  local got = collect(loop, cq, 2)
  local server, client
  for _, r in ipairs(got) do
    assert.are.equal(0, r[2])
    if r[1] == 1 then server = r[3] else client = r[3] end
  end
  return l, server, client
end

describe("ioq_core", function()
  local loop, cq
  before_each(function()
    loop = new_loop()
    cq = core.cqes(64)
  end)
  after_each(function()
    core.loop_free(loop)
  end)

  it("reports versions and integer constants", function()
    assert.are.equal(10100, core.version())
    assert.are.equal("integer", math.type(core.version()))
    assert.are.equal("1.1.0", core.version_string())
    assert.are.equal(-1, core.EINVAL)
    assert.are.equal("integer", math.type(core.EINVAL))
    assert.are.equal("integer", math.type(core.MAX_LEN))
    assert.are.equal(24, core.ADDR_SIZE)
    assert.are.equal("ECONNREFUSED", core.errname(core.ECONNREFUSED))
    assert.is_string(core.strerror(core.ENOENT))
  end)

  it("round-trips 64-bit tokens and results exactly", function()
    local tokens = { 0, 1, (1 << 53) + 1, math.maxinteger, math.mininteger, -1,
                     0x123456789abcdef0 }
    for i, t in ipairs(tokens) do
      assert.are.equal(0, core.post(loop, t, t ~ i))
    end
    local got = collect(loop, cq, #tokens)
    for i, r in ipairs(got) do
      assert.are.equal("integer", math.type(r[1]))
      assert.are.equal(tokens[i], r[1])
      assert.are.equal(tokens[i] ~ i, r[2])
      assert.are.equal(core.OP_POST, r[4])
    end
  end)

  it("maps uint64 values above 2^63 to negative integers and back", function()
    -- 2^64 - 2 as a token: the Lua integer -2 has the same bits.
    assert.are.equal(0, core.timeout(loop, 0, -2))
    local r = collect(loop, cq, 1)[1]
    assert.are.equal(-2, r[1])
    assert.are.equal(core.OP_TIMEOUT, r[4])
    -- now() is a uint64_t: an integer, never a float.
    assert.are.equal("integer", math.type(core.now(loop)))
  end)

  it("returns handles as exact integers through out-parameters", function()
    local l, server, client = pair(loop, cq)
    for _, h in ipairs({ l, server, client }) do
      assert.are.equal("integer", math.type(h))
      assert.are_not.equal(0, h)
    end
    local rc, fd = core.os_handle(loop, client)
    assert.are.equal(0, rc)
    assert.are.equal("integer", math.type(fd))
    -- A made-up handle close to a real one is refused, not confused with it.
    assert.are.equal(core.EBADHANDLE, core.setopt(loop, client ~ (1 << 40), core.OPT_NODELAY, 1))
    assert.are.equal(0, core.setopt(loop, client, core.OPT_NODELAY, 1))
  end)

  it("accepts integral floats and refuses other numbers as misuse", function()
    assert.are.equal(0, core.post(loop, 3.0, 0))
    assert.has_error(function() core.post(loop, 1.5, 0) end)
    assert.has_error(function() core.post(loop, "x", 0) end)
    assert.has_error(function() core.pool_new(loop, -1, 16) end)
    assert.has_error(function() core.pool_new(loop, 1 << 33, 16) end)
    collect(loop, cq, 1)
  end)

  it("parses and formats addresses", function()
    local rc, a = core.addr_parse("[::1]:8080")
    assert.are.equal(0, rc)
    assert.are.equal(core.AF_INET6, a.family)
    assert.are.equal(8080, a.port)
    local n, text = core.addr_format(a)
    assert.are.equal(#"[::1]:8080", n)
    assert.are.equal("[::1]:8080", text)
    rc, a = core.addr_parse("not an address")
    assert.are.equal(core.EINVAL, rc)
    assert.is_nil(a)
  end)

  it("pins a sent string until its completion", function()
    local _, server, client = pair(loop, cq)
    local data = string.rep("x", 100000)
    assert.are.equal(0, core.send(loop, client, data, 7))
    data = nil
    collectgarbage()
    collectgarbage()
    assert.are.equal(1, core.pinned(loop))
    local buf = core.buffer(100000)
    local received = 0
    local sent = false
    for _ = 1, 1000 do
      if sent and received == 100000 then break end
      if buf:busy() == 0 and received < 100000 then
        assert.are.equal(0, core.recv(loop, server, buf, 8))
      end
      local k = core.poll(loop, cq, 5000000000)
      for i = 1, k do
        local token, result = cq:get(i)
        if token == 7 then
          assert.are.equal(100000, result)
          sent = true
        else
          assert.is_true(result > 0)
          received = received + result
        end
      end
    end
    assert.is_true(sent)
    assert.are.equal(100000, received)
    assert.are.equal(0, core.pinned(loop))
  end)

  it("pins a receive buffer and lets it be collected after the completion", function()
    local _, server, client = pair(loop, cq)
    local weak = setmetatable({}, { __mode = "v" })
    do
      local buf = core.buffer(64)
      weak[1] = buf
      assert.are.equal(0, core.recv(loop, server, buf, 9))
      assert.are.equal(1, buf:busy())
      -- A buffer that an operation holds cannot be reused: that would be misuse.
      assert.has_error(function() core.recv(loop, server, buf, 10) end)
      assert.has_error(function() buf:set("no") end)
    end
    collectgarbage()
    collectgarbage()
    assert.is_not_nil(weak[1])
    assert.are.equal(0, core.send(loop, client, "ping", 11))
    local got = collect(loop, cq, 2)
    for _, r in ipairs(got) do assert.are.equal(4, r[2]) end
    assert.are.equal(0, weak[1]:busy())
    weak[1]:setlen(4)
    assert.are.equal("ping", weak[1]:tostring())
    assert.are.equal(0, core.pinned(loop))
    collectgarbage()
    collectgarbage()
    assert.is_nil(weak[1])
  end)

  it("holds pins of a shared token until its last operation completes", function()
    local _, server, client = pair(loop, cq)
    local a, b = core.buffer(4), core.buffer(4)
    assert.are.equal(0, core.recv(loop, server, a, 5))
    assert.are.equal(0, core.recv(loop, server, b, 5))
    assert.are.equal(2, core.pinned(loop))
    assert.are.equal(0, core.send(loop, client, "abcd", 6))
    collect(loop, cq, 2)
    assert.are.equal(2, core.pinned(loop))
    assert.are.equal(1, a:busy())
    assert.are.equal(0, core.send(loop, client, "efgh", 6))
    collect(loop, cq, 2)
    assert.are.equal(0, core.pinned(loop))
    assert.are.equal(0, a:busy() + b:busy())
  end)

  it("holds two sends sharing a token until the last final completion, under GC", function()
    local _, server, client = pair(loop, cq)
    local weak = setmetatable({}, { __mode = "v" })
    do
      local a, b = core.buffer("abcd"), core.buffer("efgh")
      weak[1], weak[2] = a, b
      assert.are.equal(0, core.send(loop, client, a, 7))
      assert.are.equal(0, core.send(loop, client, b, 7))
      assert.are.equal(1, a:busy())
      assert.are.equal(1, b:busy())
    end
    assert.are.equal(2, core.pinned(loop))
    local function pressure()
      for _ = 1, 3 do
        local junk = {}
        for i = 1, 2000 do junk[i] = core.buffer(256) end
        junk = nil
        collectgarbage()
      end
    end
    pressure()
    assert.is_not_nil(weak[1])
    assert.is_not_nil(weak[2])
    -- One completion at a time: ioq does not say which send the first one was, so both
    -- buffers stay held until the second.
    local one = core.cqes(1)
    local r = collect(loop, one, 1)[1]
    assert.are.same({ 7, 4, core.OP_SEND }, { r[1], r[2], r[4] })
    pressure()
    assert.are.equal(2, core.pinned(loop))
    assert.are.equal(1, weak[1]:busy())
    assert.are.equal(1, weak[2]:busy())
    r = collect(loop, one, 1)[1]
    assert.are.same({ 7, 4, core.OP_SEND }, { r[1], r[2], r[4] })
    assert.are.equal(0, core.pinned(loop))
    assert.are.equal(0, weak[1]:busy() + weak[2]:busy())
    pressure()
    assert.is_nil(weak[1])
    assert.is_nil(weak[2])
    local data, buf = "", core.buffer(8)
    while #data < 8 do -- both sends are on the wire, in order
      assert.are.equal(0, core.recv(loop, server, buf, 8))
      local got = collect(loop, cq, 1)[1]
      assert.is_true(got[2] > 0)
      buf:setlen(got[2])
      data = data .. buf:tostring()
    end
    assert.are.equal("abcdefgh", data)
  end)

  it("releases the pins of a shared token when the loop is freed", function()
    local l2 = new_loop()
    local _, server = pair(l2, cq)
    local a, b = core.buffer(4), core.buffer(4)
    assert.are.equal(0, core.recv(l2, server, a, 5))
    assert.are.equal(0, core.recv(l2, server, b, 5))
    assert.are.equal(2, core.pinned(l2))
    core.loop_free(l2)
    assert.are.equal(0, a:busy() + b:busy())
  end)

  it("pins the pieces of a gather send, not the caller's table", function()
    local _, server, client = pair(loop, cq)
    local pieces = { "ab", core.buffer("cd"), "", "ef" }
    assert.are.equal(0, core.sendv(loop, client, pieces, 3))
    pieces[1], pieces[2] = nil, nil
    collectgarbage()
    local buf = core.buffer(16)
    assert.are.equal(0, core.recv(loop, server, buf, 4))
    local got = collect(loop, cq, 2)
    for _, r in ipairs(got) do assert.are.equal(6, r[2]) end
    buf:setlen(6)
    assert.are.equal("abcdef", buf:tostring())
    assert.has_error(function() core.sendv(loop, client, { 1 }, 3) end)
    assert.are.equal(0, core.pinned(loop))
  end)

  it("does not pin a refused operation", function()
    local buf = core.buffer(8)
    assert.are.equal(core.EBADHANDLE, core.recv(loop, 12345, buf, 1))
    assert.are.equal(0, buf:busy())
    local _, _, client = pair(loop, cq)
    assert.are.equal(core.EINVAL, core.send(loop, client, core.buffer(8), 1)) -- length 0
    assert.are.equal(0, core.pinned(loop))
    assert.has_error(function() core.recv(loop, 1, "a string is read-only", 1) end)
  end)

  it("releases pins when the loop is freed and turns later calls into EINVAL", function()
    local _, server = pair(loop, cq)
    local buf = core.buffer(8)
    assert.are.equal(0, core.recv(loop, server, buf, 1))
    assert.are.equal(1, buf:busy())
    core.loop_free(loop)
    assert.are.equal(0, buf:busy())
    assert.are.equal(core.EINVAL, core.post(loop, 1, 0))
    assert.are.equal(core.EINVAL, core.poll(loop, cq, 0))
    loop = new_loop() -- for after_each
  end)

  it("reads pool buffers as strings and releases them", function()
    local _, server, client = pair(loop, cq)
    local rc, pool = core.pool_new(loop, 4, 32)
    assert.are.equal(0, rc)
    assert.are.equal(0, core.recv_pool(loop, server, pool, 0, 1))
    assert.are.equal(0, core.send(loop, client, "pooled", 2))
    local got = collect(loop, cq, 2)
    local r = got[1][1] == 1 and got[1] or got[2]
    assert.are.equal(6, r[2])
    assert.is_true(r[5] & core.CQE_BUFFER ~= 0)
    assert.are.equal("pooled", core.buf_string(loop, pool, r[3], r[2]))
    assert.are.equal(0, core.buf_release(loop, pool, r[3]))
    assert.are.equal(core.EINVAL, core.buf_release(loop, pool, r[3]))
    assert.is_nil(core.buf_string(loop, pool, 999, 1))
  end)
  it("leaves holding values to the caller of an unpinned loop (the ioq module)", function()
    local _, server, client = pair(loop, cq)
    core.loop_unpinned(loop)
    -- The array part of an ioq.lua loop object: raw, tok, pin, spare, state.
    local tok, pin, spare, state, fix = {}, {}, {}, core.state_new(), {}
    local lt = { loop, tok, pin, spare, state }
    local SLOT = (1 << 24) - 1
    local function complete_all(n)
      local out = {}
      for _ = 1, 1000 do
        if #out >= n then break end
        assert.is_true(core.poll(loop, cq, 5000000000) >= 0)
        local list, nfix = core.complete(cq, lt, fix, nil)
        assert.are.equal(0, nfix)
        for _, c in ipairs(list) do out[#out + 1] = c end
      end
      assert.are.equal(n, #out)
      return out
    end
    local buf = core.buffer(8)
    local r = assert(core.loop_recv(lt, server, buf))
    assert.are.equal(1, buf:busy())
    assert.is_nil(tok[r & SLOT])
    assert.are.equal(buf, pin[r & SLOT])
    assert.has_error(function() core.loop_recv(lt, server, buf) end)
    assert.are.equal(1, core.state_pending(state))
    local s = assert(core.loop_send(lt, client, "abc", "t"))
    assert.are.equal("t", tok[s & SLOT])
    assert.are.equal(0, core.pinned(loop))
    assert.are.equal(2, core.state_pending(state))
    for _, c in ipairs(complete_all(2)) do
      assert.are.equal(3, c.result)
      assert.is_true(c.ok)
      assert.is_false(c.more)
      if c.id == r then
        assert.is_nil(c.token)
        assert.are.equal("recv", c.op)
        assert.are.equal(buf, c.buf)
      else
        assert.are.equal(s, c.id)
        assert.are.equal("t", c.token)
        assert.are.equal(core.OP_SEND, c.opcode)
      end
    end
    assert.are.equal(0, buf:busy())
    assert.are.equal("abc", buf:tostring())
    assert.is_nil(next(tok))
    assert.is_nil(next(pin))
    assert.are.equal(0, core.state_pending(state))

    -- Slots are reused, ids are not: a stale id names no operation.
    local r2 = assert(core.loop_recv(lt, server, 16, 5))
    assert.are_not.equal(r, r2)
    assert.are.equal(1, core.spare_inflight(state))
    assert.are.equal(0, pin[r2 & SLOT]:busy())
    local s2 = assert(core.loop_send(lt, client, core.buffer("hello")))
    assert.are.equal(1, pin[s2 & SLOT]:busy())
    assert.is_true((r2 & SLOT) == (r & SLOT) or (r2 & SLOT) == (s & SLOT))
    local sent = pin[s2 & SLOT]
    for _, c in ipairs(complete_all(2)) do
      if c.id == r2 then
        assert.are.equal(5, c.token)
        assert.are.equal("hello", c.data)
        assert.is_nil(c.buf)
      end
    end
    assert.are.equal(0, sent:busy())
    assert.are.equal(0, core.spare_inflight(state))
    assert.are.equal(1, #spare[16])
    local _, _, code = core.loop_recv(lt, server, 0)
    assert.are.equal(core.EINVAL, code)
    _, _, code = core.loop_recv(lt, 12345, 16)
    assert.are.equal(core.EBADHANDLE, code)
    assert.are.equal(1, #spare[16]) -- a refused receive gives its buffer back
    assert.are.equal(0, core.state_pending(state)) -- and its id
    assert.is_nil(next(tok))
    core.loop_free(loop)
    assert.has_error(function() core.loop_send(lt, client, "x") end)
    loop = new_loop() -- for after_each
  end)
end)
