//! The sampled allocation's call stack, from libgcc's unwinder
//! (`_Unwind_Backtrace`), which every Rust program and `libgoheap.so`
//! link already (Rust's `std` needs it for panics).
//!
//! Why this unwinder: it reads the DWARF call frame information
//! (`.eh_frame`) that compilers emit by default on x86-64 and aarch64,
//! so it needs no frame pointers (most C programs and Rust release builds
//! have none); it takes no lock and does not allocate on glibc 2.35 and
//! later (it finds a PC's unwind table with `_dl_find_object`). Walking
//! frame pointers would cost less per frame but give garbage or one frame
//! on such programs. A frame without unwind information (hand-written
//! assembly without CFI, JIT code) ends the stack there.

#[cfg(not(miri))]
use core::ffi::{c_int, c_void};

/// `_Unwind_Reason_Code` values used here.
#[cfg(not(miri))]
const URC_NO_REASON: c_int = 0;
#[cfg(not(miri))]
const URC_NORMAL_STOP: c_int = 4;

#[cfg(not(miri))]
extern "C" {
    fn _Unwind_Backtrace(
        trace: extern "C" fn(ctx: *mut c_void, arg: *mut c_void) -> c_int,
        arg: *mut c_void,
    ) -> c_int;
    fn _Unwind_GetIP(ctx: *mut c_void) -> usize;
}

/// Frames of goheap's own the walk starts with: this module's
/// [`capture`] and the `sample_*` function calling it, both never
/// inlined. (The allocator's entry points, `malloc` or `__rust_alloc`,
/// stay: readers drop them by name, see `pprof`'s `drop_frames`.)
#[cfg(not(miri))]
const SKIP: usize = 2;

#[cfg(not(miri))]
struct Walk<'a> {
    out: &'a mut [usize],
    n: usize,
    skip: usize,
}

#[cfg(not(miri))]
extern "C" fn step(ctx: *mut c_void, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Walk` that `capture` passed, alive for the
    // whole walk; `ctx` is the unwinder's context for this frame.
    let (w, ip) = unsafe { (&mut *arg.cast::<Walk<'_>>(), _Unwind_GetIP(ctx)) };
    if ip == 0 {
        return URC_NORMAL_STOP;
    }
    if w.skip > 0 {
        w.skip -= 1;
        return URC_NO_REASON;
    }
    // A return address: the call is the instruction before it, which is
    // what a symbolizer must look up (pprof's convention).
    w.out[w.n] = ip - 1;
    w.n += 1;
    if w.n == w.out.len() {
        URC_NORMAL_STOP
    } else {
        URC_NO_REASON
    }
}

/// Fills `out` with the caller's stack, innermost first, call-site
/// addresses (return address − 1); returns the frame count.
#[inline(never)]
#[cfg(not(miri))]
pub(super) fn capture(out: &mut [usize]) -> usize {
    let mut w = Walk { out, n: 0, skip: SKIP };
    // SAFETY: `step` matches the callback type, and `w` outlives the walk.
    unsafe { _Unwind_Backtrace(step, (&mut w as *mut Walk<'_>).cast()) };
    w.n
}

/// Miri has no unwinder to call: no frames (profiling is off under it).
#[cfg(miri)]
pub(super) fn capture(_out: &mut [usize]) -> usize {
    0
}
