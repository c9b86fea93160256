//! The OS layer: reserve, commit, decommit and release address space.
//!
//! See the crate docs for the overview. This is the bottom layer: it never
//! allocates and never calls back into the allocator.
//!
//! Memory moves through three states (Go's `mem.go` has four; `Prepared` and
//! `Ready` are the same thing on Linux):
//!
//! | state | access | counts in RSS | how to get there |
//! | --- | --- | --- | --- |
//! | reserved | none (`PROT_NONE`) | no | [`Os::reserve`] |
//! | committed | read/write | once touched | [`Os::commit`] |
//! | released | read/write, reads as zero | no | [`Os::decommit`] on committed memory |
//!
//! Released memory stays committed: touching it again faults in zeroed pages,
//! so the page heap can hand released pages out without another call.

#[cfg(unix)]
mod unix;

pub mod mock;

#[cfg(unix)]
pub use unix::SystemOs;
#[cfg(unix)]
pub(crate) use unix::{leader_state_and_threads, statm_resident};

/// The size of an OS page assumed for alignment of every call (4 KiB on
/// Linux x86-64; larger OS pages still divide goheap's 8 KiB pages on the
/// platforms we target except 16 KiB and 64 KiB page kernels, which the
/// callers check with [`Os::page_size`]).
pub const OS_PAGE_SIZE: usize = 4096;

/// The time of `clock` (`CLOCK_MONOTONIC`, `CLOCK_REALTIME`, a CPU-time
/// clock) in nanoseconds: `clock_gettime`, which never allocates.
pub(crate) fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-parameter.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64)
}

/// Sets the calling thread's `errno` to `ENOMEM`, as C's `malloc` does
/// when it returns null.
#[cold]
pub(crate) fn set_enomem() {
    // SAFETY: `__errno_location` returns the calling thread's errno slot,
    // valid for the thread's life.
    unsafe { *libc::__errno_location() = libc::ENOMEM };
}

/// The boundary between goheap and the operating system.
///
/// Shared preconditions of every method: addresses and sizes are multiples of
/// [`OS_PAGE_SIZE`], sizes are non-zero, and a range passed to `commit`,
/// `decommit` or `release` lies inside one earlier `reserve`.
///
/// # Safety
///
/// Implementations must not allocate through goheap (no `Vec`, `format!`,
/// `println!`, `std::env::var`): goheap calls them while holding its locks,
/// so re-entering the allocator would deadlock or corrupt it. They must be
/// callable from any thread, and `reserve` must return memory that no one
/// else uses until it is released.
pub unsafe trait Os: Sync {
    /// Reserves `size` bytes of address space aligned to `align` (a power of
    /// two, at least [`OS_PAGE_SIZE`]), preferring `hint` when it is non-zero
    /// and suitably aligned. Returns null when the address space is refused.
    /// The memory is inaccessible until committed.
    fn reserve(&self, size: usize, align: usize, hint: usize) -> *mut u8;

    /// Makes `[addr, addr + size)` readable and writable. Fresh memory reads
    /// as zero. Returns false when the OS refuses (commit limit).
    ///
    /// # Safety
    ///
    /// The range must lie inside a reservation made by this `Os`.
    unsafe fn commit(&self, addr: *mut u8, size: usize) -> bool;

    /// Returns the physical pages behind `[addr, addr + size)` to the OS. The
    /// range stays accessible; it reads as zero afterwards (`MADV_DONTNEED`),
    /// or, when `lazy` is set, may keep its contents until the kernel needs
    /// the memory (`MADV_FREE`: the caller must then zero it before reuse).
    ///
    /// # Safety
    ///
    /// The range must be committed and hold nothing anyone still needs.
    unsafe fn decommit(&self, addr: *mut u8, size: usize, lazy: bool);

    /// Gives `[addr, addr + size)` back entirely (`munmap`).
    ///
    /// # Safety
    ///
    /// The range must lie inside a reservation made by this `Os` and hold
    /// nothing anyone still uses.
    unsafe fn release(&self, addr: *mut u8, size: usize);

    /// Asks for transparent huge pages on `[addr, addr + size)`
    /// (`MADV_HUGEPAGE`: a hint; may do nothing).
    ///
    /// # Safety
    ///
    /// The range must be committed.
    unsafe fn hint_huge(&self, _addr: *mut u8, _size: usize) {}

    /// Faults in `[addr, addr + size)` writable ahead of its use
    /// (`MADV_POPULATE_WRITE`, Linux 5.14+): one call that maps zeroed
    /// pages for the whole range, instead of a fault at the first touch of
    /// each page (two for a page read before it is written: the shared
    /// zero page, then a copy). A hint: does nothing where the kernel
    /// lacks it, and the range keeps reading as zero either way.
    ///
    /// # Safety
    ///
    /// The range must be committed.
    unsafe fn populate(&self, _addr: *mut u8, _size: usize) {}

    /// Asks for no transparent huge pages on `[addr, addr + size)`
    /// (`MADV_NOHUGEPAGE`: existing huge pages stay, `khugepaged` makes no
    /// new ones there).
    ///
    /// # Safety
    ///
    /// The range must lie inside a reservation made by this `Os`.
    unsafe fn hint_no_huge(&self, _addr: *mut u8, _size: usize) {}

    /// The process's resident memory in bytes (RSS), or `None` where that
    /// cannot be told.
    fn resident_bytes(&self) -> Option<usize> {
        None
    }

    /// How many of the OS pages of `[addr, addr + size)` are resident
    /// (`mincore`), or `None` where that cannot be told.
    ///
    /// # Safety
    ///
    /// The range must lie inside a reservation made by this `Os`.
    unsafe fn resident_pages(&self, _addr: *const u8, _size: usize) -> Option<usize> {
        None
    }

    /// Whether arenas must stay clear of addresses with the heap
    /// profiler's tag bit (`arena::SAMPLED_ADDR_BIT`): true for the
    /// process's OS, where the profiler's region lives; mocks map anywhere.
    fn avoids_sampled_bit(&self) -> bool {
        false
    }

    /// The OS page size.
    fn page_size(&self) -> usize {
        OS_PAGE_SIZE
    }
}
