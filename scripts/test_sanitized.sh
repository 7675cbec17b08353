#!/usr/bin/env bash
# Build with AddressSanitizer and UndefinedBehaviorSanitizer (CUDA off, tools and tests
# on) in a build directory of its own, then run the CPU test suite there. Any sanitizer
# report fails the run. usage: scripts/test_sanitized.sh [BUILD_DIR]   (default build-asan)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-asan}
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
if [ ! -f "$dir/build.ninja" ]; then
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSSPAN_ENABLE_CUDA=OFF \
        -DSSPAN_BUILD_TOOLS=ON -DSSPAN_BUILD_TESTS=ON -DSSPAN_BUILD_BENCH=OFF \
        -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_C_FLAGS="$flags" \
        -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
        -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined"
fi
cmake --build "$dir" -j"$(nproc)"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# install_find_package builds a host app against the installed (sanitized) library with
# plain flags: it belongs to the regular build only.
ctest --test-dir "$dir" --output-on-failure -j"$(nproc)" -L cpu -E '^install_find_package$'
