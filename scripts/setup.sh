#!/usr/bin/env bash
# Set up and build: install the Debian/Ubuntu packages the build needs (unless they are
# already there), configure and build into build/. CUDA is compiled when nvcc is found.
# Extra arguments go to CMake's configure step, e.g. -DSSPAN_ENABLE_CUDA=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
need=0
for h in /usr/include/spdlog/spdlog.h /usr/include/nlohmann/json.hpp /usr/include/CLI/CLI.hpp \
         /usr/include/gtest/gtest.h /usr/include/sentencepiece_processor.h; do
  [ -e "$h" ] || need=1
done
command -v ninja >/dev/null || need=1
if [ "$need" = 1 ]; then scripts/install_deps.sh; fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j"$(nproc)"
