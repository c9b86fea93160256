//! `goheap_memstats` and `goheap_print_stats`: the core's [`MemStats`] as a
//! C struct, and a one-line summary on stderr.

use core::fmt::Write;
use goheap_core::report::StderrWriter;
use goheap_core::sizeclass::NUM_SIZE_CLASSES;
use goheap_core::MemStats;

/// C mirror of [`goheap_core::BySize`] (`struct goheap_bysize`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct GoheapBySize {
    /// Largest object size in this class, bytes.
    pub size: u32,
    /// Cumulative objects allocated in this class.
    pub mallocs: u64,
    /// Cumulative objects freed in this class.
    pub frees: u64,
}

/// C mirror of [`MemStats`] (`struct goheap_memstats`), field for field
/// in the same order; see the header for each field's meaning.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GoheapMemstats {
    /// Go: `Alloc`.
    pub alloc: u64,
    /// Go: `TotalAlloc`.
    pub total_alloc: u64,
    /// Go: `Sys`.
    pub sys: u64,
    /// Go: `Mallocs`.
    pub mallocs: u64,
    /// Go: `Frees`.
    pub frees: u64,
    /// Go: `HeapAlloc`.
    pub heap_alloc: u64,
    /// Go: `HeapSys`.
    pub heap_sys: u64,
    /// Go: `HeapIdle`.
    pub heap_idle: u64,
    /// Go: `HeapInuse`.
    pub heap_inuse: u64,
    /// Go: `HeapReleased`.
    pub heap_released: u64,
    /// Go: `HeapObjects`.
    pub heap_objects: u64,
    /// Go: `MSpanInuse`.
    pub mspan_inuse: u64,
    /// Go: `MSpanSys`.
    pub mspan_sys: u64,
    /// Go: `MCacheInuse`.
    pub mcache_inuse: u64,
    /// Go: `MCacheSys`.
    pub mcache_sys: u64,
    /// Go: `BySize` (index = size class; class 0 is unused).
    pub by_size: [GoheapBySize; NUM_SIZE_CLASSES],
}

impl From<&MemStats> for GoheapMemstats {
    fn from(m: &MemStats) -> Self {
        let mut by_size = [GoheapBySize::default(); NUM_SIZE_CLASSES];
        for (out, b) in by_size.iter_mut().zip(m.by_size.iter()) {
            *out = GoheapBySize { size: b.size, mallocs: b.mallocs, frees: b.frees };
        }
        GoheapMemstats {
            alloc: m.alloc,
            total_alloc: m.total_alloc,
            sys: m.sys,
            mallocs: m.mallocs,
            frees: m.frees,
            heap_alloc: m.heap_alloc,
            heap_sys: m.heap_sys,
            heap_idle: m.heap_idle,
            heap_inuse: m.heap_inuse,
            heap_released: m.heap_released,
            heap_objects: m.heap_objects,
            mspan_inuse: m.mspan_inuse,
            mspan_sys: m.mspan_sys,
            mcache_inuse: m.mcache_inuse,
            mcache_sys: m.mcache_sys,
            by_size,
        }
    }
}

/// Fills `*out` with a snapshot of goheap's statistics (see
/// [`goheap_core::memstats`]). Null `out` is ignored. Does not allocate.
///
/// # Safety
///
/// `out` is null or valid for writing one `struct goheap_memstats`.
#[no_mangle]
pub unsafe extern "C" fn goheap_memstats(out: *mut GoheapMemstats) {
    if out.is_null() {
        return;
    }
    let m = goheap_core::memstats();
    // SAFETY: the caller passes a writable struct.
    unsafe { out.write(GoheapMemstats::from(&m)) };
}

/// Prints the main statistics on one line of stderr, without allocating:
/// `goheap: stats: mallocs=... frees=... ...`.
///
/// # Safety
///
/// Always safe to call.
#[no_mangle]
pub unsafe extern "C" fn goheap_print_stats() {
    print_stats();
}

/// The line behind [`goheap_print_stats`] (and `GOHEAP_PRINT_STATS`).
pub(crate) fn print_stats() {
    let m = goheap_core::memstats();
    let mut w = StderrWriter::new();
    let _ = writeln!(
        w,
        "goheap: stats: mallocs={} frees={} heap_objects={} heap_alloc={} total_alloc={} heap_inuse={} \
         heap_idle={} heap_released={} heap_sys={} sys={} mspan_inuse={} mcache_inuse={}",
        m.mallocs,
        m.frees,
        m.heap_objects,
        m.heap_alloc,
        m.total_alloc,
        m.heap_inuse,
        m.heap_idle,
        m.heap_released,
        m.heap_sys,
        m.sys,
        m.mspan_inuse,
        m.mcache_inuse,
    );
}

// The layout `goheap.h` declares (its static assertions check the C side).
const _: () = assert!(core::mem::size_of::<GoheapBySize>() == 24);
const _: () = assert!(core::mem::size_of::<GoheapMemstats>() == 15 * 8 + NUM_SIZE_CLASSES * 24);
const _: () = assert!(NUM_SIZE_CLASSES == 68);
