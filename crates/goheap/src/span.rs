//! Spans (Go's mspan): a run of pages that holds objects of one size class,
//! or one large object.
//!
//! See the crate docs for the overview. A small-object span hands out slots
//! two ways: fresh slots through `freeindex`/`alloc_cache` (Go's
//! trailing-zero trick over `alloc_bits`), and, once objects come back,
//! by the central list clearing their bits (the `freed_bits` merge, the
//! explicit-free twin of Go's sweep).

use crate::sizeclass::{self, MAX_OBJS_PER_SPAN, PAGE_SIZE};
use crate::os::OS_PAGE_SIZE;
use crate::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use core::ptr;

/// Bytes of in-use spans' memory released to the OS (see `Span::released`).
pub(crate) static SPAN_INTERIOR_RELEASED: AtomicUsize = AtomicUsize::new(0);

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
    /// OS pages (4 KiB) of this span whose memory was released to the OS
    /// while the span stayed in use, because no live or cached object
    /// touched them (bit i = OS page i of the span). Central lock; cleared
    /// when a cache takes the span or the heap takes it back.
    pub(crate) released: u32,
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
    /// A span with no slots: what a cache class points at while it holds
    /// no span, so its fast path always falls through to the slow path.
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
        released: 0,
        alloc_count: 0,
        freed_count: 0,
        next: ptr::null_mut(),
        prev: ptr::null_mut(),
        alloc_bits: [0; BITMAP_WORDS],
        freed_bits: [0; BITMAP_WORDS],
    };

    /// Sets the span up for small objects of `class` over fresh pages.
    pub(crate) fn init_small(&mut self, class: usize, needzero: bool) {
        self.forget_released();
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
        self.forget_released();
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

    /// Clears `released`: the span's pages may be touched again (they read
    /// as zero, which is fine for free slots), so they count as resident.
    pub(crate) fn forget_released(&mut self) {
        if self.released != 0 {
            let bytes = self.released.count_ones() as usize * OS_PAGE_SIZE;
            SPAN_INTERIOR_RELEASED.fetch_sub(bytes, Relaxed);
            self.released = 0;
        }
    }

    /// OS pages of this span (uncached, under the central lock) holding no
    /// live object and none in a thread cache, and not yet released: a
    /// bitmask like `released`. A slot is unused when its `alloc_bits` bit
    /// is clear or its `freed_bits` bit is set.
    pub(crate) fn unused_os_pages(&self) -> u32 {
        debug_assert!(!self.cached && self.state == SpanState::Small);
        let ospages = (self.npages * PAGE_SIZE / OS_PAGE_SIZE).min(32);
        let mut mask = 0u32;
        for p in 0..ospages {
            let start = p * OS_PAGE_SIZE;
            let first = start / self.elemsize;
            let last = ((start + OS_PAGE_SIZE - 1) / self.elemsize).min(self.nelems.saturating_sub(1));
            if first >= self.nelems || !self.any_live(first, last) {
                mask |= 1 << p;
            }
        }
        mask & !self.released
    }

    /// Whether any slot in `first..=last` holds a live or cached object.
    fn any_live(&self, first: usize, last: usize) -> bool {
        let (w0, w1) = (first / 64, last / 64);
        (w0..=w1).any(|w| {
            let lo = if w == w0 { first % 64 } else { 0 };
            let hi = if w == w1 { last % 64 } else { 63 };
            let range = (!0u64 >> (63 - hi)) & (!0u64 << lo);
            self.alloc_bits[w] & !self.freed_bits[w] & range != 0
        })
    }

    /// Live objects: out of the span and not yet returned.
    #[inline]
    pub(crate) fn live(&self) -> usize {
        self.alloc_count - self.freed_count
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
        let mut s = Box::new(Span::EMPTY);
        s.base = 0x7000_0000_0000;
        s.npages = class_npages(class);
        s.init_small(class, needzero);
        s
    }

    /// Classes whose spans hold 1024, 341, 170, 64 (one full word), 56, 8,
    /// 3 and 1 objects: multiples of 64 and not, one word and many.
    const CLASSES: [usize; 8] = [1, 3, 5, 10, 11, 32, 46, 67];

    fn is_set(bits: &[u64; BITMAP_WORDS], i: usize) -> bool {
        bits[i / 64] & (1 << (i % 64)) != 0
    }

    fn set(bits: &mut [u64; BITMAP_WORDS], i: usize) {
        bits[i / 64] |= 1 << (i % 64);
    }

    /// What the central list does to a span when an object comes back.
    fn give_back(s: &mut Span, idx: usize) {
        assert!(!is_set(&s.freed_bits, idx), "test frees slot {idx} twice");
        set(&mut s.freed_bits, idx);
        s.freed_count += 1;
    }



    #[test]
    fn classes_used_here_have_the_expected_shapes() {
        let n: Vec<usize> = CLASSES.iter().map(|&c| class_nelems(c)).collect();
        assert_eq!(n, [1024, 341, 170, 64, 56, 8, 3, 1]);
    }

    #[test]
    fn next_free_index_walks_a_fresh_span_in_order() {
        for class in 1..NUM_SIZE_CLASSES {
            let mut s = span(class, false);
            let nelems = s.nelems;
            assert_eq!(s.take_for_cache(), nelems);
            for want in 0..nelems {
                assert_eq!(s.next_free_index(), want, "class {class}");
                assert_eq!(s.freeindex, want + 1);
                // Go's invariant: alloc_cache is the inverted bitmap from
                // freeindex on (all free here), except at the end.
                if s.freeindex % 64 != 0 && s.freeindex < nelems {
                    let left = 64 - s.freeindex % 64;
                    assert_eq!(s.alloc_cache, !0u64 >> (64 - left), "class {class}");
                }
            }
            for _ in 0..3 {
                assert_eq!(s.next_free_index(), nelems, "class {class}: past the end");
                assert_eq!(s.freeindex, nelems);
            }
        }
    }

    #[test]
    fn next_free_index_skips_taken_slots() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for &class in &CLASSES {
            for density in [0, 1, 2, 5, 8, 10] {
                let mut s = span(class, false);
                let nelems = s.nelems;
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
                        set(&mut s.alloc_bits, i);
                    }
                }
                let live = taken.iter().filter(|&&t| t).count();
                s.alloc_count = live;
                let avail = s.take_for_cache();
                assert_eq!(avail, nelems - live);
                assert_eq!(s.alloc_count, nelems);
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
            let mut s = span(class, false);
            let nelems = s.nelems;
            // Everything handed out once.
            s.take_for_cache();
            while s.next_free_index() < nelems {}
            s.release_from_cache();
            assert_eq!(s.alloc_count, nelems);
            assert_eq!(s.live(), nelems);
            assert!(!s.cached);
            assert_eq!(s.fresh_mark, nelems);
            // Return every other object while the span sits on a list.
            let back: Vec<usize> = (0..nelems).step_by(2).collect();
            for &i in &back {
                give_back(&mut s, i);
            }
            assert_eq!(s.live(), nelems - back.len());
            // Not merged until the span is taken.
            assert!(is_set(&s.alloc_bits, 0));
            let avail = s.take_for_cache();
            assert_eq!(avail, back.len(), "class {class}");
            assert!(s.cached);
            assert_eq!(s.freeindex, 0);
            assert_eq!(s.freed_count, 0);
            assert!(s.freed_bits.iter().all(|&w| w == 0));
            assert_eq!(s.alloc_count, nelems);
            for i in 0..nelems {
                assert_eq!(
                    is_set(&s.alloc_bits, i),
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
                let mut s = span(class, false);
                s.take_for_cache();
                for want in 0..used {
                    assert_eq!(s.next_free_index(), want);
                }
                s.release_from_cache();
                assert!(!s.cached);
                assert_eq!(s.alloc_count, used, "class {class} used {used}");
                assert_eq!(s.live(), used);
                for i in 0..nelems {
                    assert_eq!(is_set(&s.alloc_bits, i), i < used);
                }
                assert_eq!(s.fresh_mark, used);
            }
        }
    }

    #[test]
    fn objects_freed_while_cached_are_merged_at_release() {
        for &class in &CLASSES {
            let mut s = span(class, false);
            let nelems = s.nelems;
            // First round: use everything, return the first half.
            s.take_for_cache();
            while s.next_free_index() < nelems {}
            s.release_from_cache();
            let half = nelems / 2;
            for i in 0..half {
                give_back(&mut s, i);
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
                give_back(&mut s, 0); // handed out this round, bit not yet set
                returned += 1;
            }
            if nelems > half {
                give_back(&mut s, nelems - 1); // from the first round
                returned += 1;
            }
            assert_eq!(s.freed_count, returned);
            s.release_from_cache();
            assert_eq!(s.freed_count, 0);
            let expect_live = used + (nelems - half) - returned;
            assert_eq!(s.live(), expect_live, "class {class}");
            assert_eq!(s.alloc_count, expect_live);
            for i in 0..nelems {
                let live = (i < used && i != 0) || (i >= half && i != nelems - 1);
                assert_eq!(is_set(&s.alloc_bits, i), live, "class {class} slot {i}");
            }
            // fresh_mark never goes down: slots of the first round were used.
            assert_eq!(s.fresh_mark, nelems);
        }
    }

    #[test]
    fn fresh_mark_of_new_spans() {
        let s = span(5, false);
        assert_eq!(s.fresh_mark, 0, "pages known zero: every slot fresh");
        let s = span(5, true);
        assert_eq!(s.fresh_mark, s.nelems, "pages may hold data: no slot fresh");
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
            let mut s = span(class, false);
            let nelems = s.nelems;
            let mut live = vec![false; nelems];
            let mut returned = vec![false; nelems]; // in freed_bits
            let mut ever_used = vec![false; nelems];
            for _round in 0..rounds {
                // Objects come back while the span is listed.
                for i in 0..nelems {
                    if live[i] && !returned[i] && rng.below(3) == 0 {
                        give_back(&mut s, i);
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
                let fresh_mark = s.fresh_mark;
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
                        give_back(&mut s, i);
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
                    assert_eq!(is_set(&s.alloc_bits, i), live[i], "class {class} slot {i}");
                }
                assert_eq!(s.freed_count, 0);
                assert_eq!(s.live(), live.iter().filter(|&&l| l).count());
                assert!(s.fresh_mark >= fresh_mark);
                for (i, &used) in ever_used.iter().enumerate() {
                    assert!(
                        !used || i < s.fresh_mark,
                        "slot {i} used but above fresh_mark"
                    );
                }
            }
        }
    }
}
