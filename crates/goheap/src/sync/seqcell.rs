//! A few words that writers replace together and readers read together,
//! without a lock: a sequence lock whose writers never wait. A writer
//! that finds another one writing gives up (the value is a cache entry:
//! losing one write costs a recomputation later); a reader that overlaps
//! a write gets nothing rather than a mix of two values.
//!
//! ```text
//! writer                               reader
//! seq: even s → s+1 (CAS, Acquire;     s1 = seq         (Acquire)
//!      fails: give up)                 words            (Relaxed)
//! Release fence                        Acquire fence
//! words            (Relaxed)           s2 = seq         (Relaxed)
//! seq = s+2        (Release)           odd s1, or s1 ≠ s2: nothing
//! ```
//!
//! The reader's fence orders its word loads before its second look at
//! `seq`, and the writer's fence orders its first bump before its word
//! stores: a reader that saw any word of a write in progress sees `seq`
//! changed. The writer's CAS acquires the previous writer's final store,
//! so one write's words all come after the last one's (with a relaxed
//! CAS, loom found two writers' words interleaved in the cell's final
//! value) (Boehm, "Can seqlocks get along with programming language
//! memory models?", 2012).

use super::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// `N` words, read and written as one value.
pub struct SeqCell<const N: usize> {
    /// Even: stable; odd: a write is in progress. Bumped twice per write.
    seq: AtomicU32,
    /// Written only by the writer that made `seq` odd.
    words: [AtomicU64; N],
}

impl<const N: usize> SeqCell<N> {
    /// A cell holding zeros.
    #[cfg(not(goheap_loom))]
    pub const fn new() -> Self {
        Self {
            seq: AtomicU32::new(0),
            words: [const { AtomicU64::new(0) }; N],
        }
    }

    /// A cell holding zeros (loom's atomics have no `const` constructor).
    #[cfg(goheap_loom)]
    pub fn new() -> Self {
        Self {
            seq: AtomicU32::new(0),
            words: core::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// The words as one writer left them, or `None` if a write overlapped
    /// the read.
    #[inline]
    pub fn read(&self) -> Option<[u64; N]> {
        let s1 = self.seq.load(Ordering::Acquire);
        if s1 & 1 != 0 {
            return None;
        }
        let mut out = [0; N];
        for (o, w) in out.iter_mut().zip(&self.words) {
            *o = w.load(Ordering::Relaxed);
        }
        fence(Ordering::Acquire);
        (self.seq.load(Ordering::Relaxed) == s1).then_some(out)
    }

    /// Replaces the words with `value`; false (nothing written) if another
    /// write was in progress.
    pub fn try_write(&self, value: [u64; N]) -> bool {
        let s = self.seq.load(Ordering::Relaxed);
        if s & 1 != 0
            || self
                .seq
                .compare_exchange(s, s.wrapping_add(1), Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        fence(Ordering::Release);
        for (w, v) in self.words.iter().zip(value) {
            w.store(v, Ordering::Relaxed);
        }
        self.seq.store(s.wrapping_add(2), Ordering::Release);
        true
    }
}

#[cfg(not(goheap_loom))]
impl<const N: usize> Default for SeqCell<N> {
    fn default() -> Self {
        Self::new()
    }
}
