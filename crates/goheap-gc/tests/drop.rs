//! Dead objects' `Drop`: each runs exactly once, buffers go back to the
//! malloc heap (this binary's global allocator is goheap's, so its
//! statistics show them), and a `Drop` that calls into the collector
//! neither deadlocks nor collects from inside the collection.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use goheap_gc::{Gc, GcRefCell, Trace};

#[global_allocator]
static GLOBAL: goheap::GoHeap = goheap::GoHeap;

const N: usize = 20_000;
static DROPS: [AtomicU8; N] = [const { AtomicU8::new(0) }; N];
static ALLOCATED_IN_DROP: AtomicUsize = AtomicUsize::new(0);

#[derive(Trace)]
#[trace(no_gc)]
struct Counted(usize);

impl Drop for Counted {
    fn drop(&mut self) {
        DROPS[self.0].fetch_add(1, Ordering::Relaxed);
        if self.0 % 1000 == 0 {
            // From a `Drop` the collector runs: a collection returns at
            // once, and allocating works.
            goheap_gc::collect();
            let g = Gc::new(self.0 as u64);
            assert_eq!(*g, self.0 as u64);
            ALLOCATED_IN_DROP.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[derive(Trace)]
struct Holder {
    counted: Counted,
    next: GcRefCell<Option<Gc<Holder>>>,
}

#[test]
fn every_dead_object_is_dropped_exactly_once_and_buffers_return() {
    // Objects with drops, in cycles and chains, some alive across cycles.
    let mut keep = Vec::new();
    let mut prev: Option<Gc<Holder>> = None;
    for i in 0..N {
        let h = Gc::new(Holder {
            counted: Counted(i),
            next: GcRefCell::new(prev.take()),
        });
        if i % 10 == 9 {
            // Close a cycle of ten and drop it.
            let mut last = h.clone();
            loop {
                let n = last.next.borrow().clone();
                match n {
                    Some(n) => last = n,
                    None => break,
                }
            }
            *last.next.borrow_mut() = Some(h.clone());
            if i % 100 == 99 {
                keep.push(h);
            }
        } else {
            prev = Some(h);
        }
        if i % 2000 == 0 {
            goheap_gc::collect();
        }
    }
    drop(prev);
    goheap_gc::collect();
    for (i, d) in DROPS.iter().enumerate() {
        let kept = i % 100 >= 90;
        assert_eq!(
            d.load(Ordering::Relaxed),
            !kept as u8,
            "object {i} (kept: {kept})"
        );
    }
    drop(keep);
    goheap_gc::collect();
    goheap_gc::collect();
    for (i, d) in DROPS.iter().enumerate() {
        assert_eq!(d.load(Ordering::Relaxed), 1, "object {i}");
    }
    assert_eq!(ALLOCATED_IN_DROP.load(Ordering::Relaxed), N / 1000);

    // Buffers: 64 MiB of malloc memory owned by collected objects.
    goheap::flush_thread_cache();
    let before = goheap::memstats().heap_alloc;
    let bufs: Vec<Gc<Vec<u8>>> = (0..64).map(|i| Gc::new(vec![i as u8; 1 << 20])).collect();
    goheap::flush_thread_cache();
    let held = goheap::memstats().heap_alloc;
    assert!(held >= before + (64 << 20), "{before} -> {held}");
    assert!(bufs.iter().enumerate().all(|(i, b)| b[12345] == i as u8));
    // goheap's memory classes still partition its total, the collected
    // heap's spans one of them.
    let m = goheap::metrics();
    assert!(m.heap_collected > 0, "{m:?}");
    assert_eq!(
        m.heap_objects
            + m.heap_unused
            + m.heap_collected
            + m.heap_free
            + m.heap_released
            + m.metadata_mspan_inuse
            + m.metadata_mspan_free
            + m.metadata_mcache_inuse
            + m.metadata_mcache_free
            + m.metadata_other,
        m.total,
        "{m:?}"
    );
    assert_eq!(m.heap_collected, goheap_gc::stats().span_bytes);
    // goheap's MemStats carry the collector's figures.
    let ms = goheap::memstats();
    let gs = goheap_gc::stats();
    assert_eq!(ms.num_gc, gs.cycles.num_gc);
    assert!(ms.num_gc >= 10);
    assert_eq!(ms.pause_total_ns, gs.cycles.pause_total_ns);
    assert_eq!(ms.gc_heap_inuse, gs.span_bytes);
    assert_eq!(ms.next_gc, gs.cycles.next_gc);
    assert!(ms.last_gc > 0 && ms.gc_cpu_fraction > 0.0 && ms.gc_cpu_fraction < 1.0);
    let latest = ms.pause_ns[(ms.num_gc as usize + 255) % 256];
    assert!(latest > 0 && latest <= ms.pause_total_ns);
    drop(bufs);
    goheap_gc::collect();
    goheap::flush_thread_cache();
    let after = goheap::memstats().heap_alloc;
    assert!(
        after < before + (4 << 20),
        "the buffers' memory went back to the malloc heap: {before} -> {held} -> {after}"
    );
    let rss_held = goheap::process_rss();
    let released = goheap_gc::free_os_memory();
    assert!(released > 0);
    let rss_after = goheap::process_rss();
    assert!(rss_after <= rss_held, "RSS {rss_held} -> {rss_after}");
}
