//! Heap profiling: which code allocated the bytes the program holds, by
//! Go's sampling (`runtime.MemProfileRate`, `mprof.go`), written in pprof's
//! format.
//!
//! # Sampling
//!
//! Every thread cache, and every cache of the collected heap
//! (`gcheap::GcCache`, one per thread using `Gc`), counts down the bytes
//! to its next sample (a [`Countdown`]): each allocation subtracts its
//! requested size (a tiny `Gc` object's own size, not its block's), a
//! subtraction and a branch on the fast path. When the count goes
//! below zero, the allocation is sampled and the next distance is drawn
//! from an exponential distribution with mean [`profile_rate`] bytes, as
//! Go draws `nextSample`, so every byte has the same chance 1/rate of
//! being the one that triggers a sample and a block of `n` bytes is
//! sampled with probability `1 - exp(-n/rate)`. Rate 1 samples every
//! allocation; rate 0 (the default) samples none: the count is then
//! reset to [`OFF_DISTANCE`], so each thread looks at the rate again
//! every mebibyte, and a rate set while threads run reaches them within
//! that much allocation (the thread setting it at once: its thread cache
//! directly, its collected-heap cache through the collector's hook,
//! [`set_rate_hook`]). One rate, one table of buckets: a profile covers
//! malloc's objects and the collected heap's.
//!
//! # What a sample records
//!
//! The call stack, up to [`table::MAX_DEPTH`] frames, walked by the DWARF
//! call frame information of `.eh_frame`, which x86-64 and aarch64
//! compilers emit by default even with `-fomit-frame-pointer`, so programs
//! built without frame pointers get whole stacks; a frame without unwind
//! information ends the stack there. On x86-64 Linux each return
//! address's rule is decoded once and cached ([`unwind`]); elsewhere, and
//! for frames the cache cannot follow, libgcc's `_Unwind_Backtrace` walks.
//! Neither allocates with glibc 2.35 and later (`_dl_find_object`); where
//! one does (older libgcc registering frames, the first look-up of
//! `_dl_find_object` by name), the allocation goes through goheap
//! unsampled (the [`Countdown`]'s recursion flag blocks it). A freed
//! sampled slot keeps its pages for the next sample (up to
//! [`table::DIRTY_FREE_LIMIT`] of them), as releasing each one at its free
//! interrupted every CPU the process ran on. The stack and the size select a bucket
//! ([`table`]); buckets count allocations and frees.
//!
//! # Telling a sampled object at its free
//!
//! A Rust `dealloc` knows the size class from the layout and never looks
//! at the object's page, so a sampled object must be recognisable from
//! its address alone:
//!
//! - a sampled small object (≤ 32 KiB) is placed in a slot of its own in
//!   the sampled region ([`table`]), a reservation whose addresses all
//!   have bit [`SAMPLED_ADDR_BIT`] set, which no arena of the page heap has
//!   (`Heap::grow` refuses such address space). `dealloc` tests that bit
//!   (one instruction and a branch); C `free` does not even do that: the
//!   arena map knows no such address, and the large-object path asks the
//!   region before reporting an invalid free;
//! - a sampled large object is a large span as usual, with the bucket in
//!   `Span::sample`, read by the large free path that reads the span
//!   anyway.
//!
//! The collected heap's objects are never freed by the program: the
//! sweeper finds them dead, so nothing needs to tell them by address, and
//! a sampled `Gc` object stays in its slot (Go's way: a profile "special"
//! on the object's span, which the sweeper frees with the object and
//! counts with `mProf_Free`):
//!
//! - a sampled small one is entered in [`gcmap`], an address-keyed map
//!   (its own `mmap`, open addressing) from its slot to its bucket, and
//!   its span counts such entries (`Span::gc_samples`). Sweeping a span
//!   whose count is 0 costs one load; otherwise, before the mark bits
//!   become the allocation bits, [`free_gc_dead`] removes the entries of
//!   every dead slot (allocated, not marked) and counts their frees. A
//!   tiny block is one slot: the tiny objects sampled in it are freed when
//!   the block dies, as in Go;
//! - a sampled large one keeps its bucket in `Span::sample` as malloc's
//!   do, and [`free_large`] counts its free when the collector gives the
//!   span back (at the end of the mark, or after its `Drop` ran).
//!
//! # Writing
//!
//! [`pprof`] writes a gzipped `profile.proto` with Go's four heap sample
//! types, the executable mappings of `/proc/self/maps` and unsymbolized
//! locations (`goheap profile` and `go tool pprof` symbolize them from the
//! binaries), without allocating: all its memory comes from `mmap`. It
//! runs from [`write_heap_profile`], at exit (`GOHEAP_HEAP_PROFILE`), and
//! from the writer thread on an interval or a signal ([`writer`]).
//!
//! # Locks
//!
//! [`table::TABLE`] (the buckets and the region's slots) is a leaf lock,
//! taken on sampled allocations and frees only; it is taken and released
//! with no other goheap lock held, and no allocation happens under it.
//! [`gcmap`]'s lock is a leaf too: taken by a thread sampling a `Gc`
//! object (no other lock held) and by the sweeper, which may hold a span
//! class's lock of the collected heap (class lock, then map lock: never
//! the other way, since nothing under the map lock takes a lock or
//! allocates; the frees it counts are atomic increments). The two profile
//! locks are never held together. Both are taken by `fork`'s prefork
//! handler, last.

pub(crate) mod countdown;
pub(crate) mod gcmap;
pub(crate) mod pprof;
pub(crate) mod table;
mod unwind;
pub(crate) mod writer;

use crate::cache::ThreadCache;
use crate::sizeclass;
use crate::span::{Span, SpanState};
use crate::sync::atomic::{AtomicPtr, Ordering::Relaxed};

pub(crate) use crate::arena::SAMPLED_ADDR_BIT;
pub(crate) use countdown::{profile_rate, Countdown};

/// Go's default `MemProfileRate`: one sample per 512 KiB on average.
pub const DEFAULT_RATE: usize = 512 * 1024;


/// Sets the profile rate (0 turns sampling off, 1 samples every
/// allocation); returns the previous one. Objects sampled before stay
/// in the profile until freed. The calling thread's next allocation
/// already uses the new rate; other threads pick it up within
/// [`OFF_DISTANCE`] bytes of allocation (or their next sample).
pub(crate) fn set_rate(rate: usize, own: Option<&ThreadCache>) -> usize {
    let rate = if cfg!(miri) { 0 } else { rate };
    let old = countdown::swap_rate(rate);
    if let Some(c) = own {
        c.sample.restart();
    }
    old
}

/// Called by `goheap::set_profile_rate` on the calling thread after the
/// rate changed:
/// the collector's hook restarting that thread's collected-heap countdown
/// (goheap does not know the collector's per-thread state). A `fn()`, or
/// null.
static RATE_HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Sets [`RATE_HOOK`].
pub(crate) fn set_rate_hook(f: fn()) {
    RATE_HOOK.store(f as *mut (), Relaxed);
}

/// Runs [`RATE_HOOK`], if set: from the public `set_profile_rate` only
/// (never inside the allocator, at set-up or on the writer thread).
pub(crate) fn run_rate_hook() {
    let hook = RATE_HOOK.load(Relaxed);
    if !hook.is_null() {
        // SAFETY: only `set_rate_hook` stores here, and it stores a `fn()`.
        let f = unsafe { core::mem::transmute::<*mut (), fn()>(hook) };
        f();
    }
}

/// Whether `p` lies in the sampled region (no page heap address does).
#[inline(always)]
pub(crate) fn is_sampled_addr(p: *const u8) -> bool {
    p as usize & SAMPLED_ADDR_BIT != 0
}


/// Called when `c`'s countdown ran out on a small allocation of `size`
/// bytes of `class`: draws the next distance and, if profiling is on,
/// records the stack and returns the object from the sampled region
/// (its first `size` bytes zero if `zeroed`). Null means "allocate as usual": profiling is off, the
/// thread is already recording a sample, or the region or the table is
/// full.
#[cold]
#[inline(never)]
pub(crate) fn sample_small(c: &ThreadCache, class: usize, size: usize, zeroed: bool) -> *mut u8 {
    if c.sample.begin().is_none() {
        return core::ptr::null_mut();
    }
    let mut stack = [0usize; table::MAX_DEPTH];
    let depth = unwind::capture(&mut stack);
    let p = table::alloc_small(&stack[..depth], size, class, zeroed);
    c.sample.end();
    p
}

/// Called when `c`'s countdown ran out on large span `span` of `size`
/// requested bytes: draws the next distance and, if profiling is on,
/// records the stack and marks the span as sampled.
#[cold]
#[inline(never)]
pub(crate) fn sample_large(c: &ThreadCache, span: &Span, size: usize) {
    if c.sample.begin().is_none() {
        return;
    }
    let mut stack = [0usize; table::MAX_DEPTH];
    let depth = unwind::capture(&mut stack);
    if let Some(b) = table::record_alloc(&stack[..depth], size) {
        span.sample.set(b + 1);
    }
    c.sample.end();
}

/// A sampled large span is being freed: counts the free in its bucket.
#[cold]
#[inline(never)]
pub(crate) fn free_large(span: &Span) {
    let b = span.sample.replace(0);
    if b != 0 {
        table::record_free(b - 1);
    }
}

/// Called when countdown `c` of a cache of the collected heap ran out on
/// its object at `p` (`size` requested bytes) of span `span` (small or
/// large, of the collected heap): draws the next distance and, if
/// profiling is on, records the stack. The object stays where it is: a
/// large one's bucket goes in `Span::sample` (freed by [`free_large`] when
/// the collector frees the span), a small one's in [`gcmap`] under its
/// slot's address, the span counting it (`Span::gc_samples`), freed by
/// [`free_gc_dead`] when the sweeper finds the slot dead.
#[cold]
#[inline(never)]
pub(crate) fn sample_gc(c: &Countdown, span: &Span, p: *mut u8, size: usize) {
    if c.begin().is_none() {
        return;
    }
    // The stack walk may allocate through malloc (older libgcc registering
    // frames): those allocations must not be sampled either (a walk inside
    // the walk), so the thread cache's countdown is held too.
    // SAFETY: a non-null cache pointer is the thread's own live cache.
    let tc = unsafe { crate::tls::cache().as_ref() };
    let held = tc.map(|t| t.sample.sampling.replace(true));
    let mut stack = [0usize; table::MAX_DEPTH];
    let depth = unwind::capture(&mut stack);
    if let (Some(t), Some(h)) = (tc, held) {
        t.sample.sampling.set(h);
    }
    let stack = &stack[..depth];
    if span.state() == SpanState::GcLarge {
        if let Some(b) = table::record_alloc(stack, size) {
            span.sample.set(b + 1);
        }
    } else if !gcmap::reserve() {
        table::count_dropped();
    } else if let Some(b) = table::record_alloc(stack, size) {
        let (idx, _) = span.object_index(p as usize);
        let slot = span.base.get() + idx * span.elemsize.get();
        if gcmap::insert(slot, b) {
            span.gc_samples.fetch_add(1, Relaxed);
        } else {
            // No map: a sample that cannot be freed is none at all.
            table::record_free(b);
            table::count_dropped();
        }
    } else {
        gcmap::unreserve();
    }
    c.end();
}

/// Small span `span` of the collected heap, about to be swept, holds
/// sampled objects (`Span::gc_samples` is not 0): counts the free of
/// those in dead slots (allocated, not marked) and forgets them, before
/// the sweep makes the mark bits the allocation bits.
#[cold]
#[inline(never)]
pub(crate) fn free_gc_dead(span: &Span) {
    let left = span.gc_samples.load(Relaxed) as usize;
    let base = span.base.get();
    let size = span.elemsize.get();
    let words = span.nelems.get().div_ceil(64);
    let dead = (0..words).flat_map(|w| {
        let mut bits = span.bits[w].alloc.get() & !span.bits[w].freed.get();
        core::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            Some(base + (w * 64 + i) * size)
        })
    });
    let freed = gcmap::free_dead(dead, left);
    span.gc_samples.fetch_sub(freed as u32, Relaxed);
}

/// Frees `p` if it is a live object of the sampled region; false if the
/// region never handed it out (the caller reports or ignores the free).
///
/// # Safety
///
/// If `p` is a live sampled object, the caller gives it up.
#[cold]
#[inline(never)]
pub(crate) unsafe fn free_small(p: *mut u8) -> bool {
    // SAFETY: forwarded contract.
    unsafe { table::free_small(p) }
}

/// The size class of live sampled object `p`, or `None` if `p` is not
/// one (its usable size is the class size, as for any small object).
pub(crate) fn sampled_class(p: *const u8) -> Option<usize> {
    table::small_class(p)
}

/// The usable size of live sampled object `p`, if it is one.
pub(crate) fn sampled_usable_size(p: *const u8) -> Option<usize> {
    sampled_class(p).map(sizeclass::class_size)
}
