//! goheap: Go's memory manager as a Rust allocator (design essay to come).
#![deny(unsafe_op_in_unsafe_fn)]

pub mod os;
mod pagealloc;
pub mod sizeclass;
pub mod sync;
mod stats;

pub use stats::{memstats, BySize, MemStats};

/// goheap's internal structures, exposed for benchmarks and integration
/// tests (feature `internals`). Not a stable API.
#[cfg(feature = "internals")]
pub mod internals {
    pub use crate::pagealloc::{PageAlloc, CHUNK_BYTES, CHUNK_PAGES};
}

use core::alloc::{GlobalAlloc, Layout};

/// goheap as a global allocator:
/// `#[global_allocator] static GLOBAL: goheap::GoHeap = goheap::GoHeap;`
#[derive(Debug, Clone, Copy, Default)]
pub struct GoHeap;

// SAFETY: placeholder forwarding to the system allocator.
unsafe impl GlobalAlloc for GoHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}
