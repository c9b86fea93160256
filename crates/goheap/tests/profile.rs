//! The heap profile from the Rust side: allocations at known sites, the
//! profile written with `goheap::write_heap_profile`, decoded here (gzip,
//! protobuf) and checked against what the program really holds: exact at
//! rate 1, within 30 % at Go's default rate. Its own process: the rate is
//! process-wide.
#![cfg(not(goheap_loom))] // goheap is only `sync` under loom (ci/loom.sh)
#![cfg(target_os = "linux")]

mod common;

use common::pprof::{self, Profile};
use std::hint::black_box;
use std::sync::Mutex;

#[global_allocator]
static GLOBAL: goheap::GoHeap = goheap::GoHeap;

/// The rate is the process's: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[inline(never)]
fn alpha_site(keep: &mut Vec<Vec<u8>>, n: usize, size: usize) {
    for i in 0..n {
        let mut v = Vec::with_capacity(size);
        v.resize(size, i as u8);
        keep.push(black_box(v));
    }
}

#[inline(never)]
fn beta_site(keep: &mut Vec<Vec<u8>>, n: usize, size: usize) {
    for _ in 0..n {
        keep.push(black_box(vec![0u8; size]));
    }
}

#[inline(never)]
fn gamma_site(n: usize, size: usize) -> u64 {
    let mut sum = 0u64;
    for i in 0..n {
        let v = black_box(vec![i as u8; size]);
        sum += u64::from(v[size - 1]);
    }
    sum
}

#[inline(never)]
fn large_site(keep: &mut Vec<Vec<u8>>, n: usize) {
    for _ in 0..n {
        keep.push(black_box(vec![7u8; 100_000]));
    }
}

/// Writes the heap profile to a temporary file and decodes it.
fn take_profile(tag: &str) -> Profile {
    let path =
        std::env::temp_dir().join(format!("goheap-profile-{}-{tag}.pb.gz", std::process::id()));
    goheap::write_heap_profile(&path).expect("write_heap_profile");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    pprof::decode(&bytes).unwrap_or_else(|e| panic!("the profile does not decode: {e}"))
}

#[test]
fn rate_one_counts_every_allocation_at_its_site() {
    let _g = SERIAL.lock().unwrap();
    let syms = pprof::Symbols::of_this_executable(&[
        ("alpha_site", alpha_site as *const () as usize),
        ("beta_site", beta_site as *const () as usize),
        ("gamma_site", gamma_site as *const () as usize),
        ("large_site", large_site as *const () as usize),
    ]);
    let old = goheap::set_profile_rate(1);
    let mut keep = Vec::with_capacity(1000);
    alpha_site(&mut keep, 300, 1000);
    beta_site(&mut keep, 100, 1000);
    assert_eq!(gamma_site(200, 1000), (0..200u64).sum::<u64>());
    large_site(&mut keep, 3);
    // Sampled objects read and write like any other, zeroed ones are zero.
    assert!(keep[300..400].iter().all(|v| v.iter().all(|&b| b == 0)));
    assert!(keep[..300]
        .iter()
        .enumerate()
        .all(|(i, v)| v.iter().all(|&b| b == i as u8)));
    // A sampled vector grows (realloc) and shrinks like any other.
    let mut grown: Vec<u64> = Vec::new();
    for i in 0..5000 {
        grown.push(i);
    }
    assert_eq!(grown.iter().sum::<u64>(), 5000 * 4999 / 2);
    drop(grown);

    let p = take_profile("rate1");
    goheap::set_profile_rate(old);
    assert_eq!(
        p.sample_types(),
        [
            "alloc_objects/count",
            "alloc_space/bytes",
            "inuse_objects/count",
            "inuse_space/bytes"
        ]
    );
    assert_eq!(p.period_type(), "space/bytes");
    assert_eq!(p.period, 1);
    assert_eq!(p.string(p.drop_frames), goheap::PROFILE_DROP_FRAMES);
    // Every location has a mapping of this executable or a library.
    for l in &p.locations {
        assert!(
            l.mapping_id != 0,
            "location {:#x} has no mapping",
            l.address
        );
    }
    let exe = std::fs::read_link("/proc/self/exe").unwrap();
    let m = p
        .mapping_of(alpha_site as *const () as usize as u64)
        .expect("a mapping holds alpha_site");
    assert_eq!(std::path::Path::new(p.string(m.filename)), exe);

    let by = |name: &str| p.totals_at(|addr| syms.is_in(name, addr));
    let alpha = by("alpha_site");
    assert_eq!(
        (alpha.inuse_objects, alpha.inuse_space),
        (300, 300 * 1000),
        "{alpha:?}"
    );
    let beta = by("beta_site");
    assert_eq!(
        (beta.inuse_objects, beta.inuse_space),
        (100, 100 * 1000),
        "{beta:?}"
    );
    let gamma = by("gamma_site");
    assert_eq!(
        (gamma.alloc_objects, gamma.alloc_space),
        (200, 200 * 1000),
        "{gamma:?}"
    );
    assert_eq!(
        (gamma.inuse_objects, gamma.inuse_space),
        (0, 0),
        "{gamma:?}"
    );
    let large = by("large_site");
    assert_eq!(
        (large.inuse_objects, large.inuse_space),
        (3, 300_000),
        "{large:?}"
    );
    // Each sample carries its size as Go's `bytes` label.
    assert!(p.samples.iter().all(|s| s.bytes_label.is_some()));

    drop(keep);
    let p = take_profile("rate1-freed");
    for name in ["alpha_site", "beta_site", "large_site"] {
        let t = p.totals_at(|addr| syms.is_in(name, addr));
        assert_eq!((t.inuse_objects, t.inuse_space), (0, 0), "{name}: {t:?}");
        assert!(t.alloc_objects > 0, "{name}: {t:?}");
    }
}

#[test]
fn default_rate_estimates_within_thirty_percent() {
    let _g = SERIAL.lock().unwrap();
    let syms = pprof::Symbols::of_this_executable(&[
        ("alpha_site", alpha_site as *const () as usize),
        ("beta_site", beta_site as *const () as usize),
    ]);
    let old = goheap::set_profile_rate(goheap::DEFAULT_PROFILE_RATE);
    let mut keep = Vec::with_capacity(200_000);
    // 96 MiB and 48 MiB: about 190 and 95 samples, so 30 % is three
    // standard deviations of the estimate for the smaller one.
    alpha_site(&mut keep, 96 * 1024, 1024);
    beta_site(&mut keep, 48 * 1024, 1024);
    let p = take_profile("default");
    goheap::set_profile_rate(old);
    assert_eq!(p.period, goheap::DEFAULT_PROFILE_RATE as i64);
    for (name, truth) in [("alpha_site", 96u64 << 20), ("beta_site", 48 << 20)] {
        let t = p.totals_at(|addr| syms.is_in(name, addr));
        let ratio = t.inuse_space as f64 / truth as f64;
        assert!(
            (0.7..=1.3).contains(&ratio),
            "{name}: estimated {} of {truth} bytes",
            t.inuse_space
        );
    }
    drop(keep);
}

/// A new thread's countdown starts with a draw, not with a sample: were
/// each thread's first allocation sampled, 400 short threads that each
/// allocate a few hundred bytes would add 400 samples, each standing for
/// about a rate's worth (512 KiB), to the estimate of what was allocated.
#[test]
fn new_threads_are_not_sampled_at_once() {
    let _g = SERIAL.lock().unwrap();
    let old = goheap::set_profile_rate(goheap::DEFAULT_PROFILE_RATE);
    let before = take_profile("threads-before").totals_at(|_| true);
    let kept: Vec<Vec<u8>> = (0..400)
        .map(|i| {
            std::thread::spawn(move || black_box(vec![i as u8; 64]))
                .join()
                .unwrap()
        })
        .collect();
    let after = take_profile("threads-after").totals_at(|_| true);
    goheap::set_profile_rate(old);
    // The threads and their stacks' bookkeeping allocate well under 1 MiB
    // in all: a handful of samples at most, 64 MiB would be over 100.
    let grew = after.alloc_space - before.alloc_space;
    assert!(
        grew < 64 << 20,
        "400 threads estimated to allocate {grew} bytes"
    );
    drop(kept);
}

/// Sampled small objects live in the profile's region, not in the
/// heap's pages, but the statistics count them as heap objects like any
/// other (as Go's, where a sampled object is an ordinary one): in
/// `heap_alloc` and `heap_objects`, within `heap_inuse`, and the memory
/// classes still partition `heap_sys` and the total.
#[test]
fn sampled_objects_are_heap_objects_in_the_statistics() {
    let _g = SERIAL.lock().unwrap();
    let old = goheap::set_profile_rate(1);
    goheap::flush_thread_cache();
    let (a0, m0) = (
        goheap::memstats().heap_alloc,
        goheap::metrics().heap_objects,
    );
    let mut keep = Vec::with_capacity(1000);
    alpha_site(&mut keep, 1000, 256);
    goheap::flush_thread_cache();
    let (s, m) = (goheap::memstats(), goheap::metrics());
    goheap::set_profile_rate(old);
    assert!(
        s.heap_alloc >= a0 + 256_000,
        "heap_alloc {a0} -> {}",
        s.heap_alloc
    );
    assert!(
        m.heap_objects >= m0 + 256_000,
        "heap_objects {m0} -> {}: the sampled objects not counted",
        m.heap_objects
    );
    assert!(s.heap_inuse >= s.heap_alloc, "{s:?}");
    assert_eq!(common::heap_classes(&m), s.heap_sys, "{m:?} {s:?}");
    assert_eq!(common::all_classes(&m), m.total, "{m:?}");
    drop(keep);
}

static SIGNAL_OBJECT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Allocates inside a signal handler (raised synchronously, so not
/// inside goheap).
#[inline(never)]
extern "C" fn alloc_in_handler(_: libc::c_int) {
    let v = black_box(vec![7u8; 12_345]).into_boxed_slice();
    SIGNAL_OBJECT.store(
        Box::into_raw(v) as *mut u8 as usize,
        std::sync::atomic::Ordering::Relaxed,
    );
}

#[inline(never)]
fn raise_site() {
    // SAFETY: raises a signal whose handler is installed.
    unsafe { libc::raise(libc::SIGUSR1) };
    black_box(());
}

/// A sample taken inside a signal handler: the stack goes through the
/// kernel's signal frame, whose unwind rule is a DWARF expression the
/// cached walker does not follow; the walk must still reach the code
/// the signal interrupted (libgcc's walker takes over), and not crash.
#[test]
fn a_sample_in_a_signal_handler_crosses_the_signal_frame() {
    let _g = SERIAL.lock().unwrap();
    let syms = pprof::Symbols::of_this_executable(&[
        ("alloc_in_handler", alloc_in_handler as *const () as usize),
        ("raise_site", raise_site as *const () as usize),
    ]);
    // SAFETY: installs a handler for a signal nothing else uses here.
    let old_handler =
        unsafe { libc::signal(libc::SIGUSR1, alloc_in_handler as *const () as usize) };
    let old = goheap::set_profile_rate(1);
    raise_site();
    let p = take_profile("signal");
    goheap::set_profile_rate(old);
    // SAFETY: restores the previous disposition.
    unsafe { libc::signal(libc::SIGUSR1, old_handler) };
    let found = p.samples.iter().any(|s| {
        let f = p.frames(s);
        s.bytes_label == Some(12_345)
            && f.iter().any(|&a| syms.is_in("alloc_in_handler", a))
            && f.iter().any(|&a| syms.is_in("raise_site", a))
    });
    assert!(
        found,
        "no sample in the handler with the interrupted raise_site below it"
    );
    let obj = SIGNAL_OBJECT.load(std::sync::atomic::Ordering::Relaxed) as *mut u8;
    // SAFETY: the handler leaked a 12 345-byte boxed slice there.
    drop(unsafe { Box::from_raw(core::ptr::slice_from_raw_parts_mut(obj, 12_345)) });
}

/// Go's own reader takes the file: `go tool pprof` (when Go is installed:
/// `go` on the PATH, or Debian's golang-1.23 that the bench scripts
/// install) prints the site with its in-use bytes, symbolized from this
/// executable through the profile's mappings. Without Go the test says so
/// and passes.
#[test]
fn go_tool_pprof_reads_the_profile() {
    let go = ["go", "/usr/lib/go-1.23/bin/go", "/usr/lib/go/bin/go"]
        .into_iter()
        .find(|g| {
            std::process::Command::new(g)
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(go) = go else {
        eprintln!("go_tool_pprof_reads_the_profile: no Go toolchain found; not run");
        return;
    };
    let _g = SERIAL.lock().unwrap();
    let old = goheap::set_profile_rate(1);
    let mut keep = Vec::with_capacity(100);
    alpha_site(&mut keep, 100, 10_000);
    let path = std::env::temp_dir().join(format!("goheap-profile-{}-go.pb.gz", std::process::id()));
    goheap::write_heap_profile(&path).expect("write_heap_profile");
    goheap::set_profile_rate(old);
    let home = std::env::temp_dir();
    let out = std::process::Command::new(go)
        .args([
            "tool",
            "pprof",
            "-symbolize=local",
            "-top",
            "-nodecount=1000",
            "-sample_index=inuse_space",
        ])
        .arg(&path)
        .env("HOME", &home)
        .env("GOCACHE", home.join("goheap-test-gocache"))
        .env("PPROF_TMPDIR", &home)
        .output()
        .expect("run go tool pprof");
    std::fs::remove_file(&path).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{go} tool pprof failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Type: inuse_space"), "{text}");
    // 100 objects of 10 000 requested bytes, every one sampled: exactly
    // 1 000 000 bytes under the site (pprof's kB is 1024 bytes).
    let line = text
        .lines()
        .find(|l| l.contains("alpha_site"))
        .unwrap_or_else(|| panic!("no alpha_site in Go's table:\n{text}"));
    assert!(line.contains("976.56kB"), "{line}");
    drop(keep);
}

#[test]
fn unwritable_path_is_an_error_not_a_crash() {
    let e = goheap::write_heap_profile("/nonexistent-dir/x.pb.gz").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    let e = goheap::write_heap_profile("a\0b").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
}
