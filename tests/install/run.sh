#!/usr/bin/env bash
# Install the built project into a temporary prefix, then configure, build and run a host
# application against it with find_package(sspan), on a checkpoint written by the installed
# sspan-random-model.
# usage: run.sh CMAKE BUILD_DIR SOURCE_DIR
set -euo pipefail
cmake_bin=$1 build=$2 src=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$cmake_bin" --install "$build" --prefix "$work/prefix" >/dev/null
# A CPU-only build's package must not make its consumers find CUDA: forbid it.
no_cuda=()
if grep -q '^SSPAN_ENABLE_CUDA:BOOL=OFF' "$build/CMakeCache.txt"; then
  no_cuda=(-DCMAKE_DISABLE_FIND_PACKAGE_CUDAToolkit=ON)
  if grep -rq 'CUDA::' "$work/prefix"/lib*/cmake/sspan/; then
    echo "the CPU-only package refers to CUDA targets" >&2
    exit 1
  fi
fi
"$cmake_bin" -S "$src/tests/install/host_app" -B "$work/app" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=Release "${no_cuda[@]}" >/dev/null
"$cmake_bin" --build "$work/app" >/dev/null
"$work/prefix/bin/sspan-random-model" -o "$work/model" --hidden 64 --heads 4 --kv-heads 4 --layers 2 \
  --intermediate 160 --tokenizer "$src/models/arith-tiny/tokenizer.model" >/dev/null
"$work/app/host_app" "$work/model"
