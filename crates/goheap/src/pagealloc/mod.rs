//! The page allocator: which 8 KiB pages of the heap's address space are
//! free. It hands out runs of pages by address-ordered first fit.
//!
//! See the crate docs for the overview. This is a port of Go's `pageAlloc`
//! (`mpagealloc.go`, `mpallocbits.go`, and the candidate search in
//! `mgcscavenge.go`).
//!
//! # Layout
//!
//! The 48-bit address space is cut into 4 MiB *chunks* of 512 pages. Each
//! chunk the heap has grown into has two 512-bit bitmaps ([`bitmap`]): one
//! bit per page saying whether it is allocated, and one saying whether the
//! free page's memory has been returned to the OS ("scavenged").
//!
//! Above the bitmaps sits a radix tree of [`summary`] nodes: for every
//! aligned stretch of address space, the number of free pages at its low
//! end, the longest free run inside it, and the number of free pages at its
//! high end. Leaves summarise one chunk; each of the 5 levels has fan-out 8
//! except the root, whose 2^14 entries cover 16 GiB each. The tree is
//! implicit: each level is one flat array indexed by address.
//!
//! # Metadata memory
//!
//! All metadata for the whole address space (8 GiB of chunk bitmaps and
//! 585 MiB of summaries) is one `PROT_NONE` reservation made by
//! [`init`](PageAlloc::init). [`grow`](PageAlloc::grow) commits, in 64 KiB
//! grains, only the parts that describe memory the heap actually has; a
//! small bitmap at the end of the reservation records which grains are
//! committed. Nothing here allocates through the Rust heap.
//!
//! Parts of the arrays that describe memory the heap never grew into read
//! as "no free page" (a zero summary), so no search ever descends into
//! them. The summary arrays are committed in whole blocks of 8 siblings, so
//! a non-zero parent always has committed children.
//!
//! # Searching
//!
//! `alloc` looks first in the chunk holding `search_addr`, a lower bound on
//! the address of every free page. Otherwise it walks down the tree from
//! the root, at each level scanning the 8 children of the node it chose:
//! a child whose `max` is large enough is descended into, and runs that
//! straddle siblings are assembled from one child's `end` and the next
//! one's `start`. Both paths find the lowest-addressed fit. Allocating and
//! freeing rewrite the leaf summaries of the chunks touched and then the
//! parents, stopping as soon as a level is unchanged.
//!
//! # Scavenging
//!
//! Memory from [`grow`](PageAlloc::grow) is marked scavenged: the OS has not
//! backed it with physical pages yet. Allocation clears the scavenged bits
//! of its range and reports how many were set. The scavenger releases free
//! memory from the highest addresses down without holding the heap lock
//! during the system call:
//!
//! 1. with the lock held, [`find_scavenge_candidate`] finds a run of free,
//!    unscavenged pages and allocates it, so nobody else can take it;
//! 2. without the lock, the caller releases the memory
//!    ([`Os::decommit`]);
//! 3. with the lock held again, [`mark_scavenged`] frees the run with its
//!    scavenged bits set.
//!
//! # Locking
//!
//! Not thread-safe: every method takes `&mut self` or `&self`, and the heap
//! calls them with its lock held.
//!
//! [`find_scavenge_candidate`]: PageAlloc::find_scavenge_candidate
//! [`mark_scavenged`]: PageAlloc::mark_scavenged

// The heap that will own a `PageAlloc` is not written yet; until then only
// tests and the `internals` feature use this module.
#![cfg_attr(not(feature = "internals"), allow(dead_code, unreachable_pub))]

mod bitmap;
mod summary;
#[cfg(test)]
mod tests;

use crate::os::Os;
use crate::sizeclass::PAGE_SIZE;
use bitmap::ChunkBits;
use summary::{
    align_to_blocks, entries_for, level_entries, Summary, HEAP_ADDR_BITS, LEAF, LEVELS, LEVEL_BITS,
    LEVEL_LOG_PAGES, LEVEL_SHIFT,
};

const _: () = assert!(
    usize::BITS == 64,
    "the page allocator covers a 48-bit address space"
);

/// Pages of a transparent huge page (2 MiB on x86-64 and on arm64 with
/// 4 KiB OS pages): a chunk holds two, aligned.
pub const HUGE_PAGE_PAGES: usize = (2 << 20) / PAGE_SIZE;

/// Which free pages a scavenge candidate search may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// Any free, unscavenged run (synchronous releases: the memory limit,
    /// `free_os_memory`).
    All,
    /// Not in chunks that are nearly full (fewer than [`DENSE_FREE_PAGES`]
    /// free pages): releasing their few free pages would break up huge
    /// pages the heap is using, for little gain (Go's density rule).
    SkipDense,
    /// Only whole aligned huge pages ([`HUGE_PAGE_PAGES`]) that are free
    /// and resident: releasing one gives its huge page back whole, so
    /// reusing the memory faults in a huge page again instead of 512 small
    /// ones (and nothing is left for `khugepaged` to fill back in).
    WholeHugePages,
}

/// log2 of [`CHUNK_PAGES`].
const LOG_CHUNK_PAGES: u32 = 9;
/// Pages per chunk (4 MiB), the unit in which the heap grows.
pub const CHUNK_PAGES: usize = 1 << LOG_CHUNK_PAGES;
/// Bytes per chunk.
pub const CHUNK_BYTES: usize = CHUNK_PAGES * PAGE_SIZE;
/// A chunk with fewer free pages than this (96.875 % in use, as in Go) is
/// dense: the background scavenger leaves it alone.
pub const DENSE_FREE_PAGES: usize = CHUNK_PAGES / 32;

/// One past the highest address the allocator can manage.
const ADDR_LIMIT: usize = 1 << HEAP_ADDR_BITS;
/// Chunks in the address space.
const MAX_CHUNKS: usize = ADDR_LIMIT / CHUNK_BYTES;

// Layout of the metadata reservation, in bytes from its base: the chunk
// bitmaps, then summary levels 0 to 4, then the bitmap of committed grains.
// Every part starts on a grain boundary.

/// Metadata is committed in grains of this size: a multiple of every OS
/// page size we support (4, 16 and 64 KiB).
const GRAIN: usize = 64 << 10;
const CHUNKS_OFFSET: usize = 0;
/// Bytes of one chunk's bitmaps.
const CHUNK_META_BYTES: usize = core::mem::size_of::<ChunkBits>();
/// Bytes of one summary.
const SUMMARY_BYTES: usize = core::mem::size_of::<Summary>();
const CHUNKS_BYTES: usize = MAX_CHUNKS * CHUNK_META_BYTES;
const SUMMARY_OFFSET: [usize; LEVELS] = {
    let mut offset = [0; LEVELS];
    let mut next = CHUNKS_OFFSET + CHUNKS_BYTES;
    let mut l = 0;
    while l < LEVELS {
        offset[l] = next;
        // Each level starts on a grain (a small address space, as under
        // Miri, has levels smaller than one).
        next += (level_entries(l) * SUMMARY_BYTES).next_multiple_of(GRAIN);
        l += 1;
    }
    offset
};
/// Bytes of the arrays whose grains are tracked.
const TRACKED_BYTES: usize =
    SUMMARY_OFFSET[LEAF] + (level_entries(LEAF) * SUMMARY_BYTES).next_multiple_of(GRAIN);
const COMMIT_MAP_OFFSET: usize = TRACKED_BYTES;
const COMMIT_MAP_BYTES: usize = (TRACKED_BYTES / GRAIN).div_ceil(8).next_multiple_of(GRAIN);
const RESERVED_BYTES: usize = COMMIT_MAP_OFFSET + COMMIT_MAP_BYTES;

const _: () = assert!(CHUNK_META_BYTES == 128);
const _: () = assert!(CHUNKS_BYTES % GRAIN == 0 && SUMMARY_OFFSET[0] % GRAIN == 0);
const _: () = assert!(TRACKED_BYTES % GRAIN == 0);
// One grain of any summary level holds the entries of at least as many
// (aligned) chunks as one grain of chunk bitmaps, and whole blocks of
// siblings; so a committed chunk bitmap implies committed summaries above
// it (see `has_metadata`).
const _: () = assert!(GRAIN / SUMMARY_BYTES >= GRAIN / CHUNK_META_BYTES);
const _: () = assert!(GRAIN / SUMMARY_BYTES >= 1 << LEVEL_BITS[1]);

/// Index of a chunk: its address divided by [`CHUNK_BYTES`] (Go's
/// `chunkIdx`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct ChunkIdx(usize);

impl ChunkIdx {
    /// The chunk holding `addr`.
    #[inline]
    fn of(addr: usize) -> ChunkIdx {
        ChunkIdx(addr / CHUNK_BYTES)
    }

    /// The chunk's first address.
    #[inline]
    fn base(self) -> usize {
        self.0 * CHUNK_BYTES
    }
}

/// Index within its chunk of the page holding `addr`.
#[inline]
fn page_in_chunk(addr: usize) -> usize {
    addr % CHUNK_BYTES / PAGE_SIZE
}

/// Splits the pages `[base, base + npages * PAGE_SIZE)` by chunk:
/// `(chunk, first page in it, pages in it)` in address order.
fn by_chunk(base: usize, npages: usize) -> impl Iterator<Item = (ChunkIdx, usize, usize)> {
    let limit = base + npages * PAGE_SIZE;
    let mut addr = base;
    core::iter::from_fn(move || {
        if addr >= limit {
            return None;
        }
        let ci = ChunkIdx::of(addr);
        let first = page_in_chunk(addr);
        let n = (CHUNK_PAGES - first).min((limit - addr) / PAGE_SIZE);
        addr += n * PAGE_SIZE;
        Some((ci, first, n))
    })
}

/// The free pages of the heap: an address-ordered first-fit page allocator
/// over per-chunk bitmaps and a radix tree of free-run summaries.
///
/// Addresses are plain numbers here: the allocator never touches the heap
/// memory it manages, only its own metadata.
pub struct PageAlloc {
    /// Where metadata memory comes from; `None` until [`init`](Self::init).
    os: Option<&'static dyn Os>,
    /// Base of the metadata reservation (see the layout constants), or null.
    meta: *mut u8,
    /// Bytes of metadata committed so far.
    meta_committed: usize,
    /// No page below this address is free. It may point into memory the
    /// heap does not have (or be [`ADDR_LIMIT`] before the first growth).
    search_addr: usize,
    /// No scavenge candidate (free, unscavenged, whole OS page) lies at or
    /// above this address. Frees raise it; the candidate search lowers it.
    scav_addr: usize,
    /// Lowest chunk grown into, and one past the highest.
    start: ChunkIdx,
    end: ChunkIdx,
    /// Free pages.
    free_pages: usize,
    /// Free pages marked scavenged.
    scavenged_pages: usize,
    /// Runtime pages per OS page: the granularity of scavenging.
    scav_min_pages: usize,
}

impl core::fmt::Debug for PageAlloc {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PageAlloc")
            .field("chunks", &(self.start.0..self.end.0))
            .field("free_pages", &self.free_pages)
            .field("scavenged_pages", &self.scavenged_pages)
            .field("search_addr", &(self.search_addr as *const u8))
            .field("scav_addr", &(self.scav_addr as *const u8))
            .field("meta_committed", &self.meta_committed)
            .finish()
    }
}

// SAFETY: the metadata reservation is owned by this value alone and only
// reached through `&self`/`&mut self`; the `Os` is `Sync`.
unsafe impl Send for PageAlloc {}

impl Default for PageAlloc {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PageAlloc {
    fn drop(&mut self) {
        if let Some(os) = self.os {
            // SAFETY: `meta` is our reservation of `RESERVED_BYTES`, and
            // nothing can use it once we are gone.
            unsafe { os.release(self.meta, RESERVED_BYTES) };
        }
    }
}

impl PageAlloc {
    /// An allocator with no memory; [`init`](Self::init) must run before
    /// [`grow`](Self::grow).
    pub const fn new() -> Self {
        PageAlloc {
            os: None,
            meta: core::ptr::null_mut(),
            meta_committed: 0,
            search_addr: ADDR_LIMIT,
            scav_addr: 0,
            start: ChunkIdx(0),
            end: ChunkIdx(0),
            free_pages: 0,
            scavenged_pages: 0,
            scav_min_pages: 1,
        }
    }

    /// Reserves address space for the metadata (about 8.6 GiB, none of it
    /// committed yet except a 64 KiB map of what is). Returns false if the
    /// OS refuses. Calling it again does nothing.
    pub fn init(&mut self, os: &'static dyn Os) -> bool {
        if self.os.is_some() {
            return true;
        }
        let meta = os.reserve(RESERVED_BYTES, GRAIN, 0);
        if meta.is_null() {
            return false;
        }
        // SAFETY: the commit map lies inside the reservation just made.
        if !unsafe { os.commit(meta.add(COMMIT_MAP_OFFSET), COMMIT_MAP_BYTES) } {
            // SAFETY: the reservation is ours and unused.
            unsafe { os.release(meta, RESERVED_BYTES) };
            return false;
        }
        let os_page = os.page_size().max(PAGE_SIZE);
        debug_assert!(os_page.is_power_of_two() && os_page / PAGE_SIZE <= 64);
        self.os = Some(os);
        self.meta = meta;
        self.meta_committed = COMMIT_MAP_BYTES;
        self.scav_min_pages = os_page / PAGE_SIZE;
        true
    }

    /// Adds `[base, base + bytes)`, which must be newly mapped and never
    /// added before, as free and scavenged memory. Returns false, with
    /// nothing added, if the range is empty or not chunk-aligned, lies
    /// beyond the 48-bit address space, [`init`](Self::init) has not run,
    /// or the OS refuses to commit the metadata.
    pub fn grow(&mut self, base: usize, bytes: usize) -> bool {
        let aligned = base % CHUNK_BYTES == 0 && bytes % CHUNK_BYTES == 0 && bytes > 0;
        debug_assert!(
            aligned,
            "goheap: page allocator grown by an unaligned range"
        );
        if !aligned {
            return false;
        }
        let Some(limit) = base.checked_add(bytes).filter(|&l| l <= ADDR_LIMIT) else {
            return false;
        };
        if self.os.is_none() || !self.commit_metadata(base, limit) {
            return false;
        }
        let (sc, ec) = (ChunkIdx::of(base), ChunkIdx::of(limit));
        for c in sc.0..ec.0 {
            debug_assert!(
                self.sum(LEAF, c).is_none() && self.chunk(ChunkIdx(c)).free_count() == CHUNK_PAGES,
                "goheap: page allocator grown over memory it already has"
            );
            let chunk = self.chunk_mut(ChunkIdx(c));
            chunk.alloc.0 = [0; 8];
            chunk.scavenged.0 = [u64::MAX; 8];
        }
        if self.end.0 == 0 || sc < self.start {
            self.start = sc;
        }
        self.end = self.end.max(ec);
        // Growing is like freeing scavenged memory, except that the scavenger
        // has nothing new to look at.
        self.search_addr = self.search_addr.min(base);
        let npages = bytes / PAGE_SIZE;
        self.update(base, npages, false);
        self.free_pages += npages;
        self.scavenged_pages += npages;
        true
    }

    /// Allocates `npages` contiguous pages at the lowest address where they
    /// fit. Returns the base address and how many of the pages were
    /// scavenged (their memory was released to the OS while free; the
    /// caller now counts it as in use again).
    pub fn alloc(&mut self, npages: usize) -> Option<(usize, usize)> {
        if npages == 0 || npages > self.free_pages {
            return None;
        }
        let (addr, first_free) = match self.find_near_search_addr(npages) {
            Some(found) => found,
            None => self.find(npages)?,
        };
        let scavenged = self.alloc_range(addr, npages);
        // Everything below the first free page found is allocated.
        self.search_addr = self.search_addr.max(first_free);
        Some((addr, scavenged))
    }

    /// Allocates exactly `[base, base + npages * PAGE_SIZE)` if every page
    /// of it is free (in-place growth of a large object). Returns how many
    /// of the pages were scavenged, or `None` (changing nothing) if any
    /// page is allocated or outside the heap.
    pub fn alloc_at(&mut self, base: usize, npages: usize) -> Option<usize> {
        if npages == 0 || base % PAGE_SIZE != 0 {
            return None;
        }
        let limit = npages
            .checked_mul(PAGE_SIZE)
            .and_then(|b| base.checked_add(b))?;
        if limit > ADDR_LIMIT {
            return None;
        }
        for (ci, first, n) in by_chunk(base, npages) {
            // A chunk never grown into has a zero summary; so has a full one.
            if !self.has_metadata(ci)
                || self.sum(LEAF, ci.0).max() < n
                || !self.chunk(ci).is_free(first, n)
            {
                return None;
            }
        }
        // `search_addr` stays a valid lower bound: we only removed pages.
        Some(self.alloc_range(base, npages))
    }

    /// Frees `[base, base + npages * PAGE_SIZE)`, which must be allocated
    /// (all or part of what `alloc`/`alloc_at` returned). The pages count
    /// as unscavenged: the caller may have touched them.
    ///
    /// # Panics
    ///
    /// If the range lies outside the memory the allocator was grown with
    /// (detected at chunk granularity).
    pub fn free(&mut self, base: usize, npages: usize) {
        if npages == 0 {
            return;
        }
        self.free_range(base, npages, false);
        self.scav_addr = self.scav_addr.max(base + npages * PAGE_SIZE);
    }

    /// Free pages.
    pub fn free_pages(&self) -> usize {
        self.free_pages
    }

    /// Free pages whose memory has been released to the OS (or was never
    /// backed: freshly grown memory counts here).
    pub fn scavenged_pages(&self) -> usize {
        self.scavenged_pages
    }

    /// Free pages still backed by physical memory: what the scavenger could
    /// release ([`free_pages`](Self::free_pages) minus
    /// [`scavenged_pages`](Self::scavenged_pages)).
    pub fn unscavenged_free_pages(&self) -> usize {
        self.free_pages - self.scavenged_pages
    }

    /// Bytes of OS memory committed for the allocator's own metadata.
    pub fn metadata_bytes(&self) -> usize {
        self.meta_committed
    }

    /// Finds the highest run of free, unscavenged pages (at most
    /// `max_pages`, rounded up to whole OS pages, and never crossing a
    /// chunk boundary) and allocates it so that nobody else takes it while
    /// the caller releases its memory without holding the heap lock.
    /// Returns `(base, npages)`; `base` and `npages * PAGE_SIZE` are
    /// multiples of the OS page size.
    ///
    /// The caller must then hand the run back with
    /// [`mark_scavenged`](Self::mark_scavenged) once its memory is released,
    /// or with [`free`](Self::free) if it decides not to release it.
    ///
    /// Successive calls walk down the address space; frees above the last
    /// run found raise the starting point again. A walk that finds nothing
    /// costs time proportional to the number of chunks with free pages
    /// below the starting point.
    pub fn find_scavenge_candidate(&mut self, max_pages: usize) -> Option<(usize, usize)> {
        self.find_scavenge_candidate_in(max_pages, Scan::All)
    }

    /// Restarts candidate searches from the top of the heap. A search
    /// that skipped dense chunks may have moved past them; a full pass
    /// (forced release, or a new background cycle) rewinds first.
    pub fn rewind_scavenge(&mut self) {
        if self.free_pages > self.scavenged_pages {
            self.scav_addr = self.end.base();
        }
    }

    /// Like [`find_scavenge_candidate`](Self::find_scavenge_candidate), but
    /// only over what `scan` allows (see [`Scan`]). Runs passed over stay
    /// candidates for a later, wider search.
    pub fn find_scavenge_candidate_in(
        &mut self,
        max_pages: usize,
        scan: Scan,
    ) -> Option<(usize, usize)> {
        let skip_dense = scan != Scan::All;
        let min = self.scav_min_pages;
        if self.free_pages - self.scavenged_pages < min {
            // Not one OS page's worth of candidates anywhere.
            self.scav_addr = 0;
        }
        if self.scav_addr == 0 {
            return None;
        }
        let last = self.scav_addr - 1;
        let mut ci = ChunkIdx::of(last);
        while let Some(c) = self.highest_chunk_with_free(ci) {
            let top = if c == ChunkIdx::of(last) {
                page_in_chunk(last)
            } else {
                CHUNK_PAGES - 1
            };
            let dense = skip_dense && self.chunk(c).free_count() < DENSE_FREE_PAGES;
            let found = if dense {
                None
            } else if scan == Scan::WholeHugePages {
                (self.sum(LEAF, c.0).max() >= HUGE_PAGE_PAGES)
                    .then(|| self.chunk(c).find_free_unscavenged_group(top, HUGE_PAGE_PAGES))
                    .flatten()
                    .map(|first| (first, HUGE_PAGE_PAGES))
            } else if self.sum(LEAF, c.0).max() >= min {
                self.chunk(c).find_scavenge_candidate(top, min, max_pages)
            } else {
                None
            };
            if let Some((first, n)) = found {
                let base = c.base() + first * PAGE_SIZE;
                let was_scavenged = self.alloc_range(base, n);
                debug_assert_eq!(was_scavenged, 0);
                // A search for whole huge pages passes over smaller runs
                // above the one it found: the next wider search must still
                // start above them.
                if scan != Scan::WholeHugePages {
                    self.scav_addr = base;
                }
                return Some((base, n));
            }
            if c.0 == 0 {
                break;
            }
            ci = ChunkIdx(c.0 - 1);
        }
        if !skip_dense {
            self.scav_addr = 0;
        }
        None
    }

    /// Frees a run returned by
    /// [`find_scavenge_candidate`](Self::find_scavenge_candidate), whose
    /// memory the caller has since released to the OS, marking its pages
    /// scavenged.
    ///
    /// # Panics
    ///
    /// As [`free`](Self::free).
    pub fn mark_scavenged(&mut self, base: usize, npages: usize) {
        if npages == 0 {
            return;
        }
        self.free_range(base, npages, true);
    }
}

// Searching.
impl PageAlloc {
    /// The fast path of `alloc`: a fit in the chunk that holds
    /// `search_addr`. Returns `(address, first free address)`.
    #[inline]
    fn find_near_search_addr(&self, npages: usize) -> Option<(usize, usize)> {
        let ci = ChunkIdx::of(self.search_addr);
        let first = page_in_chunk(self.search_addr);
        if ci >= self.end || CHUNK_PAGES - first < npages || !self.has_metadata(ci) {
            return None;
        }
        if self.sum(LEAF, ci.0).max() < npages {
            return None;
        }
        // Every free page of the chunk lies at or above `first`, so its
        // longest run does too.
        let found = self.chunk(ci).find(npages, first);
        debug_assert!(
            found.is_some(),
            "goheap: page summary promised a run that is not there"
        );
        let (page, first_free) = found?;
        Some((
            ci.base() + page * PAGE_SIZE,
            ci.base() + first_free * PAGE_SIZE,
        ))
    }

    /// The full tree search for the lowest run of `npages` free pages.
    /// Returns its address and a new value for `search_addr` (a lower bound
    /// on the first free page, at least the old one).
    fn find(&self, npages: usize) -> Option<(usize, usize)> {
        // The narrowest stretch of address space known to hold the first
        // free page, as [lo, hi] inclusive. It narrows while the search
        // follows the first free page down the tree, and stops narrowing
        // once the search has to look past it for a larger run.
        let mut first_free = (0usize, ADDR_LIMIT - 1);
        fn narrow(window: &mut (usize, usize), lo: usize, len: usize) {
            let hi = lo + len - 1;
            if window.0 <= lo && hi <= window.1 {
                *window = (lo, hi);
            }
        }
        if self.end.0 == 0 {
            return None;
        }

        // Index of the first entry of the block of siblings being scanned.
        let mut i = 0;
        'levels: for l in 0..LEVELS {
            let log_pages = LEVEL_LOG_PAGES[l];
            let entry_pages = 1usize << log_pages;
            i <<= LEVEL_BITS[l];
            let mut block_len = 1usize << LEVEL_BITS[l];
            if l == 0 {
                // Root entries above the highest chunk are all empty.
                block_len = entries_for(0, 0, self.end.base()).1;
            }
            // Entries below search_addr have nothing free.
            let j0 = (self.search_addr >> LEVEL_SHIFT[l])
                .saturating_sub(i)
                .min(block_len);

            // The candidate run being assembled across sibling boundaries:
            // its first page (relative to entry i) and its length so far.
            let (mut run_start, mut run) = (0, 0);
            for j in j0..block_len {
                let sum = self.sum(l, i + j);
                if sum.is_none() {
                    run = 0;
                    continue;
                }
                narrow(
                    &mut first_free,
                    (i + j) << LEVEL_SHIFT[l],
                    1 << LEVEL_SHIFT[l],
                );
                let (start, max, end) = sum.unpack();
                if run + start >= npages {
                    if run == 0 {
                        run_start = j << log_pages;
                    }
                    run += start;
                    break;
                }
                if max >= npages {
                    // The run lies inside this entry: descend.
                    i += j;
                    continue 'levels;
                }
                if run == 0 || start < entry_pages {
                    // Start over with the free pages at this entry's top.
                    run = end;
                    run_start = ((j + 1) << log_pages) - end;
                } else {
                    // The whole entry is free: the run continues through it.
                    run += entry_pages;
                }
            }
            if run >= npages {
                let addr = (i << LEVEL_SHIFT[l]) + run_start * PAGE_SIZE;
                return Some((addr, first_free.0));
            }
            assert!(l == 0, "goheap: page summaries are inconsistent");
            return None;
        }

        // The leaf at `i` holds the run.
        let ci = ChunkIdx(i);
        let Some((page, first_free_page)) = self.chunk(ci).find(npages, 0) else {
            panic!("goheap: chunk summary promised a run that is not there");
        };
        let first_free_addr = ci.base() + first_free_page * PAGE_SIZE;
        narrow(
            &mut first_free,
            first_free_addr,
            ChunkIdx(ci.0 + 1).base() - first_free_addr,
        );
        Some((ci.base() + page * PAGE_SIZE, first_free.0))
    }

    /// The highest chunk at or below `ci` that has a free page.
    fn highest_chunk_with_free(&self, ci: ChunkIdx) -> Option<ChunkIdx> {
        // Climb: look left of the current position within its block of
        // siblings, then move to the parent's left neighbour.
        let mut l = LEAF;
        let mut hi = ci.0 + 1; // search [block start, hi) at level l
        let mut found = loop {
            let block_start = (hi - 1) & !((1usize << LEVEL_BITS[l]) - 1);
            if let Some(i) = (block_start..hi)
                .rev()
                .find(|&i| !self.sum_checked(l, i).is_none())
            {
                break i;
            }
            let parent = block_start >> LEVEL_BITS[l];
            if l == 0 || parent == 0 {
                return None;
            }
            l -= 1;
            hi = parent;
        };
        // Descend along the highest non-empty child.
        while l < LEAF {
            let children = self.children(l, found);
            let Some(j) = children.iter().rposition(|s| !s.is_none()) else {
                panic!("goheap: page summaries are inconsistent");
            };
            found = (found << LEVEL_BITS[l + 1]) + j;
            l += 1;
        }
        Some(ChunkIdx(found))
    }
}

// Updating the bitmaps and summaries.
impl PageAlloc {
    /// Marks the (free) pages allocated, clears their scavenged bits and
    /// updates the summaries and counters. Returns how many were scavenged.
    fn alloc_range(&mut self, base: usize, npages: usize) -> usize {
        let mut scavenged = 0;
        for (ci, first, n) in by_chunk(base, npages) {
            scavenged += self.chunk_mut(ci).alloc_range(first, n);
        }
        self.update(base, npages, true);
        self.free_pages -= npages;
        self.scavenged_pages -= scavenged;
        scavenged
    }

    /// Marks the (allocated) pages free, and scavenged if `scavenged`, and
    /// updates the summaries, counters and `search_addr`.
    fn free_range(&mut self, base: usize, npages: usize, scavenged: bool) {
        assert!(
            base % PAGE_SIZE == 0
                && npages
                    .checked_mul(PAGE_SIZE)
                    .and_then(|bytes| base.checked_add(bytes))
                    .is_some_and(|limit| limit <= ADDR_LIMIT)
                && by_chunk(base, npages).all(|(ci, _, _)| self.has_metadata(ci)),
            "goheap: page allocator asked to free memory it does not manage"
        );
        for (ci, first, n) in by_chunk(base, npages) {
            self.chunk_mut(ci).free_range(first, n, scavenged);
        }
        self.update(base, npages, false);
        self.search_addr = self.search_addr.min(base);
        self.free_pages += npages;
        if scavenged {
            self.scavenged_pages += npages;
        }
    }

    /// Recomputes the summaries over `[base, base + npages)` after its
    /// bitmaps changed. Chunks strictly inside the range were wholly
    /// allocated (`alloc`) or wholly freed.
    fn update(&mut self, base: usize, npages: usize, alloc: bool) {
        let limit = base + npages * PAGE_SIZE;
        let (sc, ec) = (ChunkIdx::of(base), ChunkIdx::of(limit - 1));
        if sc == ec {
            let sum = self.chunk(sc).summarize();
            if self.sum(LEAF, sc.0) == sum {
                return;
            }
            self.set_sum(LEAF, sc.0, sum);
        } else {
            let inner = if alloc {
                Summary::NONE
            } else {
                Summary::FREE_CHUNK
            };
            for c in sc.0 + 1..ec.0 {
                self.set_sum(LEAF, c, inner);
            }
            let (first, last) = (self.chunk(sc).summarize(), self.chunk(ec).summarize());
            self.set_sum(LEAF, sc.0, first);
            self.set_sum(LEAF, ec.0, last);
        }
        for l in (0..LEAF).rev() {
            let (lo, hi) = entries_for(l, base, limit);
            let mut changed = false;
            for i in lo..hi {
                let sum = Summary::merge(self.children(l, i), LEVEL_LOG_PAGES[l + 1]);
                if self.sum(l, i) != sum {
                    self.set_sum(l, i, sum);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }
}

// Metadata memory.
//
// Invariant: every grain that holds the bitmap of a grown chunk, or a
// summary entry (at any level) covering a grown chunk together with its
// block of siblings, is committed. Grains never become uncommitted.
impl PageAlloc {
    /// Commits the metadata describing `[base, limit)`: the summaries
    /// first, so that a committed chunk bitmap implies committed summaries
    /// even if the OS refuses part way.
    fn commit_metadata(&mut self, base: usize, limit: usize) -> bool {
        for (l, &offset) in SUMMARY_OFFSET.iter().enumerate() {
            let (lo, hi) = entries_for(l, base, limit);
            let (lo, hi) = align_to_blocks(l, lo, hi);
            if !self.commit(offset + lo * SUMMARY_BYTES, offset + hi * SUMMARY_BYTES) {
                return false;
            }
        }
        let (sc, ec) = (ChunkIdx::of(base), ChunkIdx::of(limit));
        self.commit(
            CHUNKS_OFFSET + sc.0 * CHUNK_META_BYTES,
            CHUNKS_OFFSET + ec.0 * CHUNK_META_BYTES,
        )
    }

    /// Commits the grains overlapping metadata bytes `[lo, hi)` that are not
    /// committed yet.
    fn commit(&mut self, lo: usize, hi: usize) -> bool {
        let Some(os) = self.os else { return false };
        let (first, last) = (lo / GRAIN, hi.div_ceil(GRAIN));
        let mut g = first;
        while g < last {
            if self.grain_committed(g) {
                g += 1;
                continue;
            }
            let run_start = g;
            while g < last && !self.grain_committed(g) {
                g += 1;
            }
            let bytes = (g - run_start) * GRAIN;
            // SAFETY: grains below TRACKED_BYTES / GRAIN lie inside the
            // reservation (`hi <= TRACKED_BYTES` for every caller).
            if !unsafe { os.commit(self.meta.add(run_start * GRAIN), bytes) } {
                return false;
            }
            for grain in run_start..g {
                self.set_grain_committed(grain);
            }
            self.meta_committed += bytes;
        }
        true
    }

    /// Whether metadata grain `g` is committed.
    #[inline]
    fn grain_committed(&self, g: usize) -> bool {
        debug_assert!(g < TRACKED_BYTES / GRAIN);
        if self.meta.is_null() {
            return false;
        }
        // SAFETY: the commit map is committed in `init`, and word `g / 64`
        // lies inside it because `g < TRACKED_BYTES / GRAIN`.
        let word = unsafe { *self.meta.add(COMMIT_MAP_OFFSET).cast::<u64>().add(g / 64) };
        word >> (g % 64) & 1 != 0
    }

    fn set_grain_committed(&mut self, g: usize) {
        debug_assert!(g < TRACKED_BYTES / GRAIN && !self.meta.is_null());
        // SAFETY: as in `grain_committed`; `&mut self` makes this the only
        // access.
        unsafe { *self.meta.add(COMMIT_MAP_OFFSET).cast::<u64>().add(g / 64) |= 1 << (g % 64) };
    }

    /// Whether chunk `ci`'s bitmaps are committed. If so, so are all the
    /// summaries covering it: the chunk bitmap grain was committed for a
    /// chunk within the same 512-chunk grain, and every summary grain (and
    /// block) covering `ci` also covers that chunk.
    #[inline]
    fn has_metadata(&self, ci: ChunkIdx) -> bool {
        ci.0 < MAX_CHUNKS && self.grain_committed((CHUNKS_OFFSET + ci.0 * CHUNK_META_BYTES) / GRAIN)
    }

    /// Chunk `ci`'s bitmaps.
    #[inline]
    fn chunk(&self, ci: ChunkIdx) -> &ChunkBits {
        debug_assert!(self.has_metadata(ci), "chunk {ci:?} has no metadata");
        // SAFETY: `ci` is below MAX_CHUNKS and its grain is committed (the
        // callers reach it through a non-empty summary, `has_metadata`, or
        // a range they just committed).
        unsafe { &*self.meta.add(CHUNKS_OFFSET).cast::<ChunkBits>().add(ci.0) }
    }

    /// Chunk `ci`'s bitmaps, mutably.
    #[inline]
    fn chunk_mut(&mut self, ci: ChunkIdx) -> &mut ChunkBits {
        debug_assert!(self.has_metadata(ci), "chunk {ci:?} has no metadata");
        // SAFETY: as in `chunk`; `&mut self` makes this the only reference.
        unsafe { &mut *self.meta.add(CHUNKS_OFFSET).cast::<ChunkBits>().add(ci.0) }
    }

    /// Pointer to entry `i` of summary level `l`.
    #[inline]
    fn sum_ptr(&self, l: usize, i: usize) -> *mut Summary {
        debug_assert!(i < level_entries(l));
        // SAFETY: entry `i < level_entries(l)` lies inside level `l`'s part
        // of the reservation.
        unsafe { self.meta.add(SUMMARY_OFFSET[l]).cast::<Summary>().add(i) }
    }

    /// Whether entry `i` of level `l` is committed.
    #[inline]
    fn sum_committed(&self, l: usize, i: usize) -> bool {
        self.grain_committed((SUMMARY_OFFSET[l] + i * SUMMARY_BYTES) / GRAIN)
    }

    /// Entry `i` of summary level `l`, which must be committed.
    #[inline]
    fn sum(&self, l: usize, i: usize) -> Summary {
        debug_assert!(self.sum_committed(l, i), "summary {l}/{i} is not committed");
        // SAFETY: committed by the metadata invariant (the caller reached it
        // through a non-empty parent or a grown chunk).
        unsafe { *self.sum_ptr(l, i) }
    }

    /// Entry `i` of level `l`, or empty if it is not committed.
    #[inline]
    fn sum_checked(&self, l: usize, i: usize) -> Summary {
        if !self.sum_committed(l, i) {
            return Summary::NONE;
        }
        // SAFETY: checked just above.
        unsafe { *self.sum_ptr(l, i) }
    }

    #[inline]
    fn set_sum(&mut self, l: usize, i: usize, sum: Summary) {
        debug_assert!(self.sum_committed(l, i), "summary {l}/{i} is not committed");
        // SAFETY: as in `sum`; `&mut self` makes this the only access.
        unsafe { *self.sum_ptr(l, i) = sum };
    }

    /// The block of level-`l + 1` entries below entry `i` of level `l`,
    /// which must be non-empty or cover a chunk being updated.
    #[inline]
    fn children(&self, l: usize, i: usize) -> &[Summary] {
        let n = 1usize << LEVEL_BITS[l + 1];
        debug_assert!(
            self.sum_committed(l + 1, i * n),
            "children of {l}/{i} are not committed"
        );
        // SAFETY: the children block is committed whole (blocks are
        // committed together) and lies inside level l + 1.
        unsafe { core::slice::from_raw_parts(self.sum_ptr(l + 1, i * n), n) }
    }
}
