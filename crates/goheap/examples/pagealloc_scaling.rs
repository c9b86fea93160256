//! How the page allocator's cost per operation changes as the heap fills
//! with live spans.
//!
//! ```sh
//! cargo run --release -p goheap --features internals --example pagealloc_scaling
//! ```
//!
//! The heap grows from 1 to 100 000 live spans of 1 to 10 pages; while it
//! grows, a random third of the new spans is freed again, so the free space
//! is fragmented. At each checkpoint the program runs rounds of "free k
//! random live spans, then allocate k new ones" (k = a tenth of the live
//! spans, at least 1), timing the frees and the allocations separately.
//! The heap grows by 64 MiB whenever an allocation does not fit; growth is
//! not timed.
//!
//! The page allocator never touches the memory it manages, only its own
//! metadata, so the heap here is a range of made-up addresses: nothing is
//! mapped for it. The metadata is real (from `SystemOs`).

use goheap::internals::{PageAlloc, CHUNK_BYTES};
use goheap::os::SystemOs;
use goheap::sizeclass::PAGE_SIZE;
use std::time::{Duration, Instant};

static OS: SystemOs = SystemOs;

/// Where the made-up heap starts (1 TiB).
const HEAP_BASE: usize = 1 << 40;
/// Growth step.
const GROW_BYTES: usize = 16 * CHUNK_BYTES;
/// Timed operations of each kind per checkpoint.
const OPS: usize = 200_000;

/// xorshift64*: deterministic and fast.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as usize % n
    }
}

struct Heap {
    pages: PageAlloc,
    end: usize,
}

impl Heap {
    fn grow(&mut self) {
        assert!(
            self.pages.grow(self.end, GROW_BYTES),
            "page allocator refused to grow"
        );
        self.end += GROW_BYTES;
    }

    /// Allocates, growing the heap when needed; returns the address.
    fn alloc(&mut self, npages: usize) -> usize {
        loop {
            if let Some((addr, _)) = self.pages.alloc(npages) {
                return addr;
            }
            self.grow();
        }
    }
}

/// The cost of one `Instant::now()` + `elapsed()` pair, subtracted from
/// each timed batch.
fn timer_overhead() -> Duration {
    let mut samples: Vec<Duration> = (0..1001)
        .map(|_| {
            let t = Instant::now();
            t.elapsed()
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let mut heap = Heap {
        pages: PageAlloc::new(),
        end: HEAP_BASE,
    };
    assert!(
        heap.pages.init(&OS),
        "cannot reserve page allocator metadata"
    );
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let overhead = timer_overhead();
    let mut live: Vec<(usize, usize)> = Vec::with_capacity(200_000);
    let mut victims: Vec<(usize, usize)> = Vec::with_capacity(20_000);
    let mut sizes: Vec<usize> = Vec::with_capacity(20_000);

    println!(
        "timer overhead subtracted per batch: {} ns",
        overhead.as_nanos()
    );
    println!(
        "{:>11} {:>9} {:>11} {:>9} {:>9} {:>10}",
        "live spans", "heap MiB", "free pages", "ns/alloc", "ns/free", "meta KiB"
    );
    for target in [1, 10, 100, 1_000, 10_000, 100_000] {
        // Fill up to `target`, fragmenting as we go.
        while live.len() < target {
            let n = 1 + rng.below(10);
            live.push((heap.alloc(n), n));
            if live.len() > 1 && rng.below(3) == 0 {
                let (a, n) = live.swap_remove(rng.below(live.len()));
                heap.pages.free(a, n);
            }
        }

        let k = (target / 10).max(1);
        let (mut alloc_time, mut free_time) = (Duration::ZERO, Duration::ZERO);
        let mut done = 0;
        while done < OPS {
            victims.clear();
            for _ in 0..k {
                victims.push(live.swap_remove(rng.below(live.len())));
            }
            let t = Instant::now();
            for &(a, n) in &victims {
                heap.pages.free(a, n);
            }
            free_time += t.elapsed().saturating_sub(overhead);

            sizes.clear();
            sizes.extend((0..k).map(|_| 1 + rng.below(10)));
            let mut t = Instant::now();
            for &n in &sizes {
                let addr = loop {
                    if let Some((addr, _)) = heap.pages.alloc(n) {
                        break addr;
                    }
                    // Out of room: grow, untimed.
                    alloc_time += t.elapsed().saturating_sub(overhead);
                    heap.grow();
                    t = Instant::now();
                };
                live.push((addr, n));
            }
            alloc_time += t.elapsed().saturating_sub(overhead);
            done += k;
        }

        println!(
            "{:>11} {:>9} {:>11} {:>9.1} {:>9.1} {:>10}",
            live.len(),
            (heap.end - HEAP_BASE) >> 20,
            heap.pages.free_pages(),
            alloc_time.as_nanos() as f64 / done as f64,
            free_time.as_nanos() as f64 / done as f64,
            heap.pages.metadata_bytes() >> 10,
        );
    }
    let used: usize = live.iter().map(|&(_, n)| n).sum();
    println!(
        "end: {} live pages ({} MiB) in a {} MiB heap",
        used,
        (used * PAGE_SIZE) >> 20,
        (heap.end - HEAP_BASE) >> 20
    );
}
