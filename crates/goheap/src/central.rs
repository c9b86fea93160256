//! Central lists (Go's mcentral): per size class, the spans with slots to
//! hand out and the full ones, under one lock each.
//!
//! See the crate docs for the overview.

use crate::freelist;
use crate::heap::Heap;
use crate::os::OS_PAGE_SIZE;
use crate::report::fatal;
use crate::sizeclass;
use crate::span::{Span, SpanList, SpanState, SPAN_INTERIOR_RELEASED};
use crate::sync::Mutex;
use core::ptr;

/// An intrusive doubly linked list of spans (through `Span::next/prev`).
pub(crate) struct List {
    pub(crate) head: *mut Span,
    pub(crate) len: usize,
}

// SAFETY: a list is only used under the lock of the structure holding it,
// which hands the spans on it from thread to thread with the lock.
unsafe impl Send for List {}

impl List {
    pub(crate) const fn new() -> Self {
        List {
            head: ptr::null_mut(),
            len: 0,
        }
    }

    /// # Safety
    ///
    /// `s` is a valid span on no list; the list's lock is held.
    pub(crate) unsafe fn push(&mut self, s: *mut Span) {
        // SAFETY: per the contract, `s` and the current head are valid.
        unsafe {
            (*s).prev.set(ptr::null());
            (*s).next.set(self.head);
            if !self.head.is_null() {
                (*self.head).prev.set(s);
            }
        }
        self.head = s;
        self.len += 1;
    }

    /// # Safety
    ///
    /// `s` is on this list; the list's lock is held.
    pub(crate) unsafe fn remove(&mut self, s: *mut Span) {
        // SAFETY: per the contract, `s` and its neighbours are valid.
        unsafe {
            let (prev, next) = ((*s).prev.get(), (*s).next.get());
            if prev.is_null() {
                self.head = next as *mut Span;
            } else {
                (*prev).next.set(next);
            }
            if !next.is_null() {
                (*next).prev.set(prev);
            }
            (*s).next.set(ptr::null());
            (*s).prev.set(ptr::null());
        }
        self.len -= 1;
    }

    pub(crate) fn pop(&mut self) -> *mut Span {
        let s = self.head;
        if !s.is_null() {
            // SAFETY: `s` is this list's head.
            unsafe { self.remove(s) };
        }
        s
    }
}

/// The lists of one size class.
pub(crate) struct CentralLists {
    /// Spans with free or returned slots, not held by a cache.
    pub(crate) partial: List,
    /// Spans with every slot out, not held by a cache.
    pub(crate) full: List,
    /// One span with nothing in it, kept instead of going back to the page
    /// heap, so a class whose last span empties and refills over and over
    /// does not churn the page allocator. Reset as fresh when kept; the
    /// scavenger hands it back when the heap is idle.
    pub(crate) spare: *mut Span,
    /// The transfer cache: whole lists of freed objects (linked through
    /// their first word) handed over by one thread's flush and taken by
    /// another's (or the same one's) refill without touching their spans.
    /// A stack, so the most recent (warmest) batch goes out first.
    pub(crate) batches: [(*mut u8, u32); TRANSFER_BATCHES],
    pub(crate) nbatches: usize,
}

/// Batches a transfer cache holds per class (each at most a thread list's
/// bound, about 32 KiB of objects).
const TRANSFER_BATCHES: usize = 8;

// SAFETY: the lists hold raw span pointers only touched under the lock.
unsafe impl Send for CentralLists {}

/// One size class's central list, cache-line aligned so neighbouring
/// classes' locks do not share a line.
#[repr(align(128))]
pub(crate) struct Central {
    /// Guards the lists and, for spans not held by a cache, every mutable
    /// span field (see [`Span`]). Taken before the heap lock, never after.
    pub(crate) lists: Mutex<CentralLists>,
}

impl Central {
    pub(crate) const fn new() -> Self {
        Central {
            lists: Mutex::new(CentralLists {
                partial: List::new(),
                full: List::new(),
                spare: ptr::null_mut(),
                batches: [(ptr::null_mut(), 0); TRANSFER_BATCHES],
                nbatches: 0,
            }),
        }
    }

    /// Releases to the OS the OS pages of partial spans that hold no live
    /// or cached object (the scavenger, when the heap is idle): spans
    /// pinned by a few survivors stop costing a page per free page. Returns
    /// the bytes released.
    pub(crate) fn release_span_interiors(&self, heap: &Heap, lazy: bool) -> usize {
        let l = self.lists.lock();
        let mut released = 0;
        let mut s = l.partial.head;
        while !s.is_null() {
            // SAFETY: spans on our list are valid and ours under the lock.
            let span = unsafe { &*s };
            let mut mask = span.unused_os_pages();
            span.released.set(span.released.get() | mask);
            while mask != 0 {
                let first = mask.trailing_zeros() as usize;
                let run = (mask >> first).trailing_ones() as usize;
                // SAFETY: these OS pages of an in-use span hold no object
                // anyone uses (checked under the lock, which also keeps any
                // cache from taking the span meanwhile).
                unsafe {
                    heap.os.decommit(
                        (span.base.get() + first * OS_PAGE_SIZE) as *mut u8,
                        run * OS_PAGE_SIZE,
                        lazy,
                    )
                };
                heap.after_release(span.base.get() + first * OS_PAGE_SIZE, run * OS_PAGE_SIZE);
                released += run * OS_PAGE_SIZE;
                mask &= !(((1u64 << run) - 1) as u32).wrapping_shl(first as u32);
            }
            s = span.next.get() as *mut Span;
        }
        SPAN_INTERIOR_RELEASED.fetch_add(released, crate::sync::atomic::Ordering::Relaxed);
        released
    }

    /// Hands a span with free slots to a thread cache (Go's `cacheSpan`):
    /// a partial span if there is one, else a fresh span from the heap.
    /// Returns null when the heap cannot grow.
    pub(crate) fn cache_span(&self, heap: &Heap, class: usize) -> *mut Span {
        {
            let mut l = self.lists.lock();
            let mut s = l.partial.pop();
            if s.is_null() {
                s = core::mem::replace(&mut l.spare, ptr::null_mut());
            }
            if !s.is_null() {
                // SAFETY: spans on our lists are valid and ours under the lock.
                let span = unsafe { &*s };
                span.list.set(SpanList::None);
                let avail = span.take_for_cache();
                debug_assert!(avail > 0, "partial span with no free slot");
                return s;
            }
        }
        let s = heap.alloc_span(sizeclass::class_npages(class), 1, |s, needzero| {
            s.init_small(class, needzero)
        });
        if !s.is_null() {
            let _l = self.lists.lock();
            // SAFETY: fresh span, not yet visible to any other thread but
            // through the arena map (which only frees use, under our lock).
            unsafe { (*s).take_for_cache() };
        }
        s
    }

    /// Takes back the span a cache held (Go's `uncacheSpan`).
    ///
    /// # Safety
    ///
    /// `s` is a span of this class held by the calling thread's cache,
    /// which gives it up.
    pub(crate) unsafe fn uncache_span(&self, heap: &Heap, s: *mut Span) {
        let mut l = self.lists.lock();
        // SAFETY: the caller owned the span; now we hold the lock.
        let span = unsafe { &*s };
        span.release_from_cache();
        // SAFETY: `s` is on no list and valid.
        unsafe { self.file(&mut l, heap, s) };
    }

    /// Puts an uncached span on the right list, or gives it back to the
    /// heap if nothing in it is live. The lock is held; may drop it.
    ///
    /// # Safety
    ///
    /// `s` is a valid span of this class, on no list, not cached.
    unsafe fn file(&self, l: &mut CentralLists, heap: &Heap, s: *mut Span) {
        // SAFETY: per the contract.
        let span = unsafe { &*s };
        if span.live() == 0 {
            // SAFETY: nothing in it is live and it is on no list.
            unsafe { self.empty(l, heap, s) };
        } else if span.live() < span.nelems.get() {
            span.list.set(SpanList::Partial);
            // SAFETY: on no list.
            unsafe { l.partial.push(s) };
        } else {
            span.list.set(SpanList::Full);
            // SAFETY: on no list.
            unsafe { l.full.push(s) };
        }
    }

    /// Returns the first `n` objects of a list of objects of this class
    /// (linked through their first word) to their spans, and returns the
    /// rest of the list. Detects objects that are not live objects of this
    /// class (a second copy of an object already returned, a slot never
    /// handed out, a pointer outside a span of the class) and aborts with a
    /// report.
    ///
    /// # Safety
    ///
    /// `head` starts a well-formed list of at least `n` objects; the caller
    /// gives up the first `n`.
    pub(crate) unsafe fn free_batch(
        &self,
        heap: &Heap,
        class: usize,
        mut head: *mut u8,
        n: usize,
    ) -> *mut u8 {
        let mut l = self.lists.lock();
        let links = freelist::LinkReader::new();
        let index = sizeclass::ObjectIndex::of(class);
        // Objects freed together often share a span: remember the current
        // one and what the loop reads of it, skip the arena-map walk while
        // objects stay in it, and settle its list membership once when we
        // move on. The copies are exact for the span's life here: its
        // bounds, class and size do not change while it is in use, and
        // `cached` only under our lock. The high-water mark may rise
        // meanwhile (its cache hands out slots without our lock), but every
        // object of the list was handed out before the list reached us, so
        // the copy covers them; a slot the copy rejects is tested again.
        let mut s = ptr::null_mut::<Span>();
        let (mut lo, mut hi, mut size, mut cached, mut hw) = (0usize, 0usize, 0usize, false, 0usize);
        for _ in 0..n {
            let obj = head;
            // SAFETY: the list is well formed per the contract.
            head = unsafe { links.next(obj) };
            let a = obj as usize;
            if a < lo || a >= hi {
                if !s.is_null() {
                    // SAFETY: `s` is a span of this class we just updated.
                    unsafe { self.settle(&mut l, heap, s) };
                }
                s = heap.arenas.span_of(a);
                if s.is_null() {
                    fatal!(
                        "free of {obj:p}: not a pointer goheap allocated (invalid or double free)"
                    );
                }
                // SAFETY: span structs stay mapped; the state check below
                // rejects spans not in use.
                let span = unsafe { &*s };
                if span.state() != SpanState::Small || span.class.get() as usize != class {
                    fatal!(
                        "free of {obj:p}: object is not a live {}-byte object (invalid free or heap corruption)",
                        sizeclass::class_size(class)
                    );
                }
                (lo, hi) = (span.base.get(), span.limit());
                (size, cached) = (span.elemsize.get(), span.cached.get());
                hw = if crate::CHECKED { span.published_hw() } else { 0 };
            }
            // SAFETY: `s` is the in-use span holding `obj`; its freed bits
            // and counts are ours under the lock, cached or not.
            let span = unsafe { &*s };
            let off = a - lo;
            let idx = index.at(off);
            if idx * size != off
                || (crate::CHECKED && idx >= hw && idx >= span.published_hw())
                || !span.try_set_freed(idx, cached)
            {
                report_bad_free(obj, span);
            }
        }
        if !s.is_null() {
            // SAFETY: as above.
            unsafe { self.settle(&mut l, heap, s) };
        }
        head
    }

    /// After objects came back to span `s`: a span no cache holds moves
    /// from the full to the partial list, or back to the heap if nothing
    /// in it is live.
    ///
    /// # Safety
    ///
    /// `s` is an in-use span of this class; the lock is held.
    unsafe fn settle(&self, l: &mut CentralLists, heap: &Heap, s: *mut Span) {
        // SAFETY: per the contract.
        let span = unsafe { &*s };
        if span.cached.get() {
            return;
        }
        if span.live() == 0 {
            // SAFETY: the span is on the list its `list` names.
            unsafe { self.unlist(l, s) };
            // SAFETY: nothing is live in it, not cached, on no list.
            unsafe { self.empty(l, heap, s) };
        } else if span.list.get() == SpanList::Full {
            // SAFETY: on the full list.
            unsafe { l.full.remove(s) };
            span.list.set(SpanList::Partial);
            // SAFETY: now on no list.
            unsafe { l.partial.push(s) };
        }
    }

    /// A span of this class with nothing live: kept as the spare if there
    /// is none (reset to empty, keeping its high-water mark, so a stray
    /// free into it is still caught), else given back to the page heap.
    ///
    /// # Safety
    ///
    /// `s` is a span of this class, not cached, on no list, nothing live;
    /// the lock is held.
    unsafe fn empty(&self, l: &mut CentralLists, heap: &Heap, s: *mut Span) {
        if l.spare.is_null() {
            // SAFETY: per the contract the span is ours and unused.
            unsafe { (*s).reset(true) };
            l.spare = s;
        } else {
            // SAFETY: nothing references it; heap lock after a central lock
            // is the documented order.
            unsafe { heap.free_span(s) };
        }
    }

    /// Hands a thread's whole free list (`n` objects from `head`) to the
    /// transfer cache. Returns false, taking nothing, when it is full.
    pub(crate) fn put_batch(&self, head: *mut u8, n: u32) -> bool {
        let mut l = self.lists.lock();
        if l.nbatches == TRANSFER_BATCHES || n == 0 {
            return false;
        }
        let i = l.nbatches;
        l.batches[i] = (head, n);
        l.nbatches += 1;
        true
    }

    /// Takes the most recent batch from the transfer cache.
    pub(crate) fn take_batch(&self) -> Option<(*mut u8, u32)> {
        let mut l = self.lists.lock();
        if l.nbatches == 0 {
            return None;
        }
        l.nbatches -= 1;
        let i = l.nbatches;
        Some(l.batches[i])
    }

    /// Returns every batch in the transfer cache to its spans, so spans
    /// can empty (the scavenger when the heap is idle, `free_os_memory`,
    /// statistics-exact flushes).
    pub(crate) fn drain_batches(&self, heap: &Heap, class: usize) {
        while let Some((head, n)) = self.take_batch() {
            // SAFETY: a batch is a well-formed list of `n` objects of this
            // class that nobody else holds.
            unsafe { self.free_batch(heap, class, head, n as usize) };
        }
    }

    /// Gives the spare span back to the page heap (the scavenger, when the
    /// heap is idle, and `free_os_memory`).
    pub(crate) fn drop_spare(&self, heap: &Heap) {
        let mut l = self.lists.lock();
        let s = core::mem::replace(&mut l.spare, ptr::null_mut());
        if !s.is_null() {
            // SAFETY: the spare is an unused span of ours, on no list.
            unsafe { heap.free_span(s) };
        }
    }

    /// # Safety
    ///
    /// `s` is on the list its `list` field names, lock held.
    unsafe fn unlist(&self, l: &mut CentralLists, s: *mut Span) {
        // SAFETY: per the contract.
        unsafe {
            match (*s).list.get() {
                SpanList::Partial => l.partial.remove(s),
                SpanList::Full => l.full.remove(s),
                SpanList::None => {}
            }
            (*s).list.set(SpanList::None);
        }
    }
}

/// Aborts with the reason a batched free was rejected.
#[cold]
#[inline(never)]
fn report_bad_free(obj: *mut u8, span: &Span) -> ! {
    let (idx, exact) = span.object_index(obj as usize);
    let size = span.elemsize.get();
    if !exact {
        fatal!("free of {obj:p}: pointer into the middle of a {size}-byte object");
    }
    if crate::CHECKED && idx >= span.published_hw() {
        fatal!("free of {obj:p}: invalid free: this {size}-byte slot was never handed out");
    }
    fatal!("free of {obj:p}: double free of a {size}-byte object (it was already back in its span)")
}

/// Walks a list of `n` objects from `head`, calling `f` on each.
///
/// # Safety
///
/// `head` starts a well-formed free list of at least `n` objects that
/// nobody changes meanwhile.
pub(crate) unsafe fn for_each_in_list(mut head: *mut u8, n: usize, mut f: impl FnMut(*mut u8)) {
    for _ in 0..n {
        if head.is_null() {
            return;
        }
        f(head);
        // SAFETY: per the contract.
        head = unsafe { freelist::read_link(head) };
    }
}
