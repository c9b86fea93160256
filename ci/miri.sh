#!/usr/bin/env bash
# Miri, with tree borrows, over the goheap unit tests of every module it can
# model: the span bitmaps and counts, the size-class table, the fixed
# allocator, the page allocator, the heap and central lists over the mock
# OS (which under Miri maps read-write memory and models release by
# zeroing, since Miri has neither mprotect nor madvise), a thread cache
# over a heap of its own, and the fork handlers' repair; then goheap-gc's
# unit tests (tracing, and whole collections over the process heap, which
# under Miri uses the mock OS too).
#
#   ci/miri.sh            install Miri if missing, run the tests
#   ci/miri.sh --setup    only install Miri (nightly toolchain with the miri
#                         and rust-src components) and build its sysroot
#   ci/miri.sh ARGS...    extra arguments for the test binary (--skip NAME,
#                         --exact, -Zunstable-options --report-time)
#
# Without Miri (and rustup cannot add it) this fails under CI (the CI
# environment variable set and not empty) and prints that it skipped
# elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

# The test-name filters run under Miri, one libtest substring filter each
# (a module path with its trailing ::). To put another module under Miri,
# add it here; every filter must run at least one test, so a typo fails.
# Not here: the thread-local and process-wide parts (tls, malloc, the
# scavenger thread), which need the real OS; they are covered by the
# integration tests, stress and loom.
# MIRI_MODULES="..." ci/miri.sh tries another list.
MIRI_MODULES="${MIRI_MODULES:-span:: sizeclass:: fixalloc:: pagealloc:: heap:: cache:: fork::}"

# Tree borrows; isolation stays on (the tests read no clock, file or
# environment that needs the host).
# The tests leak their heaps on purpose (`&'static Heap`), and spans hand
# out addresses computed from integers (base + index * size).
export MIRIFLAGS="-Zmiri-tree-borrows -Zmiri-ignore-leaks -Zmiri-permissive-provenance${MIRIFLAGS:+ $MIRIFLAGS}"

in_ci() { [ -n "${CI:-}" ]; }

have_miri() {
    cargo +nightly miri --version >/dev/null 2>&1
}

# Installs what is missing, quietly; the log is shown only on failure.
ensure_miri() {
    have_miri && return 0
    local log
    log=$(mktemp)
    echo "miri.sh: installing the nightly toolchain's miri and rust-src components"
    local toolchains
    toolchains=$(rustup toolchain list 2>/dev/null || true)
    if grep -q '^nightly' <<<"$toolchains"; then
        rustup component add --toolchain nightly miri rust-src >"$log" 2>&1 || true
    else
        rustup toolchain install nightly --profile minimal \
            --component miri --component rust-src >"$log" 2>&1 || true
    fi
    if have_miri; then
        rm -f "$log"
        return 0
    fi
    cat "$log" >&2
    rm -f "$log"
    if in_ci; then
        echo "miri.sh: FAILED: Miri is missing (nightly toolchain with the miri component) and rustup could not install it" >&2
        exit 1
    fi
    echo "miri.sh: skipped: Miri is missing (rustup component add --toolchain nightly miri rust-src failed)"
    exit 0
}

ensure_miri
if [ "${1:-}" = "--setup" ]; then
    # Builds Miri's sysroot now rather than in the test step.
    if ! out=$(cargo +nightly miri setup 2>&1); then
        echo "$out" >&2
        echo "miri.sh: FAILED: cargo miri setup" >&2
        exit 1
    fi
    exit 0
fi

read -r -a filters <<<"$MIRI_MODULES"
if [ ${#filters[@]} -eq 0 ]; then
    echo "miri.sh: FAILED: MIRI_MODULES is empty" >&2
    exit 1
fi
echo "miri.sh: MIRIFLAGS=$MIRIFLAGS; filters: ${filters[*]}"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# One run with every filter (libtest takes several after --); its output
# is kept to check what each filter ran.
cargo +nightly miri test -p goheap --lib -- "${filters[@]}" "$@" 2>&1 | tee "$log"

# Each filter must have run (not only matched an ignored test) at least
# one test. Parse the "test NAME ... ok" lines libtest prints.
passed=$(sed -n 's/^test \([^ ]*\) \.\.\. ok.*$/\1/p' "$log")
missing=()
for f in "${filters[@]}"; do
    n=$(grep -cF -- "$f" <<<"$passed" || true)
    echo "miri.sh: $f: $n tests passed under Miri"
    [ "$n" -gt 0 ] || missing+=("$f")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "miri.sh: FAILED: no test ran under Miri for filter(s): ${missing[*]} (a typo in MIRI_MODULES, or every test of it ignored under Miri)" >&2
    exit 1
fi

# goheap-gc's unit tests: the tracing layer and a whole collection (mark,
# the dead objects' drops, sweep) on a small graph, over the process heap
# (which under Miri maps through the mock OS).
cargo +nightly miri test -p goheap-gc --lib -- "$@" 2>&1 | tee "$log"
n=$(grep -c '^test .* \.\.\. ok' "$log" || true)
echo "miri.sh: goheap-gc: $n tests passed under Miri"
[ "$n" -gt 0 ] || { echo "miri.sh: FAILED: no goheap-gc test ran under Miri" >&2; exit 1; }
