# Common tasks. CMake does the building; this file only names the everyday commands.
#   make demo    build and run the breaker timeline demo
#   make check   warnings-as-errors build and every test, again under ASan+UBSan, and the
#                stress tests under TSan
#   make tsan    the concurrency (stress) tests under ThreadSanitizer
#   make fuzz    the libFuzzer targets in fuzz/, FUZZ_SECONDS (600) each; fuzz-short: 20 s each,
#                part of check (skipped, with a message, only where clang is not installed)
#   make lint    clang-format check, clang-tidy, cppcheck
#   make bench   benchmarks beside their peers; writes docs/BENCHMARKS.md
#   make install PREFIX=/usr/local   (a build of its own: no tests, benchmarks or examples)
.PHONY: all deps demo check test asan tsan fuzz fuzz-short fuzz-merge lint format bench valgrind install package-check clean

PREFIX ?= /usr/local
JOBS ?= $(shell nproc)
CMAKE_GEN := $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")
configure = cmake -S . -B $(1) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=$(2) $(3) >/dev/null

all: build/.configured
	cmake --build build -j $(JOBS)

deps:
	scripts/deps test

build/.configured: | deps
	$(call configure,build,RelWithDebInfo,-DCBX_WERROR=ON -DCMAKE_INSTALL_PREFIX=$(PREFIX))
	touch $@

demo: all
	./build/examples/breaker_timeline

test: all
	ctest --test-dir build --output-on-failure -j $(JOBS)

asan: deps
	$(call configure,build-asan,Debug,-DCBX_WERROR=ON -DCBX_SANITIZE=address$(,)undefined -DCBX_BENCH=OFF)
	cmake --build build-asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  LSAN_OPTIONS="suppressions=$(CURDIR)/tests/lsan.supp print_suppressions=0" \
	  ctest --test-dir build-asan --output-on-failure -j $(JOBS)

check: test asan tsan fuzz-short package-check

tsan: deps
	$(call configure,build-tsan,RelWithDebInfo,-DCBX_WERROR=ON -DCBX_SANITIZE=thread -DCBX_BENCH=OFF -DCBX_EXAMPLES=OFF)
	cmake --build build-tsan -j $(JOBS)
	TSAN_OPTIONS="halt_on_error=1 suppressions=$(CURDIR)/tests/tsan.supp" ctest --test-dir build-tsan --output-on-failure -L stress

FUZZ_SECONDS ?= 600
fuzz:
	scripts/deps fuzz
	fuzz/run $(FUZZ_SECONDS)

fuzz-short:
	scripts/deps fuzz
	fuzz/run 20

# fold the inputs the runs found into fuzz/corpus/, minimised
fuzz-merge:
	fuzz/run --merge

valgrind: all
	ctest --test-dir build -L unit -T memcheck --overwrite MemoryCheckCommand=$$(command -v valgrind) \
		--overwrite MemoryCheckCommandOptions="--error-exitcode=1 --leak-check=full" \
		--overwrite MemoryCheckSuppressionFile=$(CURDIR)/tests/valgrind.supp
	ctest --test-dir build -R cli_valgrind_clean --output-on-failure

lint: all
	scripts/deps lint
	scripts/lint

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

bench: all
	scripts/deps bench
	bench/run

# A build of its own, configured for PREFIX every time (cbx.pc and the CMake package name it),
# with no tests, benchmarks or examples, and only the build's packages.
install:
	scripts/deps build
	$(call configure,build-install,RelWithDebInfo,-DCBX_TESTS=OFF -DCBX_BENCH=OFF -DCBX_EXAMPLES=OFF -DCMAKE_INSTALL_PREFIX=$(PREFIX))
	cmake --build build-install -j $(JOBS)
	cmake --install build-install

# make install into a new prefix, then a program built against it with pkg-config and with
# find_package(cbx).
package-check:
	tests/package/check.sh

clean:
	rm -rf build build-asan build-tsan build-install build-fuzz

, := ,
