//! The soft memory limit (like Go's `GOMEMLIMIT`) and releasing free pages
//! to the OS: the part of the scavenger's work that belongs to the page
//! heap, because allocation itself enforces the limit.
//!
//! The background thread that releases pages over time, and what sets the
//! limit (the environment, the API, the container), are services above
//! the heap (`scavenger.rs`, `cgroup.rs`).

use crate::heap::{Heap, HeapLocked};
use crate::pagealloc::Scan;
use crate::sizeclass::PAGE_SIZE;
use crate::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};

/// Floor of the retained-heap cushion.
pub(crate) const MIN_CUSHION: usize = 2 << 20;
/// Pages per step of a synchronous release (8 MiB).
pub(crate) const BURST_PAGES: usize = 1024;

/// Where the memory limit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LimitSource {
    /// No limit.
    None = 0,
    /// `GOHEAP_MEMORY_LIMIT`.
    Env = 1,
    /// [`set_memory_limit`](crate::set_memory_limit).
    Api = 2,
    /// The container: cgroup v2 `memory.max` or v1 `memory.limit_in_bytes`.
    Cgroup = 3,
}

/// Limit settings and counters (all atomics: read by statistics, written
/// by the settings API, the scavenger and allocating threads).
pub(crate) struct Limit {
    /// Soft memory limit in bytes (`usize::MAX`: none).
    pub(crate) bytes: AtomicUsize,
    pub(crate) source: AtomicU8,
    /// Allocation fails rather than exceed the limit.
    pub(crate) hard: AtomicBool,
    /// Release with `MADV_FREE` instead of `MADV_DONTNEED`.
    pub(crate) lazy: AtomicBool,
    /// Releasing free pages did not bring mapped memory under the limit:
    /// the next thread to refill a span trims its cache and the central
    /// lists' transfer caches and spare spans first.
    pub(crate) pressure: AtomicBool,
    /// Bytes released by synchronous releases under the limit.
    pub(crate) released: AtomicU64,
    /// Allocations refused by the hard limit.
    pub(crate) failures: AtomicU64,
    /// Times a thread trimmed caches under memory-limit pressure.
    pub(crate) trims: AtomicU64,
}

impl Limit {
    /// The most the scavenger may retain under the limit: 95 % of it less
    /// `metadata` (Go's `reduceExtraPercent`); no bound without a limit.
    pub(crate) fn goal_cap(&self, metadata: usize) -> usize {
        let limit = self.bytes.load(Relaxed);
        if limit == usize::MAX {
            return usize::MAX;
        }
        (limit / 100 * 95).saturating_sub(metadata)
    }

    pub(crate) const fn new() -> Self {
        Limit {
            bytes: AtomicUsize::new(usize::MAX),
            source: AtomicU8::new(LimitSource::None as u8),
            hard: AtomicBool::new(false),
            lazy: AtomicBool::new(false),
            pressure: AtomicBool::new(false),
            released: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            trims: AtomicU64::new(0),
        }
    }

    /// Sets the limit and where it came from; returns the previous limit.
    pub(crate) fn set(&self, bytes: usize, source: LimitSource) -> usize {
        let source = if bytes == usize::MAX { LimitSource::None } else { source };
        self.source.store(source as u8, Relaxed);
        self.bytes.swap(bytes, Relaxed)
    }

    /// Where the limit in force came from.
    pub(crate) fn source(&self) -> LimitSource {
        match self.source.load(Relaxed) {
            1 => LimitSource::Env,
            2 => LimitSource::Api,
            3 => LimitSource::Cgroup,
            _ => LimitSource::None,
        }
    }

    /// Claims the job of trimming caches if releasing pages did not bring
    /// the heap under the limit (a plain load first: refills are frequent,
    /// pressure is rare).
    #[inline]
    pub(crate) fn take_pressure(&self) -> bool {
        self.pressure.load(Relaxed) && self.pressure.swap(false, Relaxed)
    }
}

impl HeapLocked {
    /// Heap bytes resident or able to become resident without asking the
    /// OS: in use plus free-but-not-released.
    pub(crate) fn retained(&self) -> usize {
        self.heap_sys - self.pages.scavenged_pages() * PAGE_SIZE
    }

    /// Bytes of metadata goheap has mapped besides span structs and thread
    /// caches: page-allocator metadata, arena metadata, and the touched
    /// pages of the arena index.
    pub(crate) fn other_sys(&self) -> usize {
        self.pages.metadata_bytes() + self.arena_meta_bytes
    }

    /// The background scavenger's goal for `retained()`: the
    /// [`cushioned_goal`](Self::cushioned_goal), at most the
    /// [`goal_cap`](Limit::goal_cap).
    pub(crate) fn retained_goal(&self, limit: &Limit, metadata: usize) -> usize {
        self.cushioned_goal().min(limit.goal_cap(metadata))
    }

    /// The in-use heap plus 10 % and a floor.
    pub(crate) fn cushioned_goal(&self) -> usize {
        let inuse = self.inuse_pages * PAGE_SIZE;
        inuse + inuse / 10 + MIN_CUSHION
    }
}

impl Heap {
    /// Every byte of metadata mapped for this heap: span structs, page
    /// allocator and arena metadata, and what layers above registered in
    /// `meta_outside` (thread caches). Heap lock held (passed in).
    pub(crate) fn metadata_sys(&self, h: &HeapLocked) -> usize {
        h.spans.sys + h.other_sys() + self.meta_outside.load(Relaxed)
    }

    /// Releases up to `bytes` of free pages to the OS with the heap lock
    /// held throughout (synchronous paths: any free page). Returns bytes
    /// released.
    pub(crate) fn release_locked(&self, h: &mut HeapLocked, bytes: usize) -> usize {
        let lazy = self.limit.lazy.load(Relaxed);
        let mut done = 0;
        while done < bytes {
            let want = (bytes - done).div_ceil(PAGE_SIZE).min(BURST_PAGES);
            let Some((base, n)) = h.pages.find_scavenge_candidate_in(want, Scan::All) else {
                break;
            };
            // SAFETY: the run is free and claimed by the candidate search,
            // so nobody uses its memory while we release it.
            unsafe { self.os.decommit(base as *mut u8, n * PAGE_SIZE, lazy) };
            self.after_release(base, n * PAGE_SIZE);
            h.pages.mark_scavenged(base, n);
            done += n * PAGE_SIZE;
        }
        done
    }

    /// Releases up to `bytes` of the free pages `scan` allows, taking the
    /// heap lock only to find and to mark each run (the `madvise` runs
    /// unlocked; the run is recorded in `releasing` meanwhile, for the fork
    /// handler). Returns bytes released (whole huge pages may overshoot
    /// `bytes` by up to one).
    pub(crate) fn release(&self, bytes: usize, step_pages: usize, scan: Scan) -> usize {
        let lazy = self.limit.lazy.load(Relaxed);
        let mut done = 0;
        while done < bytes {
            let want = (bytes - done).div_ceil(PAGE_SIZE).min(step_pages);
            let cand = {
                let Some(mut h) = self.lock() else { break };
                let c = h.pages.find_scavenge_candidate_in(want, scan);
                if let Some(run) = c {
                    h.releasing = run;
                }
                c
            };
            let Some((base, n)) = cand else { break };
            // SAFETY: the run is claimed (allocated) in the page allocator
            // until `mark_scavenged`, so nobody else uses it meanwhile.
            unsafe { self.os.decommit(base as *mut u8, n * PAGE_SIZE, lazy) };
            self.after_release(base, n * PAGE_SIZE);
            let mut h = self.locked.lock();
            h.pages.mark_scavenged(base, n);
            h.releasing = (0, 0);
            drop(h);
            done += n * PAGE_SIZE;
        }
        done
    }

    /// Called under the heap lock before the heap grows by `ask` bytes:
    /// under a memory limit, releases free pages first so the total stays
    /// under it. Returns false if the hard limit forbids the growth.
    /// What the memory limit compares with: retained pages and metadata.
    pub(crate) fn mapped_bytes(&self) -> usize {
        let Some(h) = self.lock() else {
            return 0;
        };
        let interior = crate::span::SPAN_INTERIOR_RELEASED.load(Relaxed);
        (h.retained() + self.metadata_sys(&h)).saturating_sub(interior)
    }

    pub(crate) fn make_room(&self, h: &mut HeapLocked, ask: usize) -> bool {
        let limit = self.limit.bytes.load(Relaxed);
        if limit == usize::MAX {
            return true;
        }
        // `retained()` already counts pages just taken from the released
        // pool (their scavenged bits are cleared on allocation).
        let interior = crate::span::SPAN_INTERIOR_RELEASED.load(Relaxed);
        let mapped = (h.retained() + self.metadata_sys(h)).saturating_sub(interior);
        let after = mapped + ask;
        if after <= limit {
            return true;
        }
        let released = self.release_locked(h, after - limit);
        self.limit.released.fetch_add(released as u64, Relaxed);
        if released >= after - limit {
            return true;
        }
        self.limit.pressure.store(true, Relaxed);
        if !self.limit.hard.load(Relaxed) {
            return true;
        }
        self.limit.failures.fetch_add(1, Relaxed);
        false
    }
}
