//! Model-based randomized test: long seeded sequences of `alloc`,
//! `alloc_zeroed`, `realloc` and frees, made by calling [`GoHeap`] through
//! the `GlobalAlloc` trait and the `goheap::raw` entry points, checked
//! against a model of the live blocks and against `goheap::memstats()`.
//!
//! goheap is *not* the global allocator of this binary: the test harness,
//! the model's own vectors and the other test threads use the system
//! allocator, so goheap's statistics move only because of the calls made
//! here. The tests take a lock so only one of them talks to goheap at a
//! time, which makes every statistics delta exact.
//!
//! Scale: `GOHEAP_MODEL_OPS` (operations per seed, default 40 000) and
//! `GOHEAP_MODEL_SEEDS` (default 3), e.g.
//! `GOHEAP_MODEL_OPS=2000000 cargo test --release -p goheap --test model`.
#![cfg(not(goheap_loom))] // goheap is only `sync` under loom (ci/loom.sh)

mod common;
use common::Rng;
use goheap::sizeclass::{class_size, size_to_class, MAX_SMALL_SIZE, NUM_SIZE_CLASSES, PAGE_SIZE};
use goheap::{memstats, GoHeap, MemStats};
use std::alloc::{GlobalAlloc, Layout};
use std::sync::Mutex;

/// Serialises the tests of this file (see the module docs).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What goheap should do with a layout: the model's own reading of the
/// documented rules (size classes from `goheap::sizeclass`; alignment above
/// 8 picks the first class that is a multiple of it; above one page or
/// 32 KiB goes to whole pages).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Small(usize),
    /// Pages of the large object's span.
    Large(usize),
}

fn model_class(size: usize, align: usize) -> Option<usize> {
    if size > MAX_SMALL_SIZE || align > PAGE_SIZE {
        return None;
    }
    // Checked builds (debug, like this test) have no 8-byte class.
    let first = size_to_class(size).max(if goheap::CHECKED { 2 } else { 1 });
    (first..NUM_SIZE_CLASSES).find(|&c| class_size(c) % align == 0)
}

fn pages_for(size: usize) -> usize {
    size.max(1).div_ceil(PAGE_SIZE)
}

fn kind_of(size: usize, align: usize) -> Kind {
    match model_class(size, align) {
        Some(c) => Kind::Small(c),
        None => Kind::Large(pages_for(size)),
    }
}

impl Kind {
    /// Bytes this block counts for in `heap_alloc`, and its usable size.
    fn bytes(self) -> usize {
        match self {
            Kind::Small(c) => class_size(c),
            Kind::Large(n) => n * PAGE_SIZE,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Block {
    ptr: *mut u8,
    size: usize,
    align: usize,
    kind: Kind,
    /// Selects the block's window of the pattern buffer.
    id: u64,
}

/// Largest block the test makes.
const MAX_BLOCK: usize = 5 << 20;

/// The contents every block must hold: `size` bytes of `pattern` starting
/// at an offset chosen by the block id, so neighbours, stale copies and
/// shifted copies all differ.
struct Pattern(Vec<u8>);

impl Pattern {
    fn new() -> Self {
        let mut rng = Rng(0xfeed);
        Pattern((0..MAX_BLOCK + 8192).map(|_| rng.next() as u8).collect())
    }

    fn window(&self, id: u64, len: usize) -> &[u8] {
        let off = (id.wrapping_mul(0x9e37_79b9) % 8191) as usize;
        &self.0[off..off + len]
    }

    fn fill(&self, b: &Block) {
        let src = self.window(b.id, b.size);
        // SAFETY: the block is live and holds `size` bytes; the pattern is
        // system-allocated memory, so they cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), b.ptr, b.size) };
    }

    fn check(&self, b: &Block, len: usize, what: &str) {
        // SAFETY: the block is live and holds at least `len` bytes.
        let got = unsafe { std::slice::from_raw_parts(b.ptr, len) };
        let want = self.window(b.id, len);
        if got != want {
            let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap();
            panic!(
                "{what}: block {} at {:p} ({} bytes, align {}) corrupted at offset {at}: {:#04x} != {:#04x}",
                b.id, b.ptr, b.size, b.align, got[at], want[at]
            );
        }
    }
}

fn is_zero(p: *const u8, len: usize) -> bool {
    static ZEROS: [u8; 65536] = [0; 65536];
    let mut off = 0;
    while off < len {
        let n = (len - off).min(ZEROS.len());
        // SAFETY: the caller's block holds `len` bytes.
        let s = unsafe { std::slice::from_raw_parts(p.add(off), n) };
        if s != &ZEROS[..n] {
            return false;
        }
        off += n;
    }
    true
}

/// The model: live blocks and what goheap's counters must have done since
/// the start.
struct Model {
    live: Vec<Block>,
    next_id: u64,
    mallocs: u64,
    frees: u64,
    large_mallocs: u64,
    total_alloc: u64,
    start: MemStats,
    pattern: Pattern,
    /// Operation counts, for the report.
    ops: [u64; 8],
    moved_reallocs: u64,
    in_place_reallocs: u64,
}

const OP_NAMES: [&str; 8] = [
    "alloc",
    "alloc_zeroed",
    "raw_alloc",
    "realloc",
    "raw_realloc",
    "dealloc",
    "raw_free",
    "check",
];

impl Model {
    fn new() -> Self {
        Model {
            live: Vec::new(),
            next_id: 1,
            mallocs: 0,
            frees: 0,
            large_mallocs: 0,
            total_alloc: 0,
            start: memstats(),
            pattern: Pattern::new(),
            ops: [0; 8],
            moved_reallocs: 0,
            in_place_reallocs: 0,
        }
    }

    fn live_bytes(&self) -> usize {
        self.live.iter().map(|b| b.kind.bytes()).sum()
    }

    fn counted_alloc(&mut self, kind: Kind) {
        self.mallocs += 1;
        self.total_alloc += kind.bytes() as u64;
        if let Kind::Large(_) = kind {
            self.large_mallocs += 1;
        }
    }

    /// Checks a block goheap just returned and adds it.
    fn add(&mut self, ptr: *mut u8, size: usize, align: usize, zeroed: bool, what: &str) {
        assert!(!ptr.is_null(), "{what}({size}, {align}) returned null");
        let kind = kind_of(size, align);
        assert_eq!(
            ptr as usize % align,
            0,
            "{what}({size}, {align}) = {ptr:p} misaligned"
        );
        // SAFETY: a live goheap block.
        let usable = unsafe { goheap::raw::usable_size(ptr) };
        assert!(usable >= size, "{what}({size}, {align}): usable {usable}");
        assert_eq!(
            usable,
            kind.bytes(),
            "{what}({size}, {align}): usable size vs {kind:?}"
        );
        if zeroed {
            assert!(
                is_zero(ptr, size),
                "{what}({size}, {align}) = {ptr:p} not zeroed"
            );
        }
        let b = Block {
            ptr,
            size,
            align,
            kind,
            id: self.next_id,
        };
        self.next_id += 1;
        self.counted_alloc(kind);
        self.pattern.fill(&b);
        self.live.push(b);
    }

    fn alloc(&mut self, size: usize, align: usize, how: usize) {
        let layout = Layout::from_size_align(size, align).unwrap();
        let (p, zeroed, what) = match how {
            // SAFETY: non-zero size.
            0 => (unsafe { GoHeap.alloc(layout) }, false, "alloc"),
            // SAFETY: non-zero size.
            1 => (unsafe { GoHeap.alloc_zeroed(layout) }, true, "alloc_zeroed"),
            _ if self.ops[2] % 2 == 0 => (goheap::raw::alloc(size, align), false, "raw::alloc"),
            _ => (
                goheap::raw::alloc_zeroed(size, align),
                true,
                "raw::alloc_zeroed",
            ),
        };
        self.ops[how.min(2)] += 1;
        self.add(p, size, align, zeroed, what);
    }

    /// Frees block `i` (sized dealloc or raw free), checking its contents.
    fn free(&mut self, i: usize, raw: bool) {
        let b = self.live.swap_remove(i);
        self.pattern.check(&b, b.size, "before free");
        if raw {
            // SAFETY: live goheap block, not used again.
            unsafe { goheap::raw::free(b.ptr) };
            self.ops[6] += 1;
        } else {
            let layout = Layout::from_size_align(b.size, b.align).unwrap();
            // SAFETY: allocated by goheap with this layout (or reallocated
            // to it), not used again.
            unsafe { GoHeap.dealloc(b.ptr, layout) };
            self.ops[5] += 1;
        }
        self.frees += 1;
    }

    fn realloc(&mut self, i: usize, new_size: usize, raw: bool) {
        let old = self.live[i];
        self.pattern.check(&old, old.size, "before realloc");
        let q = if raw {
            // SAFETY: live block allocated with alignment `old.align`.
            unsafe { goheap::raw::realloc(old.ptr, old.align, new_size) }
        } else {
            let layout = Layout::from_size_align(old.size, old.align).unwrap();
            // SAFETY: live block with this layout; new_size > 0 and fits.
            unsafe { GoHeap.realloc(old.ptr, layout, new_size) }
        };
        self.ops[if raw { 4 } else { 3 }] += 1;
        assert!(
            !q.is_null(),
            "realloc({}, {} -> {new_size}) returned null",
            old.size,
            old.align
        );
        let new_kind = kind_of(new_size, old.align);
        // What goheap must do: the model's expectations.
        let kind = match (old.kind, new_kind) {
            (Kind::Small(a), Kind::Small(b)) if a == b => {
                assert_eq!(q, old.ptr, "same class: realloc in place");
                old.kind
            }
            (Kind::Large(n), Kind::Large(m)) if m <= n => {
                assert_eq!(q, old.ptr, "large shrink: in place");
                // Pages are given back only when a quarter or more goes.
                if m * 4 <= n * 3 {
                    Kind::Large(m)
                } else {
                    old.kind
                }
            }
            (Kind::Large(n), Kind::Large(m)) if q == old.ptr => {
                // Grew into the free pages after it.
                self.total_alloc += ((m - n) * PAGE_SIZE) as u64;
                new_kind
            }
            _ => {
                assert_ne!(
                    q, old.ptr,
                    "{:?} -> {new_kind:?} cannot stay in place",
                    old.kind
                );
                new_kind
            }
        };
        if q == old.ptr {
            self.in_place_reallocs += 1;
        } else {
            self.moved_reallocs += 1;
            self.counted_alloc(kind);
            self.frees += 1;
        }
        let new = Block {
            ptr: q,
            size: new_size,
            align: old.align,
            kind,
            id: old.id,
        };
        assert_eq!(
            q as usize % old.align,
            0,
            "realloc lost alignment {}",
            old.align
        );
        // SAFETY: live goheap block.
        let usable = unsafe { goheap::raw::usable_size(q) };
        assert_eq!(
            usable,
            kind.bytes(),
            "usable size after realloc to {new_size}"
        );
        self.pattern
            .check(&new, old.size.min(new_size), "after realloc");
        self.pattern.fill(&new);
        self.live[i] = new;
    }

    /// Full check: contents, no overlap (by usable extent), statistics.
    fn check(&mut self) {
        self.ops[7] += 1;
        for b in &self.live {
            self.pattern.check(b, b.size, "check");
        }
        let mut spans: Vec<(usize, usize)> = self
            .live
            .iter()
            .map(|b| (b.ptr as usize, b.kind.bytes()))
            .collect();
        spans.sort_unstable();
        for w in spans.windows(2) {
            assert!(
                w[0].0 + w[0].1 <= w[1].0,
                "blocks overlap: {:#x}+{} and {:#x}",
                w[0].0,
                w[0].1,
                w[1].0
            );
        }
        self.check_stats();
    }

    fn check_stats(&self) {
        let s = memstats();
        let d = |now: u64, then: u64| now.wrapping_sub(then);
        let mallocs = d(s.mallocs, self.start.mallocs);
        let frees = d(s.frees, self.start.frees);
        assert_eq!(mallocs, self.mallocs, "mallocs delta");
        assert_eq!(frees, self.frees, "frees delta");
        assert_eq!(
            mallocs - frees,
            self.live.len() as u64,
            "mallocs - frees vs live blocks"
        );
        assert_eq!(
            s.heap_alloc as i64 - self.start.heap_alloc as i64,
            self.live_bytes() as i64,
            "heap_alloc delta vs live class sizes and pages"
        );
        assert_eq!(s.alloc, s.heap_alloc);
        assert_eq!(
            d(s.total_alloc, self.start.total_alloc),
            self.total_alloc,
            "total_alloc delta"
        );
        assert_eq!(s.heap_objects, s.mallocs - s.frees);
        assert!(
            s.heap_inuse >= s.heap_alloc,
            "heap_inuse {} < heap_alloc {}",
            s.heap_inuse,
            s.heap_alloc
        );
        assert!(
            s.heap_sys >= s.heap_inuse,
            "heap_sys {} < heap_inuse {}",
            s.heap_sys,
            s.heap_inuse
        );
        assert_eq!(s.heap_idle, s.heap_sys - s.heap_inuse);
        assert_eq!(s.heap_inuse % PAGE_SIZE as u64, 0);
        assert!(s.sys >= s.heap_sys);
        // By size class.
        let mut live_per_class = [0u64; NUM_SIZE_CLASSES];
        for b in &self.live {
            if let Kind::Small(c) = b.kind {
                live_per_class[c] += 1;
            }
        }
        let mut small_mallocs = 0;
        for (c, &live) in live_per_class.iter().enumerate().skip(1) {
            let (now, then) = (s.by_size[c], self.start.by_size[c]);
            assert_eq!(now.size as usize, class_size(c));
            let m = d(now.mallocs, then.mallocs);
            let f = d(now.frees, then.frees);
            assert_eq!(
                m.wrapping_sub(f),
                live,
                "class {c} ({} B) live",
                class_size(c)
            );
            small_mallocs += m;
        }
        assert_eq!(
            small_mallocs,
            mallocs - self.large_mallocs,
            "by_size mallocs vs small mallocs"
        );
    }

    fn free_all(&mut self, rng: &mut Rng) {
        while !self.live.is_empty() {
            let i = rng.below(self.live.len());
            let raw = rng.chance(30);
            self.free(i, raw);
        }
    }
}

/// Interesting sizes: every class boundary ±1, page multiples ±1 for large
/// objects, tiny sizes, and random sizes up to a few MiB.
fn random_size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=44 => {
            let c = rng.range(1, NUM_SIZE_CLASSES - 1);
            let s = class_size(c) as isize + rng.range(0, 2) as isize - 1;
            s.max(1) as usize
        }
        45..=59 => {
            // First size of a class: one past the previous class.
            let c = rng.range(1, NUM_SIZE_CLASSES - 1);
            class_size(c - 1) + 1
        }
        60..=74 => rng.range(1, 64),
        75..=84 => rng.range(1, MAX_SMALL_SIZE),
        85..=94 => {
            let pages = rng.range(4, 40);
            (pages * PAGE_SIZE + rng.range(0, 2) - 1).max(MAX_SMALL_SIZE + 1)
        }
        _ => rng.range(MAX_SMALL_SIZE + 1, 4 << 20),
    }
}

fn random_align(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=69 => 1 << rng.below(4),      // 1..=8
        70..=89 => 1 << rng.range(4, 13), // 16..=8 KiB: aligned classes
        _ => 1 << rng.range(14, 20),      // 16 KiB..=1 MiB: pages
    }
}

fn run_seed(seed: u64, ops: usize) {
    let mut rng = Rng(seed);
    let mut m = Model::new();
    // Keep the live set bounded so the test stays fast and small.
    let max_live = 3000;
    let max_bytes = 96 << 20;
    for op in 0..ops {
        let full = m.live.len() >= max_live || m.live_bytes() >= max_bytes;
        match rng.below(100) {
            // A burst of one layout: fills spans, overflows the thread's
            // free list and moves spans between central lists.
            0 if !full => {
                let size = rng.range(1, 2048);
                let align = 1 << rng.below(4);
                for _ in 0..rng.range(50, 600) {
                    m.alloc(size, align, 0);
                }
            }
            1..=35 if !full => {
                let (size, align) = (random_size(&mut rng), random_align(&mut rng));
                let how = rng.below(3);
                m.alloc(size, align, how);
            }
            36..=55 if !m.live.is_empty() => {
                // Large blocks are few among the live ones: look for one
                // now and then so large-to-large reallocs (shrink in place
                // or not, grow in place or move) are common too.
                let mut i = rng.below(m.live.len());
                if rng.chance(40) {
                    for _ in 0..8 {
                        if let Kind::Large(_) = m.live[i].kind {
                            break;
                        }
                        i = rng.below(m.live.len());
                    }
                }
                let old = m.live[i].size;
                let new_size = match rng.below(10) {
                    // Near the old size: same class or page count, or the
                    // neighbour.
                    0..=3 => (old as isize + rng.range(0, 64) as isize - 32).max(1) as usize,
                    // Scaled by 1/4 .. 2.
                    4..=6 => (old * rng.range(16, 128) / 64).clamp(1, MAX_BLOCK),
                    _ => random_size(&mut rng),
                };
                let raw = rng.chance(30);
                m.realloc(i, new_size, raw);
            }
            56..=97 if !m.live.is_empty() => {
                // Free a run of blocks, newest or random.
                let n = if rng.chance(10) { rng.range(1, 200) } else { 1 };
                for _ in 0..n.min(m.live.len()) {
                    let i = if rng.chance(50) {
                        m.live.len() - 1
                    } else {
                        rng.below(m.live.len())
                    };
                    let raw = rng.chance(25);
                    m.free(i, raw);
                }
            }
            _ => {
                if op % 16 == 0 {
                    m.check();
                } else {
                    m.check_stats();
                }
            }
        }
    }
    m.check();
    m.free_all(&mut rng);
    m.check();
    let s = memstats();
    eprintln!(
        "seed {seed:#x}: {} ops ({}), reallocs moved {} / in place {}, heap_inuse {} KiB, heap_sys {} MiB",
        ops,
        OP_NAMES.iter().zip(m.ops).map(|(n, c)| format!("{n} {c}")).collect::<Vec<_>>().join(", "),
        m.moved_reallocs,
        m.in_place_reallocs,
        s.heap_inuse >> 10,
        s.heap_sys >> 20
    );
}

/// Spans and pages in use once every block is freed, this thread's cache
/// is flushed and the central lists' spare spans are given back
/// (`free_os_memory` does both): nothing of ours may remain.
fn assert_nothing_in_use(start: &MemStats) {
    goheap::free_os_memory();
    let s = memstats();
    assert_eq!(s.mallocs - start.mallocs, s.frees - start.frees);
    assert_eq!(s.heap_alloc, start.heap_alloc);
    assert_eq!(
        s.heap_inuse, start.heap_inuse,
        "spans leaked: heap_inuse did not come back"
    );
    assert_eq!(s.mspan_inuse, start.mspan_inuse, "span structs leaked");
}

#[test]
fn random_sequences_match_the_model() {
    let _g = serial();
    goheap::flush_thread_cache();
    let start = memstats();
    let ops = env_usize("GOHEAP_MODEL_OPS", 40_000);
    let seeds = env_usize("GOHEAP_MODEL_SEEDS", 3);
    for k in 0..seeds as u64 {
        run_seed(0x5eed_0000 + k * 0x1_0001, ops);
        assert_nothing_in_use(&start);
    }
}

/// Every class boundary, both sides, at every alignment up to 1 MiB, with
/// realloc across each boundary; then everything freed in address order.
#[test]
fn every_class_boundary_and_alignment() {
    let _g = serial();
    goheap::flush_thread_cache();
    let start = memstats();
    let mut m = Model::new();
    let mut rng = Rng(7);
    let mut sizes: Vec<usize> = (1..NUM_SIZE_CLASSES)
        .flat_map(|c| [class_size(c) - 1, class_size(c), class_size(c) + 1])
        .filter(|&s| s > 0)
        .collect();
    sizes.extend([
        4 * PAGE_SIZE + 1,
        64 * PAGE_SIZE - 1,
        1 << 20,
        (3 << 20) + 5,
    ]);
    for align_log in 0..=20 {
        let align = 1usize << align_log;
        for &size in &sizes {
            m.alloc(size, align, (size + align_log) % 3);
        }
        m.check();
        // Grow and shrink across the next boundary.
        for i in (0..m.live.len()).rev().step_by(3) {
            let s = m.live[i].size;
            m.realloc(i, s + 1, i % 2 == 0);
            let s = m.live[i].size;
            m.realloc(i, s - 1, i % 4 == 1);
        }
        m.check();
        m.live.sort_by_key(|b| b.ptr as usize);
        while !m.live.is_empty() {
            m.free(0, rng.chance(50));
        }
        m.check();
    }
    assert_nothing_in_use(&start);
}

/// Memory goheap hands out again must be zeroed by `alloc_zeroed`, for
/// every class (reused slots of the thread's list, of a span's freed
/// slots, of a span recycled by the page heap) and for large objects.
#[test]
fn alloc_zeroed_after_reuse() {
    let _g = serial();
    goheap::flush_thread_cache();
    let start = memstats();
    let mut m = Model::new();
    let mut rng = Rng(99);
    for class in 1..NUM_SIZE_CLASSES {
        let size = class_size(class);
        let n = (3 * PAGE_SIZE / size).clamp(4, 300);
        for round in 0..3 {
            for _ in 0..n {
                m.alloc(size, 8, if round == 0 { 0 } else { 1 });
            }
            // Dirty memory goes back: own list, central list, page heap.
            m.free_all(&mut rng);
            if round == 1 {
                goheap::flush_thread_cache();
            }
        }
    }
    for pages in [5, 9, 64, 200] {
        for _ in 0..3 {
            m.alloc(pages * PAGE_SIZE - 3, 8, 0);
            m.free_all(&mut rng);
            m.alloc(pages * PAGE_SIZE - 3, 8, 1);
            m.alloc(pages * PAGE_SIZE / 2, 8, 1);
            m.free_all(&mut rng);
        }
    }
    m.check();
    assert_nothing_in_use(&start);
}

/// Edge cases of the unsized (C) entry points.
#[test]
fn raw_api_edge_cases() {
    let _g = serial();
    goheap::flush_thread_cache();
    let start = memstats();
    // SAFETY: each pointer is a live goheap block when used and freed once.
    unsafe {
        // Zero-size requests get a real, distinct, freeable block.
        for align in [1, 8, 16, 4096, 8192, 16384, 1 << 20] {
            let a = goheap::raw::alloc(0, align);
            let b = goheap::raw::alloc(0, align);
            assert!(!a.is_null() && !b.is_null() && a != b, "align {align}");
            assert_eq!(a as usize % align, 0);
            assert!(goheap::raw::usable_size(a) >= 1);
            goheap::raw::free(a);
            goheap::raw::free(b);
        }
        goheap::raw::free(std::ptr::null_mut());

        // realloc to 0 keeps a valid block, whatever the object kind.
        for (size, align) in [(100, 8), (100_000, 8), (100_000, 16384), (10, 1 << 20)] {
            let p = goheap::raw::alloc(size, align);
            assert!(!p.is_null());
            p.write_bytes(0xab, size);
            let q = goheap::raw::realloc(p, align, 0);
            assert!(!q.is_null(), "realloc({size}, {align}) to 0");
            assert_eq!(q as usize % align, 0);
            assert!(goheap::raw::usable_size(q) >= 1);
            // And it can grow again.
            let r = goheap::raw::realloc(q, align, size);
            assert!(!r.is_null());
            assert!(goheap::raw::usable_size(r) >= size);
            r.write_bytes(0xcd, size);
            goheap::raw::free(r);
        }

        // realloc may ask for a stricter alignment than the block had
        // ("allocated with alignment `align` or less").
        let keep = goheap::raw::alloc(100_000, 8); // so the next one is not 1 MiB-aligned by luck
        for (size, new_size, align) in [
            (100_000, 50_000, 1 << 20),
            (100_000, 100_000, 64 << 10),
            (100_000, 300_000, 1 << 16),
            (40_000, 40_000, 16384),
            (48, 48, 64),
            (48, 4000, 4096),
        ] {
            let p = goheap::raw::alloc(size, 8);
            for i in 0..size.min(new_size) {
                *p.add(i) = i as u8;
            }
            let q = goheap::raw::realloc(p, align, new_size);
            assert!(!q.is_null());
            assert_eq!(
                q as usize % align,
                0,
                "realloc({size} -> {new_size}) to align {align}: {q:p}"
            );
            assert!(goheap::raw::usable_size(q) >= new_size);
            for i in 0..size.min(new_size) {
                assert_eq!(*q.add(i), i as u8);
            }
            goheap::raw::free(q);
        }
        goheap::raw::free(keep);

        // Requests too big to satisfy return null, not abort.
        assert!(goheap::raw::alloc(usize::MAX - 4096, 8).is_null());
        assert!(goheap::raw::alloc(goheap::MAX_ALLOC + 1, 8).is_null());
        assert!(goheap::raw::alloc(1 << 62, 4096).is_null());
        let layout = Layout::from_size_align(isize::MAX as usize - (1 << 20), 1 << 20).unwrap();
        assert!(GoHeap.alloc(layout).is_null());
        let p = goheap::raw::alloc(64, 8);
        assert!(goheap::raw::realloc(p, 8, usize::MAX / 2).is_null());
        assert!(
            goheap::raw::usable_size(p) >= 64,
            "failed realloc leaves the block alone"
        );
        goheap::raw::free(p);
    }
    assert_nothing_in_use(&start);
}
