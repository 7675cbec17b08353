#!/usr/bin/env bash
# Install the build dependencies from Debian/Ubuntu packages (needs root or sudo).
set -euo pipefail
packages=(cmake ninja-build g++ pkg-config python3 python3-venv
          libspdlog-dev libfmt-dev nlohmann-json3-dev libcli11-dev
          libgtest-dev libgmock-dev libsentencepiece-dev libcpp-httplib-dev)
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update
$sudo apt-get install -y --no-install-recommends "${packages[@]}"
