//! Fixed-size metadata allocator (Go's fixalloc): span structures and
//! thread caches come from here, straight from the OS, never from the heap
//! they describe.
//!
//! See the crate docs for the overview. Unlike Go's fixalloc, memory is
//! given back: slots live in 64 KiB chunks, each with its own free list
//! and count, and [`FixAlloc::release_empty`] returns chunks with no slot
//! in use to the OS (the scavenger calls it). After a burst of a million
//! spans, their structs' memory does not stay resident forever.

use crate::os::{Os, OS_PAGE_SIZE};
use core::ptr;

/// Bytes per chunk, and its alignment (so a slot finds its chunk by
/// masking its address).
const CHUNK_BYTES: usize = 64 * 1024;

#[repr(C)]
struct FreeSlot {
    next: *mut FreeSlot,
}

/// The head of each chunk. Slots start at the first multiple of the slot
/// size's alignment after it.
#[repr(C)]
struct Chunk {
    /// Free slots of this chunk.
    free: *mut FreeSlot,
    /// Slots never handed out: `[bump, end)`.
    bump: usize,
    end: usize,
    /// Slots in use.
    inuse: usize,
    /// Links in the allocator's list of chunks with free slots.
    next: *mut Chunk,
    prev: *mut Chunk,
    /// On the list of chunks with free slots.
    listed: bool,
    /// Memory released to the OS (the header itself stays resident).
    released: bool,
}

/// A free-list allocator of `size`-byte slots carved from 64 KiB chunks.
///
/// Not thread-safe: its owner keeps it under a lock (the heap lock for
/// spans, the cache registry lock for thread caches).
pub(crate) struct FixAlloc {
    size: usize,
    /// Chunks with a free slot (or never-used space), most recently freed
    /// into first.
    partial: *mut Chunk,
    /// Slots handed out and not returned.
    pub(crate) inuse: usize,
    /// Bytes obtained from the OS and not released.
    pub(crate) sys: usize,
}

// SAFETY: the chunks are plain memory owned by this allocator; moving the
// allocator between threads (under its owner's lock) is fine.
unsafe impl Send for FixAlloc {}

/// Offset of the first slot in a chunk.
const fn first_slot(size: usize) -> usize {
    let header = core::mem::size_of::<Chunk>();
    header.next_multiple_of(if size >= 64 { 64 } else { 8 })
}

impl FixAlloc {
    /// An allocator of `size`-byte slots (`size` a multiple of 8, at most
    /// a chunk less its header).
    pub(crate) const fn new(size: usize) -> Self {
        assert!(size % 8 == 0 && size >= 8 && first_slot(size) + size <= CHUNK_BYTES);
        FixAlloc {
            size,
            partial: ptr::null_mut(),
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
        if self.partial.is_null() && !self.new_chunk(os) {
            return ptr::null_mut();
        }
        let c = self.partial;
        // SAFETY: chunks on the partial list are live headers of ours.
        let chunk = unsafe { &mut *c };
        if chunk.released {
            // SAFETY: the chunk's memory is ours; recommitting is a no-op
            // for memory released with DONTNEED (it is still mapped RW).
            self.sys += CHUNK_BYTES - OS_PAGE_SIZE;
            chunk.released = false;
        }
        let p = if !chunk.free.is_null() {
            let slot = chunk.free;
            // SAFETY: free slots hold a valid `next` link.
            chunk.free = unsafe { (*slot).next };
            slot as usize
        } else {
            let p = chunk.bump;
            chunk.bump += self.size;
            p
        };
        chunk.inuse += 1;
        self.inuse += 1;
        if chunk.free.is_null() && chunk.end - chunk.bump < self.size {
            // SAFETY: `c` is on the list.
            unsafe { self.unlist(c) };
        }
        p as *mut u8
    }

    fn new_chunk(&mut self, os: &dyn Os) -> bool {
        let p = os.reserve(CHUNK_BYTES, CHUNK_BYTES, 0);
        // SAFETY: `p` is a fresh reservation of CHUNK_BYTES.
        if p.is_null() || !unsafe { os.commit(p, CHUNK_BYTES) } {
            return false;
        }
        let base = p as usize;
        let slots = (CHUNK_BYTES - first_slot(self.size)) / self.size;
        // SAFETY: the header fits at the start of our fresh chunk.
        unsafe {
            p.cast::<Chunk>().write(Chunk {
                free: ptr::null_mut(),
                bump: base + first_slot(self.size),
                end: base + first_slot(self.size) + slots * self.size,
                inuse: 0,
                next: ptr::null_mut(),
                prev: ptr::null_mut(),
                listed: false,
                released: false,
            });
            self.list(p.cast());
        }
        self.sys += CHUNK_BYTES;
        true
    }

    /// # Safety
    ///
    /// `c` is one of our chunks, not listed.
    unsafe fn list(&mut self, c: *mut Chunk) {
        // SAFETY: per the contract; the head, if any, is a live chunk.
        unsafe {
            (*c).prev = ptr::null_mut();
            (*c).next = self.partial;
            if !self.partial.is_null() {
                (*self.partial).prev = c;
            }
            (*c).listed = true;
        }
        self.partial = c;
    }

    /// # Safety
    ///
    /// `c` is one of our chunks, listed.
    unsafe fn unlist(&mut self, c: *mut Chunk) {
        // SAFETY: per the contract; neighbours are live chunks.
        unsafe {
            let (prev, next) = ((*c).prev, (*c).next);
            if prev.is_null() {
                self.partial = next;
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
            (*c).listed = false;
        }
    }

    /// Returns a slot.
    ///
    /// # Safety
    ///
    /// `p` came from `alloc` on this allocator and is no longer used.
    pub(crate) unsafe fn free(&mut self, p: *mut u8) {
        let c = (p as usize & !(CHUNK_BYTES - 1)) as *mut Chunk;
        // SAFETY: `p` lies in one of our chunks, whose header is live.
        unsafe {
            let slot = p.cast::<FreeSlot>();
            (*slot).next = (*c).free;
            (*c).free = slot;
            (*c).inuse -= 1;
            if !(*c).listed {
                self.list(c);
            }
        }
        self.inuse -= 1;
    }

    /// Releases the memory of every chunk with no slot in use (keeping its
    /// header page), except the first one found, kept for reuse. Returns
    /// the bytes released.
    pub(crate) fn release_empty(&mut self, os: &dyn Os) -> usize {
        let mut released = 0;
        let mut kept = false;
        let mut c = self.partial;
        while !c.is_null() {
            // SAFETY: listed chunks are live headers of ours.
            let chunk = unsafe { &mut *c };
            if chunk.inuse == 0 && !chunk.released {
                if !kept {
                    kept = true;
                } else {
                    let base = c as usize;
                    // The chunk's slots are all free: forget them and rewind
                    // the bump pointer, so the released memory is only
                    // touched again when handed out.
                    chunk.free = ptr::null_mut();
                    chunk.bump = base + first_slot(self.size);
                    chunk.released = true;
                    // SAFETY: everything past the header page is free slot
                    // memory of ours that nobody uses.
                    unsafe {
                        os.decommit(
                            (base + OS_PAGE_SIZE) as *mut u8,
                            CHUNK_BYTES - OS_PAGE_SIZE,
                            false,
                        )
                    };
                    self.sys -= CHUNK_BYTES - OS_PAGE_SIZE;
                    released += CHUNK_BYTES - OS_PAGE_SIZE;
                }
            }
            c = chunk.next;
        }
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::mock::MockOs;

    #[test]
    fn reuses_and_releases() {
        static OS: MockOs = MockOs::new();
        let mut fa = FixAlloc::new(320);
        let per_chunk = (CHUNK_BYTES - first_slot(320)) / 320;
        let mut v: Vec<*mut u8> = (0..per_chunk * 3 + 5).map(|_| fa.alloc(&OS)).collect();
        assert!(v.iter().all(|p| !p.is_null() && *p as usize % 64 == 0));
        let mut sorted = v.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), v.len(), "slots handed out twice");
        for w in sorted.windows(2) {
            assert!(w[1] as usize - w[0] as usize >= 320, "slots overlap");
        }
        assert_eq!(fa.sys, 4 * CHUNK_BYTES);
        // Write every slot, free them all, release.
        for &p in &v {
            // SAFETY: a slot of 320 bytes we own.
            unsafe { p.write_bytes(0xab, 320) };
        }
        for p in v.drain(..) {
            // SAFETY: from `alloc`, unused now.
            unsafe { fa.free(p) };
        }
        assert_eq!(fa.inuse, 0);
        let released = fa.release_empty(&OS);
        assert_eq!(released, 3 * (CHUNK_BYTES - OS_PAGE_SIZE));
        assert_eq!(fa.sys, 4 * CHUNK_BYTES - released);
        assert_eq!(fa.release_empty(&OS), 0, "nothing left to release");
        // Released chunks are reused (and read zero, so slots are fresh).
        let p = (0..per_chunk * 4)
            .map(|_| fa.alloc(&OS))
            .collect::<Vec<_>>();
        assert_eq!(
            fa.sys,
            4 * CHUNK_BYTES,
            "reused the released chunks, no new ones"
        );
        for &q in &p {
            // SAFETY: fresh slot.
            unsafe { q.write_bytes(1, 320) };
        }
    }
}
