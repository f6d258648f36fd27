rockspec_format = "3.0"
package = "ioq"
version = "1.1.0-1"

-- The source is the release tarball made by `make dist` (build/dist/ioq-<version>.tar.gz,
-- with the SWIG wrapper already generated, so SWIG is not needed). `make dist` packs this
-- rockspec with the tarball beside it into ioq-<version>.src.rock; publishing the rock
-- elsewhere means giving source.url the tarball's download address. From a checkout,
-- `luarocks --lua-version 5.4 make packaging/ioq-1.1.0-1.rockspec` builds the tree as it is
-- (luarocks make never reads source).
source = {
   url = "ioq-1.1.0.tar.gz",
   dir = "ioq-1.1.0",
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
