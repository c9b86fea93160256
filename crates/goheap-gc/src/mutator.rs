//! Mutator threads: each thread that touches a `Gc` has a [`Mutator`]
//! holding its root log, its span cache of the collected heap and the
//! handshake the collector uses to hold it still.
//!
//! # Roots, counted without shared counters
//!
//! Every `Gc` handle outside the collected heap is a root. Creating one
//! (`Gc::new`, `clone`) appends `(object, +1)` to the thread's root log,
//! dropping one appends `(object, −1)`; the log is a plain array in the
//! thread's own state (no atomic read-modify-write, no lock). A `−1` that
//! follows the matching `+1` cancels it in place, so a handle cloned and
//! dropped soon after, or a new object moved into another one, leaves
//! nothing behind. A full log is summed per object and added to the
//! process's root table (one lock per few thousand operations); the
//! collector adds every thread's log to the table with the world stopped,
//! after which an object's entry is exactly the number of handles to it
//! outside the collected heap.
//!
//! # The bracket
//!
//! Every operation on the thread's state (logging, allocating) runs between
//! [`Handshake::enter`] and [`Handshake::exit`]: two stores and a load.
//! The collector raises every mutator's claim, waits until none is inside
//! an operation, and then owns all of them until it releases the claims;
//! an owner that tries to enter meanwhile waits. A thread outside any
//! operation (computing, blocked in a system call) is never waited for.

use core::cell::{Cell, UnsafeCell};
use core::ptr;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use goheap::gc_support::GcCache;
use goheap::sync::handshake::Handshake;

/// Entries in a thread's root log before it is summed into the table.
const LOG_CAP: usize = 4096;

/// Entries of a thread's typed-class cache.
const TYPED_CACHE: usize = 64;

/// Recent entries a new one may cancel.
const LOOK_BACK: usize = 4;

/// A thread's pending root-count changes. Each entry is `addr << 1 | neg`:
/// `+1` or `−1` for the object whose value is at `addr`.
pub(crate) struct RootLog {
    len: usize,
    entries: [usize; LOG_CAP],
}

impl RootLog {
    const fn new() -> Self {
        RootLog {
            len: 0,
            entries: [0; LOG_CAP],
        }
    }

    /// Records `delta` (±1) for the object at `addr`.
    #[inline(always)]
    pub(crate) fn push(&mut self, addr: usize, delta: isize) {
        let e = addr << 1 | (delta < 0) as usize;
        let len = self.len;
        // The inverse of a recent entry cancels it (the log is a multiset:
        // the last entry takes its place): `Gc::new(left)`, `Gc::new(right)`
        // and then moving both into their parent leave nothing, nor does a
        // clone dropped soon after.
        let mut i = len;
        while i > len.saturating_sub(LOOK_BACK) {
            i -= 1;
            if self.entries[i] == e ^ 1 {
                self.entries[i] = self.entries[len - 1];
                self.len = len - 1;
                return;
            }
        }
        if len == LOG_CAP {
            self.spill();
        }
        self.entries[self.len] = e;
        self.len += 1;
    }

    /// Adds the log to the root table and empties it.
    #[cold]
    #[inline(never)]
    fn spill(&mut self) {
        let mut roots = lock(&ROOTS);
        self.drain_into(&mut roots);
    }

    /// Adds every entry to `roots` (summed per object first) and empties
    /// the log.
    pub(crate) fn drain_into(&mut self, roots: &mut RootTable) {
        let log = &mut self.entries[..self.len];
        log.sort_unstable();
        let mut i = 0;
        while i < log.len() {
            let addr = log[i] >> 1;
            let mut net = 0isize;
            while i < log.len() && log[i] >> 1 == addr {
                net += if log[i] & 1 == 0 { 1 } else { -1 };
                i += 1;
            }
            if net != 0 {
                roots.add(addr, net);
            }
        }
        self.len = 0;
    }

    /// Entries pending (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// Handles outside the collected heap, per object: the sum of every log
/// drained so far. Exact (and never negative) once every thread's log is
/// drained; between collections an entry may be off either way.
#[derive(Default)]
pub(crate) struct RootTable {
    counts: Option<HashMap<usize, isize>>,
}

impl RootTable {
    fn add(&mut self, addr: usize, delta: isize) {
        let map = self.counts.get_or_insert_with(HashMap::new);
        let c = map.entry(addr).or_insert(0);
        *c += delta;
        if *c == 0 {
            map.remove(&addr);
        }
    }

    /// The objects with handles outside the heap, and how many.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, isize)> + '_ {
        self.counts
            .iter()
            .flat_map(|m| m.iter().map(|(&a, &c)| (a, c)))
    }
}

/// The process's root table (lock order: after the registry).
pub(crate) static ROOTS: Mutex<RootTable> = Mutex::new(RootTable { counts: None });

/// Locks `m`, ignoring poisoning: every critical section of this crate
/// leaves its data consistent before anything in it can panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One thread's collector-visible state.
pub(crate) struct Mutator {
    /// Brackets every use of `log` and `cache` by the owner; the collector
    /// claims it to use them itself.
    pub(crate) handshake: Handshake,
    /// Inside an operation (the owner only): catches a `Gc` operation
    /// from a `Trace` impl, which would be a bracket inside a bracket.
    in_op: Cell<bool>,
    /// This thread is running the `Drop`s of dead objects: their `Gc`
    /// fields were never counted, so dropping them logs nothing. The owner
    /// only.
    pub(crate) dropping: Cell<bool>,
    /// This thread is collecting (the owner only): a collection from a
    /// `Drop` it runs returns at once.
    pub(crate) collecting: Cell<bool>,
    /// The owner inside the bracket, or the collector holding the claim.
    log: UnsafeCell<RootLog>,
    /// As `log`.
    pub(crate) cache: GcCache,
    /// Bytes this thread allocated (as `log`).
    pub(crate) alloc_bytes: Cell<u64>,
    /// Type information address → typed span class (0: none could be
    /// bound), direct-mapped. The owner only.
    typed: [Cell<(usize, u32)>; TYPED_CACHE],
}

// SAFETY: the fields other than the handshake are used by the owner inside
// its bracket or by the collector holding the claim, never both (the
// handshake's guarantee); the `Cell`s marked "owner only" are never
// touched by another thread.
unsafe impl Sync for Mutator {}
// SAFETY: as above.
unsafe impl Send for Mutator {}

impl Mutator {
    fn new() -> Self {
        Mutator {
            handshake: Handshake::new(),
            in_op: Cell::new(false),
            dropping: Cell::new(false),
            collecting: Cell::new(false),
            log: UnsafeCell::new(RootLog::new()),
            cache: GcCache::new(&goheap::gc_support::GC_HEAP),
            alloc_bytes: Cell::new(0),
            typed: [const { Cell::new((0, 0)) }; TYPED_CACHE],
        }
    }

    /// The typed span class of the type whose information is at `info`
    /// (objects of `size` bytes at `align`), or `None` if none could be
    /// bound. A per-thread direct-mapped cache in front of the core's
    /// table.
    #[inline(always)]
    pub(crate) fn typed_class(&self, info: usize, size: usize, align: usize) -> Option<usize> {
        let slot = &self.typed[(info >> 4) % TYPED_CACHE];
        let (key, spc) = slot.get();
        if key == info {
            return (spc != 0).then_some(spc as usize);
        }
        self.typed_class_slow(slot, info, size, align)
    }

    #[cold]
    #[inline(never)]
    fn typed_class_slow(
        &self,
        slot: &Cell<(usize, u32)>,
        info: usize,
        size: usize,
        align: usize,
    ) -> Option<usize> {
        let spc = goheap::gc_support::typed_class(info, size, align);
        slot.set((info, spc.map_or(0, |c| c as u32)));
        spc
    }

    /// Runs `f` inside the bracket, with the thread's log.
    #[inline(always)]
    pub(crate) fn op<R>(&self, f: impl FnOnce(&mut RootLog) -> R) -> R {
        if self.in_op.replace(true) {
            nested();
        }
        self.handshake.enter();
        // SAFETY: inside the bracket the log is the owner's alone, and
        // `in_op` rules out a second `&mut` from a nested operation.
        let r = f(unsafe { &mut *self.log.get() });
        self.handshake.exit();
        self.in_op.set(false);
        r
    }

    /// The log, for the collector.
    ///
    /// # Safety
    ///
    /// The caller holds this mutator's claim (the owner is outside every
    /// operation until it is released).
    #[allow(clippy::mut_from_ref, reason = "the claim makes the access exclusive")]
    pub(crate) unsafe fn claimed_log(&self) -> &mut RootLog {
        // SAFETY: per the contract.
        unsafe { &mut *self.log.get() }
    }
}

#[cold]
#[inline(never)]
fn nested() -> ! {
    eprintln!(
        "goheap-gc: fatal error: a Gc operation (new, clone, drop, borrow_mut) ran inside another, \
         which means a `Trace` impl did more than visit its fields"
    );
    std::process::abort()
}

/// A mutator pointer in the registry.
#[derive(Clone, Copy)]
pub(crate) struct MutatorPtr(pub(crate) *const Mutator);

// SAFETY: the registry is behind a lock, and a mutator lives until its
// thread removes it under that lock.
unsafe impl Send for MutatorPtr {}

/// Every live thread's mutator. The collector holds this lock for a whole
/// cycle, so a thread cannot appear or vanish during one.
pub(crate) static REGISTRY: Mutex<Vec<MutatorPtr>> = Mutex::new(Vec::new());

/// The thread's mutator, made on first use and retired at thread exit.
struct Local {
    m: Cell<*const Mutator>,
}

impl Drop for Local {
    fn drop(&mut self) {
        let m = self.m.replace(ptr::null());
        if m.is_null() {
            return;
        }
        let mut reg = lock(&REGISTRY);
        // SAFETY: our own mutator, registered; with the registry lock held
        // no collector holds its claim, and the thread is in no operation.
        unsafe {
            (*m).log.get_mut_unchecked().drain_into(&mut lock(&ROOTS));
            (*m).cache.flush();
            crate::collector::retire_counts(&*m);
        }
        reg.retain(|p| !ptr::eq(p.0, m));
        drop(reg);
        // SAFETY: made by `Box::into_raw` in `mutator`, and unregistered.
        drop(unsafe { Box::from_raw(m.cast_mut()) });
    }
}

trait UnsafeCellExt<T> {
    /// # Safety
    ///
    /// No other reference to the contents exists.
    #[allow(clippy::mut_from_ref, reason = "per the contract")]
    unsafe fn get_mut_unchecked(&self) -> &mut T;
}

impl<T> UnsafeCellExt<T> for UnsafeCell<T> {
    unsafe fn get_mut_unchecked(&self) -> &mut T {
        // SAFETY: per the contract.
        unsafe { &mut *self.get() }
    }
}

thread_local! {
    static LOCAL: Local = const { Local { m: Cell::new(ptr::null()) } };
}

/// The calling thread's mutator, or `None` once its thread-locals are
/// being destroyed.
#[inline(always)]
pub(crate) fn mutator() -> Option<&'static Mutator> {
    let m = LOCAL.try_with(|l| l.m.get()).ok()?;
    if !m.is_null() {
        // SAFETY: registered mutators live until the thread exits, after
        // its thread-locals (this one included) stop being reachable.
        return Some(unsafe { &*m });
    }
    register()
}

#[cold]
#[inline(never)]
fn register() -> Option<&'static Mutator> {
    goheap::gc_support::ensure_init();
    goheap::gc_support::set_profile_rate_hook(restart_sampling);
    let m = Box::into_raw(Box::new(Mutator::new())).cast_const();
    LOCAL.try_with(|l| l.m.set(m)).ok()?;
    lock(&REGISTRY).push(MutatorPtr(m));
    // SAFETY: just made, registered, lives until the thread exits.
    Some(unsafe { &*m })
}

/// `goheap::set_profile_rate`'s hook, on the thread that changed the rate:
/// its cache's heap-profile countdown restarts, so its next `Gc`
/// allocation already uses the new rate (other threads' within a mebibyte).
fn restart_sampling() {
    if let Ok(m) = LOCAL.try_with(|l| l.m.get()) {
        // SAFETY: a registered mutator is live while its thread runs, and
        // this is its thread: the cache's owner.
        if let Some(m) = unsafe { m.as_ref() } {
            // SAFETY: as above, the owner.
            unsafe { m.cache.restart_sampling() };
        }
    }
}

/// Runs `f` with the thread's log inside its bracket; on a thread whose
/// thread-locals are gone, with a temporary log and the root table locked
/// (which also keeps a collection's mark out).
#[inline]
pub(crate) fn with_log<R>(f: impl FnOnce(&mut RootLog) -> R) -> R {
    match mutator() {
        Some(m) => m.op(f),
        None => {
            let mut roots = lock(&ROOTS);
            let mut log = Box::new(RootLog::new());
            let r = f(&mut log);
            log.drain_into(&mut roots);
            r
        }
    }
}

/// Records `delta` for the object at `addr`: in the thread's log, or, on
/// a thread whose thread-locals are gone, straight into the table.
#[inline(always)]
pub(crate) fn log(addr: usize, delta: isize) {
    match mutator() {
        Some(m) => {
            if delta < 0 && m.dropping.get() {
                return;
            }
            m.op(|log| log.push(addr, delta))
        }
        None => lock(&ROOTS).add(addr, delta),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_entries_cancel_within_the_look_back() {
        let mut log = Box::new(RootLog::new());
        // Gc::new(left), Gc::new(right), then both moved into a parent.
        log.push(0x1000, 1);
        log.push(0x2000, 1);
        log.push(0x1000, -1);
        log.push(0x2000, -1);
        assert_eq!(log.len(), 0);
        // Too far back to cancel: kept, and summed when drained.
        log.push(0x3000, 1);
        for i in 0..LOOK_BACK {
            log.push(0x4000 + i * 16, 1);
        }
        log.push(0x3000, -1);
        assert_eq!(log.len(), LOOK_BACK + 2);
        let mut table = RootTable::default();
        log.drain_into(&mut table);
        assert_eq!(log.len(), 0);
        let mut got: Vec<(usize, isize)> = table.iter().collect();
        got.sort();
        let want: Vec<(usize, isize)> = (0..LOOK_BACK).map(|i| (0x4000 + i * 16, 1)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_full_log_sums_into_the_table() {
        let mut log = Box::new(RootLog::new());
        let mut table = RootTable::default();
        // Far more entries than fit, none cancelling locally.
        for i in 0..3 * LOG_CAP {
            log.push(0x10_0000 + (i % 7) * 64, 1);
            if log.len() == LOG_CAP {
                log.drain_into(&mut table);
            }
        }
        log.drain_into(&mut table);
        let total: isize = table.iter().map(|(_, c)| c).sum();
        assert_eq!(total, 3 * LOG_CAP as isize);
        assert_eq!(table.iter().count(), 7);
        // Entries that reach zero leave the table.
        for (a, c) in table.iter().collect::<Vec<_>>() {
            table.add(a, -c);
        }
        assert_eq!(table.iter().count(), 0);
    }
}
