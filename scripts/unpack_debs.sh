#!/usr/bin/env bash
# Unpack the .deb files in DIR into PREFIX (no root, no dpkg database) and print the
# environment that lets CMake and pkg-config find them there.
# usage: eval "$(scripts/unpack_debs.sh DIR PREFIX)"
set -euo pipefail
dir=${1:?usage: unpack_debs.sh DIR PREFIX}
prefix=${2:?usage: unpack_debs.sh DIR PREFIX}
mkdir -p "$prefix"
for f in "$dir"/*.deb; do dpkg-deb -x "$f" "$prefix"; done
lib="$prefix/usr/lib/x86_64-linux-gnu"
# pkg-config files name prefix=/usr; point them at the unpacked tree.
for pc in "$lib"/pkgconfig/*.pc "$prefix"/usr/share/pkgconfig/*.pc; do
  [ -f "$pc" ] && sed -i "s|^prefix=/usr\$|prefix=$prefix/usr|" "$pc"
done
echo "export CMAKE_PREFIX_PATH=\"$prefix/usr\${CMAKE_PREFIX_PATH:+:\$CMAKE_PREFIX_PATH}\""
echo "export PKG_CONFIG_PATH=\"$lib/pkgconfig:$prefix/usr/share/pkgconfig\${PKG_CONFIG_PATH:+:\$PKG_CONFIG_PATH}\""
echo "export LD_LIBRARY_PATH=\"$lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\""
# A host without pkg-config uses the unpacked one.
command -v pkg-config >/dev/null 2>&1 || echo "export PATH=\"$prefix/usr/bin:\$PATH\""
