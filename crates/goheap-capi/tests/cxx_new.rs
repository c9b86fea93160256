//! The throwing C++ `operator new` under `LD_PRELOAD=libgoheap.so`
//! (`tests/c/new_handler.cc`): failures throw `std::bad_alloc` to the
//! caller, and call the `std::new_handler` first, retrying after each call.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

fn program() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = work_dir("new_handler").join("new_handler");
        let mut c = cc(true);
        c.arg(c_src("new_handler.cc")).arg("-o").arg(&out);
        compile(c);
        out
    })
}

fn run_case(case: &str, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(program());
    cmd.arg(case).env("LD_PRELOAD", lib_so());
    for &(k, v) in env {
        cmd.env(k, v);
    }
    run(cmd, LIMIT)
}

/// Every throwing form (plain, array, aligned, aligned array,
/// new-expressions) of a size goheap refuses throws `std::bad_alloc`, which
/// the program catches, a thousand times in a row; `nothrow` forms return
/// null.
#[test]
fn failed_new_throws_bad_alloc() {
    if !need("c++") {
        return;
    }
    let r = run_case("bad_alloc", &[]);
    r.assert_ok("bad_alloc");
    assert_eq!(r.stdout, "bad_alloc ok\n");
    assert!(!r.stderr.contains("goheap:"), "{}", r.stderr);
}

/// Under a 96 MiB hard limit: a handler that frees a reserve block is
/// called once and the retry succeeds (plain array and aligned forms); a
/// handler that throws `bad_alloc`, and one that uninstalls itself, end in
/// `bad_alloc` at the caller after one call each.
#[test]
fn new_handler_is_called_and_the_allocation_retried() {
    if !need("c++") {
        return;
    }
    let r = run_case(
        "handler",
        &[("GOHEAP_MEMORY_LIMIT", "96MiB"), ("GOHEAP_HARD_LIMIT", "1")],
    );
    r.assert_ok("handler");
    assert_eq!(
        r.stdout,
        "handler retry ok\nhandler aligned ok\nhandler throws ok\n"
    );
}
