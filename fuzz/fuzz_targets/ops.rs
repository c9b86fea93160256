//! Fuzz target: an operation sequence (alloc, alloc_zeroed, realloc, free,
//! flush) decoded from the input, run against `GoHeap` and checked against
//! a simple model (see `src/lib.rs`, shared with `tests/property.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| goheap_fuzz::run_ops(data));
