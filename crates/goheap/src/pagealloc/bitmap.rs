//! Per-chunk bitmaps: which of a chunk's 512 pages are allocated, and which
//! of its free pages have been handed back to the OS (scavenged).
//!
//! Page `i` of a chunk is bit `i % 64` of word `i / 64`, so lower bits are
//! lower addresses. In the allocation bitmap 1 means allocated and 0 free.
//! In the scavenged bitmap 1 means the page's physical memory was released;
//! allocated pages always have a 0 there (allocating a page clears the bit,
//! because the caller is about to touch the memory).

use super::summary::Summary;
use super::CHUNK_PAGES;

/// 64-bit words per chunk bitmap.
const WORDS: usize = CHUNK_PAGES / 64;

/// One bit per page of a chunk.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
#[repr(transparent)]
pub(crate) struct PageBits(pub(crate) [u64; WORDS]);

/// Calls `f(word, mask)` for every word that pages `[i, i + n)` touch, with
/// `mask` selecting the bits of the range inside that word.
#[inline]
fn for_each_word(i: usize, n: usize, mut f: impl FnMut(usize, u64)) {
    debug_assert!(
        n > 0 && i + n <= CHUNK_PAGES,
        "page range {i}+{n} outside a chunk"
    );
    let end = i + n;
    let mut w = i / 64;
    let mut lo = i % 64;
    while w * 64 < end {
        let hi = (end - w * 64).min(64);
        f(w, (u64::MAX >> (64 - (hi - lo))) << lo);
        w += 1;
        lo = 0;
    }
}

/// Bits `[0, n)` set, for `n < 64`.
#[inline]
fn low_bits(n: usize) -> u64 {
    (1u64 << n) - 1
}

/// Bit `i` of the result is set iff bits `i .. i + n` of `x` are all set
/// (`1 <= n <= 64`). Takes O(log n) steps.
#[inline]
fn runs_at_least(mut x: u64, n: usize) -> u64 {
    debug_assert!((1..=64).contains(&n));
    // Invariant: bit i of x says whether the original has `have` ones from i.
    let mut have = 1;
    while have < n && x != 0 {
        let step = have.min(n - have);
        x &= x >> step;
        have += step;
    }
    x
}

/// Sets every bit of each aligned group of `m` bits that has any bit set
/// (`m` a power of two, at most 64). With 1 meaning "unusable", this marks
/// a whole OS page unusable when any runtime page inside it is.
#[inline]
pub(crate) fn fill_groups(x: u64, m: usize) -> u64 {
    debug_assert!(m.is_power_of_two() && m <= 64);
    match m {
        1 => x,
        64 => {
            if x == 0 {
                0
            } else {
                u64::MAX
            }
        }
        _ => {
            // Smear each bit over the m - 1 bits below it, so the lowest bit
            // of a group becomes the OR of the whole group...
            let mut y = x;
            let mut shift = 1;
            while shift < m {
                y |= y >> shift;
                shift <<= 1;
            }
            // ...then copy each group's lowest bit over the group. The
            // products of different groups do not overlap, so no carries.
            let ones = low_bits(m);
            let lowest_of_each_group = u64::MAX / ones;
            (y & lowest_of_each_group).wrapping_mul(ones)
        }
    }
}

impl PageBits {
    /// Whether page `i`'s bit is set.
    #[cfg(test)]
    pub(crate) fn get(&self, i: usize) -> bool {
        self.0[i / 64] >> (i % 64) & 1 != 0
    }

    /// Sets pages `[i, i + n)`.
    #[inline]
    pub(crate) fn set_range(&mut self, i: usize, n: usize) {
        for_each_word(i, n, |w, mask| self.0[w] |= mask);
    }

    /// Clears pages `[i, i + n)`.
    #[inline]
    pub(crate) fn clear_range(&mut self, i: usize, n: usize) {
        for_each_word(i, n, |w, mask| self.0[w] &= !mask);
    }

    /// How many of pages `[i, i + n)` are set.
    #[inline]
    pub(crate) fn count_range(&self, i: usize, n: usize) -> usize {
        let mut count = 0;
        for_each_word(i, n, |w, mask| {
            count += (self.0[w] & mask).count_ones() as usize
        });
        count
    }

    /// How many bits are set.
    pub(crate) fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// Allocation and scavenged bitmaps of one chunk (Go's `pallocData`),
/// 128 bytes.
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
pub(crate) struct ChunkBits {
    /// 1 = allocated, 0 = free.
    pub(crate) alloc: PageBits,
    /// 1 = free and released to the OS.
    pub(crate) scavenged: PageBits,
}

impl ChunkBits {
    /// The free-run summary of the allocation bitmap.
    pub(crate) fn summarize(&self) -> Summary {
        let words = &self.alloc.0;
        // Pass 1: the runs that touch a word boundary, walking up the chunk
        // with `run` counting free pages since the last allocated one.
        let mut start = None;
        let mut max = 0;
        let mut run = 0;
        for &w in words {
            if w == 0 {
                run += 64;
                continue;
            }
            run += w.trailing_zeros() as usize;
            start.get_or_insert(run);
            max = max.max(run);
            run = w.leading_zeros() as usize;
        }
        let Some(start) = start else {
            return Summary::FREE_CHUNK;
        };
        let end = run;
        max = max.max(end);

        // Pass 2: runs strictly inside one word, fenced by allocated pages
        // on both sides, are at most 62 long. Only a run longer than the
        // best so far matters, so test for that directly and then count up.
        if max < 62 {
            for &w in words {
                if w == 0 {
                    continue;
                }
                let fenced =
                    !w & (u64::MAX >> w.leading_zeros()) & (u64::MAX << w.trailing_zeros());
                if fenced == 0 {
                    continue;
                }
                let mut longer = runs_at_least(fenced, max + 1);
                while longer != 0 {
                    max += 1;
                    longer &= longer >> 1;
                }
            }
        }
        Summary::pack(start, max, end)
    }

    /// Finds the lowest run of `npages` free pages starting at or after
    /// page `search_idx`. Returns the run's first page and the first free
    /// page at or after `search_idx` (a new lower bound for later searches).
    pub(crate) fn find(&self, npages: usize, search_idx: usize) -> Option<(usize, usize)> {
        debug_assert!(npages > 0 && search_idx < CHUNK_PAGES);
        if npages <= 64 {
            self.find_small(npages, search_idx)
        } else {
            self.find_large(npages, search_idx)
        }
    }

    /// Allocation word `i`, with pages below `search_idx` treated as
    /// allocated.
    #[inline]
    fn alloc_word_from(&self, i: usize, search_idx: usize) -> u64 {
        let w = self.alloc.0[i];
        if i == search_idx / 64 {
            w | low_bits(search_idx % 64)
        } else {
            w
        }
    }

    /// [`find`](Self::find) for runs of at most 64 pages, which fit inside
    /// one word or straddle exactly one word boundary.
    fn find_small(&self, npages: usize, search_idx: usize) -> Option<(usize, usize)> {
        let mut first_free = None;
        // Free pages at the top of the previous word.
        let mut carry = 0;
        for i in search_idx / 64..WORDS {
            let w = self.alloc_word_from(i, search_idx);
            if w == u64::MAX {
                carry = 0;
                continue;
            }
            let first_free = *first_free.get_or_insert(i * 64 + w.trailing_ones() as usize);
            if carry + w.trailing_zeros() as usize >= npages {
                return Some((i * 64 - carry, first_free));
            }
            let starts = runs_at_least(!w, npages);
            if starts != 0 {
                return Some((i * 64 + starts.trailing_zeros() as usize, first_free));
            }
            carry = w.leading_zeros() as usize;
        }
        None
    }

    /// [`find`](Self::find) for runs of more than 64 pages, which must
    /// begin with the free pages at the top of some word.
    fn find_large(&self, npages: usize, search_idx: usize) -> Option<(usize, usize)> {
        let mut first_free = None;
        let (mut run_start, mut run) = (0, 0);
        for i in search_idx / 64..WORDS {
            let w = self.alloc_word_from(i, search_idx);
            if w == u64::MAX {
                run = 0;
                continue;
            }
            let first_free = *first_free.get_or_insert(i * 64 + w.trailing_ones() as usize);
            if run > 0 {
                let low = w.trailing_zeros() as usize;
                if run + low >= npages {
                    return Some((run_start, first_free));
                }
                if low == 64 {
                    run += 64;
                    continue;
                }
            }
            // The current run (if any) ends here; the next may start with
            // this word's top free pages.
            run = w.leading_zeros() as usize;
            run_start = i * 64 + 64 - run;
        }
        None
    }

    /// Whether pages `[i, i + n)` are all free.
    #[inline]
    pub(crate) fn is_free(&self, i: usize, n: usize) -> bool {
        self.alloc.count_range(i, n) == 0
    }

    /// Marks pages `[i, i + n)` allocated and not scavenged. Returns how
    /// many of them were scavenged.
    #[inline]
    pub(crate) fn alloc_range(&mut self, i: usize, n: usize) -> usize {
        let scavenged = self.scavenged.count_range(i, n);
        self.alloc.set_range(i, n);
        if scavenged != 0 {
            self.scavenged.clear_range(i, n);
        }
        scavenged
    }

    /// Marks pages `[i, i + n)` free, and scavenged if `scavenged` is set
    /// (the caller released their memory).
    #[inline]
    pub(crate) fn free_range(&mut self, i: usize, n: usize, scavenged: bool) {
        debug_assert_eq!(
            self.alloc.count_range(i, n),
            n,
            "freeing free pages {i}+{n}"
        );
        self.alloc.clear_range(i, n);
        if scavenged {
            self.scavenged.set_range(i, n);
        }
    }

    /// Free pages.
    pub(crate) fn free_count(&self) -> usize {
        CHUNK_PAGES - self.alloc.count()
    }

    /// Finds the highest run of free, unscavenged pages that ends at or
    /// below page `top`, counting only whole aligned groups of `min` pages
    /// (`min` is the OS page in runtime pages: a power of two, at most 64).
    /// Returns `(first page, length)`, the length capped at `max` rounded
    /// up to a multiple of `min`; both are multiples of `min`.
    pub(crate) fn find_scavenge_candidate(
        &self,
        top: usize,
        min: usize,
        max: usize,
    ) -> Option<(usize, usize)> {
        debug_assert!(min.is_power_of_two() && min <= 64 && top < CHUNK_PAGES);
        let max = max.max(1).next_multiple_of(min);
        // Bit set = the page is a candidate.
        let candidates = |i: usize| -> u64 {
            let mut unusable = self.alloc.0[i] | self.scavenged.0[i];
            if i == top / 64 && top % 64 != 63 {
                unusable |= u64::MAX << (top % 64 + 1);
            }
            !fill_groups(unusable, min)
        };

        let mut i = top / 64;
        let mut c = candidates(i);
        while c == 0 {
            if i == 0 {
                return None;
            }
            i -= 1;
            c = candidates(i);
        }
        let high = 63 - c.leading_zeros() as usize;
        let end = i * 64 + high + 1;
        // Length of the run of candidates from `high` downwards.
        let mut run = (c << (63 - high)).leading_ones() as usize;
        if run == high + 1 {
            // The run reaches the bottom of this word; follow it down.
            while run < max && i > 0 {
                i -= 1;
                let ones = candidates(i).leading_ones() as usize;
                run += ones;
                if ones < 64 {
                    break;
                }
            }
        }
        let size = run.min(max);
        Some((end - size, size))
    }

    /// Finds the highest aligned group of `group` pages (a multiple of 64
    /// dividing [`CHUNK_PAGES`]) that ends at or below page `top` and whose
    /// pages are all free and unscavenged. Returns its first page.
    pub(crate) fn find_free_unscavenged_group(&self, top: usize, group: usize) -> Option<usize> {
        debug_assert!(group % 64 == 0 && CHUNK_PAGES % group == 0 && top < CHUNK_PAGES);
        let words = group / 64;
        let mut g = (top + 1) / group;
        while g > 0 {
            g -= 1;
            let w = g * words;
            if (w..w + words).all(|i| self.alloc.0[i] | self.scavenged.0[i] == 0) {
                return Some(g * group);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rounds of a randomized test: fewer under Miri, which runs them
    /// thousands of times slower (the tables above still run in full).
    fn miri_scaled(n: usize) -> usize {
        if cfg!(miri) {
            n / 300
        } else {
            n
        }
    }
    use crate::testing::Rng;

    /// A chunk whose allocated pages are the given `(first, count)` ranges.
    fn chunk(alloc: &[(usize, usize)], scav: &[(usize, usize)]) -> ChunkBits {
        let mut c = ChunkBits::default();
        for &(i, n) in alloc {
            c.alloc.set_range(i, n);
        }
        for &(i, n) in scav {
            c.scavenged.set_range(i, n);
        }
        c
    }

    fn bools(bits: &PageBits) -> Vec<bool> {
        (0..CHUNK_PAGES).map(|i| bits.get(i)).collect()
    }

    /// Reference summary of a free-map (true = free).
    fn naive_summary(free: &[bool]) -> (usize, usize, usize) {
        let start = free.iter().take_while(|&&f| f).count();
        let end = free.iter().rev().take_while(|&&f| f).count();
        let (mut max, mut run) = (0, 0);
        for &f in free {
            run = if f { run + 1 } else { 0 };
            max = max.max(run);
        }
        (start, max, end)
    }

    fn naive_find(free: &[bool], npages: usize, from: usize) -> Option<usize> {
        (from..=free.len().saturating_sub(npages)).find(|&i| free[i..i + npages].iter().all(|&f| f))
    }



    /// A random bitmap with runs of varied lengths.
    fn random_bits(rng: &mut Rng) -> PageBits {
        let mut b = PageBits::default();
        let density = rng.below(5);
        let mut i = 0;
        while i < CHUNK_PAGES {
            let n = match rng.below(4) {
                0 => 1,
                1 => 1 + rng.below(8),
                2 => 1 + rng.below(70),
                _ => 1 + rng.below(200),
            }
            .min(CHUNK_PAGES - i);
            if rng.below(5) < density {
                b.set_range(i, n);
            }
            i += n;
        }
        b
    }

    #[test]
    fn range_ops() {
        let mut b = PageBits::default();
        b.set_range(3, 1);
        b.set_range(60, 10);
        b.set_range(128, 256);
        assert_eq!(b.count(), 1 + 10 + 256);
        assert_eq!(b.count_range(0, 64), 5);
        assert_eq!(b.count_range(64, 64), 6);
        assert_eq!(b.count_range(100, 400), 256);
        b.clear_range(62, 200);
        assert_eq!(b.count(), 1 + 2 + (384 - 262));
        assert!(b.get(61) && !b.get(62) && !b.get(261) && b.get(262));
        b.set_range(0, 512);
        assert_eq!(b.0, [u64::MAX; 8]);
        b.clear_range(0, 512);
        assert_eq!(b.0, [0; 8]);
    }

    #[test]
    fn summarize_table() {
        // (allocated ranges, expected (start, max, end))
        type Case = (&'static [(usize, usize)], (usize, usize, usize));
        let cases: &[Case] = &[
            (&[], (512, 512, 512)),
            (&[(0, 512)], (0, 0, 0)),
            (&[(0, 1)], (0, 511, 511)),
            (&[(511, 1)], (511, 511, 0)),
            (&[(0, 10), (500, 12)], (0, 490, 0)),
            (&[(0, 64), (65, 447)], (0, 1, 0)),
            (&[(5, 1), (70, 2), (130, 382)], (5, 64, 0)),
            // A 40-page hole inside word 3 beats every boundary run.
            (&[(0, 200), (240, 272)], (0, 40, 0)),
            (&[(0, 300), (301, 1), (303, 1), (306, 206)], (0, 2, 0)),
            (&[(10, 1), (12, 500)], (10, 10, 0)),
        ];
        for (alloc, want) in cases {
            assert_eq!(chunk(alloc, &[]).summarize().unpack(), *want, "{alloc:?}");
        }
    }

    #[test]
    fn summarize_matches_reference() {
        let mut rng = Rng(0x9e3779b97f4a7c15);
        for _ in 0..miri_scaled(5000) {
            let c = ChunkBits {
                alloc: random_bits(&mut rng),
                scavenged: PageBits::default(),
            };
            let free: Vec<bool> = bools(&c.alloc).iter().map(|a| !a).collect();
            assert_eq!(
                c.summarize().unpack(),
                naive_summary(&free),
                "{:x?}",
                c.alloc.0
            );
        }
    }

    #[test]
    fn find_table() {
        // (allocated ranges, npages, search_idx, expected (start, first free))
        type Case = (
            &'static [(usize, usize)],
            usize,
            usize,
            Option<(usize, usize)>,
        );
        let cases: &[Case] = &[
            (&[], 1, 0, Some((0, 0))),
            (&[], 512, 0, Some((0, 0))),
            (&[(0, 512)], 1, 0, None),
            (&[(0, 1)], 511, 0, Some((1, 1))),
            (&[(0, 1)], 512, 0, None),
            (&[(0, 63)], 2, 0, Some((63, 63))),
            (&[(0, 63), (65, 447)], 2, 0, Some((63, 63))),
            (&[(0, 63), (65, 447)], 3, 0, None),
            (&[(0, 10), (12, 20), (40, 472)], 8, 0, Some((32, 10))),
            (&[(0, 100), (164, 348)], 64, 0, Some((100, 100))),
            (&[(0, 100), (164, 348)], 65, 0, None),
            (&[(0, 100), (300, 212)], 130, 0, Some((100, 100))),
            (&[(0, 100), (300, 212)], 200, 0, Some((100, 100))),
            (&[(0, 100), (300, 212)], 201, 0, None),
            (&[(1, 10)], 1, 0, Some((0, 0))),
            (&[(1, 10)], 2, 0, Some((11, 0))),
            // search_idx hides the free page 0.
            (&[(1, 10)], 1, 5, Some((11, 11))),
            (&[(1, 10)], 100, 11, Some((11, 11))),
        ];
        for &(alloc, npages, from, want) in cases {
            assert_eq!(
                chunk(alloc, &[]).find(npages, from),
                want,
                "{alloc:?} n={npages} from={from}"
            );
        }
    }

    #[test]
    fn find_matches_reference() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for _ in 0..miri_scaled(3000) {
            let c = ChunkBits {
                alloc: random_bits(&mut rng),
                scavenged: PageBits::default(),
            };
            let free: Vec<bool> = bools(&c.alloc).iter().map(|a| !a).collect();
            for &npages in &[1, 2, 3, 7, 31, 64, 65, 100, 200, 400, 512] {
                let from = if rng.below(2) == 0 {
                    0
                } else {
                    rng.below(CHUNK_PAGES)
                };
                // The allocator only searches from a true lower bound.
                let from = free.iter().position(|&f| f).map_or(from, |ff| from.min(ff));
                let got = c.find(npages, from);
                assert_eq!(
                    got.map(|g| g.0),
                    naive_find(&free, npages, from),
                    "n={npages} {:x?}",
                    c.alloc.0
                );
                if let Some((_, ff)) = got {
                    assert_eq!(Some(ff), (from..CHUNK_PAGES).find(|&i| free[i]));
                }
            }
        }
    }

    #[test]
    fn runs_and_groups() {
        assert_eq!(runs_at_least(0b0111_0110, 1), 0b0111_0110);
        assert_eq!(runs_at_least(0b0111_0110, 2), 0b0011_0010);
        assert_eq!(runs_at_least(0b0111_0110, 3), 0b0001_0000);
        assert_eq!(runs_at_least(0b0111_0110, 4), 0);
        assert_eq!(runs_at_least(u64::MAX, 64), 1);
        assert_eq!(fill_groups(0x0100a3, 8), 0xff00ff);
        assert_eq!(fill_groups(0x0100a3, 1), 0x0100a3);
        assert_eq!(fill_groups(0b1000_0010, 2), 0b1100_0011);
        assert_eq!(fill_groups(1 << 63, 32), 0xffff_ffff_0000_0000);
        assert_eq!(fill_groups(1 << 40, 64), u64::MAX);
        let mut rng = Rng(77);
        for _ in 0..miri_scaled(2000) {
            let x = rng.next() & rng.next() & rng.next();
            for m in [1, 2, 4, 8, 16, 32, 64] {
                let want = (0..64 / m).fold(0u64, |acc, g| {
                    let group = if m == 64 {
                        u64::MAX
                    } else {
                        low_bits(m) << (g * m)
                    };
                    if x & group != 0 {
                        acc | group
                    } else {
                        acc
                    }
                });
                assert_eq!(fill_groups(x, m), want, "x={x:x} m={m}");
            }
        }
    }

    #[test]
    fn scavenge_candidate_table() {
        // (alloc, scavenged, top, min, max, expected)
        type Case = (
            &'static [(usize, usize)],
            &'static [(usize, usize)],
            usize,
            usize,
            usize,
            Option<(usize, usize)>,
        );
        let cases: &[Case] = &[
            (&[], &[], 511, 1, 512, Some((0, 512))),
            (&[], &[], 511, 1, 10, Some((502, 10))),
            (&[], &[(0, 512)], 511, 1, 512, None),
            (&[(0, 512)], &[], 511, 1, 512, None),
            (&[(500, 12)], &[(0, 100)], 511, 1, 1000, Some((100, 400))),
            (&[(500, 12)], &[(0, 100)], 299, 1, 1000, Some((100, 200))),
            (&[(0, 1)], &[(511, 1)], 511, 1, 512, Some((1, 510))),
            // min 4: pages 1..4 share an OS page with the allocated page 0.
            (&[(0, 1)], &[(511, 1)], 511, 4, 512, Some((4, 504))),
            (&[(0, 1)], &[], 511, 4, 3, Some((508, 4))),
            (
                &[(0, 1), (5, 1)],
                &[(300, 212)],
                511,
                8,
                512,
                Some((8, 288)),
            ),
            // top in the middle of a group excludes the whole group.
            (&[], &[], 13, 8, 512, Some((0, 8))),
            (&[], &[], 63, 64, 512, Some((0, 64))),
            (&[], &[], 62, 64, 512, None),
            (&[(70, 1)], &[], 511, 64, 512, Some((128, 384))),
        ];
        for &(alloc, scav, top, min, max, want) in cases {
            assert_eq!(
                chunk(alloc, scav).find_scavenge_candidate(top, min, max),
                want,
                "{alloc:?} {scav:?} top={top} min={min} max={max}"
            );
        }
    }

    #[test]
    fn scavenge_candidate_matches_reference() {
        let mut rng = Rng(0xfeed_beef);
        for _ in 0..miri_scaled(3000) {
            let alloc = random_bits(&mut rng);
            let mut scavenged = random_bits(&mut rng);
            for w in 0..WORDS {
                scavenged.0[w] &= !alloc.0[w];
            }
            let c = ChunkBits { alloc, scavenged };
            let top = rng.below(CHUNK_PAGES);
            let max = 1 + rng.below(600);
            for min in [1usize, 2, 8, 64] {
                let cand: Vec<bool> = (0..CHUNK_PAGES)
                    .map(|i| {
                        let g = i / min * min;
                        (g..g + min).all(|p| p <= top && !alloc.get(p) && !scavenged.get(p))
                    })
                    .collect();
                let want = cand.iter().rposition(|&x| x).map(|last| {
                    let end = last + 1;
                    let run = cand[..end].iter().rev().take_while(|&&x| x).count();
                    let size = run.min(max.next_multiple_of(min));
                    (end - size, size)
                });
                assert_eq!(
                    c.find_scavenge_candidate(top, min, max),
                    want,
                    "top={top} min={min} max={max}"
                );
            }
        }
    }
}
