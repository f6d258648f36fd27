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
