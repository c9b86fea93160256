//! goheap-gc's side of `goheap gcbench`'s allocation sizes: zeroed byte
//! buffers of one size allocated in a loop with `Gc::<[u8; N]>::new_zeroed()`
//! (zeroed in place, as Go's `make` does), each
//! replacing the last in a sink (so each becomes garbage at the next
//! iteration, as with Go's `sink = make([]byte, n)`), left to the
//! collector.
//!
//! ```text
//! gcbench-allocsizes SIZE [SECS]   SIZE: 8, 32, 256, 1KiB, 10KiB or 1MiB (or bytes)
//! ```
//!
//! Like Go's benchmarks it calibrates: runs the loop 1 time, then more
//! times, until one run takes at least SECS (default 0.5), and reports that
//! run, on stdout:
//! `size=1024 iters=N secs=S ns_per_op=X gc_cycles=C longest_pause_ms=P`.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use goheap_gc::Gc;

/// The sizes, with their names (Go's sub-benchmark names).
const SIZES: [(&str, usize); 6] = [
    ("8B", 8),
    ("32B", 32),
    ("256B", 256),
    ("1KiB", 1 << 10),
    ("10KiB", 10 << 10),
    ("1MiB", 1 << 20),
];

/// Allocates `iters` zeroed `N`-byte objects; returns the seconds taken.
#[inline(never)]
fn run<const N: usize>(iters: u64) -> f64 {
    let mut sink: Option<Gc<[u8; N]>> = None;
    let start = Instant::now();
    for _ in 0..iters {
        // The handle escapes to `black_box`, so the object, its zeroes
        // included, must really be made.
        sink = Some(Gc::<[u8; N]>::new_zeroed());
        black_box(&sink);
    }
    let secs = start.elapsed().as_secs_f64();
    drop(sink);
    secs
}

/// Runs `run::<N>` with more and more iterations until one run lasts at
/// least `target` seconds; returns that run's iterations and seconds.
fn calibrate<const N: usize>(target: f64) -> (u64, f64) {
    let mut iters = 1u64;
    loop {
        let secs = run::<N>(iters);
        if secs >= target || iters >= 1 << 40 {
            return (iters, secs);
        }
        // Aim 20 % past the target, growing at most 100× and at least by 1.
        let per = secs.max(1e-9) / iters as f64;
        let want = (target * 1.2 / per).ceil() as u64;
        iters = want.clamp(iters + 1, iters.saturating_mul(100));
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size = args.first().and_then(|s| {
        SIZES
            .iter()
            .find(|(name, bytes)| s == name || s.parse() == Ok(*bytes))
            .map(|&(_, bytes)| bytes)
    });
    let target = match args.get(1).map(|s| s.parse::<f64>()) {
        None => Some(0.5),
        Some(Ok(t)) if t > 0.0 && t.is_finite() => Some(t),
        Some(_) => None,
    };
    let (Some(size), Some(target), true) = (size, target, args.len() <= 2) else {
        eprintln!("usage: gcbench-allocsizes SIZE [SECS]   (SIZE: 8B 32B 256B 1KiB 10KiB 1MiB)");
        return ExitCode::from(2);
    };
    let (iters, secs) = match size {
        8 => calibrate::<8>(target),
        32 => calibrate::<32>(target),
        256 => calibrate::<256>(target),
        1024 => calibrate::<1024>(target),
        10240 => calibrate::<10240>(target),
        1048576 => calibrate::<1048576>(target),
        _ => unreachable!("not in SIZES"),
    };
    let s = goheap_gc::stats();
    println!(
        "size={size} iters={iters} secs={secs:.6} ns_per_op={:.2} gc_cycles={} longest_pause_ms={:.3}",
        secs * 1e9 / iters as f64,
        s.cycles.num_gc,
        s.cycles.max_pause_ns as f64 / 1e6
    );
    ExitCode::SUCCESS
}
