//! The page allocator: which 8 KiB pages of the heap's address space are
//! free, address-ordered first fit.
//!
//! See the crate docs for the overview.
//!
//! PLACEHOLDER: a sorted array of free runs with linear first-fit search.
//! The contract below is what the real implementation (Go's bitmap per
//! 4 MiB chunk plus a radix tree of summaries) provides.
//!
//! Not thread-safe: every method is called with the heap lock held.

// The bitmap and summary building blocks are not used by the placeholder yet.
#![allow(dead_code)]

mod bitmap;
mod summary;

use crate::os::Os;
use crate::sizeclass::PAGE_SIZE;

/// log2 of [`CHUNK_PAGES`].
const LOG_CHUNK_PAGES: u32 = 9;
/// Pages per chunk (4 MiB), the unit in which the heap grows.
pub(crate) const CHUNK_PAGES: usize = 1 << LOG_CHUNK_PAGES;
/// Bytes per chunk.
pub(crate) const CHUNK_BYTES: usize = CHUNK_PAGES * PAGE_SIZE;

#[derive(Clone, Copy)]
struct Run {
    base: usize,
    npages: usize,
}

const MAX_RUNS: usize = 1 << 20;

/// Free pages of the heap.
pub(crate) struct PageAlloc {
    runs: *mut Run,
    len: usize,
    /// Free pages in all runs.
    free_pages: usize,
}

// SAFETY: the run array is owned by this allocator and accessed only under
// the heap lock.
unsafe impl Send for PageAlloc {}

impl PageAlloc {
    /// An allocator with no memory; [`init`](Self::init) must run first.
    pub(crate) const fn new() -> Self {
        PageAlloc { runs: core::ptr::null_mut(), len: 0, free_pages: 0 }
    }

    /// Reserves the allocator's own metadata. Returns false if the OS
    /// refuses.
    pub(crate) fn init(&mut self, os: &dyn Os) -> bool {
        if !self.runs.is_null() {
            return true;
        }
        let bytes = MAX_RUNS * core::mem::size_of::<Run>();
        let p = os.reserve(bytes, crate::os::OS_PAGE_SIZE, 0);
        // SAFETY: `p` is a fresh reservation of `bytes` bytes.
        if p.is_null() || !unsafe { os.commit(p, bytes) } {
            return false;
        }
        self.runs = p.cast();
        true
    }

    /// Free pages.
    pub(crate) fn free_pages(&self) -> usize {
        self.free_pages
    }

    fn run(&self, i: usize) -> &mut Run {
        debug_assert!(i < self.len);
        // SAFETY: `i < len <= MAX_RUNS`, inside the committed array, and we
        // are the only user (heap lock).
        unsafe { &mut *self.runs.add(i) }
    }

    fn insert(&mut self, at: usize, r: Run) {
        assert!(self.len < MAX_RUNS, "goheap: page allocator run table full");
        // SAFETY: shifting `[at, len)` up by one stays within MAX_RUNS.
        unsafe {
            core::ptr::copy(self.runs.add(at), self.runs.add(at + 1), self.len - at);
            self.runs.add(at).write(r);
        }
        self.len += 1;
    }

    fn remove(&mut self, at: usize) {
        // SAFETY: shifting `(at, len)` down by one stays in bounds.
        unsafe { core::ptr::copy(self.runs.add(at + 1), self.runs.add(at), self.len - at - 1) };
        self.len -= 1;
    }

    /// Adds `[base, base + bytes)` (chunk-aligned, newly mapped) as free.
    pub(crate) fn grow(&mut self, base: usize, bytes: usize) {
        self.free(base, bytes / PAGE_SIZE);
    }

    /// Allocates `npages` contiguous pages, lowest address first. Returns
    /// the base address and how many of the pages were scavenged (released
    /// to the OS) while free.
    pub(crate) fn alloc(&mut self, npages: usize) -> Option<(usize, usize)> {
        for i in 0..self.len {
            let r = self.run(i);
            if r.npages >= npages {
                let base = r.base;
                r.base += npages * PAGE_SIZE;
                r.npages -= npages;
                if r.npages == 0 {
                    self.remove(i);
                }
                self.free_pages -= npages;
                return Some((base, 0));
            }
        }
        None
    }

    /// Allocates exactly `[base, base + npages)` if all of it is free
    /// (in-place growth of a large object). Returns the scavenged count.
    pub(crate) fn alloc_at(&mut self, base: usize, npages: usize) -> Option<usize> {
        let end = base + npages * PAGE_SIZE;
        let i = self.find(base)?;
        let r = *self.run(i);
        let rend = r.base + r.npages * PAGE_SIZE;
        if r.base > base || rend < end {
            return None;
        }
        // Split into [r.base, base) and [end, rend).
        let head = (base - r.base) / PAGE_SIZE;
        let tail = (rend - end) / PAGE_SIZE;
        match (head, tail) {
            (0, 0) => self.remove(i),
            (0, t) => *self.run(i) = Run { base: end, npages: t },
            (h, 0) => self.run(i).npages = h,
            (h, t) => {
                self.run(i).npages = h;
                self.insert(i + 1, Run { base: end, npages: t });
            }
        }
        self.free_pages -= npages;
        Some(0)
    }

    /// Index of the last run starting at or below `addr`.
    fn find(&self, addr: usize) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.run(mid).base <= addr {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }

    /// Frees `[base, base + npages)`.
    pub(crate) fn free(&mut self, base: usize, npages: usize) {
        let end = base + npages * PAGE_SIZE;
        self.free_pages += npages;
        let at = self.find(base).map_or(0, |i| i + 1);
        let merge_prev = at > 0 && {
            let p = self.run(at - 1);
            p.base + p.npages * PAGE_SIZE == base
        };
        let merge_next = at < self.len && self.run(at).base == end;
        match (merge_prev, merge_next) {
            (true, true) => {
                let n = self.run(at).npages;
                self.run(at - 1).npages += npages + n;
                self.remove(at);
            }
            (true, false) => self.run(at - 1).npages += npages,
            (false, true) => {
                let r = self.run(at);
                r.base = base;
                r.npages += npages;
            }
            (false, false) => self.insert(at, Run { base, npages }),
        }
    }
}
