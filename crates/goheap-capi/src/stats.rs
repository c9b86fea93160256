//! `goheap_memstats` and `goheap_print_stats`: the core's [`MemStats`] as a
//! C struct, and a one-line summary on stderr.

use core::ffi::c_int;
use core::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use goheap_core::report::StderrWriter;
use goheap_core::sizeclass::NUM_SIZE_CLASSES;
use goheap_core::MemStats;

/// C mirror of [`goheap_core::BySize`] (`struct goheap_bysize`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct GoheapBySize {
    /// Largest object size in this class, bytes.
    pub size: u32,
    /// Cumulative objects allocated in this class.
    pub mallocs: u64,
    /// Cumulative objects freed in this class.
    pub frees: u64,
}

/// C mirror of [`MemStats`] (`struct goheap_memstats`), field for field
/// in the same order up to `by_size` (the collected heap's fields that
/// follow are Rust-only: C programs have no `Gc` objects); see the header
/// for each field's meaning.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GoheapMemstats {
    /// Go: `Alloc`.
    pub alloc: u64,
    /// Go: `TotalAlloc`.
    pub total_alloc: u64,
    /// Go: `Sys`.
    pub sys: u64,
    /// Go: `Mallocs`.
    pub mallocs: u64,
    /// Go: `Frees`.
    pub frees: u64,
    /// Go: `HeapAlloc`.
    pub heap_alloc: u64,
    /// Go: `HeapSys`.
    pub heap_sys: u64,
    /// Go: `HeapIdle`.
    pub heap_idle: u64,
    /// Go: `HeapInuse`.
    pub heap_inuse: u64,
    /// Go: `HeapReleased`.
    pub heap_released: u64,
    /// Go: `HeapObjects`.
    pub heap_objects: u64,
    /// Go: `MSpanInuse`.
    pub mspan_inuse: u64,
    /// Go: `MSpanSys`.
    pub mspan_sys: u64,
    /// Go: `MCacheInuse`.
    pub mcache_inuse: u64,
    /// Go: `MCacheSys`.
    pub mcache_sys: u64,
    /// Go: `BySize` (index = size class; class 0 is unused).
    pub by_size: [GoheapBySize; NUM_SIZE_CLASSES],
}

impl From<&MemStats> for GoheapMemstats {
    fn from(m: &MemStats) -> Self {
        let mut by_size = [GoheapBySize::default(); NUM_SIZE_CLASSES];
        for (out, b) in by_size.iter_mut().zip(m.by_size.iter()) {
            *out = GoheapBySize {
                size: b.size,
                mallocs: b.mallocs,
                frees: b.frees,
            };
        }
        GoheapMemstats {
            alloc: m.alloc,
            total_alloc: m.total_alloc,
            sys: m.sys,
            mallocs: m.mallocs,
            frees: m.frees,
            heap_alloc: m.heap_alloc,
            heap_sys: m.heap_sys,
            heap_idle: m.heap_idle,
            heap_inuse: m.heap_inuse,
            heap_released: m.heap_released,
            heap_objects: m.heap_objects,
            mspan_inuse: m.mspan_inuse,
            mspan_sys: m.mspan_sys,
            mcache_inuse: m.mcache_inuse,
            mcache_sys: m.mcache_sys,
            by_size,
        }
    }
}

/// Fills `*out` with a snapshot of goheap's statistics (see
/// [`goheap_core::memstats`]). Null `out` is ignored. Does not allocate.
///
/// # Safety
///
/// `out` is null or valid for writing one `struct goheap_memstats`.
#[no_mangle]
pub unsafe extern "C" fn goheap_memstats(out: *mut GoheapMemstats) {
    if out.is_null() {
        return;
    }
    let m = goheap_core::memstats();
    // SAFETY: the caller passes a writable struct.
    unsafe { out.write(GoheapMemstats::from(&m)) };
}

/// Prints the main statistics on stderr, without allocating: the
/// `goheap: stats: mallocs=... frees=... ...` line and the
/// `goheap: memory: ...` line.
///
/// # Safety
///
/// Always safe to call.
#[no_mangle]
pub unsafe extern "C" fn goheap_print_stats() {
    print_stats();
}

/// A copy of stderr taken at start-up for the exit report, and the
/// identity of the file it refers to: many programs close stderr before
/// exit (coreutils' `close_stdout`, mawk), which runs before our `atexit`
/// handler.
static STATS_FD: AtomicI32 = AtomicI32::new(-1);
static STATS_DEV: AtomicU64 = AtomicU64::new(0);
static STATS_INO: AtomicU64 = AtomicU64::new(0);

/// Lowest descriptor number for the copy: above those programs and shell
/// scripts pick by hand (3 to 9), below the usual 1024 limit.
const STATS_FD_MIN: c_int = 200;

/// `(st_dev, st_ino)` of `fd`, if open.
fn file_id(fd: c_int) -> Option<(u64, u64)> {
    // SAFETY: an all-zero `stat` is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `st` is writable; fstat does not allocate.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    Some((st.st_dev, st.st_ino))
}

/// Keeps a close-on-exec copy of stderr for [`print_stats_at_exit`].
pub(crate) fn save_stats_fd() {
    let Some((dev, ino)) = file_id(2) else { return };
    // SAFETY: F_DUPFD_CLOEXEC duplicates fd 2 to a free descriptor at or
    // above the minimum; no memory is involved.
    let fd = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, STATS_FD_MIN) };
    if fd >= 0 {
        STATS_DEV.store(dev, Ordering::Relaxed);
        STATS_INO.store(ino, Ordering::Relaxed);
        STATS_FD.store(fd, Ordering::Relaxed);
    }
}

/// `GOHEAP_PRINT_STATS` at exit: to the saved copy of stderr if it still
/// refers to the same file (the program may have closed it and reused the
/// number), else to fd 2.
pub(crate) fn print_stats_at_exit() {
    let fd = STATS_FD.load(Ordering::Relaxed);
    let same = fd >= 0
        && file_id(fd)
            == Some((
                STATS_DEV.load(Ordering::Relaxed),
                STATS_INO.load(Ordering::Relaxed),
            ));
    print_stats_to(if same { fd } else { 2 });
}

/// The line behind [`goheap_print_stats`] (and `GOHEAP_PRINT_STATS`).
pub(crate) fn print_stats() {
    print_stats_to(2);
}

fn print_stats_to(fd: c_int) {
    let mut w = StderrWriter::with_fd(fd);
    let _ = goheap_core::write_stats(&mut w);
}

// The layout `goheap.h` declares (its static assertions check the C side).
const _: () = assert!(core::mem::size_of::<GoheapBySize>() == 24);
const _: () = assert!(core::mem::size_of::<GoheapMemstats>() == 15 * 8 + NUM_SIZE_CLASSES * 24);
const _: () = assert!(NUM_SIZE_CLASSES == 68);
