# Cross-compiles ioq for macOS from Linux with `zig cc` (compile-and-link check only: the
# binaries are not run). Usage:
#   cmake -S . -B build/macos-aarch64 -DCMAKE_TOOLCHAIN_FILE=packaging/cmake/zig-macos.cmake \
#         -DIOQ_ZIG=/path/to/zig -DIOQ_ZIG_TARGET=aarch64-macos
# scripts/check-macos.sh fetches zig and does this for aarch64-macos and x86_64-macos.

set(CMAKE_SYSTEM_NAME Darwin)
set(IOQ_ZIG "" CACHE FILEPATH "The zig executable")
set(IOQ_ZIG_TARGET "aarch64-macos" CACHE STRING "zig's -target for macOS")
# try_compile projects read this file again and need the same two settings.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES IOQ_ZIG IOQ_ZIG_TARGET)

if(NOT IOQ_ZIG OR NOT EXISTS "${IOQ_ZIG}")
  message(FATAL_ERROR "zig-macos.cmake: set IOQ_ZIG to the zig executable")
endif()
if(IOQ_ZIG_TARGET MATCHES "^aarch64")
  set(CMAKE_SYSTEM_PROCESSOR arm64)
else()
  set(CMAKE_SYSTEM_PROCESSOR x86_64)
endif()

# CMake wants one executable per tool, so each zig subcommand gets a tiny wrapper.
get_filename_component(_ioq_zig_dir "${IOQ_ZIG}" DIRECTORY)
set(_ioq_wrap "${_ioq_zig_dir}/wrappers/${IOQ_ZIG_TARGET}")
foreach(_tool cc ar ranlib)
  if(_tool STREQUAL "cc")
    set(_cmd "cc -target ${IOQ_ZIG_TARGET}")
  else()
    set(_cmd "${_tool}")
  endif()
  set(_text "#!/bin/sh\nexec \"${IOQ_ZIG}\" ${_cmd} \"$@\"\n")
  set(_file "${_ioq_wrap}/${_tool}")
  set(_old "")
  if(EXISTS "${_file}")
    file(READ "${_file}" _old)
  endif()
  if(NOT _old STREQUAL _text)
    file(WRITE "${_file}" "${_text}")
    file(CHMOD "${_file}" PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
         GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
  endif()
endforeach()

set(CMAKE_C_COMPILER "${_ioq_wrap}/cc")
set(CMAKE_AR "${_ioq_wrap}/ar" CACHE FILEPATH "" FORCE)
set(CMAKE_RANLIB "${_ioq_wrap}/ranlib" CACHE FILEPATH "" FORCE)
# zig brings its own macOS libc headers and stubs: no SDK, no xcrun.
set(CMAKE_OSX_SYSROOT "" CACHE STRING "" FORCE)
set(CMAKE_OSX_ARCHITECTURES "" CACHE STRING "" FORCE)
set(CMAKE_OSX_DEPLOYMENT_TARGET "" CACHE STRING "" FORCE)

# Nothing of the build machine's libraries or headers may leak into a macOS link.
set(CMAKE_FIND_ROOT_PATH "${_ioq_zig_dir}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(ENV{PKG_CONFIG_LIBDIR} "${_ioq_zig_dir}/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
