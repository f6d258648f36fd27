-- An echo round trip through an installed ioq rock (ioq.co coroutines).
--   lua5.4 echo.lua LABEL
-- Prints "<LABEL>: echo ok: <line> (backend <name>, ioq <version>) from <module path>".
local co = require "ioq.co"
local ioq = require "ioq"

local label = arg[1] or "lua"
local line = "hello through ioq"
local got, backend

co.run(function()
  local server = assert(co.listen("127.0.0.1:0"))
  co.spawn(function()
    local conn = assert(server:accept())
    local data = assert(conn:recv(64))
    assert(conn:send(data))
    conn:close()
  end)
  local client = assert(co.connect(server:sockname()))
  assert(client:send(line))
  got = assert(client:recv(64))
  backend = co.loop():backend()
  client:close()
  server:close()
end)

if got ~= line then
  io.stderr:write(label, ": echo differs: ", tostring(got), "\n")
  os.exit(1)
end
print(string.format("%s: echo ok: %s (backend %s, ioq %s) from %s", label, got, backend,
  ioq.VERSION, package.searchpath("ioq_core", package.cpath)))
