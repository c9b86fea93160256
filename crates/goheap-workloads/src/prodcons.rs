//! Producer/consumer: every free is a remote free.

use std::sync::mpsc::sync_channel;
use std::thread;

use crate::{digest, filled, mix, scaled, Rng};

/// Objects per message.
const BATCH: usize = 64;
/// Messages in flight per channel.
const DEPTH: usize = 16;

/// Two producer/consumer pairs joined by bounded channels. Producers
/// allocate `4M * scale` objects in all, 16 B..=512 B (log-uniform), and
/// send them in batches of 64 (`Vec<Box<[u8]>>`); consumers read every
/// object and free it, and the batch vector too. Nothing is ever freed by the
/// thread that allocated it: the remote-free path of the allocator (in Go's
/// design, objects going back to their span through the central lists).
pub(crate) fn prodcons(scale: f64) -> u64 {
    let per_producer = scaled(2_000_000, scale).div_ceil(BATCH);
    let mut consumers = Vec::new();
    let mut producers = Vec::new();
    for p in 0..2u64 {
        let (tx, rx) = sync_channel::<Vec<Box<[u8]>>>(DEPTH);
        producers.push(thread::spawn(move || {
            let mut rng = Rng::new(100 + p);
            for i in 0..per_producer {
                let batch: Vec<Box<[u8]>> = (0..BATCH)
                    .map(|j| filled(rng.log_size(16, 512), (i * BATCH + j) as u64))
                    .collect();
                tx.send(batch).expect("consumer died");
            }
        }));
        consumers.push(thread::spawn(move || {
            // A sum, not a chain: independent of how the batches interleave.
            let mut sum = 0u64;
            for batch in rx {
                for obj in batch {
                    sum = sum.wrapping_add(mix(digest(&obj)));
                }
            }
            sum
        }));
    }
    for p in producers {
        p.join().expect("producer panicked");
    }
    consumers
        .into_iter()
        .map(|c| c.join().expect("consumer panicked"))
        .fold(0, u64::wrapping_add)
}
