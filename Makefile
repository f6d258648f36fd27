# Entry points for building and testing ioq. CMake does the work; these targets only fix
# the build directories and options so that every machine runs the same thing.

BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_VG   ?= build-vg
BUILD_TSAN ?= build-tsan
BUILD_FUZZ ?= build-fuzz
BUILD_FAULT ?= build-fault
BUILD_KQUEUE ?= build-kqueue
# How long `make fuzz` (and so `make test`) runs the fuzzer.
FUZZ_SECONDS ?= 60
JOBS       ?= 2
CMAKE      ?= cmake
CTEST      ?= ctest
CTEST_ARGS ?= --output-on-failure --no-tests=error -j$(JOBS) --timeout 300

# The C suite (tests/c registers <backend>/<area>-<case>), the ABI checks and packaging.
C_TESTS    ?= ^(epoll|io_uring|kqueue|iocp|abi|packaging|examples|bindings)/
VALGRIND   := valgrind;--error-exitcode=99;--leak-check=full;--errors-for-leak-kinds=definite,indirect;--track-fds=no;--quiet

# Suites of the bindings join `make test` here as they become part of it.
EXTRA_SUITES ?= check-macos test-kqueue test-windows test-python test-lua test-d test-rust \
                test-dist

.PHONY: all deps build test test-c test-sanitize test-tsan test-valgrind test-faults fuzz \
        test-python test-lua test-d test-rust check-macos test-kqueue demo install bench \
        abi-baseline clean dist test-dist

all: build

# The check alone is one dpkg-query; the installer (apt-get update first) runs only when a
# package is missing.
deps:
	@scripts/install-deps.sh --check c || scripts/install-deps.sh c

$(BUILD)/CMakeCache.txt:
	$(CMAKE) -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: $(BUILD)/CMakeCache.txt
	$(CMAKE) --build $(BUILD) -j$(JOBS)

test: test-c test-sanitize test-tsan test-valgrind test-faults fuzz $(EXTRA_SUITES)

test-c: deps
	$(MAKE) build
	$(CTEST) --test-dir $(BUILD) $(CTEST_ARGS) -R '$(C_TESTS)'

test-sanitize: deps
	$(CMAKE) -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DIOQ_SANITIZE=ON \
	    -DIOQ_BUILD_EXAMPLES=OFF -DIOQ_BUILD_BENCH=OFF
	$(CMAKE) --build $(BUILD_ASAN) -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $(CTEST) --test-dir $(BUILD_ASAN) $(CTEST_ARGS) -R '$(C_TESTS)'

test-valgrind: deps
	$(CMAKE) -S . -B $(BUILD_VG) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DIOQ_BUILD_EXAMPLES=OFF -DIOQ_BUILD_BENCH=OFF -DIOQ_WITH_URING=OFF \
	    "-DIOQ_TEST_LAUNCHER=$(VALGRIND)"
	$(CMAKE) --build $(BUILD_VG) -j$(JOBS)
	$(CTEST) --test-dir $(BUILD_VG) $(CTEST_ARGS) -R '^epoll/'

# The binding suites; each script installs its own packages and builds in build/.
test-python:
	bash bindings/python/run-tests.sh

test-lua:
	bash bindings/lua/run-tests.sh

test-d:
	bash bindings/d/run-tests.sh

test-rust:
	bash bindings/rust/run-tests.sh

# Release artifacts in build/dist (scripts/dist.sh): the tarball with the SWIG wrappers
# generated, sdist and manylinux wheel, rocks, crates, dub package.
dist:
	scripts/install-deps.sh c dist
	scripts/dist.sh build/dist

# Installs each artifact of `make dist` into fresh directories, SWIG hidden, and runs an
# echo round trip through each (scripts/test-dist.sh); DIST_FULL=1 adds `make test-c` in
# the unpacked tarball.
test-dist: dist
	JOBS=$(JOBS) scripts/test-dist.sh build/dist

# Compile-and-link check for macOS (kqueue); the script installs what it needs itself.
check-macos:
	scripts/check-macos.sh $(BUILD)

# The C suite and the fault stress on the kqueue backend, on Linux through libkqueue (a
# test-only emulation from ../shared/third_party; skipped with one line when it is absent).
test-kqueue:
	JOBS=$(JOBS) scripts/test-kqueue.sh $(BUILD_KQUEUE)

# The threaded parts (posts, wake-ups, the thread pool) under ThreadSanitizer.
test-tsan: deps
	JOBS=$(JOBS) scripts/tsan.sh $(BUILD_TSAN)

# Randomised stress on a build with the fault layer (-DIOQ_FAULT_INJECTION=ON).
test-faults: deps
	JOBS=$(JOBS) tests/fault/run.sh $(BUILD_FAULT)

# The libFuzzer harness (clang) for FUZZ_SECONDS seconds; any crash fails.
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) JOBS=$(JOBS) scripts/fuzz.sh $(BUILD_FUZZ)

demo: deps
	$(MAKE) build
	scripts/demo.sh $(BUILD)

install: build
	$(CMAKE) --install $(BUILD)

# Configured again first: a peer library installed after $(BUILD) was configured (by the
# install step here, or by hand) is found and its benchmarks are built.
bench: deps
	@scripts/install-deps.sh --check bench || scripts/install-deps.sh bench
	$(CMAKE) -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	$(MAKE) build
	tests/bench/bench.sh $(BUILD)

# Rewrites abi/ioq-1.<minor>.abi (the current minor version) from the current build: only when the ABI is meant to change.
abi-baseline: build
	$(CMAKE) --build $(BUILD) --target abi-baseline

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_VG) $(BUILD_TSAN) $(BUILD_FUZZ) $(BUILD_FAULT) \
	    $(BUILD_KQUEUE)

# Cross-builds for Windows (mingw-w64) and runs the iocp/ tests under wine in build-win.
.PHONY: test-windows
test-windows:
	bash scripts/test-windows.sh
