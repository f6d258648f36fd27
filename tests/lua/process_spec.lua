-- Pipes and child processes through the raw module ioq_core (since 1.1).
local core = require "ioq_core"

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

describe("ioq_core processes and pipes", function()
  local loop, cq
  before_each(function()
    local rc
    rc, loop = core.loop_new(nil)
    assert.are.equal(0, rc)
    cq = core.cqes(16)
  end)
  after_each(function()
    core.loop_free(loop)
  end)

  it("makes a pipe of two handles", function()
    local rc, r, w = core.pipe(loop, 0)
    assert.are.equal(0, rc)
    assert.is_true(r ~= 0 and w ~= 0 and r ~= w)
    assert.are.equal(core.EINVAL, (core.pipe(loop, 1)))
    assert.are.equal(0, core.close(loop, r, 1))
    assert.are.equal(0, core.close(loop, w, 2))
    collect(loop, cq, 2)
  end)

  it("spawns a child, waits for it, and reports exec failures", function()
    local rc, p, i, o, e = core.spawn(loop, {
      file = "/bin/sh", argv = { "sh", "-c", "exit 5" },
      stdio = { { core.STDIO_NULL, 0 }, { core.STDIO_PIPE, 0 }, { core.STDIO_INHERIT, 0 } } })
    assert.are.equal(0, rc)
    assert.is_true(p ~= 0)
    assert.are.equal(0, i)
    assert.is_true(o ~= 0)
    assert.are.equal(0, e)
    local prc, pid = core.process_pid(loop, p)
    assert.are.equal(0, prc)
    assert.is_true(pid > 0)
    assert.are.equal(0, core.process_wait(loop, p, 7))
    local got = collect(loop, cq, 1)
    assert.are.equal(7, got[1][1])
    assert.are.equal(5, got[1][2])
    assert.are.equal(core.OP_PROCESS_WAIT, got[1][4])
    assert.are.equal(core.ESRCH, core.kill(loop, p, 15))
    assert.are.equal(0, core.close(loop, p, 8))
    assert.are.equal(0, core.close(loop, o, 9))
    collect(loop, cq, 2)
    assert.are.equal(core.ENOENT, (core.spawn(loop, { file = "/nonexistent/x", argv = { "x" } })))
    assert.has_error(function() core.spawn(loop, { argv = { "x" } }) end)
  end)
end)

-- The idiomatic layer: loop:pipe, loop:spawn, process_wait, kill.
describe("ioq loop processes and pipes", function()
  local ioq = require "ioq"
  local loop
  before_each(function() loop = assert(ioq.loop()) end)
  after_each(function() loop:free() end)

  -- The final completion of operation id (others are kept for later calls).
  local seen = {}
  local function wait(id)
    for _ = 1, 1000 do
      if seen[id] then local c = seen[id]; seen[id] = nil; return c end
      for _, c in ipairs(assert(loop:poll(5))) do
        if not c.more then seen[c.id] = c end
      end
    end
    error("no completion for " .. tostring(id))
  end

  -- Everything readable from h up to end of stream.
  local function drain(h)
    local parts = {}
    while true do
      local c = wait(assert(loop:recv(h, 256)))
      assert.is_true(c.ok, c.err)
      if c.result == 0 then return table.concat(parts) end
      parts[#parts + 1] = c.data
    end
  end

  it("makes a pipe", function()
    local r, w = assert(loop:pipe())
    assert.is_true(r ~= w)
    assert.are.equal(14, wait(assert(loop:send(w, "through a pipe"))).result)
    assert.is_true(wait(assert(loop:shutdown(w))).ok)
    assert.are.equal("through a pipe", drain(r))
    local ok, _, code = loop:send(r, "x") -- the read end does not send
    assert.is_nil(ok)
    assert.are.equal(ioq.EBADHANDLE, code)
    assert.is_true(wait(assert(loop:close(r))).ok)
    assert.is_true(wait(assert(loop:close(w))).ok)
  end)

  it("spawns a child, reads its stdout, gets its exit status", function()
    local p = assert(loop:spawn({ "sh", "-c", "echo out $IOQ_L; echo err >&2; exit 4" },
      { stdin = "null", stdout = "pipe", stderr = "pipe",
        env = { IOQ_L = "lua", PATH = "/usr/bin:/bin" } }))
    assert.is_true(p.handle ~= 0 and p.pid > 0)
    assert.is_nil(p.stdin)
    assert.are.equal(p.pid, loop:process_pid(p))
    assert.are.equal("out lua\n", drain(p.stdout))
    assert.are.equal("err\n", drain(p.stderr))
    local c = wait(assert(loop:process_wait(p)))
    assert.are.equal("process_wait", c.op)
    assert.are.equal(4, c.result)
    assert.are.equal(4, ioq.exit_code(c.result))
    assert.is_nil(ioq.term_signal(c.result))
    for _, h in ipairs({ p.stdout, p.stderr, p.handle }) do
      assert.is_true(wait(assert(loop:close(h))).ok)
    end
  end)

  it("feeds stdin, sets cwd, takes a program from file", function()
    local p = assert(loop:spawn({ "any-name", "-c", "read l; echo \"$l $(pwd)\"" },
      { file = "/bin/sh", stdin = "pipe", stdout = "pipe", cwd = "/" }))
    assert.is_true(wait(assert(loop:send(p.stdin, "ping\n"))).ok)
    assert.is_true(wait(assert(loop:close(p.stdin))).ok)
    assert.are.equal("ping /\n", drain(p.stdout))
    assert.are.equal(0, wait(assert(loop:process_wait(p.handle))).result)
    loop:close(p.stdout)
    loop:close(p.handle)
  end)

  it("kills a child", function()
    local p = assert(loop:spawn({ "sleep", "30" }, { stdin = "null" }))
    local w = assert(loop:process_wait(p))
    assert.is_true(loop:kill(p, "TERM"))
    local c = wait(w)
    assert.are.equal(256 + 15, c.result)
    assert.are.equal(15, ioq.term_signal(c.result))
    assert.is_nil(ioq.exit_code(c.result))
    local ok, _, code = loop:kill(p, 9) -- ended and reaped
    assert.is_nil(ok)
    assert.are.equal(ioq.ESRCH, code)
    loop:close(p.handle)
  end)

  it("reports spawn errors and closes a running child's handle without killing it", function()
    local ok, msg, code = loop:spawn({ "/nonexistent/program" })
    assert.is_nil(ok)
    assert.are.equal(ioq.ENOENT, code)
    assert.is_string(msg)
    assert.has_error(function() loop:spawn("sh -c true") end)
    assert.has_error(function() loop:spawn({ "true" }, { stdout = "bogus" }) end)
    assert.has_error(function() loop:kill(1, "NOSUCH") end)
    local p = assert(loop:spawn({ "sleep", "0.1" }))
    local w = assert(loop:process_wait(p))
    local cl = assert(loop:close(p.handle))
    assert.are.equal(ioq.ECANCELED, wait(w).code)
    assert.is_true(wait(cl).ok)
  end)
end)
