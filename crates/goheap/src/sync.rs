//! Locks and atomics that never allocate.
//!
//! See the crate docs for the overview. Every atomic in goheap comes from
//! [`atomic`] here, and the arena map publishes through [`publish`] and
//! [`load_published`]. Building with `RUSTFLAGS="--cfg goheap_loom"` (see
//! `ci/loom.sh`) compiles only this module, over loom's model-checked
//! atomics and cell, with the futex modelled by a loom mutex and condition
//! variable, for the tests in `tests/loom.rs`.

#[cfg(not(goheap_loom))]
pub(crate) use core::sync::atomic;
#[cfg(goheap_loom)]
pub(crate) use loom::sync::atomic;

pub mod handshake;
pub mod seqcell;

use atomic::{AtomicPtr, AtomicU32, Ordering};
#[cfg(not(goheap_loom))]
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
#[cfg(goheap_loom)]
use loom::cell::UnsafeCell;

/// Makes `p` visible through `slot` (a Release store): a thread that reads
/// `p` back with [`load_published`] also sees everything written to `*p`
/// before. The arena map publishes arenas and spans this way; a pointer
/// only goes from null to an initialised object, or back to null.
#[inline(always)]
pub fn publish<T>(slot: &AtomicPtr<T>, p: *mut T) {
    slot.store(p, Ordering::Release);
}

/// Reads a pointer stored with [`publish`] (an Acquire load): if it is not
/// null, what was written to the object before it was published is
/// visible.
#[inline(always)]
pub fn load_published<T>(slot: &AtomicPtr<T>) -> *mut T {
    slot.load(Ordering::Acquire)
}

/// Spins before sleeping. Under loom one is enough to cover the path and
/// keeps the state space small.
const SPINS: u32 = if cfg!(goheap_loom) { 1 } else { 64 };

/// A mutual-exclusion lock that never allocates: a spin phase, then a futex
/// wait (on Linux), so it is safe to use inside the allocator, before `main`,
/// and across `fork` (see [`Mutex::force_unlock`]).
///
/// State: 0 unlocked, 1 locked, 2 locked with waiters.
pub struct Mutex<T> {
    state: AtomicU32,
    value: UnsafeCell<T>,
    /// Under loom: the futex's wait queue, modelled.
    #[cfg(goheap_loom)]
    futex: LoomFutex,
}

// SAFETY: the lock serialises every access to `value`, so sharing the lock
// between threads hands `T` from one thread to another (`T: Send`).
unsafe impl<T: Send> Sync for Mutex<T> {}
// SAFETY: owning the lock owns `T`.
unsafe impl<T: Send> Send for Mutex<T> {}

impl<T> core::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Mutex")
    }
}

impl<T> Mutex<T> {
    /// A new, unlocked mutex.
    #[cfg(not(goheap_loom))]
    pub const fn new(value: T) -> Self {
        Mutex {
            state: AtomicU32::new(0),
            value: UnsafeCell::new(value),
        }
    }

    /// A new, unlocked mutex.
    #[cfg(goheap_loom)]
    pub fn new(value: T) -> Self {
        Mutex {
            state: AtomicU32::new(0),
            value: UnsafeCell::new(value),
            futex: LoomFutex {
                queue: loom::sync::Mutex::new(()),
                wake: loom::sync::Condvar::new(),
            },
        }
    }

    /// Takes the lock, waiting as long as needed.
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        if self
            .state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        MutexGuard { lock: self }
    }

    /// Takes the lock if it is free.
    #[inline]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| MutexGuard { lock: self })
    }

    #[cold]
    fn lock_contended(&self) {
        // Spin briefly: critical sections in the allocator are short.
        for _ in 0..SPINS {
            if self.state.load(Ordering::Relaxed) == 0
                && self
                    .state
                    .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            spin_hint();
        }
        // Announce a waiter (2) and sleep until the holder wakes us.
        while self.state.swap(2, Ordering::Acquire) != 0 {
            self.wait(2);
        }
    }

    #[inline]
    fn unlock(&self) {
        if self.state.swap(0, Ordering::Release) == 2 {
            self.wake();
        }
    }

    /// Sleeps while the state is `expected` (spurious returns allowed).
    #[cfg(not(goheap_loom))]
    fn wait(&self, expected: u32) {
        futex_wait(&self.state, expected);
    }

    /// Wakes one sleeper.
    #[cfg(not(goheap_loom))]
    fn wake(&self) {
        futex_wake(&self.state);
    }

    /// The futex under loom: the check of the state and going to sleep
    /// are atomic with respect to `wake` (the kernel's bucket lock), so a
    /// wake-up the lock protocol forgets shows up as a deadlock.
    #[cfg(goheap_loom)]
    fn wait(&self, expected: u32) {
        let q = self.futex.queue.lock().unwrap();
        if self.state.load(Ordering::Relaxed) == expected {
            drop(self.futex.wake.wait(q).unwrap());
        }
    }

    #[cfg(goheap_loom)]
    fn wake(&self) {
        let _q = self.futex.queue.lock().unwrap();
        self.futex.wake.notify_one();
    }

    /// The value's address. Under loom this records an access to the cell,
    /// which loom checks is ordered after every other one (what the lock
    /// is for).
    #[cfg(not(goheap_loom))]
    #[inline(always)]
    fn value_ptr(&self) -> *mut T {
        self.value.get()
    }

    #[cfg(goheap_loom)]
    fn value_ptr(&self) -> *mut T {
        self.value.with_mut(|p| p)
    }

    /// Marks the lock free without running a guard's drop (and wakes a
    /// waiter, if any).
    ///
    /// # Safety
    ///
    /// Only for `fork` handlers: the caller took the lock before forking
    /// (so the data is consistent) and forgot the guard; in the parent it
    /// is the thread that took it, in the child it is the only thread.
    pub unsafe fn force_unlock(&self) {
        self.unlock();
    }

    /// A raw pointer to the protected value, for reads that are documented
    /// as racy-but-benign (statistics) or for fork handlers.
    pub fn data_ptr(&self) -> *mut T {
        self.value_ptr()
    }
}

/// Proof that a [`Mutex`] is held; gives access to its value.
pub struct MutexGuard<'a, T> {
    lock: &'a Mutex<T>,
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves we hold the lock.
        unsafe { &*self.lock.value_ptr() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves we hold the lock exclusively.
        unsafe { &mut *self.lock.value_ptr() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

/// Waiting for another thread in a loop that may last a while: yields the
/// CPU (the other thread may need it on a busy machine).
fn spin_hint_or_yield() {
    #[cfg(goheap_loom)]
    loom::thread::yield_now();
    #[cfg(not(goheap_loom))]
    // SAFETY: sched_yield has no preconditions.
    unsafe {
        libc::sched_yield();
    }
}

#[inline]
fn spin_hint() {
    #[cfg(goheap_loom)]
    loom::thread::yield_now();
    #[cfg(not(goheap_loom))]
    core::hint::spin_loop();
}

#[cfg(all(target_os = "linux", not(goheap_loom)))]
fn futex_wait(state: &AtomicU32, expected: u32) {
    // SAFETY: FUTEX_WAIT only reads the word at a valid address and sleeps
    // while it equals `expected`; spurious wake-ups are handled by the loop
    // in the caller.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            state.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            core::ptr::null::<libc::timespec>(),
        );
    }
}

#[cfg(all(target_os = "linux", not(goheap_loom)))]
fn futex_wake(state: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only needs a valid address.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            state.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
    }
}

#[cfg(all(not(target_os = "linux"), not(goheap_loom)))]
fn futex_wait(_state: &AtomicU32, _expected: u32) {
    std::thread::yield_now();
}

#[cfg(all(not(target_os = "linux"), not(goheap_loom)))]
fn futex_wake(_state: &AtomicU32) {}

/// The kernel side of a futex, for loom.
#[cfg(goheap_loom)]
struct LoomFutex {
    queue: loom::sync::Mutex<()>,
    wake: loom::sync::Condvar,
}
