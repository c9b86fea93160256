//! A mock [`Os`] for tests: real memory underneath, with every call counted
//! and failures injectable, so tests can check what goheap asked of the OS
//! and what it does when the OS says no.

use super::Os;
use crate::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Counts calls and bytes, and refuses reservations or commits on demand.
///
/// The memory itself comes from [`SystemOs`](super::SystemOs) on Unix.
#[derive(Debug, Default)]
pub struct MockOs {
    /// Bytes currently reserved.
    pub reserved: AtomicUsize,
    /// Bytes committed (cumulative, never decreases).
    pub committed: AtomicUsize,
    /// Bytes decommitted (cumulative).
    pub decommitted: AtomicUsize,
    /// Number of `reserve` calls that succeeded.
    pub reserve_calls: AtomicUsize,
    /// Number of further `reserve` calls allowed to succeed
    /// (`usize::MAX` means no limit).
    pub reserve_budget: AtomicUsize,
    /// Number of further bytes `commit` may grant (`usize::MAX`: no limit).
    pub commit_budget: AtomicUsize,
}

impl MockOs {
    /// A mock that grants everything.
    pub const fn new() -> Self {
        MockOs {
            reserved: AtomicUsize::new(0),
            committed: AtomicUsize::new(0),
            decommitted: AtomicUsize::new(0),
            reserve_calls: AtomicUsize::new(0),
            reserve_budget: AtomicUsize::new(usize::MAX),
            commit_budget: AtomicUsize::new(usize::MAX),
        }
    }

    /// Refuses every `reserve` after the next `n`.
    pub fn fail_reserve_after(&self, n: usize) {
        self.reserve_budget.store(n, Relaxed);
    }

    /// Refuses commits once `bytes` more have been committed.
    pub fn fail_commit_after(&self, bytes: usize) {
        self.commit_budget.store(bytes, Relaxed);
    }

    fn take(budget: &AtomicUsize, n: usize) -> bool {
        budget
            .fetch_update(Relaxed, Relaxed, |b| {
                if b == usize::MAX {
                    Some(b)
                } else {
                    b.checked_sub(n)
                }
            })
            .is_ok()
    }
}

// SAFETY: delegates to `SystemOs`, which satisfies the contract; the
// bookkeeping uses atomics only and never allocates.
unsafe impl Os for MockOs {
    fn reserve(&self, size: usize, align: usize, hint: usize) -> *mut u8 {
        if !Self::take(&self.reserve_budget, 1) {
            return core::ptr::null_mut();
        }
        let p = super::SystemOs.reserve(size, align, hint);
        if !p.is_null() {
            self.reserved.fetch_add(size, Relaxed);
            self.reserve_calls.fetch_add(1, Relaxed);
        }
        p
    }

    unsafe fn commit(&self, addr: *mut u8, size: usize) -> bool {
        if !Self::take(&self.commit_budget, size) {
            return false;
        }
        self.committed.fetch_add(size, Relaxed);
        // SAFETY: forwarded contract.
        unsafe { super::SystemOs.commit(addr, size) }
    }

    unsafe fn decommit(&self, addr: *mut u8, size: usize, lazy: bool) {
        self.decommitted.fetch_add(size, Relaxed);
        // SAFETY: forwarded contract.
        unsafe { super::SystemOs.decommit(addr, size, lazy) }
    }

    unsafe fn release(&self, addr: *mut u8, size: usize) {
        self.reserved.fetch_sub(size, Relaxed);
        // SAFETY: forwarded contract.
        unsafe { super::SystemOs.release(addr, size) }
    }
}
