//! Many threads: independent churn, and short-lived threads.

use std::thread;

use crate::{digest, filled, scaled, Checksum, Rng};

/// The churn of one thread: `ops` replacements of random slots of a
/// `slots`-object working set by blocks of 8 B..=1 KiB; each replaced
/// block is read into `ck` before it is freed.
fn churn_slots(rng: &mut Rng, slots: &mut [Box<[u8]>], ops: usize, ck: &mut Checksum) {
    for i in 0..ops {
        let s = rng.below(slots.len());
        let new = filled(rng.log_size(8, 1024), i as u64);
        let old = std::mem::replace(&mut slots[s], new);
        ck.add(digest(&old));
    }
}

/// Eight threads, each churning its own 2 000-object working set of
/// 8 B..=1 KiB blocks, `25.6M * scale` replacements in all. With 2 cores,
/// threads are preempted mid-operation: it measures per-thread caches and
/// any lock an allocator takes on its fast path.
pub(crate) fn threads8(scale: f64) -> u64 {
    const THREADS: u64 = 8;
    let ops = scaled(3_200_000, scale);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                let mut rng = Rng::new(200 + t);
                let mut slots: Vec<Box<[u8]>> = (0..2_000)
                    .map(|i| filled(rng.log_size(8, 1024), i))
                    .collect();
                let mut ck = Checksum::new();
                churn_slots(&mut rng, &mut slots, ops, &mut ck);
                for b in &slots {
                    ck.add(digest(b));
                }
                ck.value()
            })
        })
        .collect();
    let mut ck = Checksum::new();
    for h in handles {
        ck.add(h.join().expect("worker panicked"));
    }
    ck.value()
}

/// Thread churn: `800 * scale` generations of 2 threads. Each thread gets
/// the 1 000-object working set that a thread of the previous generation
/// (now exited) left, replaces random objects 4 000 times (so it frees
/// objects allocated by a dead thread), and hands its working set on to
/// the other thread of the next generation. Measures thread-cache set-up and
/// tear-down, and what happens to memory cached by exited threads.
pub(crate) fn threadchurn(scale: f64) -> u64 {
    const SLOTS: u64 = 1_000;
    const OPS: usize = 4_000;
    let gens = scaled(800, scale) as u64;
    let mut rng = Rng::new(300);
    let mut sets: Vec<Vec<Box<[u8]>>> = (0..2)
        .map(|_| {
            (0..SLOTS)
                .map(|i| filled(rng.log_size(8, 1024), i))
                .collect()
        })
        .collect();
    let mut ck = Checksum::new();
    for g in 0..gens {
        let handles: Vec<_> = sets
            .drain(..)
            .enumerate()
            .map(|(k, mut slots)| {
                thread::spawn(move || {
                    let mut rng = Rng::new(g << 8 | k as u64);
                    let mut ck = Checksum::new();
                    churn_slots(&mut rng, &mut slots, OPS, &mut ck);
                    (slots, ck.value())
                })
            })
            .collect();
        for h in handles {
            let (slots, v) = h.join().expect("worker panicked");
            ck.add(v);
            sets.push(slots);
        }
        // Hand each working set to the other thread of the next generation.
        sets.reverse();
    }
    for b in sets.iter().flatten() {
        ck.add(digest(b));
    }
    ck.value()
}
