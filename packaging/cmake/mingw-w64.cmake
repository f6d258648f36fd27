# Cross-compile ioq for 64-bit Windows with mingw-w64 and run its tests under wine.
#   cmake -S . -B build-win -DCMAKE_TOOLCHAIN_FILE=packaging/cmake/mingw-w64.cmake
# ctest then runs every .exe through wine with a private WINEPREFIX inside the build tree,
# so a test run never touches ~/.wine.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(IOQ_MINGW_TRIPLE x86_64-w64-mingw32)
find_program(CMAKE_C_COMPILER NAMES ${IOQ_MINGW_TRIPLE}-gcc ${IOQ_MINGW_TRIPLE}-gcc-posix
             REQUIRED)
find_program(CMAKE_CXX_COMPILER NAMES ${IOQ_MINGW_TRIPLE}-g++ ${IOQ_MINGW_TRIPLE}-g++-posix)
find_program(CMAKE_RC_COMPILER NAMES ${IOQ_MINGW_TRIPLE}-windres)
find_program(CMAKE_AR NAMES ${IOQ_MINGW_TRIPLE}-ar ${IOQ_MINGW_TRIPLE}-gcc-ar)
find_program(CMAKE_RANLIB NAMES ${IOQ_MINGW_TRIPLE}-ranlib ${IOQ_MINGW_TRIPLE}-gcc-ranlib)
find_program(IOQ_MINGW_OBJDUMP NAMES ${IOQ_MINGW_TRIPLE}-objdump)

set(CMAKE_FIND_ROOT_PATH /usr/${IOQ_MINGW_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# The compiler's own runtime goes into each binary: the programs then need no mingw DLLs
# next to them, only ioq.dll and the system's.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static-libgcc")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-static-libgcc")

# The toolchain file is read again for every try_compile project: keep the first build
# tree's values. Programs find ioq.dll at the top of the build tree through WINEPATH.
if(NOT IOQ_WINEPREFIX)
  set(IOQ_WINEPREFIX "${CMAKE_BINARY_DIR}/wineprefix" CACHE PATH
      "WINEPREFIX of the test runs (created on first use)")
endif()
if(NOT IOQ_WINEPATH)
  set(IOQ_WINEPATH "${CMAKE_BINARY_DIR}" CACHE PATH "Where the test programs find ioq.dll")
endif()
find_program(IOQ_WINE NAMES wine wine64)
if(IOQ_WINE)
  set(CMAKE_CROSSCOMPILING_EMULATOR
      "${CMAKE_COMMAND}" -E env WINEDEBUG=-all "WINEPREFIX=${IOQ_WINEPREFIX}"
      "WINEPATH=${IOQ_WINEPATH}" "WINEDLLOVERRIDES=mscoree,mshtml=" "${IOQ_WINE}")
  # Test directories that name $<TARGET_FILE:...> prefix this launcher themselves.
  set(IOQ_TEST_LAUNCHER "${CMAKE_CROSSCOMPILING_EMULATOR}" CACHE STRING
      "A ;-list prefixed to every test command")
endif()
