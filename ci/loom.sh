#!/usr/bin/env bash
# loom model checks of goheap::sync (the lock and the arena map's
# publication). With --cfg goheap_loom goheap builds only its sync module
# over loom's atomics; the tests are in crates/goheap/tests/loom.rs.
#
# A separate target directory keeps the normal build's artifacts (built
# without the cfg) from being invalidated. Extra arguments go to the test
# binary, e.g. `ci/loom.sh mutex`. LOOM_MAX_PREEMPTIONS, LOOM_LOG and
# LOOM_CHECKPOINT_* are honoured by loom.
#
# LOOM_MAX_PREEMPTIONS defaults to 2 here (CI's bound): it bounds the
# models that set no bound of their own; those that pin one with
# bounded(n) keep it (some state spaces are too large for more). The long
# soak raises it: LOOM_MAX_PREEMPTIONS=3 ci/loom.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/loom}"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
echo "loom.sh: LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS"
RUSTFLAGS="--cfg goheap_loom" cargo test -p goheap --test loom --release -- "$@"
