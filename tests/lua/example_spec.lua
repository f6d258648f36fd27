-- examples/lua/echo_server.lua, run as its own process and talked to over loopback.
local co = require "ioq.co"

local function lua_interpreter()
  local i = -1
  while arg and arg[i - 1] do i = i - 1 end
  return arg and arg[i] or "lua5.4"
end

describe("examples/lua/echo_server.lua", function()
  it("echoes for two clients and stops", function()
    -- timeout: a failing test must not leave the server behind.
    local cmd = ("timeout 60 '%s' examples/lua/echo_server.lua 127.0.0.1:0 2")
      :format(lua_interpreter())
    local proc = assert(io.popen(cmd, "r"))
    local banner = proc:read("l")
    assert.is_string(banner)
    local addr = banner:match("on (%S+)")
    assert.is_string(addr)
    local replies = {}
    local s = assert(co.new())
    for i = 1, 2 do
      s:spawn(function()
        local c = assert(co.connect(addr))
        local msg = "echo " .. i
        assert(c:send(msg))
        local got = ""
        while #got < #msg do got = got .. assert(c:recv(64)) end
        replies[i] = got
        c:shutdown()
        assert.are.equal("", c:recv(64))
        c:close()
      end)
    end
    s:run()
    s:close()
    local ok = proc:close()
    assert.is_true(ok)
    assert.are.same({ "echo 1", "echo 2" }, replies)
  end)
end)
