//! A mock [`Os`] for tests: real memory underneath, with every call counted
//! and failures injectable, so tests can check what goheap asked of the OS
//! and what it does when the OS says no.

use super::Os;
use crate::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Counts calls and bytes, and refuses reservations or commits on demand.
///
/// The memory itself comes from [`SystemOs`](super::SystemOs) on Unix;
/// under Miri, which has `mmap` but neither `mprotect` nor `madvise`, from
/// readable and writable anonymous mappings (see `backing`).
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
    /// Bytes hinted for huge pages (cumulative).
    pub huge_hinted: AtomicUsize,
    /// Number of `hint_huge` calls.
    pub huge_hints: AtomicUsize,
    /// Bytes hinted for no huge pages (cumulative).
    pub no_huge_hinted: AtomicUsize,
    /// What `resident_bytes` answers (`usize::MAX`: `None`, cannot tell).
    pub resident: AtomicUsize,
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
            huge_hinted: AtomicUsize::new(0),
            huge_hints: AtomicUsize::new(0),
            no_huge_hinted: AtomicUsize::new(0),
            resident: AtomicUsize::new(usize::MAX),
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

// SAFETY: delegates to `backing`, which satisfies the contract; the
// bookkeeping uses atomics only and never allocates.
unsafe impl Os for MockOs {
    fn reserve(&self, size: usize, align: usize, hint: usize) -> *mut u8 {
        if !Self::take(&self.reserve_budget, 1) {
            return core::ptr::null_mut();
        }
        let p = backing::reserve(size, align, hint);
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
        unsafe { backing::commit(addr, size) }
    }

    unsafe fn decommit(&self, addr: *mut u8, size: usize, lazy: bool) {
        self.decommitted.fetch_add(size, Relaxed);
        // SAFETY: forwarded contract.
        unsafe { backing::decommit(addr, size, lazy) }
    }

    unsafe fn release(&self, addr: *mut u8, size: usize) {
        self.reserved.fetch_sub(size, Relaxed);
        // SAFETY: forwarded contract.
        unsafe { backing::release(addr, size) }
    }

    /// Counts the hint and passes nothing on: whether the kernel backs the
    /// memory with huge pages is the integration tests' business.
    unsafe fn hint_huge(&self, _addr: *mut u8, size: usize) {
        self.huge_hinted.fetch_add(size, Relaxed);
        self.huge_hints.fetch_add(1, Relaxed);
    }

    unsafe fn hint_no_huge(&self, _addr: *mut u8, size: usize) {
        self.no_huge_hinted.fetch_add(size, Relaxed);
    }

    fn resident_bytes(&self) -> Option<usize> {
        match self.resident.load(Relaxed) {
            usize::MAX => None,
            r => Some(r),
        }
    }
}

/// The real OS.
#[cfg(not(miri))]
mod backing {
    use crate::os::{Os, SystemOs};

    pub(super) fn reserve(size: usize, align: usize, hint: usize) -> *mut u8 {
        SystemOs.reserve(size, align, hint)
    }

    /// # Safety
    ///
    /// As [`Os::commit`].
    pub(super) unsafe fn commit(addr: *mut u8, size: usize) -> bool {
        // SAFETY: forwarded contract.
        unsafe { SystemOs.commit(addr, size) }
    }

    /// # Safety
    ///
    /// As [`Os::decommit`].
    pub(super) unsafe fn decommit(addr: *mut u8, size: usize, lazy: bool) {
        // SAFETY: forwarded contract.
        unsafe { SystemOs.decommit(addr, size, lazy) }
    }

    /// # Safety
    ///
    /// As [`Os::release`].
    pub(super) unsafe fn release(addr: *mut u8, size: usize) {
        // SAFETY: forwarded contract.
        unsafe { SystemOs.release(addr, size) }
    }
}

/// Under Miri: reservations are readable and writable from the start
/// (committing is bookkeeping only), releasing to the OS is modelled by
/// zeroing (what `MADV_DONTNEED` makes the memory read as), and nothing is
/// unmapped (Miri unmaps only whole mappings; the memory of a test run is
/// not reused).
#[cfg(miri)]
mod backing {
    pub(super) fn reserve(size: usize, align: usize, _hint: usize) -> *mut u8 {
        let Some(total) = size.checked_add(align) else {
            return core::ptr::null_mut();
        };
        // SAFETY: a fresh private anonymous mapping; no MAP_FIXED.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return core::ptr::null_mut();
        }
        let p = p.cast::<u8>();
        // The aligned address inside the mapping, with its provenance.
        p.wrapping_add(p.align_offset(align))
    }

    /// # Safety
    ///
    /// As [`Os::commit`](crate::os::Os::commit).
    pub(super) unsafe fn commit(_addr: *mut u8, _size: usize) -> bool {
        true
    }

    /// # Safety
    ///
    /// As [`Os::decommit`](crate::os::Os::decommit).
    pub(super) unsafe fn decommit(addr: *mut u8, size: usize, lazy: bool) {
        if !lazy {
            // SAFETY: the caller passes committed memory nobody uses.
            unsafe { core::ptr::write_bytes(addr, 0, size) };
        }
    }

    /// # Safety
    ///
    /// As [`Os::release`](crate::os::Os::release).
    pub(super) unsafe fn release(_addr: *mut u8, _size: usize) {}
}
