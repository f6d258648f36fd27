-- An echo server on ioq coroutines: one coroutine per connection, all on one loop.
--   lua5.4 examples/lua/echo_server.lua [address [connections]]
-- address defaults to 127.0.0.1:7000 (port 0 picks one); with a number of connections the
-- server stops after serving that many. Try it with: nc 127.0.0.1 7000
local co = require "ioq.co"

local address = arg[1] or "127.0.0.1:7000"
local limit = tonumber(arg[2])

local function serve(conn)
  conn:setopt("nodelay", true)
  while true do
    local data, err = conn:recv(16384)
    if not data then
      io.stderr:write("recv: ", err, "\n")
      break
    end
    if data == "" then break end -- the peer closed its side
    local ok, serr = conn:send(data)
    if not ok then
      io.stderr:write("send: ", serr, "\n")
      break
    end
  end
  conn:close()
end

co.run(function()
  local server = assert(co.listen(address))
  print("echo server on " .. server:sockname() .. " (" .. co.loop():backend() .. ")")
  io.stdout:flush()
  local served = 0
  while not limit or served < limit do
    local conn, err = server:accept()
    if conn then
      served = served + 1
      co.spawn(serve, conn)
    else
      io.stderr:write("accept: ", err, "\n")
    end
  end
  server:close()
end)
