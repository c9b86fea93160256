//! Helpers shared by the integration tests.
#![allow(dead_code)]

/// A tiny seedable generator (splitmix64): deterministic, no dependencies.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// A generator seeded with `seed` (any value, zero included).
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits (splitmix64).
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A number in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True `percent` times in a hundred.
    pub(crate) fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

pub(crate) mod pprof;

/// The heap's memory classes of `m`, which partition `MemStats::heap_sys`.
pub(crate) fn heap_classes(m: &goheap::Metrics) -> u64 {
    m.heap_objects + m.heap_unused + m.heap_collected + m.heap_free + m.heap_released
}

/// Every memory class of `m`, which partition `m.total`.
pub(crate) fn all_classes(m: &goheap::Metrics) -> u64 {
    heap_classes(m)
        + m.metadata_mspan_inuse
        + m.metadata_mspan_free
        + m.metadata_mcache_inuse
        + m.metadata_mcache_free
        + m.metadata_other
}
