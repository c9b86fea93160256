//! An asymmetric handshake between the owner of some thread-private state
//! and a rare claimer that needs that state for a moment (Dekker's mutual
//! exclusion with the cost moved to the claimer).
//!
//! The owner brackets every use of its state with [`Handshake::enter`] and
//! [`Handshake::exit`]: two plain stores and one load, no lock and no
//! read-modify-write atomic. A claimer (the idle-cache reclaimer, the
//! exact double-free check, the heap checker) raises `claim`, issues one
//! [`heavy_barrier`] for any number of handshakes, and then reads `busy`:
//!
//! ```text
//! owner                          claimer
//! busy = true      (Relaxed)     claim = true     (Relaxed)
//! light fence                    heavy barrier
//! read claim       (Acquire)     read busy        (Acquire)
//! ... use state ...              busy false: use the state, then
//! busy = false     (Release)     claim = false    (Release)
//! ```
//!
//! The two fences make the pattern store-then-load on both sides, so at
//! least one side sees the other's store: either the owner sees `claim`
//! and steps back (it clears `busy` and waits for `claim` to drop), or the
//! claimer sees `busy` and leaves the state alone (or waits, see
//! [`Handshake::wait_idle`]). The Release store of `busy = false` and the
//! claimer's Acquire read of it carry the owner's writes to the claimer;
//! the claimer's Release store of `claim = false` and the owner's Acquire
//! read carry the claimer's writes back.
//!
//! # Which fences
//!
//! With `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` (Linux 4.14+, the
//! default [`Mode::Membarrier`]) the owner's light fence is only a
//! compiler fence: the system call makes every running thread of the
//! process execute a full memory barrier, which is what the owner's fence
//! would have done (the technique of liburcu and Folly's
//! `asymmetricHeavyBarrier`). Where `membarrier` is missing or refused
//! (old kernels, seccomp filters, gVisor), [`Mode::Fence`] makes both
//! fences `fence(SeqCst)`: correct under the Rust memory model alone, at
//! the cost of one full fence per owner operation. The mode is chosen once
//! at process start ([`init`]), before any owner exists.
//!
//! Under loom (`--cfg goheap_loom`) both fences are `fence(SeqCst)`, which
//! is exactly what the membarrier guarantees, so `tests/loom.rs` checks
//! this code itself.

use super::atomic::{fence, AtomicBool, AtomicU8, Ordering};

/// How the heavy side orders itself against every owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Not chosen yet: behaves as [`Mode::Fence`].
    Unset = 0,
    /// `membarrier(PRIVATE_EXPEDITED)`; owners use compiler fences only.
    Membarrier = 1,
    /// `fence(SeqCst)` on both sides.
    Fence = 2,
}

#[cfg(not(goheap_loom))]
static MODE: AtomicU8 = AtomicU8::new(Mode::Unset as u8);

/// The mode in force.
#[cfg(not(goheap_loom))]
pub fn mode() -> Mode {
    match MODE.load(Ordering::Relaxed) {
        1 => Mode::Membarrier,
        2 => Mode::Fence,
        _ => Mode::Unset,
    }
}

/// Chooses the mode: `membarrier` if `want_membarrier` and the kernel
/// registers this process for it, else fences. Must run before any owner
/// calls [`Handshake::enter`] (owners that run before it use fences, which
/// is always correct). Returns the mode chosen.
#[cfg(not(goheap_loom))]
pub fn init(want_membarrier: bool) -> Mode {
    let m = if want_membarrier && membarrier::register() {
        Mode::Membarrier
    } else {
        Mode::Fence
    };
    MODE.store(m as u8, Ordering::Relaxed);
    m
}

/// The owner's fence between its store of `busy` and its load of `claim`:
/// a full fence unless `membarrier` stands in for it (`fenced` false).
#[inline(always)]
fn light_fence(fenced: bool) {
    #[cfg(goheap_loom)]
    {
        let _ = fenced;
        fence(Ordering::SeqCst);
    }
    #[cfg(not(goheap_loom))]
    if fenced {
        fence(Ordering::SeqCst);
    } else {
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
    }
}

/// The claimer's barrier between raising `claim` on any number of
/// handshakes and reading their `busy` flags. Returns false if it could
/// not be issued (the membarrier call failed): the claimer must then not
/// read `busy`, only drop its claims.
pub fn heavy_barrier() -> bool {
    #[cfg(goheap_loom)]
    {
        fence(Ordering::SeqCst);
        true
    }
    #[cfg(not(goheap_loom))]
    {
        if MODE.load(Ordering::Relaxed) == Mode::Membarrier as u8 {
            // The claimer's own store must be ordered before the barrier
            // other threads execute.
            fence(Ordering::SeqCst);
            membarrier::expedited()
        } else {
            fence(Ordering::SeqCst);
            true
        }
    }
}

/// One owner's side of the handshake.
#[derive(Debug)]
pub struct Handshake {
    /// The owner is inside an operation. Written only by the owner.
    busy: AtomicBool,
    /// Bit [`CLAIM`]: a claimer wants, or is using, the owner's state;
    /// written only by claimers, which serialise among themselves (a lock
    /// of the caller's). Bit [`FENCED`]: the owner's fence is a real one
    /// (the mode when the handshake was made, kept here so the owner reads
    /// it from its own hot state), fixed for the handshake's life (the mode
    /// is chosen before any owner exists; a handshake made earlier fences,
    /// which is always correct). One byte, so the owner's fast path tests
    /// both with one load: zero means "no fence needed, not claimed".
    gate: AtomicU8,
}

/// [`Handshake::gate`]'s claim bit.
const CLAIM: u8 = 1;
/// [`Handshake::gate`]'s fixed "the owner fences" bit.
const FENCED: u8 = 2;
/// [`Handshake::gate`]'s fixed "no owner" bit: the handshake of a state
/// nobody owns (a placeholder many threads point at), whose claim never
/// drops. Its owners' [`try_enter`](Handshake::try_enter) always fails, and
/// they must test [`is_placeholder`](Handshake::is_placeholder) before
/// anything that waits for the claim.
const NO_OWNER: u8 = 4;

impl Default for Handshake {
    fn default() -> Self {
        Self::new()
    }
}

impl Handshake {
    /// Neither busy nor claimed, with the owner's fence the current mode
    /// asks for.
    #[cfg(not(goheap_loom))]
    pub fn new() -> Self {
        let fenced = MODE.load(Ordering::Relaxed) != Mode::Membarrier as u8;
        Handshake {
            busy: AtomicBool::new(false),
            gate: AtomicU8::new(if fenced { FENCED } else { 0 }),
        }
    }

    /// Neither busy nor claimed, with a real owner fence (for handshakes
    /// built in constant context, before the mode can be known).
    #[cfg(not(goheap_loom))]
    pub const fn new_fenced() -> Self {
        Handshake {
            busy: AtomicBool::new(false),
            gate: AtomicU8::new(FENCED),
        }
    }

    /// The handshake of a placeholder (its gate bit `NO_OWNER`): claimed for
    /// good, so every `try_enter` fails, and never claimed by anyone, so
    /// the concurrent `busy` stores of the threads that try are harmless.
    #[cfg(not(goheap_loom))]
    pub const fn placeholder() -> Self {
        Handshake {
            busy: AtomicBool::new(false),
            gate: AtomicU8::new(NO_OWNER | FENCED | CLAIM),
        }
    }

    /// Whether this is a placeholder's handshake, which never admits its
    /// owner ([`placeholder`](Self::placeholder)).
    #[inline(always)]
    pub fn is_placeholder(&self) -> bool {
        self.gate.load(Ordering::Relaxed) & NO_OWNER != 0
    }

    /// Neither busy nor claimed.
    #[cfg(goheap_loom)]
    pub fn new() -> Self {
        Handshake {
            busy: AtomicBool::new(false),
            gate: AtomicU8::new(FENCED),
        }
    }

    /// Owner: starts an operation on the state, first waiting out a
    /// claimer that holds it.
    #[inline(always)]
    pub fn enter(&self) {
        if !self.try_enter() {
            self.enter_gated();
        }
    }

    /// [`enter`](Self::enter) once the gate was found non-zero (busy is
    /// set): the fence, if this handshake's mode needs one, then the claim
    /// read that counts.
    #[cold]
    #[inline(never)]
    fn enter_gated(&self) {
        light_fence(self.fenced());
        if self.claimed(Ordering::Acquire) {
            self.enter_contended();
        }
    }

    /// Whether the owner's fence is a real one.
    #[inline(always)]
    fn fenced(&self) -> bool {
        self.gate.load(Ordering::Relaxed) & FENCED != 0
    }

    /// Whether the claim bit is set, read with `order`.
    #[inline(always)]
    fn claimed(&self, order: Ordering) -> bool {
        self.gate.load(order) & CLAIM != 0
    }

    /// Owner: starts an operation if no claimer holds the state and no
    /// fence is needed (one load of the gate); on `false` the owner is
    /// marked busy and must go on with [`enter`](Self::enter) (which
    /// fences, or steps back and waits) before touching the state. The
    /// fast paths use this to leave those cases to an out-of-line
    /// function, and `enter` is this plus that function. (In the fenced
    /// mode every operation takes that path.)
    #[inline(always)]
    pub fn try_enter(&self) -> bool {
        self.busy.store(true, Ordering::Relaxed);
        // Without the fence bit the claimer's barrier stands in for a
        // fence here; with it, this load only sends us to `enter`, which
        // fences before the load that counts.
        light_fence(false);
        self.gate.load(Ordering::Acquire) == 0
    }

    /// Owner: ends the operation; its writes become visible to the next
    /// claimer that reads `busy` as false.
    #[inline(always)]
    pub fn exit(&self) {
        self.busy.store(false, Ordering::Release);
    }

    /// Owner, claimed: steps back (`busy` false, so a claimer waiting for
    /// it can go on), waits for the claim to drop, and tries again.
    #[cold]
    #[inline(never)]
    fn enter_contended(&self) {
        loop {
            self.busy.store(false, Ordering::Release);
            while self.claimed(Ordering::Acquire) {
                super::spin_hint_or_yield();
            }
            self.busy.store(true, Ordering::Relaxed);
            light_fence(self.fenced());
            if !self.claimed(Ordering::Acquire) {
                return;
            }
        }
    }

    /// Claimer: raises the claim. Then [`heavy_barrier`] (once for all the
    /// handshakes claimed), then [`is_busy`](Self::is_busy) or
    /// [`wait_idle`](Self::wait_idle), then [`release`](Self::release).
    pub fn request(&self) {
        // The fence bit never changes, so a store keeps it.
        let fenced = self.gate.load(Ordering::Relaxed) & FENCED;
        self.gate.store(fenced | CLAIM, Ordering::Relaxed);
    }

    /// Claimer, after the barrier: whether the owner is inside an
    /// operation. False means the state is the claimer's until
    /// [`release`](Self::release), with every write the owner made before
    /// visible.
    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// Claimer, after the barrier: waits until the owner is outside any
    /// operation (it finishes the one it is in, or steps back), after which
    /// the state is the claimer's until [`release`](Self::release). The
    /// owner must not be able to block inside an operation on anything the
    /// claimer holds.
    pub fn wait_idle(&self) {
        while self.is_busy() {
            super::spin_hint_or_yield();
        }
    }

    /// Claimer: drops the claim, publishing the claimer's writes to the
    /// owner.
    pub fn release(&self) {
        let fenced = self.gate.load(Ordering::Relaxed) & FENCED;
        self.gate.store(fenced, Ordering::Release);
    }

    /// Whether a claim is raised (statistics and the fork handler).
    pub fn is_claimed(&self) -> bool {
        self.claimed(Ordering::Relaxed)
    }
}

#[cfg(all(target_os = "linux", not(goheap_loom)))]
mod membarrier {
    const CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
    const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

    fn call(cmd: libc::c_int) -> bool {
        // SAFETY: the membarrier system call takes plain integers and
        // touches no memory of ours.
        unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0, 0) == 0 }
    }

    pub(super) fn register() -> bool {
        call(CMD_REGISTER_PRIVATE_EXPEDITED)
    }

    pub(super) fn expedited() -> bool {
        call(CMD_PRIVATE_EXPEDITED)
    }
}

#[cfg(all(not(target_os = "linux"), not(goheap_loom)))]
mod membarrier {
    pub(super) fn register() -> bool {
        false
    }

    pub(super) fn expedited() -> bool {
        false
    }
}
