//! goheap as a C library: `libgoheap.so` and `libgoheap.a`, with the
//! declarations in `include/goheap.h`.
//!
//! The library defines the whole C allocation surface (`malloc`, `free`,
//! `calloc`, `realloc`, `reallocarray`, `posix_memalign`, `aligned_alloc`,
//! `memalign`, `valloc`, `pvalloc`, `malloc_usable_size`, `malloc_trim`,
//! `free_sized`, `free_aligned_sized`, `cfree`, glibc's `__libc_*` names),
//! glibc's `<malloc.h>` introspection calls answered from goheap's
//! statistics ([`glibc`]: `mallinfo`, `mallinfo2`, `malloc_stats`,
//! `malloc_info`, and `mallopt`, which accepts glibc's parameters and
//! honours none) and C++'s `operator new`/`delete` family under their
//! Itanium names ([`cxx`]: the throwing `new`s call the `new_handler` and
//! throw `std::bad_alloc` through libstdc++'s functions, bound weakly), so
//! `LD_PRELOAD=libgoheap.so prog` or linking with `-lgoheap` routes a whole
//! process through goheap. It adds `goheap_*` functions (statistics, heap
//! check, cache flush, memory limit, scavenger, heap profiles, and prefixed
//! copies of the allocation calls for programs that keep another `malloc`).
//!
//! Semantics follow glibc: results of `malloc(n)` are 16-byte aligned for
//! `n > 8` (8 for smaller requests, which cannot hold a 16-byte-aligned
//! type), exhaustion gives null with `errno = ENOMEM`, size overflow in
//! `calloc`/`reallocarray` likewise, `realloc(p, 0)` frees `p` and returns
//! null, `free(NULL)` does nothing.
//!
//! Rules every entry point keeps:
//! - it never allocates through the Rust global allocator (no `Vec`,
//!   `format!`, `std::env`): messages go through the core's non-allocating
//!   stderr writer, options through `getenv`;
//! - it never unwinds a Rust frame: nothing here panics, and a panic in an
//!   `extern "C"` function aborts (release builds also use
//!   `panic = "abort"`); the `std::bad_alloc` of the throwing `new`s is
//!   thrown from assembly frames only (see [`cxx`]);
//! - it needs no set-up: the core initialises itself lazily, so calls from
//!   the dynamic loader and before `main` work; `init`, run by a
//!   constructor when the library is loaded, only reads options and
//!   registers the `GOHEAP_PRINT_STATS` exit report, and tolerates being
//!   re-entered (registering it may allocate).
//!
//! The pointer to the thread's cache is one word of static TLS read with
//! the initial-exec model (declared in assembly by the core, as
//! `thread_local!` in a shared library would cost a `__tls_get_addr` call
//! per operation): `dlopen` of the library takes those 8 bytes from
//! glibc's static-TLS surplus. Its other thread-locals use dynamic TLS.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod cxx;
pub mod glibc;
pub mod stats;

use core::ffi::{c_int, c_void};
use core::ptr;
use core::sync::atomic::{AtomicU8, Ordering};
use goheap_core::options::{self, Opt};
use goheap_core::{raw, MAX_ALLOC};

pub use glibc::{Mallinfo, Mallinfo2};
pub use stats::{GoheapBySize, GoheapMemstats};

/// Alignment `malloc(size)` guarantees: 16 for sizes above 8 (GCC and
/// glibc assume `alignof(max_align_t)`), 8 below (no type of at most 8
/// bytes needs more).
#[inline(always)]
fn c_align(size: usize) -> usize {
    if size <= 8 {
        8
    } else {
        16
    }
}

/// Sets `errno`.
#[inline]
fn set_errno(e: c_int) {
    // SAFETY: `__errno_location` returns the calling thread's errno slot,
    // valid for the thread's life.
    unsafe { *libc::__errno_location() = e };
}

/// Sets `errno = ENOMEM` and returns null.
#[cold]
fn enomem() -> *mut c_void {
    set_errno(libc::ENOMEM);
    ptr::null_mut()
}

/// 0 = not initialised, 1 = initialising, 2 = done.
static INIT: AtomicU8 = AtomicU8::new(0);

/// Runs [`init`] when the library is loaded (before `main` for a preloaded
/// or linked library, inside `dlopen` otherwise), so the hot entry points
/// (`malloc`, `free`, `calloc`, `realloc`, `operator new`/`delete`) need
/// no check: the allocator itself needs none of [`init`], and an
/// allocation made before it ran (by the dynamic loader, or by an earlier
/// constructor) is counted like any other. The rarer entry points still
/// call [`ensure_init`].
#[used]
#[link_section = ".init_array"]
static INIT_AT_LOAD: extern "C" fn() = init_at_load;

extern "C" fn init_at_load() {
    ensure_init();
}

/// Runs [`init`] once; a cheap load afterwards.
#[inline(always)]
fn ensure_init() {
    if INIT.load(Ordering::Acquire) != 2 {
        init();
    }
}

/// First-use set-up: reads the options and (with `GOHEAP_PRINT_STATS`)
/// registers the exit report. (The core registers the `fork` handlers
/// itself, for Rust programs too.) Runs once; a call that finds it running
/// (re-entered from `atexit`, which may allocate, or another thread)
/// returns at once and goes on with the allocation, which needs none of
/// this.
#[cold]
#[inline(never)]
fn init() {
    if INIT
        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Acquire)
        .is_err()
    {
        return;
    }
    options::load();
    if options::get(Opt::PrintStats) && goheap_core::claim_exit_stats() {
        stats::save_stats_fd();
        // SAFETY: registers an `extern "C"` function with no arguments that
        // stays valid until exit (this library is not unloaded: it holds
        // the process's heap).
        unsafe { libc::atexit(print_stats_at_exit) };
    }
    if options::get(Opt::Verbose) {
        print_options();
    }
    INIT.store(2, Ordering::Release);
}

/// `GOHEAP_VERBOSE`: one line with the version and the options.
fn print_options() {
    use core::fmt::Write;
    let mut w = goheap_core::report::StderrWriter::new();
    let _ = write!(
        w,
        "goheap: libgoheap {} initialised in pid {}:",
        env!("CARGO_PKG_VERSION"),
        {
            // SAFETY: getpid has no preconditions.
            unsafe { libc::getpid() }
        }
    );
    for opt in Opt::ALL {
        let _ = write!(
            w,
            " {}={}",
            opt.info().name.to_str().unwrap_or("?"),
            options::get(opt) as u8
        );
    }
    let _ = w.write_str("\n");
}

extern "C" fn print_stats_at_exit() {
    stats::print_stats_at_exit();
}

/// `malloc(size)`: null on failure, with `errno` set to `ENOMEM`.
#[inline(always)]
fn alloc(size: usize) -> *mut c_void {
    raw::malloc(size).cast()
}

/// `size` bytes aligned to `align` (a power of two), at least malloc's
/// alignment; null on failure, without `errno`.
fn alloc_aligned(align: usize, size: usize) -> *mut c_void {
    if size > MAX_ALLOC || align > MAX_ALLOC / 2 {
        return ptr::null_mut();
    }
    raw::alloc(size, align.max(c_align(size))).cast()
}

/// Frees `p` for C: null is ignored, and with `GOHEAP_IGNORE_INVALID_FREE`
/// so is a pointer goheap does not own (with one warning; the core decides
/// that on its path for pointers outside its small spans).
///
/// # Safety
///
/// `p` is null, or a live goheap object the caller gives up, or (with the
/// option) memory goheap does not own.
#[inline(always)]
unsafe fn free_impl(p: *mut c_void) {
    // SAFETY: forwarded contract; `raw::free` ignores null and aborts with
    // a report for pointers it does not own.
    unsafe { raw::free(p.cast()) }
}

/// Allocates `size` bytes, aligned to 16 (8 when `size <= 8`). `malloc(0)`
/// returns a unique pointer. Null with `errno = ENOMEM` on exhaustion.
///
/// # Safety
///
/// Always safe to call; the result is memory for the caller to `free`.
#[no_mangle]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    malloc_impl(size)
}

// The exported functions call each other only through these private
// functions: a call to an exported name from inside this library goes
// through the dynamic linker and can land in another library's function
// of that name (glibc's, when this library was loaded with `dlopen`).

#[inline(always)]
fn malloc_impl(size: usize) -> *mut c_void {
    // Sets errno itself on failure, so that this is a tail call.
    alloc(size)
}

/// Frees `p`; null is ignored. Aborts with a report naming `p` when `p` is
/// not a live goheap object (unless `GOHEAP_IGNORE_INVALID_FREE` is set and
/// goheap does not own `p` at all).
///
/// # Safety
///
/// `p` is null or came from this library's allocation functions and is not
/// used afterwards.
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: forwarded contract.
    unsafe { free_impl(p) }
}

/// C23 `free_sized`: frees `p`, which was allocated with `size` bytes
/// (by `malloc`, `calloc` or `realloc`). Checked like `free`, and the size
/// must be one the object could have been allocated with (its size class,
/// or its page count for a large object); otherwise it aborts with a
/// report.
///
/// # Safety
///
/// As [`free`], and `size` is the size `p` was allocated with.
#[no_mangle]
pub unsafe extern "C" fn free_sized(p: *mut c_void, size: usize) {
    // SAFETY: forwarded contract.
    unsafe { free_sized_impl(p, size) }
}

/// C23 `free_aligned_sized`: frees `p`, allocated by `aligned_alloc` with
/// `align` and `size`. Checked like [`free_sized`].
///
/// # Safety
///
/// As [`free_sized`], and `align` is the alignment `p` was allocated with.
#[no_mangle]
pub unsafe extern "C" fn free_aligned_sized(p: *mut c_void, _align: usize, size: usize) {
    // SAFETY: forwarded contract.
    unsafe { free_sized_impl(p, size) }
}

/// # Safety
///
/// As [`free_sized`].
unsafe fn free_sized_impl(p: *mut c_void, size: usize) {
    // SAFETY: forwarded contract; ignores null, checks the pointer before
    // using it (and
    // ignores one goheap does not own, with GOHEAP_IGNORE_INVALID_FREE).
    unsafe { raw::free_sized(p.cast(), size) }
}

/// Old name of `free` (SunOS, glibc before 2.26).
///
/// # Safety
///
/// As [`free`].
#[no_mangle]
pub unsafe extern "C" fn cfree(p: *mut c_void) {
    // SAFETY: forwarded contract.
    unsafe { free_impl(p) }
}

/// Allocates `n * size` zeroed bytes; null with `ENOMEM` on overflow or
/// exhaustion.
///
/// # Safety
///
/// Always safe to call.
#[no_mangle]
pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    calloc_impl(n, size)
}

fn calloc_impl(n: usize, size: usize) -> *mut c_void {
    let Some(total) = n.checked_mul(size) else {
        return enomem();
    };
    if total > MAX_ALLOC {
        return enomem();
    }
    let p = raw::alloc_zeroed(total, c_align(total));
    if p.is_null() {
        return enomem();
    }
    p.cast()
}

/// `realloc` as glibc: null `p` is `malloc(size)`; `size == 0` frees `p`
/// and returns null; on failure returns null with `ENOMEM` and leaves `p`
/// untouched. Aborts with a report if `p` is not a live goheap object.
///
/// # Safety
///
/// `p` is null or a live object from this library, not used afterwards
/// unless null is returned for a non-zero `size`.
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { realloc_impl(p, size) }
}

/// # Safety
///
/// As [`realloc`].
unsafe fn realloc_impl(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        return alloc(size);
    }
    if size == 0 {
        // SAFETY: forwarded contract.
        unsafe { free_impl(p) };
        return ptr::null_mut();
    }
    if size > MAX_ALLOC {
        return enomem();
    }
    // SAFETY: `p` is a live goheap object (else `raw::realloc` aborts with
    // a report); every C allocation has at most `c_align`-sized alignment
    // needs for its contents after a realloc.
    let q = unsafe { raw::realloc(p.cast(), c_align(size), size) };
    if q.is_null() {
        return enomem();
    }
    q.cast()
}

/// `realloc(p, n * size)` with overflow checked (null with `ENOMEM`, `p`
/// untouched).
///
/// # Safety
///
/// As [`realloc`].
#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: forwarded contract.
        Some(total) => unsafe { realloc_impl(p, total) },
        None => enomem(),
    }
}

/// Stores in `*memptr` `size` bytes aligned to `align`, which must be a
/// power of two and a multiple of `sizeof(void *)`. Returns 0, `EINVAL`
/// for a bad alignment or `ENOMEM`; never changes `errno`.
///
/// # Safety
///
/// `memptr` is valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(
    memptr: *mut *mut c_void,
    align: usize,
    size: usize,
) -> c_int {
    ensure_init();
    if !align.is_power_of_two() || !align.is_multiple_of(core::mem::size_of::<*mut c_void>()) {
        return libc::EINVAL;
    }
    let p = alloc_aligned(align, size);
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: the caller passes a writable `memptr`.
    unsafe { *memptr = p };
    0
}

/// C11 `aligned_alloc`: `align` must be a power of two (else null with
/// `EINVAL`); `size` need not be a multiple of it.
///
/// # Safety
///
/// Always safe to call.
#[no_mangle]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    aligned_alloc_impl(align, size)
}

fn aligned_alloc_impl(align: usize, size: usize) -> *mut c_void {
    ensure_init();
    if !align.is_power_of_two() {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    let p = alloc_aligned(align, size);
    if p.is_null() {
        return enomem();
    }
    p
}

/// Obsolete `memalign` as glibc: an alignment that is not a power of two
/// is rounded up to one; above `SIZE_MAX / 2 + 1` it is null with `EINVAL`.
///
/// # Safety
///
/// Always safe to call.
#[no_mangle]
pub unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    memalign_impl(align, size)
}

fn memalign_impl(align: usize, size: usize) -> *mut c_void {
    ensure_init();
    let Some(align) = align.max(1).checked_next_power_of_two() else {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    };
    let p = alloc_aligned(align, size);
    if p.is_null() {
        return enomem();
    }
    p
}

/// The system's page size.
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions and does not allocate.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n <= 0 {
        goheap_core::os::OS_PAGE_SIZE
    } else {
        n as usize
    }
}

/// Obsolete `valloc`: `size` bytes aligned to the page size.
///
/// # Safety
///
/// Always safe to call.
#[no_mangle]
pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
    memalign_impl(page_size(), size)
}

/// Obsolete `pvalloc`: `size` rounded up to whole pages (one page for 0),
/// page aligned.
///
/// # Safety
///
/// Always safe to call.
#[no_mangle]
pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let page = page_size();
    let Some(rounded) = size.max(1).checked_next_multiple_of(page) else {
        return enomem();
    };
    memalign_impl(page, rounded)
}

/// Bytes usable at `p` (at least what was asked for); 0 for null.
/// Aborts with a report for a pointer goheap does not own (0 instead with
/// `GOHEAP_IGNORE_INVALID_FREE`).
///
/// # Safety
///
/// `p` is null or a live object from this library.
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    // SAFETY: forwarded contract.
    unsafe { usable_size_impl(p) }
}

/// # Safety
///
/// As [`malloc_usable_size`].
unsafe fn usable_size_impl(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    ensure_init();
    if options::get(Opt::IgnoreInvalidFree) && !raw::owns(p.cast()) {
        return 0;
    }
    // SAFETY: forwarded contract (aborts with a report otherwise).
    unsafe { raw::usable_size(p.cast()) }
}

/// Flushes the calling thread's cache to the central lists, so empty spans
/// go back to the page heap. Returns 1 if that gave any pages back, else 0.
/// `pad` is ignored.
///
/// # Safety
///
/// Always safe to call.
#[no_mangle]
pub unsafe extern "C" fn malloc_trim(_pad: usize) -> c_int {
    ensure_init();
    let before = goheap_core::memstats().heap_inuse;
    goheap_core::flush_thread_cache();
    let after = goheap_core::memstats().heap_inuse;
    (after < before) as c_int
}

/// glibc's internal name for [`malloc`].
///
/// # Safety
///
/// As [`malloc`].
#[no_mangle]
pub unsafe extern "C" fn __libc_malloc(size: usize) -> *mut c_void {
    malloc_impl(size)
}

/// glibc's internal name for [`free`].
///
/// # Safety
///
/// As [`free`].
#[no_mangle]
pub unsafe extern "C" fn __libc_free(p: *mut c_void) {
    // SAFETY: forwarded contract.
    unsafe { free_impl(p) }
}

/// glibc's internal name for [`calloc`].
///
/// # Safety
///
/// As [`calloc`].
#[no_mangle]
pub unsafe extern "C" fn __libc_calloc(n: usize, size: usize) -> *mut c_void {
    calloc_impl(n, size)
}

/// glibc's internal name for [`realloc`].
///
/// # Safety
///
/// As [`realloc`].
#[no_mangle]
pub unsafe extern "C" fn __libc_realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { realloc_impl(p, size) }
}

/// glibc's internal name for [`memalign`].
///
/// # Safety
///
/// As [`memalign`].
#[no_mangle]
pub unsafe extern "C" fn __libc_memalign(align: usize, size: usize) -> *mut c_void {
    memalign_impl(align, size)
}

/// [`malloc`] under goheap's own name, for programs that keep another
/// allocator as `malloc` (e.g. a library loaded with `dlopen`).
///
/// # Safety
///
/// As [`malloc`].
#[no_mangle]
pub unsafe extern "C" fn goheap_malloc(size: usize) -> *mut c_void {
    malloc_impl(size)
}

/// [`free`] under goheap's own name.
///
/// # Safety
///
/// As [`free`].
#[no_mangle]
pub unsafe extern "C" fn goheap_free(p: *mut c_void) {
    // SAFETY: forwarded contract.
    unsafe { free_impl(p) }
}

/// [`calloc`] under goheap's own name.
///
/// # Safety
///
/// As [`calloc`].
#[no_mangle]
pub unsafe extern "C" fn goheap_calloc(n: usize, size: usize) -> *mut c_void {
    calloc_impl(n, size)
}

/// [`realloc`] under goheap's own name.
///
/// # Safety
///
/// As [`realloc`].
#[no_mangle]
pub unsafe extern "C" fn goheap_realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { realloc_impl(p, size) }
}

/// [`aligned_alloc`] under goheap's own name.
///
/// # Safety
///
/// As [`aligned_alloc`].
#[no_mangle]
pub unsafe extern "C" fn goheap_aligned_alloc(align: usize, size: usize) -> *mut c_void {
    aligned_alloc_impl(align, size)
}

/// [`malloc_usable_size`] under goheap's own name.
///
/// # Safety
///
/// As [`malloc_usable_size`].
#[no_mangle]
pub unsafe extern "C" fn goheap_usable_size(p: *mut c_void) -> usize {
    // SAFETY: forwarded contract.
    unsafe { usable_size_impl(p) }
}

/// Writes the heap profile (pprof's gzipped `profile.proto`) to the
/// NUL-terminated `path`: 0 on success, -1 with `errno` set on failure
/// (`EINVAL` for a null path). Allocates nothing through goheap.
///
/// # Safety
///
/// `path` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn goheap_write_heap_profile(path: *const core::ffi::c_char) -> c_int {
    if path.is_null() {
        set_errno(libc::EINVAL);
        return -1;
    }
    // SAFETY: the caller passes a NUL-terminated string.
    let path = unsafe { core::ffi::CStr::from_ptr(path) };
    match goheap_core::write_heap_profile_at(path) {
        Ok(()) => 0,
        Err(e) => {
            set_errno(e.raw_os_error().unwrap_or(libc::EIO));
            -1
        }
    }
}

/// Sets the heap profile's sampling rate (mean bytes between samples; 1:
/// every allocation; 0: off) and returns the previous one.
#[no_mangle]
pub extern "C" fn goheap_set_profile_rate(rate: usize) -> usize {
    goheap_core::set_profile_rate(rate)
}

/// 1 if `p` lies in pages goheap has in use (a span of small objects or a
/// large object), else 0. Never aborts; does not check that `p` starts a
/// live object.
///
/// # Safety
///
/// Always safe to call: `p` is only compared against goheap's page map.
#[no_mangle]
pub unsafe extern "C" fn goheap_owns(p: *const c_void) -> c_int {
    raw::owns(p.cast()) as c_int
}

/// Checks goheap's bookkeeping against itself with every thread's cache
/// held still (see `goheap::check_heap`); prints each problem on stderr.
/// Returns the number of problems (0: consistent). For tests and
/// debugging: it walks the whole heap.
///
/// # Safety
///
/// Always safe to call.
#[no_mangle]
pub unsafe extern "C" fn goheap_check_heap() -> usize {
    goheap_core::check_heap().problems as usize
}

/// Returns the calling thread's cached objects and spans to the shared
/// lists (other threads can then use them).
///
/// # Safety
///
/// Always safe to call.
#[no_mangle]
pub unsafe extern "C" fn goheap_flush_thread_cache() {
    goheap_core::flush_thread_cache();
}

/// Returns every free page to the OS now; returns the bytes released.
///
/// # Safety
///
/// Always safe to call.
#[no_mangle]
pub unsafe extern "C" fn goheap_free_os_memory() -> usize {
    goheap_core::free_os_memory()
}

/// Sets the soft memory limit (`SIZE_MAX`: none); returns the previous one.
///
/// # Safety
///
/// Always safe to call.
#[no_mangle]
pub unsafe extern "C" fn goheap_set_memory_limit(bytes: usize) -> usize {
    goheap_core::set_memory_limit(bytes)
}

/// The soft memory limit (`SIZE_MAX`: none).
///
/// # Safety
///
/// Always safe to call.
#[no_mangle]
pub unsafe extern "C" fn goheap_memory_limit() -> usize {
    goheap_core::memory_limit()
}

/// Makes the memory limit hard (`hard != 0`) or soft.
///
/// # Safety
///
/// Always safe to call.
#[no_mangle]
pub unsafe extern "C" fn goheap_set_hard_limit(hard: c_int) {
    goheap_core::set_hard_limit(hard != 0);
}

/// Turns the background scavenger on (`on != 0`) or off.
///
/// # Safety
///
/// Always safe to call.
#[no_mangle]
pub unsafe extern "C" fn goheap_set_background_scavenger(on: c_int) {
    goheap_core::set_background_scavenger(on != 0);
}

#[cfg(test)]
mod tests {
    use goheap_core::options::OPTIONS;

    /// The root README's option table lists every option with its
    /// default (switches) or the form of its value.
    #[test]
    fn readme_documents_every_option() {
        let readme = include_str!("../../../README.md");
        for o in OPTIONS {
            let name = o.name.to_str().expect("ASCII name");
            let row = format!("| `{name}` | {} |", if o.default { "on" } else { "off" });
            assert!(readme.contains(&row), "README.md lacks the row {row:?}");
        }
        for o in goheap_core::options::VALUE_OPTIONS {
            let name = o.name.to_str().expect("ASCII name");
            let row = format!("| `{name}` | value |");
            assert!(readme.contains(&row), "README.md lacks the row {row:?}");
        }
    }

    /// The header documents every exported function.
    #[test]
    fn header_declares_every_function() {
        let header = include_str!("../include/goheap.h");
        let names = [
            "malloc",
            "free",
            "calloc",
            "realloc",
            "reallocarray",
            "posix_memalign",
            "aligned_alloc",
            "memalign",
            "valloc",
            "pvalloc",
            "malloc_usable_size",
            "malloc_trim",
            "cfree",
            "free_sized",
            "free_aligned_sized",
            "goheap_check_heap",
            "__libc_malloc",
            "__libc_free",
            "__libc_calloc",
            "__libc_realloc",
            "__libc_memalign",
            "goheap_malloc",
            "goheap_free",
            "goheap_calloc",
            "goheap_realloc",
            "goheap_aligned_alloc",
            "goheap_usable_size",
            "goheap_owns",
            "goheap_memstats",
            "goheap_print_stats",
            "goheap_flush_thread_cache",
            "goheap_free_os_memory",
            "goheap_set_memory_limit",
            "goheap_memory_limit",
            "goheap_set_hard_limit",
            "goheap_set_background_scavenger",
            "goheap_write_heap_profile",
            "goheap_set_profile_rate",
        ];
        for n in names {
            let listed = ["(", ",", ":"]
                .iter()
                .any(|end| header.contains(&format!("{n}{end}")));
            assert!(listed, "goheap.h lacks {n}");
        }
    }
}
