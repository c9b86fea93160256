//! Compile-fail tests of the tracing rules: each file in `tests/ui/` must
//! fail to compile with the error in its `.stderr` file, and each file in
//! `tests/ui/pass/` must compile and run.
//!
//! The expected errors are rustc's own text, so a new toolchain may change
//! them; regenerate with `TRYBUILD=overwrite cargo test -p goheap-gc --test
//! compile_fail` and read the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
