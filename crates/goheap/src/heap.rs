//! The page heap (Go's mheap): arenas from the OS, pages to spans, spans
//! back to pages.
//!
//! See the crate docs for the overview. The heap knows nothing of the
//! layers above it: the one service it needs from them (starting the
//! scavenger when the first span is made) is a hook the composition root
//! (`global.rs`) installs when it builds the process heap.
//!
//! # Growth
//!
//! When no free run fits, the heap grows by whole 4 MiB chunks of its
//! newest arena (a new 64 MiB arena when that one is used up): made
//! read/write and handed to the page allocator, touched by no one yet.
//! That is when, with `GOHEAP_HUGE_PAGES=1` (off by default: see
//! docs/design.md), it may ask for transparent huge pages on them (a hint
//! that only counts before the first touch of each 2 MiB): once 32 MiB are
//! committed ([`HUGE_HEAP_MIN`]), while most of the in-use heap is
//! resident, and not when the growth is for a run of 1 MiB or more
//! ([`HUGE_UNHINTED_RUN`]). Small heaps thus never pay for a huge page
//! they half use, nor zeroed buffers used sparsely for one they touch
//! once. See "Transparent huge pages" in docs/design.md.

use crate::arena::{ArenaMap, ARENA_BYTES, SAMPLED_ADDR_BIT};
use crate::central::Central;
use crate::fixalloc::FixAlloc;
use crate::limit::Limit;
use crate::os::Os;
use crate::pagealloc::{PageAlloc, CHUNK_BYTES};
use crate::sizeclass::{NUM_SIZE_CLASSES, PAGE_SIZE};
use crate::span::{Span, SpanState};
use crate::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use crate::sync::{Mutex, MutexGuard};
use core::ptr;

/// State guarded by the heap lock.
pub(crate) struct HeapLocked {
    initialized: bool,
    pub(crate) pages: PageAlloc,
    /// Span structures.
    pub(crate) spans: FixAlloc,
    /// Unused, unmapped-for-the-heap tail of the newest arena:
    /// `[cur_arena, cur_arena_end)`.
    cur_arena: usize,
    cur_arena_end: usize,
    /// Where to ask for the next arena (right after the last one, so the
    /// heap stays contiguous when the OS allows).
    arena_hint: usize,
    /// Bytes of arena address space reserved.
    pub(crate) arena_reserved: usize,
    /// Bytes of heap made readable/writable (Go's HeapSys).
    pub(crate) heap_sys: usize,
    /// Pages held by in-use spans (Go's HeapInuse / 8 KiB).
    pub(crate) inuse_pages: usize,
    /// Large objects allocated and freed, and their bytes.
    pub(crate) large_mallocs: u64,
    pub(crate) large_frees: u64,
    pub(crate) large_alloc_bytes: u64,
    pub(crate) large_free_bytes: u64,
    /// Bytes of arena metadata (`HeapArena`s and the touched pages of the
    /// arena index).
    pub(crate) arena_meta_bytes: usize,
    /// Spans allocated plus spans freed, ever: the scavenger compares it
    /// between ticks to tell a busy heap from an idle one.
    pub(crate) activity: u64,
    /// A run of free pages claimed by [`Heap::release`] while it releases
    /// them to the OS outside the lock (base, pages; 0 pages: none). A
    /// child forked in that window has no thread to finish the job: its
    /// fork handler gives the run back (see `fork::postfork_child`).
    pub(crate) releasing: (usize, usize),
}

/// Services of the layers above that the heap calls (see the module docs).
#[derive(Clone, Copy)]
pub(crate) struct HeapHooks {
    /// Called once, after the first span is made (and again after a fork,
    /// see [`Heap::after_fork_in_child`]), with no lock held but maybe
    /// inside an operation on the calling thread's cache.
    pub(crate) first_span: fn(),
}

impl HeapHooks {
    /// Hooks that do nothing (heaps built by tests).
    #[cfg(test)]
    pub(crate) const NONE: HeapHooks = HeapHooks { first_span: || {} };
}

/// The heap: one per process ([`HEAP`](crate::global::HEAP)); tests may
/// build their own over a mock OS.
pub(crate) struct Heap {
    pub(crate) os: &'static dyn Os,
    /// Lock order: a central lock may be held when taking this one, never
    /// the reverse.
    pub(crate) locked: Mutex<HeapLocked>,
    /// Page → span index. Read without locks; see [`ArenaMap`].
    pub(crate) arenas: ArenaMap,
    /// One central list per size class.
    pub(crate) centrals: [Central; NUM_SIZE_CLASSES],
    /// The memory limit and its counters.
    pub(crate) limit: Limit,
    /// Bytes of metadata that layers above the heap mapped for themselves
    /// (thread caches), so the limit and the statistics can count them.
    pub(crate) meta_outside: AtomicUsize,
    /// Whether `hooks.first_span` has run.
    started: AtomicBool,
    /// Whether to ask for transparent huge pages at all
    /// (`GOHEAP_HUGE_PAGES`).
    pub(crate) huge_pages: AtomicBool,
    /// Whether a chunk has been hinted for huge pages (set under the heap
    /// lock, read without it by the scavenger).
    huge_active: AtomicBool,
    /// Huge pages hinted back to no huge pages after a release left them
    /// partly resident ([`Heap::after_release`]), counted once each...
    huge_unhinted: AtomicUsize,
    /// ...by a bit per huge page of the first [`UNHINT_MAP_BYTES`] above
    /// [`FIRST_ARENA_HINT`], where arenas go when the OS honours the hint
    /// (elsewhere every release hints again).
    unhinted_map: [AtomicU64; UNHINT_MAP_BYTES / HUGE_PAGE_BYTES / 64],
    hooks: HeapHooks,
}

/// Whether `[p, p + bytes)` has an address with [`SAMPLED_ADDR_BIT`],
/// which arenas must not.
fn has_sampled_bit(p: usize, bytes: usize) -> bool {
    (p | (p + bytes - 1)) & SAMPLED_ADDR_BIT != 0
}

/// The committed heap from which goheap asks for transparent huge pages:
/// below it a heap pays up to 2 MiB of RSS per huge page it only partly
/// uses, a large share of a small heap (see "Transparent huge pages" in
/// docs/design.md for the measurements behind the value).
pub(crate) const HUGE_HEAP_MIN: usize = 32 << 20;

/// A transparent huge page (x86-64; arm64 with 4 KiB OS pages).
pub(crate) const HUGE_PAGE_BYTES: usize = 2 << 20;

/// Huge pages [`Heap::after_release`] may hint back before goheap stops
/// asking for huge pages (32 GiB of them).
const MAX_UNHINTED_HUGE_PAGES: usize = 16 * 1024;

/// The span of address space whose huge pages [`Heap::after_release`]
/// remembers having hinted back (128 GiB: a bitmap of 8 KiB).
const UNHINT_MAP_BYTES: usize = 128 << 30;

/// The heap grown for a run from this size up gets no huge pages: the run
/// may be a zeroed buffer used sparsely (from this size the large path
/// zeroes by release, `malloc::ZERO_BY_RELEASE`, as it bets on such use).
pub(crate) const HUGE_UNHINTED_RUN: usize = 1 << 20;

/// First hint for arena placement (Go starts at 0x00c0 << 32 on amd64).
const FIRST_ARENA_HINT: usize = 0x00c0 << 32;

impl Heap {
    /// A heap over `os` with no hooks; nothing is reserved until first use.
    #[cfg(test)]
    pub(crate) const fn new(os: &'static dyn Os) -> Self {
        Self::with_hooks(os, HeapHooks::NONE)
    }

    /// A heap over `os` that calls `hooks`.
    pub(crate) const fn with_hooks(os: &'static dyn Os, hooks: HeapHooks) -> Self {
        Heap {
            os,
            locked: Mutex::new(HeapLocked {
                initialized: false,
                pages: PageAlloc::new(),
                spans: FixAlloc::new(core::mem::size_of::<Span>().next_multiple_of(64)),
                cur_arena: 0,
                cur_arena_end: 0,
                arena_hint: FIRST_ARENA_HINT,
                arena_reserved: 0,
                heap_sys: 0,
                inuse_pages: 0,
                large_mallocs: 0,
                large_frees: 0,
                large_alloc_bytes: 0,
                large_free_bytes: 0,
                arena_meta_bytes: 0,
                activity: 0,
                releasing: (0, 0),
            }),
            arenas: ArenaMap::new(),
            centrals: [const { Central::new() }; NUM_SIZE_CLASSES],
            limit: Limit::new(),
            meta_outside: AtomicUsize::new(0),
            started: AtomicBool::new(false),
            huge_pages: AtomicBool::new(false),
            huge_active: AtomicBool::new(false),
            huge_unhinted: AtomicUsize::new(0),
            unhinted_map: [const { AtomicU64::new(0) }; UNHINT_MAP_BYTES / HUGE_PAGE_BYTES / 64],
            hooks,
        }
    }

    /// Takes the heap lock, initialising the heap on first use. Returns
    /// `None` if initialisation failed (the OS refused the index).
    pub(crate) fn lock(&self) -> Option<MutexGuard<'_, HeapLocked>> {
        let mut h = self.locked.lock();
        if !h.initialized {
            if !self.arenas.init(self.os) || !h.pages.init(self.os) {
                return None;
            }
            crate::freelist::init_secrets();
            h.initialized = true;
        }
        Some(h)
    }

    /// Allocates a span of `npages` pages and publishes it in the arena
    /// map; `init` fills it in before publication. Returns null when the OS
    /// refuses memory.
    pub(crate) fn alloc_span(
        &self,
        npages: usize,
        align_pages: usize,
        init: impl FnOnce(&Span, bool),
    ) -> *mut Span {
        let Some(mut h) = self.lock() else {
            return ptr::null_mut();
        };
        let span_mem = h.spans.alloc(self.os).cast::<Span>();
        if span_mem.is_null() {
            return ptr::null_mut();
        }
        let Some((base, scav)) = self.alloc_pages(&mut h, npages, align_pages) else {
            // SAFETY: `span_mem` came from this allocator and is unused.
            unsafe { h.spans.free(span_mem.cast()) };
            return ptr::null_mut();
        };
        // Released pages become resident again as they are used: under a
        // memory limit that counts like growth (Go does the same).
        if scav > 0 && !self.make_room(&mut h, 0) {
            // Give the pages back as released, so accounting stays exact
            // (some were resident: release those too).
            // SAFETY: the range is ours, free of objects, not yet published.
            unsafe { self.os.decommit(base as *mut u8, npages * PAGE_SIZE, false) };
            h.pages.mark_scavenged(base, npages);
            // SAFETY: as above.
            unsafe { h.spans.free(span_mem.cast()) };
            return ptr::null_mut();
        }
        // Pages never handed out since they were mapped, or released to
        // the OS (MADV_DONTNEED) while free, read as zero.
        let used_before = self.arenas.alloc_needs_zero(base, npages);
        let needzero = used_before && scav < npages;
        // SAFETY: `span_mem` is a fresh slot of span size, exclusively ours.
        let s = unsafe {
            span_mem.write(Span::empty());
            &*span_mem
        };
        s.base.set(base);
        s.npages.set(npages);
        init(s, needzero);
        h.inuse_pages += npages;
        h.activity += 1;
        self.arenas.set_spans(base, npages, span_mem);
        drop(h);
        if !self.started.load(Relaxed) && !self.started.swap(true, Relaxed) {
            (self.hooks.first_span)();
        }
        span_mem
    }

    /// Whether part of the heap is hinted for transparent huge pages: the
    /// background scavenger then releases whole huge pages first.
    pub(crate) fn huge_pages_active(&self) -> bool {
        self.huge_active.load(Relaxed)
    }

    /// In a child after `fork`: the hook's work (the scavenger thread) did
    /// not survive; the next span made calls it again.
    pub(crate) fn after_fork_in_child(&self) {
        self.started.store(false, Relaxed);
    }

    /// `npages` free pages aligned to `align_pages` pages, growing the heap
    /// if needed.
    /// Returns the base and how many of the pages were released while free.
    fn alloc_pages(
        &self,
        h: &mut HeapLocked,
        npages: usize,
        align_pages: usize,
    ) -> Option<(usize, usize)> {
        let ask = npages + align_pages.saturating_sub(1);
        let (base, scav) = match h.pages.alloc(ask) {
            Some(r) => r,
            None => {
                let grown = self.grow(h, ask)?;
                self.hint_huge_pages(h, grown, ask);
                h.pages.alloc(ask)?
            }
        };
        if align_pages <= 1 {
            return Some((base, scav));
        }
        let align = align_pages * PAGE_SIZE;
        let aligned = base.next_multiple_of(align);
        let head = (aligned - base) / PAGE_SIZE;
        let tail = ask - head - npages;
        if head != 0 {
            h.pages.free(base, head);
        }
        if tail != 0 {
            h.pages.free(aligned + npages * PAGE_SIZE, tail);
        }
        // The trimmed ends go back unreleased; only a fully released run
        // counts as zero.
        Some((aligned, if scav == ask { npages } else { 0 }))
    }

    /// Adds at least `npages` pages of free address space to the page
    /// allocator, in whole chunks, reserving arenas as needed (Go's
    /// `mheap.grow`). Returns the range added (base, bytes).
    fn grow(&self, h: &mut HeapLocked, npages: usize) -> Option<(usize, usize)> {
        let ask = (npages * PAGE_SIZE).next_multiple_of(CHUNK_BYTES);
        if h.cur_arena_end - h.cur_arena < ask {
            // Reserve new arenas: contiguous with the current one if the
            // hint is honoured, so the leftover joins the new space.
            let bytes = ask.next_multiple_of(ARENA_BYTES);
            if !self.make_room(h, ask) {
                return None;
            }
            let mut p = self.os.reserve(bytes, ARENA_BYTES, h.arena_hint) as usize;
            if p != 0 && self.os.avoids_sampled_bit() && has_sampled_bit(p, bytes) {
                // SAFETY: the reservation just made, unused.
                unsafe { self.os.release(p as *mut u8, bytes) };
                p = self.reserve_low(bytes);
            }
            if p == 0 {
                return None;
            }
            h.arena_reserved += bytes;
            let mut a = p;
            while a < p + bytes {
                match self.arenas.add_arena(a, self.os) {
                    Some(meta) => h.arena_meta_bytes += meta,
                    None => return None,
                }
                a += ARENA_BYTES;
            }
            h.arena_hint = p + bytes;
            if p == h.cur_arena_end {
                h.cur_arena_end = p + bytes;
            } else {
                // The old tail stays reserved but unused; Go does the same
                // (it is never returned to the OS).
                h.cur_arena = p;
                h.cur_arena_end = p + bytes;
            }
        }
        let base = h.cur_arena;
        if !self.make_room(h, ask) {
            return None;
        }
        // SAFETY: `[base, base + ask)` lies in an arena we reserved.
        if !unsafe { self.os.commit(base as *mut u8, ask) } {
            return None;
        }
        if !h.pages.grow(base, ask) {
            return None;
        }
        h.cur_arena += ask;
        h.heap_sys += ask;
        Some((base, ask))
    }

    /// The huge-page policy, when the heap has grown by `grown` (base,
    /// bytes: whole chunks, so whole aligned huge pages, committed and not
    /// yet touched) for a run of `run_pages`: asks for transparent huge
    /// pages on the new chunks if the heap had already grown to
    /// [`HUGE_HEAP_MIN`], most of its in-use pages are resident, and the
    /// run is under [`HUGE_UNHINTED_RUN`]. See "Transparent huge pages" in
    /// docs/design.md.
    fn hint_huge_pages(&self, h: &HeapLocked, grown: (usize, usize), run_pages: usize) {
        let (base, bytes) = grown;
        if !self.huge_pages.load(Relaxed)
            || h.heap_sys - bytes < HUGE_HEAP_MIN
            // The run may be a zeroed buffer used sparsely: once hinted,
            // each 4 KiB page it touches would fault in 2 MiB. So may the
            // next one, placed in the rest of these chunks.
            || run_pages * PAGE_SIZE >= HUGE_UNHINTED_RUN
        {
            return;
        }
        // Not while the heap is sparse (such buffers, smaller): most of its
        // in-use pages not resident. (Hinted memory would look dense: a
        // huge page is resident whole once touched, so this only tells an
        // unhinted heap.) One read of `/proc/self/statm` per 4 MiB of
        // growth, under the heap lock.
        if let Some(resident) = self.os.resident_bytes() {
            if resident < h.inuse_pages * PAGE_SIZE / 2 {
                return;
            }
        }
        self.huge_active.store(true, Relaxed);
        // SAFETY: the range was just committed in one of our arenas.
        unsafe { self.os.hint_huge(base as *mut u8, bytes) };
    }

    /// Called after `[base, base + bytes)`, free or inside an in-use span,
    /// was released to the OS. In a heap that asked for huge pages, a
    /// huge page the release leaves partly resident is hinted back to no
    /// huge pages: `khugepaged` would otherwise collapse it into a whole
    /// huge page again (it does so around a single resident 4 KiB page
    /// under the default `max_ptes_none` of 511), filling the released
    /// pages back in behind the scavenger's back. Huge pages released
    /// whole keep their hint: nothing is resident in them to collapse
    /// around, and reused they fault in as huge pages again.
    pub(crate) fn after_release(&self, base: usize, bytes: usize) {
        if !self.huge_active.load(Relaxed) {
            return;
        }
        let end = base + bytes;
        let first = base & !(HUGE_PAGE_BYTES - 1);
        let last = (end - 1) & !(HUGE_PAGE_BYTES - 1);
        let edges = [
            (base != first).then_some(first),
            (end % HUGE_PAGE_BYTES != 0 && (last != first || base == first)).then_some(last),
        ];
        for hp in edges.into_iter().flatten() {
            let off = hp.wrapping_sub(FIRST_ARENA_HINT) / HUGE_PAGE_BYTES;
            if let Some(word) = self.unhinted_map.get(off / 64) {
                let bit = 1 << (off % 64);
                if word.fetch_or(bit, Relaxed) & bit != 0 {
                    // Hinted back already (nothing hints it again: chunks
                    // are hinted once, when the heap grows into them).
                    continue;
                }
            }
            // Each hint may split a mapping in three: past a bound, turn
            // huge pages off for good rather than approach the kernel's
            // limit on mappings (`vm.max_map_count`, 65 530 by default).
            if self.huge_unhinted.fetch_add(1, Relaxed) >= MAX_UNHINTED_HUGE_PAGES {
                self.give_up_huge_pages();
                return;
            }
            // SAFETY: the huge page lies in one of our arenas (chunks, and
            // so huge pages, never straddle an arena).
            unsafe { self.os.hint_no_huge(hp as *mut u8, HUGE_PAGE_BYTES) };
        }
    }

    /// Stops asking for huge pages and hints every arena back to no huge
    /// pages (a few mappings in all).
    #[cold]
    fn give_up_huge_pages(&self) {
        self.huge_pages.store(false, Relaxed);
        if !self.huge_active.swap(false, Relaxed) {
            return;
        }
        // Without the heap lock (the caller may hold it): the arena list
        // only ever grows, and an arena added meanwhile is not hinted.
        for a in self.arenas.arenas() {
            // SAFETY: the arena is one of our reservations.
            unsafe { self.os.hint_no_huge(a.base as *mut u8, ARENA_BYTES) };
        }
    }

    /// Reserves `bytes` of arena space in the lower half of the address
    /// space (the kernel put the last try in the upper one, where the
    /// profiler's sampled region lives): tries a hint per TiB upward from
    /// 1 TiB; 0 if none gave such space.
    #[cold]
    fn reserve_low(&self, bytes: usize) -> usize {
        for tib in 1..(SAMPLED_ADDR_BIT >> 40) {
            let p = self.os.reserve(bytes, ARENA_BYTES, tib << 40) as usize;
            if p == 0 {
                return 0;
            }
            if !has_sampled_bit(p, bytes) {
                return p;
            }
            // SAFETY: the reservation just made, unused.
            unsafe { self.os.release(p as *mut u8, bytes) };
        }
        0
    }

    /// Returns span `s` and its pages to the heap.
    ///
    /// # Safety
    ///
    /// `s` is an in-use span of this heap that nothing references any more.
    pub(crate) unsafe fn free_span(&self, s: *mut Span) {
        let mut h = self.locked.lock();
        // SAFETY: the caller passes an in-use span it owns.
        let span = unsafe { &*s };
        debug_assert!(span.state() != SpanState::Free);
        span.forget_released();
        self.arenas
            .set_spans(span.base.get(), span.npages.get(), ptr::null_mut());
        h.pages.free(span.base.get(), span.npages.get());
        h.inuse_pages -= span.npages.get();
        h.activity += 1;
        span.set_state(SpanState::Free);
        // SAFETY: `s` came from `h.spans` and is no longer referenced.
        unsafe { h.spans.free(s.cast()) };
    }

    /// Grows large span `s` in place to `npages` pages if the pages after it
    /// are free. Returns whether it did.
    ///
    /// # Safety
    ///
    /// `s` is an in-use large span owned by the caller.
    pub(crate) unsafe fn grow_large_in_place(&self, s: *mut Span, npages: usize) -> bool {
        let mut h = self.locked.lock();
        // SAFETY: the caller owns the span.
        let span = unsafe { &*s };
        let extra = npages - span.npages.get();
        let end = span.limit();
        if h.pages.alloc_at(end, extra).is_none() {
            return false;
        }
        // The new pages may hold old data; large objects are zeroed by the
        // caller where it matters (realloc copies nothing into them).
        let _ = self.arenas.alloc_needs_zero(end, extra);
        self.arenas.set_spans(end, extra, s);
        h.inuse_pages += extra;
        h.large_alloc_bytes += (extra * PAGE_SIZE) as u64;
        span.npages.set(npages);
        span.elemsize.set(npages * PAGE_SIZE);
        true
    }

    /// Shrinks large span `s` to `npages` pages, returning the tail.
    ///
    /// # Safety
    ///
    /// `s` is an in-use large span owned by the caller; `npages` is at
    /// least 1 and below its size.
    pub(crate) unsafe fn shrink_large(&self, s: *mut Span, npages: usize) {
        let mut h = self.locked.lock();
        // SAFETY: the caller owns the span.
        let span = unsafe { &*s };
        let tail = span.base.get() + npages * PAGE_SIZE;
        let extra = span.npages.get() - npages;
        self.arenas.set_spans(tail, extra, ptr::null_mut());
        h.pages.free(tail, extra);
        h.inuse_pages -= extra;
        h.large_free_bytes += (extra * PAGE_SIZE) as u64;
        span.npages.set(npages);
        span.elemsize.set(npages * PAGE_SIZE);
    }
}

#[cfg(test)]
mod tests {
    //! The page heap over a mock OS: arena placement and alignment, the
    //! arena map's answers for any address, and graceful failure when the OS
    //! refuses memory.

    use super::*;
    use crate::arena::{ADDR_BITS, PAGES_PER_ARENA};
    use crate::os::mock::MockOs;
    use crate::sizeclass::{class_nelems, class_npages};
    use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    use std::sync::Mutex as StdMutex;

    /// A [`MockOs`] that also logs every successful `reserve` (address,
    /// size, alignment) and every `commit` size. Failures come from the
    /// mock's budgets. Test-only: it allocates (through the system
    /// allocator, which is what this test binary uses).
    struct Logged {
        mock: MockOs,
        reserves: StdMutex<Vec<(usize, usize, usize)>>,
        commits: StdMutex<Vec<usize>>,
        /// Sizes of the commits refused.
        refused: StdMutex<Vec<usize>>,
        /// Refuse the commit call with this index (0-based), on top of
        /// the mock's byte budget; `usize::MAX`: none.
        fail_commit_call: AtomicUsize,
        commit_calls: AtomicUsize,
        /// Every `hint_huge` (address, size).
        hints: StdMutex<Vec<(usize, usize)>>,
    }

    impl Logged {
        const fn new() -> Self {
            Logged {
                mock: MockOs::new(),
                reserves: StdMutex::new(Vec::new()),
                commits: StdMutex::new(Vec::new()),
                refused: StdMutex::new(Vec::new()),
                fail_commit_call: AtomicUsize::new(usize::MAX),
                commit_calls: AtomicUsize::new(0),
                hints: StdMutex::new(Vec::new()),
            }
        }

        fn leak() -> &'static Logged {
            Box::leak(Box::new(Logged::new()))
        }

        /// Reservations made for arenas (asked with arena alignment).
        fn arena_reserves(&self) -> Vec<(usize, usize)> {
            let r = self.reserves.lock().unwrap();
            r.iter()
                .filter(|r| r.2 == ARENA_BYTES)
                .map(|r| (r.0, r.1))
                .collect()
        }
    }

    // SAFETY: delegates to `MockOs`; the logging allocates through the
    // system allocator of the test binary, never through a goheap `Heap`.
    unsafe impl Os for Logged {
        fn reserve(&self, size: usize, align: usize, hint: usize) -> *mut u8 {
            let p = self.mock.reserve(size, align, hint);
            if !p.is_null() {
                self.reserves
                    .lock()
                    .unwrap()
                    .push((p as usize, size, align));
            }
            p
        }

        unsafe fn commit(&self, addr: *mut u8, size: usize) -> bool {
            let call = self.commit_calls.fetch_add(1, Relaxed);
            // SAFETY: forwarded contract.
            let ok = call != self.fail_commit_call.load(Relaxed)
                && unsafe { self.mock.commit(addr, size) };
            if ok {
                self.commits.lock().unwrap().push(size);
            } else {
                self.refused.lock().unwrap().push(size);
            }
            ok
        }

        unsafe fn decommit(&self, addr: *mut u8, size: usize, lazy: bool) {
            // SAFETY: forwarded contract.
            unsafe { self.mock.decommit(addr, size, lazy) }
        }

        unsafe fn release(&self, addr: *mut u8, size: usize) {
            // SAFETY: forwarded contract.
            unsafe { self.mock.release(addr, size) }
        }

        unsafe fn hint_huge(&self, addr: *mut u8, size: usize) {
            self.hints.lock().unwrap().push((addr as usize, size));
            // SAFETY: forwarded contract.
            unsafe { self.mock.hint_huge(addr, size) }
        }

        unsafe fn hint_no_huge(&self, addr: *mut u8, size: usize) {
            // SAFETY: forwarded contract.
            unsafe { self.mock.hint_no_huge(addr, size) }
        }

        fn resident_bytes(&self) -> Option<usize> {
            self.mock.resident_bytes()
        }
    }

    fn small_span(heap: &Heap, class: usize) -> *mut Span {
        heap.alloc_span(class_npages(class), 1, |s, needzero| {
            s.init_small(class, needzero)
        })
    }

    fn large_span(heap: &Heap, npages: usize, align_pages: usize) -> *mut Span {
        heap.alloc_span(npages, align_pages, |s, needzero| {
            s.set_state(SpanState::Large);
            s.elemsize.set(npages * PAGE_SIZE);
            s.nelems.set(1);
            s.needzero.set(needzero);
        })
    }

    /// Addresses no heap can own: outside the 48-bit space or never mapped.
    const NEVER_MAPPED: [usize; 6] = [0, 1, 4095, 1 << 47, (1 << ADDR_BITS) - 1, usize::MAX];

    static MOCK: MockOs = MockOs::new();

    #[test]
    fn static_mock_heap_serves_spans() {
        let heap = Heap::new(&MOCK);
        for addr in NEVER_MAPPED {
            assert!(
                heap.arenas.span_of(addr).is_null(),
                "before init: {addr:#x}"
            );
        }
        let s = small_span(&heap, 1);
        assert!(!s.is_null());
        // SAFETY: a span we just allocated and own.
        let span = unsafe { &*s };
        assert_eq!(span.state(), SpanState::Small);
        assert_eq!(
            span.base.get() % ARENA_BYTES,
            0,
            "first span starts the first arena"
        );
        assert_eq!(heap.arenas.span_of(span.base.get()), s);
        assert!(
            MOCK.reserve_calls
                .load(core::sync::atomic::Ordering::Relaxed)
                >= 4
        );
        // SAFETY: ours, nothing references it.
        unsafe { heap.free_span(s) };
        assert!(heap.arenas.span_of(span.base.get()).is_null());
    }

    #[test]
    // It blocks the next arena's hint with a PROT_NONE mapping, which Miri
    // does not model.
    #[cfg_attr(miri, ignore)]
    fn arenas_are_64mib_aligned_contiguous_or_not() {
        let os = Logged::leak();
        let heap = Heap::new(os);
        let first = small_span(&heap, 5);
        assert!(!first.is_null());
        // SAFETY: live span we own.
        let first_base = unsafe { (*first).base.get() };
        assert_eq!(first_base % ARENA_BYTES, 0);

        // A 100 MiB object needs more arenas than what is left.
        let big = large_span(&heap, (100 << 20) / PAGE_SIZE, 1);
        assert!(!big.is_null());
        // Now make the next arena land elsewhere: occupy the hint.
        let hint = heap.locked.lock().arena_hint;
        assert_eq!(hint % ARENA_BYTES, 0);
        // SAFETY: a fresh PROT_NONE mapping requested at `hint` without
        // MAP_FIXED; it is never unmapped (test process only).
        let blocker = unsafe {
            libc::mmap(
                hint as *mut libc::c_void,
                4096,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(blocker, libc::MAP_FAILED);
        // At most 192 - 104 MiB of reserved space is left, whatever the
        // layout so far: another 100 MiB needs a new reservation.
        let far = large_span(&heap, (100 << 20) / PAGE_SIZE, 1);
        assert!(!far.is_null());

        let arenas = os.arena_reserves();
        assert!(arenas.len() >= 3, "{arenas:x?}");
        for &(addr, size) in &arenas {
            assert_eq!(
                addr % ARENA_BYTES,
                0,
                "arena reservation {addr:#x} misaligned"
            );
            assert_eq!(size % ARENA_BYTES, 0, "arena reservation size {size:#x}");
            // Every arena of the reservation is registered.
            for a in (addr..addr + size).step_by(ARENA_BYTES) {
                assert!(!heap.arenas.arena_of(a).is_null());
                assert_eq!(
                    heap.arenas.arena_of(a),
                    heap.arenas.arena_of(a + ARENA_BYTES - 1)
                );
            }
        }
        let h = heap.locked.lock();
        assert_eq!(h.arena_reserved, arenas.iter().map(|a| a.1).sum::<usize>());
        assert_eq!(h.cur_arena_end % ARENA_BYTES, 0);
        assert_eq!(h.arena_hint % ARENA_BYTES, 0);
        assert_eq!(h.cur_arena % CHUNK_BYTES, 0);
        assert_eq!(h.heap_sys % CHUNK_BYTES, 0);
        drop(h);
        for s in [first, big, far] {
            // SAFETY: live spans we own.
            let span = unsafe { &*s };
            assert_eq!(span.base.get() % PAGE_SIZE, 0);
            for p in 0..span.npages.get() {
                assert_eq!(heap.arenas.span_of(span.base.get() + p * PAGE_SIZE), s);
            }
            assert_eq!(heap.arenas.span_of(span.limit() - 1), s);
        }
        // SAFETY: live spans.
        let (far_base, far_pages) = unsafe { ((*far).base.get(), (*far).npages.get()) };
        assert_ne!(far_base, hint, "the blocked hint was not used");
        assert_eq!(
            far_base % ARENA_BYTES,
            0,
            "new non-contiguous arena starts the span"
        );
        assert_eq!(
            heap.locked.lock().inuse_pages,
            class_npages(5) + (100 << 20) / PAGE_SIZE + far_pages
        );
        for s in [first, big, far] {
            // SAFETY: ours, unreferenced.
            unsafe { heap.free_span(s) };
        }
        assert_eq!(heap.locked.lock().inuse_pages, 0);
        // SAFETY: the mapping made above.
        unsafe { libc::munmap(blocker, 4096) };
    }

    #[test]
    fn span_of_inside_outside_and_never_mapped() {
        let heap = Heap::new(Logged::leak());
        let a = small_span(&heap, 10); // one page
        let b = large_span(&heap, 3, 1);
        let c = small_span(&heap, 41); // three pages
        assert!(!a.is_null() && !b.is_null() && !c.is_null());
        for s in [a, b, c] {
            // SAFETY: live spans we own.
            let span = unsafe { &*s };
            for off in [
                0,
                1,
                8,
                PAGE_SIZE - 1,
                PAGE_SIZE,
                span.npages.get() * PAGE_SIZE - 1,
            ] {
                if off < span.npages.get() * PAGE_SIZE {
                    assert_eq!(heap.arenas.span_of(span.base.get() + off), s, "offset {off}");
                }
            }
        }
        // SAFETY: live spans.
        let (a_base, c_limit) = unsafe { ((*a).base.get(), (*c).limit()) };
        // Below the first span: another arena's address, never mapped.
        assert!(heap.arenas.span_of(a_base - 1).is_null());
        // Just past the last span: free pages of the arena.
        assert!(heap.arenas.span_of(c_limit).is_null());
        assert!(heap.arenas.span_of(c_limit + PAGE_SIZE * 7 + 3).is_null());
        // The end of the arena and the arena after it.
        let arena_base = a_base & !(ARENA_BYTES - 1);
        assert!(heap.arenas.span_of(arena_base + ARENA_BYTES - 1).is_null());
        assert!(heap.arenas.arena_of(arena_base + ARENA_BYTES).is_null());
        for addr in NEVER_MAPPED {
            assert!(heap.arenas.arena_of(addr).is_null(), "{addr:#x}");
            assert!(heap.arenas.span_of(addr).is_null(), "{addr:#x}");
        }
        // Freed spans disappear from the map; the others stay.
        // SAFETY: a live span.
        let b_base = unsafe { (*b).base.get() };
        // SAFETY: ours, unreferenced.
        unsafe { heap.free_span(b) };
        for p in 0..3 {
            assert!(heap.arenas.span_of(b_base + p * PAGE_SIZE).is_null());
        }
        assert_eq!(heap.arenas.span_of(a_base), a);
        assert_eq!(heap.arenas.span_of(c_limit - 1), c);
        // The pages are reused (first fit) and the map follows.
        let d = large_span(&heap, 2, 1);
        // SAFETY: live span.
        assert_eq!(unsafe { (*d).base.get() }, b_base);
        assert_eq!(heap.arenas.span_of(b_base + PAGE_SIZE), d);
        assert!(heap.arenas.span_of(b_base + 2 * PAGE_SIZE).is_null());
    }

    #[test]
    fn aligned_large_spans_and_in_place_resizing() {
        let heap = Heap::new(Logged::leak());
        let pad = small_span(&heap, 1); // so the next span is not arena-aligned by luck
        assert!(!pad.is_null());
        for align_pages in [2, 4, 64, 128] {
            let s = large_span(&heap, 3, align_pages);
            assert!(!s.is_null());
            // SAFETY: live span.
            let span = unsafe { &*s };
            assert_eq!(
                span.base.get() % (align_pages * PAGE_SIZE),
                0,
                "align {align_pages} pages"
            );
            assert_eq!(span.npages.get(), 3);
            // SAFETY: ours.
            unsafe { heap.free_span(s) };
        }
        // Trimmed heads and tails went back: only `pad` is in use.
        assert_eq!(heap.locked.lock().inuse_pages, 1);
        let s = large_span(&heap, 4, 1);
        // SAFETY: live span we own; the pages after it are free.
        unsafe {
            assert!(heap.grow_large_in_place(s, 10));
            assert_eq!((*s).npages.get(), 10);
            assert_eq!(heap.arenas.span_of((*s).base.get() + 9 * PAGE_SIZE), s);
            heap.shrink_large(s, 2);
            assert_eq!((*s).npages.get(), 2);
            assert!(heap.arenas.span_of((*s).base.get() + 2 * PAGE_SIZE).is_null());
            assert_eq!(heap.locked.lock().inuse_pages, 1 + 2);
            // Blocked growth fails and changes nothing.
            let t = large_span(&heap, 1, 1);
            assert_eq!((*t).base.get(), (*s).limit());
            assert!(!heap.grow_large_in_place(s, 3));
            assert_eq!((*s).npages.get(), 2);
            heap.free_span(t);
            heap.free_span(s);
            heap.free_span(pad);
        }
        assert_eq!(heap.locked.lock().inuse_pages, 0);
    }

    #[test]
    fn needzero_is_false_only_for_never_used_pages() {
        let heap = Heap::new(Logged::leak());
        let nz = core::cell::Cell::new(None);
        let alloc = |npages| {
            heap.alloc_span(npages, 1, |s, needzero| {
                nz.set(Some(needzero));
                s.set_state(SpanState::Large);
            })
        };
        let a = alloc(4); // pages 0..4
        assert_eq!(nz.take(), Some(false), "fresh pages from the OS");
        // SAFETY: ours.
        unsafe { heap.free_span(a) };
        let b = alloc(2); // pages 0..2
        assert_eq!(nz.take(), Some(true), "reused pages");
        let c = alloc(4); // pages 2..6: two used before, two fresh
                          // SAFETY: live spans.
        unsafe { assert_eq!((*c).base.get(), (*b).limit()) };
        assert_eq!(nz.take(), Some(true), "partly reused");
        let d = alloc(1); // page 6
        assert_eq!(nz.take(), Some(false), "beyond everything handed out");
        // SAFETY: ours.
        unsafe { heap.free_span(d) };
        let e = alloc(1);
        assert_eq!(nz.take(), Some(true), "page 6 again");
        for s in [b, c, e] {
            // SAFETY: ours.
            unsafe { heap.free_span(s) };
        }
    }

    #[test]
    fn central_gives_empty_spans_back_to_the_heap() {
        let heap = Heap::new(Logged::leak());
        let class = 5;
        let central = &heap.centrals[class];
        let s = central.cache_span(&heap, class);
        assert!(!s.is_null());
        // SAFETY: the "cache" (this test) holds the span.
        let span = unsafe { &*s };
        assert!(span.cached.get());
        let nelems = class_nelems(class);
        let mut objs = Vec::new();
        for _ in 0..nelems {
            let i = span.next_free_index();
            span.note_handed_out(i);
            objs.push(span.base.get() + i * span.elemsize.get());
        }
        assert_eq!(span.next_free_index(), nelems);
        // SAFETY: we give the span up; it is full, so it goes on the full list.
        unsafe { central.uncache_span(&heap, s) };
        assert_eq!(central.lists.lock().full.len, 1);
        // Return all objects but one in a batch: the span goes partial.
        let guard = crate::freelist::Guard::new();
        guard.refresh();
        for (i, &o) in objs.iter().enumerate() {
            let next = objs.get(i + 1).map_or(ptr::null_mut(), |&n| n as *mut u8);
            // SAFETY: linking objects as a free list: the memory is
            // committed and ours.
            unsafe { guard.push(o as *mut u8, next, guard.mark()) };
        }
        // SAFETY: a well-formed list of `nelems - 1` objects we give up.
        unsafe { central.free_batch(&heap, class, objs[0] as *mut u8, nelems - 1) };
        {
            let l = central.lists.lock();
            assert_eq!((l.full.len, l.partial.len), (0, 1));
        }
        assert_eq!(heap.locked.lock().inuse_pages, class_npages(class));
        // The last one: the span empties and becomes the class's spare
        // (kept to spare the page allocator churn), reset to fresh.
        // SAFETY: the last object, given up (its link is null).
        unsafe { central.free_batch(&heap, class, objs[nelems - 1] as *mut u8, 1) };
        {
            let l = central.lists.lock();
            assert_eq!((l.full.len, l.partial.len), (0, 0));
            assert_eq!(l.spare, s);
            // SAFETY: the spare is a valid span, read under the lock.
            assert_eq!(unsafe { ((*s).alloc_count.get(), (*s).freed_count.get(), (*s).bits[0].alloc.get()) }, (0, 0, 0));
        }
        assert_eq!(heap.locked.lock().inuse_pages, class_npages(class));
        // A fresh request reuses the spare; emptied again and dropped, the
        // span goes back to the page heap.
        assert_eq!(central.cache_span(&heap, class), s);
        // SAFETY: we give it up untouched: nothing live, it is the spare again.
        unsafe { central.uncache_span(&heap, s) };
        assert_eq!(central.lists.lock().spare, s);
        central.drop_spare(&heap);
        assert!(central.lists.lock().spare.is_null());
        assert_eq!(heap.locked.lock().inuse_pages, 0);
        assert!(heap.arenas.span_of(objs[0]).is_null());
        assert_eq!(heap.locked.lock().spans.inuse, 0);
    }

    /// Allocates small and large spans on a fresh heap over `os`; returns
    /// whether everything succeeded. On failure the heap must be
    /// consistent: no pages or span structs leaked.
    fn try_spans(heap: &Heap) -> bool {
        let a = small_span(heap, 3);
        if a.is_null() {
            return false;
        }
        // Needs a second arena.
        let b = large_span(heap, (80 << 20) / PAGE_SIZE, 1);
        if b.is_null() {
            let h = heap.locked.lock();
            assert_eq!(h.inuse_pages, class_npages(3));
            assert_eq!(h.spans.inuse, 1);
            drop(h);
            // SAFETY: ours.
            unsafe { heap.free_span(a) };
            return false;
        }
        // SAFETY: ours.
        unsafe {
            heap.free_span(a);
            heap.free_span(b);
        }
        true
    }

    /// After a refusal: the OS relents, everything works, nothing leaked.
    fn recovers(os: &Logged, heap: &Heap, what: &str) {
        os.mock.reserve_budget.store(usize::MAX, Relaxed);
        os.mock.commit_budget.store(usize::MAX, Relaxed);
        os.fail_commit_call.store(usize::MAX, Relaxed);
        assert!(try_spans(heap), "after {what}");
        let h = heap.locked.lock();
        assert_eq!(h.inuse_pages, 0, "{what}");
        assert_eq!(h.spans.inuse, 0, "{what}");
    }

    // How many reservations and commits a run makes depends on where the OS
    // puts things (other tests map memory concurrently), so each run is
    // judged on its own log: it may only fail because the OS said no.

    #[test]
    // Builds dozens of heaps: too slow for Miri.
    #[cfg_attr(miri, ignore)]
    fn refused_reservations_give_null_not_panic() {
        let full = {
            let os = Logged::leak();
            assert!(try_spans(&Heap::new(os)));
            os.reserves.lock().unwrap().len()
        };
        assert!(
            full >= 5,
            "index, page metadata, span structs, arenas, arena metadata"
        );
        let mut failed = 0;
        for n in 0..full + 2 {
            let os = Logged::leak();
            os.mock.fail_reserve_after(n);
            let heap = Heap::new(os);
            let ok = try_spans(&heap);
            let made = os.reserves.lock().unwrap().len();
            if ok {
                assert!(made <= n);
            } else {
                assert_eq!(made, n, "failed with reservations to spare");
                failed += 1;
            }
            assert!(n > 0 || !ok, "no reservation at all, yet it worked");
            // Still refusing: null again, or a span if the refused step
            // came after the first arena was in place.
            let s = small_span(&heap, 7);
            if !s.is_null() {
                // SAFETY: ours.
                unsafe { heap.free_span(s) };
            }
            recovers(os, &heap, &format!("{n} reservations allowed"));
        }
        assert!(failed >= 3, "{failed} of {} runs failed", full + 2);
    }

    #[test]
    // Builds dozens of heaps: too slow for Miri.
    #[cfg_attr(miri, ignore)]
    fn refused_commits_give_null_not_panic() {
        let sizes = {
            let os = Logged::leak();
            assert!(try_spans(&Heap::new(os)));
            os.commits.lock().unwrap().clone()
        };
        assert!(sizes.len() >= 5, "{sizes:?}");
        // By bytes, with the mock's budget: nothing at all, and around
        // each commit of a full run.
        let mut budgets = vec![0];
        let mut total = 0;
        for s in &sizes {
            budgets.push(total + s - 1);
            budgets.push(total + s / 2);
            total += s;
        }
        let mut failed = 0;
        for &budget in &budgets {
            let os = Logged::leak();
            os.mock.fail_commit_after(budget);
            let heap = Heap::new(os);
            let ok = try_spans(&heap);
            let granted: usize = os.commits.lock().unwrap().iter().sum();
            assert!(granted <= budget);
            if !ok {
                let refused = os.refused.lock().unwrap();
                assert!(
                    !refused.is_empty(),
                    "budget {budget}: failed, nothing refused"
                );
                assert!(granted + refused[0] > budget);
                failed += 1;
            }
            assert!(budget > 0 || !ok);
            recovers(os, &heap, &format!("budget {budget}"));
            let h = heap.locked.lock();
            assert_eq!(h.heap_sys % CHUNK_BYTES, 0);
        }
        assert!(
            failed * 2 >= budgets.len(),
            "{failed} of {} runs failed",
            budgets.len()
        );
        // By call: refuse each commit a run makes, one at a time, until a
        // run gets through without reaching the refused one.
        for k in 0.. {
            assert!(k < 200, "runs never stop committing");
            let os = Logged::leak();
            os.fail_commit_call.store(k, Relaxed);
            let heap = Heap::new(os);
            let ok = try_spans(&heap);
            let calls = os.commit_calls.load(Relaxed);
            recovers(os, &heap, &format!("refused commit #{k}"));
            if ok {
                assert!(calls <= k, "commit #{k} refused, yet it worked");
                assert!(k >= 5);
                break;
            }
            assert_eq!(os.refused.lock().unwrap().len(), 1);
        }
    }

    /// Every page's record says where its span's high-water mark is for
    /// the objects starting on it, whichever pages the mark has crossed:
    /// after each raise (by one slot, or past several), a slot reads as
    /// handed out exactly when it is below the mark, on every page of
    /// multi-page spans, with objects straddling page boundaries.
    #[test]
    fn page_records_follow_the_high_water_mark_on_every_page() {
        let heap = Heap::new(Logged::leak());
        let classes: Vec<usize> = (1..crate::sizeclass::NUM_SIZE_CLASSES)
            .filter(|&c| class_npages(c) >= 2 && class_nelems(c) <= if cfg!(miri) { 8 } else { 64 })
            .collect();
        assert!(classes.len() >= 3, "multi-page classes: {classes:?}");
        for (n, &class) in classes.iter().enumerate() {
            let s = small_span(&heap, class);
            assert!(!s.is_null());
            // SAFETY: a live span we own.
            let span = unsafe { &*s };
            let (base, size, nelems) = (span.base.get(), span.elemsize.get(), span.nelems.get());
            // Steps of 1, 2 or 3 slots, so some raises cross two pages.
            let step = 1 + n % 3;
            let mut hw = 0;
            while hw < nelems {
                let idx = (hw + step - 1).min(nelems - 1);
                span.note_handed_out(idx);
                hw = idx + 1;
                for slot in 0..nelems {
                    let obj = base + slot * size;
                    let page = heap.arenas.small_page(obj).expect("a small page");
                    assert_eq!((page.class, page.offset), (class, slot * size));
                    if crate::CHECKED {
                        assert_eq!(
                            page.offset < page.hw_end,
                            slot < hw,
                            "class {class}, slot {slot}, mark {hw}: record says {page:?}"
                        );
                    }
                }
            }
        }
    }

    /// When the heap grows into the arena above, a small span can sit
    /// across the seam; a free of an object past the seam must see the
    /// span's high-water mark in the upper arena's page records too (the
    /// C `free` once read a record there that never had it and called a
    /// handed-out slot "never handed out").
    #[test]
    #[cfg_attr(
        miri,
        ignore = "Miri's mmap places the second arena anywhere, so no span can cross a seam"
    )]
    fn small_span_across_an_arena_seam() {
        // The class with the most pages per span.
        let class = (1..crate::sizeclass::NUM_SIZE_CLASSES)
            .max_by_key(|&c| class_npages(c))
            .unwrap();
        assert!(class_npages(class) >= 2);
        // The second arena is asked for right above the first; a test
        // running beside this one may map memory there first, and then the
        // heap grows elsewhere and no span crosses a seam: try again with
        // a new heap (each attempt leaks its arenas, as `Logged::leak` does).
        let attempt = || {
            let heap = Heap::new(Logged::leak());
            // Fill the first arena but for one page.
            let fill = large_span(&heap, PAGES_PER_ARENA - 1, 1);
            assert!(!fill.is_null());
            // SAFETY: a live span.
            let fill_base = unsafe { (*fill).base.get() };
            assert_eq!(fill_base % ARENA_BYTES, 0, "the first span starts its arena");
            let s = small_span(&heap, class);
            assert!(!s.is_null());
            // SAFETY: a live span.
            let at_seam = unsafe { (*s).base.get() } == fill_base + ARENA_BYTES - PAGE_SIZE;
            at_seam.then_some((heap, fill_base, s))
        };
        let (heap, fill_base, s) = (0..8).find_map(|_| attempt()).expect(
            "in 8 heaps the next arena was never reserved right above the first, so no span \
             crossed the seam",
        );
        // SAFETY: a live span.
        let span = unsafe { &*s };
        let size = span.elemsize.get();
        let past_seam = (0..span.nelems.get())
            .find(|&i| span.base.get() + i * size >= fill_base + ARENA_BYTES)
            .expect("an object past the seam");
        span.note_handed_out(past_seam);
        let obj = span.base.get() + past_seam * size;
        let page = heap.arenas.small_page(obj).expect("a small page");
        assert_eq!(page.class, class);
        assert_eq!(page.offset, obj - span.base.get());
        // Only checked builds keep the high-water mark.
        if crate::CHECKED {
            assert_eq!(page.hw_end, (past_seam + 1) * size);
            assert_eq!(span.published_hw(), past_seam + 1);
            // The raise rewrote every page below the seam too, and the
            // next slot still reads as never handed out.
            let first = heap.arenas.small_page(span.base.get()).expect("a small page");
            assert_eq!(first.hw_end, (past_seam + 1) * size);
            if let Some(next) = heap.arenas.small_page(obj + size) {
                assert!(next.offset >= next.hw_end);
            }
        }
    }

    /// Grows `heap` by one chunk: a large span of exactly a chunk's pages,
    /// which no free run can hold while every span stays allocated.
    fn chunk_span(heap: &Heap) -> *mut Span {
        let s = large_span(heap, CHUNK_BYTES / PAGE_SIZE, 1);
        assert!(!s.is_null());
        s
    }

    /// Makes one-page spans until the heap grows; returns them and the
    /// chunk it grew by.
    fn grow_by_small_spans(heap: &Heap) -> (Vec<*mut Span>, usize) {
        let sys = heap.locked.lock().heap_sys;
        let mut spans = Vec::new();
        while heap.locked.lock().heap_sys == sys {
            let s = small_span(heap, 1);
            assert!(!s.is_null());
            spans.push(s);
        }
        assert_eq!(heap.locked.lock().heap_sys, sys + CHUNK_BYTES);
        let last = *spans.last().unwrap();
        // SAFETY: a live span.
        let base = unsafe { (*last).base.get() };
        (spans, base & !(CHUNK_BYTES - 1))
    }

    /// The huge-page policy: no hint until the heap has `HUGE_HEAP_MIN`
    /// bytes committed, then each new chunk, whole, before anything touches
    /// it (and huge pages partly released hinted back);
    /// not the huge pages grown for a run of 1 MiB or more; none while most
    /// of the in-use heap is not resident; none when turned off.
    #[test]
    // Hundreds of spans over 50 MiB of mock memory: too slow for Miri.
    #[cfg_attr(miri, ignore)]
    fn huge_pages_only_for_a_heap_past_the_threshold() {
        let os = Logged::leak();
        let heap = Heap::new(os);
        heap.huge_pages.store(true, Relaxed);
        let hints = || os.hints.lock().unwrap().clone();
        heap.after_release(0x4000_0000_0000 + PAGE_SIZE, PAGE_SIZE);
        assert_eq!(os.mock.no_huge_hinted.load(Relaxed), 0, "nothing hinted yet");
        let mut spans: Vec<_> = (0..HUGE_HEAP_MIN / CHUNK_BYTES).map(|_| chunk_span(&heap)).collect();
        assert_eq!(heap.locked.lock().heap_sys, HUGE_HEAP_MIN);
        assert!(hints().is_empty(), "a small heap asked for huge pages");
        assert!(!heap.huge_pages_active());

        // The first chunk past the threshold is hinted, whole.
        let (small, chunk) = grow_by_small_spans(&heap);
        spans.extend(small);
        assert_eq!(hints(), vec![(chunk, CHUNK_BYTES)]);
        assert_eq!(chunk % HUGE_PAGE_BYTES, 0);
        assert!(heap.huge_pages_active());

        // Releases: a huge page left partly resident is hinted back (so
        // khugepaged leaves it alone); one released whole keeps its hint.
        let no_huge = || os.mock.no_huge_hinted.load(Relaxed);
        heap.after_release(chunk, HUGE_PAGE_BYTES);
        assert_eq!(no_huge(), 0);
        heap.after_release(chunk + PAGE_SIZE, PAGE_SIZE);
        assert_eq!(no_huge(), HUGE_PAGE_BYTES);
        // A huge page the bitmap covers (arenas where the OS honoured the
        // hint) is hinted back once; one past it (this test heap's arenas
        // land wherever others left room) every time.
        let tracked = chunk.wrapping_sub(FIRST_ARENA_HINT) / HUGE_PAGE_BYTES / 64
            < heap.unhinted_map.len();
        heap.after_release(chunk + HUGE_PAGE_BYTES / 2, HUGE_PAGE_BYTES);
        assert_eq!(no_huge(), if tracked { 2 } else { 3 } * HUGE_PAGE_BYTES);
        heap.after_release(chunk + HUGE_PAGE_BYTES, HUGE_PAGE_BYTES / 2);
        assert_eq!(no_huge(), if tracked { 2 } else { 4 } * HUGE_PAGE_BYTES);

        // The heap grown for a 4 MiB run: not hinted (it may be a zeroed
        // buffer used sparsely).
        spans.push(chunk_span(&heap));
        assert_eq!(hints().len(), 1);

        // Most of the in-use heap not resident: no hint.
        os.mock.resident.store(heap.locked.lock().inuse_pages * PAGE_SIZE / 4, Relaxed);
        let (small, _) = grow_by_small_spans(&heap);
        spans.extend(small);
        assert_eq!(hints().len(), 1);
        // Resident again: hinted again.
        os.mock.resident.store(usize::MAX - 1, Relaxed);
        let (small, chunk) = grow_by_small_spans(&heap);
        spans.extend(small);
        assert_eq!(hints()[1], (chunk, CHUNK_BYTES));

        // Turned off (`GOHEAP_HUGE_PAGES=0`): never.
        heap.huge_pages.store(false, Relaxed);
        let (small, _) = grow_by_small_spans(&heap);
        spans.extend(small);
        assert_eq!(hints().len(), 2);
        for s in spans {
            // SAFETY: ours, unreferenced.
            unsafe { heap.free_span(s) };
        }
    }

    #[test]
    fn arena_map_covers_whole_arenas() {
        assert_eq!(PAGES_PER_ARENA * PAGE_SIZE, ARENA_BYTES);
        assert_eq!(ARENA_BYTES, 64 << 20);
        assert_eq!(ARENA_BYTES % CHUNK_BYTES, 0);
    }
}
