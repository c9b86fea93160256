//! Fixed-size metadata allocator (Go's fixalloc): span structures and
//! thread caches come from here, straight from the OS, never from the heap
//! they describe.
//!
//! See the crate docs for the overview.

use crate::os::{Os, OS_PAGE_SIZE};
use core::ptr;

/// Bytes requested from the OS at a time.
const CHUNK_BYTES: usize = 256 * 1024;

#[repr(C)]
struct FreeSlot {
    next: *mut FreeSlot,
}

/// A free-list allocator of `size`-byte slots carved from OS chunks.
///
/// Not thread-safe: its owner keeps it under a lock (the heap lock for
/// spans, the cache registry lock for thread caches).
pub(crate) struct FixAlloc {
    size: usize,
    free: *mut FreeSlot,
    /// Unused tail of the current chunk.
    chunk: usize,
    chunk_end: usize,
    /// Slots handed out and not returned.
    pub(crate) inuse: usize,
    /// Bytes obtained from the OS.
    pub(crate) sys: usize,
}

// SAFETY: the slots are plain memory owned by this allocator; moving the
// allocator between threads (under its owner's lock) is fine.
unsafe impl Send for FixAlloc {}

impl FixAlloc {
    /// An allocator of `size`-byte slots (`size` a multiple of 8).
    pub(crate) const fn new(size: usize) -> Self {
        FixAlloc {
            size,
            free: ptr::null_mut(),
            chunk: 0,
            chunk_end: 0,
            inuse: 0,
            sys: 0,
        }
    }

    /// Size of each slot.
    pub(crate) fn slot_size(&self) -> usize {
        self.size
    }

    /// A slot of uninitialised memory, or null if the OS refuses.
    pub(crate) fn alloc(&mut self, os: &dyn Os) -> *mut u8 {
        if !self.free.is_null() {
            let slot = self.free;
            // SAFETY: slots on the free list were handed back by `free` and
            // hold a valid `next` link.
            self.free = unsafe { (*slot).next };
            self.inuse += 1;
            return slot.cast();
        }
        if self.chunk_end - self.chunk < self.size {
            let bytes = CHUNK_BYTES.max(self.size.next_multiple_of(OS_PAGE_SIZE));
            let p = os.reserve(bytes, OS_PAGE_SIZE, 0);
            // SAFETY: `p` is a fresh reservation of `bytes` bytes.
            if p.is_null() || !unsafe { os.commit(p, bytes) } {
                return ptr::null_mut();
            }
            self.chunk = p as usize;
            self.chunk_end = self.chunk + bytes;
            self.sys += bytes;
        }
        let p = self.chunk;
        self.chunk += self.size;
        self.inuse += 1;
        p as *mut u8
    }

    /// Returns a slot.
    ///
    /// # Safety
    ///
    /// `p` came from `alloc` on this allocator and is no longer used.
    pub(crate) unsafe fn free(&mut self, p: *mut u8) {
        let slot = p.cast::<FreeSlot>();
        // SAFETY: the caller hands us a slot of ours, at least 8 bytes.
        unsafe { (*slot).next = self.free };
        self.free = slot;
        self.inuse -= 1;
    }
}
