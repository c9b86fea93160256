//! The page heap (Go's mheap): arenas from the OS, pages to spans, spans
//! back to pages.
//!
//! See the crate docs for the overview.

use crate::arena::{ArenaMap, ARENA_BYTES};
use crate::central::Central;
use crate::fixalloc::FixAlloc;
use crate::os::Os;
use crate::pagealloc::{PageAlloc, CHUNK_BYTES};
use crate::sizeclass::{NUM_SIZE_CLASSES, PAGE_SIZE};
use crate::span::{Span, SpanState};
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
    /// One central list per size class (noscan; the GC heap adds its own).
    pub(crate) centrals: [Central; NUM_SIZE_CLASSES],
}

/// First hint for arena placement (Go starts at 0x00c0 << 32 on amd64).
const FIRST_ARENA_HINT: usize = 0x00c0 << 32;

impl Heap {
    /// A heap over `os`; nothing is reserved until first use.
    pub(crate) const fn new(os: &'static dyn Os) -> Self {
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
            }),
            arenas: ArenaMap::new(),
            centrals: [const { Central::new() }; NUM_SIZE_CLASSES],
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
        init: impl FnOnce(&mut Span, bool),
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
        // Pages never handed out since they were mapped, or released to
        // the OS (MADV_DONTNEED) while free, read as zero.
        let used_before = self.arenas.alloc_needs_zero(base, npages);
        let needzero = used_before && scav < npages;
        // SAFETY: `span_mem` is a fresh slot of span size, exclusively ours.
        let s = unsafe {
            span_mem.write(Span::EMPTY);
            &mut *span_mem
        };
        s.base = base;
        s.npages = npages;
        init(s, needzero);
        h.inuse_pages += npages;
        self.arenas.set_spans(base, npages, span_mem);
        span_mem
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
                self.grow(h, ask)?;
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
    /// `mheap.grow`).
    fn grow(&self, h: &mut HeapLocked, npages: usize) -> Option<()> {
        let ask = (npages * PAGE_SIZE).next_multiple_of(CHUNK_BYTES);
        if h.cur_arena_end - h.cur_arena < ask {
            // Reserve new arenas: contiguous with the current one if the
            // hint is honoured, so the leftover joins the new space.
            let bytes = ask.next_multiple_of(ARENA_BYTES);
            let p = self.os.reserve(bytes, ARENA_BYTES, h.arena_hint) as usize;
            if p == 0 {
                return None;
            }
            h.arena_reserved += bytes;
            let mut a = p;
            while a < p + bytes {
                if !self.arenas.add_arena(a, self.os) {
                    return None;
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
        // SAFETY: `[base, base + ask)` lies in an arena we reserved.
        if !unsafe { self.os.commit(base as *mut u8, ask) } {
            return None;
        }
        if !h.pages.grow(base, ask) {
            return None;
        }
        h.cur_arena += ask;
        h.heap_sys += ask;
        Some(())
    }

    /// Returns span `s` and its pages to the heap.
    ///
    /// # Safety
    ///
    /// `s` is an in-use span of this heap that nothing references any more.
    pub(crate) unsafe fn free_span(&self, s: *mut Span) {
        let mut h = self.locked.lock();
        // SAFETY: the caller passes an in-use span it owns.
        let span = unsafe { &mut *s };
        debug_assert!(span.state != SpanState::Free);
        self.arenas
            .set_spans(span.base, span.npages, ptr::null_mut());
        h.pages.free(span.base, span.npages);
        h.inuse_pages -= span.npages;
        span.state = SpanState::Free;
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
        let span = unsafe { &mut *s };
        let extra = npages - span.npages;
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
        span.npages = npages;
        span.elemsize = npages * PAGE_SIZE;
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
        let span = unsafe { &mut *s };
        let tail = span.base + npages * PAGE_SIZE;
        let extra = span.npages - npages;
        self.arenas.set_spans(tail, extra, ptr::null_mut());
        h.pages.free(tail, extra);
        h.inuse_pages -= extra;
        h.large_free_bytes += (extra * PAGE_SIZE) as u64;
        span.npages = npages;
        span.elemsize = npages * PAGE_SIZE;
    }
}
