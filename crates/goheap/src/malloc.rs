//! The malloc front-end: size and alignment to a size class or to pages,
//! explicit free, realloc, zeroed allocation, over the process's heap.
//!
//! See the crate docs for the overview, and "What is checked" there for
//! the checks `free` makes.

use crate::arena::SmallPage;
use crate::cache::{enter, AllocFront, FreeFront, ThreadCache};
use crate::profile;
use crate::freelist;
use crate::global::{ensure_init, HEAP, THREADS};
use crate::report::fatal;
use crate::sizeclass::{self, MAX_SMALL_SIZE, PAGE_SIZE};
use crate::span::{Span, SpanState};
use crate::tls;
use crate::CHECKED;
use core::ptr;
use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

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
        // Checked builds have no 8-byte class: a freed object needs a
        // second word for its free marker.
        return Some(sizeclass::layout_class(size, align > 8, CHECKED));
    }
    aligned_class(size, align)
}

/// The smallest class whose objects are all `align`-aligned and hold
/// `size` bytes (one table load), or `None` beyond a page of alignment.
#[inline(never)]
fn aligned_class(size: usize, align: usize) -> Option<usize> {
    if size > MAX_SMALL_SIZE || align > PAGE_SIZE {
        return None;
    }
    let class = sizeclass::aligned_class(sizeclass::size_to_class(size), align.trailing_zeros());
    (class != 0).then_some(class)
}

/// Allocates `size` bytes aligned to `align` (a power of two). Null when
/// memory is exhausted.
#[inline(always)]
pub(crate) fn alloc(size: usize, align: usize) -> *mut u8 {
    match class_for(size, align) {
        Some(class) => alloc_small::<false>(class, size),
        None => alloc_large(size, align, false),
    }
}

/// An object of `class` (for a request of `size` bytes) from the calling
/// thread's cache, or from the heap profile's region when it is sampled.
/// With `SETS_ERRNO` (C's `malloc`), a null return has set `errno`.
#[inline(always)]
fn alloc_small<const SETS_ERRNO: bool>(class: usize, size: usize) -> *mut u8 {
    // SAFETY: the thread's own cache, or the placeholder.
    unsafe { tls::cache_or_placeholder().alloc_owned::<SETS_ERRNO, Malloc>(class, size) }
}

/// The malloc front-end's side of the caches' fast paths
/// ([`AllocFront`], [`FreeFront`]): a thread without a cache goes to the
/// threads' registry and the fallback cache, a sampled allocation to the
/// profiler.
struct Malloc;

impl AllocFront for Malloc {
    fn alloc_uncached(class: usize) -> *mut u8 {
        alloc_without_cache(class)
    }

    fn alloc_sampled(cache: &ThreadCache, class: usize, size: usize) -> *mut u8 {
        alloc_maybe_sampled(cache, class, size)
    }
}

impl FreeFront for Malloc {
    unsafe fn free_uncached(p: *mut u8, class: usize) {
        // SAFETY: forwarded contract.
        unsafe { free_without_cache(p, class) }
    }
}

/// The checked `free`'s [`FreeFront`]: its test of the free marker used
/// the placeholder's (which no object holds) when the thread has no cache,
/// so such a free tests the process's marker here. (`free_marked` frees
/// through [`Malloc`], which does not test it again.)
struct CheckedFree;

impl FreeFront for CheckedFree {
    unsafe fn free_uncached(p: *mut u8, class: usize) {
        // SAFETY: the checked free found `p` to start a slot of a small
        // span below its mark, so its second word is readable.
        if unsafe { freelist::is_marked(p) } {
            // SAFETY: forwarded contract.
            return unsafe { free_marked(p, class) };
        }
        // SAFETY: forwarded contract.
        unsafe { free_without_cache(p, class) }
    }
}

/// [`alloc_small`] when the profile's countdown ran out (the calling
/// thread's cache, outside any operation): the sampled object, or
/// (profiling off, or no room) an ordinary one.
#[cold]
#[inline(never)]
fn alloc_maybe_sampled(c: &ThreadCache, class: usize, size: usize) -> *mut u8 {
    let p = profile::sample_small(c, class, size, false);
    if !p.is_null() {
        return p;
    }
    // SAFETY: `c` is the calling thread's own cache.
    unsafe { enter(c, |c| c.alloc(class)) }
}

/// C's `malloc(size)`: [`alloc`] at C's alignment (16 above 8 bytes, else
/// 8), with the class from one table load. Null, with `errno` set to
/// `ENOMEM`, when memory is exhausted or `size` exceeds [`MAX_ALLOC`]: the
/// slow paths set it, so that every call out of the fast path is a tail
/// call and `malloc` saves no registers.
#[inline(always)]
pub(crate) fn malloc(size: usize) -> *mut u8 {
    if size > MAX_SMALL_SIZE {
        return malloc_large(size);
    }
    alloc_small::<true>(sizeclass::c_malloc_class(size, CHECKED), size)
}

/// [`malloc`] of a large object.
#[inline(never)]
fn malloc_large(size: usize) -> *mut u8 {
    let p = alloc_large(size, 16, false);
    if p.is_null() {
        crate::os::set_enomem();
    }
    p
}

/// Like [`alloc`], with the first `size` bytes zero.
#[inline(always)]
pub(crate) fn alloc_zeroed(size: usize, align: usize) -> *mut u8 {
    match class_for(size, align) {
        Some(class) => {
            // SAFETY: a non-null cache pointer is the thread's own live cache.
            match unsafe { tls::cache().as_ref() } {
                Some(c) => {
                    if c.sample_due(size) {
                        let p = profile::sample_small(c, class, size, true);
                        if !p.is_null() {
                            return p;
                        }
                    }
                    // SAFETY: as above.
                    unsafe { enter(c, |c| c.alloc_zeroed(class, size)) }
                }
                None => {
                    let p = alloc_without_cache(class);
                    if !p.is_null() {
                        // SAFETY: a new object of at least `size` bytes.
                        unsafe { ptr::write_bytes(p, 0, size) };
                    }
                    p
                }
            }
        }
        None => alloc_large(size, align, true),
    }
}

#[cold]
#[inline(never)]
fn alloc_without_cache(class: usize) -> *mut u8 {
    ensure_init();
    THREADS.alloc_without_cache(class)
}

/// Frees small object `p` of `class` into the calling thread's cache.
///
/// # Safety
///
/// `p` is a live object of `class` that the caller gives up.
#[inline(always)]
unsafe fn free_small(p: *mut u8, class: usize) {
    if profile::is_sampled_addr(p) {
        // SAFETY: forwarded contract.
        return unsafe { free_sampled(p) };
    }
    let c = tls::cache_or_placeholder();
    // SAFETY: forwarded contract; the thread's own cache, or the
    // placeholder.
    unsafe { c.free_owned::<false, Malloc>(p, class, c.guard.mark()) }
}

/// # Safety
///
/// As [`free_small`].
#[cold]
#[inline(never)]
unsafe fn free_without_cache(p: *mut u8, class: usize) {
    ensure_init();
    // SAFETY: forwarded contract.
    unsafe { THREADS.free_without_cache(p, class) }
}

/// Frees `p`, allocated with this `size` and `align`.
///
/// # Safety
///
/// `p` is live and was allocated by goheap with this size and alignment
/// (checked builds check it and abort with a report if not).
#[inline(always)]
pub(crate) unsafe fn dealloc(p: *mut u8, size: usize, align: usize) {
    match class_for(size, align) {
        // Checked builds find no small page for a sampled object's address
        // and ask the profile; unchecked ones test its bit in `free_small`.
        // SAFETY: the pointer is checked before it is used.
        Some(class) if CHECKED => unsafe { free_checked(p, Some(class)) },
        // SAFETY: forwarded contract.
        Some(class) => unsafe { free_small(p, class) },
        // SAFETY: forwarded contract.
        None => unsafe { free_large(p) },
    }
}

/// Frees sampled small object `p` (its address has the profile's bit).
///
/// # Safety
///
/// As [`dealloc`].
#[cold]
#[inline(never)]
unsafe fn free_sampled(p: *mut u8) {
    // SAFETY: forwarded contract.
    if !unsafe { profile::free_small(p) } {
        fatal!("free of {p:p}: not a pointer goheap allocated (invalid free)");
    }
}

/// Frees `p` knowing only its address (C `free`). Null is ignored. Aborts
/// with a report when `p` is not a live goheap object (see the crate docs
/// for what each build catches).
///
/// # Safety
///
/// `p` is null or was returned by goheap and is not used after this call.
///
/// Inline, so that the C library's `free` is this code and not a jump to it.
#[inline]
pub(crate) unsafe fn free(p: *mut u8) {
    if p.is_null() {
        return;
    }
    // SAFETY: forwarded contract.
    unsafe { free_checked(p, None) }
}

/// Frees `p`, allocated with `size` bytes at C's alignment (C23
/// `free_sized`). Null is ignored.
///
/// # Safety
///
/// As [`free`].
pub(crate) unsafe fn free_sized(p: *mut u8, size: usize) {
    if p.is_null() {
        return;
    }
    if size <= MAX_SMALL_SIZE {
        // The class C's malloc would have used, or (an over-aligned
        // allocation) a larger one: accept any class whose objects hold
        // `size` and that the object's own class is.
        if let Some(page) = HEAP.arenas.small_page(p as usize) {
            let class = page.class;
            if sizeclass::class_size(class) < size {
                fatal!(
                    "free_sized of {p:p} with size {size}: the object is {} bytes (wrong size)",
                    sizeclass::class_size(class)
                );
            }
            // SAFETY: forwarded contract.
            return unsafe { free_checked(p, Some(class)) };
        }
    }
    let s = HEAP.arenas.span_of(p as usize);
    // SAFETY: span structs are never unmapped.
    if let Some(span) = unsafe { s.as_ref() } {
        let too_big = match span.state() {
            SpanState::Large => size.div_ceil(PAGE_SIZE) > span.npages.get(),
            _ => size > span.elemsize.get(),
        };
        if too_big {
            fatal!(
                "free_sized of {p:p} with size {size}: the object is {} bytes (wrong size)",
                span.elemsize.get()
            );
        }
    }
    // SAFETY: forwarded contract.
    unsafe { free_checked(p, None) }
}

/// The checked free: `p` must be the start of a live object (of class
/// `want`, when the caller knows it).
///
/// # Safety
///
/// `p` is non-null; if it is a live goheap object, the caller gives it up.
#[inline(always)]
unsafe fn free_checked(p: *mut u8, want: Option<usize>) {
    // Small objects below their span's high-water mark: the class and the
    // distance to the mark from the arena's page record, without touching
    // the span struct. Anything else (a large object, an invalid pointer,
    // a slot never handed out) takes one tail call, so the fast path
    // saves no registers for it.
    let Some((class, to_mark)) = HEAP.arenas.small_below_mark(p as usize) else {
        // SAFETY: forwarded contract.
        return unsafe { free_not_below_mark(p, want) };
    };
    // SAFETY: page records hold classes of live small spans (written
    // from `Span::class` in `set_spans`), and marks within their span.
    // The mark is the span's base plus a multiple of the object size,
    // so `p` starts an object exactly when the distance is a multiple.
    if !unsafe { sizeclass::is_object_start_unchecked(class, to_mark) } {
        // SAFETY: forwarded contract.
        return unsafe { free_refused(p, want) };
    }
    if let Some(w) = want {
        if w != class {
            wrong_size(p, w, class);
        }
    }
    // The thread's cache, or the placeholder.
    let c = tls::cache_or_placeholder();
    if CHECKED {
        // The placeholder's marker is one no object holds (its slow path
        // tests the process's: `CheckedFree`).
        let mark = c.guard.mark();
        // SAFETY: `p` starts a slot of at least 16 bytes of an in-use
        // small span.
        if unsafe { freelist::has_mark(p, mark) } {
            // SAFETY: forwarded contract.
            return unsafe { free_marked(p, class) };
        }
        // SAFETY: a live small object of `class`, per the checks above;
        // the thread's own cache (or the placeholder) and its marker.
        return unsafe { c.free_owned::<true, CheckedFree>(p, class, mark) };
    }
    // An immediate double free (`free(p); free(p)`) finds `p` at the head
    // of this thread's list: one load catches the most common case in
    // unchecked builds too; others are caught when the list is flushed.
    // (The placeholder's lists are empty.)
    if c.classes[class].free.get() == p {
        fatal!(
            "free of {p:p}: double free of a {}-byte object",
            sizeclass::class_size(class)
        );
    }
    // SAFETY: forwarded contract.
    unsafe { free_small(p, class) }
}

/// A [`free_checked`] of a pointer at or past its span's high-water mark,
/// or not in a small-object span at all: reported as a slot never handed
/// out (or past the span's objects), or freed as a large object.
///
/// # Safety
///
/// As [`free_checked`].
#[inline(never)]
unsafe fn free_not_below_mark(p: *mut u8, want: Option<usize>) {
    if HEAP.arenas.small_page(p as usize).is_some() {
        // SAFETY: forwarded contract.
        return unsafe { free_refused(p, want) };
    }
    if want.is_some() {
        // SAFETY: forwarded contract.
        if profile::is_sampled_addr(p) && unsafe { profile::free_small(p) } {
            return;
        }
        if HEAP.arenas.span_of(p as usize).is_null() {
            fatal!("free of {p:p}: not a pointer goheap allocated (invalid free)");
        }
        fatal!("free of {p:p}: not a small object (wrong size passed to dealloc, or invalid free)");
    }
    // SAFETY: forwarded contract.
    unsafe { free_large(p) }
}

/// A small-object free that [`free_checked`]'s checks refused: reports
/// why and aborts. Should both checks pass on this second look (an invalid
/// free racing with the slot's first allocation), the free goes ahead as
/// if it had come later.
///
/// # Safety
///
/// As [`free_checked`].
#[cold]
#[inline(never)]
unsafe fn free_refused(p: *mut u8, want: Option<usize>) {
    if let Some(page) = HEAP.arenas.small_page(p as usize) {
        check_small_start(p, &page, "free");
    }
    // SAFETY: forwarded contract.
    unsafe { free_checked(p, want) }
}

/// Checks that `p`, at `page`, starts an object that was handed out
/// (checked builds know the high-water mark); aborts with a report naming
/// `what` (the call) if not.
fn check_small_start(p: *mut u8, page: &SmallPage, what: &str) {
    let size = sizeclass::class_size(page.class);
    if page.offset % size != 0 {
        fatal!("{what} of {p:p}: pointer into the middle of a {size}-byte object");
    }
    if page.offset >= page.hw_end {
        if CHECKED {
            fatal!("{what} of {p:p}: invalid pointer: this {size}-byte slot was never handed out");
        }
        fatal!("{what} of {p:p}: invalid pointer: past the last {size}-byte object of its span");
    }
}

#[cold]
#[inline(never)]
fn wrong_size(p: *mut u8, want: usize, class: usize) -> ! {
    fatal!(
        "free of {p:p}: the object is {} bytes, but dealloc was given a layout of the {}-byte class \
         (wrong layout passed to dealloc)",
        sizeclass::class_size(class),
        sizeclass::class_size(want)
    )
}

/// A free of `p` whose free marker is set: a second free, unless `p` is a
/// live object whose bytes happen to match. Decides exactly (see
/// [`find_free_copy`]), aborts on a double free, else frees `p`.
///
/// # Safety
///
/// As [`free_checked`], with `p` a slot of `class`.
#[cold]
#[inline(never)]
unsafe fn free_marked(p: *mut u8, class: usize) {
    if let Some(place) = find_free_copy(p, class) {
        fatal!(
            "free of {p:p}: double free of a {}-byte object (it is already free: {place})",
            sizeclass::class_size(class)
        );
    }
    // SAFETY: not free anywhere, so live; forwarded contract.
    unsafe { free_small(p, class) }
}

/// Where `p`, a slot of a small span of `class`, is free, or `None` if it
/// is live: every thread's cache (free list and fresh slots of its span),
/// the fallback cache, the class's transfer cache, and the span itself
/// (returned objects and free slots), looked at with everything held
/// still. Slow (it claims every thread's cache); only for frees whose free
/// marker is set. The caller is not inside an operation on its own cache.
pub(crate) fn find_free_copy(p: *mut u8, class: usize) -> Option<&'static str> {
    let own = tls::cache();
    THREADS.freeze_all(|registry, fallback| {
        for c in registry.live() {
            if let Some(place) = c.holds_free(p, class) {
                return Some(if ptr::eq(c, own) {
                    place_in("this thread's cache", place)
                } else {
                    place_in("another thread's cache", place)
                });
            }
        }
        if fallback.holds_free(p, class).is_some() {
            return Some("in the shared fallback cache");
        }
        let l = HEAP.centrals[class].lists.lock();
        let mut in_batch = false;
        for &(head, n) in &l.batches[..l.nbatches] {
            // SAFETY: batches are well-formed lists, frozen under the lock.
            unsafe { crate::central::for_each_in_list(head, n as usize, |q| in_batch |= q == p) };
        }
        if in_batch {
            return Some("in the central transfer cache");
        }
        let s = HEAP.arenas.span_of(p as usize);
        // SAFETY: span structs are never unmapped; the fields read are
        // under the central lock we hold (its cache owners are frozen).
        let span = unsafe { s.as_ref()? };
        let (idx, _) = span.object_index(p as usize);
        if span.freed_bit(idx) {
            return Some("returned to its span");
        }
        if !span.cached.get() && !span.alloc_bit(idx) {
            return Some("a free slot of its span");
        }
        None
    })
}

fn place_in(cache: &'static str, place: &'static str) -> &'static str {
    match (cache, place.starts_with("on")) {
        ("this thread's cache", true) => "on this thread's free list",
        ("this thread's cache", false) => "a fresh slot of this thread's span",
        (_, true) => "on another thread's free list",
        (_, false) => "a fresh slot of another thread's span",
    }
}

/// Whether `p` lies in memory goheap handed out (an in-use span, small or
/// large). Never aborts; null and foreign pointers give `false`. Used by
/// the C front-end to tell pointers from another allocator apart.
pub(crate) fn owns(p: *const u8) -> bool {
    !HEAP.arenas.span_of(p as usize).is_null()
        || (profile::is_sampled_addr(p) && profile::sampled_class(p).is_some())
}

/// Bytes usable at `p` (at least what was asked for).
///
/// # Safety
///
/// `p` is a live goheap object.
pub(crate) unsafe fn usable_size(p: *const u8) -> usize {
    let s = HEAP.arenas.span_of(p as usize);
    if s.is_null() {
        if let Some(size) = profile::sampled_usable_size(p) {
            return size;
        }
        fatal!("usable size of {p:p}: not a pointer goheap allocated");
    }
    // SAFETY: see `free`.
    let span = unsafe { &*s };
    match span.state() {
        SpanState::Small => span.elemsize.get(),
        SpanState::Large => span.limit() - p as usize,
        SpanState::Free => fatal!("usable size of {p:p}: memory is not in use"),
        SpanState::GcSmall | SpanState::GcLarge => {
            fatal!("usable size of {p:p}: an object of the collected heap, not malloc memory")
        }
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
    if let Some(class) = old_class {
        if profile::is_sampled_addr(p) {
            // SAFETY: forwarded contract.
            return unsafe { realloc_sampled(p, class, align, new_size) };
        }
    }
    match (old_class, new_class) {
        (Some(a), Some(b)) if a == b => {
            if CHECKED {
                // SAFETY: forwarded contract (checked here).
                unsafe { check_live_small(p, "realloc") };
            }
            return p;
        }
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

/// Checked builds: aborts with a report unless `p` is the start of a live
/// small object (the checks `free` makes, without freeing).
///
/// # Safety
///
/// `p` lies in a small span (else it is reported).
unsafe fn check_live_small(p: *mut u8, what: &str) {
    let Some(page) = HEAP.arenas.small_page(p as usize) else {
        fatal!("{what} of {p:p}: not a live small object");
    };
    check_small_start(p, &page, what);
    let size = sizeclass::class_size(page.class);
    // SAFETY: `p` starts a slot of an in-use small span.
    if unsafe { freelist::is_marked(p) } {
        if let Some(place) = find_free_copy(p, page.class) {
            fatal!("{what} of {p:p}: the {size}-byte object was freed already (it is {place})");
        }
    }
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
        if let Some(class) = profile::sampled_class(p) {
            // SAFETY: forwarded contract.
            return unsafe { realloc_sampled(p, class, align, new_size) };
        }
        fatal!("realloc of {p:p}: not a pointer goheap allocated (invalid realloc)");
    }
    // SAFETY: span structs are never unmapped; read-only fields.
    let span = unsafe { &*s };
    let old_size = match span.state() {
        SpanState::Small => {
            if CHECKED {
                // SAFETY: `p` is in a small span.
                unsafe { check_live_small(p, "realloc") };
            } else if !span.object_index(p as usize).1 {
                fatal!("realloc of {p:p}: pointer into the middle of an object");
            }
            if class_for(new_size, align) == Some(span.class.get() as usize) {
                return p;
            }
            span.elemsize.get()
        }
        SpanState::Large => {
            if span.base.get() != p as usize {
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
            span.elemsize.get()
        }
        SpanState::Free => fatal!("realloc of {p:p}: memory is not in use (freed already?)"),
        SpanState::GcSmall | SpanState::GcLarge => {
            fatal!("realloc of {p:p}: an object of the collected heap, not malloc memory")
        }
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

/// C `realloc` of sampled small object `p` of `class`: kept when the
/// class does not change, else moved (the new block sampled or not by
/// the countdown, as any allocation).
///
/// # Safety
///
/// As [`realloc_unsized`].
#[cold]
unsafe fn realloc_sampled(p: *mut u8, class: usize, align: usize, new_size: usize) -> *mut u8 {
    if class_for(new_size, align) == Some(class) {
        return p;
    }
    let q = alloc(new_size, align);
    if !q.is_null() {
        // SAFETY: both blocks are live and distinct; the class size is
        // readable at `p`.
        unsafe {
            ptr::copy_nonoverlapping(p, q, sizeclass::class_size(class).min(new_size));
            free_sampled(p);
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
    let s = large_span(p, false);
    // SAFETY: `large_span` checked it.
    let span = unsafe { &*s };
    if span.sample.get() != 0 {
        // A sampled object is recorded with its size: resized, it is a
        // new allocation (sampled or not) and the old one's free.
        return None;
    }
    // At least one page, as in `alloc_large`: `raw::realloc(p, align, 0)`
    // must not shrink the span to nothing.
    let new_pages = new_size.max(1).div_ceil(PAGE_SIZE);
    let npages = span.npages.get();
    if new_pages == npages {
        return Some(p);
    }
    if new_pages < npages {
        // Shrink only when it frees at least a quarter: avoids churn on
        // small oscillations.
        if new_pages * 4 <= npages * 3 {
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

/// The large span starting at `p`, or a fatal report; null when `p` is
/// not goheap's at all, `ignorable` and `GOHEAP_IGNORE_INVALID_FREE` is
/// set (see [`ignore_foreign_free`]).
fn large_span(p: *mut u8, ignorable: bool) -> *mut Span {
    let s = HEAP.arenas.span_of(p as usize);
    // SAFETY: span structs are never unmapped.
    let span = unsafe { s.as_ref() };
    match span {
        Some(span) if span.state() == SpanState::Large && span.base.get() == p as usize => s,
        Some(span) if matches!(span.state(), SpanState::GcSmall | SpanState::GcLarge) => {
            fatal!("free of {p:p}: an object of the collected heap (Gc), which is never freed explicitly")
        }
        Some(span) if span.state() == SpanState::Large => {
            fatal!("free of {p:p}: not the start of a live large object (pointer into its middle)")
        }
        _ if !HEAP.arenas.arena_of(p as usize).is_null() => fatal!(
            "free of {p:p}: not the start of a live large object: no object is allocated there \
             (double free, or a pointer goheap never returned)"
        ),
        // SAFETY: forwarded from `free_large` (the caller gives `p` up).
        _ if ignorable && profile::is_sampled_addr(p) && unsafe { profile::free_small(p) } => {
            ptr::null_mut()
        }
        _ if ignorable && ignore_foreign_free(p) => ptr::null_mut(),
        _ => fatal!("free of {p:p}: not a pointer goheap allocated (invalid free)"),
    }
}

/// `GOHEAP_IGNORE_INVALID_FREE`: whether a free of `p`, which goheap never
/// allocated (another allocator's, or no heap pointer), is ignored instead
/// of reported; warns on the first. Decided here, on the free's cold end,
/// so that `free` itself pays nothing for the option.
#[cold]
#[inline(never)]
fn ignore_foreign_free(p: *mut u8) -> bool {
    use crate::options::{self, Opt};
    use core::sync::atomic::{AtomicBool, Ordering};
    static WARNED: AtomicBool = AtomicBool::new(false);
    ensure_init();
    if !options::get(Opt::IgnoreInvalidFree) {
        return false;
    }
    if !WARNED.swap(true, Ordering::Relaxed) {
        crate::report::print(format_args!(
            "ignoring free of {p:p}: not a pointer goheap allocated (GOHEAP_IGNORE_INVALID_FREE is set; \
             later ones are ignored silently)"
        ));
    }
    true
}

#[cold]
fn alloc_large(size: usize, align: usize, zero: bool) -> *mut u8 {
    ensure_init();
    if size > MAX_ALLOC || align > MAX_ALLOC / 2 {
        return ptr::null_mut();
    }
    if size >= HUGE_REQUEST && size > system_memory() {
        return ptr::null_mut();
    }
    let npages = size.max(1).div_ceil(PAGE_SIZE);
    let align_pages = align.div_ceil(PAGE_SIZE).max(1);
    let init = |s: &Span, needzero: bool| {
        s.class.set(0);
        s.sample.set(0);
        s.set_state(SpanState::Large);
        s.elemsize.set(npages * PAGE_SIZE);
        s.nelems.set(1);
        s.needzero.set(needzero);
    };
    let mut s = HEAP.alloc_span(npages, align_pages, init);
    if s.is_null() {
        // Out of memory or at the hard limit: return this thread's cached
        // objects (emptied spans free their pages) and try once more.
        THREADS.flush_thread_cache();
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
        h.large_alloc_bytes += span.elemsize.get() as u64;
    }
    // SAFETY: a non-null cache pointer is the thread's own live cache.
    if let Some(c) = unsafe { tls::cache().as_ref() } {
        if c.sample_due(size) {
            profile::sample_large(c, span, size);
        }
    }
    let p = span.base.get() as *mut u8;
    if zero {
        if !span.needzero.get() {
            // The pages read as zero already: new to the heap, or all
            // released while free. A program that writes its zeroed
            // buffers all over would fault each in at its first touch, and
            // twice a page it reads before writing (the shared zero page,
            // then a copy): map them in with one call instead (calloc-large
            // in `goheap cbench`: 0.92 of the time, see "Zeroed large
            // blocks" in docs/design.md).
            if size >= ZERO_BY_RELEASE && zeroed_used_densely() {
                // SAFETY: the span's pages are ours and committed.
                unsafe { HEAP.os.populate(p, npages * PAGE_SIZE) };
            }
        } else if size >= ZERO_BY_RELEASE && zero_by_release() {
            // SAFETY: the span's pages are ours and hold nothing yet;
            // `MADV_DONTNEED` (not lazy) makes them read as zero.
            unsafe { HEAP.os.decommit(p, npages * PAGE_SIZE, false) };
            span.zeroed_by_release.set(true);
        } else {
            // SAFETY: the span's pages are ours.
            unsafe { ptr::write_bytes(p, 0, size) };
        }
    }
    p
}

/// From this size up, a zeroed large allocation whose pages may hold old
/// data gets them released (`MADV_DONTNEED`) instead of cleared: the
/// kernel hands out a zero page at the first touch of each, so a buffer
/// touched sparsely costs a page fault per page it uses instead of a
/// `memset` of all of it, and the pages it never touches take no memory.
/// Measured on this machine (ns per 4 KiB page; clear vs release, then
/// every cache line written / one byte written): 256 KiB 132/769 and
/// 66/89, 1 MiB 156/855 and 77/8, 4 MiB 330/982 and 147/8, 16 MiB 447/1179
/// and 160/13. From 1 MiB the sparse case is 10-18 times cheaper while the
/// fully written case pays a fault per page, what glibc's `calloc` pays
/// for every request above its mmap threshold; below it both lose or
/// draw. See "Zeroed large blocks" in docs/design.md.
const ZERO_BY_RELEASE: usize = 1 << 20;

/// What part of the pages of the buffers zeroed by release the program
/// went on to touch, in 1/1024ths: a running average over their frees
/// (each weighs 1/4), read from `mincore`. Starts at 0 (release).
static ZEROED_TOUCHED: AtomicU32 = AtomicU32::new(0);
/// Zeroed large allocations that could have been zeroed by release.
static ZEROED_COUNT: AtomicU32 = AtomicU32::new(0);
/// Above this touched part (1/4) clearing wins: a fault costs 3-6 times a
/// page's `memset` (the figures at [`ZERO_BY_RELEASE`]).
const TOUCHED_MAX: u32 = 256;
/// While clearing wins, one zeroed allocation in `ZEROED_PROBE_GAP` is
/// still zeroed by release, to notice when the program's use changes; the
/// gap doubles (from 16 to 1024) each time such a probe finds the buffer
/// used densely again, so a program that always writes its buffers all
/// over pays for a handful of probes in all.
static ZEROED_PROBE_GAP: AtomicU32 = AtomicU32::new(PROBE_GAP_MIN);
const PROBE_GAP_MIN: u32 = 16;
const PROBE_GAP_MAX: u32 = 1024;

/// Whether to zero this large allocation by releasing its pages: when the
/// buffers zeroed so were mostly left untouched (a page fault for each
/// touched page is then cheaper than clearing all of them), and now and
/// then to keep measuring. A program that writes its zeroed buffers all
/// over, which the fault per page would slow 3-6 fold, settles on clearing
/// after a few frees.
fn zero_by_release() -> bool {
    let n = ZEROED_COUNT.fetch_add(1, Relaxed);
    ZEROED_TOUCHED.load(Relaxed) <= TOUCHED_MAX || n % ZEROED_PROBE_GAP.load(Relaxed) == 0
}

/// Whether the buffers zeroed by release were mostly touched (clearing
/// wins), so that a fresh zeroed buffer of [`ZERO_BY_RELEASE`] and up is
/// likely to be touched all over too.
fn zeroed_used_densely() -> bool {
    ZEROED_TOUCHED.load(Relaxed) > TOUCHED_MAX
}

/// At the free of a large span zeroed by release: folds the part of its
/// pages that became resident into [`ZEROED_TOUCHED`].
#[cold]
fn note_zeroed_touched(span: &Span) {
    let bytes = span.npages.get() * PAGE_SIZE;
    // SAFETY: the span's pages are mapped (ours until freed).
    let Some(resident) = (unsafe { HEAP.os.resident_pages(span.base.get() as *const u8, bytes) }) else {
        return;
    };
    let total = bytes.div_ceil(crate::os::OS_PAGE_SIZE).max(1);
    let part = (resident * 1024 / total) as u32;
    // A racy average is fine: it only steers a choice.
    let old = ZEROED_TOUCHED.load(Relaxed);
    let avg = old - old / 4 + part / 4;
    ZEROED_TOUCHED.store(avg, Relaxed);
    let gap = if avg > TOUCHED_MAX {
        (ZEROED_PROBE_GAP.load(Relaxed) * 2).min(PROBE_GAP_MAX)
    } else {
        PROBE_GAP_MIN
    };
    ZEROED_PROBE_GAP.store(gap, Relaxed);
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
    let s = large_span(p, true);
    if s.is_null() {
        return;
    }
    // SAFETY: `large_span` checked the span.
    let span = unsafe { &*s };
    if span.zeroed_by_release.get() {
        note_zeroed_touched(span);
    }
    if span.sample.get() != 0 {
        profile::free_large(span);
    }
    {
        let mut h = HEAP.locked.lock();
        h.large_frees += 1;
        // SAFETY: `large_span` checked the span.
        h.large_free_bytes += unsafe { (*s).elemsize.get() } as u64;
    }
    // SAFETY: a live large span, given up by the caller.
    unsafe { HEAP.free_span(s) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sizeclass::NUM_SIZE_CLASSES;

    /// A thread starts with the placeholder for a cache: its first
    /// operation, a free of another thread's object here, goes through it
    /// to the slow path, which builds the thread's cache; while the thread
    /// calls out of the allocator it has the placeholder again, and its
    /// operations still work.
    #[test]
    fn a_threads_first_operation_goes_through_the_placeholder() {
        let p = malloc(40) as usize;
        assert_ne!(p, 0);
        std::thread::spawn(move || {
            assert!(tls::cache().is_null());
            assert!(tls::cache_or_placeholder().is_placeholder());
            // SAFETY: a live object of the main thread's, given up here.
            unsafe { free(p as *mut u8) };
            let own = tls::cache();
            assert!(!own.is_null(), "the first free built the thread's cache");
            assert!(!tls::cache_or_placeholder().is_placeholder());
            let q = malloc(40);
            assert!(!q.is_null());
            tls::call_out(|| {
                assert!(tls::cache().is_null());
                assert!(tls::cache_or_placeholder().is_placeholder());
                let r = malloc(100);
                assert!(!r.is_null());
                // SAFETY: just allocated, not used again.
                unsafe { free(r) };
            });
            assert_eq!(tls::cache(), own, "call_out put the thread's cache back");
            // SAFETY: allocated above, not used again.
            unsafe { free(q) };
        })
        .join()
        .unwrap();
    }

    /// The placeholder never admits an operation and has no free marker
    /// the process's objects carry.
    #[test]
    fn the_placeholder_admits_nothing() {
        let ph = &tls::PLACEHOLDER;
        assert!(ph.is_placeholder());
        assert!(!ph.handshake.try_enter());
        crate::freelist::Guard::new().refresh();
        let probe = [0usize, ph.guard.mark()];
        // SAFETY: a two-word object of ours.
        assert!(!unsafe { freelist::is_marked(probe.as_ptr() as *mut u8) });
        for class in 1..NUM_SIZE_CLASSES {
            assert!(ph.classes[class].free.get().is_null());
            assert!(!ph.classes[class].has_room());
        }
    }

    /// C `malloc`'s one-load class is `class_for` at C's alignment, for
    /// every small size, in this build and in the other (checked or not).
    #[test]
    fn c_malloc_class_is_class_for_at_c_alignment() {
        for size in 0..=MAX_SMALL_SIZE {
            let align = if size <= 8 { 8 } else { 16 };
            assert_eq!(
                sizeclass::c_malloc_class(size, CHECKED),
                class_for(size, align).unwrap(),
                "size {size}"
            );
            let mut other = sizeclass::size_to_class(size);
            if !CHECKED && other == 1 {
                other = 2;
            }
            if align == 16 && sizeclass::class_size(other) % 16 != 0 {
                other += 1;
            }
            assert_eq!(sizeclass::c_malloc_class(size, !CHECKED), other, "size {size}, other build");
        }
    }

    /// `class_for` picks, for every small size and every alignment up to a
    /// page, the smallest class that holds the size with every object
    /// aligned (spans are page-aligned, so "class size is a multiple of
    /// the alignment" is the rule).
    #[test]
    fn class_for_is_the_smallest_aligned_class() {
        for shift in 0..=13 {
            let align = 1usize << shift;
            for size in 0..=MAX_SMALL_SIZE {
                let first = if CHECKED { 2 } else { 1 };
                let want = (first..NUM_SIZE_CLASSES).find(|&c| {
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
