rockspec_format = "3.0"
package = "ioq"
version = "1.0.0-1"

-- Built from a checkout: run `luarocks --lua-version 5.4 make packaging/ioq-1.0.0-1.rockspec`
-- from the repository root. Nothing is downloaded: `luarocks make` never reads source.url,
-- which only names where a source rock would come from (ioq has no published one yet).
source = {
   url = "file://./",
}

description = {
   summary = "Completion-based asynchronous I/O (ioq) for Lua, with coroutines",
   detailed = [[
ioq submits operations tagged with 64-bit tokens and polls for completion records:
no callbacks cross the C ABI. This rock holds the C library and its SWIG wrapper in one
module (ioq_core), an idiomatic layer (ioq: loops, completions as tables, errors as
nil, message, code) and coroutines (ioq.co: code that reads as if it blocked).
]],
   license = "MIT",
   labels = { "io", "async", "networking", "coroutines" },
}

supported_platforms = { "linux", "macosx", "freebsd" }

dependencies = {
   "lua >= 5.4",
}

build_dependencies = {}

build = {
   type = "make",
   makefile = "bindings/lua/Makefile",
   build_variables = {
      CFLAGS = "$(CFLAGS)",
      LIBFLAG = "$(LIBFLAG)",
      LUA_INCDIR = "$(LUA_INCDIR)",
   },
   install_variables = {
      INST_LIBDIR = "$(LIBDIR)",
      INST_LUADIR = "$(LUADIR)",
   },
}

test = {
   type = "command",
   command = "bash bindings/lua/run-tests.sh",
}
