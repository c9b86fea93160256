#!/usr/bin/env bash
# Miri over the pure bookkeeping that does not need the OS: span bitmaps
# and counts. (The rest of goheap maps memory with mmap/mprotect, which
# Miri does not model.) Needs the nightly toolchain with the miri component.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo +nightly miri test -p goheap --lib span::
