//! Per-thread caches (Go's mcache, per thread instead of per P).
//!
//! See the crate docs for the overview.

use crate::global::HEAP;
use crate::sizeclass::{self, NUM_SIZE_CLASSES};
use crate::span::Span;
use crate::sync::atomic::{compiler_fence, AtomicBool, AtomicU64, Ordering};
use crate::sync::atomic::Ordering::Relaxed;
use core::ptr;

/// The cache's state for one size class. Only the owning thread touches
/// it, except the two counters, which others read for statistics.
#[repr(C)]
pub(crate) struct ClassCache {
    /// Objects freed to this thread, newest first (linked through their
    /// first word): reused before anything else, while still hot.
    pub(crate) free: *mut u8,
    /// Length of `free`.
    pub(crate) len: u32,
    /// When `free` reaches this length it goes to the central list's
    /// transfer cache (or half of it back into its spans).
    pub(crate) max: u32,
    /// The span fresh slots come from (`Span::EMPTY` when none).
    pub(crate) span: *mut Span,
    /// Objects allocated / freed by this thread. Written only by the owner
    /// with plain load + store (no read-modify-write on the fast path);
    /// read by statistics readers.
    pub(crate) mallocs: AtomicU64,
    pub(crate) frees: AtomicU64,
}

/// A thread's cache.
#[repr(C)]
pub(crate) struct ThreadCache {
    pub(crate) classes: [ClassCache; NUM_SIZE_CLASSES],
    /// The owner is inside an operation on this cache. Written by the
    /// owner with plain stores around each operation (see [`enter`]); read
    /// by a reclaimer after a `membarrier`, which orders the two sides.
    pub(crate) busy: AtomicBool,
    /// A reclaimer wants, or is emptying, this cache: the owner waits
    /// while it is set (see `tls::reclaim_idle_caches`).
    pub(crate) reclaim: AtomicBool,
    /// The reclaimer's bookkeeping (registry lock): activity seen at its
    /// last look, and activity when it last emptied the cache.
    pub(crate) seen_activity: AtomicU64,
    pub(crate) reclaimed_activity: AtomicU64,
    /// Registry links (under the registry lock).
    pub(crate) next: *mut ThreadCache,
    pub(crate) prev: *mut ThreadCache,
}

// SAFETY: a cache is used by one thread at a time (its owner, whoever holds
// the fallback's lock, or a reclaimer the owner's `enter` handshake admits);
// its raw pointers are objects and spans it owns.
unsafe impl Send for ThreadCache {}

/// The span every class of a cache points at while it holds none: it has
/// no slots, so allocation through it always reaches the slow path. Never
/// written.
pub(crate) static mut EMPTY_SPAN: Span = Span::EMPTY;

/// Per-class flush bound: about 32 KiB of objects, between 2 and 256.
pub(crate) fn class_max(class: usize) -> u32 {
    (32768 / sizeclass::class_size(class)).clamp(2, 256) as u32
}

impl ThreadCache {
    /// A cache holding nothing, with every bound 0 (every free would take
    /// the slow path); [`set_bounds`] makes it usable.
    ///
    /// [`set_bounds`]: Self::set_bounds
    pub(crate) const fn empty() -> Self {
        ThreadCache {
            classes: [const {
                ClassCache {
                    free: ptr::null_mut(),
                    len: 0,
                    max: 0,
                    span: &raw mut EMPTY_SPAN,
                    mallocs: AtomicU64::new(0),
                    frees: AtomicU64::new(0),
                }
            }; NUM_SIZE_CLASSES],
            busy: AtomicBool::new(false),
            reclaim: AtomicBool::new(false),
            seen_activity: AtomicU64::new(0),
            reclaimed_activity: AtomicU64::new(u64::MAX),
            next: ptr::null_mut(),
            prev: ptr::null_mut(),
        }
    }

    /// Sets each class's flush bound, making an empty cache usable.
    pub(crate) fn set_bounds(&mut self) {
        for class in 1..NUM_SIZE_CLASSES {
            self.classes[class].max = class_max(class);
        }
    }

    /// Allocates an object of `class`: the free list, then the cached
    /// span's fresh slots (Go's `nextFreeFast`), then the slow path.
    #[inline(always)]
    pub(crate) fn alloc(&mut self, class: usize) -> *mut u8 {
        self.alloc_inner(class).0
    }

    /// Allocates an object of `class` whose first `size` bytes are zero,
    /// clearing it only if it may hold old data: slots at or above the
    /// span's `fresh_mark` have not been used since the OS zeroed them.
    #[inline(always)]
    pub(crate) fn alloc_zeroed(&mut self, class: usize, size: usize) -> *mut u8 {
        let (p, fresh) = self.alloc_inner(class);
        if !fresh && !p.is_null() {
            // SAFETY: `p` is a new object of at least `size` bytes (a class
            // size, a multiple of 8, so rounding `size` up to 8 stays inside).
            unsafe { zero_object(p, size) };
        }
        p
    }

    /// The allocation itself; also says whether the object is known zero.
    #[inline(always)]
    fn alloc_inner(&mut self, class: usize) -> (*mut u8, bool) {
        debug_assert!(class > 0 && class < NUM_SIZE_CLASSES);
        // SAFETY: classes come from the size-class tables, all below
        // NUM_SIZE_CLASSES (skips a bounds check on the hottest path).
        let cc = unsafe { self.classes.get_unchecked_mut(class) };
        let head = cc.free;
        if !head.is_null() {
            // SAFETY: objects on the free list hold the next link in their
            // first word.
            cc.free = unsafe { *(head as *mut *mut u8) };
            cc.len -= 1;
            bump(&cc.mallocs);
            return (head, false);
        }
        self.alloc_fresh(class)
    }

    /// The second tier of the fast path: the next fresh slot of the cached
    /// span (Go's `nextFreeFast`), out of line so the inlined part of every
    /// allocation stays small.
    #[inline(never)]
    fn alloc_fresh(&mut self, class: usize) -> (*mut u8, bool) {
        // SAFETY: as in `alloc_inner`.
        let cc = unsafe { self.classes.get_unchecked_mut(class) };
        let s = cc.span;
        // SAFETY: `span` is EMPTY_SPAN or a span this cache holds. EMPTY_SPAN
        // is only read here: its cache is 0, so it never takes this branch.
        unsafe {
            let bit = (*s).alloc_cache.trailing_zeros() as usize;
            if bit < 64 {
                let idx = (*s).freeindex + bit;
                let next = idx + 1;
                if idx < (*s).nelems && (next % 64 != 0 || next == (*s).nelems) {
                    (*s).alloc_cache = ((*s).alloc_cache >> bit) >> 1;
                    (*s).freeindex = next;
                    bump(&cc.mallocs);
                    let p = ((*s).base + idx * (*s).elemsize) as *mut u8;
                    return (p, idx >= (*s).fresh_mark);
                }
            }
        }
        (self.alloc_slow(class), false)
    }

    /// Frees `p`, an object of `class`, into this thread's list.
    ///
    /// # Safety
    ///
    /// `p` is a live object of size class `class` that the caller gives up.
    #[inline(always)]
    pub(crate) unsafe fn free(&mut self, p: *mut u8, class: usize) {
        debug_assert!(class > 0 && class < NUM_SIZE_CLASSES);
        // SAFETY: as in `alloc`.
        let cc = unsafe { self.classes.get_unchecked_mut(class) };
        if cc.len >= cc.max {
            // SAFETY: forwarded contract.
            return unsafe { self.free_slow(p, class) };
        }
        // SAFETY: `p` is an object of at least 8 bytes that we now own.
        unsafe { *(p as *mut *mut u8) = cc.free };
        cc.free = p;
        cc.len += 1;
        bump(&cc.frees);
    }

    #[cold]
    #[inline(never)]
    fn alloc_slow(&mut self, class: usize) -> *mut u8 {
        if let Some(p) = self.alloc_from_span(class) {
            return p;
        }
        // A batch another flush left in the transfer cache: one lock for a
        // whole list of objects, and likely still warm.
        if let Some((head, n)) = HEAP.centrals[class].take_batch() {
            let cc = &mut self.classes[class];
            cc.free = head;
            cc.len = n;
            return self.alloc_inner(class).0;
        }
        self.refill(class);
        self.alloc_from_span(class).unwrap_or(ptr::null_mut())
    }

    /// Go's slow path within the cached span: reload the bitmap window and
    /// find the next free slot.
    fn alloc_from_span(&mut self, class: usize) -> Option<*mut u8> {
        let cc = &mut self.classes[class];
        if cc.span == &raw mut EMPTY_SPAN {
            return None;
        }
        // SAFETY: a span this cache holds: ours alone.
        let s = unsafe { &mut *cc.span };
        let idx = s.next_free_index();
        if idx < s.nelems {
            bump(&cc.mallocs);
            return Some((s.base + idx * s.elemsize) as *mut u8);
        }
        None
    }

    /// Gives the used-up span back and takes another (Go's `refill`).
    fn refill(&mut self, class: usize) {
        crate::scavenger::trim_for_limit(self);
        let central = &HEAP.centrals[class];
        let old = self.classes[class].span;
        if old != &raw mut EMPTY_SPAN {
            self.classes[class].span = &raw mut EMPTY_SPAN;
            // SAFETY: `old` is the span this cache held; we give it up.
            unsafe { central.uncache_span(&HEAP, old) };
        }
        let mut s = central.cache_span(&HEAP, class);
        if s.is_null() {
            // Out of memory, or at the hard memory limit: give back what
            // this thread holds (its lists may empty whole spans, whose
            // pages can then be reused or released) and try once more.
            self.flush_all();
            s = central.cache_span(&HEAP, class);
        }
        if !s.is_null() {
            self.classes[class].span = s;
        }
    }

    #[cold]
    #[inline(never)]
    unsafe fn free_slow(&mut self, p: *mut u8, class: usize) {
        // The whole list goes to the central list's transfer cache as one
        // batch (a constant-time hand-over, TCMalloc's transfer cache); when
        // that is full, half of it goes back into its spans, from the head:
        // the central walks those objects anyway, so cutting the list there
        // costs nothing.
        let cc = &mut self.classes[class];
        let central = &HEAP.centrals[class];
        if central.put_batch(cc.free, cc.len) {
            cc.free = ptr::null_mut();
            cc.len = 0;
        } else {
            let nflush = cc.len - cc.max / 2;
            // SAFETY: the list holds `len >= nflush` well-linked objects, of
            // which we give up the first `nflush`.
            cc.free = unsafe { central.free_batch(&HEAP, class, cc.free, nflush as usize) };
            cc.len -= nflush;
        }
        // SAFETY: forwarded contract; now there is room.
        unsafe { self.free(p, class) };
    }

    /// Returns everything this cache holds to the central lists: at thread
    /// exit and when statistics or the scavenger ask for a flush.
    pub(crate) fn flush_all(&mut self) {
        for class in 1..NUM_SIZE_CLASSES {
            let cc = &mut self.classes[class];
            if cc.len > 0 {
                let (head, n) = (cc.free, cc.len);
                cc.free = ptr::null_mut();
                cc.len = 0;
                // SAFETY: the cache's list is `n` well-linked objects.
                unsafe { HEAP.centrals[class].free_batch(&HEAP, class, head, n as usize) };
            }
            let s = cc.span;
            if s != &raw mut EMPTY_SPAN {
                cc.span = &raw mut EMPTY_SPAN;
                // SAFETY: the span this cache held; we give it up.
                unsafe { HEAP.centrals[class].uncache_span(&HEAP, s) };
            }
        }
    }
}

/// `counter += 1` by its owner: a plain load and store, not an atomic
/// read-modify-write, since no one else writes it.
#[inline(always)]
pub(crate) fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Relaxed) + 1, Relaxed);
}

/// Zeroes the first `size` bytes of a small object: inline stores for the
/// smallest sizes (LLVM turns `Box::new` of all-zero values into zeroed
/// allocations, so this is hot), `memset` beyond.
///
/// # Safety
///
/// `p` is 8-aligned with at least `size` rounded up to 8 writable bytes.
#[inline(always)]
unsafe fn zero_object(p: *mut u8, size: usize) {
    let w = p.cast::<u64>();
    // SAFETY: per the contract, the rounded-up size is writable.
    unsafe {
        if size <= 8 {
            w.write(0);
        } else if size <= 16 {
            w.write(0);
            w.add(1).write(0);
        } else if size <= 24 {
            // 17..=24 bytes may be a 24-byte object: exactly three words.
            w.write(0);
            w.add(1).write(0);
            w.add(2).write(0);
        } else if size <= 32 {
            w.write(0);
            w.add(1).write(0);
            w.add(2).write(0);
            w.add(3).write(0);
        } else {
            ptr::write_bytes(p, 0, size);
        }
    }
}

/// Runs `f` on cache `c` as its owner: marks the cache busy so a reclaimer
/// leaves it alone, and first waits out a reclaim in progress. The marks
/// are plain stores ordered only by compiler fences; the reclaimer's
/// `membarrier` supplies the hardware ordering (an asymmetric Dekker
/// handshake: either the owner sees `reclaim` and waits, or the reclaimer
/// sees `busy` and backs off).
///
/// # Safety
///
/// `c` is the calling thread's own (non-null) cache, and `f` touches no
/// other thread's cache.
#[inline(always)]
pub(crate) unsafe fn enter<R>(c: *mut ThreadCache, f: impl FnOnce(&mut ThreadCache) -> R) -> R {
    // SAFETY: per the contract `c` is ours; the flags are atomics.
    unsafe {
        (*c).busy.store(true, Relaxed);
        compiler_fence(Ordering::SeqCst);
        if (*c).reclaim.load(Relaxed) {
            wait_reclaim(c);
        }
        let r = f(&mut *c);
        compiler_fence(Ordering::SeqCst);
        (*c).busy.store(false, Relaxed);
        r
    }
}

/// Waits until a reclaimer is done with (or has backed off from) cache `c`.
///
/// # Safety
///
/// `c` is the calling thread's cache.
#[cold]
#[inline(never)]
unsafe fn wait_reclaim(c: *mut ThreadCache) {
    // SAFETY: the flag is an atomic; the Acquire load pairs with the
    // reclaimer's Release store, so its changes to the cache are visible.
    while unsafe { (*c).reclaim.load(Ordering::Acquire) } {
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }
}
