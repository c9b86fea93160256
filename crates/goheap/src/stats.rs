//! Statistics with Go's `runtime.MemStats` names.

use crate::cache::ThreadCache;
use crate::global::HEAP;
use crate::sizeclass::{self, NUM_SIZE_CLASSES, PAGE_SIZE};
use crate::sync::atomic::Ordering::Relaxed;
use crate::tls::{FALLBACK, REGISTRY};

/// Allocations and frees of one size class (Go's `MemStats.BySize` entry).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BySize {
    /// Largest object size in this class, bytes (Go: `Size`).
    pub size: u32,
    /// Cumulative objects allocated in this class (Go: `Mallocs`).
    pub mallocs: u64,
    /// Cumulative objects freed in this class (Go: `Frees`).
    pub frees: u64,
}

/// A snapshot of goheap's statistics, field for field Go's
/// `runtime.MemStats` (in Rust's snake case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemStats {
    /// Bytes of allocated heap objects (Go: `Alloc`, same as `HeapAlloc`).
    pub alloc: u64,
    /// Cumulative bytes allocated (Go: `TotalAlloc`).
    pub total_alloc: u64,
    /// Bytes of memory obtained from the OS (Go: `Sys`).
    pub sys: u64,
    /// Cumulative count of heap objects allocated (Go: `Mallocs`).
    pub mallocs: u64,
    /// Cumulative count of heap objects freed (Go: `Frees`).
    pub frees: u64,
    /// Bytes of allocated heap objects (Go: `HeapAlloc`).
    pub heap_alloc: u64,
    /// Bytes of heap memory obtained from the OS (Go: `HeapSys`).
    pub heap_sys: u64,
    /// Bytes in idle (unused) spans (Go: `HeapIdle`).
    pub heap_idle: u64,
    /// Bytes in in-use spans (Go: `HeapInuse`).
    pub heap_inuse: u64,
    /// Bytes of physical memory returned to the OS (Go: `HeapReleased`).
    pub heap_released: u64,
    /// Number of allocated heap objects (Go: `HeapObjects`).
    pub heap_objects: u64,
    /// Bytes of allocated span structures (Go: `MSpanInuse`).
    pub mspan_inuse: u64,
    /// Bytes of memory obtained from the OS for span structures (Go: `MSpanSys`).
    pub mspan_sys: u64,
    /// Bytes of allocated per-thread cache structures (Go: `MCacheInuse`).
    pub mcache_inuse: u64,
    /// Bytes obtained from the OS for per-thread caches (Go: `MCacheSys`).
    pub mcache_sys: u64,
    /// Per-size-class allocation counts (Go: `BySize`; index = class).
    pub by_size: [BySize; NUM_SIZE_CLASSES],
}

/// Reads goheap's statistics without stopping other threads and without
/// allocating.
///
/// Per-thread counters are read while their threads keep running, so a
/// snapshot taken during heavy allocation is consistent only to within
/// the operations in flight; once threads are quiet it is exact.
pub fn memstats() -> MemStats {
    let mut by_size = [BySize::default(); NUM_SIZE_CLASSES];
    for (class, b) in by_size.iter_mut().enumerate() {
        b.size = sizeclass::class_size(class) as u32;
    }
    let (mcache_inuse, mcache_sys) = {
        let r = REGISTRY.lock();
        for (class, b) in by_size.iter_mut().enumerate().skip(1) {
            b.mallocs += r.dead_mallocs[class];
            b.frees += r.dead_frees[class];
        }
        let mut c = r.head;
        while !c.is_null() {
            // SAFETY: caches on the registry list stay valid while we hold
            // its lock; the counters are atomics written by their owners.
            let cache = unsafe { &*c };
            add_counts(&mut by_size, cache);
            c = cache.next;
        }
        (
            (r.caches.inuse * r.caches.slot_size()) as u64,
            r.caches.sys as u64,
        )
    };
    // SAFETY: the fallback's counters are atomics; reading them while its
    // lock is held elsewhere is a benign race on relaxed atomics.
    add_counts(&mut by_size, unsafe { &*FALLBACK.data_ptr() });

    let h = HEAP.locked.lock();
    let mut mallocs = h.large_mallocs;
    let mut frees = h.large_frees;
    let mut total_alloc = h.large_alloc_bytes;
    let mut heap_alloc = h.large_alloc_bytes - h.large_free_bytes;
    for b in &by_size[1..] {
        mallocs += b.mallocs;
        frees += b.frees;
        total_alloc += b.mallocs * b.size as u64;
        heap_alloc += b.mallocs.saturating_sub(b.frees) * b.size as u64;
    }
    let heap_sys = h.heap_sys as u64;
    let heap_inuse = (h.inuse_pages * PAGE_SIZE) as u64;
    let heap_idle = heap_sys - heap_inuse;
    let heap_released = (h.pages.scavenged_pages() * PAGE_SIZE) as u64;
    let mspan_inuse = (h.spans.inuse * h.spans.slot_size()) as u64;
    let mspan_sys = h.spans.sys as u64;
    drop(h);
    MemStats {
        alloc: heap_alloc,
        total_alloc,
        sys: heap_sys + mspan_sys + mcache_sys,
        mallocs,
        frees,
        heap_alloc,
        heap_sys,
        heap_idle,
        heap_inuse,
        heap_released,
        heap_objects: mallocs.saturating_sub(frees),
        mspan_inuse,
        mspan_sys,
        mcache_inuse,
        mcache_sys,
        by_size,
    }
}

fn add_counts(by_size: &mut [BySize; NUM_SIZE_CLASSES], cache: &ThreadCache) {
    for (class, b) in by_size.iter_mut().enumerate().skip(1) {
        b.mallocs += cache.classes[class].mallocs.load(Relaxed);
        b.frees += cache.classes[class].frees.load(Relaxed);
    }
}
