//! The allocator calls out of itself while a thread's cache is in the
//! middle of an operation: the heap's first span starts the scavenger
//! thread, and creating a thread allocates (glibc `calloc`s the new
//! thread's TLS vector, which under `LD_PRELOAD` is goheap's) from inside
//! the refill that made that span. The nested allocation must go through
//! the fallback cache, not the refilling cache: it once replaced that
//! cache's span of the same class, leaving a span no cache owned.
//!
//! For every size class, a fresh process makes its first allocations in
//! that class (enough to need a second span) and asks the heap checker;
//! and the same in a child forked after the parent made a span of another
//! class (the child starts its own scavenger at its first span).

mod common;

use common::*;
use goheap_core::sizeclass::{class_nelems, class_size, NUM_SIZE_CLASSES};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

fn program() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let out = work_dir("reentry").join("first_alloc");
        let mut c = cc(false);
        c.arg(c_src("first_alloc.c"))
            .arg("-o")
            .arg(&out)
            .arg("-ldl");
        compile(c);
        out
    })
}

fn every_class(mode: &str) {
    if !need("cc") {
        return;
    }
    let mut failed = Vec::new();
    for class in 1..NUM_SIZE_CLASSES {
        // Skip the class the "child" mode's parent uses for its own span.
        if mode == "child" && class_size(class) >= 4000 && class_size(class) <= 4096 {
            continue;
        }
        let size = class_size(class);
        let n = class_nelems(class) + 1;
        let mut cmd = Command::new(program());
        cmd.args([mode, &size.to_string(), &n.to_string()])
            .env("LD_PRELOAD", lib_so());
        let r = run(cmd, Duration::from_secs(60));
        if r.timed_out || r.code() != Some(0) {
            failed.push(format!(
                "class {class} ({size} B): status {:?}\n{}",
                r.status, r.stderr
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{mode}: {} classes failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn first_allocations_of_every_class_leave_a_consistent_heap() {
    every_class("parent");
}

#[test]
fn first_allocations_in_a_forked_child_leave_a_consistent_heap() {
    every_class("child");
}
