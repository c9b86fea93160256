#!/usr/bin/env bash
# Installs what the benchmarks compare goheap with, beyond the Rust
# toolchain, on Debian 12 (bookworm):
#
#   goheap gcbench   Go 1.23 (golang-1.23-go from bookworm-backports, which
#                    this script adds to apt's sources; /usr/lib/go-1.23/bin/go),
#                    else Debian's golang-go (Go 1.19) if backports cannot
#                    be had; the Boehm collector's libgc-dev; gcc
#   goheap cbench    jemalloc, mimalloc and tcmalloc (as scripts/install-peers.sh)
#   scripts/fastpath-count.sh   valgrind
#
# Needs root (or sudo) and apt-get.
set -euo pipefail
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null; then
    sudo=(sudo)
else
    echo "install-bench-deps: run as root" >&2
    exit 1
fi
# shellcheck disable=SC1091
. /etc/os-release
if [ "${ID:-}" != debian ] || [ "${VERSION_CODENAME:-}" != bookworm ]; then
    echo "install-bench-deps: this is ${PRETTY_NAME:-an unknown system}, not Debian 12 (bookworm);" >&2
    echo "install Go 1.23, the Boehm collector's headers (libgc-dev) and gcc by its own means" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
list=/etc/apt/sources.list.d/bookworm-backports.list
if ! grep -rqs '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deb http://deb.debian.org/debian bookworm-backports main" | "${sudo[@]}" tee "$list" >/dev/null
fi
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y gcc libgc-dev libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 libsqlite3-dev valgrind
if ! "${sudo[@]}" apt-get install -y -t bookworm-backports golang-1.23-go; then
    echo "install-bench-deps: no Go 1.23 from bookworm-backports; installing Debian's golang-go (Go 1.19)" >&2
    "${sudo[@]}" apt-get install -y golang-go
fi
go=$(dpkg -L golang-1.23-go 2>/dev/null | grep 'bin/go$' || command -v go)
echo "go: $go ($("$go" version))"
echo "libgc: $(dpkg-query -W -f='${Version}' libgc-dev)"
