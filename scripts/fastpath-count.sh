#!/usr/bin/env bash
# Instructions per malloc+free pair, counted with callgrind: the figure the
# README's "Fast path" line and docs/design.md's C fast-path table quote.
#
#   scripts/fastpath-count.sh            goheap (this tree's release build)
#                                        and every installed peer
#   scripts/fastpath-count.sh LIB...     only these libraries (paths of
#                                        .so files to preload; "glibc" for
#                                        none)
#
# The C loop is `malloc(16 + (i & 15))` then `free`, run for 10^6 and for
# 2*10^6 pairs under LD_PRELOAD; the difference of the two totals over 10^6
# is the pair's cost with the loop's own instructions in it and start-up,
# exit and the first refills out of it. The Rust figure is the same
# difference for an 8-byte Box (`bench-<allocator> pair 1` and `pair 2`).
#
# Needs valgrind (scripts/install-bench-deps.sh installs it) and gcc;
# builds goheap-capi and goheap-bench in release mode first (separate
# builds: each crate's features must not leak into the other).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || {
    echo "fastpath-count.sh: valgrind is missing (scripts/install-bench-deps.sh installs it)" >&2
    exit 1
}

target=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release -q -p goheap-capi
cargo build --release -q -p goheap-bench

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat >"$work/pairs.c" <<'EOF'
#include <stdlib.h>

int main(int argc, char **argv) {
    long n = (argc > 1 ? atol(argv[1]) : 1) * 1000000;
    for (long i = 0; i < n; i++) {
        void *p = malloc(16 + (i & 15));
        /* An empty asm that takes p: gcc may not drop the pair. */
        __asm__ volatile("" : : "r"(p) : "memory");
        free(p);
    }
    return 0;
}
EOF
gcc -O2 -o "$work/pairs" "$work/pairs.c"

# Total instructions of one run: callgrind's "Collected" line of the
# program itself (with --trace-children, env is counted apart).
count() {
    local out
    out=$(valgrind --tool=callgrind --trace-children=yes \
        --callgrind-out-file="$work/cg.%p" "$@" 2>&1 >/dev/null |
        awk '/Collected/ { n = $NF } END { print n }')
    rm -f "$work"/cg.*
    echo "$out"
}

# Instructions per pair of COMMAND: its count with a last argument of 2
# (millions of pairs) minus its count with 1, over 10^6.
per_pair() {
    local one two
    one=$(count "$@" 1)
    two=$(count "$@" 2)
    awk -v a="$one" -v b="$two" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'
}

c_pair() {
    local preload=()
    [ "$1" = glibc ] || preload=(env LD_PRELOAD="$1")
    per_pair "${preload[@]}" "$work/pairs"
}

libs=("$@")
if [ ${#libs[@]} -eq 0 ]; then
    libs=("$target/release/libgoheap.so" glibc)
    for peer in /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 \
        /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
        /usr/lib/x86_64-linux-gnu/libmimalloc.so.2; do
        [ -e "$peer" ] && libs+=("$peer")
    done
fi

echo "C: malloc(16 + (i & 15)) + free, instructions per pair (the loop included)"
for lib in "${libs[@]}"; do
    printf '  %-60s %s\n' "$lib" "$(c_pair "$lib")"
done

if [ $# -eq 0 ]; then
    echo "Rust: Box<u64> new + drop, instructions per pair (the loop included)"
    for a in goheap mimalloc jemalloc system; do
        printf '  %-60s %s\n' "bench-$a" "$(per_pair "$target/release/bench-$a" pair)"
    done
fi
