//! The collected heap's allocator half: Go's span classes, scan and
//! noscan, over the process's one page heap; per-thread span caches with
//! Go's tiny allocator; mark bits; sweeping by cycle (Go's `sweepgen`).
//! The collector itself (roots, tracing, pacing, `Gc<T>`) is the
//! `goheap-gc` crate, which drives this through [`crate::gc_support`].
//!
//! # Structures
//!
//! - Span classes: `class * 2 + noscan` for Go's 68 size classes (class 0
//!   unused: large objects get a span of their own), 136 in all. Objects
//!   of a noscan class hold no `Gc` handle and are never read by the
//!   collector; objects of a scan class start with a header the collector
//!   reads (`goheap-gc`'s type information). Then 512 typed classes, each
//!   bound at first use to one size class and one type word ([`typed_class`]):
//!   their spans carry the word, so their objects need no header (Go keeps
//!   a heap bitmap for this; a Rust type's handles are found by its
//!   `trace`, so the span names the type instead).
//! - [`GcHeap`]: per span class a lock over three lists of uncached spans:
//!   swept spans with free slots, swept full spans, spans not swept since
//!   the last mark. Plus the large objects' spans, and the spans whose
//!   dead objects' `Drop` must run before they are swept.
//! - [`GcCache`]: a thread's span per span class, and its tiny block.
//!   Owned by the thread (goheap-gc brackets every use with its handshake,
//!   so the collector can flush it with the world stopped).
//! - Spans (`span::Span`) in state `GcSmall` / `GcLarge`: their alloc bitmaps
//!   say which slots hold objects; their freed bitmaps are the mark bits. Go's
//!   `sweepgen` is which list a span is on: a cycle's end moves every span
//!   to its class's unswept list (or aside, for drops), and a span leaves
//!   it only by being swept.
//!
//! # Allocating (Go's `mallocgc`)
//!
//! 1. Size and alignment → size class; noscan picks the noscan class.
//!    Noscan objects under 16 bytes without a `Drop` go to the tiny
//!    allocator instead: they share the thread's 16-byte block, aligned to
//!    8, 4 or 2 by their size (Go's rule).
//! 2. The next free slot of the thread's span of that class (Go's
//!    `nextFreeIndex`).
//! 3. Else give the span back and take one: a swept span with free slots,
//!    else an unswept one, swept now (Go's lazy sweep: a span is swept
//!    before it is used), else a fresh span from the page heap.
//! 4. Large objects (above 32 KiB) get a span of their own.
//! 5. Heap profiling: before step 1, the cache's countdown
//!    (`profile::Countdown`, as malloc's thread caches have) loses the
//!    requested size; when it runs out, the allocation takes a cold path
//!    that allocates as above and then records the sample
//!    (`profile::sample_gc`): the object stays in its slot, its bucket
//!    noted in the span (large) or in the profile's address map with a
//!    count on the span (small, tiny objects under their block's slot).
//!
//! # A cycle (driven by goheap-gc with every mutator stopped)
//!
//! 1. [`GcHeap::finish_sweep`]: spans the last cycle left unswept are swept
//!    (their mark bits must be clear before marking).
//! 2. Every thread's [`GcCache`] is flushed, so the alloc bitmaps are current.
//! 3. [`GcHeap::mark`] for each object reached: one bit, interior pointers
//!    resolved through the arena map.
//! 4. [`GcHeap::finish_mark`]: a new sweep cycle begins: every span is now
//!    unswept; spans holding objects with a `Drop` wait aside. Large
//!    objects without one are swept at once.
//! 5. With the world running again, [`GcHeap::finalize`] runs the dead
//!    objects' `Drop`s (through goheap-gc's callback) and sweeps those
//!    spans; the rest are swept lazily as they are needed, or by
//!    [`GcHeap::sweep_some`] in the background. Sweeping is Go's: the mark
//!    bits become the allocation bits; a span with nothing marked goes
//!    back to the page heap at once. First, if the span holds sampled
//!    objects (`Span::gc_samples`, one load otherwise), the heap profile
//!    counts the frees of the dead ones (`profile::free_gc_dead`), as Go's
//!    sweeper frees their profile specials; a large object's sample is
//!    freed with its span (`release_span`).

use crate::central::List;
use crate::heap::Heap;
use crate::profile;
use crate::sizeclass::{self, MAX_SMALL_SIZE, NUM_SIZE_CLASSES, PAGE_SIZE};
use crate::span::{Span, SpanList, SpanState};
use crate::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use crate::sync::Mutex;
use core::cell::Cell;
use core::ptr;

/// Span classes: a scan and a noscan one per size class.
pub(crate) const NUM_GC_SPAN_CLASSES: usize = NUM_SIZE_CLASSES * 2;

/// Typed span classes: each bound, the first time it is asked for, to one
/// size class and one type (the collector's type information), so that
/// small objects of that type need no header: the span says what they
/// are. Classes `NUM_GC_SPAN_CLASSES..ALL_GC_CLASSES`.
pub(crate) const NUM_TYPED_CLASSES: usize = 512;

/// Every span class, Go's and the typed ones.
const ALL_GC_CLASSES: usize = NUM_GC_SPAN_CLASSES + NUM_TYPED_CLASSES;

/// A typed class's binding: its type word (0 while unbound) and size
/// class. Set once, under `TYPED_LOCK`.
struct TypedClass {
    info: AtomicUsize,
    class: AtomicUsize,
}

static TYPED: [TypedClass; NUM_TYPED_CLASSES] = [const {
    TypedClass {
        info: AtomicUsize::new(0),
        class: AtomicUsize::new(0),
    }
}; NUM_TYPED_CLASSES];

/// Whether [`typed_class`] binds classes (tests turn it off to exercise
/// the header path, which objects take once every typed class is bound).
static TYPED_ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns typed classes off (or on) for types not yet bound; returns the
/// previous setting. For tests.
pub fn set_typed_classes(on: bool) -> bool {
    TYPED_ENABLED.swap(on, Relaxed)
}

/// Typed classes bound so far (under `TYPED_LOCK` for writers).
static TYPED_USED: AtomicUsize = AtomicUsize::new(0);
static TYPED_LOCK: Mutex<()> = Mutex::new(());

/// The typed span class for objects of `size` bytes at `align` whose
/// type information is the non-zero word `info`: the same class for the
/// same `(info, size, align)` every time. `None` when the object is large,
/// or every typed class is taken (the caller then gives its objects a
/// header in a scan class). Takes a lock and searches: callers cache the
/// answer.
pub fn typed_class(info: usize, size: usize, align: usize) -> Option<usize> {
    debug_assert!(info != 0);
    if !TYPED_ENABLED.load(Relaxed) {
        return None;
    }
    let class = class_of(size, align)?;
    let _l = TYPED_LOCK.lock();
    let used = TYPED_USED.load(Relaxed);
    for (i, t) in TYPED[..used].iter().enumerate() {
        if t.info.load(Relaxed) == info && t.class.load(Relaxed) == class {
            return Some(NUM_GC_SPAN_CLASSES + i);
        }
    }
    if used == NUM_TYPED_CLASSES {
        return None;
    }
    TYPED[used].class.store(class, Relaxed);
    TYPED[used].info.store(info, Relaxed);
    TYPED_USED.store(used + 1, Relaxed);
    Some(NUM_GC_SPAN_CLASSES + used)
}

/// The size class and type word of span class `spc`.
fn class_parts(spc: usize) -> (usize, usize) {
    if spc < NUM_GC_SPAN_CLASSES {
        (spc / 2, 0)
    } else {
        let t = &TYPED[spc - NUM_GC_SPAN_CLASSES];
        (t.class.load(Relaxed), t.info.load(Relaxed))
    }
}

/// Whether the objects of `span` (of the collected heap) are noscan: its
/// class is one of Go's odd ones (typed classes are scanned).
fn is_noscan(span: &Span) -> bool {
    let spc = span.gc_class.get() as usize;
    spc < NUM_GC_SPAN_CLASSES && spc % 2 == 1
}

/// Whether tiny objects share blocks (off: each gets its own slot of the
/// smallest class; for measuring what the tiny allocator saves).
static TINY_ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns the tiny allocator on or off for allocations from now on;
/// returns the previous setting.
pub fn set_tiny_allocator(on: bool) -> bool {
    TINY_ENABLED.swap(on, Relaxed)
}

/// Objects below this size (noscan, no `Drop`) share tiny blocks.
pub(crate) const TINY_SIZE: usize = 16;

/// The lists of one span class.
struct GcLists {
    /// Swept, with free slots.
    partial: List,
    /// Swept, every slot live.
    full: List,
    /// Not swept since the last mark.
    unswept: List,
}

// SAFETY: the lists hold span pointers used only under their lock.
unsafe impl Send for GcLists {}

/// Objects, bytes and cycles of the collected heap (all atomics: read by
/// statistics, written by allocating threads and the collector).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcHeapStats {
    /// Bytes of the collected heap that are live or allocated since the
    /// last mark (Go's `heapLive`: span slots handed to caches count when
    /// the span is taken; marked bytes at mark termination).
    pub heap_live: u64,
    /// Bytes and objects marked by the last cycle.
    pub marked_bytes: u64,
    /// See [`marked_bytes`](Self::marked_bytes).
    pub marked_objects: u64,
    /// Dead objects swept, and their bytes, since the process started.
    pub swept_objects: u64,
    /// See [`swept_objects`](Self::swept_objects).
    pub swept_bytes: u64,
    /// Spans of the collected heap in use (small and large), and their
    /// bytes.
    pub spans: u64,
    /// See [`spans`](Self::spans).
    pub span_bytes: u64,
    /// Sweep cycles begun (one per collection).
    pub cycles: u64,
}

/// What the collector records after each cycle (Go's `MemStats` GC
/// fields), kept here in the core so that [`crate::memstats`] reports them
/// with the rest; written by `goheap-gc` through [`record_cycle`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GcCycles {
    /// Completed cycles (`NumGC`).
    pub num_gc: u32,
    /// The last 256 pauses, ns (`PauseNs`: the latest at `(num_gc + 255) % 256`).
    pub pause_ns: [u64; 256],
    /// When each ended, ns since the Unix epoch (`PauseEnd`).
    pub pause_end: [u64; 256],
    /// Every pause added up, ns (`PauseTotalNs`).
    pub pause_total_ns: u64,
    /// The longest pause, ns.
    pub max_pause_ns: u64,
    /// When the last cycle ended, ns since the Unix epoch (`LastGC`).
    pub last_gc: u64,
    /// The heap goal (`NextGC`; `u64::MAX` with the collector off).
    pub next_gc: u64,
    /// The collector's share of the CPU time available since the process
    /// started, as of the last cycle (`GCCPUFraction`).
    pub gc_cpu_fraction: f64,
}

static GC_CYCLES: Mutex<GcCycles> = Mutex::new(GcCycles {
    num_gc: 0,
    pause_ns: [0; 256],
    pause_end: [0; 256],
    pause_total_ns: 0,
    max_pause_ns: 0,
    last_gc: 0,
    next_gc: 4 << 20,
    gc_cpu_fraction: 0.0,
});

/// Records a cycle that paused the world for `pause_ns` and ended at
/// `end_unix_ns`, with the collector's CPU fraction so far (the goal it
/// left comes through [`record_next_gc`]). Returns the cycle's number
/// (from 1).
pub fn record_cycle(pause_ns: u64, end_unix_ns: u64, gc_cpu_fraction: f64) -> u32 {
    let mut c = GC_CYCLES.lock();
    let i = c.num_gc as usize % 256;
    c.pause_ns[i] = pause_ns;
    c.pause_end[i] = end_unix_ns;
    c.num_gc += 1;
    c.pause_total_ns += pause_ns;
    c.max_pause_ns = c.max_pause_ns.max(pause_ns);
    c.last_gc = end_unix_ns;
    c.gc_cpu_fraction = gc_cpu_fraction;
    c.num_gc
}

/// Records the heap goal (after a cycle, or `set_gc_percent`).
pub fn record_next_gc(next_gc: u64) {
    GC_CYCLES.lock().next_gc = next_gc;
}

/// The cycle records now.
pub fn gc_cycles() -> GcCycles {
    *GC_CYCLES.lock()
}

/// The collected heap's spans (see the module docs).
pub struct GcHeap {
    /// The page heap the spans come from (the process's one, shared with
    /// malloc).
    heap: &'static Heap,
    classes: [Mutex<GcLists>; ALL_GC_CLASSES],
    /// Live large objects' spans.
    large: Mutex<List>,
    /// Spans (small and large) whose dead objects' `Drop` must run before
    /// they are swept: set aside by `finish_mark`, emptied by `finalize`.
    finalize: Mutex<List>,
    /// Sweep cycles begun, from 1 (one per collection).
    cycle: AtomicU32,
    heap_live: AtomicUsize,
    marked_bytes: AtomicU64,
    marked_objects: AtomicU64,
    swept_objects: AtomicU64,
    swept_bytes: AtomicU64,
    spans: AtomicU64,
    span_bytes: AtomicU64,
}


/// What [`GcHeap::mark`] found at an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marked {
    /// The object's first byte.
    pub base: *mut u8,
    /// Its slot size (whole pages for a large object).
    pub size: usize,
    /// Whether it is of a scan class (it starts with a header).
    pub scan: bool,
    /// Whether this call marked it (false: it was marked already).
    pub newly: bool,
    /// For an object of a typed class, its type word (the object has no
    /// header); else 0.
    pub type_info: usize,
}

/// The span class for `class` and `noscan`.
#[inline]
const fn span_class(class: usize, noscan: bool) -> usize {
    class * 2 + noscan as usize
}

/// The size class for an object of `size` bytes at `align`, or `None` for
/// a large object.
#[inline]
const fn class_of(size: usize, align: usize) -> Option<usize> {
    if size > MAX_SMALL_SIZE || align > PAGE_SIZE {
        return None;
    }
    let class = sizeclass::size_to_class(size);
    if align <= 8 {
        return Some(class);
    }
    let shift = align.trailing_zeros();
    let shift = if shift > sizeclass::ALIGNED_MIN_SHIFT {
        shift
    } else {
        sizeclass::ALIGNED_MIN_SHIFT
    };
    let c = sizeclass::aligned_class(class, shift);
    if c == 0 {
        None
    } else {
        Some(c)
    }
}

/// The span class [`GcCache::alloc_in`] takes for an object of `size`
/// bytes at `align` (`noscan`: of a noscan class), or `None` when the
/// object is large or goes to the tiny allocator. A `const fn`, so a
/// caller that knows its type computes it at compile time.
pub const fn span_class_for(size: usize, align: usize, noscan: bool) -> Option<usize> {
    if noscan && size < TINY_SIZE && align <= 8 {
        return None;
    }
    match class_of(size, align) {
        Some(c) => Some(span_class(c, noscan)),
        None => None,
    }
}

impl GcHeap {
    /// A collected heap over `heap` (the process's is `global::GC_HEAP`).
    pub(crate) const fn new(heap: &'static Heap) -> Self {
        GcHeap {
            heap,
            classes: [const {
                Mutex::new(GcLists {
                    partial: List::new(),
                    full: List::new(),
                    unswept: List::new(),
                })
            }; ALL_GC_CLASSES],
            large: Mutex::new(List::new()),
            finalize: Mutex::new(List::new()),
            cycle: AtomicU32::new(1),
            heap_live: AtomicUsize::new(0),
            marked_bytes: AtomicU64::new(0),
            marked_objects: AtomicU64::new(0),
            swept_objects: AtomicU64::new(0),
            swept_bytes: AtomicU64::new(0),
            spans: AtomicU64::new(0),
            span_bytes: AtomicU64::new(0),
        }
    }

    /// Go's `heapLive`: what the pacer compares with the goal (one load).
    #[inline]
    pub fn heap_live(&self) -> usize {
        self.heap_live.load(Relaxed)
    }

    /// The collected heap's figures.
    pub fn stats(&self) -> GcHeapStats {
        GcHeapStats {
            heap_live: self.heap_live.load(Relaxed) as u64,
            marked_bytes: self.marked_bytes.load(Relaxed),
            marked_objects: self.marked_objects.load(Relaxed),
            swept_objects: self.swept_objects.load(Relaxed),
            swept_bytes: self.swept_bytes.load(Relaxed),
            spans: self.spans.load(Relaxed),
            span_bytes: self.span_bytes.load(Relaxed),
            cycles: self.cycle.load(Relaxed) as u64 - 1,
        }
    }

    /// Makes a span for span class `spc` from the page heap.
    fn new_span(&self, spc: usize) -> *mut Span {
        let (class, info) = class_parts(spc);
        let s = self.heap.alloc_span(sizeclass::class_npages(class), 1, |s, needzero| {
            s.init_small(class, needzero);
            s.set_state(SpanState::GcSmall);
            s.has_drops.set(false);
            s.gc_class.set(spc as u16);
            s.type_info.set(info);
            s.sample.set(0);
            s.gc_samples.store(0, Relaxed);
        });
        if !s.is_null() {
            self.spans.fetch_add(1, Relaxed);
            self.span_bytes
                .fetch_add((sizeclass::class_npages(class) * PAGE_SIZE) as u64, Relaxed);
        }
        s
    }

    /// Gives span `s` (no live object, on no list, uncached) back to the
    /// page heap.
    ///
    /// # Safety
    ///
    /// As above; nothing references the span any more.
    unsafe fn release_span(&self, s: *mut Span) {
        // SAFETY: per the contract.
        let span = unsafe { &*s };
        // A sampled large object dies with its span (the heap profile
        // counts its free); a small span is swept before it is released,
        // which freed its sampled objects.
        if span.sample.get() != 0 {
            profile::free_large(span);
        }
        debug_assert_eq!(span.gc_samples.load(Relaxed), 0);
        let bytes = span.npages.get() * PAGE_SIZE;
        self.spans.fetch_sub(1, Relaxed);
        self.span_bytes.fetch_sub(bytes as u64, Relaxed);
        // SAFETY: per the contract.
        unsafe { self.heap.free_span(s) };
    }

    /// A span of `spc` with free slots, taken for a cache (Go's
    /// `mcentral.cacheSpan`): swept partial spans first, then unswept ones,
    /// swept now, then a fresh span. Null when the heap cannot grow.
    fn cache_span(&self, spc: usize) -> *mut Span {
        {
            let mut l = self.classes[spc].lock();
            let mut found = l.partial.pop();
            while found.is_null() {
                let s = l.unswept.pop();
                if s.is_null() {
                    break;
                }
                // SAFETY: spans on our lists are ours under the lock.
                let span = unsafe { &*s };
                span.list.set(SpanList::None);
                match self.sweep(span) {
                    // Nothing live: back to the page heap at once (the heap
                    // lock after a class lock is the lock order).
                    // SAFETY: empty, unlisted, uncached.
                    Swept::Empty => unsafe { self.release_span(s) },
                    Swept::Partial => found = s,
                    Swept::Full => {
                        span.list.set(SpanList::Full);
                        // SAFETY: on no list.
                        unsafe { l.full.push(s) };
                    }
                }
            }
            if !found.is_null() {
                // SAFETY: a span of our lists (or just swept), ours under the
                // lock.
                let span = unsafe { &*found };
                span.list.set(SpanList::None);
                let avail = span.take_for_cache();
                self.heap_live.fetch_add(avail * span.elemsize.get(), Relaxed);
                return found;
            }
        }
        let s = self.new_span(spc);
        if !s.is_null() {
            let _l = self.classes[spc].lock();
            // SAFETY: fresh span, ours.
            let span = unsafe { &*s };
            let avail = span.take_for_cache();
            self.heap_live.fetch_add(avail * span.elemsize.get(), Relaxed);
        }
        s
    }

    /// Takes back span `s` of `spc` from a cache.
    ///
    /// # Safety
    ///
    /// `s` is a span of `spc` the calling cache holds and gives up.
    unsafe fn uncache_span(&self, spc: usize, s: *mut Span) {
        let mut l = self.classes[spc].lock();
        // SAFETY: per the contract.
        let span = unsafe { &*s };
        let counted = span.alloc_count.get();
        span.release_from_cache();
        // The slots the cache did not use stop counting as live.
        let unused = counted - span.alloc_count.get();
        self.heap_live.fetch_sub(unused * span.elemsize.get(), Relaxed);
        if span.live() == span.nelems.get() {
            span.list.set(SpanList::Full);
            // SAFETY: on no list.
            unsafe { l.full.push(s) };
        } else {
            span.list.set(SpanList::Partial);
            // SAFETY: on no list.
            unsafe { l.partial.push(s) };
        }
    }

    /// Sweeps small span `span` (uncached, on no list, its class lock held
    /// or the world stopped): the mark bits become the allocation bits.
    fn sweep(&self, span: &Span) -> Swept {
        // Sampled objects found dead leave the heap profile first (one
        // load for a span without any).
        if span.gc_samples.load(Relaxed) != 0 {
            profile::free_gc_dead(span);
        }
        let nelems = span.nelems.get();
        let words = nelems.div_ceil(64);
        let mut live = 0;
        for w in 0..words {
            let marked = span.bits[w].freed.get() & span.bits[w].alloc.get();
            live += marked.count_ones() as usize;
            span.bits[w].alloc.set(marked);
            span.bits[w].freed.set(0);
        }
        let dead = span.alloc_count.get() - live;
        span.alloc_count.set(live);
        span.freeindex.set(0);
        self.swept_objects.fetch_add(dead as u64, Relaxed);
        self.swept_bytes
            .fetch_add((dead * span.elemsize.get()) as u64, Relaxed);
        if live == 0 {
            span.has_drops.set(false);
            Swept::Empty
        } else if live == nelems {
            Swept::Full
        } else {
            Swept::Partial
        }
    }

    /// Files a swept span on its class's lists, or gives it back.
    ///
    /// # Safety
    ///
    /// `s` is a small span of the collected heap, swept, uncached, on no
    /// list.
    unsafe fn file_swept(&self, s: *mut Span, how: Swept) {
        // SAFETY: per the contract.
        let span = unsafe { &*s };
        let spc = span.gc_class.get() as usize;
        match how {
            // SAFETY: empty, on no list.
            Swept::Empty => unsafe { self.release_span(s) },
            Swept::Partial => {
                span.list.set(SpanList::Partial);
                // SAFETY: on no list.
                unsafe { self.classes[spc].lock().partial.push(s) };
            }
            Swept::Full => {
                span.list.set(SpanList::Full);
                // SAFETY: on no list.
                unsafe { self.classes[spc].lock().full.push(s) };
            }
        }
    }

    /// Allocates a large object of the collected heap: a span of its own,
    /// all zero if `zeroed` (memory that was never handed out since it was
    /// mapped is not cleared again). Null when the heap cannot grow.
    pub fn alloc_large(&self, size: usize, align: usize, noscan: bool, drops: bool, zeroed: bool) -> *mut u8 {
        let npages = size.max(1).div_ceil(PAGE_SIZE);
        let align_pages = align.div_ceil(PAGE_SIZE).max(1);
        let mut dirty = true;
        let s = self.heap.alloc_span(npages, align_pages, |s, needzero| {
            dirty = needzero;
            s.class.set(0);
            s.set_state(SpanState::GcLarge);
            // Class 0 (no size class), scan or noscan: what `noscan` reads.
            s.gc_class.set(span_class(0, noscan) as u16);
            s.type_info.set(0);
            s.elemsize.set(npages * PAGE_SIZE);
            s.nelems.set(1);
            s.has_drops.set(drops);
            s.bits[0].alloc.set(1);
            s.alloc_count.set(1);
            s.sample.set(0);
            s.gc_samples.store(0, Relaxed);
        });
        if s.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: the span was just made for us.
        unsafe {
            self.large.lock().push(s);
            self.spans.fetch_add(1, Relaxed);
            self.span_bytes.fetch_add((npages * PAGE_SIZE) as u64, Relaxed);
            self.heap_live.fetch_add(npages * PAGE_SIZE, Relaxed);
            let base = (*s).base.get() as *mut u8;
            if zeroed && dirty {
                base.write_bytes(0, size);
            }
            base
        }
    }

    /// Marks the object holding `addr`, if it is an object of the collected
    /// heap: interior addresses (and tiny objects) resolve to their slot.
    /// The caller counts what it marked (for [`finish_mark`](Self::finish_mark)).
    ///
    /// # Safety
    ///
    /// Only the collector, with every thread that allocates from the
    /// collected heap stopped and its cache flushed, between
    /// [`finish_sweep`](Self::finish_sweep) and
    /// [`finish_mark`](Self::finish_mark).
    #[inline]
    pub unsafe fn mark(&self, addr: usize) -> Option<Marked> {
        let s = self.heap.arenas.span_of(addr);
        // SAFETY: span structs are never unmapped; the world is stopped.
        let span = unsafe { s.as_ref()? };
        let (idx, base) = match span.state() {
            SpanState::GcSmall => {
                let (idx, _) = span.object_index(addr);
                if idx >= span.nelems.get() || !span.alloc_bit(idx) {
                    return None;
                }
                (idx, span.base.get() + idx * span.elemsize.get())
            }
            SpanState::GcLarge => (0, span.base.get()),
            _ => return None,
        };
        let w = &span.bits[idx / 64].freed;
        let bit = 1u64 << (idx % 64);
        let newly = w.get() & bit == 0;
        if newly {
            w.set(w.get() | bit);
        }
        Some(Marked {
            base: base as *mut u8,
            size: span.elemsize.get(),
            scan: !is_noscan(span),
            newly,
            type_info: span.type_info.get(),
        })
    }

    /// Before marking (the world stopped, every cache flushed): sweeps the
    /// spans the last cycle left unswept, so every mark bit is clear.
    ///
    /// # Safety
    ///
    /// As [`mark`](Self::mark); [`finalize`](Self::finalize) of the last
    /// cycle has returned.
    pub unsafe fn finish_sweep(&self) {
        while self.sweep_some(usize::MAX) > 0 {}
    }

    /// Ends marking (the world still stopped): begins a new sweep cycle, so
    /// every span becomes unswept; spans holding objects with a `Drop` are
    /// set aside for [`finalize`](Self::finalize); large objects without
    /// one that were not marked are freed now. `heap_live` becomes the
    /// marked bytes. Takes what the collector marked (objects, bytes);
    /// returns the marked bytes.
    ///
    /// # Safety
    ///
    /// As [`mark`](Self::mark), after the last call of it this cycle.
    pub unsafe fn finish_mark(&self, marked_objects: u64, marked_bytes: u64) -> u64 {
        self.marked_objects.store(marked_objects, Relaxed);
        self.marked_bytes.store(marked_bytes, Relaxed);
        self.cycle.fetch_add(1, Relaxed);
        let mut fin = self.finalize.lock();
        for lists in &self.classes {
            let mut l = lists.lock();
            for from in [SpanList::Partial, SpanList::Full] {
                loop {
                    let s = match from {
                        SpanList::Partial => l.partial.pop(),
                        _ => l.full.pop(),
                    };
                    if s.is_null() {
                        break;
                    }
                    // SAFETY: spans on our lists, ours under the lock.
                    let span = unsafe { &*s };
                    // SAFETY: on no list now.
                    unsafe {
                        if span.has_drops.get() {
                            span.list.set(SpanList::None);
                            fin.push(s);
                        } else {
                            span.list.set(SpanList::Partial);
                            l.unswept.push(s);
                        }
                    }
                }
            }
        }
        let mut large = self.large.lock();
        let mut s = large.head;
        while !s.is_null() {
            // SAFETY: spans on the large list are live large GC spans.
            let span = unsafe { &*s };
            let next = span.next.get() as *mut Span;
            let marked = span.bits[0].freed.get() & 1 != 0;
            span.bits[0].freed.set(0);
            if !marked {
                // SAFETY: on the large list.
                unsafe { large.remove(s) };
                self.swept_objects.fetch_add(1, Relaxed);
                self.swept_bytes.fetch_add(span.elemsize.get() as u64, Relaxed);
                if span.has_drops.get() {
                    // SAFETY: on no list now.
                    unsafe { fin.push(s) };
                } else {
                    // SAFETY: dead and unlisted: nothing references it.
                    unsafe { self.release_span(s) };
                }
            }
            s = next;
        }
        let marked = self.marked_bytes.load(Relaxed);
        self.heap_live.store(marked as usize, Relaxed);
        marked
    }

    /// With the world running again: calls `drop_dead` on every dead object
    /// of the spans [`finish_mark`](Self::finish_mark) set aside, with its
    /// span's type word (0: the object has a header), to run its `Drop`;
    /// then sweeps those spans. The dead objects are
    /// unreachable, and their slots are reused only after this sweep.
    pub fn finalize(&self, mut drop_dead: impl FnMut(*mut u8, usize)) {
        loop {
            let s = self.finalize.lock().pop();
            if s.is_null() {
                return;
            }
            // SAFETY: a span set aside by `finish_mark`, ours alone now.
            let span = unsafe { &*s };
            if span.state() == SpanState::GcLarge {
                drop_dead(span.base.get() as *mut u8, 0);
                // SAFETY: dead and unlisted.
                unsafe { self.release_span(s) };
                continue;
            }
            for idx in 0..span.nelems.get() {
                if span.alloc_bit(idx) && !span.freed_bit(idx) {
                    drop_dead(
                        (span.base.get() + idx * span.elemsize.get()) as *mut u8,
                        span.type_info.get(),
                    );
                }
            }
            let how = self.sweep(span);
            // SAFETY: swept, uncached, on no list.
            unsafe { self.file_swept(s, how) };
        }
    }

    /// Sweeps up to `max` unswept spans (background sweeping, or finishing
    /// before the next mark). Returns how many it swept.
    pub fn sweep_some(&self, max: usize) -> usize {
        let mut done = 0;
        for lists in &self.classes {
            while done < max {
                let s = lists.lock().unswept.pop();
                if s.is_null() {
                    break;
                }
                // SAFETY: an unswept span taken off its list: ours.
                let span = unsafe { &*s };
                span.list.set(SpanList::None);
                let how = self.sweep(span);
                // SAFETY: swept, uncached, on no list.
                unsafe { self.file_swept(s, how) };
                done += 1;
            }
        }
        done
    }
}

/// What a sweep left in a span.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Swept {
    Empty,
    Partial,
    Full,
}

/// A thread's spans of the collected heap, one per span class, and its
/// tiny block (Go's mcache, for the collected heap).
pub struct GcCache {
    /// The collected heap it caches spans of.
    heap: &'static GcHeap,
    spans: [Cell<*mut Span>; ALL_GC_CLASSES],
    /// The current tiny block and the offset of its first free byte.
    tiny: Cell<*mut u8>,
    tiny_off: Cell<usize>,
    /// Slots handed out (objects, tiny blocks and large objects), and
    /// objects placed in tiny blocks: the owner counts, the collector
    /// reads them with the owner held still.
    slots: Cell<u64>,
    tiny_objects: Cell<u64>,
    /// The heap profile's countdown to this cache's next sampled
    /// allocation (owner only; the collector never touches it).
    sample: profile::countdown::Countdown,
}

// SAFETY: a cache is used by one thread at a time: its owner, or the
// collector with the owner stopped (the caller's handshake guarantees it).
unsafe impl Send for GcCache {}
// SAFETY: as above.
unsafe impl Sync for GcCache {}

impl GcCache {
    /// A cache of `heap`'s spans, holding nothing.
    pub const fn new(heap: &'static GcHeap) -> Self {
        GcCache {
            heap,
            spans: [const { Cell::new(ptr::null_mut()) }; ALL_GC_CLASSES],
            tiny: Cell::new(ptr::null_mut()),
            tiny_off: Cell::new(0),
            slots: Cell::new(0),
            tiny_objects: Cell::new(0),
            sample: profile::countdown::Countdown::new(),
        }
    }

    /// Allocates `size` bytes at `align` (a power of two) for an object of
    /// the collected heap: of a noscan class if `noscan`; `drops` says the
    /// object has a `Drop` to run when it dies (so it is not noscan).
    /// Noscan objects under 16 bytes share tiny blocks. All zero if
    /// `zeroed` (a large object's fresh pages are not cleared again).
    /// Returns null when memory is exhausted, and whether a new span (or
    /// large object) was taken: the moment a collector checks its trigger.
    ///
    /// # Safety
    ///
    /// Only the cache's owner, and never while the collector may flush it
    /// (goheap-gc brackets this with the owner's handshake).
    pub unsafe fn alloc(
        &self,
        size: usize,
        align: usize,
        noscan: bool,
        drops: bool,
        zeroed: bool,
    ) -> (*mut u8, bool) {
        if self.sample.due(size) {
            // SAFETY: forwarded contract.
            return unsafe { self.alloc_sampled(size, align, noscan, drops, zeroed) };
        }
        // SAFETY: forwarded contract.
        unsafe { self.alloc_unsampled(size, align, noscan, drops, zeroed) }
    }

    /// [`alloc`](Self::alloc) when the heap profile's countdown ran out:
    /// the allocation as usual, then its sample.
    ///
    /// # Safety
    ///
    /// As [`alloc`](Self::alloc).
    #[cold]
    #[inline(never)]
    unsafe fn alloc_sampled(
        &self,
        size: usize,
        align: usize,
        noscan: bool,
        drops: bool,
        zeroed: bool,
    ) -> (*mut u8, bool) {
        // SAFETY: forwarded contract.
        let r = unsafe { self.alloc_unsampled(size, align, noscan, drops, zeroed) };
        self.record_sample(r.0, size);
        r
    }

    /// Records a sample of the object at `p` (null: none was allocated) of
    /// `size` requested bytes, just allocated by this cache (its span is
    /// found through the arena map, as marking finds it: a tiny object's
    /// block may be in a span the cache no longer holds).
    fn record_sample(&self, p: *mut u8, size: usize) {
        if p.is_null() {
            return;
        }
        let s = self.heap.heap.arenas.span_of(p as usize);
        // SAFETY: span structs are never unmapped, and `p`'s span is live:
        // it holds an object just allocated, which no sweep can free
        // before the owner's bracket ends.
        if let Some(span) = unsafe { s.as_ref() } {
            profile::sample_gc(&self.sample, span, p, size);
        }
    }

    /// [`alloc`](Self::alloc) without the heap profile's countdown.
    ///
    /// # Safety
    ///
    /// As [`alloc`](Self::alloc).
    #[inline(always)]
    unsafe fn alloc_unsampled(
        &self,
        size: usize,
        align: usize,
        noscan: bool,
        drops: bool,
        zeroed: bool,
    ) -> (*mut u8, bool) {
        if zeroed && class_of(size, align).is_none() {
            let p = self.heap.alloc_large(size, align, noscan, drops, true);
            if !p.is_null() {
                self.slots.set(self.slots.get() + 1);
            }
            return (p, true);
        }
        // SAFETY: forwarded contract.
        let (p, refilled) = unsafe { self.alloc_small_or_tiny(size, align, noscan, drops) };
        if zeroed && !p.is_null() {
            // SAFETY: a fresh slot of at least `size` bytes.
            unsafe { p.write_bytes(0, size) };
        }
        (p, refilled)
    }

    /// [`alloc`](Self::alloc) of a small or tiny object, not zeroed.
    ///
    /// # Safety
    ///
    /// As [`alloc`](Self::alloc).
    #[inline]
    unsafe fn alloc_small_or_tiny(&self, size: usize, align: usize, noscan: bool, drops: bool) -> (*mut u8, bool) {
        debug_assert!(!(noscan && drops), "only scan objects have headers");
        if noscan && size < TINY_SIZE && align <= 8 && TINY_ENABLED.load(Relaxed) {
            return self.alloc_tiny(size);
        }
        self.alloc_slot(size, align, noscan, drops)
    }

    /// [`alloc`](Self::alloc) for an object of `size` requested bytes
    /// whose span class the caller computed with [`span_class_for`] or
    /// [`typed_class`] (Go's `nextFreeFast` inline: the heap profile's
    /// countdown, then one bit scan of the span's allocation cache).
    ///
    /// # Safety
    ///
    /// As [`alloc`](Self::alloc); `spc` came from `span_class_for` or
    /// `typed_class`, for an object of `size` bytes.
    #[inline(always)]
    pub unsafe fn alloc_in(&self, spc: usize, size: usize, drops: bool) -> (*mut u8, bool) {
        if self.sample.due(size) {
            return self.alloc_in_sampled(spc, size, drops);
        }
        let s = self.spans[spc].get();
        if !s.is_null() {
            // SAFETY: a span this cache holds.
            let span = unsafe { &*s };
            let cache = span.alloc_cache.get();
            let bit = cache.trailing_zeros() as usize;
            let idx = span.freeindex.get() + bit;
            // The bit is in the cached word, the slot in the span, and not
            // the word's last (whose successor needs the cache refilled).
            if bit < 63 && idx < span.nelems.get() && (idx + 1) % 64 != 0 {
                span.alloc_cache.set(cache >> bit >> 1);
                span.freeindex.set(idx + 1);
                if drops {
                    span.has_drops.set(true);
                }
                self.slots.set(self.slots.get() + 1);
                return ((span.base.get() + idx * span.elemsize.get()) as *mut u8, false);
            }
        }
        self.alloc_in_span_class(spc, drops)
    }

    /// [`alloc_in`](Self::alloc_in) when the heap profile's countdown ran
    /// out: the allocation as usual, then its sample.
    #[cold]
    #[inline(never)]
    fn alloc_in_sampled(&self, spc: usize, size: usize, drops: bool) -> (*mut u8, bool) {
        let r = self.alloc_in_span_class(spc, drops);
        self.record_sample(r.0, size);
        r
    }

    /// Restarts the heap profile's countdown at the rate now set (after
    /// the rate changed).
    ///
    /// # Safety
    ///
    /// Only the cache's owner (inside its bracket or not: the collector
    /// never touches the countdown).
    pub unsafe fn restart_sampling(&self) {
        self.sample.restart();
    }

    fn alloc_slot(&self, size: usize, align: usize, noscan: bool, drops: bool) -> (*mut u8, bool) {
        let Some(class) = class_of(size, align) else {
            let p = self.heap.alloc_large(size, align, noscan, drops, false);
            if !p.is_null() {
                self.slots.set(self.slots.get() + 1);
            }
            return (p, true);
        };
        self.alloc_in_span_class(span_class(class, noscan), drops)
    }

    /// The slow path of [`alloc_in`](Self::alloc_in): the next free slot of
    /// the cache's span of `spc`, after a new span if it has none.
    #[inline(never)]
    fn alloc_in_span_class(&self, spc: usize, drops: bool) -> (*mut u8, bool) {
        let mut refilled = false;
        loop {
            let s = self.spans[spc].get();
            if !s.is_null() {
                // SAFETY: a span this cache holds.
                let span = unsafe { &*s };
                let idx = span.next_free_index();
                if idx < span.nelems.get() {
                    if drops {
                        span.has_drops.set(true);
                    }
                    self.slots.set(self.slots.get() + 1);
                    return ((span.base.get() + idx * span.elemsize.get()) as *mut u8, refilled);
                }
                self.spans[spc].set(ptr::null_mut());
                // SAFETY: the span this cache held; we give it up.
                unsafe { self.heap.uncache_span(spc, s) };
            }
            let s = self.heap.cache_span(spc);
            if s.is_null() {
                return (ptr::null_mut(), true);
            }
            self.spans[spc].set(s);
            refilled = true;
        }
    }

    /// Go's tiny allocator: `size` bytes (under 16) in the thread's shared
    /// 16-byte block, aligned to 8, 4 or 2 as the size is a multiple of.
    /// The block is an ordinary 16-byte noscan object: it lives while any
    /// of its objects is reachable (marking resolves each to the block).
    fn alloc_tiny(&self, size: usize) -> (*mut u8, bool) {
        let align = if size % 8 == 0 {
            8
        } else if size % 4 == 0 {
            4
        } else if size % 2 == 0 {
            2
        } else {
            1
        };
        let off = self.tiny_off.get().next_multiple_of(align);
        let block = self.tiny.get();
        if !block.is_null() && off + size <= TINY_SIZE {
            self.tiny_off.set(off + size);
            self.tiny_objects.set(self.tiny_objects.get() + 1);
            return (block.wrapping_add(off), false);
        }
        let (b, refilled) = self.alloc_slot(TINY_SIZE, 8, true, false);
        if !b.is_null() {
            self.tiny.set(b);
            self.tiny_off.set(size);
            self.tiny_objects.set(self.tiny_objects.get() + 1);
        }
        (b, refilled)
    }

    /// Slots handed out (objects of their own, tiny blocks, large objects)
    /// and objects placed in tiny blocks, since the cache was made.
    ///
    /// # Safety
    ///
    /// The owner, or the collector with the owner stopped.
    pub unsafe fn counts(&self) -> (u64, u64) {
        (self.slots.get(), self.tiny_objects.get())
    }

    /// Gives every span back to the collected heap's lists and forgets the
    /// tiny block (at thread exit, and by the collector before marking).
    ///
    /// # Safety
    ///
    /// The owner, or the collector with the owner stopped.
    pub unsafe fn flush(&self) {
        for (spc, slot) in self.spans.iter().enumerate() {
            let s = slot.replace(ptr::null_mut());
            if !s.is_null() {
                // SAFETY: a span this cache held.
                unsafe { self.heap.uncache_span(spc, s) };
            }
        }
        self.tiny.set(ptr::null_mut());
        self.tiny_off.set(0);
    }
}
