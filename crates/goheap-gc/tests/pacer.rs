//! The pacer, on steady workloads with a fixed live heap: the heap stays
//! within its goal (+10 %), the cycles match the goal's arithmetic (±10 %),
//! `off` never collects, and the memory limit holds with the malloc heap's
//! memory counted. One test, run as its own process: the settings are
//! process-wide.

use goheap_gc::{Gc, Trace};

#[global_allocator]
static GLOBAL: goheap::GoHeap = goheap::GoHeap;

/// A 64-byte object with a handle (a scan object, with its header).
#[derive(Trace)]
struct Obj {
    next: Option<Gc<Obj>>,
    pad: [u64; 6],
}

fn obj(i: u64) -> Gc<Obj> {
    Gc::new(Obj {
        next: None,
        pad: [i; 6],
    })
}

/// The slot bytes of one `Obj` (header + value, rounded to its class).
const SLOT: u64 = 64;

/// Allocates `bytes` of garbage in `Obj`s; returns the largest `heap_live`
/// seen (sampled every 4096 objects) and the cycles that ran.
fn churn(bytes: u64) -> (u64, u32) {
    let n0 = goheap_gc::stats().cycles.num_gc;
    let mut peak = 0;
    for i in 0..bytes / SLOT {
        std::hint::black_box(obj(i));
        if i % 4096 == 0 {
            peak = peak.max(goheap_gc::stats().heap_live);
        }
    }
    (peak, goheap_gc::stats().cycles.num_gc - n0)
}

#[test]
fn the_pacer_keeps_the_goal_and_the_limit() {
    // A fixed live heap of 32 MiB.
    let live_bytes: u64 = 32 << 20;
    let live: Vec<Gc<Obj>> = (0..live_bytes / SLOT).map(obj).collect();
    goheap_gc::collect();
    let s = goheap_gc::stats();
    let marked = s.heap_marked;
    assert!(
        marked >= live_bytes && marked < live_bytes + live_bytes / 10,
        "marked {marked}"
    );

    // GOGC=100: goal = 2 × marked; each cycle starts at the trigger, 95 %
    // of the way to the goal, and frees what was allocated since the last,
    // so cycles ≈ garbage / (0.95 × (goal − marked)).
    assert_eq!(s.cycles.next_gc, marked * 2);
    let garbage: u64 = 2 << 30;
    let (peak, cycles) = churn(garbage);
    let goal = goheap_gc::stats().cycles.next_gc;
    assert!(
        peak <= goal + goal / 10,
        "peak heap {peak} over goal {goal} + 10 %"
    );
    // The trigger is 95 % of the way from the marked heap to the goal.
    let expect = garbage as f64 / ((goal - marked) as f64 * 0.95);
    assert!(
        (cycles as f64 - expect).abs() <= expect * 0.1,
        "{cycles} cycles, the arithmetic says {expect:.1}"
    );

    // GOGC=50: the goal is 1.5 × marked; twice the cycles.
    goheap_gc::set_gc_percent(50);
    let marked = goheap_gc::stats().heap_marked;
    assert_eq!(goheap_gc::stats().cycles.next_gc, marked + marked / 2);
    let (peak, cycles50) = churn(garbage / 2);
    let goal = goheap_gc::stats().cycles.next_gc;
    assert!(
        peak <= goal + goal / 10,
        "peak heap {peak} over goal {goal} + 10 %"
    );
    let expect = (garbage / 2) as f64 / ((goal - marked) as f64 * 0.95);
    assert!(
        (cycles50 as f64 - expect).abs() <= expect * 0.1,
        "{cycles50} cycles at GOGC=50, the arithmetic says {expect:.1}"
    );

    // Off: no cycle, whatever is allocated.
    assert_eq!(goheap_gc::set_gc_percent(-1), 50);
    assert_eq!(goheap_gc::stats().cycles.next_gc, u64::MAX);
    let (_, cycles_off) = churn(256 << 20);
    assert_eq!(cycles_off, 0);
    goheap_gc::collect();

    // The memory limit counts the malloc heap: with 96 MiB of malloc
    // memory under a 192 MiB limit, GOGC=1000 alone would let the
    // collected heap reach 11 × 32 MiB; the limit keeps all of goheap's
    // memory under it instead.
    goheap_gc::set_gc_percent(1000);
    // What the phases above left mapped goes back first (the limit counts
    // mapped memory, free pages too, until they are released).
    goheap_gc::free_os_memory();
    let limit: usize = 192 << 20;
    goheap::set_memory_limit(limit);
    let malloc: Vec<Vec<u8>> = (0..96).map(|i| vec![i as u8; 1 << 20]).collect();
    let n0 = goheap_gc::stats().cycles.num_gc;
    let mut mapped_peak = 0;
    for i in 0..(1u64 << 30) / SLOT {
        std::hint::black_box(obj(i));
        if i % 4096 == 0 {
            mapped_peak = mapped_peak.max(goheap::gc_support::mapped_bytes());
        }
    }
    let cycles_limit = goheap_gc::stats().cycles.num_gc - n0;
    assert!(
        mapped_peak <= limit + limit / 10,
        "goheap's memory peaked at {} MiB under a {} MiB limit",
        mapped_peak >> 20,
        limit >> 20
    );
    // GOGC=1000 alone: 1 GiB / (10 × 32 MiB) ≈ 3 cycles; the limit needs
    // more, but its floor keeps them far from continuous (≥ 1 MiB each).
    assert!(cycles_limit > 5, "{cycles_limit} cycles under the limit");
    assert!(cycles_limit < 1024, "{cycles_limit} cycles under the limit");
    assert!(malloc.iter().enumerate().all(|(i, v)| v[4096] == i as u8));
    assert!(live.iter().enumerate().all(|(i, o)| o.pad[5] == i as u64));
    goheap::set_memory_limit(usize::MAX);
}
