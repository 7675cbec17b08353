#!/usr/bin/env bash
# Download the C++ build dependencies as Debian 12 .deb files into DIR, for building on a
# host that has a compiler, CMake, ninja and CUDA but neither these libraries nor a
# package registry (scripts/gpu_check.sh unpacks DIR with scripts/unpack_debs.sh).
# usage: scripts/fetch_debs.sh DIR          (about 3 MB; DIR is best an ignored folder, .deps/)
set -euo pipefail
dir=${1:?usage: scripts/fetch_debs.sh DIR}
mkdir -p "$dir"
cd "$dir"
apt-get download \
  libsentencepiece0 libsentencepiece-dev \
  libspdlog1.10 libspdlog-dev libfmt9 libfmt-dev \
  nlohmann-json3-dev libcli11-dev \
  googletest libgtest-dev libgmock-dev \
  pkgconf pkgconf-bin libpkgconf3 2>&1 | grep -v '^W: Download is performed unsandboxed' || true
ls -1 "$PWD"/*.deb
