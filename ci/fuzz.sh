#!/usr/bin/env bash
# The ops fuzz target (fuzz/fuzz_targets/ops.rs: alloc / alloc_zeroed /
# realloc / free / flush sequences checked against a model, body in
# fuzz/src/lib.rs), bounded by GOHEAP_FUZZ_SECS.
#
#   ci/fuzz.sh               the property run, on stable, no libFuzzer:
#                            seeded pseudo-random inputs for GOHEAP_FUZZ_SECS
#                            (default 60 under CI, 5 otherwise);
#                            GOHEAP_FUZZ_SEED repeats a run (the seed is printed)
#   ci/fuzz.sh --libfuzzer   coverage-guided: cargo +nightly fuzz run ops for
#                            GOHEAP_FUZZ_SECS (default 60); needs cargo-fuzz
#                            (cargo install cargo-fuzz --locked)
#
# Extra arguments go to the test binary, or to libFuzzer.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--libfuzzer" ]; then
    shift
    cd fuzz
    exec cargo +nightly fuzz run ops -- \
        -max_total_time="${GOHEAP_FUZZ_SECS:-60}" -max_len=600 "$@"
fi
exec cargo test --manifest-path fuzz/Cargo.toml --no-default-features --release \
    --test property -- --nocapture "$@"
