-- Numbers that cannot be what a call needs (NaN, a fraction, beyond the C type) raise an
-- error that says what they were; a value ioq refuses comes back as nil, message, code.
local ioq = require "ioq"
local co = require "ioq.co"
local core = ioq.core

local NAN = 0 / 0

-- The error message of fn, which must fail.
local function err(fn)
  local ok, e = pcall(fn)
  assert.is_false(ok)
  return tostring(e)
end

describe("argument errors", function()
  local loop
  before_each(function() loop = assert(ioq.loop()) end)
  after_each(function() loop:free() end)

  it("names NaN, fractions and values out of range in the ioq module", function()
    assert.matches("timeout.*NaN", err(function() loop:timeout(NAN) end))
    assert.matches("poll.*NaN", err(function() loop:poll(NAN) end))
    assert.matches("seconds must be a number, got a string", err(function() loop:poll("1") end))
    assert.matches("byte count must be an integer, got 1.5",
                   err(function() loop:recv(1, 1.5) end))
    assert.matches("byte count must be an integer, got NaN",
                   err(function() loop:recv(1, NAN) end))
    assert.matches("handle must be an integer", err(function() loop:send(0.5, "x") end))
    assert.matches("result must be an integer, got NaN", err(function() loop:post(NAN) end))
    assert.matches("backlog out of range 0..4294967295",
                   err(function() loop:tcp_listen("127.0.0.1:0", 1 << 40) end))
    assert.matches("flags must be an integer, got inf",
                   err(function() loop:accept(1, math.huge) end))
    assert.matches("value must be an integer, got 2.5",
                   err(function() loop:setopt(1, "rcvbuf", 2.5) end))
    assert.matches("max out of range", err(function() loop:resolve("x", "1", 0, 0) end))
    assert.matches("offset must be an integer", err(function() loop:read(1, 4, 0.5) end))
    assert.matches("operation id expected, got NaN", err(function() loop:cancel(NAN) end))
    assert.matches("size must be an integer, got 1.5", err(function() ioq.buffer(1.5) end))
    assert.matches("size out of range", err(function() ioq.buffer(-1) end))
    assert.matches("max out of range", err(function() ioq.loop({ max = 0 }) end))
    -- Values of the right kind that ioq refuses are returned.
    local _, _, code = loop:timeout(-1)
    assert.are.equal(ioq.EINVAL, code)
    _, _, code = loop:recv(1, 0)
    assert.are.equal(ioq.EINVAL, code)
    -- An infinite wait is a wait without end, not an error; 0 does not wait.
    assert.are.same({}, loop:poll(0))
    local t = assert(loop:timeout(math.huge))
    assert(loop:cancel(t))
    local n = 0
    while n < 2 do n = n + #assert(loop:poll(1)) end
    -- Nothing was left behind by the refused calls.
    assert.are.equal(0, loop:pending())
  end)

  it("names them in ioq_core", function()
    local raw = loop.raw
    assert.matches("expected an integer, got NaN", err(function() core.post(raw, NAN, 0) end))
    assert.matches("expected an integer, got 1.5", err(function() core.post(raw, 1.5, 0) end))
    assert.matches("integer out of range 0..4294967295, got %-1",
                   err(function() core.pool_new(raw, -1, 16) end))
    assert.matches("count out of range", err(function() core.cqes(0) end))
  end)

  it("names them in ioq.co", function()
    local s <close> = assert(co.new())
    local e = {}
    s:spawn(function()
      local srv = assert(s:listen("127.0.0.1:0"))
      local c = assert(co.connect(srv:sockname()))
      e[1] = err(function() co.sleep(NAN) end)
      e[2] = err(function() c:settimeout(NAN) end)
      e[3] = err(function() c:recv(1.5) end)
      e[4] = err(function() c:read(0.5) end)
      e[5] = err(function() c:read("x") end)
      e[6] = err(function() co.connect(srv:sockname(), NAN) end)
      e[7] = err(function() co.connect("localhost", 1.5) end)
      e[8] = err(function() co.connect("localhost") end)
      e[9] = err(function() c:setwritelimit(-1) end)
      e[10] = err(function() s:step(NAN) end)
      e[11] = err(function() c:send(42) end)
      e[12] = err(function() co.any(1) end)
      c:close()
      srv:close()
    end)
    s:run()
    assert.matches("sleep.*NaN", e[1])
    assert.matches("settimeout.*NaN", e[2])
    assert.matches("byte count must be an integer, got 1.5", e[3])
    assert.matches("byte count must be an integer, got 0.5", e[4])
    assert.matches("invalid format 'x'", e[5])
    assert.matches("connect.*NaN", e[6])
    assert.matches("port must be an integer, got 1.5", e[7])
    assert.matches("port expected", e[8])
    assert.matches("bytes out of range", e[9])
    assert.matches("step.*NaN", e[10])
    assert.matches("string or ioq.buffer expected", e[11])
    assert.matches("function expected", e[12])
  end)
end)

-- Values of the wrong type where a loop, a handle, a buffer or an address is expected: a
-- file handle or an ioq.buffer is a full userdata too, which SWIG's runtime once read as
-- its own object (and crashed). Each must raise an error that names what it got.
describe("wrong types", function()
  local WRONG = { io.stdout, {}, "x", 1.5, true, print, coroutine.create(print),
                  core.buffer(4), core.cqes(1) }
  -- For the ioq module's methods: no numbers (fractions are above; poll(1.5) would wait),
  -- and no text for resolve (a lookup of "x" would wait for DNS in the thread pool).
  local NONUM = { io.stdout, {}, "x", true, print, coroutine.create(print), core.buffer(4) }
  local NOTEXT = { io.stdout, {}, true, print, core.buffer(4) }

  local function no_crash(fn, ...)
    -- The call may fail (the usual case) or return an error code; it must come back.
    local ok, e = pcall(fn, ...)
    if not ok then assert.is_string(e) end
  end

  it("never crash any ioq_core function, in any argument position", function()
    local names = {}
    for k, v in pairs(core) do
      if type(v) == "function" then names[#names + 1] = k end
    end
    table.sort(names)
    assert.is_true(#names > 50)
    -- One live loop for all (rings are slow to make by the hundred): loop_free is called
    -- with it last.
    local rc, loop = core.loop_new(nil)
    assert.are.equal(0, rc)
    for _, name in ipairs(names) do
      for _, w in ipairs(WRONG) do
        no_crash(core[name], w, w, w, w, w, w, w, w)
        -- (no lookup of the name "x": it would wait for DNS in the thread pool)
        if name ~= "loop_free" and not (name:match("resolve") and w == "x") then
          no_crash(core[name], loop, w, w, w, w, w, w, w)
          for pos = 2, 8 do
            local args = { loop, 1, 1, 1, 1, 1, 1, 1 }
            args[pos] = w
            no_crash(core[name], table.unpack(args, 1, 8))
          end
        end
      end
    end
    assert.is_true(core.loop_backend(loop) ~= nil) -- still a working loop
    core.loop_free(loop)
  end)

  it("name what was passed for a loop in ioq_core", function()
    for _, w in ipairs({ io.stdout, core.buffer(4), core.cqes(1), {}, "x",
                         select(2, core.addr_parse("1.2.3.4:5")) }) do
      assert.matches("expected 'ioq_loop %*", err(function() core.recv(w, 1, core.buffer(4), 1) end))
      assert.matches("expected 'ioq_loop %*", err(function() core.loop_free(w) end))
      assert.matches("expected 'ioq_loop %*", err(function() core.poll(w, core.cqes(1), 0) end))
      assert.matches("ioq_loop expected", err(function() core.pinned(w) end))
      assert.matches("ioq_loop expected", err(function() core.buf_string(w, 1, 1, 1) end))
    end
    assert.matches("got 'FILE%*'", err(function() core.loop_free(io.stdout) end))
    assert.matches("got 'ioq.buffer'", err(function() core.loop_free(core.buffer(1)) end))
    assert.matches("ioq_loop expected, got nil", err(function() core.pinned(nil) end))
  end)

  it("name what was passed for a handle, a buffer or an address in ioq_core", function()
    local rc, loop = core.loop_new(nil)
    assert.are.equal(0, rc)
    local buf = core.buffer(4)
    assert.matches("arg 2.*got 'table'", err(function() core.recv(loop, {}, buf, 1) end))
    assert.matches("arg 2.*got 'FILE%*'", err(function() core.send(loop, io.stdout, "x", 1) end))
    assert.matches("ioq.buffer expected, got FILE%*",
                   err(function() core.recv(loop, 1, io.stdout, 1) end))
    assert.matches("ioq.buffer expected, got table", err(function() core.read(loop, 1, {}, 0, 1) end))
    assert.matches("string or ioq.buffer", err(function() core.send(loop, 1, io.stdout, 1) end))
    assert.matches("piece 1", err(function() core.sendv(loop, 1, { io.stdout }, 1) end))
    assert.matches("arg 4%), expected 'ioq_addr' got 'FILE%*'",
                   err(function() core.recvfrom(loop, 1, buf, io.stdout, 1) end))
    assert.matches("arg 4%), expected 'ioq_addr' got 'table'",
                   err(function() core.sendto(loop, 1, "x", {}, 1) end))
    assert.matches("arg 2%), expected 'ioq_addr' got 'ioq.buffer'",
                   err(function() core.connect(loop, buf, 0, 1) end))
    assert.matches("ioq.cqes expected, got FILE%*", err(function() core.poll(loop, io.stdout, 0) end))
    assert.matches("ioq.cqes expected", err(function() core.cqes(1).get(io.stdout, 1) end))
    assert.matches("ioq.buffer expected", err(function() buf.tostring(core.cqes(1)) end))
    assert.are.equal(0, core.pinned(loop))
    core.loop_free(loop)
  end)

  it("name what was passed in the ioq module", function()
    local loop = assert(ioq.loop())
    local Loop = getmetatable(loop)
    assert.matches("ioq loop expected, got FILE%*", err(function() Loop.poll(io.stdout) end))
    assert.matches("ioq loop expected, got table", err(function() Loop.now({}) end))
    assert.matches("ioq loop expected, got number", err(function() Loop.caps(5) end))
    assert.matches("ioq loop expected", err(function() Loop.recv({}, 1, 4) end))
    assert.matches("table expected, got FILE%*", err(function() Loop.send(io.stdout, 1, "x") end))
    assert.matches("handle must be an integer, got a table", err(function() loop:send({}, "x") end))
    assert.matches("handle must be an integer, got a userdata",
                   err(function() loop:recv(io.stdout, 4) end))
    assert.matches("string or ioq.buffer expected, got FILE%*",
                   err(function() loop:send(1, io.stdout) end))
    assert.matches("ioq.buffer or a byte count", err(function() loop:recv(1, io.stdout) end))
    assert.matches("ioq.buffer expected, got FILE%*", err(function() loop:read(1, io.stdout) end))
    assert.matches("expected 'ioq_addr' got 'FILE%*'",
                   err(function() loop:sendto(1, "x", io.stdout) end))
    for name, fn in pairs(Loop) do
      if type(fn) == "function" and not name:match("^__") and name ~= "free" then
        for _, w in ipairs(name:match("resolve") and NOTEXT or NONUM) do
          no_crash(fn, w, 0, 0, 0)
          no_crash(fn, loop, w, w, w, w)
          for pos = 1, 4 do
            local args = { 0, 0, 0, 0 } -- (0: poll must not wait a second each time)
            args[pos] = w
            no_crash(fn, loop, table.unpack(args, 1, 4))
          end
        end
      end
    end
    loop:free()
    assert.matches("ioq loop used after free", err(function() loop:poll(0) end))
    assert.matches("ioq loop used after free", err(function() loop:recv(1, 4) end))
  end)
end)
