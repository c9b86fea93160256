//! Zeroed large allocations: reused pages are zero however they were
//! zeroed, and a program that leaves its zeroed buffers mostly untouched
//! gets them by page release (the untouched pages take no memory), while
//! one that writes them all over settles on clearing (no fault per page)
//! and gets its fresh buffers' pages mapped in one call.
//! Its own process: the choice between the two is process-wide.
#![cfg(not(goheap_loom))] // goheap is only `sync` under loom (ci/loom.sh)
#![cfg(target_os = "linux")]

use std::alloc::{alloc_zeroed, dealloc, Layout};

#[global_allocator]
static GLOBAL: goheap::GoHeap = goheap::GoHeap;

const SIZE: usize = 4 << 20;
const PAGE: usize = 4096;

/// The part of `[p, p + SIZE)` resident now, in percent.
fn resident_percent(p: *const u8) -> usize {
    resident_percent_of(p, SIZE)
}

/// The part of `[p, p + size)` resident now, in percent.
fn resident_percent_of(p: *const u8, size: usize) -> usize {
    let mut vec = vec![0u8; size / PAGE];
    // SAFETY: the range is one live allocation, page-aligned (a large
    // goheap object starts a span); `vec` has a byte per page.
    let rc = unsafe { libc::mincore(p as *mut libc::c_void, size, vec.as_mut_ptr()) };
    assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
    vec.iter().filter(|&&b| b & 1 != 0).count() * 100 / vec.len()
}

fn all_zero(p: *const u8) -> bool {
    // SAFETY: `SIZE` readable bytes of a live allocation.
    unsafe { std::slice::from_raw_parts(p, SIZE) }
        .iter()
        .all(|&b| b == 0)
}

#[test]
fn zeroed_large_buffers_are_released_when_sparse_and_cleared_when_dense() {
    let layout = Layout::from_size_align(SIZE, 16).unwrap();
    // Sparse use: one byte written per buffer. From the second round the
    // pages are reused (the last buffer's); they come back released.
    for round in 0..12 {
        // SAFETY: a non-zero-size layout.
        let p = unsafe { alloc_zeroed(layout) };
        assert!(!p.is_null());
        let resident = resident_percent(p);
        assert!(
            resident < 5,
            "round {round}: {resident}% of a fresh zeroed buffer resident (pages cleared, not released)"
        );
        // Reading a page faults it in too (the zero page), which would
        // count as use: read only the byte the last round wrote and the
        // ends.
        for at in [0, SIZE / 2, SIZE - 1] {
            // SAFETY: inside the allocation.
            let b = unsafe { p.add(at).read() };
            assert_eq!(
                b, 0,
                "round {round}: byte {at} of a zeroed buffer holds old data"
            );
        }
        // SAFETY: inside the allocation.
        unsafe { p.add(SIZE / 2).write(1) };
        // SAFETY: allocated above with `layout`.
        unsafe { dealloc(p, layout) };
    }
    // Dense use: every byte written. After a few frees show it, the pages
    // are cleared (so resident when handed out), and still zero.
    let mut cleared = 0;
    for round in 0..16 {
        // SAFETY: a non-zero-size layout.
        let p = unsafe { alloc_zeroed(layout) };
        assert!(!p.is_null());
        if resident_percent(p) > 90 {
            cleared += 1;
        }
        assert!(
            all_zero(p),
            "dense round {round}: a zeroed buffer holds old data"
        );
        // SAFETY: `SIZE` writable bytes.
        unsafe { p.write_bytes(0xab, SIZE) };
        // SAFETY: allocated above with `layout`.
        unsafe { dealloc(p, layout) };
    }
    assert!(
        cleared >= 12,
        "only {cleared} of 16 densely used zeroed buffers were cleared instead of released"
    );
    // Still dense: zeroed buffers larger than any freed run, all live at
    // once, so their pages are new to the heap (or released): they read
    // as zero without clearing, and are mapped in at once
    // (`MADV_POPULATE_WRITE`) instead of one fault per page, two for a
    // page read before it is written. One may be a probe (released).
    let big = Layout::from_size_align(4 * SIZE, 16).unwrap();
    let fresh: Vec<*mut u8> = (0..3)
        // SAFETY: a non-zero-size layout.
        .map(|_| unsafe { alloc_zeroed(big) })
        .collect();
    let populated = fresh
        .iter()
        .filter(|&&p| {
            assert!(!p.is_null());
            resident_percent_of(p, big.size()) > 90
        })
        .count();
    for &p in &fresh {
        // SAFETY: `big.size()` readable bytes of a live allocation.
        let bytes = unsafe { std::slice::from_raw_parts(p, big.size()) };
        assert!(
            bytes.iter().all(|&b| b == 0),
            "a fresh zeroed buffer holds data"
        );
        // SAFETY: allocated above with `big`.
        unsafe { dealloc(p, big) };
    }
    assert!(
        populated >= 2,
        "only {populated} of 3 fresh zeroed buffers were mapped in at allocation, in a \
         program that writes its zeroed buffers all over"
    );
}
