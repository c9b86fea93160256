#!/usr/bin/env bash
# Installs the allocators `goheap cbench` compares goheap with, from
# Debian's packages: jemalloc 5.3 (libjemalloc2), mimalloc 2.0
# (libmimalloc2.0) and gperftools' tcmalloc (libtcmalloc-minimal4). They
# land in /usr/lib/x86_64-linux-gnu/ as libjemalloc.so.2,
# libmimalloc.so.2 and libtcmalloc_minimal.so.4. Also SQLite's headers and
# library (libsqlite3-dev), which cbench's `sqlite` workload links.
#
# Needs root (or sudo) and apt-get: Debian 12 or a derivative.
set -euo pipefail
pkgs=(libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 libsqlite3-dev)
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null; then
    sudo=(sudo)
else
    echo "install-peers: run as root: apt-get install ${pkgs[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y "${pkgs[@]}"
ls -l /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 \
      /usr/lib/x86_64-linux-gnu/libmimalloc.so.2 \
      /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
