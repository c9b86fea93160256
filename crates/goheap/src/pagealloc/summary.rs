//! Free-run summaries and the shape of the radix tree built from them.
//!
//! A [`Summary`] describes a power-of-two-sized, aligned stretch of address
//! space with three counts of free pages: how many at its low end (`start`),
//! the longest run anywhere inside it (`max`) and how many at its high end
//! (`end`). A leaf summarises one chunk's bitmap; every other node merges the
//! 8 nodes below it. Parent and child are never linked by pointers: level
//! `l` is a flat array indexed by `addr >> LEVEL_SHIFT[l]`, so the children
//! of node `i` are the block `i << LEVEL_BITS[l + 1] ..` of level `l + 1`.
//!
//! | level | entries | one entry covers | bytes reserved |
//! | --- | --- | --- | --- |
//! | 0 (root) | 2^14 | 16 GiB (2^21 pages) | 128 KiB |
//! | 1 | 2^17 | 2 GiB | 1 MiB |
//! | 2 | 2^20 | 256 MiB | 8 MiB |
//! | 3 | 2^23 | 32 MiB | 64 MiB |
//! | 4 (leaf) | 2^26 | 4 MiB (one chunk) | 512 MiB |
//!
//! Fan-out 8 keeps each block of siblings in one 64-byte cache line, and
//! makes the root's largest count, 2^21, fit the 21-bit fields exactly.

use super::LOG_CHUNK_PAGES;
use crate::sizeclass::PAGE_SHIFT;

/// Bits of address the page allocator covers: the 48-bit user address
/// space of x86-64 and arm64. Under Miri, which really allocates what is
/// reserved, 40 bits (Miri's addresses are low), so the metadata of the
/// heaps the tests build stays small.
#[cfg(not(miri))]
pub(crate) const HEAP_ADDR_BITS: u32 = 48;
/// (Miri: see above.)
#[cfg(miri)]
pub(crate) const HEAP_ADDR_BITS: u32 = 40;
/// Levels in the radix tree.
pub(crate) const LEVELS: usize = 5;
/// Index of the leaf level.
pub(crate) const LEAF: usize = LEVELS - 1;
/// log2 of the fan-out below the root.
const FANOUT_BITS: u32 = 3;
/// log2 of the bytes one chunk covers.
const LOG_CHUNK_BYTES: u32 = LOG_CHUNK_PAGES + PAGE_SHIFT;
/// log2 of the number of root entries: whatever address bits the lower
/// levels and the chunk do not consume.
const ROOT_BITS: u32 = HEAP_ADDR_BITS - LOG_CHUNK_BYTES - (LEVELS as u32 - 1) * FANOUT_BITS;

/// log2 of how many entries of level `l` share one parent (for the root:
/// the whole level).
pub(crate) const LEVEL_BITS: [u32; LEVELS] = {
    let mut bits = [FANOUT_BITS; LEVELS];
    bits[0] = ROOT_BITS;
    bits
};

/// `addr >> LEVEL_SHIFT[l]` is the index of the level-`l` entry covering
/// `addr`.
pub(crate) const LEVEL_SHIFT: [u32; LEVELS] = {
    let mut shift = [0; LEVELS];
    let mut l = 0;
    while l < LEVELS {
        shift[l] = LOG_CHUNK_BYTES + (LEAF - l) as u32 * FANOUT_BITS;
        l += 1;
    }
    shift
};

/// log2 of the pages one entry of level `l` covers.
pub(crate) const LEVEL_LOG_PAGES: [u32; LEVELS] = {
    let mut log = [0; LEVELS];
    let mut l = 0;
    while l < LEVELS {
        log[l] = LEVEL_SHIFT[l] - PAGE_SHIFT;
        l += 1;
    }
    log
};

/// Entries in level `l`.
pub(crate) const fn level_entries(l: usize) -> usize {
    1 << (HEAP_ADDR_BITS - LEVEL_SHIFT[l])
}

/// Width of each packed field.
const FIELD_BITS: u32 = LEVEL_LOG_PAGES[0];
/// The largest count a summary holds: a root entry that is entirely free.
pub(crate) const MAX_PACKED: usize = 1 << FIELD_BITS;
const FIELD_MASK: u64 = MAX_PACKED as u64 - 1;
/// Set alone when all three counts equal [`MAX_PACKED`], which needs one
/// more bit than a field has.
const ALL_MAX: u64 = 1 << 63;

const _: () = assert!(
    3 * FIELD_BITS < 64,
    "three fields and the flag must fit in a u64"
);
const _: () = assert!(LEVEL_SHIFT[0] + ROOT_BITS == HEAP_ADDR_BITS);
const _: () = assert!(LEVEL_LOG_PAGES[LEAF] == LOG_CHUNK_PAGES);

/// Free-page counts of one node: `start`, `max` and `end`, 21 bits each.
///
/// The zero value means "no free page", which is also what memory the heap
/// never grew into looks like: a searcher never descends into it.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
#[repr(transparent)]
pub(crate) struct Summary(u64);

impl core::fmt::Debug for Summary {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (s, m, e) = self.unpack();
        write!(f, "Summary({s}, {m}, {e})")
    }
}

impl Summary {
    /// No free page at all (or no memory).
    pub(crate) const NONE: Summary = Summary(0);
    /// A chunk with all 512 pages free.
    pub(crate) const FREE_CHUNK: Summary =
        Summary::pack(super::CHUNK_PAGES, super::CHUNK_PAGES, super::CHUNK_PAGES);

    /// Packs three counts, each at most [`MAX_PACKED`]. `max == MAX_PACKED`
    /// implies the node is entirely free, so all three are equal.
    pub(crate) const fn pack(start: usize, max: usize, end: usize) -> Summary {
        debug_assert!(start <= max && end <= max && max <= MAX_PACKED);
        if max == MAX_PACKED {
            return Summary(ALL_MAX);
        }
        Summary(start as u64 | (max as u64) << FIELD_BITS | (end as u64) << (2 * FIELD_BITS))
    }

    /// Longest free run.
    #[inline]
    pub(crate) fn max(self) -> usize {
        self.unpack().1
    }

    /// True if the node has no free page.
    #[inline]
    pub(crate) fn is_none(self) -> bool {
        self.0 == 0
    }

    /// `(start, max, end)`.
    #[inline]
    pub(crate) fn unpack(self) -> (usize, usize, usize) {
        if self.0 & ALL_MAX != 0 {
            return (MAX_PACKED, MAX_PACKED, MAX_PACKED);
        }
        let field = |shift: u32| ((self.0 >> shift) & FIELD_MASK) as usize;
        (field(0), field(FIELD_BITS), field(2 * FIELD_BITS))
    }

    /// The summary of consecutive siblings, each covering `1 << log_pages`
    /// pages, laid end to end in address order.
    pub(crate) fn merge(children: &[Summary], log_pages: u32) -> Summary {
        let width = 1usize << log_pages;
        let (mut start, mut max, mut end) = children[0].unpack();
        // Invariant: (start, max, end) summarise children[..i], which cover
        // i * width pages.
        for (i, child) in children.iter().enumerate().skip(1) {
            let (cs, cm, ce) = child.unpack();
            // The low-end run only grows while everything so far is free.
            if start == i * width {
                start += cs;
            }
            // A run may straddle the boundary between the prefix and child.
            max = max.max(end + cs).max(cm);
            // The high-end run continues through a child only if the child
            // is free from one end to the other.
            end = if ce == width { end + width } else { ce };
        }
        Summary::pack(start, max, end)
    }
}

/// Indices `[lo, hi)` of the level-`l` entries that overlap the address
/// range `[base, limit)` (`limit > base`).
#[inline]
pub(crate) fn entries_for(l: usize, base: usize, limit: usize) -> (usize, usize) {
    (base >> LEVEL_SHIFT[l], ((limit - 1) >> LEVEL_SHIFT[l]) + 1)
}

/// Widens `[lo, hi)` at level `l` to whole blocks of siblings, since a
/// parent is computed from all of its children.
#[inline]
pub(crate) fn align_to_blocks(l: usize, lo: usize, hi: usize) -> (usize, usize) {
    let block = 1usize << LEVEL_BITS[l];
    (lo & !(block - 1), (hi + block - 1) & !(block - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    // The geometry of the 48-bit build (Miri builds a 40-bit one).
    #[cfg_attr(miri, ignore)]
    fn level_shape() {
        assert_eq!(LEVEL_BITS, [14, 3, 3, 3, 3]);
        assert_eq!(LEVEL_SHIFT, [34, 31, 28, 25, 22]);
        assert_eq!(LEVEL_LOG_PAGES, [21, 18, 15, 12, 9]);
        assert_eq!(level_entries(0), 1 << 14);
        assert_eq!(level_entries(LEAF), 1 << 26);
        assert_eq!(MAX_PACKED, 1 << 21);
    }

    #[test]
    fn pack_round_trips() {
        for &(s, m, e) in &[
            (0, 0, 0),
            (0, 1, 0),
            (1, 1, 1),
            (512, 512, 512),
            (3, 100, 7),
            (MAX_PACKED - 1, MAX_PACKED - 1, 0),
            (0, MAX_PACKED - 1, MAX_PACKED - 1),
            (MAX_PACKED, MAX_PACKED, MAX_PACKED),
        ] {
            assert_eq!(Summary::pack(s, m, e).unpack(), (s, m, e));
        }
        assert!(Summary::NONE.is_none());
        assert_eq!(Summary::FREE_CHUNK.unpack(), (512, 512, 512));
    }

    #[test]
    fn merge_cases() {
        let p = Summary::pack;
        let free = Summary::FREE_CHUNK;
        let none = Summary::NONE;
        // (children, expected) with leaf-sized (512-page) children.
        type Case<'a> = (&'a [Summary], (usize, usize, usize));
        let cases: &[Case<'_>] = &[
            (&[none; 8], (0, 0, 0)),
            (&[free; 8], (4096, 4096, 4096)),
            (
                &[free, none, none, none, none, none, none, free],
                (512, 512, 512),
            ),
            (
                &[
                    p(0, 10, 10),
                    p(20, 20, 0),
                    none,
                    none,
                    none,
                    none,
                    none,
                    none,
                ],
                (0, 30, 0),
            ),
            (
                &[
                    free,
                    free,
                    p(5, 6, 1),
                    none,
                    none,
                    none,
                    p(0, 0, 0),
                    p(3, 3, 3),
                ],
                (1029, 1029, 3),
            ),
            (
                &[none, none, none, none, none, none, p(0, 100, 100), free],
                (0, 612, 612),
            ),
            (
                &[
                    p(1, 3, 3),
                    p(4, 300, 5),
                    p(6, 8, 8),
                    none,
                    none,
                    none,
                    none,
                    none,
                ],
                (1, 300, 0),
            ),
        ];
        for (children, want) in cases {
            assert_eq!(Summary::merge(children, 9).unpack(), *want, "{children:?}");
        }
        // Eight free root-sized children saturate at ALL_MAX one level up.
        let root_free = Summary::pack(1 << 18, 1 << 18, 1 << 18);
        assert_eq!(
            Summary::merge(&[root_free; 8], 18).unpack(),
            (MAX_PACKED, MAX_PACKED, MAX_PACKED)
        );
    }

    #[test]
    // The geometry of the 48-bit build (Miri builds a 40-bit one).
    #[cfg_attr(miri, ignore)]
    fn ranges() {
        let chunk = 1usize << 22;
        assert_eq!(entries_for(LEAF, 3 * chunk, 5 * chunk), (3, 5));
        assert_eq!(entries_for(LEAF, 3 * chunk, 5 * chunk + 1), (3, 6));
        assert_eq!(entries_for(3, 3 * chunk, 5 * chunk), (0, 1));
        assert_eq!(entries_for(0, 0, 1 << 48), (0, 1 << 14));
        assert_eq!(align_to_blocks(LEAF, 3, 9), (0, 16));
        assert_eq!(align_to_blocks(0, 3, 9), (0, 1 << 14));
    }
}
