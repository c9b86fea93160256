//! Builds `src/run.rs` (`goheap run`) on its own, so its unit tests run
//! while `main.rs` does not dispatch to it yet. Once `main.rs` has
//! `mod run;`, they run there too and this file can go.

#[allow(dead_code)]
#[path = "../src/run.rs"]
mod run;
