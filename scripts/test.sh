#!/usr/bin/env bash
# Build (if needed) and run the whole test suite. CUDA tests skip without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/build.ninja ] || scripts/setup.sh
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)"
