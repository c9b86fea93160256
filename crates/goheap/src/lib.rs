//! goheap: Go's memory manager as a Rust allocator.
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: goheap::GoHeap = goheap::GoHeap;
//! ```
//!
//! (Design essay: see below; long form in `docs/design.md`.)
#![deny(unsafe_op_in_unsafe_fn)]

mod arena;
mod cache;
mod central;
mod fixalloc;
pub mod fork;
mod global;
mod heap;
mod malloc;
pub mod options;
pub mod os;
mod pagealloc;
pub mod report;
pub mod sizeclass;
mod span;
mod stats;
pub mod sync;
mod tls;

pub use malloc::MAX_ALLOC;
pub use stats::{memstats, BySize, MemStats};
pub use tls::flush_thread_cache;

use core::alloc::{GlobalAlloc, Layout};

/// goheap as a global allocator:
/// `#[global_allocator] static GLOBAL: goheap::GoHeap = goheap::GoHeap;`
///
/// It can also be called directly (it is a `GlobalAlloc` like any other);
/// every `GoHeap` value shares the one process-wide heap.
#[derive(Debug, Clone, Copy, Default)]
pub struct GoHeap;

// SAFETY: `malloc` returns blocks of at least `layout.size()` bytes aligned
// to `layout.align()` that no one else uses until freed, or null; frees and
// reallocs follow the trait's contracts, which the callers uphold.
unsafe impl GlobalAlloc for GoHeap {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        malloc::alloc(layout.size(), layout.align())
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a live block allocated with `layout`.
        unsafe { malloc::dealloc(ptr, layout.size(), layout.align()) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        malloc::alloc_zeroed(layout.size(), layout.align())
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller passes a live block allocated with `layout`.
        unsafe { malloc::realloc(ptr, layout.size(), layout.align(), new_size) }
    }
}

/// Unsized entry points for front-ends that do not know an object's size
/// when freeing it (the C ABI).
pub mod raw {
    use crate::malloc;

    /// Allocates `size` bytes aligned to `align` (a power of two). Null on
    /// exhaustion.
    pub fn alloc(size: usize, align: usize) -> *mut u8 {
        malloc::alloc(size, align)
    }

    /// Allocates `size` zeroed bytes aligned to `align`.
    pub fn alloc_zeroed(size: usize, align: usize) -> *mut u8 {
        malloc::alloc_zeroed(size, align)
    }

    /// Frees `p` (null is ignored). Aborts with a report if `p` is not a
    /// live goheap object.
    ///
    /// # Safety
    ///
    /// `p` is null or a live goheap object not used afterwards.
    pub unsafe fn free(p: *mut u8) {
        // SAFETY: forwarded contract.
        unsafe { malloc::free(p) }
    }

    /// Whether `p` points into memory goheap handed out and has not taken
    /// back (an in-use small-object span or large object). Never aborts:
    /// null, foreign pointers (another allocator's, the stack, static data)
    /// and the pages of freed large objects give `false`. It does not check
    /// that `p` is the start of an object; [`free`] does.
    pub fn owns(p: *const u8) -> bool {
        malloc::owns(p)
    }

    /// Bytes usable at `p`.
    ///
    /// # Safety
    ///
    /// `p` is a live goheap object.
    pub unsafe fn usable_size(p: *const u8) -> usize {
        // SAFETY: forwarded contract.
        unsafe { malloc::usable_size(p) }
    }

    /// Resizes `p` to `new_size` bytes keeping alignment `align`; null on
    /// exhaustion (then `p` is untouched).
    ///
    /// # Safety
    ///
    /// `p` is a live goheap object allocated with alignment `align`.
    pub unsafe fn realloc(p: *mut u8, align: usize, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { malloc::realloc_unsized(p, align, new_size) }
    }
}
