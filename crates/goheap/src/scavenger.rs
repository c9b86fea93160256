//! The scavenger: returns free pages to the OS so RSS follows the heap
//! (Go's `mgcscavenge.go`), plus the soft memory limit it enforces.
//!
//! See the crate docs for the overview.
//!
//! # Goal
//!
//! Go keeps the retained heap (in use plus free-but-resident) at 10 %
//! above its heap goal. A malloc has no GC goal, so goheap's equivalent is
//! the in-use heap (bytes in in-use spans): the scavenger keeps
//!
//! ```text
//! retained <= goal = in_use + in_use / 10 + 2 MiB
//! ```
//!
//! The 10 % cushion absorbs fragmentation and the cost of faulting pages
//! back in; the 2 MiB floor keeps tiny heaps from churning. Under a memory
//! limit the goal is also at most 95 % of the limit minus metadata (Go's
//! `reduceExtraPercent`).
//!
//! # Pacing
//!
//! A background thread (started the first time the heap grows; it never
//! allocates) wakes every 10 ms:
//!
//! - While the heap is busy (spans were allocated or freed since the last
//!   tick) it works only while its thread CPU time stays under 1 % of
//!   the wall time (Go's `scavengePercent`), in steps of at most 512 KiB.
//! - When the heap has been idle for a tick, it releases everything above
//!   the goal at once, in 8 MiB steps, re-checking for activity between
//!   steps. The total work is the same as paced release; it just happens
//!   while the program is not using the allocator, which is what makes
//!   RSS fall within a second of a burst ending. After 100 ms of idleness
//!   the 10 % cushion goes too (nothing is allocating to use it), and so
//!   do the free OS pages inside in-use spans (spans a few survivors keep
//!   alive), once per idle period.
//!
//! About once a second it also empties the caches of threads that have not
//! allocated or freed since its last look (`tls::reclaim_idle_caches`), so
//! objects sitting in an idle thread's cache stop pinning their spans.
//!
//! Like Go, the background scavenger leaves dense chunks (≥ 96.875 % of a
//! 4 MiB chunk in use) alone so the huge pages the heap uses stay intact.
//! Synchronous releases (memory limit, [`free_os_memory`]) ignore that
//! rule.

use crate::global::HEAP;
use crate::heap::{Heap, HeapLocked};
use crate::report;
use crate::sizeclass::PAGE_SIZE;
use crate::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use core::ptr;

/// Pages per background step (512 KiB).
const STEP_PAGES: usize = 64;
/// Pages per idle-burst step (8 MiB).
const BURST_PAGES: usize = 1024;
/// Background tick.
const TICK_NS: u64 = 10_000_000;
/// Floor of the retained-heap cushion.
const MIN_CUSHION: usize = 2 << 20;
/// Ticks without heap activity after which the 10 % cushion is released.
const IDLE_TICKS_NO_CUSHION: u32 = 10;
/// CPU share of the paced background scavenger (Go: 1 %).
const CPU_PERCENT: u64 = 1;

/// Where the memory limit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LimitSource {
    /// No limit.
    None = 0,
    /// `GOHEAP_MEMORY_LIMIT`.
    Env = 1,
    /// [`set_memory_limit`].
    Api = 2,
    /// The container: cgroup v2 `memory.max` or v1 `memory.limit_in_bytes`.
    Cgroup = 3,
}

/// Scavenger and limit settings and counters (all atomics: read by
/// statistics, written by the settings API and the scavenger).
pub(crate) struct Scavenger {
    /// Soft memory limit in bytes (`usize::MAX`: none).
    pub(crate) limit: AtomicUsize,
    pub(crate) limit_source: AtomicU8,
    /// Allocation fails rather than exceed the limit.
    pub(crate) hard: AtomicBool,
    /// The background scavenger may run.
    pub(crate) enabled: AtomicBool,
    /// Release with `MADV_FREE` instead of `MADV_DONTNEED`.
    pub(crate) lazy: AtomicBool,
    /// Print a line per background cycle that released memory.
    pub(crate) trace: AtomicBool,
    /// 0 not started, 1 starting, 2 running, 3 could not start.
    pub(crate) thread: AtomicU8,
    /// Bytes released by the background scavenger, by synchronous
    /// releases under the memory limit, and by `free_os_memory`.
    pub(crate) released_background: AtomicU64,
    pub(crate) released_limit: AtomicU64,
    pub(crate) released_forced: AtomicU64,
    /// Background cycles that released something, and the scavenger
    /// thread's CPU time.
    pub(crate) cycles: AtomicU64,
    pub(crate) cpu_ns: AtomicU64,
    /// Allocations refused by the hard limit.
    pub(crate) limit_failures: AtomicU64,
    /// Releasing free pages did not bring mapped memory under the limit:
    /// the next thread to refill a span trims its cache and the central
    /// lists' transfer caches and spare spans first.
    pub(crate) pressure: AtomicBool,
    /// Times a thread trimmed caches under memory-limit pressure.
    pub(crate) limit_trims: AtomicU64,
}

/// The process's scavenger state.
pub(crate) static SCAVENGER: Scavenger = Scavenger {
    limit: AtomicUsize::new(usize::MAX),
    limit_source: AtomicU8::new(LimitSource::None as u8),
    hard: AtomicBool::new(false),
    enabled: AtomicBool::new(true),
    lazy: AtomicBool::new(false),
    trace: AtomicBool::new(false),
    thread: AtomicU8::new(0),
    released_background: AtomicU64::new(0),
    released_limit: AtomicU64::new(0),
    released_forced: AtomicU64::new(0),
    cycles: AtomicU64::new(0),
    cpu_ns: AtomicU64::new(0),
    limit_failures: AtomicU64::new(0),
    pressure: AtomicBool::new(false),
    limit_trims: AtomicU64::new(0),
};

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

    /// The background scavenger's goal for `retained()`.
    pub(crate) fn retained_goal(&self, metadata: usize) -> usize {
        let inuse = self.inuse_pages * PAGE_SIZE;
        let goal = inuse + inuse / 10 + MIN_CUSHION;
        let limit = SCAVENGER.limit.load(Relaxed);
        if limit == usize::MAX {
            return goal;
        }
        goal.min((limit / 100 * 95).saturating_sub(metadata))
    }
}

impl Heap {
    /// Releases up to `bytes` of free pages to the OS with the heap lock
    /// held throughout (synchronous paths). Returns bytes released.
    pub(crate) fn release_locked(
        &self,
        h: &mut HeapLocked,
        bytes: usize,
        skip_dense: bool,
    ) -> usize {
        let lazy = SCAVENGER.lazy.load(Relaxed);
        let mut done = 0;
        while done < bytes {
            let want = (bytes - done).div_ceil(PAGE_SIZE).min(BURST_PAGES);
            let Some((base, n)) = h.pages.find_scavenge_candidate_in(want, skip_dense) else {
                break;
            };
            // SAFETY: the run is free and claimed by the candidate search,
            // so nobody uses its memory while we release it.
            unsafe { self.os.decommit(base as *mut u8, n * PAGE_SIZE, lazy) };
            h.pages.mark_scavenged(base, n);
            done += n * PAGE_SIZE;
        }
        done
    }

    /// Releases up to `bytes` of free pages, taking the heap lock only to
    /// find and to mark each run (the `madvise` runs unlocked). Returns
    /// bytes released.
    pub(crate) fn release(&self, bytes: usize, step_pages: usize, skip_dense: bool) -> usize {
        let lazy = SCAVENGER.lazy.load(Relaxed);
        let mut done = 0;
        while done < bytes {
            let want = (bytes - done).div_ceil(PAGE_SIZE).min(step_pages);
            let cand = {
                let Some(mut h) = self.lock() else { break };
                h.pages.find_scavenge_candidate_in(want, skip_dense)
            };
            let Some((base, n)) = cand else { break };
            // SAFETY: the run is claimed (allocated) in the page allocator
            // until `mark_scavenged`, so nobody else uses it meanwhile.
            unsafe { self.os.decommit(base as *mut u8, n * PAGE_SIZE, lazy) };
            self.locked.lock().pages.mark_scavenged(base, n);
            done += n * PAGE_SIZE;
        }
        done
    }

    /// Called under the heap lock before the heap grows by `ask` bytes:
    /// under a memory limit, releases free pages first so the total stays
    /// under it. Returns false if the hard limit forbids the growth.
    pub(crate) fn make_room(&self, h: &mut HeapLocked, ask: usize) -> bool {
        let limit = SCAVENGER.limit.load(Relaxed);
        if limit == usize::MAX {
            return true;
        }
        // `retained()` already counts pages just taken from the released
        // pool (their scavenged bits are cleared on allocation).
        let interior = crate::span::SPAN_INTERIOR_RELEASED.load(Relaxed);
        let mapped = (h.retained() + h.spans.sys + h.other_sys() + crate::tls::cache_sys())
            .saturating_sub(interior);
        let after = mapped + ask;
        if after <= limit {
            return true;
        }
        let released = self.release_locked(h, after - limit, false);
        SCAVENGER.released_limit.fetch_add(released as u64, Relaxed);
        if released >= after - limit {
            return true;
        }
        SCAVENGER.pressure.store(true, Relaxed);
        if !SCAVENGER.hard.load(Relaxed) {
            return true;
        }
        SCAVENGER.limit_failures.fetch_add(1, Relaxed);
        false
    }
}

/// Returns every free page to the OS now: flushes the calling thread's
/// cache first so its objects' spans can empty, then releases all free
/// pages regardless of density (Go's `debug.FreeOSMemory`, minus the GC).
/// Returns the bytes released.
pub fn free_os_memory() -> usize {
    crate::tls::flush_thread_cache();
    if let Some(mut h) = HEAP.lock() {
        h.pages.rewind_scavenge();
    }
    // First, so the spans it empties are among the free pages released.
    let interiors = release_central_surplus();
    let released = HEAP.release(usize::MAX, BURST_PAGES, false) + interiors + release_metadata();
    SCAVENGER
        .released_forced
        .fetch_add(released as u64, Relaxed);
    released
}

/// Gives back what the central lists hold for reuse and releases the
/// unused OS pages inside their partial spans: transfer-cache batches go
/// back into their spans, spare spans to the page heap, then
/// `Central::release_span_interiors`. Returns the bytes released.
pub(crate) fn release_central_surplus() -> usize {
    for (class, c) in HEAP.centrals.iter().enumerate().skip(1) {
        c.drain_batches(&HEAP, class);
        c.drop_spare(&HEAP);
    }
    let lazy = SCAVENGER.lazy.load(Relaxed);
    HEAP.centrals.iter().map(|c| c.release_span_interiors(&HEAP, lazy)).sum()
}

/// Under memory-limit pressure: the calling thread's cache and the central
/// lists' transfer caches and spare spans go back to their spans and the
/// page heap, where the next release (or reuse) finds them. Called by a
/// cache refilling a span (its own cache is passed in).
pub(crate) fn trim_for_limit(own: &mut crate::cache::ThreadCache) {
    // A plain load first: refills are frequent, pressure is rare.
    if !SCAVENGER.pressure.load(Relaxed) || !SCAVENGER.pressure.swap(false, Relaxed) {
        return;
    }
    SCAVENGER.limit_trims.fetch_add(1, Relaxed);
    own.flush_all();
    for (class, c) in HEAP.centrals.iter().enumerate().skip(1) {
        c.drain_batches(&HEAP, class);
        c.drop_spare(&HEAP);
    }
}

/// Returns the memory of metadata chunks with nothing in use (span structs
/// and thread caches) to the OS. Returns the bytes released.
pub(crate) fn release_metadata() -> usize {
    let caches = crate::tls::release_empty_caches();
    let spans = match HEAP.lock() {
        Some(mut h) => h.spans.release_empty(HEAP.os),
        None => 0,
    };
    caches + spans
}

/// Sets the soft memory limit (bytes; `usize::MAX` removes it) and
/// returns the previous one. Under the limit goheap releases free memory
/// before growing; with [`set_hard_limit`] it refuses to grow past it.
pub fn set_memory_limit(bytes: usize) -> usize {
    SCAVENGER.limit_source.store(
        if bytes == usize::MAX {
            LimitSource::None
        } else {
            LimitSource::Api
        } as u8,
        Relaxed,
    );
    let old = SCAVENGER.limit.swap(bytes, Relaxed);
    if bytes != usize::MAX {
        start_background();
    }
    old
}

/// The soft memory limit in bytes (`usize::MAX`: none).
pub fn memory_limit() -> usize {
    SCAVENGER.limit.load(Relaxed)
}

/// Makes the memory limit hard: allocations that would exceed it after
/// releasing every free page fail (null / `ENOMEM`) instead.
pub fn set_hard_limit(hard: bool) {
    SCAVENGER.hard.store(hard, Relaxed);
}

/// Turns the background scavenger on or off (on by default). Off, RSS is
/// still bounded by the memory limit and `free_os_memory`.
pub fn set_background_scavenger(on: bool) {
    SCAVENGER.enabled.store(on, Relaxed);
}

/// Reads the scavenger's and the limit's environment variables; called
/// once when the process heap initialises (heap lock held: nothing here
/// allocates or takes a lock).
pub(crate) fn init_from_env() {
    use crate::options::{self, Opt};
    if !options::loaded() {
        options::load();
    }
    SCAVENGER.enabled.store(options::get(Opt::Scavenger), Relaxed);
    SCAVENGER.lazy.store(options::get(Opt::MadvFree), Relaxed);
    SCAVENGER.trace.store(options::get(Opt::ScavTrace), Relaxed);
    SCAVENGER.hard.store(options::get(Opt::HardLimit), Relaxed);
    crate::stats::init_exit_stats();
    crate::cgroup::init_limit();
}

/// In a child after `fork`: the scavenger thread did not survive; let the
/// next heap growth start a new one.
pub(crate) fn forget_thread_after_fork() {
    if SCAVENGER.thread.load(Relaxed) == 2 {
        SCAVENGER.thread.store(0, Relaxed);
    }
}

/// Starts the background scavenger thread if it is not running. Called
/// with no allocator lock held (thread creation may allocate).
pub(crate) fn start_background() {
    if SCAVENGER.thread.load(Relaxed) != 0 || !SCAVENGER.enabled.load(Relaxed) {
        return;
    }
    if SCAVENGER
        .thread
        .compare_exchange(0, 1, Relaxed, Relaxed)
        .is_err()
    {
        return;
    }
    let mut tid: libc::pthread_t = 0;
    // SAFETY: `scavenger_main` matches the start-routine signature and
    // takes no argument; the thread is detached at once.
    let rc =
        unsafe { libc::pthread_create(&mut tid, ptr::null(), scavenger_main, ptr::null_mut()) };
    if rc != 0 {
        SCAVENGER.thread.store(3, Relaxed);
        return;
    }
    // SAFETY: `tid` is the thread we just created; the name is a short
    // NUL-terminated string.
    unsafe {
        libc::pthread_detach(tid);
        libc::pthread_setname_np(tid, c"goheap-scav".as_ptr());
    }
    SCAVENGER.thread.store(2, Relaxed);
}

fn now_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-parameter.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn sleep_ns(ns: u64) {
    let ts = libc::timespec {
        tv_sec: (ns / 1_000_000_000) as _,
        tv_nsec: (ns % 1_000_000_000) as _,
    };
    // SAFETY: a valid timespec; the remainder pointer may be null.
    unsafe { libc::nanosleep(&ts, ptr::null_mut()) };
}

/// One look at the heap: (retained, goal, in use, activity counter).
fn heap_state() -> Option<(usize, usize, usize, u64)> {
    let meta_outside = crate::tls::cache_sys();
    let h = HEAP.lock()?;
    let meta = h.spans.sys + h.other_sys() + meta_outside;
    Some((
        h.retained(),
        h.retained_goal(meta),
        h.inuse_pages * PAGE_SIZE,
        h.activity,
    ))
}

/// The background scavenger thread. Never allocates: it only takes the
/// heap lock, reads clocks and files through raw system calls, and sleeps.
extern "C" fn scavenger_main(_: *mut libc::c_void) -> *mut libc::c_void {
    let mut last_activity = u64::MAX;
    let mut tick_wall = now_ns(libc::CLOCK_MONOTONIC);
    let mut tick_cpu = now_ns(libc::CLOCK_THREAD_CPUTIME_ID);
    let mut ticks: u64 = 0;
    let mut idle_ticks: u32 = 0;
    let mut interiors_done = false;
    loop {
        sleep_ns(TICK_NS);
        ticks += 1;
        if ticks % 100 == 0 {
            crate::cgroup::refresh_limit();
        }
        // Idle threads' caches: looked at every second, and at 100 and
        // 200 ms into an idle period of the whole heap (two looks with no
        // activity in between make a thread idle), so a burst's leftovers
        // in caches go soon after it ends.
        let look = ticks % 100 == 0
            || idle_ticks == IDLE_TICKS_NO_CUSHION
            || idle_ticks == 2 * IDLE_TICKS_NO_CUSHION;
        if look && SCAVENGER.enabled.load(Relaxed) && crate::tls::reclaim_idle_caches() > 0 {
            // Their cached objects went back to their spans: spans they
            // alone kept alive are now spares or free.
            let n = release_central_surplus();
            SCAVENGER.released_background.fetch_add(n as u64, Relaxed);
        }
        if !SCAVENGER.enabled.load(Relaxed) {
            continue;
        }
        let Some((retained, goal, inuse, activity)) = heap_state() else {
            continue;
        };
        let idle = activity == last_activity;
        last_activity = activity;
        idle_ticks = if idle { idle_ticks + 1 } else { 0 };
        if !idle {
            interiors_done = false;
        }
        // After 100 ms without heap activity the cushion has no work to do:
        // release down to the in-use heap plus the floor.
        let goal = if idle_ticks >= IDLE_TICKS_NO_CUSHION {
            goal.min(inuse + MIN_CUSHION)
        } else {
            goal
        };
        let wall = now_ns(libc::CLOCK_MONOTONIC);
        let cpu = now_ns(libc::CLOCK_THREAD_CPUTIME_ID);
        // Budget for this tick: 1 % of the wall time since the last one,
        // less what the last tick overspent.
        let budget = (wall - tick_wall) * CPU_PERCENT / 100;
        let spent_before = cpu - tick_cpu;
        tick_wall = wall;
        tick_cpu = cpu;
        if retained <= goal {
            if idle_ticks >= IDLE_TICKS_NO_CUSHION && !interiors_done {
                let n = release_central_surplus();
                interiors_done = true;
                SCAVENGER.released_background.fetch_add(n as u64, Relaxed);
            }
            continue;
        }
        let start_cpu = now_ns(libc::CLOCK_THREAD_CPUTIME_ID);
        let mut released = 0;
        if idle {
            // Burst: the program is not allocating; return the excess now,
            // leaving dense chunks alone first, then anything left.
            let excess = retained - goal;
            released += HEAP.release(excess, BURST_PAGES, true);
            if released < excess && heap_state().is_some_and(|s| s.3 == activity) {
                released += HEAP.release(excess - released, BURST_PAGES, false);
            }
            released += release_metadata();
            if idle_ticks >= IDLE_TICKS_NO_CUSHION && !interiors_done {
                // Long idle: also the free pages inside spans that a few
                // survivors keep in use. Once per idle period.
                released += release_central_surplus();
                interiors_done = true;
            }
        } else if spent_before <= budget {
            // Paced: steps of 512 KiB until this tick's budget is used.
            let mut excess = retained - goal;
            while excess > 0 {
                let n = HEAP.release(excess.min(STEP_PAGES * PAGE_SIZE), STEP_PAGES, true);
                if n == 0 {
                    break;
                }
                released += n;
                excess = excess.saturating_sub(n);
                if now_ns(libc::CLOCK_THREAD_CPUTIME_ID) - start_cpu >= budget {
                    break;
                }
            }
        }
        let work = now_ns(libc::CLOCK_THREAD_CPUTIME_ID) - start_cpu;
        SCAVENGER.cpu_ns.fetch_add(work, Relaxed);
        if released > 0 {
            SCAVENGER
                .released_background
                .fetch_add(released as u64, Relaxed);
            SCAVENGER.cycles.fetch_add(1, Relaxed);
            if SCAVENGER.trace.load(Relaxed) {
                report::print(format_args!(
                    "scav: released {} KiB ({}), retained {} KiB, goal {} KiB, in use {} KiB, {} us",
                    released >> 10,
                    if idle { "idle" } else { "paced" },
                    (retained - released) >> 10,
                    goal >> 10,
                    inuse >> 10,
                    work / 1000
                ));
            }
        }
    }
}
