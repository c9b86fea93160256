//! Tests of the page allocator: declarative heaps (after Go's
//! `mpagealloc_test.go`), metadata accounting, and a randomized comparison
//! against a page-by-page model.
//!
//! Addresses are fake: the allocator never touches the memory it manages,
//! so tests place chunks anywhere in the 48-bit space without mapping them.

use super::bitmap::PageBits;
use super::*;
use crate::os::mock::MockOs;
use crate::testing::Rng;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;

/// Chunk index of the first chunk of every test heap (address 1 TiB, the
/// start of a root entry).
/// (Under Miri the allocator covers 40 bits of address, 2^18 chunks.)
const BASE: usize = if cfg!(miri) { 1 << 12 } else { 1 << 18 };
/// Chunks per root entry (16 GiB).
const ROOT_CHUNKS: usize = 1 << (LEVEL_SHIFT[0] - LEVEL_SHIFT[LEAF]);

fn mock() -> &'static MockOs {
    Box::leak(Box::new(MockOs::new()))
}

/// Address of `page` in chunk `BASE + chunk`.
fn addr(chunk: usize, page: usize) -> usize {
    ChunkIdx(BASE + chunk).base() + page * PAGE_SIZE
}

/// Page ranges `(first, count)` inside one chunk, per chunk offset.
type Ranges<'a> = &'a [(usize, &'a [(usize, usize)])];

/// A page allocator holding the chunks `BASE + c` for each `c` in `chunks`,
/// with the listed page ranges allocated. Free pages are unscavenged except
/// those listed in `scav`. The scavenger will search from the top.
fn build(chunks: Ranges<'_>, scav: Ranges<'_>) -> PageAlloc {
    let mut pa = PageAlloc::new();
    assert!(pa.init(mock()));
    for &(c, _) in chunks {
        assert!(pa.grow(addr(c, 0), CHUNK_BYTES));
    }
    for &(c, ranges) in chunks {
        for &(page, n) in ranges {
            pa.alloc_at(addr(c, page), n)
                .expect("spec ranges must not overlap");
        }
    }
    for &(c, _) in chunks {
        let bits = pa.chunk_mut(ChunkIdx(BASE + c));
        bits.scavenged = PageBits::default();
    }
    for &(c, ranges) in scav {
        let bits = pa.chunk_mut(ChunkIdx(BASE + c));
        for &(page, n) in ranges {
            bits.scavenged.set_range(page, n);
        }
        for w in 0..8 {
            bits.scavenged.0[w] &= !bits.alloc.0[w];
        }
    }
    pa.scavenged_pages = chunks
        .iter()
        .map(|&(c, _)| pa.chunk(ChunkIdx(BASE + c)).scavenged.count())
        .sum();
    pa.scav_addr = pa.end.base();
    pa
}

/// Checks every bitmap-derived fact the allocator keeps: leaf and inner
/// summaries, counters, and the search bounds. `grown` lists chunk offsets.
fn check_invariants(pa: &PageAlloc, grown: &[usize]) {
    let mut grown: Vec<usize> = grown.iter().map(|c| BASE + c).collect();
    grown.sort_unstable();
    let (mut free, mut scav) = (0, 0);
    for &c in &grown {
        let bits = pa.chunk(ChunkIdx(c));
        assert_eq!(
            pa.sum(LEAF, c),
            bits.summarize(),
            "leaf summary of chunk {c}"
        );
        free += bits.free_count();
        scav += bits.scavenged.count();
        for w in 0..8 {
            assert_eq!(
                bits.alloc.0[w] & bits.scavenged.0[w],
                0,
                "allocated page marked scavenged"
            );
        }
    }
    assert_eq!(pa.free_pages(), free);
    assert_eq!(pa.scavenged_pages(), scav);
    // Inner levels: every entry above a grown chunk merges its children;
    // every root entry above none is empty.
    for l in (0..LEAF).rev() {
        let shift = LEVEL_SHIFT[l] - LEVEL_SHIFT[LEAF];
        let mut entries: Vec<usize> = grown.iter().map(|c| c >> shift).collect();
        entries.dedup();
        for &i in &entries {
            assert_eq!(
                pa.sum(l, i),
                Summary::merge(pa.children(l, i), LEVEL_LOG_PAGES[l + 1]),
                "summary {l}/{i}"
            );
        }
        if l == 0 {
            for i in 0..level_entries(0) {
                if entries.binary_search(&i).is_err() {
                    assert!(pa.sum(0, i).is_none(), "root entry {i} over no memory");
                }
            }
        }
    }
    // No free page below search_addr; no candidate at or above scav_addr.
    let min = pa.scav_min_pages;
    for &c in &grown {
        let bits = pa.chunk(ChunkIdx(c));
        for p in 0..CHUNK_PAGES {
            let a = ChunkIdx(c).base() + p * PAGE_SIZE;
            if !bits.alloc.get(p) {
                assert!(a >= pa.search_addr, "free page {a:#x} below search_addr");
            }
            let g = p / min * min;
            if p == g && a >= pa.scav_addr {
                assert!(
                    (g..g + min).any(|q| bits.alloc.get(q) || bits.scavenged.get(q)),
                    "scavenge candidate {a:#x} above scav_addr"
                );
            }
        }
    }
}

/// Asserts that `got` holds the same bitmaps as `want` over `chunks`.
fn assert_same(what: &str, got: &PageAlloc, want: &PageAlloc, chunks: Ranges<'_>) {
    for &(c, _) in chunks {
        let (g, w) = (
            got.chunk(ChunkIdx(BASE + c)),
            want.chunk(ChunkIdx(BASE + c)),
        );
        assert_eq!(g.alloc, w.alloc, "{what}: allocation bits of chunk {c}");
        assert_eq!(
            g.scavenged, w.scavenged,
            "{what}: scavenged bits of chunk {c}"
        );
    }
    assert_eq!(got.free_pages(), want.free_pages(), "{what}");
    assert_eq!(got.scavenged_pages(), want.scavenged_pages(), "{what}");
    let grown: Vec<usize> = chunks.iter().map(|&(c, _)| c).collect();
    check_invariants(got, &grown);
}

/// One allocation and its expected outcome: `(npages, Some((chunk, page,
/// scavenged)))` or `None` for failure.
type Hit = (usize, Option<(usize, usize, usize)>);

struct AllocCase {
    name: &'static str,
    before: Ranges<'static>,
    scav: Ranges<'static>,
    hits: &'static [Hit],
    after: Ranges<'static>,
    after_scav: Ranges<'static>,
}

#[test]
// Its table places chunks by the 48-bit geometry.
#[cfg_attr(miri, ignore)]
fn alloc_table() {
    let cases = [
        AllocCase {
            name: "single pages, some scavenged",
            before: &[(0, &[])],
            scav: &[(0, &[(0, 1), (2, 2)])],
            hits: &[
                (1, Some((0, 0, 1))),
                (1, Some((0, 1, 0))),
                (1, Some((0, 2, 1))),
                (1, Some((0, 3, 1))),
                (1, Some((0, 4, 0))),
            ],
            after: &[(0, &[(0, 5)])],
            after_scav: &[],
        },
        AllocCase {
            name: "64 pages at a time",
            before: &[(0, &[])],
            scav: &[(0, &[(1, 1), (64, 64)])],
            hits: &[
                (64, Some((0, 0, 1))),
                (64, Some((0, 64, 64))),
                (64, Some((0, 128, 0))),
            ],
            after: &[(0, &[(0, 192)])],
            after_scav: &[],
        },
        AllocCase {
            name: "65 pages at a time",
            before: &[(0, &[])],
            scav: &[(0, &[(129, 1)])],
            hits: &[
                (65, Some((0, 0, 0))),
                (65, Some((0, 65, 1))),
                (65, Some((0, 130, 0))),
            ],
            after: &[(0, &[(0, 195)])],
            after_scav: &[],
        },
        AllocCase {
            name: "exhaust a chunk",
            before: &[(0, &[])],
            scav: &[(0, &[(0, 512)])],
            hits: &[(509, Some((0, 0, 509))), (3, Some((0, 509, 3))), (1, None)],
            after: &[(0, &[(0, 512)])],
            after_scav: &[],
        },
        AllocCase {
            name: "first fit skips holes that are too small",
            before: &[(0, &[(0, 10), (12, 20), (35, 65), (110, 2)])],
            scav: &[],
            hits: &[
                (8, Some((0, 100, 0))),
                (3, Some((0, 32, 0))),
                (2, Some((0, 10, 0))),
                (11, Some((0, 112, 0))),
            ],
            after: &[(0, &[(0, 108), (110, 13)])],
            after_scav: &[],
        },
        AllocCase {
            name: "discontiguous chunks",
            before: &[(0, &[(0, 512)]), (1, &[(0, 512)]), (5, &[(0, 511)])],
            scav: &[],
            hits: &[(1, Some((5, 511, 0))), (1, None)],
            after: &[(0, &[(0, 512)]), (1, &[(0, 512)]), (5, &[(0, 512)])],
            after_scav: &[],
        },
        AllocCase {
            name: "a run straddling a chunk boundary",
            before: &[(0, &[(0, 500)]), (1, &[(12, 500)])],
            scav: &[(1, &[(0, 6)])],
            hits: &[(24, Some((0, 500, 6))), (1, None)],
            after: &[(0, &[(0, 512)]), (1, &[(0, 512)])],
            after_scav: &[],
        },
        AllocCase {
            name: "runs need contiguous chunks",
            before: &[
                (0, &[(0, 500)]),
                (2, &[(12, 500)]),
                (3, &[(0, 8), (20, 492)]),
            ],
            scav: &[],
            hits: &[
                (13, None),
                (12, Some((0, 500, 0))),
                (12, Some((2, 0, 0))),
                (12, Some((3, 8, 0))),
                (1, None),
            ],
            after: &[(0, &[(0, 512)]), (2, &[(0, 512)]), (3, &[(0, 512)])],
            after_scav: &[],
        },
        AllocCase {
            name: "multi-chunk allocations",
            before: &[(0, &[(0, 1)]), (1, &[]), (2, &[]), (3, &[(0, 1)])],
            scav: &[(1, &[(0, 512)]), (2, &[(0, 100)])],
            hits: &[
                (1100, Some((0, 1, 512 + 77))),
                (512, None),
                (511, Some((3, 1, 0))),
                (435, Some((2, 77, 23))),
            ],
            after: &[
                (0, &[(0, 512)]),
                (1, &[(0, 512)]),
                (2, &[(0, 512)]),
                (3, &[(0, 512)]),
            ],
            after_scav: &[],
        },
        AllocCase {
            name: "whole chunks",
            before: &[(0, &[]), (1, &[]), (2, &[]), (3, &[])],
            scav: &[],
            hits: &[
                (512, Some((0, 0, 0))),
                (1024, Some((1, 0, 0))),
                (1024, None),
                (512, Some((3, 0, 0))),
            ],
            after: &[
                (0, &[(0, 512)]),
                (1, &[(0, 512)]),
                (2, &[(0, 512)]),
                (3, &[(0, 512)]),
            ],
            after_scav: &[],
        },
        AllocCase {
            name: "across a root entry boundary",
            before: &[(ROOT_CHUNKS - 1, &[(0, 256)]), (ROOT_CHUNKS, &[(300, 212)])],
            scav: &[],
            hits: &[
                (512, Some((ROOT_CHUNKS - 1, 256, 0))),
                (45, None),
                (44, Some((ROOT_CHUNKS, 256, 0))),
            ],
            after: &[(ROOT_CHUNKS - 1, &[(0, 512)]), (ROOT_CHUNKS, &[(0, 512)])],
            after_scav: &[],
        },
        AllocCase {
            name: "far-apart chunks, lowest first",
            before: &[
                (0, &[(0, 512)]),
                (8 * ROOT_CHUNKS + 3, &[]),
                (100 * ROOT_CHUNKS, &[]),
            ],
            scav: &[(100 * ROOT_CHUNKS, &[(0, 512)])],
            hits: &[
                (300, Some((8 * ROOT_CHUNKS + 3, 0, 0))),
                (300, Some((100 * ROOT_CHUNKS, 0, 300))),
            ],
            after: &[
                (0, &[(0, 512)]),
                (8 * ROOT_CHUNKS + 3, &[(0, 300)]),
                (100 * ROOT_CHUNKS, &[(0, 300)]),
            ],
            after_scav: &[(100 * ROOT_CHUNKS, &[(300, 212)])],
        },
    ];
    for case in &cases {
        let mut pa = build(case.before, case.scav);
        for (i, &(npages, want)) in case.hits.iter().enumerate() {
            let got = pa.alloc(npages);
            let want = want.map(|(c, p, s)| (addr(c, p), s));
            assert_eq!(got, want, "{}: hit {i} ({npages} pages)", case.name);
        }
        assert_same(
            case.name,
            &pa,
            &build(case.after, case.after_scav),
            case.after,
        );
    }
}

#[test]
fn free_table() {
    // (name, before, frees as (chunk, page, npages), after)
    type FreeCase = (
        &'static str,
        Ranges<'static>,
        &'static [(usize, usize, usize)],
        Ranges<'static>,
    );
    let cases: &[FreeCase] = &[
        (
            "single page",
            &[(0, &[(0, 512)])],
            &[(0, 1, 1)],
            &[(0, &[(0, 1), (2, 510)])],
        ),
        (
            "whole chunk",
            &[(0, &[(0, 512)])],
            &[(0, 0, 512)],
            &[(0, &[])],
        ),
        (
            "many pages",
            &[(0, &[(0, 512)])],
            &[(0, 64, 64), (0, 256, 100)],
            &[(0, &[(0, 64), (128, 128), (356, 156)])],
        ),
        (
            "straddling chunks",
            &[(0, &[(0, 512)]), (1, &[(0, 512)]), (2, &[(0, 512)])],
            &[(0, 500, 12 + 512 + 3)],
            &[(0, &[(0, 500)]), (1, &[]), (2, &[(3, 509)])],
        ),
        (
            "in pieces",
            &[(0, &[(0, 512)])],
            &[(0, 0, 10), (0, 10, 10), (0, 20, 492)],
            &[(0, &[])],
        ),
    ];
    for &(name, before, frees, after) in cases {
        let mut pa = build(before, &[]);
        for &(c, p, n) in frees {
            pa.free(addr(c, p), n);
        }
        assert_same(name, &pa, &build(after, &[]), after);
    }
}

#[test]
fn alloc_at_table() {
    let before: Ranges<'_> = &[(0, &[(0, 100), (300, 10)]), (1, &[]), (3, &[(500, 12)])];
    let scav: Ranges<'_> = &[(0, &[(100, 50)]), (1, &[(0, 512)])];
    // (chunk, page, npages, expected scavenged or None)
    let cases: &[(usize, usize, usize, Option<usize>)] = &[
        (0, 100, 1, Some(1)),
        (0, 100, 200, Some(50)),
        (0, 100, 201, None),
        (0, 99, 2, None),
        (0, 310, 202, Some(0)),
        (0, 310, 203, Some(1)),
        (0, 310, 202 + 512, Some(512)),
        // Chunk 2 was never grown.
        (1, 511, 1, Some(1)),
        (1, 511, 2, None),
        (2, 0, 1, None),
        (3, 499, 1, Some(0)),
        (3, 499, 2, None),
        (3, 511, 1, None),
        (4, 0, 1, None),
        // Far from any grown chunk: no metadata there at all.
        (1 << 22, 0, 1, None),
    ];
    for &(c, p, n, want) in cases {
        let mut pa = build(before, scav);
        let free = pa.free_pages();
        let a = addr(c, p);
        assert_eq!(
            pa.alloc_at(a, n),
            want,
            "alloc_at chunk {c} page {p} npages {n}"
        );
        if want.is_some() {
            assert_eq!(pa.free_pages(), free - n);
            // Exactly those pages are now allocated.
            for (ci, first, k) in by_chunk(a, n) {
                assert_eq!(pa.chunk(ci).alloc.count_range(first, k), k);
            }
        } else {
            assert_eq!(pa.free_pages(), free);
        }
        check_invariants(&pa, &[0, 1, 3]);
    }
    // Misaligned or overflowing requests fail cleanly.
    let mut pa = build(before, scav);
    assert_eq!(pa.alloc_at(addr(0, 100) + 1, 1), None);
    assert_eq!(pa.alloc_at(addr(0, 100), usize::MAX / 2), None);
    assert_eq!(pa.alloc_at(addr(0, 100), 0), None);
}

#[test]
fn search_addr_tracks_first_free_page() {
    let mut pa = build(&[(0, &[]), (1, &[])], &[]);
    let a: Vec<usize> = (0..6).map(|_| pa.alloc(100).unwrap().0).collect();
    assert_eq!(
        a,
        (0..6)
            .map(|i| addr(0, 0) + i * 100 * PAGE_SIZE)
            .collect::<Vec<_>>()
    );
    // The last run straddles chunks 0 and 1 and is found in the summaries,
    // without reading chunk 0's bitmap, so the hint stays where it was.
    assert_eq!(pa.search_addr, addr(0, 400));
    pa.free(a[2], 100);
    pa.free(a[4], 100);
    assert_eq!(pa.search_addr, a[2]);
    assert_eq!(pa.alloc(150), Some((addr(0, 600), 0)));
    assert_eq!(pa.alloc(50).map(|r| r.0), Some(a[2]));
    assert_eq!(pa.alloc(51).map(|r| r.0), Some(a[4]));
    assert_eq!(pa.alloc(1).map(|r| r.0), Some(a[2] + 50 * PAGE_SIZE));
    check_invariants(&pa, &[0, 1]);
    while pa.alloc(1).is_some() {}
    assert_eq!(pa.free_pages(), 0);
    check_invariants(&pa, &[0, 1]);
    pa.free(addr(1, 7), 1);
    assert_eq!(pa.alloc(1), Some((addr(1, 7), 0)));
}

#[test]
// Terabyte-sized runs: too slow under Miri.
#[cfg_attr(miri, ignore)]
fn huge_allocations_cross_root_entries() {
    // 2.5 root entries of 16 GiB, from the middle of one.
    let mut pa = PageAlloc::new();
    assert!(pa.init(mock()));
    let first = ROOT_CHUNKS / 2;
    let chunks = 2 * ROOT_CHUNKS + 1;
    assert!(pa.grow(addr(first, 0), chunks * CHUNK_BYTES));
    assert_eq!(pa.free_pages(), chunks * CHUNK_PAGES);
    assert_eq!(pa.alloc(1), Some((addr(first, 0), 1)));
    // More pages than a root entry's summary can describe.
    let n = summary::MAX_PACKED + 3 * CHUNK_PAGES;
    assert_eq!(pa.alloc(n), Some((addr(first, 1), n)));
    let rest = chunks * CHUNK_PAGES - 1 - n;
    assert_eq!(pa.alloc(rest + 1), None);
    assert_eq!(pa.alloc(rest), Some((addr(first, 1 + n), rest)));
    assert_eq!(pa.free_pages(), 0);
    pa.free(addr(first, 1), n);
    // The run covers the top half of one root entry and the start of the
    // next.
    let root = (BASE + first) / ROOT_CHUNKS;
    let low_half = ROOT_CHUNKS / 2 * CHUNK_PAGES - 1;
    assert_eq!(pa.sum(0, root).unpack(), (0, low_half, low_half));
    assert_eq!(
        pa.sum(0, root + 1).unpack(),
        (n - low_half, n - low_half, 0)
    );
    assert_eq!(pa.alloc(n), Some((addr(first, 1), 0)));
}

#[test]
// It counts metadata bytes of the 48-bit layout.
#[cfg_attr(miri, ignore)]
fn grow_marks_memory_scavenged_and_commits_little() {
    let os = mock();
    let mut pa = PageAlloc::new();
    assert!(
        !pa.grow(addr(0, 0), CHUNK_BYTES),
        "grow before init must fail"
    );
    assert!(pa.init(os));
    assert!(pa.init(os), "init twice is harmless");
    assert_eq!(os.reserve_calls.load(Relaxed), 1);
    assert_eq!(os.committed.load(Relaxed), COMMIT_MAP_BYTES);
    assert_eq!(pa.alloc(1), None);

    assert!(pa.grow(addr(0, 0), 2 * CHUNK_BYTES));
    assert_eq!((pa.free_pages(), pa.scavenged_pages()), (1024, 1024));
    // One grain of chunk bitmaps, one per summary level, and the two
    // grains of the root level.
    let one_range = (64 + 4 * 64 + 128) << 10;
    assert_eq!(os.committed.load(Relaxed), COMMIT_MAP_BYTES + one_range);
    assert_eq!(pa.metadata_bytes(), os.committed.load(Relaxed));

    // Adjacent growth reuses the grains.
    assert!(pa.grow(addr(2, 0), CHUNK_BYTES));
    assert_eq!(os.committed.load(Relaxed), COMMIT_MAP_BYTES + one_range);

    // Growth 1 TiB away needs a few more grains, not gigabytes.
    assert!(pa.grow(addr(1 << 18, 0), CHUNK_BYTES));
    let far = os.committed.load(Relaxed) - COMMIT_MAP_BYTES - one_range;
    assert!(far > 0 && far <= 5 * (64 << 10), "{far}");
    assert_eq!((pa.free_pages(), pa.scavenged_pages()), (4 * 512, 4 * 512));
    check_invariants(&pa, &[0, 1, 2, 1 << 18]);

    // Beyond the 48-bit space.
    assert!(!pa.grow(ADDR_LIMIT - CHUNK_BYTES, 2 * CHUNK_BYTES));
    assert!(!pa.grow(ADDR_LIMIT, CHUNK_BYTES));
}

#[test]
fn os_refusals() {
    let os = mock();
    os.fail_reserve_after(0);
    let mut pa = PageAlloc::new();
    assert!(!pa.init(os));

    let os = mock();
    os.fail_commit_after(COMMIT_MAP_BYTES + (64 << 10));
    let mut pa = PageAlloc::new();
    assert!(pa.init(os));
    assert!(!pa.grow(addr(0, 0), CHUNK_BYTES));
    assert_eq!((pa.free_pages(), pa.scavenged_pages()), (0, 0));
    assert_eq!(pa.alloc(1), None);
    assert_eq!(pa.alloc_at(addr(0, 0), 1), None);
    // Once the OS relents, growth works.
    os.fail_commit_after(usize::MAX);
    assert!(pa.grow(addr(0, 0), CHUNK_BYTES));
    assert_eq!(pa.alloc(1), Some((addr(0, 0), 1)));
}

#[test]
fn dropping_releases_the_reservation() {
    let os = mock();
    let mut pa = PageAlloc::new();
    assert!(pa.init(os));
    assert_eq!(os.reserved.load(Relaxed), RESERVED_BYTES);
    drop(pa);
    assert_eq!(os.reserved.load(Relaxed), 0);
}

#[test]
fn new_is_const_and_fits_a_static() {
    static PAGES: crate::sync::Mutex<PageAlloc> = crate::sync::Mutex::new(PageAlloc::new());
    let mut pages = PAGES.lock();
    assert!(pages.init(mock()));
    assert!(pages.grow(addr(0, 0), CHUNK_BYTES));
    assert_eq!(pages.alloc(3), Some((addr(0, 0), 3)));
}

#[test]
#[should_panic(expected = "does not manage")]
fn free_outside_the_heap_panics() {
    let mut pa = build(&[(0, &[])], &[]);
    pa.free(addr(1 << 20, 0), 1);
}

// The scavenger's interface.

#[test]
fn scavenge_from_the_top_down() {
    let mut pa = build(
        &[
            (0, &[(0, 10)]),
            (1, &[(100, 1)]),
            (3, &[(0, 512)]),
            (4, &[(0, 500)]),
        ],
        &[(0, &[(200, 312)]), (1, &[(300, 212)]), (4, &[(505, 7)])],
    );
    let unscav = pa.unscavenged_free_pages();
    assert_eq!(unscav, 190 + 300 - 1 + 5);
    let mut got = Vec::new();
    while let Some((base, n)) = pa.find_scavenge_candidate(128) {
        got.push((base, n));
        // While claimed the run is allocated, so alloc cannot hand it out.
        assert_eq!(pa.alloc_at(base, 1), None);
        pa.mark_scavenged(base, n);
    }
    let want = vec![
        (addr(4, 500), 5),
        (addr(1, 172), 128),
        (addr(1, 101), 71),
        (addr(1, 0), 100),
        (addr(0, 72), 128),
        (addr(0, 10), 62),
    ];
    assert_eq!(got, want);
    assert_eq!(pa.unscavenged_free_pages(), 0);
    assert_eq!(pa.scavenged_pages(), pa.free_pages());
    check_invariants(&pa, &[0, 1, 3, 4]);

    // Nothing left: the next call returns at once.
    assert_eq!(pa.scav_addr, 0);
    assert_eq!(pa.find_scavenge_candidate(128), None);

    // A free above raises the starting point again; allocations of
    // scavenged memory report it.
    let (a, s) = pa.alloc(20).unwrap();
    assert_eq!((a, s), (addr(0, 10), 20));
    pa.free(a + 5 * PAGE_SIZE, 10);
    assert_eq!(
        pa.find_scavenge_candidate(512),
        Some((a + 5 * PAGE_SIZE, 10))
    );
    // Deciding not to release: free returns the run unscavenged.
    pa.free(a + 5 * PAGE_SIZE, 10);
    assert_eq!(pa.find_scavenge_candidate(4), Some((a + 11 * PAGE_SIZE, 4)));
    pa.mark_scavenged(a + 11 * PAGE_SIZE, 4);
    check_invariants(&pa, &[0, 1, 3, 4]);
}

/// The scan for whole huge pages returns only aligned halves of chunks that
/// are entirely free and resident, from the top down, and leaves the
/// starting point of wider searches where it was, so the smaller runs it
/// passed over are still found.
#[test]
fn scavenge_whole_huge_pages() {
    assert_eq!(HUGE_PAGE_PAGES * 2, CHUNK_PAGES);
    let mut pa = build(
        &[
            (0, &[(300, 1)]),           // low half whole, high half not
            (1, &[]),                   // both halves whole...
            (2, &[(0, 1), (511, 1)]),   // neither
            (3, &[(100, 1)]),           // high half whole, low half not
        ],
        &[(1, &[(256, 10)])], // ...but part of chunk 1's high half is released
    );
    let mut got = Vec::new();
    while let Some((base, n)) = pa.find_scavenge_candidate_in(64, Scan::WholeHugePages) {
        assert_eq!(n, HUGE_PAGE_PAGES);
        assert_eq!(base % (HUGE_PAGE_PAGES * PAGE_SIZE), 0);
        got.push(base);
        pa.mark_scavenged(base, n);
    }
    assert_eq!(got, vec![addr(3, 256), addr(1, 0), addr(0, 0)]);
    // The wider search still starts at the top: the first run it finds is
    // the top of chunk 3's low half.
    assert_eq!(
        pa.find_scavenge_candidate_in(64, Scan::All),
        Some((addr(3, 192), 64))
    );
    check_invariants(&pa, &[0, 1, 2, 3]);
}

#[test]
fn scavenge_whole_os_pages() {
    // 32 KiB OS pages: 4 runtime pages each.
    let mut pa = build(
        &[(0, &[(0, 1), (9, 1)]), (1, &[(510, 2)])],
        &[(1, &[(0, 2)])],
    );
    pa.scav_min_pages = 4;
    let mut got = Vec::new();
    while let Some((base, n)) = pa.find_scavenge_candidate(1000) {
        got.push((base, n));
        pa.mark_scavenged(base, n);
    }
    assert_eq!(
        got,
        vec![(addr(1, 4), 504), (addr(0, 12), 500), (addr(0, 4), 4)]
    );
    // Free pages that share an OS page with allocated ones stay.
    assert_eq!(pa.unscavenged_free_pages(), 3 + 3 + 2 + 2);
    check_invariants(&pa, &[0, 1]);
}



/// The reference: one flag pair per page of each grown chunk.
#[derive(Default)]
struct Model {
    /// Chunk offset (from BASE) → (allocated, scavenged) per page.
    chunks: BTreeMap<usize, (Vec<bool>, Vec<bool>)>,
    scav_addr: usize,
}

impl Model {
    fn is_free(&self, a: usize) -> bool {
        let c = a / CHUNK_BYTES - BASE;
        self.chunks
            .get(&c)
            .is_some_and(|(alloc, _)| !alloc[page_in_chunk(a)])
    }

    fn set(&mut self, base: usize, npages: usize, allocated: bool, scavenged: bool) -> usize {
        let mut was_scavenged = 0;
        for i in 0..npages {
            let a = base + i * PAGE_SIZE;
            let (alloc, scav) = self.chunks.get_mut(&(a / CHUNK_BYTES - BASE)).unwrap();
            let p = page_in_chunk(a);
            was_scavenged += scav[p] as usize;
            alloc[p] = allocated;
            scav[p] = scavenged;
        }
        was_scavenged
    }

    fn alloc(&mut self, npages: usize) -> Option<(usize, usize)> {
        // The current run of free pages: its first address and length.
        let (mut start, mut len) = (0, 0);
        let mut found = None;
        'chunks: for (&c, (alloc, _)) in &self.chunks {
            if len > 0 && start + len * PAGE_SIZE != addr(c, 0) {
                len = 0;
            }
            for (p, &allocated) in alloc.iter().enumerate() {
                if allocated {
                    len = 0;
                    continue;
                }
                if len == 0 {
                    start = addr(c, p);
                }
                len += 1;
                if len == npages {
                    found = Some(start);
                    break 'chunks;
                }
            }
        }
        let start = found?;
        Some((start, self.set(start, npages, true, false)))
    }

    fn alloc_at(&mut self, base: usize, npages: usize) -> Option<usize> {
        if (0..npages).all(|i| self.is_free(base + i * PAGE_SIZE)) {
            Some(self.set(base, npages, true, false))
        } else {
            None
        }
    }

    fn free(&mut self, base: usize, npages: usize, scavenged: bool) {
        self.set(base, npages, false, scavenged);
        if !scavenged {
            self.scav_addr = self.scav_addr.max(base + npages * PAGE_SIZE);
        }
    }

    fn find_scavenge_candidate(&mut self, max: usize) -> Option<(usize, usize)> {
        // The highest free, unscavenged page below scav_addr, and how far
        // its run reaches down inside the chunk (at most `max` pages).
        let mut found = None;
        'chunks: for (&c, (alloc, scav)) in self.chunks.iter().rev() {
            for p in (0..CHUNK_PAGES).rev() {
                if addr(c, p) < self.scav_addr && !alloc[p] && !scav[p] {
                    let n = (0..=p)
                        .rev()
                        .take_while(|&q| !alloc[q] && !scav[q])
                        .count()
                        .min(max.max(1));
                    found = Some((addr(c, p + 1 - n), n));
                    break 'chunks;
                }
            }
        }
        let Some((base, n)) = found else {
            self.scav_addr = 0;
            return None;
        };
        self.set(base, n, true, false);
        self.scav_addr = base;
        Some((base, n))
    }

    fn counts(&self) -> (usize, usize) {
        let free = self
            .chunks
            .values()
            .flat_map(|(a, _)| a)
            .filter(|&&x| !x)
            .count();
        let scav = self
            .chunks
            .values()
            .flat_map(|(_, s)| s)
            .filter(|&&x| x)
            .count();
        (free, scav)
    }
}

/// Runs `steps` random operations on a `PageAlloc` and the model side by
/// side; every result must agree exactly.
fn model_run(seed: u64, steps: usize) {
    let mut rng = Rng(seed);
    let mut pa = PageAlloc::new();
    assert!(pa.init(mock()));
    let mut model = Model::default();
    // Live allocations (address, pages), and the last few ranges freed.
    let mut live: Vec<(usize, usize)> = Vec::new();
    let mut freed: Vec<(usize, usize)> = Vec::new();

    let grow = |pa: &mut PageAlloc, model: &mut Model, rng: &mut Rng| {
        // Near the existing chunks, or far away (across root entries).
        let at = match rng.below(4) {
            0 => model.chunks.keys().next_back().map_or(0, |&c| c + 1),
            1 => rng.below(64),
            2 => ROOT_CHUNKS - 2 + rng.below(4),
            _ => rng.below(4 * ROOT_CHUNKS),
        };
        let n = 1 + rng.below(3);
        if (at..at + n).any(|c| model.chunks.contains_key(&c)) {
            return;
        }
        assert!(pa.grow(addr(at, 0), n * CHUNK_BYTES));
        for c in at..at + n {
            model
                .chunks
                .insert(c, (vec![false; CHUNK_PAGES], vec![true; CHUNK_PAGES]));
        }
    };
    grow(&mut pa, &mut model, &mut rng);

    for step in 0..steps {
        match rng.below(100) {
            0..=2 if model.chunks.len() < 24 => grow(&mut pa, &mut model, &mut rng),
            0..=44 => {
                let n = match rng.below(100) {
                    0..=59 => 1 + rng.below(8),
                    60..=79 => 9 + rng.below(56),
                    80..=93 => 65 + rng.below(448),
                    _ => 513 + rng.below(1100),
                };
                let got = pa.alloc(n);
                assert_eq!(got, model.alloc(n), "seed {seed} step {step}: alloc({n})");
                if let Some((a, _)) = got {
                    live.push((a, n));
                }
            }
            45..=54 => {
                // Grow in place after a live allocation, reclaim (part of)
                // a freed range, or try anywhere.
                let (a, n) = if !live.is_empty() && rng.chance(50) {
                    let (a, n) = live[rng.below(live.len())];
                    (a + n * PAGE_SIZE, 1 + rng.below(2 * n))
                } else if !freed.is_empty() && rng.chance(70) {
                    let (a, n) = freed[rng.below(freed.len())];
                    let skip = rng.below(n);
                    (a + skip * PAGE_SIZE, 1 + rng.below(n - skip + 2))
                } else {
                    let c = rng.below(4 * ROOT_CHUNKS.min(64));
                    (addr(c, rng.below(CHUNK_PAGES)), 1 + rng.below(600))
                };
                let got = pa.alloc_at(a, n);
                let want = if a + n * PAGE_SIZE <= ADDR_LIMIT {
                    model.alloc_at(a, n)
                } else {
                    None
                };
                assert_eq!(got, want, "seed {seed} step {step}: alloc_at({a:#x}, {n})");
                if got.is_some() {
                    live.push((a, n));
                }
            }
            55..=89 if !live.is_empty() => {
                let (a, n) = live.swap_remove(rng.below(live.len()));
                if n > 1 && rng.chance(20) {
                    // Free a middle part; the ends stay live.
                    let lo = rng.below(n);
                    let len = 1 + rng.below(n - lo);
                    pa.free(a + lo * PAGE_SIZE, len);
                    model.free(a + lo * PAGE_SIZE, len, false);
                    freed.push((a + lo * PAGE_SIZE, len));
                    if lo > 0 {
                        live.push((a, lo));
                    }
                    if lo + len < n {
                        live.push((a + (lo + len) * PAGE_SIZE, n - lo - len));
                    }
                } else {
                    pa.free(a, n);
                    model.free(a, n, false);
                    freed.push((a, n));
                }
                if freed.len() > 16 {
                    freed.remove(0);
                }
            }
            _ => {
                let max = [1, 4, 64, 512, 1000][rng.below(5)];
                let got = pa.find_scavenge_candidate(max);
                assert_eq!(
                    got,
                    model.find_scavenge_candidate(max),
                    "seed {seed} step {step}: scavenge({max})"
                );
                if let Some((a, n)) = got {
                    if rng.chance(85) {
                        pa.mark_scavenged(a, n);
                        model.free(a, n, true);
                    } else {
                        pa.free(a, n);
                        model.free(a, n, false);
                    }
                }
            }
        }
        assert_eq!(
            (pa.free_pages(), pa.scavenged_pages()),
            model.counts(),
            "seed {seed} step {step}"
        );
        if step % 64 == 0 || step + 1 == steps {
            let grown: Vec<usize> = model.chunks.keys().copied().collect();
            check_invariants(&pa, &grown);
        }
    }
}

#[test]
fn matches_model() {
    // Under Miri, which runs this thousands of times slower: one short run.
    let (seeds, steps) = if cfg!(miri) { (1, 25) } else { (6, 1500) };
    for seed in 1u64..=seeds {
        model_run(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), steps);
    }
}
