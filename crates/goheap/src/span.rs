//! Spans (Go's mspan): a run of pages that holds objects of one size class,
//! or one large object.
//!
//! See the crate docs for the overview. A small-object span hands out slots
//! two ways: fresh slots through `freeindex`/`alloc_cache` (Go's
//! trailing-zero trick over the alloc bitmap), and, once objects come back,
//! by the central list clearing their bits (the freed bitmap merge, the
//! explicit-free twin of Go's sweep).

use crate::os::OS_PAGE_SIZE;
use crate::sizeclass::{self, MAX_OBJS_PER_SPAN, PAGE_SIZE};
use crate::arena::PageRecord;
use crate::sync::atomic::{
    AtomicU16, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed,
};
use core::cell::Cell;
use core::ptr;

/// Bytes of in-use spans' memory released to the OS (see `Span::released`).
pub(crate) static SPAN_INTERIOR_RELEASED: AtomicUsize = AtomicUsize::new(0);

/// Where a small span's page records are in the arena metadata: its first
/// page's, and, when the span crosses into the next arena up, the record of
/// the first page there (`seam` pages from the span's start). Page records
/// of one arena are contiguous.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PageRecords {
    pub(crate) first: *const AtomicU64,
    pub(crate) seam: usize,
    pub(crate) past_seam: *const AtomicU64,
}

impl PageRecords {
    pub(crate) const NONE: PageRecords = PageRecords {
        first: ptr::null(),
        seam: usize::MAX,
        past_seam: ptr::null(),
    };

    /// The record of the span's page `page`.
    fn of_page(&self, page: usize) -> *const AtomicU64 {
        if page < self.seam {
            self.first.wrapping_add(page)
        } else {
            self.past_seam.wrapping_add(page - self.seam)
        }
    }
}

/// Words in each per-span bitmap (1024 objects at most).
pub(crate) const BITMAP_WORDS: usize = MAX_OBJS_PER_SPAN / 64;

/// The two bitmaps' words for 64 slots of a span, side by side: returning
/// an object reads both, so they share a cache line. The `alloc` words of
/// `Span::bits` make up the span's alloc bitmap, the `freed` words its
/// freed bitmap.
#[repr(C)]
pub(crate) struct SlotBits {
    /// One bit per slot: set = taken. Owned like `Span::freeindex`.
    pub(crate) alloc: Cell<u64>,
    /// One bit per slot: set = returned and awaiting merge (central lock).
    /// In a span of the collected heap, nothing is returned explicitly, and
    /// these are Go's `gcmarkBits` instead: set = marked in the current
    /// cycle.
    pub(crate) freed: Cell<u64>,
}

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
    /// Holds small objects of one size class for the collected heap
    /// (`gcheap`): never freed explicitly, swept by mark bits.
    GcSmall = 3,
    /// Holds one large object of the collected heap.
    GcLarge = 4,
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
/// Spans are shared: a thread cache allocates from the span it holds while
/// other threads free objects of it into the central list, and frees look
/// spans up without a lock. So every mutable field is a `Cell` (or an
/// atomic) and code only ever holds `&Span`, never `&mut Span`; who may
/// touch which field is a rule of the protocol, not of the borrow checker:
///
/// - `base`, `npages`, `elemsize`, `nelems`, `class`, `records`: written by
///   the heap under the heap lock before the span is published in the
///   arena map; read-only while the span is in use, except `npages` and
///   `elemsize` of a large span, which its object's owner resizes under
///   the heap lock.
/// - `state`: an atomic, because frees read it without a lock to reject
///   pointers into spans that are not in use.
/// - `freeindex`, `alloc_cache`, `bits[..].alloc`, `hw`: owned by the thread
///   whose cache holds the span (`cached`); under the central lock
///   otherwise.
/// - `alloc_count`, `bits[..].freed`, `freed_count`, `cached`, `list`, `next`,
///   `prev`, `fresh_mark`, `released`, `needzero`: under the central lock
///   (the owning thread reads `fresh_mark` only while it holds the span).
#[repr(C, align(64))]
pub(crate) struct Span {
    // The first cache line (64 bytes): what `Central::free_batch` reads and
    // writes for every object it returns, so that returning objects of
    // scattered spans (a dropped map) costs a line of each span's record
    // and a line of its bitmaps, not four; `free_span_layout` checks it.
    /// First byte of the span (8 KiB aligned).
    pub(crate) base: Cell<usize>,
    /// Length in 8 KiB pages.
    pub(crate) npages: Cell<usize>,
    /// Bytes per object (whole span for a large object).
    pub(crate) elemsize: Cell<usize>,
    /// Objects in the span.
    pub(crate) nelems: Cell<usize>,
    /// Objects out of the span: with users or in thread caches. While a
    /// cache holds the span, every slot it has not used is counted too.
    pub(crate) alloc_count: Cell<usize>,
    /// Objects returned to the span while it was cached or listed, not yet
    /// merged into the alloc bitmap.
    pub(crate) freed_count: Cell<usize>,
    /// Size class (0 for large).
    pub(crate) class: Cell<u8>,
    state: AtomicU8,
    pub(crate) list: Cell<SpanList>,
    /// Held by a thread cache.
    pub(crate) cached: Cell<bool>,
    /// Large spans: pages are known to be zero (fresh or released).
    pub(crate) needzero: Cell<bool>,
    /// Large spans: zeroed by releasing the pages instead of clearing them
    /// (`malloc.rs`, `ZERO_BY_RELEASE`); their free counts how many the
    /// program touched.
    pub(crate) zeroed_by_release: Cell<bool>,
    /// Checked builds: slots at or above this index have never been handed
    /// out since the span was made (its high-water mark), mirrored as a
    /// byte offset in the page records of `records` for frees to read. Kept
    /// when the span is reset as a spare: slots below it were handed out
    /// and freed, and freed slots carry the free marker. Written by the
    /// cache owner (plain load and store); read by the central list and
    /// the heap checker, which hold the span still (Relaxed).
    pub(crate) hw: AtomicU16,
    /// Large spans (of malloc and of the collected heap): the heap
    /// profile's record of this object (its bucket plus one), 0 when the
    /// allocation was not sampled (`profile`).
    pub(crate) sample: Cell<u32>,
    /// OS pages (4 KiB) of this span whose memory was released to the OS
    /// while the span stayed in use, because no live or cached object
    /// touched them (bit i = OS page i of the span). Central lock; cleared
    /// when a cache takes the span or the heap takes it back.
    pub(crate) released: Cell<u32>,
    // The cache owner's allocation state and the list links.
    /// Next slot the `alloc_cache` scan looks at; slots below it are taken.
    pub(crate) freeindex: Cell<usize>,
    /// The alloc bitmap, inverted, starting at `freeindex`: bit 0 set means slot
    /// `freeindex` is free.
    pub(crate) alloc_cache: Cell<u64>,
    /// Slots at or above this index have not been handed out since the
    /// span's pages were last known zero.
    pub(crate) fresh_mark: Cell<usize>,
    /// Where the arena keeps this small span's page records (the heap,
    /// under its lock, when the span is made; empty for other spans).
    pub(crate) records: Cell<PageRecords>,
    /// Central list links.
    pub(crate) next: Cell<*const Span>,
    pub(crate) prev: Cell<*const Span>,
    // Profiling and the collected heap.
    /// Small spans of the collected heap: how many of its objects the heap
    /// profile sampled and holds in its address map (`profile::gcmap`), so
    /// that sweeping a span with none costs one load. Raised by the
    /// sampling thread (which may not be the span's cache owner: a tiny
    /// block outlives its span's caching), lowered by the sweeper, which
    /// owns the span then (so an atomic, though the sweeper's reads are
    /// ordered after every raise by the stopped world).
    pub(crate) gc_samples: AtomicU32,
    /// Collected heap: some object allocated from the span needs its `Drop`
    /// run when it dies. Under the span class's lock, or its cache owner's,
    /// or the collector's while the world is stopped.
    pub(crate) has_drops: Cell<bool>,
    /// Collected heap: the span class (its lists, and whether its objects
    /// are noscan), and for a typed class the type information every
    /// object of the span shares (the collector's opaque word; 0: objects
    /// carry their own header, or none). Set when the span is made.
    pub(crate) gc_class: Cell<u16>,
    pub(crate) type_info: Cell<usize>,
    /// Per 64 slots, the two bitmaps' words side by side (`SlotBits`), so
    /// that a slot's bits share a cache line.
    pub(crate) bits: [SlotBits; BITMAP_WORDS],
}

// SAFETY: spans are shared between threads under the field rules above:
// each `Cell` has one writer at a time (the span's cache owner or the
// holder of its central lock, handed over under that lock), and the only
// field read without either is the atomic `state`.
unsafe impl Sync for Span {}

impl Span {
    /// A span with no slots: what a cache class points at while it holds
    /// no span, so its fast path always falls through to the slow path.
    pub(crate) const fn empty() -> Span {
        Span {
        base: Cell::new(0),
        npages: Cell::new(0),
        elemsize: Cell::new(0),
        nelems: Cell::new(0),
        freeindex: Cell::new(0),
        alloc_cache: Cell::new(0),
        class: Cell::new(0),
        state: AtomicU8::new(SpanState::Free as u8),
        list: Cell::new(SpanList::None),
        cached: Cell::new(false),
        needzero: Cell::new(true),
        zeroed_by_release: Cell::new(false),
        sample: Cell::new(0),
        gc_samples: AtomicU32::new(0),
        hw: AtomicU16::new(0),
        records: Cell::new(PageRecords::NONE),
        fresh_mark: Cell::new(0),
        released: Cell::new(0),
        alloc_count: Cell::new(0),
        freed_count: Cell::new(0),
        next: Cell::new(ptr::null()),
        prev: Cell::new(ptr::null()),
        bits: [const {
            SlotBits {
                alloc: Cell::new(0),
                freed: Cell::new(0),
            }
        }; BITMAP_WORDS],
        has_drops: Cell::new(false),
        gc_class: Cell::new(0),
        type_info: Cell::new(0),
        }
    }

    /// The span's state.
    #[inline]
    pub(crate) fn state(&self) -> SpanState {
        match self.state.load(Relaxed) {
            1 => SpanState::Small,
            2 => SpanState::Large,
            3 => SpanState::GcSmall,
            4 => SpanState::GcLarge,
            _ => SpanState::Free,
        }
    }

    /// Sets the state (heap lock).
    pub(crate) fn set_state(&self, s: SpanState) {
        self.state.store(s as u8, Relaxed);
    }

    /// Sets the span up for small objects of `class` over its pages (its
    /// high-water mark starts at 0).
    pub(crate) fn init_small(&self, class: usize, needzero: bool) {
        self.class.set(class as u8);
        self.set_state(SpanState::Small);
        self.elemsize.set(sizeclass::class_size(class));
        self.nelems.set(sizeclass::class_nelems(class));
        self.hw.store(0, Relaxed);
        self.reset(needzero);
    }

    /// Makes the span empty again, as if fresh, keeping its class and its
    /// high-water mark (the central list keeps an emptied span as its
    /// spare this way).
    pub(crate) fn reset(&self, needzero: bool) {
        self.forget_released();
        self.freeindex.set(0);
        self.alloc_cache.set(!0);
        self.list.set(SpanList::None);
        self.cached.set(false);
        self.needzero.set(needzero);
        self.fresh_mark.set(if needzero { self.nelems.get() } else { 0 });
        self.alloc_count.set(0);
        self.freed_count.set(0);
        for w in 0..BITMAP_WORDS {
            self.bits[w].alloc.set(0);
            self.bits[w].freed.set(0);
        }
    }

    /// One past the last byte.
    #[inline]
    pub(crate) fn limit(&self) -> usize {
        self.base.get() + self.npages.get() * PAGE_SIZE
    }

    /// Index of the object at `addr` and whether `addr` is its start.
    #[inline]
    pub(crate) fn object_index(&self, addr: usize) -> (usize, bool) {
        let off = addr - self.base.get();
        let idx = sizeclass::object_index(self.class.get() as usize, off);
        (idx, idx * self.elemsize.get() == off)
    }

    /// Whether slot `i` is set in the alloc bitmap.
    #[inline]
    pub(crate) fn alloc_bit(&self, i: usize) -> bool {
        self.bits[i / 64].alloc.get() & (1 << (i % 64)) != 0
    }

    /// Whether slot `i` is set in the freed bitmap.
    #[inline]
    pub(crate) fn freed_bit(&self, i: usize) -> bool {
        self.bits[i / 64].freed.get() & (1 << (i % 64)) != 0
    }

    /// Records slot `i` as returned (central lock) if it can be: not
    /// returned already, and handed out, which its alloc bit says unless
    /// the span is `cached` (its cache may have handed the slot out since
    /// it last loaded the bitmap). Returns false, changing nothing,
    /// otherwise. One bitmap word pair for both tests and the update.
    #[inline]
    pub(crate) fn try_set_freed(&self, i: usize, cached: bool) -> bool {
        let (word, bit) = (&self.bits[i / 64], 1u64 << (i % 64));
        let freed = word.freed.get();
        if freed & bit != 0 || (!cached && word.alloc.get() & bit == 0) {
            return false;
        }
        word.freed.set(freed | bit);
        self.freed_count.set(self.freed_count.get() + 1);
        true
    }

    /// Records that slot `idx` is being handed out (the cache owner):
    /// raises the high-water mark past it, in checked builds.
    #[inline(always)]
    pub(crate) fn note_handed_out(&self, idx: usize) {
        if crate::CHECKED {
            let next = idx + 1;
            let old = self.hw.load(Relaxed) as usize;
            if next > old {
                self.hw.store(next as u16, Relaxed);
                self.publish_hw(old, next);
            }
        }
    }

    /// Rewrites the page records the high-water mark crossed going from
    /// slot `old` to slot `new`: the pages holding the starts of slots
    /// `old..new`. Pages below keep a mark at or past their end, so they
    /// accept all their objects already (see `arena::PageRecord`).
    #[inline(always)]
    fn publish_hw(&self, old: usize, new: usize) {
        let records = self.records.get();
        if records.first.is_null() {
            return;
        }
        let size = self.elemsize.get();
        let (old_end, new_end) = (old * size, new * size);
        let class = self.class.get() as usize;
        for page in old_end / PAGE_SIZE..=(new_end - 1) / PAGE_SIZE {
            let rec = PageRecord::small(class, page, self.base.get() + new_end);
            // SAFETY: page records live in arena metadata, never unmapped,
            // and `page` is one of this span's pages.
            unsafe { (*records.of_page(page)).store(rec, Relaxed) };
        }
    }

    /// Sets where this new small span's page records are (the heap, under
    /// its lock, before any cache holds the span).
    ///
    /// # Safety
    ///
    /// `records` points at this span's pages' records.
    pub(crate) unsafe fn set_page_records(&self, records: PageRecords) {
        self.records.set(records);
    }

    /// The high-water mark, for readers that hold the span still (the
    /// central list's lock, a frozen heap); `nelems` for spans with no page
    /// records.
    pub(crate) fn published_hw(&self) -> usize {
        if self.records.get().first.is_null() {
            return self.nelems.get();
        }
        self.hw.load(Relaxed) as usize
    }

    /// Whether slot `idx` is free in this span as its cache owner sees it:
    /// not yet handed out in the current take (at or past `freeindex`,
    /// clear in the alloc bitmap). Only for the owner, or a claimer that holds
    /// the owner's cache.
    pub(crate) fn is_unscanned_free(&self, idx: usize) -> bool {
        idx >= self.freeindex.get() && idx < self.nelems.get() && !self.alloc_bit(idx)
    }

    /// Loads `alloc_cache` from the 64 slots starting at `freeindex`
    /// (a multiple of 64), inverted so set bits are free slots.
    #[inline]
    fn refill_alloc_cache(&self) {
        debug_assert!(self.freeindex.get() % 64 == 0);
        self.alloc_cache.set(!self.bits[self.freeindex.get() / 64].alloc.get());
    }

    /// Go's `nextFreeIndex`: the next free slot at or after `freeindex`, or
    /// `nelems` when the span has none left. Advances `freeindex` past it.
    pub(crate) fn next_free_index(&self) -> usize {
        let nelems = self.nelems.get();
        let mut idx = self.freeindex.get();
        if idx >= nelems {
            return nelems;
        }
        let mut bit = self.alloc_cache.get().trailing_zeros() as usize;
        while bit == 64 {
            idx = (idx + 64) & !63;
            if idx >= nelems {
                self.freeindex.set(nelems);
                return nelems;
            }
            self.freeindex.set(idx);
            self.refill_alloc_cache();
            bit = self.alloc_cache.get().trailing_zeros() as usize;
        }
        let result = idx + bit;
        if result >= nelems {
            self.freeindex.set(nelems);
            return nelems;
        }
        self.alloc_cache.set((self.alloc_cache.get() >> bit) >> 1);
        self.freeindex.set(result + 1);
        if (result + 1) % 64 == 0 && result + 1 != nelems {
            self.refill_alloc_cache();
        }
        result
    }

    /// Called under the central lock when a thread cache takes the span:
    /// merges returned objects into the alloc bitmap, rewinds `freeindex`, and
    /// counts every free slot as handed to the cache. Returns how many
    /// slots the cache may take.
    pub(crate) fn take_for_cache(&self) -> usize {
        self.forget_released();
        self.merge_freed();
        self.freeindex.set(0);
        self.refill_alloc_cache();
        let avail = self.nelems.get() - self.alloc_count.get();
        self.alloc_count.set(self.nelems.get());
        self.cached.set(true);
        avail
    }

    /// Called under the central lock when a thread cache gives the span
    /// back: marks the slots it used in the alloc bitmap, un-counts the ones it
    /// did not, and merges returned objects.
    pub(crate) fn release_from_cache(&self) {
        let used_below = self.freeindex.get().min(self.nelems.get());
        // Every slot below freeindex is now taken.
        let full_words = used_below / 64;
        for w in &self.bits[..full_words] {
            w.alloc.set(!0);
        }
        if used_below % 64 != 0 {
            let w = &self.bits[full_words].alloc;
            w.set(w.get() | ((1u64 << (used_below % 64)) - 1));
        }
        // Slots at or above freeindex that are still clear were never used.
        let unused = self.count_clear_from(used_below);
        self.alloc_count.set(self.alloc_count.get() - unused);
        self.fresh_mark.set(self.fresh_mark.get().max(used_below));
        self.cached.set(false);
        self.merge_freed();
    }

    fn count_clear_from(&self, from: usize) -> usize {
        let nelems = self.nelems.get();
        let mut n = 0;
        let mut i = from;
        while i < nelems {
            let w = i / 64;
            let lo = i % 64;
            let hi = (nelems - w * 64).min(64);
            let mask = if hi == 64 {
                !0u64 << lo
            } else {
                ((1u64 << hi) - 1) & (!0u64 << lo)
            };
            n += (!self.bits[w].alloc.get() & mask).count_ones() as usize;
            i = w * 64 + 64;
        }
        n
    }

    /// Folds the freed bitmap into the alloc bitmap (only while no cache reads
    /// them: under the central lock, span not cached or being taken).
    fn merge_freed(&self) {
        if self.freed_count.get() == 0 {
            return;
        }
        let words = self.nelems.get().div_ceil(64);
        for w in 0..words {
            let a = &self.bits[w].alloc;
            a.set(a.get() & !self.bits[w].freed.get());
            self.bits[w].freed.set(0);
        }
        self.alloc_count.set(self.alloc_count.get() - self.freed_count.get());
        self.freed_count.set(0);
    }

    /// Clears `released`: the span's pages may be touched again (they read
    /// as zero, which is fine for free slots), so they count as resident.
    pub(crate) fn forget_released(&self) {
        let r = self.released.get();
        if r != 0 {
            let bytes = r.count_ones() as usize * OS_PAGE_SIZE;
            SPAN_INTERIOR_RELEASED.fetch_sub(bytes, Relaxed);
            self.released.set(0);
        }
    }

    /// OS pages of this span (uncached, under the central lock) holding no
    /// live object and none in a thread cache, and not yet released: a
    /// bitmask like `released`. A slot is unused when its alloc bit
    /// is clear or its freed bit is set.
    pub(crate) fn unused_os_pages(&self) -> u32 {
        debug_assert!(!self.cached.get() && self.state() == SpanState::Small);
        let (elemsize, nelems) = (self.elemsize.get(), self.nelems.get());
        let ospages = (self.npages.get() * PAGE_SIZE / OS_PAGE_SIZE).min(32);
        let mut mask = 0u32;
        for p in 0..ospages {
            let start = p * OS_PAGE_SIZE;
            let first = start / elemsize;
            let last = ((start + OS_PAGE_SIZE - 1) / elemsize).min(nelems.saturating_sub(1));
            if first >= nelems || !self.any_live(first, last) {
                mask |= 1 << p;
            }
        }
        mask & !self.released.get()
    }

    /// Whether any slot in `first..=last` holds a live or cached object.
    fn any_live(&self, first: usize, last: usize) -> bool {
        let (w0, w1) = (first / 64, last / 64);
        (w0..=w1).any(|w| {
            let lo = if w == w0 { first % 64 } else { 0 };
            let hi = if w == w1 { last % 64 } else { 63 };
            let range = (!0u64 >> (63 - hi)) & (!0u64 << lo);
            self.bits[w].alloc.get() & !self.bits[w].freed.get() & range != 0
        })
    }

    /// Live objects: out of the span and not yet returned.
    #[inline]
    pub(crate) fn live(&self) -> usize {
        self.alloc_count.get() - self.freed_count.get()
    }
}

#[cfg(test)]
mod tests {
    //! Bit bookkeeping of spans, checked against a plain model of which
    //! slots are live, handed out, returned and ever used.

    use super::*;
    use crate::testing::Rng;
    use crate::sizeclass::{class_nelems, class_npages, NUM_SIZE_CLASSES};

    /// A small span of `class` over made-up pages (the bitmaps never touch
    /// the memory).
    fn span(class: usize, needzero: bool) -> Box<Span> {
        let s = Box::new(Span::empty());
        s.base.set(0x7000_0000_0000);
        s.npages.set(class_npages(class));
        s.init_small(class, needzero);
        s
    }

    /// Classes whose spans hold 1024, 341, 170, 64 (one full word), 56, 8,
    /// 3 and 1 objects: multiples of 64 and not, one word and many.
    const CLASSES: [usize; 8] = [1, 3, 5, 10, 11, 32, 46, 67];

    fn set_alloc(s: &Span, i: usize) {
        let w = &s.bits[i / 64].alloc;
        w.set(w.get() | 1 << (i % 64));
    }

    /// What the central list does to a span when an object comes back.
    fn give_back(s: &Span, idx: usize) {
        assert!(!s.freed_bit(idx), "test frees slot {idx} twice");
        assert!(s.try_set_freed(idx, s.cached.get()), "slot {idx} refused");
    }

    /// A slot comes back once, and only once handed out: by its alloc bit
    /// when no cache holds the span, at any time while one does; a refused
    /// slot changes nothing.
    #[test]
    fn a_slot_is_returned_once_and_only_after_it_was_handed_out() {
        let s = span(3, false);
        let before = s.live();
        assert!(!s.try_set_freed(5, false), "never handed out, span uncached");
        assert!(!s.freed_bit(5) && s.live() == before);
        set_alloc(&s, 5);
        set_alloc(&s, 70);
        assert!(s.try_set_freed(5, false));
        assert!(s.freed_bit(5) && s.freed_count.get() == 1);
        assert!(!s.try_set_freed(5, false) && !s.try_set_freed(5, true), "a second return");
        assert_eq!(s.freed_count.get(), 1);
        assert!(s.try_set_freed(9, true), "cached: the bitmap may lag the hand-outs");
        assert!(s.try_set_freed(70, false), "a slot in the second word");
        assert_eq!(s.freed_count.get(), 3);
    }



    /// `Central::free_batch` reads and writes, for each object it returns,
    /// these fields and the object's `SlotBits`: they must stay in the
    /// span's first cache line, and a `SlotBits` must not straddle two.
    #[test]
    fn free_span_layout() {
        use core::mem::{align_of, offset_of, size_of};
        assert_eq!(align_of::<Span>(), 64);
        let first_line = [
            ("base", offset_of!(Span, base), size_of::<usize>()),
            ("npages", offset_of!(Span, npages), size_of::<usize>()),
            ("elemsize", offset_of!(Span, elemsize), size_of::<usize>()),
            ("nelems", offset_of!(Span, nelems), size_of::<usize>()),
            ("alloc_count", offset_of!(Span, alloc_count), size_of::<usize>()),
            ("freed_count", offset_of!(Span, freed_count), size_of::<usize>()),
            ("class", offset_of!(Span, class), 1),
            ("state", offset_of!(Span, state), 1),
            ("list", offset_of!(Span, list), 1),
            ("cached", offset_of!(Span, cached), 1),
            ("hw", offset_of!(Span, hw), 2),
        ];
        for (name, offset, size) in first_line {
            assert!(offset + size <= 64, "Span::{name} at byte {offset} left the first cache line");
        }
        assert_eq!(offset_of!(Span, bits) % size_of::<SlotBits>(), 0);
        assert_eq!(64 % size_of::<SlotBits>(), 0);
    }

    #[test]
    fn classes_used_here_have_the_expected_shapes() {
        let n: Vec<usize> = CLASSES.iter().map(|&c| class_nelems(c)).collect();
        assert_eq!(n, [1024, 341, 170, 64, 56, 8, 3, 1]);
    }

    #[test]
    fn next_free_index_walks_a_fresh_span_in_order() {
        for class in 1..NUM_SIZE_CLASSES {
            let s = span(class, false);
            let nelems = s.nelems.get();
            assert_eq!(s.take_for_cache(), nelems);
            for want in 0..nelems {
                assert_eq!(s.next_free_index(), want, "class {class}");
                assert_eq!(s.freeindex.get(), want + 1);
                // Go's invariant: alloc_cache is the inverted bitmap from
                // freeindex on (all free here), except at the end.
                if s.freeindex.get() % 64 != 0 && s.freeindex.get() < nelems {
                    let left = 64 - s.freeindex.get() % 64;
                    assert_eq!(s.alloc_cache.get(), !0u64 >> (64 - left), "class {class}");
                }
            }
            for _ in 0..3 {
                assert_eq!(s.next_free_index(), nelems, "class {class}: past the end");
                assert_eq!(s.freeindex.get(), nelems);
            }
        }
    }

    #[test]
    fn next_free_index_skips_taken_slots() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for &class in &CLASSES {
            for density in [0, 1, 2, 5, 8, 10] {
                let s = span(class, false);
                let nelems = s.nelems.get();
                let mut taken = vec![false; nelems];
                for (i, t) in taken.iter_mut().enumerate() {
                    // density/10 of the slots taken, with whole words taken
                    // or free now and then to exercise the word skipping.
                    let word_mode = (i / 64) % 3;
                    *t = match word_mode {
                        0 => rng.below(10) < density,
                        1 => density >= 5,
                        _ => density == 10,
                    };
                    if *t {
                        set_alloc(&s, i);
                    }
                }
                let live = taken.iter().filter(|&&t| t).count();
                s.alloc_count.set(live);
                let avail = s.take_for_cache();
                assert_eq!(avail, nelems - live);
                assert_eq!(s.alloc_count.get(), nelems);
                let want: Vec<usize> = (0..nelems).filter(|&i| !taken[i]).collect();
                let mut got = Vec::new();
                loop {
                    let i = s.next_free_index();
                    if i == nelems {
                        break;
                    }
                    assert!(i < nelems);
                    got.push(i);
                    assert!(got.len() <= nelems, "class {class}: runaway");
                }
                assert_eq!(got, want, "class {class} density {density}");
                assert_eq!(s.next_free_index(), nelems);
            }
        }
    }

    #[test]
    fn take_merges_freed_and_counts_everything_out() {
        for &class in &CLASSES {
            let s = span(class, false);
            let nelems = s.nelems.get();
            // Everything handed out once.
            s.take_for_cache();
            while s.next_free_index() < nelems {}
            s.release_from_cache();
            assert_eq!(s.alloc_count.get(), nelems);
            assert_eq!(s.live(), nelems);
            assert!(!s.cached.get());
            assert_eq!(s.fresh_mark.get(), nelems);
            // Return every other object while the span sits on a list.
            let back: Vec<usize> = (0..nelems).step_by(2).collect();
            for &i in &back {
                give_back(&s, i);
            }
            assert_eq!(s.live(), nelems - back.len());
            // Not merged until the span is taken.
            assert!(s.alloc_bit(0));
            let avail = s.take_for_cache();
            assert_eq!(avail, back.len(), "class {class}");
            assert!(s.cached.get());
            assert_eq!(s.freeindex.get(), 0);
            assert_eq!(s.freed_count.get(), 0);
            assert!(s.bits.iter().all(|w| w.freed.get() == 0));
            assert_eq!(s.alloc_count.get(), nelems);
            for i in 0..nelems {
                assert_eq!(
                    s.alloc_bit(i),
                    i % 2 == 1,
                    "class {class} slot {i}"
                );
            }
            let mut got = Vec::new();
            loop {
                let i = s.next_free_index();
                if i == nelems {
                    break;
                }
                got.push(i);
            }
            assert_eq!(got, back);
        }
    }

    #[test]
    fn release_marks_used_slots_and_uncounts_unused_ones() {
        for &class in &CLASSES {
            let nelems = class_nelems(class);
            for used in [0, 1, nelems / 2, nelems.saturating_sub(1), nelems] {
                let s = span(class, false);
                s.take_for_cache();
                for want in 0..used {
                    assert_eq!(s.next_free_index(), want);
                }
                s.release_from_cache();
                assert!(!s.cached.get());
                assert_eq!(s.alloc_count.get(), used, "class {class} used {used}");
                assert_eq!(s.live(), used);
                for i in 0..nelems {
                    assert_eq!(s.alloc_bit(i), i < used);
                }
                assert_eq!(s.fresh_mark.get(), used);
            }
        }
    }

    #[test]
    fn objects_freed_while_cached_are_merged_at_release() {
        for &class in &CLASSES {
            let s = span(class, false);
            let nelems = s.nelems.get();
            // First round: use everything, return the first half.
            s.take_for_cache();
            while s.next_free_index() < nelems {}
            s.release_from_cache();
            let half = nelems / 2;
            for i in 0..half {
                give_back(&s, i);
            }
            // Second round: take (merges), use a few of the free slots,
            // and meanwhile other threads return objects of both rounds.
            let avail = s.take_for_cache();
            assert_eq!(avail, half);
            let used = half / 2;
            for want in 0..used {
                assert_eq!(s.next_free_index(), want);
            }
            let mut returned = 0;
            if used > 0 {
                give_back(&s, 0); // handed out this round, bit not yet set
                returned += 1;
            }
            if nelems > half {
                give_back(&s, nelems - 1); // from the first round
                returned += 1;
            }
            assert_eq!(s.freed_count.get(), returned);
            s.release_from_cache();
            assert_eq!(s.freed_count.get(), 0);
            let expect_live = used + (nelems - half) - returned;
            assert_eq!(s.live(), expect_live, "class {class}");
            assert_eq!(s.alloc_count.get(), expect_live);
            for i in 0..nelems {
                let live = (i < used && i != 0) || (i >= half && i != nelems - 1);
                assert_eq!(s.alloc_bit(i), live, "class {class} slot {i}");
            }
            // fresh_mark never goes down: slots of the first round were used.
            assert_eq!(s.fresh_mark.get(), nelems);
        }
    }

    #[test]
    fn fresh_mark_of_new_spans() {
        let s = span(5, false);
        assert_eq!(s.fresh_mark.get(), 0, "pages known zero: every slot fresh");
        let s = span(5, true);
        assert_eq!(s.fresh_mark.get(), s.nelems.get(), "pages may hold data: no slot fresh");
    }

    /// Random rounds of take / use / return / release against a model,
    /// checking the counts, the bitmap, that no live slot is handed out
    /// twice, and that every slot handed out at or above `fresh_mark` was
    /// never used before (what `alloc_zeroed` relies on).
    #[test]
    fn random_rounds_match_a_model() {
        // Under Miri the full run (40 spans, 30 rounds each) takes over a
        // quarter of an hour; one span of each class in CLASSES, 3 rounds
        // each, runs every operation in well under a minute.
        let (round_sets, rounds) = if cfg!(miri) {
            (CLASSES.len(), 3)
        } else {
            (40, 30)
        };
        let mut rng = Rng(12345);
        for round_set in 0..round_sets {
            let class = match CLASSES.get(round_set) {
                Some(&c) => c,
                None => 1 + rng.below(NUM_SIZE_CLASSES - 1),
            };
            let s = span(class, false);
            let nelems = s.nelems.get();
            let mut live = vec![false; nelems];
            let mut returned = vec![false; nelems]; // in the freed bitmap
            let mut ever_used = vec![false; nelems];
            for _round in 0..rounds {
                // Objects come back while the span is listed.
                for i in 0..nelems {
                    if live[i] && !returned[i] && rng.below(3) == 0 {
                        give_back(&s, i);
                        returned[i] = true;
                    }
                }
                let n_live = live
                    .iter()
                    .zip(&returned)
                    .filter(|(&l, &r)| l && !r)
                    .count();
                assert_eq!(s.live(), n_live);
                let avail = s.take_for_cache();
                for i in 0..nelems {
                    if returned[i] {
                        live[i] = false;
                        returned[i] = false;
                    }
                }
                assert_eq!(avail, nelems - n_live);
                let fresh_mark = s.fresh_mark.get();
                let budget = rng.below(nelems + 1);
                let mut handed = 0;
                while handed < budget {
                    let i = s.next_free_index();
                    if i == nelems {
                        break;
                    }
                    assert!(!live[i], "class {class}: slot {i} handed out while live");
                    if i >= fresh_mark {
                        assert!(
                            !ever_used[i],
                            "class {class}: slot {i} above fresh_mark {fresh_mark} was used before"
                        );
                    }
                    live[i] = true;
                    ever_used[i] = true;
                    handed += 1;
                    // Sometimes it comes straight back through a central
                    // list while the span is still cached.
                    if rng.below(5) == 0 {
                        give_back(&s, i);
                        returned[i] = true;
                    }
                }
                assert_eq!(handed, budget.min(avail));
                s.release_from_cache();
                for i in 0..nelems {
                    if returned[i] {
                        live[i] = false;
                        returned[i] = false;
                    }
                    assert_eq!(s.alloc_bit(i), live[i], "class {class} slot {i}");
                }
                assert_eq!(s.freed_count.get(), 0);
                assert_eq!(s.live(), live.iter().filter(|&&l| l).count());
                assert!(s.fresh_mark.get() >= fresh_mark);
                for (i, &used) in ever_used.iter().enumerate() {
                    assert!(
                        !used || i < s.fresh_mark.get(),
                        "slot {i} used but above fresh_mark"
                    );
                }
            }
        }
    }
}
