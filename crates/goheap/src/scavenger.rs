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
//!   tick, or, when none were, the threads' caches handed out or took
//!   back 100 objects or more) it works only while its thread CPU time
//!   stays under 1 % of the wall time (Go's `scavengePercent`), in steps
//!   of at most 512 KiB.
//!   Its goal then is the highest of the last one to two seconds
//!   ([`BusyGoal`]), so the dip between two phases of a program does not
//!   release what the next phase faults back in.
//! - When the heap has been idle for a tick, it releases everything above
//!   that goal at once, in 8 MiB steps, re-checking for activity between
//!   steps. The total work is the same as paced release; it just happens
//!   while the program is not using the allocator. After 100 ms of
//!   idleness the goal drops to the in-use heap plus a 2 MiB floor (the
//!   recent peak and the 10 % cushion have no work to do while nothing
//!   allocates), which is what makes RSS fall within half a second of a
//!   burst ending; so do the free OS pages inside in-use spans (spans a few
//!   survivors keep alive), once per idle period.
//!
//! About once a second it also empties the caches of threads that have not
//! allocated or freed since its last look (`tls::reclaim_idle_caches`), so
//! objects sitting in an idle thread's cache stop pinning their spans.
//!
//! Like Go, the background scavenger leaves dense chunks (≥ 96.875 % of a
//! 4 MiB chunk in use) alone so the huge pages the heap uses stay intact.
//! Once the heap has asked for transparent huge pages (`heap`'s "Growth"),
//! it releases whole free huge pages (aligned 2 MiB, all free and
//! resident) before anything else, paced or idle: a huge page given back
//! whole costs one fault when reused, not 512, and leaves nothing resident
//! for `khugepaged` to collapse a huge page around. Synchronous releases
//! (memory limit, [`free_os_memory`]) ignore both rules.

use crate::heap::Heap;
use crate::limit::{BURST_PAGES, MIN_CUSHION};
use crate::pagealloc::Scan;
use crate::report;
use crate::sizeclass::PAGE_SIZE;
use crate::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, Ordering::Relaxed};
use crate::tls::Threads;
use core::ptr;

/// Pages per background step (512 KiB).
const STEP_PAGES: usize = 64;
/// Background tick.
const TICK_NS: u64 = 10_000_000;
/// Ticks without heap activity after which the 10 % cushion is released.
const IDLE_TICKS_NO_CUSHION: u32 = 10;
/// Objects allocated and freed in a tick (10 ms) below which a heap whose
/// spans did not move counts as idle: 10 000 a second, a few requests'
/// worth for a server; a program busy out of its caches does hundreds of
/// thousands (cbench's `sqlite` and `python`).
const IDLE_OBJECTS_PER_TICK: u64 = 100;
/// Ticks per window of [`BusyGoal`] (1 s).
const PEAK_WINDOW_TICKS: u32 = 100;
/// CPU share of the paced background scavenger (Go: 1 %).
const CPU_PERCENT: u64 = 1;

/// The background scavenger's settings and counters (all atomics: read by
/// statistics, written by the settings API and the scavenger).
pub(crate) struct Scavenger {
    /// The background scavenger may run.
    pub(crate) enabled: AtomicBool,
    /// Print a line per background cycle that released memory.
    pub(crate) trace: AtomicBool,
    /// 0 not started, 1 starting, 2 running, 3 could not start.
    pub(crate) thread: AtomicU8,
    /// Bytes released by the background scavenger and by `free_os_memory`.
    pub(crate) released_background: AtomicU64,
    pub(crate) released_forced: AtomicU64,
    /// Background cycles that released something, and the scavenger
    /// thread's CPU time.
    pub(crate) cycles: AtomicU64,
    pub(crate) cpu_ns: AtomicU64,
    /// The heap and threads the thread looks after (set before it starts).
    heap: AtomicPtr<Heap>,
    threads: AtomicPtr<Threads>,
}

/// The process's scavenger.
pub(crate) static SCAVENGER: Scavenger = Scavenger {
    enabled: AtomicBool::new(true),
    trace: AtomicBool::new(false),
    thread: AtomicU8::new(0),
    released_background: AtomicU64::new(0),
    released_forced: AtomicU64::new(0),
    cycles: AtomicU64::new(0),
    cpu_ns: AtomicU64::new(0),
    heap: AtomicPtr::new(ptr::null_mut()),
    threads: AtomicPtr::new(ptr::null_mut()),
};

/// Returns every free page to the OS now: flushes the calling thread's
/// cache first so its objects' spans can empty, then releases all free
/// pages regardless of density (Go's `debug.FreeOSMemory`, minus the GC).
/// Returns the bytes released.
pub(crate) fn free_os_memory(heap: &Heap, threads: &Threads) -> usize {
    threads.flush_thread_cache();
    if let Some(mut h) = heap.lock() {
        h.pages.rewind_scavenge();
    }
    // First, so the spans it empties are among the free pages released.
    let interiors = release_central_surplus(heap);
    let released =
        heap.release(usize::MAX, BURST_PAGES, Scan::All) + interiors + release_metadata(heap, threads);
    SCAVENGER.released_forced.fetch_add(released as u64, Relaxed);
    released
}

/// Gives back what the central lists hold for reuse and releases the
/// unused OS pages inside their partial spans: transfer-cache batches go
/// back into their spans, spare spans to the page heap, then
/// `Central::release_span_interiors`. Returns the bytes released.
pub(crate) fn release_central_surplus(heap: &Heap) -> usize {
    for (class, c) in heap.centrals.iter().enumerate().skip(1) {
        c.drain_batches(heap, class);
        c.drop_spare(heap);
    }
    let lazy = heap.limit.lazy.load(Relaxed);
    heap.centrals.iter().map(|c| c.release_span_interiors(heap, lazy)).sum()
}

/// Returns the memory of metadata chunks with nothing in use (span structs
/// and thread caches) to the OS. Returns the bytes released.
pub(crate) fn release_metadata(heap: &Heap, threads: &Threads) -> usize {
    let caches = threads.release_empty_caches();
    let spans = match heap.lock() {
        Some(mut h) => h.spans.release_empty(heap.os),
        None => 0,
    };
    caches + spans
}

/// Reads the scavenger's and the limit's switches from the options; called
/// once at process set-up (nothing here allocates or takes a lock).
pub(crate) fn init_from_env(heap: &Heap) {
    use crate::options::{self, Opt};
    SCAVENGER.enabled.store(options::get(Opt::Scavenger), Relaxed);
    SCAVENGER.trace.store(options::get(Opt::ScavTrace), Relaxed);
    heap.limit.lazy.store(options::get(Opt::MadvFree), Relaxed);
    heap.limit.hard.store(options::get(Opt::HardLimit), Relaxed);
    heap.huge_pages.store(options::get(Opt::HugePages), Relaxed);
}

/// In a child after `fork`: the scavenger thread did not survive; let the
/// next heap growth start a new one.
pub(crate) fn after_fork_in_child() {
    if SCAVENGER.thread.load(Relaxed) != 3 {
        SCAVENGER.thread.store(0, Relaxed);
    }
}

/// Starts the background scavenger thread for `heap` if it is not running.
/// Creating a thread may allocate: the caller makes sure that is safe
/// (no allocator lock held, not inside an operation on its cache).
pub(crate) fn start(heap: &'static Heap, threads: &'static Threads) {
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
    SCAVENGER.heap.store(heap as *const Heap as *mut Heap, Relaxed);
    SCAVENGER
        .threads
        .store(threads as *const Threads as *mut Threads, Relaxed);
    let mut tid: libc::pthread_t = 0;
    // SAFETY: `scavenger_main` matches the start-routine signature and
    // takes no argument; the thread is detached at once. The stores above
    // happen before the thread starts (pthread_create synchronises).
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


/// Ticks between looks at whether the scavenger is the process's last
/// live thread (100 ms).
const LAST_THREAD_TICKS: u64 = 10;

/// Whether the scavenger is the process's only live thread: alone, or
/// beside the first thread as a zombie (a first thread that left through
/// `pthread_exit` stays listed until the whole process ends). The
/// scavenger is never the first thread.
fn only_thread_left() -> bool {
    matches!(crate::os::leader_state_and_threads(), Some((_, 1)) | Some((b'Z', 2)))
}

/// Ends the process as its last thread would have. The program's threads
/// are all gone, the last of them through `pthread_exit` (a `main` that
/// called it, or a worker that forked, so is the child's only thread, and
/// returned from its start routine), which ends a process only when no
/// thread is left: glibc then calls `exit(0)`. The scavenger would keep
/// the process alive forever instead (CPython's `test_threading` waited
/// 300 s for such a child; `tests/preload.rs` has both cases in C).
fn end_as_last_thread() -> ! {
    // SAFETY: no other thread runs; `exit` runs the atexit handlers
    // (goheap's exit report and heap profile among them) on this thread,
    // which holds no lock between ticks.
    unsafe { libc::exit(0) }
}

fn sleep_ns(ns: u64) {
    let ts = libc::timespec {
        tv_sec: (ns / 1_000_000_000) as _,
        tv_nsec: (ns % 1_000_000_000) as _,
    };
    // SAFETY: a valid timespec; the remainder pointer may be null.
    unsafe { libc::nanosleep(&ts, ptr::null_mut()) };
}

/// The goal while the heap is busy: the highest cushioned goal (in use
/// plus 10 % and a floor) of the last one to two seconds
/// ([`PEAK_WINDOW_TICKS`], two windows), not the latest; the memory
/// limit's cap still applies to it. A program that works in phases (build
/// a structure, free most of it, build the next) dips its in-use heap
/// between them, often with a quiet tick in between while it runs out of
/// its caches; a goal that followed the dip released the free pages the
/// next phase faults back in (cbench's `sqlite` and `python` took two to
/// three times the page faults with the scavenger on, and 0.88 and 0.92 of
/// the time with it off). Go's scavenger keeps to the collector's heap
/// goal, set once a cycle, for the same reason. Idle for
/// [`IDLE_TICKS_NO_CUSHION`], the scavenger drops to the in-use heap
/// regardless.
struct BusyGoal {
    /// Highest goal seen in the current window.
    current: usize,
    /// Highest goal of the window before.
    previous: usize,
    /// Ticks into the current window.
    ticks: u32,
}

impl BusyGoal {
    const fn new() -> Self {
        BusyGoal {
            current: 0,
            previous: 0,
            ticks: 0,
        }
    }

    /// Records this tick's cushioned `goal` and returns the highest of the
    /// last one to two windows.
    fn update(&mut self, goal: usize) -> usize {
        self.ticks += 1;
        if self.ticks >= PEAK_WINDOW_TICKS {
            self.previous = self.current;
            self.current = 0;
            self.ticks = 0;
        }
        self.current = self.current.max(goal);
        self.current.max(self.previous)
    }
}

/// This tick's goal for the retained heap. Busy, or quiet for less than
/// 100 ms (CPython goes that long without a malloc between phases): the
/// recent `peak` of the cushioned goal. After 100 ms without heap activity
/// neither the peak nor the cushion has work to do: the in-use heap plus
/// the floor. Never above the memory limit's `cap`.
fn tick_goal(peak: usize, inuse: usize, cap: usize, idle_ticks: u32) -> usize {
    let goal = if idle_ticks >= IDLE_TICKS_NO_CUSHION {
        inuse + MIN_CUSHION
    } else {
        peak
    };
    goal.min(cap)
}

/// One look at the heap.
struct HeapLook {
    retained: usize,
    /// The goal before the memory limit's cap (`cushioned_goal`).
    cushioned: usize,
    /// The memory limit's cap on any goal (`goal_cap`).
    cap: usize,
    inuse: usize,
    /// The heap's span activity counter.
    activity: u64,
}

fn heap_state(heap: &Heap) -> Option<HeapLook> {
    let h = heap.lock()?;
    Some(HeapLook {
        retained: h.retained(),
        cushioned: h.cushioned_goal(),
        cap: heap.limit.goal_cap(heap.metadata_sys(&h)),
        inuse: h.inuse_pages * PAGE_SIZE,
        activity: h.activity,
    })
}

/// The background scavenger thread. Never allocates: it only takes the
/// heap lock, reads clocks and files through raw system calls, and sleeps.
extern "C" fn scavenger_main(_: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: `start` stored both before creating this thread; they are
    // the process's statics.
    let (heap, threads) = unsafe {
        (
            &*SCAVENGER.heap.load(Relaxed),
            &*SCAVENGER.threads.load(Relaxed),
        )
    };
    let mut last_activity = u64::MAX;
    let mut tick_wall = crate::os::clock_ns(libc::CLOCK_MONOTONIC);
    let mut tick_cpu = crate::os::clock_ns(libc::CLOCK_THREAD_CPUTIME_ID);
    let mut ticks: u64 = 0;
    let mut idle_ticks: u32 = 0;
    let mut interiors_done = false;
    let mut busy_goal = BusyGoal::new();
    let mut last_objects: Option<u64> = None;
    loop {
        sleep_ns(TICK_NS);
        ticks += 1;
        if ticks % LAST_THREAD_TICKS == 0 && only_thread_left() {
            end_as_last_thread();
        }
        if ticks % 100 == 0 {
            crate::cgroup::refresh_limit(heap);
        }
        // Idle threads' caches: looked at every second, and at 100 and
        // 200 ms into an idle period of the whole heap (two looks with no
        // activity in between make a thread idle), so a burst's leftovers
        // in caches go soon after it ends.
        let look = ticks % 100 == 0
            || idle_ticks == IDLE_TICKS_NO_CUSHION
            || idle_ticks == 2 * IDLE_TICKS_NO_CUSHION;
        if look && SCAVENGER.enabled.load(Relaxed) && threads.reclaim_idle_caches() > 0 {
            // Their cached objects went back to their spans: spans they
            // alone kept alive are now spares or free.
            let n = release_central_surplus(heap);
            SCAVENGER.released_background.fetch_add(n as u64, Relaxed);
        }
        if !SCAVENGER.enabled.load(Relaxed) {
            continue;
        }
        let Some(HeapLook {
            retained,
            cushioned,
            cap,
            inuse,
            activity,
        }) = heap_state(heap)
        else {
            continue;
        };
        // Idle: no span moved since the last tick, and the threads' caches
        // handed out and took back fewer than IDLE_OBJECTS_PER_TICK
        // objects (read only once the spans are quiet; the first quiet
        // tick records the count). A server answering a request now and
        // then is idle; a program working out of its caches is not.
        let mut idle = activity == last_activity;
        last_activity = activity;
        if idle {
            let objects = threads.object_activity();
            idle = last_objects
                .is_some_and(|last| objects.wrapping_sub(last) < IDLE_OBJECTS_PER_TICK);
            last_objects = Some(objects);
        } else {
            last_objects = None;
        }
        idle_ticks = if idle { idle_ticks + 1 } else { 0 };
        if !idle {
            interiors_done = false;
        }
        let goal = tick_goal(busy_goal.update(cushioned), inuse, cap, idle_ticks);
        let wall = crate::os::clock_ns(libc::CLOCK_MONOTONIC);
        let cpu = crate::os::clock_ns(libc::CLOCK_THREAD_CPUTIME_ID);
        // Budget for this tick: 1 % of the wall time since the last one,
        // less what the last tick overspent.
        let budget = (wall - tick_wall) * CPU_PERCENT / 100;
        let spent_before = cpu - tick_cpu;
        tick_wall = wall;
        tick_cpu = cpu;
        if retained <= goal {
            if idle_ticks >= IDLE_TICKS_NO_CUSHION && !interiors_done {
                let n = release_central_surplus(heap);
                interiors_done = true;
                SCAVENGER.released_background.fetch_add(n as u64, Relaxed);
            }
            continue;
        }
        let start_cpu = crate::os::clock_ns(libc::CLOCK_THREAD_CPUTIME_ID);
        let mut released = 0;
        if idle {
            // Burst: the program is not allocating; return the excess now:
            // whole huge pages first (if the heap asked for them: the huge
            // pages it keeps stay whole), then leaving dense chunks alone,
            // then anything left.
            let excess = retained - goal;
            if heap.huge_pages_active() {
                released += heap.release(excess, BURST_PAGES, Scan::WholeHugePages);
            }
            if released < excess {
                released += heap.release(excess - released, BURST_PAGES, Scan::SkipDense);
            }
            if released < excess && heap_state(heap).is_some_and(|s| s.activity == activity) {
                released += heap.release(excess - released, BURST_PAGES, Scan::All);
            }
            released += release_metadata(heap, threads);
            if idle_ticks >= IDLE_TICKS_NO_CUSHION && !interiors_done {
                // Long idle: also the free pages inside spans that a few
                // survivors keep in use. Once per idle period.
                released += release_central_surplus(heap);
                interiors_done = true;
            }
        } else if spent_before <= budget {
            // Paced: steps of 512 KiB until this tick's budget is used (or
            // a whole free huge page, in a heap that asked for them: giving
            // it back whole costs one fault, not 512, when it is reused).
            let mut excess = retained - goal;
            while excess > 0 {
                let want = excess.min(STEP_PAGES * PAGE_SIZE);
                let mut n = 0;
                if heap.huge_pages_active() {
                    n = heap.release(want, STEP_PAGES, Scan::WholeHugePages);
                }
                if n == 0 {
                    n = heap.release(want, STEP_PAGES, Scan::SkipDense);
                }
                if n == 0 {
                    break;
                }
                released += n;
                excess = excess.saturating_sub(n);
                if crate::os::clock_ns(libc::CLOCK_THREAD_CPUTIME_ID) - start_cpu >= budget {
                    break;
                }
            }
        }
        let work = crate::os::clock_ns(libc::CLOCK_THREAD_CPUTIME_ID) - start_cpu;
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

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    /// Feeds `goal` for `ticks` ticks; returns the last busy goal.
    fn feed(b: &mut BusyGoal, goal: usize, ticks: u32) -> usize {
        let mut out = 0;
        for _ in 0..ticks {
            out = b.update(goal);
        }
        out
    }

    #[test]
    fn busy_goal_keeps_the_recent_peak_through_a_dip() {
        let mut b = BusyGoal::new();
        assert_eq!(feed(&mut b, 40 * MIB, 30), 40 * MIB);
        // A phase ends: the in-use heap dips, the goal with it; the busy
        // goal stays at the peak for the rest of this window and the next.
        assert_eq!(feed(&mut b, 5 * MIB, 1), 40 * MIB);
        assert_eq!(feed(&mut b, 5 * MIB, PEAK_WINDOW_TICKS), 40 * MIB);
        // A second window without the peak: it is forgotten.
        assert_eq!(feed(&mut b, 5 * MIB, PEAK_WINDOW_TICKS), 5 * MIB);
        // A higher goal counts at once.
        assert_eq!(feed(&mut b, 60 * MIB, 1), 60 * MIB);
    }

    #[test]
    fn tick_goal_never_holds_above_the_limits_cap() {
        // A peak of 100 MiB under a limit whose cap is 30 MiB: the cap.
        assert_eq!(tick_goal(100 * MIB, 20 * MIB, 30 * MIB, 0), 30 * MIB);
        assert_eq!(tick_goal(100 * MIB, 20 * MIB, usize::MAX, 0), 100 * MIB);
        // Idle for 100 ms: the in-use heap plus the floor, the peak gone,
        // and the cap still over it.
        let idle = IDLE_TICKS_NO_CUSHION;
        assert_eq!(tick_goal(100 * MIB, 20 * MIB, usize::MAX, idle), 20 * MIB + MIN_CUSHION);
        assert_eq!(tick_goal(100 * MIB, 20 * MIB, 10 * MIB, idle), 10 * MIB);
    }
}
