//! Locks and atomics that never allocate.
//!
//! See the crate docs for the overview. Every atomic in goheap comes from
//! [`atomic`] here, so building with `RUSTFLAGS="--cfg goheap_loom"` swaps
//! in loom's model-checked versions for the tests in `tests/loom.rs`.

#[cfg(not(goheap_loom))]
pub(crate) use core::sync::atomic;
#[cfg(goheap_loom)]
pub(crate) use loom::sync::atomic;

use atomic::{AtomicU32, Ordering};
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};

/// A mutual-exclusion lock that never allocates: a spin phase, then a futex
/// wait (on Linux), so it is safe to use inside the allocator, before `main`,
/// and across `fork` (see [`Mutex::force_unlock`]).
///
/// State: 0 unlocked, 1 locked, 2 locked with waiters.
pub struct Mutex<T> {
    state: AtomicU32,
    value: UnsafeCell<T>,
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
        for _ in 0..64 {
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
            futex_wait(&self.state, 2);
        }
    }

    #[inline]
    fn unlock(&self) {
        if self.state.swap(0, Ordering::Release) == 2 {
            futex_wake(&self.state);
        }
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
        self.value.get()
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
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves we hold the lock exclusively.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock();
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

#[cfg(any(not(target_os = "linux"), goheap_loom))]
fn futex_wait(_state: &AtomicU32, _expected: u32) {
    #[cfg(goheap_loom)]
    loom::thread::yield_now();
    #[cfg(not(goheap_loom))]
    std::thread::yield_now();
}

#[cfg(any(not(target_os = "linux"), goheap_loom))]
fn futex_wake(_state: &AtomicU32) {}
