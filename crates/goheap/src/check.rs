//! The heap checker: goheap's bookkeeping checked against itself, with
//! everything held still. For tests (stress, fork, re-entry) and for
//! debugging a program that corrupts its heap.
//!
//! What it checks:
//!
//! - every in-use small span has exactly one owner: a central list
//!   (partial or full, as its `list` field says), a central's spare, or
//!   one class slot of one thread cache (`cached`); counted both ways
//!   (walking the arenas' spans, and walking the owners), so a span that
//!   no cache holds any more although it is marked cached shows up;
//! - each owner's spans are in use, of the owner's class, with consistent
//!   counts;
//! - every object on a free list (every thread's, the fallback's, the
//!   transfer caches') is the start of a slot of a span of its class that
//!   was handed out;
//! - pages: the in-use spans' pages are the heap's in-use pages, and in
//!   use + free (+ a run being released right now) is the whole heap.

use crate::cache::ThreadCache;
use crate::central::for_each_in_list;
use crate::heap::Heap;
use crate::report;
use crate::sizeclass::{NUM_SIZE_CLASSES, PAGE_SIZE};
use crate::span::{Span, SpanList, SpanState};
use crate::tls::Threads;

/// What [`check_heap`](crate::check_heap) found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapCheck {
    /// In-use spans seen (small and large).
    pub spans: u64,
    /// Objects on free lists checked.
    pub free_objects: u64,
    /// Problems found (each printed to stderr as `goheap: heap check: ...`).
    pub problems: u64,
    /// In a child after `fork`: spans that were in the hands of a thread
    /// that does not exist in the child (between its cache and a central
    /// list when the parent forked). Lost to the child, like those
    /// threads' caches; not problems.
    pub lost_spans: u64,
}

impl HeapCheck {
    /// Whether no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems == 0
    }
}

/// How many problems are printed before the rest are only counted.
const MAX_PRINTED: u64 = 20;

struct Checker {
    out: HeapCheck,
}

impl Checker {
    fn problem(&mut self, args: core::fmt::Arguments<'_>) {
        if self.out.problems < MAX_PRINTED {
            report::print(format_args!("heap check: {args}"));
        }
        self.out.problems += 1;
    }

    /// Checks that `obj`, on a free list of `class`, is a handed-out slot of
    /// a span of that class.
    fn free_object(&mut self, heap: &Heap, obj: *mut u8, class: usize, whose: &str) {
        self.out.free_objects += 1;
        // SAFETY: span structs are never unmapped; everything is frozen.
        let Some(span) = (unsafe { heap.arenas.span_of(obj as usize).as_ref() }) else {
            return self.problem(format_args!("{obj:p} on {whose} free list of class {class} is not in an in-use span"));
        };
        if span.state() != SpanState::Small || span.class.get() as usize != class {
            return self.problem(format_args!(
                "{obj:p} on {whose} free list of class {class} is in a span of class {}",
                span.class.get()
            ));
        }
        let (idx, exact) = span.object_index(obj as usize);
        if !exact || (crate::CHECKED && idx >= span.published_hw()) {
            self.problem(format_args!(
                "{obj:p} on {whose} free list of class {class} is not a handed-out slot"
            ));
        }
    }

    fn cache(&mut self, heap: &Heap, c: &ThreadCache, whose: &str, cached: &mut u64) {
        for class in 1..NUM_SIZE_CLASSES {
            let cc = &c.classes[class];
            let n = cc.len() as usize;
            let mut seen = 0;
            // SAFETY: the cache is frozen; its list is well formed.
            unsafe { for_each_in_list(cc.free.get(), n, |q| {
                seen += 1;
                self.free_object(heap, q, class, whose)
            }) };
            if seen != n {
                self.problem(format_args!("{whose} free list of class {class} holds {seen} objects, not {n}"));
            }
            let s = cc.span.get();
            if !core::ptr::eq(s, &crate::cache::EMPTY_SPAN) {
                *cached += 1;
                // SAFETY: a span the cache holds.
                let span = unsafe { &*s };
                if span.state() != SpanState::Small || span.class.get() as usize != class || !span.cached.get() {
                    self.problem(format_args!(
                        "{whose} span of class {class} at {:#x} is not a cached span of that class",
                        span.base.get()
                    ));
                }
            }
        }
    }
}

/// See [`crate::check_heap`].
pub(crate) fn check_heap(heap: &Heap, threads: &Threads) -> HeapCheck {
    threads.freeze_all(|registry, fallback| {
        let mut ck = Checker { out: HeapCheck::default() };
        // Owners: caches.
        let mut cached_slots = 0u64;
        for c in registry.live() {
            ck.cache(heap, c, "a thread cache's", &mut cached_slots);
        }
        for c in registry.lost() {
            // Lost in a fork: not walked (they may be mid-operation), but
            // their spans are still theirs.
            for cc in &c.classes[1..] {
                if !core::ptr::eq(cc.span.get(), &crate::cache::EMPTY_SPAN) {
                    cached_slots += 1;
                }
            }
        }
        ck.cache(heap, fallback, "the fallback cache's", &mut cached_slots);
        // Owners: central lists, with their locks held to the end.
        let lists: [_; NUM_SIZE_CLASSES] = core::array::from_fn(|class| heap.centrals[class].lists.lock());
        let (mut partial, mut full, mut spares) = (0u64, 0u64, 0u64);
        for (class, l) in lists.iter().enumerate().skip(1) {
            for &(head, n) in &l.batches[..l.nbatches] {
                // SAFETY: batches are well-formed lists, under the lock.
                unsafe { for_each_in_list(head, n as usize, |q| ck.free_object(heap, q, class, "a transfer batch's")) };
            }
            for (list, want, count) in [(&l.partial, SpanList::Partial, &mut partial), (&l.full, SpanList::Full, &mut full)] {
                let mut s = list.head as *const Span;
                let mut n = 0;
                while !s.is_null() {
                    // SAFETY: spans on a central list are valid under its lock.
                    let span = unsafe { &*s };
                    if span.state() != SpanState::Small || span.class.get() as usize != class || span.list.get() != want || span.cached.get() {
                        ck.problem(format_args!("span at {:#x} on class {class}'s {want:?} list is not an uncached span of that list", span.base.get()));
                    }
                    if span.live() == 0 || (want == SpanList::Partial) != (span.live() < span.nelems.get()) {
                        ck.problem(format_args!("span at {:#x} on class {class}'s {want:?} list has {} live objects", span.base.get(), span.live()));
                    }
                    n += 1;
                    s = span.next.get();
                }
                if n != list.len {
                    ck.problem(format_args!("class {class}'s {want:?} list holds {n} spans, not {}", list.len));
                }
                *count += n as u64;
            }
            if !l.spare.is_null() {
                spares += 1;
                // SAFETY: the spare is a valid span under the lock.
                let span = unsafe { &*l.spare };
                if span.state() != SpanState::Small || span.class.get() as usize != class || span.cached.get() || span.live() != 0 {
                    ck.problem(format_args!("class {class}'s spare span at {:#x} is not an empty span of that class", span.base.get()));
                }
            }
        }
        // The spans themselves, through the arenas.
        let h = heap.locked.lock();
        let (mut pages, mut a_cached, mut a_partial, mut a_full, mut a_none) = (0usize, 0u64, 0u64, 0u64, 0u64);
        let mut unowned = 0u64;
        for arena in heap.arenas.arenas() {
            let mut page = 0;
            while page < arena.spans.len() {
                let s = crate::sync::load_published(&arena.spans[page]);
                if s.is_null() {
                    page += 1;
                    continue;
                }
                // SAFETY: published spans are valid; the heap lock keeps
                // them in use while we look.
                let span = unsafe { &*s };
                if page == 0 && span.base.get() < arena.base {
                    // Begun in the arena before (arenas are contiguous
                    // when the OS allows): counted there.
                    page = (span.limit() - arena.base) / PAGE_SIZE;
                    continue;
                }
                if span.base.get() != arena.base + page * PAGE_SIZE {
                    ck.problem(format_args!("page {:#x} maps to the span at {:#x}, which does not start there", arena.base + page * PAGE_SIZE, span.base.get()));
                    page += 1;
                    continue;
                }
                ck.out.spans += 1;
                pages += span.npages.get();
                match span.state() {
                    SpanState::Small if span.cached.get() => a_cached += 1,
                    SpanState::Small => match span.list.get() {
                        SpanList::Partial => a_partial += 1,
                        SpanList::Full => a_full += 1,
                        SpanList::None => {
                            a_none += 1;
                            let class = span.class.get() as usize;
                            if class >= NUM_SIZE_CLASSES || !core::ptr::eq(lists[class].spare, s) {
                                unowned += 1;
                            }
                        }
                    },
                    // The collected heap's spans are its own (gcheap).
                    SpanState::Large | SpanState::GcSmall | SpanState::GcLarge => {}
                    SpanState::Free => ck.problem(format_args!("the map points at the free span struct at {:#x}", span.base.get())),
                }
                page += span.npages.get().max(1);
            }
        }
        // A thread that did not survive a fork may have had a span or two
        // in transit (taken from its cache, not yet on a list; or made for
        // it, not yet in its cache): at most two per lost cache.
        let lost_caches = registry.lost().count() as u64;
        let in_transit = a_cached.saturating_sub(cached_slots) + unowned;
        if lost_caches > 0 && a_cached >= cached_slots && in_transit <= 2 * lost_caches {
            ck.out.lost_spans = in_transit;
        } else {
            if a_cached != cached_slots {
                ck.problem(format_args!("{a_cached} spans are marked cached, but caches hold {cached_slots} (a span no cache owns, or one owned twice)"));
            }
            if unowned != 0 {
                ck.problem(format_args!("{unowned} spans are on no list, in no cache and not a spare"));
            }
        }
        if (a_partial, a_full, a_none - unowned) != (partial, full, spares) {
            ck.problem(format_args!(
                "spans marked partial/full/unlisted: {a_partial}/{a_full}/{}; on partial/full lists and spare: {partial}/{full}/{spares}",
                a_none - unowned
            ));
        }
        if pages != h.inuse_pages {
            ck.problem(format_args!("in-use spans hold {pages} pages, the heap counts {}", h.inuse_pages));
        }
        let total = h.heap_sys / PAGE_SIZE;
        let accounted = h.inuse_pages + h.pages.free_pages() + h.releasing.1;
        if accounted != total {
            ck.problem(format_args!(
                "pages in use {} + free {} + being released {} = {accounted}, but the heap has {total} (pages lost)",
                h.inuse_pages,
                h.pages.free_pages(),
                h.releasing.1
            ));
        }
        drop(h);
        drop(lists);
        ck.out
    })
}
