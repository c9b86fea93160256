//! `fork` in a Rust program that uses goheap as its global allocator: the
//! core registers its own `pthread_atfork` handlers (the C library's are
//! the same ones), so a child forked while other threads allocate can
//! allocate too, and a child forked while the scavenger releases pages
//! outside the heap lock loses none of them.
//!
//! Each child checks the heap (`goheap::check_heap`) and reports through
//! its exit status; a child that hangs (a lock inherited from a thread
//! that does not exist in the child) is killed after a time limit and
//! fails the test.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: goheap::GoHeap = goheap::GoHeap;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What a child does: allocate and free across size classes and sizes,
/// then check the heap. Exit status: 0 fine, 1 heap check problems.
fn child_work() -> i32 {
    let mut v: Vec<Vec<u8>> = Vec::new();
    for i in 0..2000 {
        v.push(vec![i as u8; 1 + (i * 37) % 5000]);
    }
    v.push(vec![0u8; 200_000]);
    let s: String = v.iter().map(|b| b.len().to_string()).collect();
    drop(v);
    if s.is_empty() {
        return 2;
    }
    if goheap::check_heap().is_ok() {
        0
    } else {
        1
    }
}

/// Forks, runs `child_work` in the child, and waits for it with a time
/// limit. Returns the child's exit status, or `None` if it hung.
fn fork_and_check(limit: Duration) -> Option<i32> {
    // SAFETY: the child only allocates through goheap (whose fork handlers
    // made its state consistent), checks the heap and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = child_work();
        // SAFETY: ends the child without running the parent's exit code.
        unsafe { libc::_exit(code) };
    }
    let t = Instant::now();
    loop {
        let mut st = 0;
        // SAFETY: waits for our own child without blocking.
        let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
        if r == pid {
            return Some(if libc::WIFEXITED(st) {
                libc::WEXITSTATUS(st)
            } else {
                128 + libc::WTERMSIG(st)
            });
        }
        if t.elapsed() > limit {
            // SAFETY: our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut st, 0);
            }
            return None;
        }
        thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn children_forked_while_threads_allocate_can_allocate() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..3)
        .map(|t| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut keep: Vec<Vec<u8>> = Vec::new();
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    // Small, medium and large, so every lock is taken often.
                    keep.push(vec![t as u8; 1 + (i * 131) % 40_000]);
                    if keep.len() > 300 {
                        keep.drain(..150);
                    }
                    if i % 500 == 0 {
                        goheap::flush_thread_cache();
                    }
                    i += 1;
                }
            })
        })
        .collect();
    let mut results = Vec::new();
    for _ in 0..150 {
        results.push(fork_and_check(Duration::from_secs(10)));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let hung = results.iter().filter(|r| r.is_none()).count();
    let bad: Vec<_> = results.iter().flatten().filter(|&&c| c != 0).collect();
    assert_eq!(
        hung,
        0,
        "{hung} of {} children hung (a lock held across fork)",
        results.len()
    );
    assert!(bad.is_empty(), "children failed: {bad:?}");
}

#[test]
fn children_forked_while_the_scavenger_releases_lose_no_pages() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut forks = 0;
    let mut bad = Vec::new();
    for round in 0..4 {
        // 256 MiB of 64 KiB blocks, freed at once: the heap goes idle and
        // the background scavenger releases it in 8 MiB steps, calling
        // madvise outside the heap lock with each step's pages claimed.
        let blocks: Vec<Vec<u8>> = (0..4096).map(|i| vec![i as u8; 64 << 10]).collect();
        drop(blocks);
        let before = goheap::metrics().scavenged_background;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(1500) {
            match fork_and_check(Duration::from_secs(10)) {
                Some(0) => {}
                other => bad.push((round, other)),
            }
            forks += 1;
        }
        assert!(
            goheap::metrics().scavenged_background > before,
            "round {round}: the scavenger released nothing"
        );
    }
    assert!(forks >= 20, "only {forks} forks");
    assert!(
        bad.is_empty(),
        "{} of {forks} children found the heap inconsistent (or hung): {bad:?}",
        bad.len()
    );
}
