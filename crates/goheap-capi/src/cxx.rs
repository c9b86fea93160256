//! C++ `operator new` and `operator delete`, every replaceable form, under
//! their Itanium C++ ABI (GCC, Clang) names for 64-bit targets
//! (`size_t` = `m`).
//!
//! # Throwing forms
//!
//! `operator new(size)`, `new[](size)` and their `align_val_t` forms do
//! what the standard says: when the allocation fails they call the
//! installed `std::new_handler` and retry, for as long as a handler is
//! installed; with none they throw `std::bad_alloc`. (A non-power-of-two
//! alignment throws at once, as libstdc++'s own `operator new` does.)
//!
//! The C++ runtime is not linked: its two functions, `std::get_new_handler`
//! and `std::__throw_bad_alloc`, are weak undefined references that the
//! dynamic linker binds when libstdc++ is in the process's global scope,
//! which it is in every C++ program (no `dlsym`, which may allocate). Left
//! unbound (a C program calling `_Znwm` by hand, or libstdc++ first loaded
//! later by `dlopen`), a failure prints a report naming the request and
//! aborts, as an uncaught `bad_alloc` would.
//!
//! The exception must reach the C++ caller, and no Rust frame may be
//! unwound (an `extern "C"` Rust frame aborts on unwind, and the release
//! profile is `panic = "abort"`). So on x86-64 the exported throwing
//! symbols are naked assembly: the fast path calls a Rust function that
//! returns the block or null; on null it jumps to an assembly loop whose
//! frame has CFI (so a handler that throws unwinds through it), which asks
//! a Rust function for the handler, calls it, retries, and when there is
//! no handler *jumps* to `__throw_bad_alloc`, so the throw starts from the
//! C++ caller's own call site. Other architectures keep the report and
//! abort for every failure (and do not call the handler).
//!
//! # `nothrow` forms
//!
//! They return null on failure without calling the `new_handler`: a
//! handler may throw, and catching that (as libstdc++'s `nothrow` new does)
//! needs a C++ catch clause this library cannot have.
//!
//! # `delete`
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

/// A failed throwing `new` that cannot throw: reports and aborts.
#[cold]
#[inline(never)]
fn new_failed(size: usize, align: usize) -> ! {
    goheap_core::report::print(format_args!(
        "fatal error: operator new({size} bytes, alignment {align}) failed: out of memory or invalid \
         alignment, and libstdc++ is not loaded (its std::get_new_handler and \
         std::__throw_bad_alloc are not bound), so goheap cannot call the new_handler or throw \
         std::bad_alloc; aborting"
    ));
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

#[cfg(target_arch = "x86_64")]
mod throwing {
    //! The x86-64 throwing `operator new`s (see the module docs of `cxx`).
    //!
    //! Register use: `rdi` = size, `rsi` = alignment (0: malloc's). The
    //! entry points keep the C++ caller's frame as the only one below them
    //! when they jump to [`new_slow`]; `new_slow` keeps `rbx`/`r12`
    //! (described by its CFI) across the handler calls.

    use super::{new_failed, new_impl};
    use core::ffi::c_void;

    /// `std::new_handler`.
    type NewHandler = unsafe extern "C" fn();
    /// `std::get_new_handler()` (`noexcept`).
    type GetNewHandler = unsafe extern "C" fn() -> Option<NewHandler>;

    /// The allocation attempt of every throwing form: the block, or null.
    extern "C" fn try_new(size: usize, align: usize) -> *mut c_void {
        new_impl(size, align)
    }

    /// One failed attempt: returns the handler to call before retrying, or
    /// null to throw `bad_alloc`. `get_new_handler` and `throw_bad_alloc`
    /// are libstdc++'s functions as the dynamic linker bound them (null if
    /// it is not loaded: then it reports and aborts).
    extern "C" fn on_failure(
        get_new_handler: Option<GetNewHandler>,
        throw_bad_alloc: *const c_void,
        size: usize,
        align: usize,
    ) -> Option<NewHandler> {
        let Some(get_new_handler) = get_new_handler else {
            new_failed(size, align)
        };
        if throw_bad_alloc.is_null() {
            new_failed(size, align);
        }
        if align != 0 && !align.is_power_of_two() {
            return None;
        }
        // SAFETY: libstdc++'s `std::get_new_handler`, which takes nothing,
        // is `noexcept` and does not allocate.
        unsafe { get_new_handler() }
    }

    /// The new_handler loop, jumped to (not called) by the entry points
    /// with the entry's stack, `rdi` = size and `rsi` = alignment: calls
    /// the handler and retries until an attempt succeeds (returns the
    /// block to the C++ caller) or there is no handler (tail-jumps to
    /// `std::__throw_bad_alloc`, whose return address is then the C++
    /// caller's call of `operator new`).
    #[unsafe(naked)]
    extern "C" fn new_slow(size: usize, align: usize) -> *mut c_void {
        core::arch::naked_asm!(
            ".weak _ZSt15get_new_handlerv",
            ".weak _ZSt17__throw_bad_allocv",
            ".cfi_startproc",
            "push rbx",
            ".cfi_adjust_cfa_offset 8",
            ".cfi_offset rbx, -16",
            "push r12",
            ".cfi_adjust_cfa_offset 8",
            ".cfi_offset r12, -24",
            // Keeps the stack 16-byte aligned at the calls.
            "push rax",
            ".cfi_adjust_cfa_offset 8",
            "mov rbx, rdi",
            "mov r12, rsi",
            "2:",
            "mov rdi, qword ptr [rip + _ZSt15get_new_handlerv@GOTPCREL]",
            "mov rsi, qword ptr [rip + _ZSt17__throw_bad_allocv@GOTPCREL]",
            "mov rdx, rbx",
            "mov rcx, r12",
            "call {on_failure}",
            "test rax, rax",
            "jz 3f",
            // The handler may throw (bad_alloc or anything): the unwinder
            // passes this frame by its CFI, restoring rbx and r12.
            "call rax",
            "mov rdi, rbx",
            "mov rsi, r12",
            "call {try_new}",
            "test rax, rax",
            "jz 2b",
            ".cfi_remember_state",
            "pop rcx",
            ".cfi_adjust_cfa_offset -8",
            "pop r12",
            ".cfi_adjust_cfa_offset -8",
            ".cfi_restore r12",
            "pop rbx",
            ".cfi_adjust_cfa_offset -8",
            ".cfi_restore rbx",
            "ret",
            ".cfi_restore_state",
            "3:",
            "pop rcx",
            ".cfi_adjust_cfa_offset -8",
            "pop r12",
            ".cfi_adjust_cfa_offset -8",
            ".cfi_restore r12",
            "pop rbx",
            ".cfi_adjust_cfa_offset -8",
            ".cfi_restore rbx",
            "jmp qword ptr [rip + _ZSt17__throw_bad_allocv@GOTPCREL]",
            ".cfi_endproc",
            on_failure = sym on_failure,
            try_new = sym try_new,
        )
    }

    /// `operator new(size_t)`: calls the new_handler and retries on
    /// exhaustion; throws `std::bad_alloc` when there is none.
    ///
    /// # Safety
    ///
    /// Always safe to call; the result is released with the matching
    /// `delete`.
    #[unsafe(naked)]
    #[no_mangle]
    pub unsafe extern "C" fn _Znwm(size: usize) -> *mut c_void {
        core::arch::naked_asm!(
            ".cfi_startproc",
            "push rdi",
            ".cfi_adjust_cfa_offset 8",
            "xor esi, esi",
            "call {try_new}",
            "pop rdi",
            ".cfi_adjust_cfa_offset -8",
            // `mov`, not `xor`: the flags of the test must survive.
            "test rax, rax",
            "mov esi, 0",
            "jz {slow}",
            "ret",
            ".cfi_endproc",
            try_new = sym try_new,
            slow = sym new_slow,
        )
    }

    /// `operator new[](size_t)`: as [`_Znwm`].
    ///
    /// # Safety
    ///
    /// Always safe to call; the result is released with the matching
    /// `delete`.
    #[unsafe(naked)]
    #[no_mangle]
    pub unsafe extern "C" fn _Znam(size: usize) -> *mut c_void {
        core::arch::naked_asm!(
            ".cfi_startproc",
            "push rdi",
            ".cfi_adjust_cfa_offset 8",
            "xor esi, esi",
            "call {try_new}",
            "pop rdi",
            ".cfi_adjust_cfa_offset -8",
            "test rax, rax",
            "mov esi, 0",
            "jz {slow}",
            "ret",
            ".cfi_endproc",
            try_new = sym try_new,
            slow = sym new_slow,
        )
    }

    /// `operator new(size_t, std::align_val_t)`: as [`_Znwm`]; alignment
    /// 0 is taken as 1, a non-power-of-two one throws `bad_alloc`.
    ///
    /// # Safety
    ///
    /// Always safe to call; the result is released with the matching
    /// `delete`.
    #[unsafe(naked)]
    #[no_mangle]
    pub unsafe extern "C" fn _ZnwmSt11align_val_t(size: usize, align: usize) -> *mut c_void {
        core::arch::naked_asm!(
            ".cfi_startproc",
            // align = max(align, 1): the carry is set only for 0.
            "cmp rsi, 1",
            "adc rsi, 0",
            "push rsi",
            ".cfi_adjust_cfa_offset 8",
            "push rdi",
            ".cfi_adjust_cfa_offset 8",
            "sub rsp, 8",
            ".cfi_adjust_cfa_offset 8",
            "call {try_new}",
            "add rsp, 8",
            ".cfi_adjust_cfa_offset -8",
            "pop rdi",
            ".cfi_adjust_cfa_offset -8",
            "pop rsi",
            ".cfi_adjust_cfa_offset -8",
            "test rax, rax",
            "jz {slow}",
            "ret",
            ".cfi_endproc",
            try_new = sym try_new,
            slow = sym new_slow,
        )
    }

    /// `operator new[](size_t, std::align_val_t)`: as
    /// [`_ZnwmSt11align_val_t`].
    ///
    /// # Safety
    ///
    /// Always safe to call; the result is released with the matching
    /// `delete`.
    #[unsafe(naked)]
    #[no_mangle]
    pub unsafe extern "C" fn _ZnamSt11align_val_t(size: usize, align: usize) -> *mut c_void {
        core::arch::naked_asm!(
            ".cfi_startproc",
            "cmp rsi, 1",
            "adc rsi, 0",
            "push rsi",
            ".cfi_adjust_cfa_offset 8",
            "push rdi",
            ".cfi_adjust_cfa_offset 8",
            "sub rsp, 8",
            ".cfi_adjust_cfa_offset 8",
            "call {try_new}",
            "add rsp, 8",
            ".cfi_adjust_cfa_offset -8",
            "pop rdi",
            ".cfi_adjust_cfa_offset -8",
            "pop rsi",
            ".cfi_adjust_cfa_offset -8",
            "test rax, rax",
            "jz {slow}",
            "ret",
            ".cfi_endproc",
            try_new = sym try_new,
            slow = sym new_slow,
        )
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod throwing {
    //! Throwing `operator new`s without the new_handler or `bad_alloc`:
    //! a failure reports and aborts (see the module docs of `cxx`).

    use super::{new_failed, new_impl, AlignVal};
    use core::ffi::c_void;

    /// Throwing `new`: aborts with a report instead of throwing.
    fn new_or_abort(size: usize, align: usize) -> *mut c_void {
        let p = new_impl(size, align);
        if p.is_null() {
            new_failed(size, align);
        }
        p
    }

    /// `operator new(size_t)`: aborts on exhaustion.
    ///
    /// # Safety
    ///
    /// Always safe to call; the result is released with the matching
    /// `delete`.
    #[no_mangle]
    pub unsafe extern "C" fn _Znwm(size: usize) -> *mut c_void {
        new_or_abort(size, 0)
    }

    /// `operator new[](size_t)`: aborts on exhaustion.
    ///
    /// # Safety
    ///
    /// Always safe to call; the result is released with the matching
    /// `delete`.
    #[no_mangle]
    pub unsafe extern "C" fn _Znam(size: usize) -> *mut c_void {
        new_or_abort(size, 0)
    }

    /// `operator new(size_t, std::align_val_t)`: aborts on exhaustion or a
    /// bad alignment.
    ///
    /// # Safety
    ///
    /// Always safe to call; the result is released with the matching
    /// `delete`.
    #[no_mangle]
    pub unsafe extern "C" fn _ZnwmSt11align_val_t(size: usize, align: AlignVal) -> *mut c_void {
        new_or_abort(size, align.max(1))
    }

    /// `operator new[](size_t, std::align_val_t)`: aborts on exhaustion or
    /// a bad alignment.
    ///
    /// # Safety
    ///
    /// Always safe to call; the result is released with the matching
    /// `delete`.
    #[no_mangle]
    pub unsafe extern "C" fn _ZnamSt11align_val_t(size: usize, align: AlignVal) -> *mut c_void {
        new_or_abort(size, align.max(1))
    }
}

pub use throwing::{_Znam, _ZnamSt11align_val_t, _Znwm, _ZnwmSt11align_val_t};

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
