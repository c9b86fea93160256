//! Arenas and the arena map: 64 MiB, 64 MiB-aligned heap regions, and the
//! two-level index that answers "which span holds this address?" for any
//! address, including ones goheap never mapped.
//!
//! See the crate docs for the overview.

use crate::os::{Os, OS_PAGE_SIZE};
use crate::sizeclass::{PAGE_SHIFT, PAGE_SIZE};
use crate::span::Span;
use crate::span::PageRecords;
use crate::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use crate::sync::{load_published, publish};
use core::ptr;

/// log2 of the arena size.
pub(crate) const ARENA_SHIFT: u32 = 26;
/// No arena's address has this bit: the heap profiler's region of
/// sampled objects (`profile`) has it in every address, so a sized free
/// tells a sampled object by its address alone. It splits the 47-bit
/// user space in halves; the kernel places mappings near the top of the
/// upper one, arenas start at Go's hint in the lower one.
pub(crate) const SAMPLED_ADDR_BIT: usize = 1 << 46;
/// Bytes per arena: 64 MiB, as in Go on 64-bit Linux.
pub(crate) const ARENA_BYTES: usize = 1 << ARENA_SHIFT;
/// goheap pages per arena.
pub(crate) const PAGES_PER_ARENA: usize = ARENA_BYTES / PAGE_SIZE;
/// Bits of user address space covered (x86-64 and aarch64 with 4-level
/// page tables).
#[cfg(not(miri))]
pub(crate) const ADDR_BITS: u32 = 48;
/// (Miri: as the page allocator's `HEAP_ADDR_BITS`, to keep the index
/// small.)
#[cfg(miri)]
pub(crate) const ADDR_BITS: u32 = 40;
/// Entries of the arena index (Go's L2; our L1 has a single entry).
pub(crate) const ARENA_INDEX_LEN: usize = 1 << (ADDR_BITS - ARENA_SHIFT);

/// Per-arena metadata (Go's heapArena).
#[repr(C)]
pub(crate) struct HeapArena {
    /// Span of each page, null for free pages. Written under the heap lock
    /// when a span is allocated or freed (Release); read without a lock by
    /// frees and `span_of` (Acquire): a pointer read here is either the
    /// current span of that page, or a stale one whose page the reader does
    /// not own (which only invalid frees can observe).
    pub(crate) spans: [AtomicPtr<Span>; PAGES_PER_ARENA],
    /// Each page's record for frees (see [`PageRecord`]): the size class
    /// of its small span (0: large object, collected heap, free page), the
    /// page's index in its span and the span's high-water mark as an
    /// address. The C `free` finds an object's class and whether it lies
    /// below the mark (so was handed out, in checked builds, and is not
    /// past the span's last object in any build) in this one load, without
    /// touching the span struct. Written with `spans` (heap lock) when a
    /// span is made or freed; the high-water field is raised by the span's
    /// cache owner (`Span::note_handed_out`). Read without a lock (Relaxed:
    /// a valid free happens after its allocation, which happened after both
    /// writes).
    pub(crate) pages: [AtomicU64; PAGES_PER_ARENA],
    /// Pages at or above this offset (bytes from the arena base) have never
    /// been handed out, so they still read as zero. Heap lock.
    pub(crate) zeroed_base: usize,
    /// The next arena in the order they were added (the heap checker walks
    /// them). Set once, under the heap lock, before publication.
    pub(crate) next: *mut HeapArena,
    /// The arena's first byte.
    pub(crate) base: usize,
}

/// The layout of a page record (`HeapArena::pages`), a `u64`:
///
/// | bits | field |
/// | --- | --- |
/// | 0..8 | size class of the page's small span; 0 when the page is not in one |
/// | 8..16 | the page's index in its span |
/// | 16..64 | the span's high-water mark as an address: objects starting at or past it were never handed out |
///
/// Checked builds raise the mark as the span's objects are handed out;
/// unchecked ones set it once, at the end of the span's last object. Either
/// way it is the span's base plus a multiple of the object size, so a free
/// learns everything it checks from one subtraction, `mark - addr`: not
/// positive, and `addr` is not below the mark of a small span (a record
/// of 0 gives `-addr`); positive, and it is a multiple of the object size
/// exactly when `addr` starts an object. An address keeps the mark whole,
/// so a span crossing an arena seam needs nothing special. Each page keeps
/// its own copy of the mark, exact for the objects starting on that page:
/// the owner rewrites only the pages the mark moves across (usually one),
/// since a page the mark has passed accepts all its objects whatever later
/// raises.
pub(crate) struct PageRecord;

impl PageRecord {
    const CLASS_MASK: u64 = 0xff;
    const PAGE_SHIFT: u32 = 8;
    const PAGE_MASK: u64 = 0xff;
    const MARK_SHIFT: u32 = 16;

    /// The record of page `page` (counted from the span's first) of a small
    /// span of `class` whose high-water mark is at address `mark`.
    #[inline(always)]
    pub(crate) fn small(class: usize, page: usize, mark: usize) -> u64 {
        debug_assert!(class > 0 && class as u64 <= Self::CLASS_MASK);
        debug_assert!(page as u64 <= Self::PAGE_MASK && mark >> ADDR_BITS == 0);
        class as u64 | (page as u64) << Self::PAGE_SHIFT | (mark as u64) << Self::MARK_SHIFT
    }
}

// Every small span's page index fits its field, and every address the mark
// field.
const _: () = {
    let mut class = 1;
    while class < crate::sizeclass::NUM_SIZE_CLASSES {
        let pages = crate::sizeclass::CLASS_TO_ALLOCNPAGES[class] as u64;
        assert!(pages <= PageRecord::PAGE_MASK + 1);
        class += 1;
    }
    assert!(ADDR_BITS <= 64 - PageRecord::MARK_SHIFT);
};

/// What the arena map says about an address in a small-object span.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SmallPage {
    /// The span's size class.
    pub(crate) class: usize,
    /// The address's byte offset from the span's first byte.
    pub(crate) offset: usize,
    /// The span's high-water mark as a byte offset: an object starting at
    /// or past it was never handed out (checked builds keep it current;
    /// unchecked ones have the end of the span's last object).
    pub(crate) hw_end: usize,
}

/// The arena index: one pointer per possible arena of the 48-bit space,
/// reserved as 32 MiB of virtual memory and backed only where touched.
pub(crate) struct ArenaMap {
    /// `ARENA_INDEX_LEN` entries. Set once at heap init; entries go from
    /// null to non-null under the heap lock and never back.
    index: AtomicPtr<AtomicPtr<HeapArena>>,
    /// The entries `index` has: 0 until it is set, then `ARENA_INDEX_LEN`
    /// (stored with Release after `index`). A lookup's one bound check
    /// covers both an address past the 48-bit space and a heap not yet
    /// set up.
    index_len: AtomicUsize,
    /// The arenas, newest first, linked through `HeapArena::next`. Heap
    /// lock for writers; readers hold the heap lock too.
    arenas: AtomicPtr<HeapArena>,
}

impl ArenaMap {
    pub(crate) const fn new() -> Self {
        ArenaMap {
            index: AtomicPtr::new(ptr::null_mut()),
            index_len: AtomicUsize::new(0),
            arenas: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Reserves the index. Heap lock held.
    pub(crate) fn init(&self, os: &dyn Os) -> bool {
        if !self.index.load(Ordering::Relaxed).is_null() {
            return true;
        }
        let bytes = ARENA_INDEX_LEN * core::mem::size_of::<AtomicPtr<HeapArena>>();
        let p = os.reserve(bytes, OS_PAGE_SIZE, 0);
        // SAFETY: `p` is a fresh reservation of `bytes` bytes.
        if p.is_null() || !unsafe { os.commit(p, bytes) } {
            return false;
        }
        self.index.store(p.cast(), Ordering::Relaxed);
        self.index_len.store(ARENA_INDEX_LEN, Ordering::Release);
        true
    }

    /// The arena metadata for `addr`, or null.
    #[inline(always)]
    pub(crate) fn arena_of(&self, addr: usize) -> *mut HeapArena {
        let i = addr >> ARENA_SHIFT;
        // Acquire: a non-zero length comes after the index it bounds.
        if i >= self.index_len.load(Ordering::Acquire) {
            return ptr::null_mut();
        }
        let index = self.index.load(Ordering::Relaxed);
        // SAFETY: `i < index_len`, so the index is set and `i` inside it.
        unsafe { load_published(&*index.add(i)) }
    }

    /// The span holding `addr`, or null if goheap has no in-use span there.
    #[inline(always)]
    pub(crate) fn span_of(&self, addr: usize) -> *mut Span {
        let arena = self.arena_of(addr);
        if arena.is_null() {
            return ptr::null_mut();
        }
        let page = (addr >> PAGE_SHIFT) & (PAGES_PER_ARENA - 1);
        // SAFETY: arenas are never freed, and `page < PAGES_PER_ARENA`.
        unsafe { load_published(&(*arena).spans[page]) }
    }

    /// Registers a new arena at `base`. Heap lock held. Returns the bytes
    /// of metadata this mapped (the arena's `HeapArena`, plus the index's
    /// OS page holding its entry if that page was untouched), or `None` if
    /// the OS refused.
    pub(crate) fn add_arena(&self, base: usize, os: &dyn Os) -> Option<usize> {
        let bytes = core::mem::size_of::<HeapArena>().next_multiple_of(OS_PAGE_SIZE);
        let meta = os.reserve(bytes, OS_PAGE_SIZE, 0);
        // SAFETY: fresh reservation; committed memory reads as zero, which is
        // a valid HeapArena (null spans, zeroed_base 0).
        if meta.is_null() || !unsafe { os.commit(meta, bytes) } {
            return None;
        }
        let index = self.index.load(Ordering::Relaxed);
        let i = base >> ARENA_SHIFT;
        // The index is backed lazily: count its OS page the first time an
        // entry on it is set.
        let per_page = OS_PAGE_SIZE / core::mem::size_of::<AtomicPtr<HeapArena>>();
        let first = i / per_page * per_page;
        // SAFETY: `first..first + per_page` lies inside the index.
        let page_untouched = (first..first + per_page)
            .all(|j| unsafe { (*index.add(j)).load(Ordering::Relaxed) }.is_null());
        let arena = meta.cast::<HeapArena>();
        // SAFETY: the metadata is ours and not yet published; the index is
        // initialised before any arena is added and `base` is a valid
        // 48-bit address.
        unsafe {
            (*arena).base = base;
            (*arena).next = self.arenas.load(Ordering::Relaxed);
            publish(&*index.add(i), arena);
        }
        self.arenas.store(arena, Ordering::Relaxed);
        crate::freelist::add_heap_range(base, ARENA_BYTES);
        Some(bytes + if page_untouched { OS_PAGE_SIZE } else { 0 })
    }

    /// Points every page of `[base, base + npages)` at `span` (or null).
    /// Heap lock held; the arenas exist.
    pub(crate) fn set_spans(&self, base: usize, npages: usize, span: *mut Span) {
        // SAFETY: a non-null span is a live span whose class is set.
        // Only malloc's small spans have page records (the C `free` reads
        // them); the collected heap's spans are 0 there, like large ones.
        let (class, mark) = if span.is_null() {
            (0, 0)
        } else {
            // SAFETY: as above.
            unsafe {
                if (*span).state() == crate::span::SpanState::Small {
                    debug_assert_eq!((*span).base.get(), base);
                    // A new small span has handed nothing out yet; without
                    // the checks, the mark stays at its last object's end.
                    let objects = (*span).nelems.get() * (*span).elemsize.get();
                    let mark = base + if crate::CHECKED { 0 } else { objects };
                    ((*span).class.get() as usize, mark)
                } else {
                    (0, 0)
                }
            }
        };
        let mut records = PageRecords::NONE;
        let mut addr = base;
        let end = base + npages * PAGE_SIZE;
        let mut i = 0usize;
        while addr < end {
            let arena = self.arena_of(addr);
            debug_assert!(!arena.is_null());
            let page = (addr >> PAGE_SHIFT) & (PAGES_PER_ARENA - 1);
            let record = if class == 0 {
                0
            } else {
                PageRecord::small(class, i, mark)
            };
            // SAFETY: the arena exists (the range was allocated from it).
            unsafe {
                let rec = &(*arena).pages[page];
                if i == 0 {
                    records.first = rec;
                } else if page == 0 {
                    // The span crosses into the next arena up.
                    records.seam = i;
                    records.past_seam = rec;
                }
                rec.store(record, Ordering::Relaxed);
                publish(&(*arena).spans[page], span);
            }
            addr += PAGE_SIZE;
            i += 1;
        }
        if class != 0 {
            // SAFETY: as above; no cache holds the new span yet.
            unsafe { (*span).set_page_records(records) };
        }
    }

    /// The arenas, newest first (heap lock held).
    pub(crate) fn arenas(&self) -> impl Iterator<Item = &HeapArena> {
        let mut a = self.arenas.load(Ordering::Relaxed);
        core::iter::from_fn(move || {
            if a.is_null() {
                return None;
            }
            // SAFETY: arenas are never freed.
            let arena = unsafe { &*a };
            a = arena.next;
            Some(arena)
        })
    }

    /// The size class of the small-object span holding `addr`, `addr`'s
    /// offset in it and the span's high-water mark, or `None` when `addr`
    /// is not in a small-object span (large object, free page, or memory
    /// goheap never mapped).
    #[inline]
    pub(crate) fn small_page(&self, addr: usize) -> Option<SmallPage> {
        let rec = self.page_record(addr);
        let class = (rec & PageRecord::CLASS_MASK) as usize;
        if class == 0 {
            return None;
        }
        let page = ((rec >> PageRecord::PAGE_SHIFT) & PageRecord::PAGE_MASK) as usize;
        let offset = page * PAGE_SIZE + (addr & (PAGE_SIZE - 1));
        let mark = (rec >> PageRecord::MARK_SHIFT) as usize;
        Some(SmallPage {
            class,
            offset,
            hw_end: mark - (addr - offset),
        })
    }

    /// For a free, the one question of its fast path: the size class of
    /// the small-object span holding `addr` and the bytes from `addr` up
    /// to the span's high-water mark, when `addr` is below the mark; `None`
    /// when it is not (not in a small-object span at all, or at or past the
    /// mark: never handed out, or past the span's last object). The bytes
    /// to the mark are a multiple of the object size exactly when `addr`
    /// starts an object (see [`PageRecord`]).
    #[inline(always)]
    pub(crate) fn small_below_mark(&self, addr: usize) -> Option<(usize, usize)> {
        // `page_record`'s steps, but leaving at once without an arena: its
        // 0 for that case, merged with the records, cost the C `free` two
        // jumps on its way.
        let arena = self.arena_of(addr);
        if arena.is_null() {
            return None;
        }
        let page = (addr >> PAGE_SHIFT) & (PAGES_PER_ARENA - 1);
        // SAFETY: arenas are never freed, and `page < PAGES_PER_ARENA`.
        let rec = unsafe { (*arena).pages[page].load(Ordering::Relaxed) };
        // A record of 0 (no small span) has its mark at 0, at or below
        // every address, like an address at or past a mark. (One compare
        // and one subtraction, which the compiler makes one `sub`.)
        let mark = (rec >> PageRecord::MARK_SHIFT) as usize;
        if mark <= addr {
            return None;
        }
        Some(((rec & PageRecord::CLASS_MASK) as usize, mark - addr))
    }

    /// The page record of `addr` (0 where goheap has no arena).
    #[inline(always)]
    fn page_record(&self, addr: usize) -> u64 {
        let arena = self.arena_of(addr);
        if arena.is_null() {
            return 0;
        }
        let page = (addr >> PAGE_SHIFT) & (PAGES_PER_ARENA - 1);
        // SAFETY: arenas are never freed, and `page < PAGES_PER_ARENA`.
        unsafe { (*arena).pages[page].load(Ordering::Relaxed) }
    }

    /// Whether `[base, base + npages)` still reads as zero because none of
    /// it was handed out since it was mapped; records that it now is.
    /// Heap lock held.
    pub(crate) fn alloc_needs_zero(&self, base: usize, npages: usize) -> bool {
        let mut needzero = false;
        let mut addr = base;
        let end = base + npages * PAGE_SIZE;
        while addr < end {
            let arena = self.arena_of(addr);
            let arena_base = addr & !(ARENA_BYTES - 1);
            let off = addr - arena_base;
            let arena_end = (arena_base + ARENA_BYTES).min(end);
            // SAFETY: the arena exists; heap lock held for `zeroed_base`.
            let zb = unsafe { &mut (*arena).zeroed_base };
            if off < *zb {
                needzero = true;
            }
            let new_end = arena_end - arena_base;
            if new_end > *zb {
                *zb = new_end;
            }
            addr = arena_end;
        }
        needzero
    }
}
