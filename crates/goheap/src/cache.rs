//! Per-thread caches (Go's mcache, per thread instead of per P).
//!
//! See the crate docs for the overview.

use crate::freelist;
use crate::heap::Heap;
use crate::sizeclass::{self, NUM_SIZE_CLASSES};
use crate::span::Span;
use crate::profile::countdown::Countdown;
use crate::sync::atomic::Ordering::Relaxed;
use crate::sync::atomic::AtomicU64;
use crate::sync::handshake::Handshake;
use core::cell::Cell;
use core::ptr;

/// The cache's state for one size class. Only the owning thread touches
/// it (or a claimer the owner's handshake admits), except the two
/// counters, which others read for statistics.
#[repr(C)]
pub(crate) struct ClassCache {
    /// Objects freed to this thread, newest first (linked through their
    /// first word, see `freelist`): reused before anything else, while
    /// still hot.
    pub(crate) free: Cell<*mut u8>,
    /// How many more objects `free` takes before it reaches `max`: `max`
    /// minus its length. Kept instead of the length so that a free tests
    /// and updates one field (`room == 0`, then one decrement).
    room: Cell<u32>,
    /// When `free` reaches this length it goes to the central list's
    /// transfer cache (or half of it back into its spans).
    pub(crate) max: Cell<u32>,
    /// The span fresh slots come from (`EMPTY_SPAN` when none).
    pub(crate) span: Cell<*const Span>,
    /// Objects allocated / freed by this thread. Written only by the owner
    /// with plain load + store (no read-modify-write on the fast path);
    /// read by statistics readers.
    pub(crate) mallocs: AtomicU64,
    pub(crate) frees: AtomicU64,
}

impl ClassCache {
    /// Length of `free`.
    #[inline(always)]
    pub(crate) fn len(&self) -> u32 {
        self.max.get() - self.room.get()
    }

    /// Records that `free` now holds `len` objects (at most `max`).
    #[inline(always)]
    pub(crate) fn set_len(&self, len: u32) {
        debug_assert!(len <= self.max.get());
        self.room.set(self.max.get() - len);
    }

    /// Whether `free` is below `max`.
    #[inline(always)]
    pub(crate) fn has_room(&self) -> bool {
        self.room.get() != 0
    }

    /// Sets the flush bound (the list empty, or its length kept).
    pub(crate) fn set_max(&self, max: u32) {
        let len = self.len();
        self.max.set(max);
        self.set_len(len);
    }

    /// Takes the list's head off, `next` being its link (already read and
    /// checked): the one allocation step both fast paths share. Prefetches
    /// `next`, whose link the next pop loads: an object freed by another
    /// thread, or long ago, is not in this core's cache, and the line
    /// comes in while the caller uses the object it gets now (see
    /// docs/design.md, "Prefetching the next object").
    #[inline(always)]
    fn take_head(&self, next: *mut u8) {
        prefetch(next);
        self.free.set(next);
        self.room.set(self.room.get() + 1);
        bump(&self.mallocs);
    }

    /// Pushes `p` on the list (the caller checked there is room).
    ///
    /// # Safety
    ///
    /// `p` is an object of this class the caller gives up; `guard` is its
    /// cache's and `mark` the guard's marker.
    #[inline(always)]
    unsafe fn push(&self, guard: &freelist::Guard, p: *mut u8, mark: usize) {
        // SAFETY: `p` is an object we now own; `mark` is the guard's.
        unsafe { guard.push(p, self.free.get(), mark) };
        self.free.set(p);
        self.room.set(self.room.get() - 1);
        bump(&self.frees);
    }
}

/// Asks for the line at `p` to be brought into the cache (a hint; no-op
/// off x86-64). Any address, null included: a prefetch never faults.
#[inline(always)]
fn prefetch(p: *mut u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The layer above a cache (the malloc front-end), for what a cache's
/// allocation fast path cannot do itself: serve a thread that has no cache
/// (its pointer is the placeholder, see [`ThreadCache::placeholder`]), and
/// sample an allocation for the heap profile. The front-end knows the
/// threads' registry, the fallback cache and the profiler, which this
/// layer does not; the parameter binds them at compile time, so the slow
/// calls are direct.
pub(crate) trait AllocFront {
    /// An object of `class` for the calling thread, which has no cache;
    /// null when memory is exhausted.
    fn alloc_uncached(class: usize) -> *mut u8;

    /// An object of `class` for a request of `size` bytes whose turn came
    /// in `cache`'s profile countdown (drawn again by the callee), with
    /// `cache` outside any operation; null when memory is exhausted.
    fn alloc_sampled(cache: &ThreadCache, class: usize, size: usize) -> *mut u8;
}

/// [`AllocFront`] for the free fast path: a free by a thread that has no
/// cache.
pub(crate) trait FreeFront {
    /// Frees `p` for the calling thread, which has no cache.
    ///
    /// # Safety
    ///
    /// `p` is a live object of `class` that the caller gives up.
    unsafe fn free_uncached(p: *mut u8, class: usize);
}

/// Which case of a Rust [`ThreadCache::alloc_owned`] its one out-of-line
/// call finishes.
#[derive(Clone, Copy)]
enum AllocRest {
    /// The cache is claimed, or is the placeholder (not entered).
    Claimed,
    /// The profile's countdown ran out (entered).
    Sampled,
    /// The list is empty, or its head's link needs the exact check
    /// (entered).
    Refill,
}

/// A thread's cache.
///
/// Shared as `&ThreadCache` only: its owner mutates it through `Cell`s, a
/// claimer (the idle-cache reclaimer, the exact double-free check, the
/// heap checker) only after the owner's handshake admitted it, and
/// statistics readers touch only the atomics.
#[repr(C)]
pub(crate) struct ThreadCache {
    /// First, so that a class's entry is at the cache's address plus a
    /// multiple of its size: the fast paths reach it with one two-operand
    /// `lea` (x86-64 compilers split a three-operand one, which is slow on
    /// many cores, into two instructions).
    pub(crate) classes: [ClassCache; NUM_SIZE_CLASSES],
    /// Brackets every operation of the owner (see [`enter`]).
    pub(crate) handshake: Handshake,
    /// The free-list secrets, on the line after the handshake's (owner
    /// only).
    pub(crate) guard: freelist::Guard,
    /// Heap profiling (owner only, never claimed): the countdown to this
    /// thread's next sampled allocation (Go's `mcache.nextSample`).
    pub(crate) sample: Countdown,
    /// The heap this cache takes spans from and returns objects to (see
    /// [`heap`](Self::heap)); null only in the placeholder.
    heap: *const Heap,
    /// The reclaimer's bookkeeping (registry lock): activity seen at its
    /// last look, and activity when it last emptied the cache.
    pub(crate) seen_activity: AtomicU64,
    pub(crate) reclaimed_activity: AtomicU64,
    /// Registry links (under the registry lock).
    pub(crate) next: Cell<*mut ThreadCache>,
    pub(crate) prev: Cell<*mut ThreadCache>,
}

// SAFETY: a cache is used by one thread at a time: its owner, whoever
// holds the fallback's lock, or a claimer the owner's handshake admits;
// others read only its atomics. Its raw pointers are objects and spans it
// owns.
unsafe impl Send for ThreadCache {}
// SAFETY: as above.
unsafe impl Sync for ThreadCache {}

/// The span every class of a cache points at while it holds none: it has
/// no slots, so allocation through it always reaches the slow path. Never
/// written.
pub(crate) static EMPTY_SPAN: Span = Span::empty();

fn empty_span() -> *const Span {
    &EMPTY_SPAN
}

/// Bytes of fresh slots [`ThreadCache::carve`] puts on an empty list at
/// once: enough to make most allocations of small classes pops (21 slots
/// of 48 bytes, 4 of 256), few enough that a large class carves nothing and
/// the slots carved share a handful of cache lines the program is about
/// to use.
const CARVE_BYTES: usize = 1024;

/// Per-class flush bound a cache starts with: about 32 KiB of objects,
/// between 2 and 1024. The upper bound matters for classes below 32 bytes:
/// with 1024 instead of 256, trees of 16-byte boxes built and freed again
/// (`bintree`) take 0.88-0.94 of the CPU time, and `hashmap` (16-32-byte
/// keys) 1.03 (9 paired runs; 512 gave 0.975 and 1.024); tcmalloc lets a
/// list grow to 8192.
pub(crate) fn class_max(class: usize) -> u32 {
    (32768 / sizeclass::class_size(class)).clamp(2, 1024) as u32
}

/// What a class's bound grows to while the thread keeps allocating the
/// class ([`class_max`], but at least 8 objects): one object each time its
/// list and its span of the class have both run out, as TCMalloc's lists
/// grow on demand. A 16 KiB class held 2
/// objects, so a thread freeing and reallocating such blocks went to the
/// central list every other free; at 8, `rand16k` takes 0.65 of the time.
/// A thread that only frees them (a consumer of objects others allocate)
/// keeps 2: a fixed 8 made the producer/consumer stress test's RSS grow by
/// 18 MiB after warm-up instead of 7.
pub(crate) fn class_max_grown(class: usize) -> u32 {
    class_max(class).max(8)
}

impl ThreadCache {
    /// A cache over `heap` holding nothing, with every bound 0 (every free
    /// would take the slow path); [`set_bounds`] makes it usable.
    ///
    /// [`set_bounds`]: Self::set_bounds
    pub(crate) const fn empty(heap: &'static Heap) -> Self {
        Self::empty_over(heap)
    }

    const fn empty_over(heap: *const Heap) -> Self {
        ThreadCache {
            classes: [const {
                ClassCache {
                    free: Cell::new(ptr::null_mut()),
                    room: Cell::new(0),
                    max: Cell::new(0),
                    span: Cell::new(&EMPTY_SPAN),
                    mallocs: AtomicU64::new(0),
                    frees: AtomicU64::new(0),
                }
            }; NUM_SIZE_CLASSES],
            handshake: Handshake::new_fenced(),
            guard: freelist::Guard::new(),
            sample: Countdown::new(),
            heap,
            seen_activity: AtomicU64::new(0),
            reclaimed_activity: AtomicU64::new(u64::MAX),
            next: Cell::new(ptr::null_mut()),
            prev: Cell::new(ptr::null_mut()),
        }
    }

    /// The placeholder (`tls::PLACEHOLDER`): what the thread-cache pointer
    /// of a thread without a cache of its own points at, so that the fast
    /// paths need no null test. Its handshake never admits anyone
    /// ([`Handshake::placeholder`]), so every operation through it leaves
    /// the fast path at the claim test for the front-end's slow path
    /// ([`AllocFront`], [`FreeFront`]),
    /// before it reads or writes anything but the handshake's `busy` flag
    /// (an atomic, stored by every thread that tries) and the guard's
    /// marker (never written). It has no heap.
    pub(crate) const fn placeholder() -> Self {
        let mut c = Self::empty_over(ptr::null());
        c.handshake = Handshake::placeholder();
        c.guard = freelist::Guard::placeholder();
        c
    }

    /// Whether this is the placeholder.
    #[inline(always)]
    pub(crate) fn is_placeholder(&self) -> bool {
        self.handshake.is_placeholder()
    }

    /// The heap this cache takes spans from and returns objects to.
    #[inline(always)]
    pub(crate) fn heap(&self) -> &'static Heap {
        debug_assert!(!self.heap.is_null(), "the placeholder cache has no heap");
        // SAFETY: every cache but the placeholder is built over a `'static`
        // heap; the placeholder's operations never get past its handshake.
        unsafe { &*self.heap }
    }

    /// Sets each class's flush bound and copies the free-list secrets,
    /// making an empty cache usable.
    pub(crate) fn set_bounds(&self) {
        self.guard.refresh();
        for class in 1..NUM_SIZE_CLASSES {
            self.classes[class].set_max(class_max(class));
        }
    }

    /// Takes `size` bytes off the distance to the next heap-profile
    /// sample: whether this allocation is to be sampled (then
    /// `profile::sample_small` or `sample_large` draws the next distance).
    #[inline(always)]
    pub(crate) fn sample_due(&self, size: usize) -> bool {
        self.sample.due(size)
    }

    /// Allocates an object of `class`: the free list, then the cached
    /// span's fresh slots (Go's `nextFreeFast`), then the slow path.
    #[inline(always)]
    pub(crate) fn alloc(&self, class: usize) -> *mut u8 {
        self.alloc_inner(class).0
    }

    /// Allocates an object of `class` whose first `size` bytes are zero,
    /// clearing it only if it may hold old data: slots at or above the
    /// span's `fresh_mark` have not been used since the OS zeroed them.
    #[inline(always)]
    pub(crate) fn alloc_zeroed(&self, class: usize, size: usize) -> *mut u8 {
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
    fn alloc_inner(&self, class: usize) -> (*mut u8, bool) {
        debug_assert!(class > 0 && class < NUM_SIZE_CLASSES);
        // SAFETY: classes come from the size-class tables, all below
        // NUM_SIZE_CLASSES (skips a bounds check on the hottest path).
        let cc = unsafe { self.classes.get_unchecked(class) };
        let head = cc.free.get();
        if !head.is_null() {
            // SAFETY: objects on the free list hold the next link.
            cc.take_head(unsafe { self.guard.pop(head) });
            return (head, false);
        }
        self.alloc_fresh(class)
    }

    /// The second tier of the fast path: the next fresh slot of the cached
    /// span (Go's `nextFreeFast`), out of line so the inlined part of every
    /// allocation stays small.
    #[inline(never)]
    fn alloc_fresh(&self, class: usize) -> (*mut u8, bool) {
        // SAFETY: as in `alloc_inner`.
        let cc = unsafe { self.classes.get_unchecked(class) };
        // SAFETY: `span` is EMPTY_SPAN or a span this cache holds; spans
        // are never unmapped. EMPTY_SPAN's cache is 0, so it never takes
        // the branch below.
        let s = unsafe { &*cc.span.get() };
        let cache = s.alloc_cache.get();
        let bit = cache.trailing_zeros() as usize;
        if bit < 64 {
            let idx = s.freeindex.get() + bit;
            let next = idx + 1;
            if idx < s.nelems.get() && (next % 64 != 0 || next == s.nelems.get()) {
                let size = s.elemsize.get();
                let fresh = idx >= s.fresh_mark.get();
                // SAFETY: the list is empty (`alloc_inner` came here for
                // that) and `idx` is the slot being handed out.
                let last = unsafe { self.carve(cc, s, idx, (cache >> bit) >> 1) };
                bump(&cc.mallocs);
                s.note_handed_out(last);
                let p = (s.base.get() + idx * size) as *mut u8;
                // SAFETY: a slot of the span, at least 16 bytes where the
                // marker exists (checked builds have no 8-byte class).
                unsafe { freelist::clear_mark(p) };
                return (p, fresh);
            }
        }
        (self.alloc_slow(class), false)
    }

    /// Puts the free slots after `idx` in the span's current 64-slot window
    /// (`rest`: the window's bits from `idx + 1` on) on the class's empty
    /// list, lowest first, up to [`CARVE_BYTES`] of them and the list's
    /// room, and moves the span's scan past the last one taken (slot `idx`
    /// included). Returns the last slot taken out of the span (`idx` if
    /// none was carved), for the high-water mark.
    ///
    /// The next allocations of the class then pop them on the inline fast
    /// path, where each fresh slot alone costs a call to [`alloc_fresh`]
    /// and the bitmap scan (Python building a dict took 85 instructions
    /// per fresh object). The slot that would end the window is left to
    /// the slow path, which loads the next window.
    ///
    /// # Safety
    ///
    /// `cc` is this cache's entry for the class of `s`, the span it holds,
    /// and its list is empty; `idx` is the slot being handed out.
    ///
    /// [`alloc_fresh`]: Self::alloc_fresh
    unsafe fn carve(&self, cc: &ClassCache, s: &Span, idx: usize, rest: u64) -> usize {
        debug_assert!(cc.free.get().is_null());
        let size = s.elemsize.get();
        let window_end = (idx / 64 + 1) * 64;
        // Slots below this may be carved: inside the span, and not the
        // window's last (the slow path's to take).
        let end = s.nelems.get().min(window_end - 1);
        let want = (CARVE_BYTES / size).min(cc.room.get() as usize);
        // The common case, a fresh span or a free stretch of one: the next
        // `run` slots are all free, so they are linked in one pass without
        // scanning bits (about 7 instructions a slot instead of 20).
        let run = want.min(end.saturating_sub(idx + 1));
        if rest.trailing_ones() as usize >= run {
            // `run` is at most 62 (`end` is below the window's last slot),
            // so the shift is defined.
            s.alloc_cache.set(rest >> run);
            s.freeindex.set(idx + 1 + run);
            // SAFETY: slots `idx + 1 ..= idx + run` were free and are now
            // taken out of the span.
            unsafe { self.link_fresh(cc, s, idx, (1..run + 1).rev()) };
            return idx + run;
        }
        // Bit 0 of `cache` is slot `pos`, as the span's own `alloc_cache`
        // is its `freeindex`.
        let (mut cache, mut pos, mut last) = (rest, idx + 1, idx);
        let mut slots = [0u8; 64];
        let mut n = 0;
        while n < want && cache != 0 {
            let zeros = cache.trailing_zeros() as usize;
            let k = pos + zeros;
            if k >= end {
                break;
            }
            cache = (cache >> zeros) >> 1;
            pos = k + 1;
            slots[n] = (k - idx) as u8;
            n += 1;
            last = k;
        }
        s.alloc_cache.set(cache);
        s.freeindex.set(pos);
        // SAFETY: the slots at these offsets from `idx` were free and are
        // now taken out of the span.
        unsafe { self.link_fresh(cc, s, idx, slots[..n].iter().rev().map(|&off| off as usize)) };
        last
    }

    /// Puts the slots of `s` at `offsets` (in objects from slot `idx`,
    /// highest first) on `cc`'s empty list, lowest address at its head.
    ///
    /// # Safety
    ///
    /// As [`carve`](Self::carve); the slots are free ones just taken out
    /// of `s`, at most `cc`'s room of them.
    #[inline(always)]
    unsafe fn link_fresh(&self, cc: &ClassCache, s: &Span, idx: usize, offsets: impl ExactSizeIterator<Item = usize>) {
        let n = offsets.len();
        if n == 0 {
            return;
        }
        let size = s.elemsize.get();
        let (base, mark) = (s.base.get() + idx * size, self.guard.mark());
        let mut head = ptr::null_mut();
        for off in offsets {
            let obj = (base + off * size) as *mut u8;
            // SAFETY: a free slot of the span, taken out of it just now, so
            // ours to link; `mark` is the guard's.
            unsafe { self.guard.push(obj, head, mark) };
            head = obj;
        }
        cc.free.set(head);
        cc.set_len(n as u32);
    }

    /// The owner's whole allocation, handshake included ([`enter`] around
    /// [`alloc`](Self::alloc)), with the heap profile's countdown taken
    /// for a request of `size` bytes, shaped for the fast path: a pop from
    /// the free list inline, and every other case a call in tail position
    /// to a function that finishes the job, so the inlined code saves no
    /// registers. The placeholder (a thread without a cache) fails the
    /// claim test, before the countdown is touched, and `F` serves it.
    ///
    /// `C_ABI` (C's `malloc`) picks the shape:
    /// - C: a function per slow case (claimed or the placeholder; sampled;
    ///   list empty or a link to re-check), so each test is a branch that
    ///   keeps nothing for later, and a null return has set `errno` to
    ///   `ENOMEM` in the called function, so the call stays in tail
    ///   position;
    /// - Rust: one function for all, with the case as its argument: one
    ///   call site less keeps a sized allocation small enough for the
    ///   callers of `__rust_alloc` to inline it (with two, `churn` ran 21 %
    ///   more instructions, its allocations no longer inlined).
    ///
    /// # Safety
    ///
    /// `self` is the calling thread's own cache, or the placeholder.
    #[inline(always)]
    pub(crate) unsafe fn alloc_owned<const C_ABI: bool, F: AllocFront>(&self, class: usize, size: usize) -> *mut u8 {
        debug_assert!(class > 0 && class < NUM_SIZE_CLASSES);
        let entered = self.handshake.try_enter();
        if C_ABI && !entered {
            // SAFETY: forwarded contract.
            return unsafe { self.alloc_entering::<true, F>(class) };
        }
        let mut rest = AllocRest::Claimed;
        if entered {
            if self.sample.due(size) {
                if C_ABI {
                    return self.alloc_sampled::<true, F>(class, size);
                }
                rest = AllocRest::Sampled;
            } else {
                // SAFETY: as in `alloc_inner`.
                let cc = unsafe { self.classes.get_unchecked(class) };
                let head = cc.free.get();
                if !head.is_null() {
                    // SAFETY: objects on the free list hold the next link.
                    if let Some(next) = unsafe { self.guard.try_pop(head) } {
                        cc.take_head(next);
                        self.handshake.exit();
                        return head;
                    }
                }
                if C_ABI {
                    return self.alloc_entered::<true>(class);
                }
                rest = AllocRest::Refill;
            }
        }
        // SAFETY: forwarded contract.
        unsafe { self.alloc_owned_rest::<F>(class, size, rest) }
    }

    /// The rest of a Rust [`alloc_owned`](Self::alloc_owned).
    ///
    /// # Safety
    ///
    /// As [`alloc_owned`](Self::alloc_owned).
    #[inline(never)]
    unsafe fn alloc_owned_rest<F: AllocFront>(&self, class: usize, size: usize, rest: AllocRest) -> *mut u8 {
        match rest {
            AllocRest::Refill => self.alloc_entered::<false>(class),
            AllocRest::Sampled => self.alloc_sampled::<false, F>(class, size),
            // SAFETY: forwarded contract.
            AllocRest::Claimed => unsafe { self.alloc_entering::<false, F>(class) },
        }
    }

    /// [`alloc_owned`](Self::alloc_owned) for a claimed cache: waits for
    /// the claim, then allocates; or, for the placeholder, hands the
    /// allocation to `F`.
    ///
    /// # Safety
    ///
    /// As [`alloc_owned`](Self::alloc_owned).
    #[cold]
    #[inline(never)]
    unsafe fn alloc_entering<const SETS_ERRNO: bool, F: AllocFront>(&self, class: usize) -> *mut u8 {
        let p = if self.is_placeholder() {
            F::alloc_uncached(class)
        } else {
            // SAFETY: forwarded contract.
            unsafe { enter(self, |c| c.alloc(class)) }
        };
        if SETS_ERRNO && p.is_null() {
            crate::os::set_enomem();
        }
        p
    }

    /// [`alloc_owned`](Self::alloc_owned) once entered, when the profile's
    /// countdown ran out: out of the operation, then `F` decides.
    #[cold]
    #[inline(never)]
    fn alloc_sampled<const SETS_ERRNO: bool, F: AllocFront>(&self, class: usize, size: usize) -> *mut u8 {
        self.handshake.exit();
        let p = F::alloc_sampled(self, class, size);
        if SETS_ERRNO && p.is_null() {
            crate::os::set_enomem();
        }
        p
    }

    /// [`alloc_owned`](Self::alloc_owned) once entered, past the inline
    /// pop: the whole allocation, then the exit.
    #[inline(never)]
    fn alloc_entered<const SETS_ERRNO: bool>(&self, class: usize) -> *mut u8 {
        let p = self.alloc(class);
        self.handshake.exit();
        if SETS_ERRNO && p.is_null() {
            crate::os::set_enomem();
        }
        p
    }

    /// The owner's whole free, handshake included ([`enter`] around
    /// [`free`](Self::free)), shaped as [`alloc_owned`](Self::alloc_owned)
    /// for `C_ABI` (C's `free`) or not (Rust's `dealloc`).
    ///
    /// # Safety
    ///
    /// `self` is the calling thread's own cache, or the placeholder; `p`
    /// is a live object of `class` that the caller gives up; `mark` is
    /// `self.guard.mark()` (which a checked free has just read to test `p`).
    #[inline(always)]
    pub(crate) unsafe fn free_owned<const C_ABI: bool, F: FreeFront>(&self, p: *mut u8, class: usize, mark: usize) {
        debug_assert!(class > 0 && class < NUM_SIZE_CLASSES);
        let entered = self.handshake.try_enter();
        if C_ABI && !entered {
            // SAFETY: forwarded contract.
            return unsafe { self.free_entering::<F>(p, class) };
        }
        if entered {
            // SAFETY: as in `alloc_inner`.
            let cc = unsafe { self.classes.get_unchecked(class) };
            if cc.has_room() {
                // SAFETY: `p` is an object we now own.
                unsafe { cc.push(&self.guard, p, mark) };
                self.handshake.exit();
                return;
            }
        }
        if C_ABI {
            // SAFETY: forwarded contract.
            return unsafe { self.free_entered(p, class) };
        }
        // SAFETY: forwarded contract.
        unsafe { self.free_owned_rest::<F>(p, class, entered) }
    }

    /// The rest of a Rust [`free_owned`](Self::free_owned), as
    /// [`alloc_owned_rest`](Self::alloc_owned_rest).
    ///
    /// # Safety
    ///
    /// As [`free_owned`](Self::free_owned).
    #[inline(never)]
    unsafe fn free_owned_rest<F: FreeFront>(&self, p: *mut u8, class: usize, entered: bool) {
        if entered {
            // SAFETY: forwarded contract.
            unsafe { self.free_entered(p, class) }
        } else {
            // SAFETY: forwarded contract.
            unsafe { self.free_entering::<F>(p, class) }
        }
    }

    /// [`free_owned`](Self::free_owned) for a claimed cache: waits for the
    /// claim, then frees; or, for the placeholder, hands the free to `F`.
    ///
    /// # Safety
    ///
    /// As [`free_owned`](Self::free_owned).
    #[cold]
    #[inline(never)]
    unsafe fn free_entering<F: FreeFront>(&self, p: *mut u8, class: usize) {
        if self.is_placeholder() {
            // SAFETY: forwarded contract.
            return unsafe { F::free_uncached(p, class) };
        }
        // SAFETY: forwarded contract.
        unsafe { enter(self, |c| c.free(p, class)) }
    }

    /// # Safety
    ///
    /// As [`free_owned`](Self::free_owned), entered.
    #[inline(never)]
    unsafe fn free_entered(&self, p: *mut u8, class: usize) {
        // SAFETY: forwarded contract.
        unsafe { self.free_slow(p, class) };
        self.handshake.exit();
    }

    /// Frees `p`, an object of `class`, into this thread's list.
    ///
    /// # Safety
    ///
    /// `p` is a live object of size class `class` that the caller gives up.
    #[inline(always)]
    pub(crate) unsafe fn free(&self, p: *mut u8, class: usize) {
        debug_assert!(class > 0 && class < NUM_SIZE_CLASSES);
        // SAFETY: as in `alloc`.
        let cc = unsafe { self.classes.get_unchecked(class) };
        if !cc.has_room() {
            // SAFETY: forwarded contract.
            return unsafe { self.free_slow(p, class) };
        }
        // SAFETY: `p` is an object we now own.
        unsafe { cc.push(&self.guard, p, self.guard.mark()) };
    }

    #[cold]
    #[inline(never)]
    fn alloc_slow(&self, class: usize) -> *mut u8 {
        // The list and the span ran out: this thread allocates the class;
        // let its list keep one more (see `class_max_grown`).
        let cc = &self.classes[class];
        if cc.max.get() < class_max_grown(class) {
            cc.set_max(cc.max.get() + 1);
        }
        if let Some(p) = self.alloc_from_span(class) {
            return p;
        }
        // A batch another flush left in the transfer cache: one lock for a
        // whole list of objects, and likely still warm.
        if let Some((head, n)) = self.heap().centrals[class].take_batch() {
            let cc = &self.classes[class];
            cc.free.set(head);
            // A batch from a thread whose bound grew past ours: its length
            // becomes our bound (batches never exceed `class_max_grown`).
            if n > cc.max.get() {
                cc.set_max(n);
            }
            cc.set_len(n);
            return self.alloc_inner(class).0;
        }
        self.refill(class);
        self.alloc_from_span(class).unwrap_or(ptr::null_mut())
    }

    /// Go's slow path within the cached span: reload the bitmap window and
    /// find the next free slot.
    fn alloc_from_span(&self, class: usize) -> Option<*mut u8> {
        let cc = &self.classes[class];
        if cc.span.get() == empty_span() {
            return None;
        }
        // SAFETY: a span this cache holds: ours alone.
        let s = unsafe { &*cc.span.get() };
        let idx = s.next_free_index();
        if idx < s.nelems.get() {
            bump(&cc.mallocs);
            s.note_handed_out(idx);
            let p = (s.base.get() + idx * s.elemsize.get()) as *mut u8;
            // SAFETY: a slot of our span being handed out.
            unsafe { freelist::clear_mark(p) };
            return Some(p);
        }
        None
    }

    /// Gives the used-up span back and takes another (Go's `refill`).
    fn refill(&self, class: usize) {
        self.trim_for_limit();
        let central = &self.heap().centrals[class];
        let old = self.classes[class].span.replace(empty_span());
        if old != empty_span() {
            // SAFETY: `old` is the span this cache held; we give it up.
            unsafe { central.uncache_span(self.heap(), old as *mut Span) };
        }
        let mut s = central.cache_span(self.heap(), class);
        if s.is_null() {
            // Out of memory, or at the hard memory limit: give back what
            // this thread holds (its lists may empty whole spans, whose
            // pages can then be reused or released) and try once more.
            self.flush_all();
            s = central.cache_span(self.heap(), class);
        }
        if !s.is_null() {
            self.classes[class].span.set(s);
        }
    }

    /// Under memory-limit pressure (releasing free pages did not bring the
    /// heap under its limit): this cache and the central lists' transfer
    /// caches and spare spans go back to their spans and the page heap,
    /// where the next release (or reuse) finds them. Called by a refill.
    fn trim_for_limit(&self) {
        let limit = &self.heap().limit;
        if !limit.take_pressure() {
            return;
        }
        limit.trims.fetch_add(1, Relaxed);
        self.flush_all();
        for (class, c) in self.heap().centrals.iter().enumerate().skip(1) {
            c.drain_batches(self.heap(), class);
            c.drop_spare(self.heap());
        }
    }

    #[cold]
    #[inline(never)]
    unsafe fn free_slow(&self, p: *mut u8, class: usize) {
        // The whole list goes to the central list's transfer cache as one
        // batch (a constant-time hand-over, TCMalloc's transfer cache); when
        // that is full, half of it goes back into its spans, from the head:
        // the central walks those objects anyway, so cutting the list there
        // costs nothing.
        let cc = &self.classes[class];
        let central = &self.heap().centrals[class];
        if central.put_batch(cc.free.get(), cc.len()) {
            cc.free.set(ptr::null_mut());
            cc.set_len(0);
        } else {
            let nflush = cc.len() - cc.max.get() / 2;
            // SAFETY: the list holds `len >= nflush` well-linked objects, of
            // which we give up the first `nflush`.
            cc.free
                .set(unsafe { central.free_batch(self.heap(), class, cc.free.get(), nflush as usize) });
            cc.set_len(cc.len() - nflush);
        }
        // SAFETY: forwarded contract; now there is room.
        unsafe { self.free(p, class) };
    }

    /// Returns everything this cache holds to the central lists: at thread
    /// exit and when statistics or the scavenger ask for a flush.
    pub(crate) fn flush_all(&self) {
        for class in 1..NUM_SIZE_CLASSES {
            let cc = &self.classes[class];
            if cc.len() > 0 {
                let (head, n) = (cc.free.replace(ptr::null_mut()), cc.len());
                cc.set_len(0);
                // SAFETY: the cache's list is `n` well-linked objects.
                unsafe { self.heap().centrals[class].free_batch(self.heap(), class, head, n as usize) };
            }
            let s = cc.span.replace(empty_span());
            if s != empty_span() {
                // SAFETY: the span this cache held; we give it up.
                unsafe { self.heap().centrals[class].uncache_span(self.heap(), s as *mut Span) };
            }
        }
    }

    /// The objects this cache has handed out and taken back so far, over
    /// every class (wrapping): it stands still only while its owner
    /// neither allocates nor frees. Read by other threads (the idle-cache
    /// reclaimer, the scavenger's idle test); the counts are the owner's
    /// relaxed statistics, so a read may miss the latest few.
    pub(crate) fn object_activity(&self) -> u64 {
        self.classes.iter().fold(0u64, |sum, cc| {
            sum.wrapping_add(cc.mallocs.load(Relaxed))
                .wrapping_add(cc.frees.load(Relaxed))
        })
    }

    /// Where `p`, an object of `class`, sits in this cache if it is free
    /// here: on the class's free list, or among the fresh slots of the
    /// class's span. For the exact checks: only the owner, or a claimer
    /// holding the cache.
    pub(crate) fn holds_free(&self, p: *mut u8, class: usize) -> Option<&'static str> {
        let cc = &self.classes[class];
        let mut found = false;
        // SAFETY: the owner's list is well formed and frozen for us.
        unsafe {
            crate::central::for_each_in_list(cc.free.get(), cc.len() as usize, |q| {
                found |= q == p
            })
        };
        if found {
            return Some("on a thread cache's free list");
        }
        let s = cc.span.get();
        if s != empty_span() {
            // SAFETY: a span this cache holds.
            let span = unsafe { &*s };
            if (p as usize) >= span.base.get() && (p as usize) < span.limit() {
                let (idx, _) = span.object_index(p as usize);
                if span.is_unscanned_free(idx) {
                    return Some("a free slot of a thread cache's span");
                }
            }
        }
        None
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

/// Runs `f` on cache `c` as its owner, inside its handshake (see
/// `sync::handshake`): a claimer waits until `f` is done, and `f` waits
/// out a claimer that holds the cache. Plain stores, no lock.
///
/// # Safety
///
/// `c` is the calling thread's own cache, and `f` touches no other
/// thread's cache.
#[inline(always)]
pub(crate) unsafe fn enter<R>(c: &ThreadCache, f: impl FnOnce(&ThreadCache) -> R) -> R {
    c.handshake.enter();
    let r = f(c);
    c.handshake.exit();
    r
}

#[cfg(test)]
mod tests {
    //! A thread cache over a heap of its own (a mock OS underneath): the
    //! free lists, the fresh slots of its span, flushing, and what the
    //! checked build writes into freed objects. No thread-local or global
    //! state, so these also run under Miri.

    use super::*;
    use crate::os::mock::MockOs;
    use crate::sizeclass::class_nelems;

    fn heap() -> &'static Heap {
        Box::leak(Box::new(Heap::new(Box::leak(Box::new(MockOs::new())))))
    }

    fn cache(heap: &'static Heap) -> ThreadCache {
        let c = ThreadCache::empty(heap);
        c.set_bounds();
        c
    }

    #[test]
    fn freed_objects_come_back_newest_first() {
        let h = heap();
        let c = cache(h);
        let class = 5; // 48 bytes
        let a: Vec<*mut u8> = (0..10).map(|_| c.alloc(class)).collect();
        assert!(a.iter().all(|p| !p.is_null()));
        let mut sorted = a.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), a.len(), "an object handed out twice");
        // The list holds what an early allocation carved and the next
        // ones did not pop: fresh slots, in address order, after the ten.
        let carved = c.classes[class].len();
        assert!(carved > 0 && carved as usize <= CARVE_BYTES / 48);
        for &p in &a {
            // SAFETY: live objects of `class` we give up.
            unsafe { c.free(p, class) };
        }
        assert_eq!(c.classes[class].len(), carved + 10);
        for &p in a.iter().rev() {
            assert_eq!(c.alloc(class), p, "LIFO reuse");
        }
        assert_eq!(c.classes[class].len(), carved);
        let next = c.alloc(class);
        assert_eq!(next as usize, sorted[9] as usize + 48, "carved slots follow in address order");
        assert!(!sorted.contains(&next));
        // SAFETY: as below.
        unsafe { c.free(next, class) };
        for &p in &a {
            // SAFETY: as above.
            unsafe { c.free(p, class) };
        }
        c.flush_all();
        for (cl, central) in h.centrals.iter().enumerate().skip(1) {
            central.drain_batches(h, cl);
            central.drop_spare(h);
        }
        assert_eq!(h.locked.lock().inuse_pages, 0, "spans left in use");
    }

    /// Slots come back to a span with holes between the live ones, and the
    /// cache that takes the span again hands out exactly those, each once,
    /// whether carved as a stretch of free slots or picked out between
    /// live ones; the live ones are never handed out again.
    #[test]
    fn a_span_with_holes_hands_out_each_free_slot_once() {
        let h = heap();
        let (a, b) = (cache(h), cache(h));
        let class = 5; // 48 bytes, 170 a span
        let n = 2 * class_nelems(class);
        let objs: Vec<*mut u8> = (0..n).map(|_| a.alloc(class)).collect();
        assert!(objs.iter().all(|p| !p.is_null()));
        // Holes of every shape: single slots, and a stretch longer than
        // one carve (CARVE_BYTES / 48 = 21 slots).
        let freed: Vec<*mut u8> = objs
            .iter()
            .enumerate()
            .filter(|&(i, _)| i % 3 == 1 || (40..90).contains(&i) || i % 64 == 63)
            .map(|(_, &p)| p)
            .collect();
        for &p in &freed {
            // SAFETY: live objects of `class` we give up.
            unsafe { a.free(p, class) };
        }
        // What `a`'s list holds (the holes, and any slots it carved but
        // did not hand out) goes back into the spans, and the spans out of
        // `a`'s hands.
        let mut want = Vec::new();
        let cc = &a.classes[class];
        // SAFETY: `a`'s list, which nothing changes meanwhile.
        unsafe { crate::central::for_each_in_list(cc.free.get(), cc.len() as usize, |p| want.push(p)) };
        assert!(freed.iter().all(|p| want.contains(p)), "a hole missing from the list");
        a.flush_all();
        h.centrals[class].drain_batches(h, class);
        let mut again: Vec<*mut u8> = (0..want.len()).map(|_| b.alloc(class)).collect();
        again.sort();
        want.sort();
        assert_eq!(again, want, "the free slots, each once, and no live one");
    }

    /// A class's bound grows while the thread allocates it, and a batch
    /// from such a thread, longer than another thread's bound, raises that
    /// bound instead of overflowing its room (it did, in a forked child).
    #[test]
    fn bounds_grow_on_demand_and_take_longer_batches() {
        let h = heap();
        let (a, b) = (cache(h), cache(h));
        let class = (1..NUM_SIZE_CLASSES)
            .find(|&c| class_max(c) < class_max_grown(c))
            .expect("a class whose bound grows");
        let objs: Vec<*mut u8> = (0..4 * class_nelems(class) + 1).map(|_| a.alloc(class)).collect();
        assert!(objs.iter().all(|p| !p.is_null()));
        assert!(a.classes[class].max.get() > class_max(class), "the bound never grew");
        assert!(a.classes[class].max.get() <= class_max_grown(class));
        for &p in &objs {
            // SAFETY: live objects we give up.
            unsafe { a.free(p, class) };
        }
        assert!(h.centrals[class].lists.lock().nbatches > 0, "no batch to take");
        assert_eq!(b.classes[class].max.get(), class_max(class));
        let p = b.alloc(class);
        assert!(!p.is_null());
        let cc = &b.classes[class];
        assert!(cc.max.get() > class_max(class), "the longer batch did not raise the bound");
        assert!(cc.len() <= cc.max.get());
        // SAFETY: ours.
        unsafe { b.free(p, class) };
    }

    #[test]
    fn free_lists_overflow_to_the_transfer_cache_and_refill_from_it() {
        let h = heap();
        let c = cache(h);
        let class = 2; // 16 bytes: bound 1024
        let max = class_max(class) as usize;
        let objs: Vec<*mut u8> = (0..max + 1).map(|_| c.alloc(class)).collect();
        for &p in &objs {
            // SAFETY: live objects we give up.
            unsafe { c.free(p, class) };
        }
        // The list hit its bound: the whole list went to the transfer cache.
        assert_eq!(c.classes[class].len(), 1);
        assert_eq!(h.centrals[class].lists.lock().nbatches, 1);
        // Once the list and the span's fresh slots are used up, the next
        // refill takes the batch back whole.
        let mut again = Vec::new();
        while h.centrals[class].lists.lock().nbatches == 1 {
            again.push(c.alloc(class));
            assert!(again.len() <= 2 * class_nelems(class), "the batch never came back");
        }
        again.extend((0..max - 1).map(|_| c.alloc(class)));
        // Sorted, so the check is not quadratic (it runs under Miri).
        let mut came_back = again.clone();
        came_back.sort_unstable();
        for p in &objs {
            assert!(came_back.binary_search(p).is_ok(), "{p:p} did not come back");
        }
        for &p in &again {
            // SAFETY: as above.
            unsafe { c.free(p, class) };
        }
        c.flush_all();
    }

    #[test]
    fn a_span_is_used_up_then_replaced() {
        let h = heap();
        let c = cache(h);
        let class = 20; // 320 bytes, 25 per span
        let n = class_nelems(class);
        let first: Vec<*mut u8> = (0..n).map(|_| c.alloc(class)).collect();
        let s = c.classes[class].span.get();
        let next = c.alloc(class);
        assert_ne!(c.classes[class].span.get(), s, "a new span after {n} objects");
        // SAFETY: the old span is a valid span struct.
        let old = unsafe { &*s };
        assert!(!old.cached.get());
        assert_eq!(old.live(), n);
        for &p in first.iter().chain([&next]) {
            // SAFETY: live objects we give up.
            unsafe { c.free(p, class) };
        }
        c.flush_all();
    }

    #[test]
    fn freed_objects_hold_the_marker_and_allocated_ones_do_not() {
        if !crate::CHECKED {
            return;
        }
        let h = heap();
        let c = cache(h);
        let class = 4;
        let p = c.alloc(class);
        let q = c.alloc(class);
        // SAFETY: `p` and `q` are live 32-byte objects.
        unsafe {
            assert!(!freelist::is_marked(p));
            c.free(p, class);
            c.free(q, class);
            assert!(freelist::is_marked(p) && freelist::is_marked(q));
            assert_eq!(c.holds_free(p, class), Some("on a thread cache's free list"));
            // The link in `q` (the head) is encoded, not `p` itself.
            assert_ne!(q.cast::<*mut u8>().read(), p);
            assert_eq!(freelist::read_link(q), p);
        }
        assert_eq!(c.alloc(class), q);
        // SAFETY: `q` is live again.
        assert!(!unsafe { freelist::is_marked(q) });
        // A slot of the span never handed out is free there too.
        let s = c.classes[class].span.get();
        // SAFETY: the cache's span.
        let span = unsafe { &*s };
        let unused = (span.base.get() + (span.nelems.get() - 1) * span.elemsize.get()) as *mut u8;
        assert_eq!(c.holds_free(unused, class), Some("a free slot of a thread cache's span"));
        assert_eq!(c.holds_free(q, class), None);
        // SAFETY: live objects we give up.
        unsafe {
            c.free(q, class);
        }
        c.flush_all();
    }
}
