//! C++ `operator new` and `operator delete`, every replaceable form, under
//! their Itanium C++ ABI (GCC, Clang) names for 64-bit targets
//! (`size_t` = `m`).
//!
//! Throwing forms cannot throw `std::bad_alloc` from here (that needs the
//! C++ runtime, which this library does not link, and finding it at run
//! time would need `dlsym`, which an allocator must not call): when memory
//! is exhausted they print a message naming the request and abort, as a
//! C++ program does when `bad_alloc` is not caught. The `new_handler` is
//! not consulted. `nothrow` forms return null.
//!
//! Every `delete` form frees by address, ignoring the size and alignment
//! arguments, so a mismatched size (a common bug) is harmless and foreign
//! pointers are reported as for `free`.

use crate::{alloc, alloc_aligned, free_impl};
use core::ffi::c_void;

/// `std::align_val_t`: an enum class over `size_t`.
type AlignVal = usize;
/// `const std::nothrow_t &`: only its address is passed.
type Nothrow = *const c_void;

/// Allocates for a `new` expression; null on exhaustion or an invalid
/// alignment (`align` 0 means "malloc's alignment").
fn new_impl(size: usize, align: usize) -> *mut c_void {
    if align == 0 {
        alloc(size)
    } else if align.is_power_of_two() {
        alloc_aligned(align, size)
    } else {
        core::ptr::null_mut()
    }
}

/// Throwing `new`: aborts with a report instead of throwing.
fn new_or_abort(size: usize, align: usize) -> *mut c_void {
    let p = new_impl(size, align);
    if p.is_null() {
        new_failed(size, align);
    }
    p
}

#[cold]
#[inline(never)]
fn new_failed(size: usize, align: usize) -> ! {
    goheap_core::report::print(format_args!(
        "fatal error: operator new({size} bytes, alignment {align}) failed: out of memory or invalid \
         alignment; goheap cannot throw std::bad_alloc, aborting"
    ));
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

/// `operator new(size_t)`: aborts on exhaustion.
///
/// # Safety
///
/// Always safe to call; the result is released with the matching `delete`.
#[no_mangle]
pub unsafe extern "C" fn _Znwm(size: usize) -> *mut c_void {
    new_or_abort(size, 0)
}

/// `operator new[](size_t)`: aborts on exhaustion.
///
/// # Safety
///
/// Always safe to call; the result is released with the matching `delete`.
#[no_mangle]
pub unsafe extern "C" fn _Znam(size: usize) -> *mut c_void {
    new_or_abort(size, 0)
}

/// `operator new(size_t, const std::nothrow_t &)`: null on exhaustion.
///
/// # Safety
///
/// Always safe to call; the result is released with the matching `delete`.
#[no_mangle]
pub unsafe extern "C" fn _ZnwmRKSt9nothrow_t(size: usize, _nt: Nothrow) -> *mut c_void {
    new_impl(size, 0)
}

/// `operator new[](size_t, const std::nothrow_t &)`: null on exhaustion.
///
/// # Safety
///
/// Always safe to call; the result is released with the matching `delete`.
#[no_mangle]
pub unsafe extern "C" fn _ZnamRKSt9nothrow_t(size: usize, _nt: Nothrow) -> *mut c_void {
    new_impl(size, 0)
}

/// `operator new(size_t, std::align_val_t)`: aborts on exhaustion or a bad alignment.
///
/// # Safety
///
/// Always safe to call; the result is released with the matching `delete`.
#[no_mangle]
pub unsafe extern "C" fn _ZnwmSt11align_val_t(size: usize, align: AlignVal) -> *mut c_void {
    new_or_abort(size, align.max(1))
}

/// `operator new[](size_t, std::align_val_t)`: aborts on exhaustion or a bad alignment.
///
/// # Safety
///
/// Always safe to call; the result is released with the matching `delete`.
#[no_mangle]
pub unsafe extern "C" fn _ZnamSt11align_val_t(size: usize, align: AlignVal) -> *mut c_void {
    new_or_abort(size, align.max(1))
}

/// `operator new(size_t, std::align_val_t, const std::nothrow_t &)`: null on failure.
///
/// # Safety
///
/// Always safe to call; the result is released with the matching `delete`.
#[no_mangle]
pub unsafe extern "C" fn _ZnwmSt11align_val_tRKSt9nothrow_t(
    size: usize,
    align: AlignVal,
    _nt: Nothrow,
) -> *mut c_void {
    new_impl(size, align.max(1))
}

/// `operator new[](size_t, std::align_val_t, const std::nothrow_t &)`: null on failure.
///
/// # Safety
///
/// Always safe to call; the result is released with the matching `delete`.
#[no_mangle]
pub unsafe extern "C" fn _ZnamSt11align_val_tRKSt9nothrow_t(
    size: usize,
    align: AlignVal,
    _nt: Nothrow,
) -> *mut c_void {
    new_impl(size, align.max(1))
}

/// `operator delete(void *)`.
///
/// # Safety
///
/// `p` is null or came from a matching `new` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn _ZdlPv(p: *mut c_void) {
    // SAFETY: forwarded contract.
    unsafe { free_impl(p) }
}

/// `operator delete[](void *)`.
///
/// # Safety
///
/// `p` is null or came from a matching `new` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn _ZdaPv(p: *mut c_void) {
    // SAFETY: forwarded contract.
    unsafe { free_impl(p) }
}

/// `operator delete(void *, size_t)` (the size is not needed).
///
/// # Safety
///
/// `p` is null or came from a matching `new` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn _ZdlPvm(p: *mut c_void, _size: usize) {
    // SAFETY: forwarded contract.
    unsafe { free_impl(p) }
}

/// `operator delete[](void *, size_t)` (the size is not needed).
///
/// # Safety
///
/// `p` is null or came from a matching `new` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn _ZdaPvm(p: *mut c_void, _size: usize) {
    // SAFETY: forwarded contract.
    unsafe { free_impl(p) }
}

/// `operator delete(void *, const std::nothrow_t &)`.
///
/// # Safety
///
/// `p` is null or came from a matching `new` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn _ZdlPvRKSt9nothrow_t(p: *mut c_void, _nt: Nothrow) {
    // SAFETY: forwarded contract.
    unsafe { free_impl(p) }
}

/// `operator delete[](void *, const std::nothrow_t &)`.
///
/// # Safety
///
/// `p` is null or came from a matching `new` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn _ZdaPvRKSt9nothrow_t(p: *mut c_void, _nt: Nothrow) {
    // SAFETY: forwarded contract.
    unsafe { free_impl(p) }
}

/// `operator delete(void *, std::align_val_t)`.
///
/// # Safety
///
/// `p` is null or came from a matching `new` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn _ZdlPvSt11align_val_t(p: *mut c_void, _align: AlignVal) {
    // SAFETY: forwarded contract.
    unsafe { free_impl(p) }
}

/// `operator delete[](void *, std::align_val_t)`.
///
/// # Safety
///
/// `p` is null or came from a matching `new` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn _ZdaPvSt11align_val_t(p: *mut c_void, _align: AlignVal) {
    // SAFETY: forwarded contract.
    unsafe { free_impl(p) }
}

/// `operator delete(void *, size_t, std::align_val_t)`.
///
/// # Safety
///
/// `p` is null or came from a matching `new` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn _ZdlPvmSt11align_val_t(p: *mut c_void, _size: usize, _align: AlignVal) {
    // SAFETY: forwarded contract.
    unsafe { free_impl(p) }
}

/// `operator delete[](void *, size_t, std::align_val_t)`.
///
/// # Safety
///
/// `p` is null or came from a matching `new` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn _ZdaPvmSt11align_val_t(p: *mut c_void, _size: usize, _align: AlignVal) {
    // SAFETY: forwarded contract.
    unsafe { free_impl(p) }
}

/// `operator delete(void *, std::align_val_t, const std::nothrow_t &)`.
///
/// # Safety
///
/// `p` is null or came from a matching `new` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn _ZdlPvSt11align_val_tRKSt9nothrow_t(
    p: *mut c_void,
    _align: AlignVal,
    _nt: Nothrow,
) {
    // SAFETY: forwarded contract.
    unsafe { free_impl(p) }
}

/// `operator delete[](void *, std::align_val_t, const std::nothrow_t &)`.
///
/// # Safety
///
/// `p` is null or came from a matching `new` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn _ZdaPvSt11align_val_tRKSt9nothrow_t(
    p: *mut c_void,
    _align: AlignVal,
    _nt: Nothrow,
) {
    // SAFETY: forwarded contract.
    unsafe { free_impl(p) }
}
