//! A cache's countdown to its next heap-profile sample, and the rate it
//! draws its distances at. Below the caches in the crate's layers (a
//! thread cache and a collected-heap cache each hold one); the sampling
//! itself, which needs the caches, is the rest of [`super`].

use crate::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use core::cell::Cell;

/// The profile rate in bytes; 0 = profiling off.
static RATE: AtomicUsize = AtomicUsize::new(0);

/// The countdown a thread gets while profiling is off: it looks at the
/// rate again after this many bytes (a cold call per mebibyte).
pub(crate) const OFF_DISTANCE: isize = 1 << 20;

/// The mean distance in bytes between samples; 0 when profiling is off.
pub(crate) fn profile_rate() -> usize {
    RATE.load(Relaxed)
}

/// Sets the rate; returns the previous one.
pub(super) fn swap_rate(rate: usize) -> usize {
    RATE.swap(rate, Relaxed)
}

/// A cache's countdown to its next sampled allocation (Go's
/// `mcache.nextSample`), with its distance generator and its recursion
/// flag: every thread cache (`ThreadCache::sample`) and every cache of
/// the collected heap (`gcheap::GcCache`) has one. Owner only.
pub(crate) struct Countdown {
    /// Bytes left until the next sampled allocation. Every allocation
    /// subtracts its requested size; below zero, the allocation is
    /// sampled and the next distance drawn. Starts at 0, so the first
    /// allocation draws.
    pub(crate) left: Cell<isize>,
    /// The state of the distance generator (0: not yet seeded).
    rng: Cell<u64>,
    /// Set while the owner records a sample, whose stack walk may allocate:
    /// such allocations are not sampled.
    pub(super) sampling: Cell<bool>,
}

impl Countdown {
    /// A countdown that draws at the first allocation.
    pub(crate) const fn new() -> Self {
        Countdown {
            left: Cell::new(0),
            rng: Cell::new(0),
            sampling: Cell::new(false),
        }
    }

    /// Takes `size` bytes off the distance to the next sample: whether
    /// this allocation is to be sampled (then a `sample_*` function draws
    /// the next distance). A subtraction and a branch.
    #[inline(always)]
    pub(crate) fn due(&self, size: usize) -> bool {
        let left = self.left.get().wrapping_sub(size as isize);
        self.left.set(left);
        left < 0
    }

    /// Draws the next distance at the current rate; returns the rate if
    /// this allocation is to be recorded (profiling on, and the owner not
    /// already recording one), and then raises the recursion flag
    /// ([`end`](Self::end) lowers it).
    ///
    /// A countdown's first expiry at a rate above 1 is not a sample: a new
    /// countdown starts at 0, so its owner's first allocation lands here,
    /// and sampling it would sample the first allocation of every thread,
    /// whatever its size. It only draws the first distance.
    #[inline]
    pub(super) fn begin(&self) -> Option<usize> {
        let rate = RATE.load(Relaxed);
        let first = rate > 1 && self.rng.get() == 0;
        self.left.set(self.next_distance(rate));
        if rate == 0 || self.sampling.get() || first {
            return None;
        }
        self.sampling.set(true);
        Some(rate)
    }

    /// The sample [`begin`](Self::begin) allowed is recorded.
    #[inline]
    pub(super) fn end(&self) {
        self.sampling.set(false);
    }

    /// Draws the next distance at the rate now set (after the rate
    /// changed), so the owner's next allocation is sampled only if the
    /// new rate says so (at rate 1, it is).
    pub(crate) fn restart(&self) {
        self.left.set(self.next_distance(RATE.load(Relaxed)));
    }

    /// The next countdown at `rate`: an exponential draw with mean `rate`
    /// (Go's `nextSample`), 0 at rate 1, [`OFF_DISTANCE`] at 0.
    fn next_distance(&self, rate: usize) -> isize {
        match rate {
            0 => OFF_DISTANCE,
            1 => 0,
            _ => {
                let mut x = self.rng.get();
                if x == 0 {
                    // Seeded per cache: the address and the clock differ
                    // between threads and runs.
                    x = (self as *const Countdown as u64) ^ crate::os::clock_ns(libc::CLOCK_MONOTONIC) ^ 0x9e37_79b9_7f4a_7c15;
                    x |= 1;
                }
                // xorshift64*
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                self.rng.set(x);
                let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
                // Uniform in (0, 1]: never ln(0).
                let u = ((r >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64);
                let d = -u.ln() * rate as f64;
                d.min((isize::MAX / 2) as f64) as isize
            }
        }
    }
}

