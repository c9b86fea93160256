//! Bad input gets a clear report and an abort, never silent corruption.
//! Each case runs in a child process (this test binary, re-executed with
//! `GOHEAP_BAD_CASE` set), which must die of SIGABRT with a message on
//! stderr naming the pointer and what was wrong.

use goheap::GoHeap;
use std::alloc::{GlobalAlloc, Layout};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

fn case(name: &str) {
    let layout = Layout::from_size_align(48, 8).unwrap();
    let heap = GoHeap;
    // SAFETY: each call below is deliberately invalid (that is the test);
    // goheap must detect it and abort before anything is corrupted.
    unsafe {
        match name {
            "stack" => {
                let mut x = [0u8; 48];
                eprintln!("ptr={:p}", x.as_mut_ptr());
                heap.dealloc(x.as_mut_ptr(), layout);
            }
            "foreign" => {
                let p = std::alloc::System.alloc(layout);
                eprintln!("ptr={p:p}");
                goheap::raw::free(p);
            }
            "foreign-realloc" => {
                let p = std::alloc::System.alloc(layout);
                eprintln!("ptr={p:p}");
                goheap::raw::realloc(p, 8, 100);
            }
            "interior" => {
                let p = heap.alloc(layout).add(16);
                eprintln!("ptr={p:p}");
                goheap::raw::free(p);
            }
            "past-last" => {
                // 48-byte objects come from one-page spans of 170 objects
                // (8160 bytes) and a 32-byte tail: the address 170 objects
                // past the span's start is a multiple of the object size
                // on a page of the span, but no object starts there.
                let p = heap.alloc(layout);
                let base = p as usize & !8191;
                let past = (base + 170 * 48) as *mut u8;
                eprintln!("ptr={past:p}");
                goheap::raw::free(past);
            }
            "double" => {
                let p = heap.alloc(layout);
                eprintln!("ptr={p:p}");
                heap.dealloc(p, layout);
                heap.dealloc(p, layout);
            }
            "double-after-flush" => {
                let p = heap.alloc(layout);
                let keep = heap.alloc(layout); // keeps the span in use
                eprintln!("ptr={p:p}");
                heap.dealloc(p, layout);
                goheap::flush_thread_cache();
                goheap::raw::free(p);
                goheap::flush_thread_cache();
                heap.dealloc(keep, layout);
            }
            "large-double" => {
                let big = Layout::from_size_align(100_000, 8).unwrap();
                let p = heap.alloc(big);
                eprintln!("ptr={p:p}");
                heap.dealloc(p, big);
                heap.dealloc(p, big);
            }
            _ => unreachable!("unknown case {name}"),
        }
    }
    // Reaching this point means the misuse went unnoticed.
    std::process::exit(3);
}

fn run(name: &str, expect: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("GOHEAP_BAD_CASE", name)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{name}: {:?}\n{stderr}",
        out.status
    );
    let ptr = stderr
        .lines()
        .find_map(|l| l.strip_prefix("ptr="))
        .unwrap_or_else(|| panic!("{name}: no ptr line\n{stderr}"));
    let report = stderr
        .lines()
        .find(|l| l.starts_with("goheap: fatal error:"))
        .unwrap_or_else(|| panic!("{name}: no report\n{stderr}"));
    assert!(
        report.contains(ptr),
        "{name}: report does not name {ptr}: {report}"
    );
    assert!(
        report.contains(expect),
        "{name}: report does not say {expect:?}: {report}"
    );
}

#[test]
fn child() {
    if let Ok(name) = std::env::var("GOHEAP_BAD_CASE") {
        case(&name);
    }
}

#[test]
fn foreign_pointers_are_reported() {
    run("foreign", "not a pointer goheap allocated");
    run("foreign-realloc", "not a pointer goheap allocated");
}

#[test]
fn interior_pointers_are_reported() {
    run("interior", "middle of a 48-byte object");
}

/// The slot past a span's last object lies on the span's page and at a
/// multiple of the object size from its start: only the span's mark tells
/// it from an object (a free of it would hand out bytes of the next span).
#[test]
fn the_slot_past_a_spans_last_object_is_reported() {
    let expect = if cfg!(debug_assertions) {
        // Checked builds: the high-water mark is below it too.
        "this 48-byte slot was never handed out"
    } else {
        "past the last 48-byte object of its span"
    };
    run("past-last", expect);
}

#[test]
fn double_free_reaching_the_central_list_is_reported() {
    run("double-after-flush", "double free of a 48-byte object");
}

#[test]
fn double_free_of_a_large_object_is_reported() {
    run("large-double", "not the start of a live large object");
}

/// Sized frees (Rust's `dealloc`) are checked on the spot in debug builds.
#[cfg(debug_assertions)]
#[test]
fn sized_frees_are_checked_in_debug_builds() {
    run("stack", "not a pointer goheap allocated");
    run("double", "double free of a 48-byte object");
}
