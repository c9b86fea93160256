//! Statistics with Go's `runtime.MemStats` names.

use crate::cache::ThreadCache;
use crate::gcheap::GcHeap;
use crate::heap::{Heap, HeapLocked};
use crate::scavenger::SCAVENGER;
use crate::sizeclass::{self, NUM_SIZE_CLASSES, PAGE_SIZE};
use crate::sync::atomic::Ordering::Relaxed;
use crate::sync::handshake;
use crate::tls::Threads;

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
///
/// `malloc`'s heap and the collected heap (`goheap-gc`) share the page
/// heap: `heap_sys`, `heap_idle`, `heap_inuse`, `heap_released` and `sys`
/// cover both; `alloc`, `heap_alloc`, `mallocs`, `frees` and `heap_objects`
/// are `malloc`'s, and the `gc_*` fields the collected heap's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemStats {
    /// Bytes of allocated heap objects (Go: `Alloc`, same as `HeapAlloc`).
    pub alloc: u64,
    /// Cumulative bytes allocated (Go: `TotalAlloc`).
    pub total_alloc: u64,
    /// Bytes of memory obtained from the OS (Go: `Sys`): everything goheap
    /// has mapped and not unmapped, heap and metadata alike; equal to
    /// [`Metrics::total`].
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
    /// Bytes of the collected heap's spans: its objects, live or not yet
    /// swept, and its free slots (the collected part of `heap_inuse`).
    pub gc_heap_inuse: u64,
    /// Bytes the collected heap's last cycle marked (its live heap then).
    pub gc_heap_marked: u64,
    /// The collected heap's objects freed by sweeping since the start, and
    /// their bytes (a tiny block counts once).
    pub gc_frees: u64,
    /// See [`gc_frees`](Self::gc_frees).
    pub gc_freed_bytes: u64,
    /// Completed collections (Go: `NumGC`).
    pub num_gc: u32,
    /// The last 256 pauses, ns (Go: `PauseNs`; the latest at
    /// `(num_gc + 255) % 256`).
    pub pause_ns: [u64; 256],
    /// When each of those pauses ended, ns since the Unix epoch (Go:
    /// `PauseEnd`).
    pub pause_end: [u64; 256],
    /// Every pause added up, ns (Go: `PauseTotalNs`).
    pub pause_total_ns: u64,
    /// When the last collection ended, ns since the Unix epoch (Go:
    /// `LastGC`).
    pub last_gc: u64,
    /// The collected heap's goal (Go: `NextGC`; `u64::MAX` with the
    /// collector off).
    pub next_gc: u64,
    /// The collector's share of the CPU time available since the process
    /// started, as of the last cycle (Go: `GCCPUFraction`).
    pub gc_cpu_fraction: f64,
}

/// Reads the statistics of `heap` and its `threads` (see
/// [`crate::memstats`]).
pub(crate) fn memstats(heap: &Heap, threads: &Threads, gc_heap: &GcHeap) -> MemStats {
    let mut by_size = [BySize::default(); NUM_SIZE_CLASSES];
    for (class, b) in by_size.iter_mut().enumerate() {
        b.size = sizeclass::class_size(class) as u32;
    }
    let (mcache_inuse, mcache_sys) = {
        let r = threads.registry.lock();
        for (class, b) in by_size.iter_mut().enumerate().skip(1) {
            b.mallocs += r.dead_mallocs[class];
            b.frees += r.dead_frees[class];
        }
        for cache in r.live().chain(r.lost()) {
            // The counters are atomics written by their owners.
            add_counts(&mut by_size, cache);
        }
        (
            (r.caches.inuse * r.caches.slot_size()) as u64,
            r.caches.sys as u64,
        )
    };
    // SAFETY: the fallback's counters are atomics, which may be read while
    // its lock is held elsewhere; nothing else of it is touched.
    add_counts(&mut by_size, unsafe { &*threads.fallback.data_ptr() });
    // Sampled small objects live in the heap profile's region, outside
    // the caches' counts.
    for (class, b) in by_size.iter_mut().enumerate().skip(1) {
        b.mallocs += crate::profile::table::SMALL_ALLOCS[class].load(Relaxed);
        b.frees += crate::profile::table::SMALL_FREES[class].load(Relaxed);
    }

    let h = heap.locked.lock();
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
    let (heap_sys, heap_inuse) = heap_sys_inuse(&h);
    let heap_idle = heap_sys - heap_inuse;
    let heap_released = (h.pages.scavenged_pages() * PAGE_SIZE) as u64;
    let mspan_inuse = (h.spans.inuse * h.spans.slot_size()) as u64;
    let mspan_sys = h.spans.sys as u64;
    let other = h.other_sys() as u64;
    drop(h);
    let gc = gc_heap.stats();
    let cycles = crate::gcheap::gc_cycles();
    MemStats {
        alloc: heap_alloc,
        total_alloc,
        sys: heap_sys + mspan_sys + mcache_sys + other,
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
        gc_heap_inuse: gc.span_bytes,
        gc_heap_marked: gc.marked_bytes,
        gc_frees: gc.swept_objects,
        gc_freed_bytes: gc.swept_bytes,
        num_gc: cycles.num_gc,
        pause_ns: cycles.pause_ns,
        pause_end: cycles.pause_end,
        pause_total_ns: cycles.pause_total_ns,
        last_gc: cycles.last_gc,
        next_gc: cycles.next_gc,
        gc_cpu_fraction: cycles.gc_cpu_fraction,
    }
}

fn add_counts(by_size: &mut [BySize; NUM_SIZE_CLASSES], cache: &ThreadCache) {
    for (class, b) in by_size.iter_mut().enumerate().skip(1) {
        b.mallocs += cache.classes[class].mallocs.load(Relaxed);
        b.frees += cache.classes[class].frees.load(Relaxed);
    }
}

/// Memory classes in the style of Go's `runtime/metrics`
/// (`/memory/classes/...`), plus the scavenger's and the memory limit's
/// state. The classes partition everything goheap has mapped: they add up
/// to [`total`](Self::total) exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metrics {
    /// `/memory/classes/heap/objects:bytes`: live objects (class-size or
    /// page-rounded), the heap profile's sampled ones included (their
    /// slots' pages count as heap pages, see [`MemStats::heap_sys`]).
    pub heap_objects: u64,
    /// `/memory/classes/heap/unused:bytes`: in-use spans' bytes not holding
    /// live objects (free slots, objects in thread caches, rounding).
    pub heap_unused: u64,
    /// The part of `heap_unused` released to the OS: free OS pages inside
    /// in-use spans (the scavenger releases them when the heap is idle).
    pub heap_unused_released: u64,
    /// Spans of the collected heap (`goheap-gc`'s `Gc` objects, live or
    /// not yet swept, and their free slots): in-use pages that are not
    /// malloc's.
    pub heap_collected: u64,
    /// `/memory/classes/heap/free:bytes`: free pages still resident (or
    /// able to be, without asking the OS).
    pub heap_free: u64,
    /// `/memory/classes/heap/released:bytes`: free pages returned to the OS.
    pub heap_released: u64,
    /// `/memory/classes/metadata/mspan/inuse:bytes`.
    pub metadata_mspan_inuse: u64,
    /// `/memory/classes/metadata/mspan/free:bytes`.
    pub metadata_mspan_free: u64,
    /// `/memory/classes/metadata/mcache/inuse:bytes`.
    pub metadata_mcache_inuse: u64,
    /// `/memory/classes/metadata/mcache/free:bytes`.
    pub metadata_mcache_free: u64,
    /// `/memory/classes/metadata/other:bytes`: page-allocator summaries and
    /// bitmaps, arena metadata, the touched pages of the arena index.
    pub metadata_other: u64,
    /// `/memory/classes/total:bytes`: all memory goheap has mapped (the
    /// sum of the classes above).
    pub total: u64,
    /// What counts against the memory limit: `total - heap_released -
    /// heap_unused_released`.
    pub mapped_not_released: u64,
    /// The soft memory limit (`u64::MAX`: none), and where it came from.
    pub memory_limit: u64,
    /// Source of `memory_limit`.
    pub limit_source: crate::LimitSource,
    /// Allocation fails rather than exceed the limit.
    pub hard_limit: bool,
    /// The background scavenger's target for retained heap memory as the
    /// in-use heap sets it now: in use plus 10 % and a floor, at most the
    /// memory limit's cap. While the heap is busy the scavenger holds to
    /// the highest of these over the last one to two seconds instead, and
    /// 100 ms into an idle period it drops to in use plus the floor
    /// (`scavenger.rs`, `BusyGoal`).
    pub retained_goal: u64,
    /// Bytes released by the background scavenger, by synchronous releases
    /// under the memory limit, and by `free_os_memory`.
    pub scavenged_background: u64,
    /// See [`scavenged_background`](Self::scavenged_background).
    pub scavenged_limit: u64,
    /// See [`scavenged_background`](Self::scavenged_background).
    pub scavenged_forced: u64,
    /// Background scavenger cycles that released memory.
    pub scavenger_cycles: u64,
    /// CPU time the background scavenger has used, nanoseconds.
    pub scavenger_cpu_ns: u64,
    /// Allocations refused by the hard limit.
    pub limit_failures: u64,
    /// Times a thread trimmed caches and central lists because releasing
    /// free pages did not bring mapped memory under the limit.
    pub limit_trims: u64,
    /// How the idle-cache reclaimer (and the exact double-free check)
    /// coordinate with threads' caches.
    pub cache_handshake: CacheHandshake,
}

/// The mechanism behind the handshake between a thread's cache and the
/// threads that claim it (see `sync::handshake`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheHandshake {
    /// Not chosen yet (no thread cache has been made).
    Unset,
    /// `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`: owners pay nothing.
    Membarrier,
    /// `membarrier` is unavailable (or `GOHEAP_MEMBARRIER=0`): owners issue
    /// a full fence per operation.
    Fence,
}

/// The heap's obtained and in-use bytes (Go's `HeapSys`, `HeapInuse`).
/// The heap profile's sampled small objects live in its own region, not
/// in the heap's pages, but they are heap objects like any other (in
/// `heap_alloc`, as in Go): each counts as the heap pages its slot holds,
/// so `heap_inuse >= heap_alloc` holds and the memory classes partition
/// `heap_sys` with them in it.
fn heap_sys_inuse(h: &HeapLocked) -> (u64, u64) {
    let sampled = crate::profile::table::small_live_page_bytes();
    (h.heap_sys as u64 + sampled, (h.inuse_pages * PAGE_SIZE) as u64 + sampled)
}

/// Reads the memory classes of `heap` (see [`crate::metrics`]).
pub(crate) fn metrics(heap: &Heap, threads: &Threads, gc_heap: &GcHeap) -> Metrics {
    let ms = memstats(heap, threads, gc_heap);
    let h = heap.locked.lock();
    let (heap_sys, heap_inuse) = heap_sys_inuse(&h);
    let heap_released = (h.pages.scavenged_pages() * PAGE_SIZE) as u64;
    let mspan_inuse = (h.spans.inuse * h.spans.slot_size()) as u64;
    let mspan_sys = h.spans.sys as u64;
    let other = h.other_sys() as u64;
    let goal = h.retained_goal(&heap.limit, heap.metadata_sys(&h)) as u64;
    drop(h);
    // Counters read a moment apart may disagree slightly under load; clamp
    // so the classes still partition the total exactly.
    let objects = ms.heap_alloc.min(heap_inuse);
    let mspan_inuse = mspan_inuse.min(mspan_sys);
    let mcache_inuse = ms.mcache_inuse.min(ms.mcache_sys);
    let total = heap_sys + mspan_sys + ms.mcache_sys + other;
    let collected = gc_heap.stats().span_bytes.min(heap_inuse - objects);
    let unused = heap_inuse - objects - collected;
    let unused_released =
        (crate::span::SPAN_INTERIOR_RELEASED.load(Relaxed) as u64).min(unused);
    let source = heap.limit.source();
    let limit = heap.limit.bytes.load(Relaxed);
    Metrics {
        heap_objects: objects,
        heap_unused: unused,
        heap_unused_released: unused_released,
        heap_collected: collected,
        heap_free: heap_sys - heap_inuse - heap_released,
        heap_released,
        metadata_mspan_inuse: mspan_inuse,
        metadata_mspan_free: mspan_sys - mspan_inuse,
        metadata_mcache_inuse: mcache_inuse,
        metadata_mcache_free: ms.mcache_sys - mcache_inuse,
        metadata_other: other,
        total,
        mapped_not_released: total - heap_released - unused_released,
        memory_limit: if limit == usize::MAX {
            u64::MAX
        } else {
            limit as u64
        },
        limit_source: source,
        hard_limit: heap.limit.hard.load(Relaxed),
        retained_goal: goal,
        scavenged_background: SCAVENGER.released_background.load(Relaxed),
        scavenged_limit: heap.limit.released.load(Relaxed),
        scavenged_forced: SCAVENGER.released_forced.load(Relaxed),
        scavenger_cycles: SCAVENGER.cycles.load(Relaxed),
        scavenger_cpu_ns: SCAVENGER.cpu_ns.load(Relaxed),
        limit_failures: heap.limit.failures.load(Relaxed),
        limit_trims: heap.limit.trims.load(Relaxed),
        cache_handshake: match handshake::mode() {
            handshake::Mode::Unset => CacheHandshake::Unset,
            handshake::Mode::Membarrier => CacheHandshake::Membarrier,
            handshake::Mode::Fence => CacheHandshake::Fence,
        },
    }
}

/// The process's resident set size in bytes, from `/proc/self/statm`
/// (0 if it cannot be read). Read without allocating.
pub fn process_rss() -> u64 {
    crate::os::statm_resident().unwrap_or(0) as u64
}

/// Writes the statistics of `heap` (see [`crate::write_stats`]).
pub(crate) fn write_stats(
    heap: &Heap,
    threads: &Threads,
    gc_heap: &GcHeap,
    w: &mut impl core::fmt::Write,
) -> core::fmt::Result {
    let m = memstats(heap, threads, gc_heap);
    writeln!(
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
    )?;
    let x = metrics(heap, threads, gc_heap);
    write!(
        w,
        "goheap: memory: objects={} unused={} (released {}) collected={} free={} released={} metadata={} total={} rss={} limit=",
        x.heap_objects,
        x.heap_unused,
        x.heap_unused_released,
        x.heap_collected,
        x.heap_free,
        x.heap_released,
        x.metadata_mspan_inuse
            + x.metadata_mspan_free
            + x.metadata_mcache_inuse
            + x.metadata_mcache_free
            + x.metadata_other,
        x.total,
        process_rss(),
    )?;
    if x.memory_limit == u64::MAX {
        w.write_str("none")?;
    } else {
        write!(w, "{}({:?}{})", x.memory_limit, x.limit_source, if x.hard_limit { ",hard" } else { "" })?;
    }
    writeln!(
        w,
        " scavenged={}(background) {}(limit) {}(forced) scavenger_cpu={}us",
        x.scavenged_background,
        x.scavenged_limit,
        x.scavenged_forced,
        x.scavenger_cpu_ns / 1000
    )
}


static EXIT_STATS: crate::sync::atomic::AtomicBool = crate::sync::atomic::AtomicBool::new(false);

/// Claims the job of printing statistics at exit (`GOHEAP_PRINT_STATS`):
/// true for the first caller only, so a front-end that prints them its own
/// way (the C library) and the core never both do.
pub fn claim_exit_stats() -> bool {
    !EXIT_STATS.swap(true, Relaxed)
}

extern "C" fn print_stats_at_exit() {
    crate::print_stats();
}

/// At heap initialisation: with `GOHEAP_PRINT_STATS`, print statistics at
/// exit (unless a front-end claimed that).
pub(crate) fn init_exit_stats() {
    if crate::options::get(crate::options::Opt::PrintStats) && claim_exit_stats() {
        // SAFETY: registers a function with no arguments that lives for the
        // whole process.
        unsafe { libc::atexit(print_stats_at_exit) };
    }
}
