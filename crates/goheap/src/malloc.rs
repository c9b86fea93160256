//! The malloc front-end: size and alignment to a size class or to pages,
//! explicit free, realloc, zeroed allocation.
//!
//! See the crate docs for the overview.

use crate::cache::enter;
use crate::global::HEAP;
use crate::report::fatal;
use crate::sizeclass::{self, MAX_SMALL_SIZE, NUM_SIZE_CLASSES, PAGE_SIZE};
use crate::span::{Span, SpanState};
use crate::tls;
use core::ptr;

/// The largest request goheap accepts: beyond it, allocation returns null.
pub const MAX_ALLOC: usize = isize::MAX as usize - (1 << 26);

/// Size class for `size` bytes at alignment `align`, or `None` for a
/// page-level (large) allocation. A pure function of the layout, so a
/// sized free finds the same class its allocation used.
#[inline(always)]
pub(crate) fn class_for(size: usize, align: usize) -> Option<usize> {
    if align <= 16 {
        if size > MAX_SMALL_SIZE {
            return None;
        }
        let class = sizeclass::size_to_class(size);
        // Every class is 8-aligned; all but 8 and 24 bytes are 16-aligned,
        // and the class after each of those (16, 32) is. (C's malloc asks
        // for 16 for everything above 8 bytes, so this stays inline.)
        if align > 8 && sizeclass::class_size(class) % 16 != 0 {
            return Some(class + 1);
        }
        return Some(class);
    }
    aligned_class(size, align)
}

/// The smallest class whose objects are all `align`-aligned and hold
/// `size` bytes. Spans are page-aligned, so a class whose size is a
/// multiple of `align` (≤ one page) aligns every object.
#[inline(never)]
fn aligned_class(size: usize, align: usize) -> Option<usize> {
    if size > MAX_SMALL_SIZE || align > PAGE_SIZE {
        return None;
    }
    let mut class = sizeclass::size_to_class(size);
    while class < NUM_SIZE_CLASSES {
        if sizeclass::class_size(class) % align == 0 {
            return Some(class);
        }
        class += 1;
    }
    None
}

/// Allocates `size` bytes aligned to `align` (a power of two). Null when
/// memory is exhausted.
#[inline(always)]
pub(crate) fn alloc(size: usize, align: usize) -> *mut u8 {
    match class_for(size, align) {
        Some(class) => {
            let c = tls::cache();
            if c.is_null() {
                return tls::alloc_without_cache(class);
            }
            // SAFETY: the thread's own cache.
            unsafe { enter(c, |c| c.alloc(class)) }
        }
        None => alloc_large(size, align, false),
    }
}

/// Like [`alloc`], with the first `size` bytes zero.
#[inline(always)]
pub(crate) fn alloc_zeroed(size: usize, align: usize) -> *mut u8 {
    match class_for(size, align) {
        Some(class) => {
            let c = tls::cache();
            if c.is_null() {
                let p = tls::alloc_without_cache(class);
                if !p.is_null() {
                    // SAFETY: a new object of at least `size` bytes.
                    unsafe { ptr::write_bytes(p, 0, size) };
                }
                return p;
            }
            // SAFETY: the thread's own cache.
            unsafe { enter(c, |c| c.alloc_zeroed(class, size)) }
        }
        None => alloc_large(size, align, true),
    }
}

/// Frees `p`, allocated with this `size` and `align`.
///
/// # Safety
///
/// `p` is live and was allocated by goheap with this size and alignment.
#[inline(always)]
pub(crate) unsafe fn dealloc(p: *mut u8, size: usize, align: usize) {
    match class_for(size, align) {
        Some(class) => {
            #[cfg(any(debug_assertions, feature = "debug-checks"))]
            check_small_free(p, class);
            let c = tls::cache();
            if c.is_null() {
                // SAFETY: forwarded contract.
                return unsafe { tls::free_without_cache(p, class) };
            }
            // SAFETY: forwarded contract; the thread's own cache.
            unsafe { enter(c, |c| c.free(p, class)) }
        }
        // SAFETY: forwarded contract.
        None => unsafe { free_large(p) },
    }
}

/// Frees `p` knowing only its address (C `free`). Null is ignored. Aborts
/// with a report when `p` is not a live goheap object.
///
/// # Safety
///
/// `p` is null or was returned by goheap and is not used after this call.
pub(crate) unsafe fn free(p: *mut u8) {
    if p.is_null() {
        return;
    }
    // Small objects: class and span start from the arena's page bytes,
    // without touching the span struct.
    if let Some((class, span_base)) = HEAP.arenas.small_class_of(p as usize) {
        let off = p as usize - span_base;
        let size = sizeclass::class_size(class);
        if sizeclass::object_index(class, off) * size != off {
            fatal!("free of {p:p}: pointer into the middle of a {size}-byte object");
        }
        let c = tls::cache();
        if c.is_null() {
            // SAFETY: a live small object per the caller.
            return unsafe { tls::free_without_cache(p, class) };
        }
        // SAFETY: a live small object per the caller; the thread's own
        // cache.
        return unsafe {
            enter(c, |c| {
                // An immediate double free (`free(p); free(p)`) finds `p` at
                // the head of this thread's list: one load to catch the most
                // common case now; others are caught when the list is
                // flushed.
                if c.classes[class].free == p {
                    fatal!("free of {p:p}: double free of a {size}-byte object");
                }
                c.free(p, class)
            })
        };
    }
    let s = HEAP.arenas.span_of(p as usize);
    if s.is_null() {
        fatal!("free of {p:p}: not a pointer goheap allocated (invalid free)");
    }
    // SAFETY: spans in the arena map are valid structs (span structs are
    // never unmapped); the state says whether it is in use.
    match unsafe { (*s).state } {
        // SAFETY: forwarded contract.
        SpanState::Large => unsafe { free_large(p) },
        _ => fatal!("free of {p:p}: memory is not in use (double free?)"),
    }
}

/// Whether `p` lies in memory goheap handed out (an in-use span, small or
/// large). Never aborts; null and foreign pointers give `false`. Used by
/// the C front-end to tell pointers from another allocator apart.
pub(crate) fn owns(p: *const u8) -> bool {
    !HEAP.arenas.span_of(p as usize).is_null()
}

/// Bytes usable at `p` (at least what was asked for).
///
/// # Safety
///
/// `p` is a live goheap object.
pub(crate) unsafe fn usable_size(p: *const u8) -> usize {
    let s = HEAP.arenas.span_of(p as usize);
    if s.is_null() {
        fatal!("usable size of {p:p}: not a pointer goheap allocated");
    }
    // SAFETY: see `free`.
    let span = unsafe { &*s };
    match span.state {
        SpanState::Small => span.elemsize,
        SpanState::Large => span.limit() - p as usize,
        SpanState::Free => fatal!("usable size of {p:p}: memory is not in use"),
    }
}

/// Resizes `p` from `old_size` to `new_size` at `align`, in place when the
/// size class does not change or a large object can grow into free pages.
///
/// # Safety
///
/// `p` is live, allocated with `old_size` and `align`.
pub(crate) unsafe fn realloc(
    p: *mut u8,
    old_size: usize,
    align: usize,
    new_size: usize,
) -> *mut u8 {
    let old_class = class_for(old_size, align);
    let new_class = class_for(new_size, align);
    match (old_class, new_class) {
        (Some(a), Some(b)) if a == b => return p,
        (None, None) => {
            // SAFETY: forwarded contract.
            if let Some(q) = unsafe { realloc_large_in_place(p, new_size) } {
                return q;
            }
        }
        _ => {}
    }
    let q = alloc(new_size, align);
    if !q.is_null() {
        // SAFETY: both blocks are live and distinct; copy what both hold.
        unsafe {
            ptr::copy_nonoverlapping(p, q, old_size.min(new_size));
            dealloc(p, old_size, align);
        }
    }
    q
}

/// Resizes `p` knowing only its address (C `realloc`): the span says
/// what it is.
///
/// # Safety
///
/// `p` is a live goheap object, allocated with alignment `align` or less.
pub(crate) unsafe fn realloc_unsized(p: *mut u8, align: usize, new_size: usize) -> *mut u8 {
    let s = HEAP.arenas.span_of(p as usize);
    if s.is_null() {
        fatal!("realloc of {p:p}: not a pointer goheap allocated (invalid realloc)");
    }
    // SAFETY: span structs are never unmapped; read-only fields.
    let (state, class, elemsize, base) =
        unsafe { ((*s).state, (*s).class as usize, (*s).elemsize, (*s).base) };
    let old_size = match state {
        SpanState::Small => {
            if class_for(new_size, align) == Some(class) {
                return p;
            }
            elemsize
        }
        SpanState::Large => {
            if base != p as usize {
                fatal!("realloc of {p:p}: pointer into the middle of a large object");
            }
            // In place only if `p` meets the alignment asked for now, which
            // may be stricter than the one it was allocated with.
            if class_for(new_size, align).is_none() && p as usize % align == 0 {
                // SAFETY: a live large object per the caller.
                if let Some(q) = unsafe { realloc_large_in_place(p, new_size) } {
                    return q;
                }
            }
            elemsize
        }
        SpanState::Free => fatal!("realloc of {p:p}: memory is not in use (freed already?)"),
    };
    let q = alloc(new_size, align);
    if !q.is_null() {
        // SAFETY: both blocks are live and distinct; `old_size` bytes are
        // readable at `p`.
        unsafe {
            ptr::copy_nonoverlapping(p, q, old_size.min(new_size));
            free(p);
        }
    }
    q
}

/// Resizes large object `p` in place if possible.
///
/// # Safety
///
/// `p` is a live large object.
unsafe fn realloc_large_in_place(p: *mut u8, new_size: usize) -> Option<*mut u8> {
    let s = large_span(p);
    // SAFETY: `large_span` checked it.
    let span = unsafe { &*s };
    // At least one page, as in `alloc_large`: `raw::realloc(p, align, 0)`
    // must not shrink the span to nothing.
    let new_pages = new_size.max(1).div_ceil(PAGE_SIZE);
    if new_pages == span.npages {
        return Some(p);
    }
    if new_pages < span.npages {
        // Shrink only when it frees at least a quarter: avoids churn on
        // small oscillations.
        if new_pages * 4 <= span.npages * 3 {
            // SAFETY: our large span, `1 <= new_pages < npages`.
            unsafe { HEAP.shrink_large(s, new_pages) };
        }
        return Some(p);
    }
    // SAFETY: our large span.
    if unsafe { HEAP.grow_large_in_place(s, new_pages) } {
        return Some(p);
    }
    None
}

/// The large span starting at `p`, or a fatal report.
fn large_span(p: *mut u8) -> *mut Span {
    let s = HEAP.arenas.span_of(p as usize);
    // SAFETY: span structs are never unmapped.
    if s.is_null() || unsafe { (*s).state != SpanState::Large || (*s).base != p as usize } {
        fatal!("free of {p:p}: not the start of a live large object (invalid or double free)");
    }
    s
}

#[cold]
fn alloc_large(size: usize, align: usize, zero: bool) -> *mut u8 {
    if size > MAX_ALLOC || align > MAX_ALLOC / 2 {
        return ptr::null_mut();
    }
    if size >= HUGE_REQUEST && size > system_memory() {
        return ptr::null_mut();
    }
    let npages = size.max(1).div_ceil(PAGE_SIZE);
    let align_pages = align.div_ceil(PAGE_SIZE).max(1);
    let init = |s: &mut Span, needzero: bool| {
        s.class = 0;
        s.state = SpanState::Large;
        s.elemsize = npages * PAGE_SIZE;
        s.nelems = 1;
        s.needzero = needzero;
    };
    let mut s = HEAP.alloc_span(npages, align_pages, init);
    if s.is_null() {
        // Out of memory or at the hard limit: return this thread's cached
        // objects (emptied spans free their pages) and try once more.
        tls::flush_thread_cache();
        s = HEAP.alloc_span(npages, align_pages, init);
        if s.is_null() {
            return ptr::null_mut();
        }
    }
    // SAFETY: the span was just created for us.
    let span = unsafe { &*s };
    {
        let mut h = HEAP.locked.lock();
        h.large_mallocs += 1;
        h.large_alloc_bytes += span.elemsize as u64;
    }
    let p = span.base as *mut u8;
    if zero && span.needzero {
        // SAFETY: the span's pages are ours.
        unsafe { ptr::write_bytes(p, 0, size) };
    }
    p
}

/// Requests at least this large are checked against [`system_memory`].
const HUGE_REQUEST: usize = 1 << 32;

/// RAM plus swap, in bytes (usize::MAX if unknown). A request above it can
/// never be backed, and without this check it would still cost page-map
/// entries for every page (8 bytes per 8 KiB: a 16 TiB request writes
/// 16 GiB of metadata) before failing or succeeding in name only. Linux's
/// default overcommit heuristic refuses such mappings for the same reason.
fn system_memory() -> usize {
    // SAFETY: an all-zero `sysinfo` is a valid value to be overwritten.
    let mut info: libc::sysinfo = unsafe { core::mem::zeroed() };
    // SAFETY: `info` is a valid, writable `sysinfo`; no allocation.
    if unsafe { libc::sysinfo(&mut info) } != 0 {
        return usize::MAX;
    }
    let unit = (info.mem_unit as usize).max(1);
    (info.totalram as usize)
        .saturating_add(info.totalswap as usize)
        .saturating_mul(unit)
}

/// # Safety
///
/// `p` is a live large object.
#[cold]
unsafe fn free_large(p: *mut u8) {
    let s = large_span(p);
    {
        let mut h = HEAP.locked.lock();
        h.large_frees += 1;
        // SAFETY: `large_span` checked the span.
        h.large_free_bytes += unsafe { (*s).elemsize } as u64;
    }
    // SAFETY: a live large span, given up by the caller.
    unsafe { HEAP.free_span(s) };
}

/// Debug builds: checks that `p` is the start of a live object of `class`.
#[cfg(any(debug_assertions, feature = "debug-checks"))]
fn check_small_free(p: *mut u8, class: usize) {
    let s = HEAP.arenas.span_of(p as usize);
    if s.is_null() {
        fatal!("free of {p:p}: not a pointer goheap allocated (invalid free)");
    }
    // SAFETY: span structs are never unmapped; read-only fields.
    let span = unsafe { &*s };
    if span.state != SpanState::Small || span.class as usize != class {
        fatal!(
            "free of {p:p}: not a live {}-byte object (wrong size passed to dealloc, or invalid free)",
            sizeclass::class_size(class)
        );
    }
    if !span.object_index(p as usize).1 {
        fatal!(
            "free of {p:p}: pointer into the middle of a {}-byte object",
            span.elemsize
        );
    }
    // A double free while the first copy still sits in this thread's list.
    let c = tls::cache();
    // SAFETY: the calling thread's cache; read only.
    let mut q = if c.is_null() { ptr::null_mut() } else { unsafe { (*c).classes[class].free } };
    let mut n = 0;
    while !q.is_null() && n < 4096 {
        if q == p {
            fatal!(
                "free of {p:p}: double free of a {}-byte object",
                span.elemsize
            );
        }
        // SAFETY: list links are valid object pointers.
        q = unsafe { *(q as *mut *mut u8) };
        n += 1;
    }
    if HEAP.centrals[class].batches_contain(p) {
        fatal!("free of {p:p}: double free of a {}-byte object", span.elemsize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `class_for` picks, for every small size and every alignment up to a
    /// page, the smallest class that holds the size with every object
    /// aligned (spans are page-aligned, so "class size is a multiple of
    /// the alignment" is the rule).
    #[test]
    fn class_for_is_the_smallest_aligned_class() {
        for shift in 0..=13 {
            let align = 1usize << shift;
            for size in 0..=MAX_SMALL_SIZE {
                let want = (1..NUM_SIZE_CLASSES).find(|&c| {
                    let cs = sizeclass::class_size(c);
                    cs >= size && cs % align.max(8) == 0
                });
                assert_eq!(class_for(size, align), want, "size {size} align {align}");
            }
        }
        assert_eq!(class_for(MAX_SMALL_SIZE + 1, 8), None);
        assert_eq!(class_for(8, 16384), None);
    }
}
