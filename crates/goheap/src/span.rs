//! Spans (Go's mspan): a run of pages that holds objects of one size class,
//! or one large object.
//!
//! See the crate docs for the overview. A small-object span hands out slots
//! two ways: fresh slots through `freeindex`/`alloc_cache` (Go's
//! trailing-zero trick over `alloc_bits`), and, once objects come back,
//! by the central list clearing their bits (the `freed_bits` merge, the
//! explicit-free twin of Go's sweep).

use crate::sizeclass::{self, MAX_OBJS_PER_SPAN, PAGE_SIZE};
use core::ptr;

/// Words in each per-span bitmap (1024 objects at most).
pub(crate) const BITMAP_WORDS: usize = MAX_OBJS_PER_SPAN / 64;

/// Where a span is in its life.
///
/// Transitions: `Free → Small | Large` (heap lock, on allocation),
/// `Small | Large → Free` (heap lock, when the page heap takes it back).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum SpanState {
    /// Not in use: its struct sits on the span free list.
    Free = 0,
    /// Holds small objects of one size class.
    Small = 1,
    /// Holds one large object.
    Large = 2,
}

/// Which list a small span is on (guarded by its central's lock).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum SpanList {
    /// On no list: owned by a thread cache, or being handed around.
    None = 0,
    /// Central's partial list: has slots the next cache can use.
    Partial = 1,
    /// Central's full list: every slot is out (with users or in caches).
    Full = 2,
}

/// A run of pages: the metadata goheap keeps for every in-use run.
///
/// Field rules (who may touch what):
/// - `base`, `npages`, `class`, `elemsize`, `nelems`, `state`: written by the
///   heap under the heap lock before the span is published in the arena
///   map; read-only while the span is in use.
/// - `freeindex`, `alloc_cache`, `alloc_bits`: owned by the thread whose
///   cache holds the span (`cached`); under the central lock otherwise.
/// - `alloc_count`, `freed_bits`, `freed_count`, `cached`, `list`, `next`,
///   `prev`, `fresh_mark`: under the central lock (the owning thread reads
///   `fresh_mark` only while it holds the span).
#[repr(C)]
pub(crate) struct Span {
    /// First byte of the span (8 KiB aligned).
    pub(crate) base: usize,
    /// Length in 8 KiB pages.
    pub(crate) npages: usize,
    /// Bytes per object (whole span for a large object).
    pub(crate) elemsize: usize,
    /// Objects in the span.
    pub(crate) nelems: usize,
    /// Next slot the `alloc_cache` scan looks at; slots below it are taken.
    pub(crate) freeindex: usize,
    /// Inverted `alloc_bits` starting at `freeindex`: bit 0 set means slot
    /// `freeindex` is free.
    pub(crate) alloc_cache: u64,
    /// Size class (0 for large).
    pub(crate) class: u8,
    pub(crate) state: SpanState,
    pub(crate) list: SpanList,
    /// Held by a thread cache.
    pub(crate) cached: bool,
    /// Large spans: pages are known to be zero (fresh or released).
    pub(crate) needzero: bool,
    /// Slots at or above this index have not been handed out since the
    /// span's pages were last known zero.
    pub(crate) fresh_mark: usize,
    /// Objects out of the span: with users or in thread caches. While a
    /// cache holds the span, every slot it has not used is counted too.
    pub(crate) alloc_count: usize,
    /// Objects returned to the span while it was cached or listed, not yet
    /// merged into `alloc_bits`.
    pub(crate) freed_count: usize,
    /// Central list links.
    pub(crate) next: *mut Span,
    pub(crate) prev: *mut Span,
    /// One bit per slot: set = taken.
    pub(crate) alloc_bits: [u64; BITMAP_WORDS],
    /// One bit per slot: set = returned and awaiting merge.
    pub(crate) freed_bits: [u64; BITMAP_WORDS],
}

impl Span {
    /// A span with no slots: the thread cache's placeholder, whose fast
    /// path always falls through to the slow path.
    pub(crate) const EMPTY: Span = Span {
        base: 0,
        npages: 0,
        elemsize: 0,
        nelems: 0,
        freeindex: 0,
        alloc_cache: 0,
        class: 0,
        state: SpanState::Free,
        list: SpanList::None,
        cached: false,
        needzero: true,
        fresh_mark: 0,
        alloc_count: 0,
        freed_count: 0,
        next: ptr::null_mut(),
        prev: ptr::null_mut(),
        alloc_bits: [0; BITMAP_WORDS],
        freed_bits: [0; BITMAP_WORDS],
    };

    /// Sets the span up for small objects of `class` over fresh pages.
    pub(crate) fn init_small(&mut self, class: usize, needzero: bool) {
        self.class = class as u8;
        self.state = SpanState::Small;
        self.elemsize = sizeclass::class_size(class);
        self.nelems = sizeclass::class_nelems(class);
        self.freeindex = 0;
        self.alloc_cache = !0;
        self.list = SpanList::None;
        self.cached = false;
        self.needzero = needzero;
        self.fresh_mark = if needzero { self.nelems } else { 0 };
        self.alloc_count = 0;
        self.freed_count = 0;
        self.alloc_bits = [0; BITMAP_WORDS];
        self.freed_bits = [0; BITMAP_WORDS];
    }

    /// One past the last byte.
    #[inline]
    pub(crate) fn limit(&self) -> usize {
        self.base + self.npages * PAGE_SIZE
    }

    /// Index of the object at `addr` and whether `addr` is its start.
    #[inline]
    pub(crate) fn object_index(&self, addr: usize) -> (usize, bool) {
        let off = addr - self.base;
        let idx = sizeclass::object_index(self.class as usize, off);
        (idx, idx * self.elemsize == off)
    }

    /// Loads `alloc_cache` from the 64 slots starting at `freeindex`
    /// (a multiple of 64), inverted so set bits are free slots.
    #[inline]
    fn refill_alloc_cache(&mut self) {
        debug_assert!(self.freeindex % 64 == 0);
        self.alloc_cache = !self.alloc_bits[self.freeindex / 64];
    }

    /// Go's `nextFreeIndex`: the next free slot at or after `freeindex`, or
    /// `nelems` when the span has none left. Advances `freeindex` past it.
    pub(crate) fn next_free_index(&mut self) -> usize {
        let nelems = self.nelems;
        let mut idx = self.freeindex;
        if idx >= nelems {
            return nelems;
        }
        let mut bit = self.alloc_cache.trailing_zeros() as usize;
        while bit == 64 {
            idx = (idx + 64) & !63;
            if idx >= nelems {
                self.freeindex = nelems;
                return nelems;
            }
            self.freeindex = idx;
            self.refill_alloc_cache();
            bit = self.alloc_cache.trailing_zeros() as usize;
        }
        let result = idx + bit;
        if result >= nelems {
            self.freeindex = nelems;
            return nelems;
        }
        self.alloc_cache = (self.alloc_cache >> bit) >> 1;
        self.freeindex = result + 1;
        if self.freeindex % 64 == 0 && self.freeindex != nelems {
            self.refill_alloc_cache();
        }
        result
    }

    /// Called under the central lock when a thread cache takes the span:
    /// merges returned objects into `alloc_bits`, rewinds `freeindex`, and
    /// counts every free slot as handed to the cache. Returns how many
    /// slots the cache may take.
    pub(crate) fn take_for_cache(&mut self) -> usize {
        self.merge_freed();
        self.freeindex = 0;
        self.refill_alloc_cache();
        let avail = self.nelems - self.alloc_count;
        self.alloc_count = self.nelems;
        self.cached = true;
        avail
    }

    /// Called under the central lock when a thread cache gives the span
    /// back: marks the slots it used in `alloc_bits`, un-counts the ones it
    /// did not, and merges returned objects.
    pub(crate) fn release_from_cache(&mut self) {
        let used_below = self.freeindex.min(self.nelems);
        // Every slot below freeindex is now taken.
        let full_words = used_below / 64;
        for w in &mut self.alloc_bits[..full_words] {
            *w = !0;
        }
        if used_below % 64 != 0 {
            self.alloc_bits[full_words] |= (1u64 << (used_below % 64)) - 1;
        }
        // Slots at or above freeindex that are still clear were never used.
        let unused = self.count_clear_from(used_below);
        self.alloc_count -= unused;
        self.fresh_mark = self.fresh_mark.max(used_below);
        self.cached = false;
        self.merge_freed();
    }

    fn count_clear_from(&self, from: usize) -> usize {
        let mut n = 0;
        let mut i = from;
        while i < self.nelems {
            let w = i / 64;
            let lo = i % 64;
            let hi = (self.nelems - w * 64).min(64);
            let mask = if hi == 64 {
                !0u64 << lo
            } else {
                ((1u64 << hi) - 1) & (!0u64 << lo)
            };
            n += (!self.alloc_bits[w] & mask).count_ones() as usize;
            i = w * 64 + 64;
        }
        n
    }

    /// Folds `freed_bits` into `alloc_bits` (only while no cache reads
    /// them: under the central lock, span not cached or being taken).
    fn merge_freed(&mut self) {
        if self.freed_count == 0 {
            return;
        }
        let words = self.nelems.div_ceil(64);
        for w in 0..words {
            self.alloc_bits[w] &= !self.freed_bits[w];
            self.freed_bits[w] = 0;
        }
        self.alloc_count -= self.freed_count;
        self.freed_count = 0;
    }

    /// Live objects: out of the span and not yet returned.
    #[inline]
    pub(crate) fn live(&self) -> usize {
        self.alloc_count - self.freed_count
    }
}
