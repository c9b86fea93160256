//! Deterministic allocation workloads for comparing goheap with other
//! allocators.
//!
//! Every workload is a plain function `fn(scale: f64) -> u64`. It allocates
//! through whatever `#[global_allocator]` the running binary has, and returns
//! a checksum computed from the data it allocated (lengths, capacities and
//! bytes read back from the blocks, never addresses). The checksum is the same
//! under every allocator and every thread interleaving, so a run whose
//! checksum differs from the others has had its memory corrupted.
//!
//! `scale` multiplies the amount of work: `1.0` is the benchmark size (about
//! 0.2 to 0.8 s under the system allocator on a 2-core machine), `0.1` is the
//! quick smoke-test size, and tests use about `0.002`.
//!
//! Randomness comes from a small built-in PRNG ([`Rng`]) with fixed seeds, so
//! every run of a workload does exactly the same allocations.
//!
//! ```
//! let w = goheap_workloads::find("churn").unwrap();
//! assert_eq!((w.run)(0.001), (w.run)(0.001));
//! ```

mod bintree;
mod bursty;
mod churn;
mod large;
mod maps;
mod prodcons;
mod realloc;
mod threads;

/// One benchmark workload.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Short name, used on command lines and in reports.
    pub name: &'static str,
    /// Threads it runs at once (besides the idle main thread).
    pub threads: usize,
    /// One line: what it does and what it stresses.
    pub about: &'static str,
    /// Runs the workload at `scale` and returns its checksum.
    pub run: fn(scale: f64) -> u64,
}

/// The default suite, run by `goheap bench`, in report order.
pub static WORKLOADS: &[Workload] = &[
    Workload {
        name: "churn",
        threads: 1,
        about: "random small sizes 8 B-1 KiB, random frees over a 20k-object working set",
        run: churn::churn,
    },
    Workload {
        name: "realloc",
        threads: 1,
        about: "String growth by push_str and Vec growth by reserve_exact: realloc on nearly every step",
        run: realloc::realloc,
    },
    Workload {
        name: "btreemap",
        threads: 1,
        about: "BTreeMap<String, u64>: build, sliding-window insert/lookup/remove, drop",
        run: maps::btreemap,
    },
    Workload {
        name: "hashmap",
        threads: 1,
        about: "HashMap<String, u64>: build (table regrowth), sliding-window insert/lookup/remove, drop",
        run: maps::hashmap,
    },
    Workload {
        name: "maprebuild",
        threads: 1,
        about: "HashMap<String, Vec<u8>> of 100k entries (1-200 B values) built from empty and dropped, 8 times",
        run: maps::maprebuild,
    },
    Workload {
        name: "prodcons",
        threads: 4,
        about: "2 producers allocate, 2 consumers free: every free is a remote free",
        run: prodcons::prodcons,
    },
    Workload {
        name: "threads8",
        threads: 8,
        about: "8 threads churning small objects independently (thread-cache scaling, contention)",
        run: threads::threads8,
    },
    Workload {
        name: "threadchurn",
        threads: 2,
        about: "short-lived threads: each frees objects of a dead predecessor and hands its own on",
        run: threads::threadchurn,
    },
    Workload {
        name: "large",
        threads: 1,
        about: "blocks of 64 KiB-4 MiB, each touched page by page, 6 live at a time",
        run: large::large,
    },
    Workload {
        name: "zeroed",
        threads: 1,
        about: "vec![0u8; n] of 64 KiB-4 MiB (uniform), one byte written, 32 live: big zeroed buffers used sparsely",
        run: large::zeroed,
    },
    Workload {
        name: "bintree",
        threads: 1,
        about: "benchmarks-game binary-trees, depth 17: millions of 16-byte Boxes",
        run: bintree::bintree,
    },
];

/// Workloads outside the default suite, each run by a command of its own
/// rather than by `goheap bench`.
pub static STANDALONE: &[Workload] = &[
    Workload {
        name: "bursty",
        threads: 4,
        about: "bursty server: 3 × (1.5 s load up to 300 MB live, 2 s idle keeping 8 MB); prints RSS every 10 ms (goheap rss)",
        run: bursty::bursty,
    },
    Workload {
        name: "pair",
        threads: 1,
        about: "10^6 × scale alloc+free pairs of an 8-byte Box: the fast path alone, for instruction counts (valgrind --tool=callgrind)",
        run: pair,
    },
];

/// `pair`: one small allocation and its free, over and over.
fn pair(scale: f64) -> u64 {
    let mut ck = Checksum::new();
    for i in 0..scaled(1_000_000, scale) as u64 {
        let b = std::hint::black_box(Box::new(i));
        ck.add(*b);
    }
    ck.value()
}

/// The workload called `name`, in [`WORKLOADS`] or [`STANDALONE`].
pub fn find(name: &str) -> Option<&'static Workload> {
    WORKLOADS.iter().chain(STANDALONE).find(|w| w.name == name)
}

/// `base` scaled by `scale`, at least 1.
pub fn scaled(base: usize, scale: f64) -> usize {
    ((base as f64 * scale).round() as usize).max(1)
}

/// The SplitMix64 finaliser: a strong 64-bit mixing function.
#[inline]
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small, fast, deterministic PRNG (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose sequence depends only on `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(mix(seed ^ 0x676f_6865_6170))
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`), by multiply-shift.
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// A number in `lo..=hi`.
    #[inline]
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// A size in `lo..=hi` with a roughly log-uniform distribution: as many
    /// sizes in 16-32 as in 512-1024, like real programs.
    #[inline]
    pub fn log_size(&mut self, lo: usize, hi: usize) -> usize {
        let lo_bits = usize::BITS - lo.max(1).leading_zeros() - 1;
        let hi_bits = usize::BITS - hi.leading_zeros() - 1;
        let bits = lo_bits as usize + self.below((hi_bits - lo_bits) as usize + 1);
        let base = 1usize << bits;
        (base + self.below(base)).clamp(lo, hi)
    }
}

/// An order-dependent running checksum.
#[derive(Debug, Clone, Copy, Default)]
pub struct Checksum(u64);

impl Checksum {
    /// An empty checksum.
    pub fn new() -> Checksum {
        Checksum(0)
    }

    /// Folds `v` in.
    #[inline]
    pub fn add(&mut self, v: u64) {
        self.0 = mix(self.0 ^ v);
    }

    /// The value so far.
    pub fn value(&self) -> u64 {
        self.0
    }
}

/// A digest of a byte block that reads its length and bytes at its start,
/// middle and end (cheap, but sees a block that was overwritten or mixed up
/// with another).
#[inline]
pub fn digest(b: &[u8]) -> u64 {
    match b.len() {
        0 => 0,
        n => (n as u64) ^ (b[0] as u64) << 32 ^ (b[n / 2] as u64) << 40 ^ (b[n - 1] as u64) << 48,
    }
}

/// A block of `size` bytes, all set to a non-zero byte derived from `tag`
/// (non-zero so that it goes through `alloc`, not `alloc_zeroed`).
#[inline]
pub fn filled(size: usize, tag: u64) -> Box<[u8]> {
    vec![(tag as u8) | 1; size].into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut r = Rng::new(1);
        for _ in 0..10_000 {
            assert!(r.below(10) < 10);
            let s = r.range(3, 5);
            assert!((3..=5).contains(&s));
            let s = r.log_size(8, 1024);
            assert!((8..=1024).contains(&s), "{s}");
        }
    }

    #[test]
    fn log_size_covers_both_ends() {
        let mut r = Rng::new(3);
        let sizes: Vec<usize> = (0..10_000).map(|_| r.log_size(8, 1024)).collect();
        assert!(sizes.iter().any(|&s| s < 16));
        assert!(sizes.iter().any(|&s| s > 900));
    }

    #[test]
    fn names_are_unique() {
        let all: Vec<&Workload> = WORKLOADS.iter().chain(STANDALONE).collect();
        for (i, w) in all.iter().enumerate() {
            assert!(all[..i].iter().all(|v| v.name != w.name));
            assert!(std::ptr::eq(find(w.name).unwrap(), *w));
        }
        assert!(find("nope").is_none());
        assert!(WORKLOADS.iter().all(|w| w.name != "bursty"));
    }

    #[test]
    fn every_workload_is_deterministic_at_tiny_scale() {
        for w in WORKLOADS {
            assert_eq!((w.run)(0.001), (w.run)(0.001), "{}", w.name);
        }
    }
}
