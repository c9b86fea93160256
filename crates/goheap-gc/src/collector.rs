//! The collector: a stop-the-world mark of everything the roots reach,
//! the dead objects' `Drop`s, and sweeping handed to the core; the pacer
//! that decides when; statistics and `GOHEAP_GCTRACE`.
//!
//! # A cycle
//!
//! 1. Take the collection lock (one cycle at a time; a triggered cycle
//!    that finds one running leaves it be) and the registry lock.
//! 2. Stop the world: raise every mutator's claim, one heavy barrier, wait
//!    until none is inside an operation. Threads outside `Gc` operations
//!    run on; they can only read objects they hold handles to.
//! 3. Drain every thread's root log into the root table and flush every
//!    thread's span cache.
//! 4. Finish the last cycle's sweep (mark bits must be clear).
//! 5. Mark: every object with a positive root count, then, from a work
//!    stack (no recursion), every object their headers' `trace` reaches.
//! 6. End the mark in the core (every span becomes unswept; spans holding
//!    objects with a `Drop` are set aside); compute the next goal; release
//!    the claims (the pause ends).
//! 7. Run the dead objects' `Drop`s (this thread, the world running; the
//!    spans set aside are not swept, so not reused, until their objects
//!    are all dropped), then let the rest be swept lazily and by the
//!    background sweeper.

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering::Relaxed};
use std::sync::{Condvar, Mutex, Once};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use goheap::gc_support::{GcCycles, GC_HEAP};
use goheap::sync::handshake;

use crate::gc::{type_info, TypeInfo};
use crate::mutator::{self, lock, Mutator, REGISTRY, ROOTS};
use crate::Visitor;

/// Go's minimum heap goal (`heapMinimum` at GOGC=100): 4 MiB.
pub const MIN_HEAP_GOAL: u64 = 4 << 20;

/// The collector's mark work: objects marked whose handles are still to
/// be visited.
pub(crate) struct MarkStack {
    /// Objects to scan: their first byte, and their span's type word (0:
    /// the object has a header).
    stack: Vec<(usize, usize)>,
    /// Objects and bytes marked so far this cycle.
    objects: u64,
    bytes: u64,
}

impl MarkStack {
    /// Marks the object holding `addr`; queues it if it was unmarked and
    /// has a header to trace.
    #[inline]
    pub(crate) fn mark(&mut self, addr: usize) {
        // SAFETY: only reached from `mark_all`, with the world stopped
        // between `finish_sweep` and `finish_mark`.
        if let Some(m) = unsafe { GC_HEAP.mark(addr) } {
            if m.newly {
                self.objects += 1;
                self.bytes += m.size as u64;
                if m.scan {
                    self.stack.push((m.base as usize, m.type_info));
                }
            }
        }
    }
}

/// The collection lock: one cycle (and its drops) at a time; the
/// background sweeper holds it while it sweeps.
static COLLECT: Mutex<()> = Mutex::new(());

/// `GOGC`: the percent of the marked heap the heap may grow by before the
/// next cycle; negative: off. `i32::MIN`: not read from the environment
/// yet.
static GC_PERCENT: AtomicI32 = AtomicI32::new(i32::MIN);

/// Where the next cycle starts (the goal itself is the core's record,
/// `GcCycles::next_gc`): Go's trigger, inside the runway from the
/// marked heap to the goal.
static TRIGGER: AtomicU64 = AtomicU64::new(MIN_HEAP_GOAL / 100 * 95);

/// Go's bounds on the trigger, as a fraction of the runway from the
/// marked heap to the goal (`minTriggerFrac`/`maxTriggerFrac` of the
/// runtime's pacer, 0.7 and 0.95). Go places the trigger between them so
/// that its concurrent mark ends by the goal; a mark that stops the world
/// needs no runway, so the trigger is the upper bound.
const TRIGGER_FRACTION: (u64, u64) = (95, 100);

/// Sets the goal and the trigger after a cycle that marked `marked`.
fn set_goal(marked: u64, goal: u64) {
    goheap::gc_support::record_next_gc(goal);
    let trigger = if goal == u64::MAX {
        u64::MAX
    } else {
        let runway = goal.saturating_sub(marked) as u128;
        marked + (runway * TRIGGER_FRACTION.0 as u128 / TRIGGER_FRACTION.1 as u128) as u64
    };
    TRIGGER.store(trigger, Relaxed);
}

/// What this crate counts beside the core's cycle records
/// (`goheap::gc_support::record_cycle`), under `STATS`.
struct Totals {
    /// CPU time of the collecting threads in cycles, ns.
    gc_cpu_ns: u64,
    /// Objects and bytes allocated by threads that have exited.
    retired_slots: u64,
    retired_tiny: u64,
    retired_alloc_bytes: u64,
}

static STATS: Mutex<Totals> = Mutex::new(Totals {
    gc_cpu_ns: 0,
    retired_slots: 0,
    retired_tiny: 0,
    retired_alloc_bytes: 0,
});

static TRACE: AtomicBool = AtomicBool::new(false);
static ENV: Once = Once::new();

/// The process start, for `GCCPUFraction` and the trace's `@` column.
fn start_time() -> Instant {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Reads `GOHEAP_GOGC` and `GOHEAP_GCTRACE` once.
fn read_env() {
    ENV.call_once(|| {
        start_time();
        let pct = match std::env::var("GOHEAP_GOGC") {
            Ok(v) => parse_gogc(&v).unwrap_or_else(|| {
                eprintln!(
                    "goheap-gc: GOHEAP_GOGC={v:?} is neither a percent nor \"off\"; using 100"
                );
                100
            }),
            Err(_) => 100,
        };
        let _ = GC_PERCENT.compare_exchange(i32::MIN, pct, Relaxed, Relaxed);
        if let Ok(v) = std::env::var("GOHEAP_GCTRACE") {
            TRACE.store(v.trim() == "1", Relaxed);
        }
    });
}

/// Go's `GOGC` syntax: a non-negative percent, or `off` (−1).
pub(crate) fn parse_gogc(v: &str) -> Option<i32> {
    let v = v.trim();
    if v.eq_ignore_ascii_case("off") {
        return Some(-1);
    }
    let n: i64 = v.parse().ok()?;
    (n >= 0).then(|| n.min(i32::MAX as i64) as i32)
}

fn gc_percent() -> i32 {
    read_env();
    GC_PERCENT.load(Relaxed)
}

/// Sets `GOGC` (Go's `debug.SetGCPercent`): a negative value turns the
/// collector off (except [`collect`] and memory-limit pressure); returns
/// the previous setting. The goal is recomputed at once from the last
/// cycle's marked heap.
pub fn set_gc_percent(percent: i32) -> i32 {
    read_env();
    let old = GC_PERCENT.swap(percent.max(-1), Relaxed);
    let marked = GC_HEAP.stats().marked_bytes;
    set_goal(marked, heap_goal(marked));
    old
}

/// The heap goal for a marked heap of `marked` bytes: Go's
/// `marked × (1 + GOGC/100)` with its 4 MiB minimum, lowered by the memory
/// limit (which counts all of goheap's memory: malloc, collected heap,
/// metadata) but never below `marked` plus a floor.
pub(crate) fn heap_goal(marked: u64) -> u64 {
    let pct = gc_percent();
    let gogc_goal = if pct < 0 {
        u64::MAX
    } else {
        let pct = pct as u128;
        let goal = marked as u128 + marked as u128 * pct / 100;
        let minimum = MIN_HEAP_GOAL as u128 * pct / 100;
        goal.max(minimum).min(u64::MAX as u128 - 1) as u64
    };
    let limit = goheap::memory_limit();
    if limit == usize::MAX {
        return gogc_goal;
    }
    // What the limit leaves for the collected heap: the limit less every
    // other byte goheap has mapped, less Go's 3 % headroom.
    let mapped = goheap::gc_support::mapped_bytes() as u64;
    let gc_spans = GC_HEAP.stats().span_bytes;
    let other = mapped.saturating_sub(gc_spans);
    let room = (limit as u64).saturating_sub(other);
    let limit_goal = room - room / 100 * 3;
    // Go's floor: never a goal under the live heap plus a little, so that
    // a limit the live heap alone exceeds does not collect continuously.
    let floor = marked + (marked / 16).max(1 << 20);
    gogc_goal.min(limit_goal.max(floor))
}

/// Called by `Gc::new` when the allocation took a new span: collects if
/// the collected heap reached its trigger.
#[inline]
pub(crate) fn maybe_collect(m: &Mutator) {
    let live = GC_HEAP.heap_live() as u64;
    if live < TRIGGER.load(Relaxed) && !over_limit(live) {
        return;
    }
    if m.collecting.get() || m.dropping.get() {
        return;
    }
    if let Ok(guard) = COLLECT.try_lock() {
        // Another thread may have collected since the check.
        let live = GC_HEAP.heap_live() as u64;
        if live >= TRIGGER.load(Relaxed) || over_limit(live) {
            run_cycle(m, guard, false);
        }
    }
}

/// Whether goheap's memory as a whole reached the memory limit (less
/// Go's headroom) while the collected heap has grown past its floor: the
/// goal the last cycle computed did not foresee the malloc heap's growth
/// since.
fn over_limit(live: u64) -> bool {
    let limit = goheap::memory_limit();
    if limit == usize::MAX {
        return false;
    }
    let marked = GC_HEAP.stats().marked_bytes;
    if live < marked + (marked / 16).max(1 << 20) {
        return false;
    }
    let limit = limit as u64;
    goheap::gc_support::mapped_bytes() as u64 >= limit - limit / 100 * 3
}

/// Runs a full collection now, blocking (Go's `runtime.GC`): every object
/// unreachable when it starts is dropped and freed by the time it returns
/// (their spans are swept). From a `Drop` that a collection runs, returns
/// at once.
pub fn collect() {
    let Some(m) = mutator::mutator() else {
        return;
    };
    if m.collecting.get() || m.dropping.get() {
        return;
    }
    let guard = lock(&COLLECT);
    run_cycle(m, guard, true);
}

/// Collects, sweeps everything, and returns every free page of goheap's
/// heap to the OS (Go's `debug.FreeOSMemory`). Returns the bytes released.
pub fn free_os_memory() -> usize {
    collect();
    {
        let _g = lock(&COLLECT);
        while GC_HEAP.sweep_some(usize::MAX) > 0 {}
    }
    goheap::free_os_memory()
}

fn run_cycle(me: &Mutator, guard: std::sync::MutexGuard<'_, ()>, forced: bool) {
    read_env();
    me.collecting.set(true);
    let t0 = Instant::now();
    let cpu0 = thread_cpu_ns();
    let reg = lock(&REGISTRY);
    for m in reg.iter() {
        // SAFETY: registered mutators live while the registry lock is held.
        unsafe { (*m.0).handshake.request() };
    }
    let _ = handshake::heavy_barrier();
    for m in reg.iter() {
        // SAFETY: as above. The owners never block inside an operation on
        // the locks held here (collection, registry).
        unsafe { (*m.0).handshake.wait_idle() };
    }
    let heap_before = GC_HEAP.heap_live() as u64;
    let mut roots = lock(&ROOTS);
    for m in reg.iter() {
        // SAFETY: we hold every claim: the logs and caches are ours.
        unsafe {
            (*m.0).claimed_log().drain_into(&mut roots);
            (*m.0).cache.flush();
        }
    }
    // SAFETY: the world is stopped and every cache flushed; the last
    // cycle's drops ran under the collection lock, which we hold.
    unsafe { GC_HEAP.finish_sweep() };
    let t_mark = Instant::now();
    let mut work = MarkStack {
        stack: Vec::new(),
        objects: 0,
        bytes: 0,
    };
    for (addr, count) in roots.iter() {
        debug_assert!(count > 0, "a root count below zero: {addr:#x} {count}");
        if count > 0 {
            work.mark(addr);
        }
    }
    mark_all(&mut work);
    // SAFETY: the world is stopped; marking is done.
    let marked = unsafe { GC_HEAP.finish_mark(work.objects, work.bytes) };
    // Held until here: a thread without thread-locals counts roots under
    // this lock instead of a bracket.
    drop(roots);
    let goal = heap_goal(marked);
    set_goal(marked, goal);
    for m in reg.iter() {
        // SAFETY: claims we raised.
        unsafe { (*m.0).handshake.release() };
    }
    drop(reg);
    let t_released = Instant::now();
    // The dead objects' `Drop`s, on this thread with the world running.
    me.dropping.set(true);
    GC_HEAP.finalize(|base, typed| {
        // SAFETY: `base` starts a dead object of a scan span (only those
        // have drops), initialised when it was allocated.
        let (info, value) = unsafe { object_type(base, typed) };
        if let Some(d) = info.drop {
            // SAFETY: the object is dead: nothing can reach it again.
            let r = std::panic::catch_unwind(|| unsafe { d(value) });
            if r.is_err() {
                eprintln!("goheap-gc: fatal error: the Drop of a dead object panicked (run by the collector)");
                std::process::abort();
            }
        }
    });
    me.dropping.set(false);
    if forced {
        // `collect` promises every dead object freed on return.
        while GC_HEAP.sweep_some(usize::MAX) > 0 {}
    }
    let t_end = Instant::now();
    let cpu = thread_cpu_ns().saturating_sub(cpu0);
    let pause = t_released.duration_since(t0);
    let gc_cpu_ns = {
        let mut s = lock(&STATS);
        s.gc_cpu_ns += cpu;
        s.gc_cpu_ns
    };
    let elapsed = start_time().elapsed().as_nanos().max(1) as f64;
    let frac = gc_cpu_ns as f64 / (elapsed * ncpu() as f64);
    let n = goheap::gc_support::record_cycle(pause.as_nanos() as u64, unix_now_ns(), frac);
    drop(guard);
    me.collecting.set(false);
    if TRACE.load(Relaxed) {
        let mb = |b: u64| b >> 20;
        let at = t0.duration_since(start_time()).as_secs_f64();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let frac = frac * 100.0;
        eprintln!(
            "gc {n} @{at:.3}s {frac:.0}%: {:.3}+{:.3}+{:.3} ms clock, {} -> {} -> {} MB, {} MB goal, {} P{}",
            ms(t_mark.duration_since(t0)),
            ms(t_released.duration_since(t_mark)),
            ms(t_end.duration_since(t_released)),
            mb(heap_before),
            mb(GC_HEAP.heap_live() as u64),
            mb(marked),
            mb(goal.min(u64::MAX >> 1)),
            ncpu(),
            if forced { " (forced)" } else { "" },
        );
    }
    start_background_sweeper();
}

/// Drains the mark stack: each object's header says how to visit its
/// handles.
fn mark_all(work: &mut MarkStack) {
    while let Some((base, typed)) = work.stack.pop() {
        // SAFETY: queued objects are marked, allocated objects of scan
        // spans: initialised, with a header or of a typed class.
        let (info, value) = unsafe { object_type(base as *mut u8, typed) };
        if let Some(trace) = info.trace {
            // SAFETY: the value of a live object; the world is stopped, so
            // no mutator changes it (a `GcRefCell` borrowed mutably is
            // skipped by its `Trace` impl; its contents count as roots).
            unsafe { trace(value, &mut Visitor::marking(work)) };
        }
    }
}

/// The type information and the value of the object at `base`, from its
/// span's type word `typed` (a typed class: no header), or its header.
///
/// # Safety
///
/// `base` starts an initialised object of a scan span whose type word is
/// `typed`.
unsafe fn object_type(base: *mut u8, typed: usize) -> (&'static TypeInfo, *mut u8) {
    if typed != 0 {
        // SAFETY: a typed class's word is the address of its type's
        // `TypeInfo`, a constant of the program.
        (unsafe { &*(typed as *const TypeInfo) }, base)
    } else {
        // SAFETY: per the contract, the object has a header.
        let info = unsafe { type_info(base) };
        // SAFETY: the value lies `offset` bytes into the object.
        (info, unsafe { base.add(info.offset) })
    }
}

/// Sweeps what the cycles leave unswept, a few spans at a time, so that
/// dead spans go back to the page heap (and the scavenger) without waiting
/// for an allocation to need them (Go's `bgsweep`).
fn start_background_sweeper() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("goheap-gc-sweep".into())
            .spawn(background_sweeper);
    });
    *lock(&SWEEP_WAKE.0) += 1;
    SWEEP_WAKE.1.notify_one();
}

/// Cycles ended, for the background sweeper to wait on.
static SWEEP_WAKE: (Mutex<u64>, Condvar) = (Mutex::new(0), Condvar::new());

fn background_sweeper() {
    let mut seen = 0;
    loop {
        {
            let (m, cv) = &SWEEP_WAKE;
            let mut cycles = lock(m);
            while *cycles == seen {
                cycles = cv.wait(cycles).unwrap_or_else(|e| e.into_inner());
            }
            seen = *cycles;
        }
        // A few spans per turn of the collection lock, so a collection
        // (which needs it) never waits long.
        loop {
            let swept = match COLLECT.try_lock() {
                Ok(_g) => GC_HEAP.sweep_some(16),
                Err(_) => 1,
            };
            if swept == 0 {
                break;
            }
            std::thread::yield_now();
        }
    }
}

/// Adds an exiting thread's allocation counts to the totals.
pub(crate) fn retire_counts(m: &Mutator) {
    let mut s = lock(&STATS);
    // SAFETY: the exiting owner calls this, outside any operation.
    let (slots, tiny) = unsafe { m.cache.counts() };
    s.retired_slots += slots;
    s.retired_tiny += tiny;
    s.retired_alloc_bytes += m.alloc_bytes.get();
}

/// Nanoseconds since the Unix epoch (0 under Miri, whose isolation hides
/// the wall clock).
fn unix_now_ns() -> u64 {
    if cfg!(miri) {
        return 0;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos() as u64
}

/// The calling thread's CPU time (0 under Miri).
fn thread_cpu_ns() -> u64 {
    if cfg!(miri) {
        return 0;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes the struct it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn ncpu() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The collector's statistics, in the shape of Go's `runtime.MemStats`
/// fields about the GC.
#[derive(Debug, Clone)]
pub struct GcStats {
    /// The cycle records (Go's `NumGC`, `PauseNs`, `PauseEnd`,
    /// `PauseTotalNs`, `LastGC`, `NextGC`, `GCCPUFraction`, and the longest
    /// pause), kept by the core and also in [`goheap::memstats`].
    pub cycles: GcCycles,
    /// `GOGC` now (negative: off).
    pub gc_percent: i32,
    /// Bytes live or allocated since the last mark, counting free slots of
    /// spans held by thread caches (Go's `heapLive`, what the goal is
    /// compared with).
    pub heap_live: u64,
    /// Bytes and objects the last cycle marked.
    pub heap_marked: u64,
    /// See [`heap_marked`](Self::heap_marked).
    pub marked_objects: u64,
    /// Objects allocated since the start (`Mallocs`), counted as Go does:
    /// every slot handed out (objects, tiny blocks, large objects) plus
    /// every object placed in a tiny block; and the bytes asked for
    /// (`TotalAlloc`).
    pub mallocs: u64,
    /// See [`mallocs`](Self::mallocs).
    pub total_alloc: u64,
    /// Objects freed (`Frees`), as Go counts them: every slot swept free,
    /// plus every object placed in a tiny block (counted freed when
    /// placed; its block is the object that lives and dies).
    pub frees: u64,
    /// Bytes of the slots swept free.
    pub freed_bytes: u64,
    /// Slots holding objects now, live or not yet swept (`HeapObjects`:
    /// `mallocs − frees`).
    pub heap_objects: u64,
    /// Spans of the collected heap and their bytes (`HeapInuse` of the
    /// collected heap).
    pub spans: u64,
    /// See [`spans`](Self::spans).
    pub span_bytes: u64,
}

/// The collector's statistics now. Holds every mutator still for a moment
/// to read its counters.
pub fn stats() -> GcStats {
    read_env();
    let (mut slots, mut tiny, mut total_alloc);
    {
        // The registry first: an exiting thread moves its counts to the
        // totals under it, so each is counted once.
        let reg = lock(&REGISTRY);
        (slots, tiny, total_alloc) = {
            let s = lock(&STATS);
            (s.retired_slots, s.retired_tiny, s.retired_alloc_bytes)
        };
        let me = mutator::mutator().map_or(core::ptr::null(), |m| m as *const Mutator);
        for m in reg.iter() {
            if m.0 != me {
                // SAFETY: registered mutators live while the lock is held.
                unsafe { (*m.0).handshake.request() };
            }
        }
        let _ = handshake::heavy_barrier();
        for m in reg.iter() {
            // SAFETY: as above; our own is not in an operation (we are).
            unsafe {
                if m.0 != me {
                    (*m.0).handshake.wait_idle();
                }
                let (s, t) = (*m.0).cache.counts();
                slots += s;
                tiny += t;
                total_alloc += (*m.0).alloc_bytes.get();
                if m.0 != me {
                    (*m.0).handshake.release();
                }
            }
        }
    }
    let h = GC_HEAP.stats();
    GcStats {
        cycles: goheap::gc_support::gc_cycles(),
        gc_percent: GC_PERCENT.load(Relaxed),
        heap_live: h.heap_live,
        heap_marked: h.marked_bytes,
        marked_objects: h.marked_objects,
        mallocs: slots + tiny,
        total_alloc,
        frees: h.swept_objects + tiny,
        freed_bytes: h.swept_bytes,
        heap_objects: slots.saturating_sub(h.swept_objects),
        spans: h.spans,
        span_bytes: h.span_bytes,
    }
}

#[cfg(test)]
mod tests {
    //! A whole cycle on a small graph, small enough for Miri: what is
    //! reachable survives intact, what is not is dropped once and freed.

    use core::sync::atomic::{AtomicUsize, Ordering};

    use crate::{Gc, GcRefCell, Trace};

    static DROPS: AtomicUsize = AtomicUsize::new(0);

    #[derive(Trace)]
    #[trace(no_gc)]
    struct Payload(Vec<u32>);

    impl Drop for Payload {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[derive(Trace)]
    struct Node {
        payload: Payload,
        tiny: Gc<u8>,
        next: GcRefCell<Vec<Gc<Node>>>,
    }

    fn node(i: u32) -> Gc<Node> {
        Gc::new(Node {
            payload: Payload(vec![i; 3]),
            tiny: Gc::new(i as u8),
            next: GcRefCell::new(Vec::new()),
        })
    }

    #[test]
    fn a_cycle_frees_the_unreachable_and_keeps_the_rest() {
        let root = node(0);
        // A cycle hanging off the root, and one on its own.
        let a = node(1);
        let b = node(2);
        a.next.borrow_mut().push(b.clone());
        b.next.borrow_mut().push(a.clone());
        root.next.borrow_mut().push(a);
        let c = node(3);
        let d = node(4);
        c.next.borrow_mut().push(d.clone());
        d.next.borrow_mut().push(c.clone());
        drop((b, c, d));
        // A handle taken out of the heap while a cell is borrowed mutably,
        // the only way out: still counted.
        let taken = root.next.borrow_mut().pop().unwrap();
        let before = DROPS.load(Ordering::Relaxed);
        crate::collect();
        assert_eq!(DROPS.load(Ordering::Relaxed) - before, 2, "the lone cycle");
        assert_eq!(taken.payload.0, [1; 3]);
        assert_eq!(*taken.tiny, 1);
        let b = taken.next.borrow()[0].clone();
        assert_eq!(b.payload.0, [2; 3]);
        assert!(Gc::ptr_eq(&b.next.borrow()[0], &taken));
        assert_eq!(root.payload.0, [0; 3]);
        drop((taken, b));
        crate::collect();
        assert_eq!(DROPS.load(Ordering::Relaxed) - before, 4);
        drop(root);
        crate::collect();
        assert_eq!(DROPS.load(Ordering::Relaxed) - before, 5);
        let s = crate::stats();
        assert!(s.cycles.num_gc >= 3);
        // Five nodes and their one shared tiny block (five tiny objects).
        assert!(s.frees >= 11, "frees {}", s.frees);
        assert_eq!(s.mallocs - s.frees, s.heap_objects);
        assert_eq!(s.heap_marked, 0);
    }
}
