//! Memory goes back to the OS: the background scavenger, `free_os_memory`,
//! the memory limit, and the memory classes. goheap is the global
//! allocator here, so RSS is goheap's; the tests run one at a time because
//! they measure the whole process.

mod common;

use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: goheap::GoHeap = goheap::GoHeap;

static SERIAL: Mutex<()> = Mutex::new(());

const MIB: u64 = 1 << 20;

/// RSS the test process has besides goheap's heap: code, libc, test
/// harness, thread stacks, and goheap's own metadata.
const SLACK: u64 = 24 * MIB;

fn rss() -> u64 {
    goheap::process_rss()
}

/// Allocates about `total` bytes from `threads` threads, half in small
/// objects (16 B – 2 KiB) and half in large ones (40 KiB – 1 MiB), all
/// written, and returns them.
fn allocate(total: usize, threads: usize) -> Vec<Vec<Vec<u8>>> {
    let per = total / threads;
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            thread::spawn(move || {
                let mut v = Vec::new();
                let (mut done, mut i) = (0usize, 0usize);
                while done < per {
                    let size = if (i + t) % 2 == 0 {
                        16 + (i * 37) % 2000
                    } else {
                        40_000 + (i * 7919) % 1_000_000
                    };
                    v.push(vec![(i % 251) as u8; size]);
                    done += size;
                    i += 1;
                }
                v
            })
        })
        .collect();
    hs.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Starts a test from a clean slate: nothing free stays resident.
fn clean_base() -> u64 {
    goheap::free_os_memory();
    rss()
}

/// Waits up to `secs` for RSS to drop to `bound`; returns RSS then.
fn wait_for_rss(bound: u64, secs: u64) -> u64 {
    let t = Instant::now();
    loop {
        let r = rss();
        if r <= bound || t.elapsed() > Duration::from_secs(secs) {
            return r;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn rss_falls_after_a_gigabyte_is_freed_without_any_call() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let base = clean_base();
    let before = goheap::memstats().heap_alloc;
    let m0 = goheap::metrics();
    let bg_before = m0.scavenged_background;
    let data = allocate(1 << 30, 4);
    let peak = rss();
    assert!(
        goheap::memstats().heap_alloc >= before + (1 << 30),
        "did not allocate 1 GiB"
    );
    assert!(
        peak >= 1 << 30,
        "allocated 1 GiB: RSS only {} MiB",
        peak / MIB
    );
    drop(data);
    let live = goheap::memstats().heap_alloc;
    let bound = live + live / 10 + base + SLACK;
    let t = Instant::now();
    let after = wait_for_rss(bound, 5);
    assert!(
        after <= bound,
        "RSS {} MiB after {:?}, live {} MiB, bound {} MiB",
        after / MIB,
        t.elapsed(),
        live / MIB,
        bound / MIB
    );
    // The background scavenger releases the rest once the heap has been
    // quiet for 100 ms (before that it holds to the recent peak's goal,
    // see `scavenger.rs`): wait for its cycle, without calling anything
    // that releases memory.
    let waited = Instant::now();
    while goheap::metrics().scavenger_cycles == m0.scavenger_cycles
        && waited.elapsed() < Duration::from_secs(5)
    {
        thread::sleep(Duration::from_millis(20));
    }
    let m = goheap::metrics();
    // Who released it (the background scavenger, unless something else
    // got there first): reported, not asserted, since timing decides.
    eprintln!(
        "background released {} MiB (forced {} MiB, limit {} MiB), RSS {} MiB after {:?}",
        (m.scavenged_background - bg_before) / MIB,
        (m.scavenged_forced - m0.scavenged_forced) / MIB,
        (m.scavenged_limit - m0.scavenged_limit) / MIB,
        after / MIB,
        t.elapsed()
    );
    assert!(
        m.scavenger_cycles > m0.scavenger_cycles,
        "the background scavenger never ran"
    );
}

#[test]
fn free_os_memory_releases_at_once() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    goheap::set_background_scavenger(false);
    let base = clean_base();
    let data = allocate(256 << 20, 2);
    drop(data);
    let held = rss();
    let released = goheap::free_os_memory();
    let after = rss();
    goheap::set_background_scavenger(true);
    assert!(
        released as u64 >= 200 * MIB,
        "released {} MiB",
        released as u64 / MIB
    );
    assert!(
        after + 200 * MIB <= held,
        "RSS {} MiB → {} MiB",
        held / MIB,
        after / MIB
    );
    assert!(
        after <= base + SLACK,
        "RSS {} MiB, started at {} MiB",
        after / MIB,
        base / MIB
    );
}

#[test]
fn scattered_survivors_keep_only_their_spans() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let base = clean_base();
    let inuse_before = goheap::memstats().heap_inuse;
    // 256 MiB of 256-byte objects; keep one in 64 (one per 2 spans of 32).
    let mut all: Vec<Box<[u8; 256]>> = (0..(256 << 20) / 256)
        .map(|i| Box::new([i as u8; 256]))
        .collect();
    let kept: Vec<Box<[u8; 256]>> = all
        .drain(..)
        .enumerate()
        .filter(|(i, _)| i % 64 == 0)
        .map(|(_, b)| b)
        .collect();
    drop(all);
    goheap::flush_thread_cache();
    let ms = goheap::memstats();
    // Every span that lost all its objects went back to the page heap: the
    // in-use heap grew by the spans survivors occupy (one 8 KiB span each,
    // half of the spans).
    let survivor_spans = kept.len() as u64 * 8192;
    let grown = ms.heap_inuse - inuse_before;
    assert!(
        grown <= survivor_spans + survivor_spans / 10 + 4 * MIB,
        "heap in use grew {} MiB, survivors' spans {} MiB",
        grown / MIB,
        survivor_spans / MIB
    );
    let bound = ms.heap_inuse + ms.heap_inuse / 10 + base + SLACK;
    let after = wait_for_rss(bound, 5);
    assert!(
        after <= bound,
        "RSS {} MiB, bound {} MiB",
        after / MIB,
        bound / MIB
    );
    // free_os_memory also releases the free OS pages inside those spans:
    // each survivor then pins one 4 KiB page, not its 8 KiB span.
    goheap::free_os_memory();
    let m = goheap::metrics();
    let pinned = kept.len() as u64 * 4096;
    assert!(
        m.heap_unused_released >= survivor_spans / 2 - 4 * MIB,
        "{m:?}"
    );
    let after = rss();
    assert!(
        after <= base + pinned + pinned / 10 + SLACK,
        "RSS {} MiB after free_os_memory, survivors pin {} MiB",
        after / MIB,
        pinned / MIB
    );
    for (i, b) in kept.iter().enumerate() {
        assert!(b.iter().all(|&x| x == (i * 64) as u8));
    }
}

#[test]
fn released_memory_is_reused_correctly() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = allocate(128 << 20, 2);
    drop(data);
    goheap::free_os_memory();
    // Zeroed allocations over released pages are zero; plain ones are
    // usable and keep what is written.
    for size in [24usize, 1000, 5000, 40_000, 300_000, 2 << 20] {
        let v: Vec<Vec<u8>> = (0..64).map(|_| vec![0u8; size]).collect();
        assert!(v.iter().all(|b| b.iter().all(|&x| x == 0)), "size {size}");
        let w: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8 + 1; size]).collect();
        for (i, b) in w.iter().enumerate() {
            assert!(b.iter().all(|&x| x == i as u8 + 1));
        }
    }
}

#[test]
fn memory_limit_keeps_mapped_memory_near_it() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    goheap::set_background_scavenger(false);
    clean_base();
    let limit = goheap::metrics().mapped_not_released as usize + (128 << 20);
    let old = goheap::set_memory_limit(limit);
    // Each phase allocates 32 MiB in objects of one size, keeps every other
    // one and frees the rest, leaving holes no later (larger) object fits:
    // without the limit the holes would pile up as free resident memory
    // (the background scavenger is off). Live memory ends at 96 MiB, under
    // the 128 MiB headroom; live plus holes would reach 192 MiB.
    let mut kept: Vec<Vec<u8>> = Vec::new();
    let mut worst = 0;
    for phase in 0..6usize {
        let size = (40 + 16 * phase) << 10;
        for (i, v) in (0..(32 << 20) / size)
            .map(|_| vec![7u8; size])
            .enumerate()
            .collect::<Vec<_>>()
        {
            if i % 2 == 0 {
                kept.push(v);
            }
        }
        worst = worst.max(goheap::metrics().mapped_not_released);
    }
    let m = goheap::metrics();
    drop(kept);
    goheap::set_memory_limit(old);
    goheap::set_background_scavenger(true);
    assert!(
        m.scavenged_limit > 0,
        "the limit never had to release memory"
    );
    assert!(
        worst <= limit as u64 + 16 * MIB,
        "mapped {} MiB under a {} MiB limit",
        worst / MIB,
        limit as u64 / MIB
    );
}

#[test]
fn hard_limit_makes_allocation_fail() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    goheap::free_os_memory();
    let limit = goheap::metrics().mapped_not_released as usize + (64 << 20);
    let old = goheap::set_memory_limit(limit);
    goheap::set_hard_limit(true);
    let layout = std::alloc::Layout::from_size_align(32 << 20, 8).unwrap();
    // SAFETY: non-zero size.
    let a = unsafe { std::alloc::alloc(layout) };
    // SAFETY: as above.
    let b = unsafe { std::alloc::alloc(layout) };
    // SAFETY: as above.
    let c = unsafe { std::alloc::alloc(layout) };
    let failures = goheap::metrics().limit_failures;
    goheap::set_hard_limit(false);
    goheap::set_memory_limit(old);
    assert!(!a.is_null(), "32 MiB fits under the limit");
    assert!(
        b.is_null() || c.is_null(),
        "96 MiB past a 64 MiB headroom must fail"
    );
    assert!(failures > 0);
    for p in [a, b, c] {
        if !p.is_null() {
            // SAFETY: allocated above with this layout.
            unsafe { std::alloc::dealloc(p, layout) };
        }
    }
}

#[test]
fn memory_classes_add_up_across_a_random_workload() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    goheap::set_background_scavenger(false);
    let _on_again = OnDrop(|| goheap::set_background_scavenger(true));
    let mut rng = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut live: Vec<Vec<u8>> = Vec::new();
    for step in 0..20_000 {
        let r = next();
        if r % 3 == 0 && !live.is_empty() {
            let i = (next() as usize) % live.len();
            live.swap_remove(i);
        } else {
            let size = match r % 10 {
                0 => 33_000 + (next() % 500_000) as usize,
                _ => 1 + (next() % 4000) as usize,
            };
            live.push(vec![1u8; size]);
        }
        if step % 997 == 0 {
            if step % 3 == 0 {
                goheap::free_os_memory();
            }
            let m = goheap::metrics();
            let s = goheap::memstats();
            assert_eq!(common::all_classes(&m), m.total, "{m:?}");
            assert_eq!(common::heap_classes(&m), s.heap_sys);
            assert_eq!(m.metadata_mspan_inuse + m.metadata_mspan_free, s.mspan_sys);
            assert_eq!(
                m.mapped_not_released,
                m.total - m.heap_released - m.heap_unused_released
            );
            assert!(m.heap_unused_released <= m.heap_unused);
            // Everything goheap maps, counted once: MemStats::sys is the
            // same total (the background scavenger is off meanwhile, so
            // nothing is released between the two reads).
            assert_eq!(m.total, s.sys, "metrics total vs MemStats::sys");
        }
    }
}

/// Runs a closure when dropped (restores a setting even if the test fails).
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

#[test]
fn idle_threads_caches_do_not_keep_spans_resident() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Run again by the test below with GOHEAP_MEMBARRIER=0: then the
    // reclaimer must use the fence fallback, and say so.
    let mechanism = goheap::metrics().cache_handshake;
    match std::env::var("GOHEAP_EXPECT_HANDSHAKE").as_deref() {
        Ok("fence") => assert_eq!(mechanism, goheap::CacheHandshake::Fence),
        _ => assert_ne!(mechanism, goheap::CacheHandshake::Unset),
    }
    eprintln!("cache handshake: {mechanism:?}");
    clean_base();
    let before = goheap::memstats().heap_inuse;
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let (quit_tx, quit_rx) = std::sync::mpsc::channel::<()>();
    let idle = thread::spawn(move || {
        // A span's worth of objects in each of 40 size classes, all freed:
        // they sit in this thread's cache, keeping those spans in use.
        for class in 1..=40 {
            let size = goheap::sizeclass::class_size(class);
            let n = goheap::sizeclass::class_nelems(class).min(32);
            let v: Vec<Vec<u8>> = (0..n).map(|_| vec![1u8; size]).collect();
            drop(v);
        }
        done_tx.send(()).unwrap();
        quit_rx.recv().unwrap(); // idle: no allocation from here on
    });
    done_rx.recv().unwrap();
    let held = goheap::memstats().heap_inuse;
    // The background scavenger empties the idle thread's cache within a
    // couple of seconds; the spans go back.
    let t = Instant::now();
    let mut now = held;
    while t.elapsed() < Duration::from_secs(6) {
        now = goheap::memstats().heap_inuse;
        if now <= before + 64 * 1024 {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    quit_tx.send(()).unwrap();
    idle.join().unwrap();
    assert!(
        held > before + 256 * 1024,
        "the idle thread's cache held only {} KiB",
        (held - before) >> 10
    );
    assert!(
        now <= before + 64 * 1024,
        "after {:?} the idle thread's cache still pins {} KiB of spans (was {} KiB)",
        t.elapsed(),
        (now - before) >> 10,
        (held - before) >> 10
    );
}

#[test]
fn over_the_soft_limit_caches_and_central_lists_are_trimmed() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    goheap::set_background_scavenger(false);
    clean_base();
    let before = goheap::metrics();
    // A soft limit already exceeded: every growth must first release what
    // it can, and when that is not enough the next refill trims caches.
    let old = goheap::set_memory_limit(before.mapped_not_released as usize / 2);
    let v: Vec<Vec<u8>> = (0..4000).map(|i| vec![i as u8; 1000 + i % 3000]).collect();
    let sum: u64 = v.iter().map(|b| b[0] as u64).sum();
    drop(v);
    let w: Vec<Vec<u8>> = (0..4000).map(|i| vec![i as u8; 5000 + i % 3000]).collect();
    let m = goheap::metrics();
    goheap::set_memory_limit(old);
    goheap::set_background_scavenger(true);
    drop(w);
    assert!(sum > 0);
    assert!(
        m.limit_trims > before.limit_trims,
        "no trim under pressure: {m:?}"
    );
    assert_eq!(
        m.limit_failures, before.limit_failures,
        "a soft limit never fails allocation"
    );
}

/// The same without `membarrier` (as on old kernels, under seccomp filters
/// or gVisor): `GOHEAP_MEMBARRIER=0` forces the fence fallback, and the
/// idle thread's cache must still be emptied. In a child process, since
/// the mechanism is chosen once per process.
#[test]
fn idle_threads_caches_are_reclaimed_without_membarrier() {
    // Serial too: running the child allocates in this process, which must
    // not happen while another test has made the memory limit hard.
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "idle_threads_caches_do_not_keep_spans_resident",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GOHEAP_MEMBARRIER", "0")
        .env("GOHEAP_EXPECT_HANDSHAKE", "fence")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child: {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stderr.contains("cache handshake: Fence"), "{stderr}");
}
