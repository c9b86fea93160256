//! The body of the `ops` fuzz target, shared by the libFuzzer target
//! (`fuzz_targets/ops.rs`, run by `cargo fuzz`) and the seeded property
//! run (`tests/property.rs`, run by `cargo test` on stable).
//!
//! An input is decoded into an operation sequence (alloc, alloc_zeroed,
//! realloc, free, flush), run against `GoHeap` and checked against a
//! simple model: blocks never overlap, are aligned, keep their contents,
//! and zeroed blocks are zero.

use goheap::GoHeap;
use std::alloc::{GlobalAlloc, Layout};

/// Bytes of input per operation.
pub const OP_BYTES: usize = 6;

struct Block {
    ptr: *mut u8,
    layout: Layout,
    fill: u8,
}

fn size_from(b: &[u8]) -> usize {
    let raw = u32::from_le_bytes([b[0], b[1], b[2], 0]) as usize;
    match b[3] % 8 {
        0..=4 => raw % 1100,   // tiny and small classes
        5 | 6 => raw % 40_000, // up to and past 32 KiB
        _ => raw % (4 << 20),  // large
    }
}

fn check(b: &Block) {
    // SAFETY: the block is live with `layout.size()` bytes.
    let bytes = unsafe { std::slice::from_raw_parts(b.ptr, b.layout.size()) };
    assert!(bytes.iter().all(|&x| x == b.fill), "contents changed");
}

/// Decodes `data` into operations (one per [`OP_BYTES`] bytes; a shorter
/// tail is ignored), runs them against `GoHeap`, checks every result
/// against the model, and frees what is left. Panics on any violation.
pub fn run_ops(data: &[u8]) {
    let heap = GoHeap;
    let mut live: Vec<Block> = Vec::new();
    for op in data.chunks_exact(OP_BYTES) {
        match op[0] % 5 {
            0 | 1 => {
                let size = size_from(&op[1..5]).max(1);
                let align = 1usize << (op[5] % 21);
                let layout = Layout::from_size_align(size, align).unwrap();
                let zeroed = op[0] % 5 == 1;
                // SAFETY: non-zero size.
                let p = unsafe {
                    if zeroed {
                        heap.alloc_zeroed(layout)
                    } else {
                        heap.alloc(layout)
                    }
                };
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0);
                if zeroed {
                    // SAFETY: fresh block of `size` bytes.
                    assert!(unsafe { std::slice::from_raw_parts(p, size) }
                        .iter()
                        .all(|&x| x == 0));
                }
                for b in &live {
                    let (a0, a1) = (p as usize, p as usize + size);
                    let (b0, b1) = (b.ptr as usize, b.ptr as usize + b.layout.size());
                    assert!(a1 <= b0 || b1 <= a0, "overlap");
                }
                let fill = op[1];
                // SAFETY: fresh block.
                unsafe { std::ptr::write_bytes(p, fill, size) };
                live.push(Block {
                    ptr: p,
                    layout,
                    fill,
                });
            }
            2 if !live.is_empty() => {
                let i = op[1] as usize % live.len();
                let b = live.swap_remove(i);
                check(&b);
                // SAFETY: live block with its layout.
                unsafe { heap.dealloc(b.ptr, b.layout) };
            }
            3 if !live.is_empty() => {
                let i = op[1] as usize % live.len();
                let new_size = size_from(&op[2..6]).max(1);
                let b = &mut live[i];
                check(b);
                // SAFETY: live block with its layout; non-zero new size.
                let q = unsafe { heap.realloc(b.ptr, b.layout, new_size) };
                assert!(!q.is_null());
                let keep = b.layout.size().min(new_size);
                // SAFETY: `q` holds at least `keep` preserved bytes.
                assert!(unsafe { std::slice::from_raw_parts(q, keep) }
                    .iter()
                    .all(|&x| x == b.fill));
                // SAFETY: `q` has `new_size` bytes.
                unsafe { std::ptr::write_bytes(q, b.fill, new_size) };
                b.ptr = q;
                b.layout = Layout::from_size_align(new_size, b.layout.align()).unwrap();
            }
            4 => goheap::flush_thread_cache(),
            _ => {}
        }
    }
    for b in live {
        check(&b);
        // SAFETY: live block with its layout.
        unsafe { heap.dealloc(b.ptr, b.layout) };
    }
}
