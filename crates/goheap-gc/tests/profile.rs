//! The heap profile covers the collected heap: `Gc` objects are sampled
//! at the same rate as malloc's, their frees are the sweeper's, and one
//! `goheap::write_heap_profile` holds both. Objects allocated at known
//! sites, the profile decoded (with goheap's own tests' decoder) and
//! checked against what the program holds. Its own process: the rate is
//! process-wide, so the tests run one at a time.
#![cfg(target_os = "linux")]

#[path = "../../goheap/tests/common/pprof.rs"]
mod pprof;

use goheap_gc::{Gc, Trace};
use pprof::{Profile, Symbols, Totals};
use std::hint::black_box;
use std::sync::{Mutex, MutexGuard};

#[global_allocator]
static GLOBAL: goheap::GoHeap = goheap::GoHeap;

/// The rate is the process's: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the test lock, and sets up the thread's collector state (a
/// first `Gc` allocation mallocs it), so that the sites' samples are only
/// their objects.
fn serial() -> MutexGuard<'static, ()> {
    let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    drop(Gc::new([0u8; 32]));
    g
}

/// A small object that holds handles: a typed span class, no header.
#[derive(Trace)]
struct Linked {
    next: Option<Gc<Linked>>,
    data: [u8; 4088],
}

#[inline(never)]
fn gc_site_small(keep: &mut Vec<Gc<[u8; 256]>>, n: usize) {
    for i in 0..n {
        keep.push(black_box(Gc::new([i as u8; 256])));
    }
}

#[inline(never)]
fn gc_site_typed(keep: &mut Vec<Gc<Linked>>, n: usize) {
    for i in 0..n {
        let next = keep.last().cloned();
        keep.push(black_box(Gc::new(Linked {
            next,
            data: [i as u8; 4088],
        })));
    }
}

#[inline(never)]
fn gc_site_churn(n: usize) -> u64 {
    let mut sum = 0;
    for i in 0..n {
        let g = black_box(Gc::new([i as u8; 256]));
        sum += u64::from(g[255]);
    }
    sum
}

#[inline(never)]
fn malloc_site_vec(keep: &mut Vec<Vec<u8>>, n: usize) {
    for i in 0..n {
        keep.push(black_box(vec![i as u8; 10_000]));
    }
}

#[inline(never)]
fn gc_large_kept(keep: &mut Vec<Gc<[u8; 40_000]>>, n: usize) {
    for _ in 0..n {
        keep.push(black_box(Gc::<[u8; 40_000]>::new_zeroed()));
    }
}

#[inline(never)]
fn gc_large_dropped(n: usize) -> u64 {
    let mut sum = 0;
    for _ in 0..n {
        let g = black_box(Gc::<[u8; 40_000]>::new_zeroed());
        sum += u64::from(g[39_999]);
    }
    sum
}

#[inline(never)]
fn gc_tiny_site(keep: &mut Vec<Gc<u64>>, n: usize) {
    for i in 0..n {
        keep.push(black_box(Gc::new(i as u64)));
    }
}

/// Writes the heap profile to a temporary file and decodes it.
fn take_profile(tag: &str) -> Profile {
    let path = std::env::temp_dir().join(format!(
        "goheap-gc-profile-{}-{tag}.pb.gz",
        std::process::id()
    ));
    goheap::write_heap_profile(&path).expect("write_heap_profile");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    pprof::decode(&bytes).unwrap_or_else(|e| panic!("the profile does not decode: {e}"))
}

fn at(p: &Profile, syms: &Symbols, name: &str) -> Totals {
    p.totals_at(|addr| syms.is_in(name, addr))
}

/// [`at`] for the samples of `size`-byte allocations only (a site's own
/// objects, not what the collector mallocs on its behalf: its root table
/// grows as handles are logged, and stays).
fn at_size(p: &Profile, syms: &Symbols, name: &str, size: i64) -> Totals {
    let mut t = Totals::default();
    for s in &p.samples {
        if s.bytes_label == Some(size) && p.frames(s).iter().any(|&a| syms.is_in(name, a)) {
            t.alloc_objects += s.values[0];
            t.alloc_space += s.values[1];
            t.inuse_objects += s.values[2];
            t.inuse_space += s.values[3];
        }
    }
    t
}

/// Whether `got` is within 10 % of `truth`.
fn near(got: i64, truth: i64) -> bool {
    (got - truth).abs() * 10 <= truth
}

/// Whether mangled name `name` is a function of this test program's own
/// (not goheap's, goheap-gc's, the standard library's or an allocator
/// shim's, which stand between a sample's leaf and its allocation site).
fn of_the_program(name: &str) -> bool {
    name.starts_with("_ZN7profile")
}

#[test]
fn gc_and_malloc_sites_share_one_profile() {
    let _s = serial();
    let wanted = [
        ("gc_site_small", gc_site_small as *const () as usize),
        ("gc_site_typed", gc_site_typed as *const () as usize),
        ("gc_site_churn", gc_site_churn as *const () as usize),
        ("malloc_site_vec", malloc_site_vec as *const () as usize),
    ];
    let syms = Symbols::of_this_executable(&wanted);
    let all = Symbols::all_functions(wanted[0]);
    let old = goheap::set_profile_rate(1);
    let mut small = Vec::with_capacity(2000);
    let mut typed = Vec::with_capacity(1000);
    let mut vecs = Vec::with_capacity(100);
    gc_site_small(&mut small, 2000);
    gc_site_typed(&mut typed, 1000);
    assert_eq!(
        gc_site_churn(5000),
        (0..5000u64).map(|i| i % 256).sum::<u64>()
    );
    malloc_site_vec(&mut vecs, 100);
    goheap_gc::collect();
    // Sampled objects read like any other.
    assert!(small
        .iter()
        .enumerate()
        .all(|(i, g)| g.iter().all(|&b| b == i as u8)));
    assert_eq!(
        typed[999].next.as_ref().map(|n| n.data[0]),
        Some(998u16 as u8)
    );

    let p = take_profile("sites");
    assert_eq!(p.period, 1);
    assert_eq!(p.string(p.drop_frames), goheap::PROFILE_DROP_FRAMES);
    for (name, truth) in [
        ("gc_site_small", 2000 * 256),
        ("gc_site_typed", 1000 * 4096),
        ("malloc_site_vec", 100 * 10_000),
    ] {
        let t = at(&p, &syms, name);
        assert!(near(t.inuse_space, truth), "{name}: {t:?}, truth {truth}");
        assert!(near(t.alloc_space, truth), "{name}: {t:?}, truth {truth}");
    }
    assert_eq!(std::mem::size_of::<Linked>(), 4096);
    let churn = at(&p, &syms, "gc_site_churn");
    assert!(churn.inuse_space <= 256, "{churn:?}");
    assert!(near(churn.alloc_space, 5000 * 256), "{churn:?}");
    assert!(near(churn.alloc_objects, 5000), "{churn:?}");

    // The three largest in-use samples are the three sites', and each
    // stack's first frame of the program is the site itself (Gc::new and
    // the allocator's frames come first).
    // The collector's root table (malloc'd as handles are logged, by
    // whichever test logged them) is its own, not a site's: left out.
    let bookkeeping = |s: &&pprof::Sample| {
        p.frames(s).iter().any(|&a| {
            all.name_at(a)
                .is_some_and(|n| n.contains("9goheap_gc7mutator"))
        })
    };
    let mut by_inuse: Vec<_> = p.samples.iter().filter(|s| !bookkeeping(s)).collect();
    by_inuse.sort_by_key(|s| -s.values[3]);
    let mut seen = Vec::new();
    for s in &by_inuse[..3] {
        let frames = p.frames(s);
        let names: Vec<_> = frames
            .iter()
            .map(|&a| all.name_at(a).unwrap_or("?"))
            .collect();
        let leaf = frames
            .iter()
            .find(|&&a| all.name_at(a).is_some_and(of_the_program))
            .copied()
            .unwrap_or_else(|| panic!("no frame of the program: {names:#?}"));
        let site = wanted
            .iter()
            .find(|(n, _)| syms.is_in(n, leaf))
            .map(|w| w.0);
        seen.push(site.unwrap_or_else(|| panic!("a top sample's leaf is no site: {names:#?}")));
    }
    seen.sort();
    assert_eq!(seen, ["gc_site_small", "gc_site_typed", "malloc_site_vec"]);

    // Dropped and collected: nothing in use, everything still allocated.
    drop((small, typed, vecs));
    goheap_gc::collect();
    let p = take_profile("freed");
    goheap::set_profile_rate(old);
    for (name, size, n) in [
        ("gc_site_small", 256, 2000),
        ("gc_site_typed", 4096, 1000),
        ("gc_site_churn", 256, 5000),
        ("malloc_site_vec", 10_000, 100),
    ] {
        let t = at_size(&p, &syms, name, size);
        assert_eq!((t.inuse_objects, t.inuse_space), (0, 0), "{name}: {t:?}");
        assert!(near(t.alloc_objects, n), "{name}: {t:?}");
    }
}

#[test]
fn a_large_object_is_sampled_and_freed_by_the_collector() {
    let _s = serial();
    let syms = Symbols::of_this_executable(&[
        ("gc_large_kept", gc_large_kept as *const () as usize),
        ("gc_large_dropped", gc_large_dropped as *const () as usize),
    ]);
    let old = goheap::set_profile_rate(1);
    let mut keep = Vec::with_capacity(3);
    gc_large_kept(&mut keep, 3);
    assert_eq!(gc_large_dropped(2), 0);
    goheap_gc::collect();
    let p = take_profile("large");
    let kept = at(&p, &syms, "gc_large_kept");
    assert_eq!(
        (kept.inuse_objects, kept.inuse_space),
        (3, 120_000),
        "{kept:?}"
    );
    let dropped = at(&p, &syms, "gc_large_dropped");
    assert_eq!(
        (dropped.inuse_objects, dropped.inuse_space),
        (0, 0),
        "{dropped:?}"
    );
    assert_eq!(
        (dropped.alloc_objects, dropped.alloc_space),
        (2, 80_000),
        "{dropped:?}"
    );
    drop(keep);
    goheap_gc::collect();
    let p = take_profile("large-freed");
    goheap::set_profile_rate(old);
    let kept = at(&p, &syms, "gc_large_kept");
    assert_eq!((kept.inuse_objects, kept.inuse_space), (0, 0), "{kept:?}");
    assert_eq!(
        (kept.alloc_objects, kept.alloc_space),
        (3, 120_000),
        "{kept:?}"
    );
}

#[test]
fn tiny_objects_are_freed_when_their_block_dies() {
    let _s = serial();
    let syms = Symbols::of_this_executable(&[("gc_tiny_site", gc_tiny_site as *const () as usize)]);
    let old = goheap::set_profile_rate(1);
    const N: usize = 4000;
    let mut keep = Vec::with_capacity(N);
    gc_tiny_site(&mut keep, N);
    assert!(keep.iter().enumerate().all(|(i, g)| **g == i as u64));
    // Two 8-byte objects per 16-byte block: dropping every other one
    // leaves each block with a live object, so no block dies and every
    // sample stays in use.
    let mut odd = Vec::with_capacity(N / 2);
    for (i, g) in keep.drain(..).enumerate() {
        if i % 2 == 0 {
            odd.push(g);
        }
    }
    goheap_gc::collect();
    let p = take_profile("tiny-half");
    let t = at(&p, &syms, "gc_tiny_site");
    // At most the first and last block held an object of another site.
    assert!(
        (N as i64 - 2..=N as i64).contains(&t.inuse_objects),
        "{t:?}"
    );
    assert!(near(t.inuse_space, N as i64 * 8), "{t:?}");
    assert_eq!(t.alloc_objects, N as i64, "{t:?}");
    // The blocks die: their samples are freed, all of them.
    drop(odd);
    goheap_gc::collect();
    let p = take_profile("tiny-freed");
    goheap::set_profile_rate(old);
    let t = at(&p, &syms, "gc_tiny_site");
    assert_eq!((t.inuse_objects, t.inuse_space), (0, 0), "{t:?}");
    assert_eq!(
        (t.alloc_objects, t.alloc_space),
        (N as i64, N as i64 * 8),
        "{t:?}"
    );
}

#[inline(never)]
fn gc_site_sampled(keep: &mut Vec<Gc<[u8; 1024]>>, n: usize) {
    for i in 0..n {
        keep.push(black_box(Gc::new([i as u8; 1024])));
    }
}

#[test]
fn default_rate_estimates_gc_bytes_within_thirty_percent() {
    let _s = serial();
    let syms =
        Symbols::of_this_executable(&[("gc_site_sampled", gc_site_sampled as *const () as usize)]);
    let old = goheap::set_profile_rate(goheap::DEFAULT_PROFILE_RATE);
    // 96 MiB: about 190 samples, so 30 % is four standard deviations of
    // the estimate (the countdown's exponential draws, as malloc's).
    const N: usize = 96 * 1024;
    let mut keep = Vec::with_capacity(N);
    gc_site_sampled(&mut keep, N);
    let p = take_profile("default");
    goheap::set_profile_rate(old);
    assert_eq!(p.period, goheap::DEFAULT_PROFILE_RATE as i64);
    let t = at_size(&p, &syms, "gc_site_sampled", 1024);
    let ratio = t.inuse_space as f64 / (N * 1024) as f64;
    assert!(
        (0.7..=1.3).contains(&ratio),
        "estimated {} of {} bytes: {t:?}",
        t.inuse_space,
        N * 1024
    );
    drop(keep);
}
