//! Single-thread churn of small objects.

use crate::{digest, filled, scaled, Checksum, Rng};

/// Objects alive at once.
const SLOTS: usize = 20_000;

/// Replaces a random slot of a 20 000-slot working set with a new block of
/// a random size in 8 B..=1 KiB (log-uniform), `12M * scale` times. Each
/// replaced block is read back before it is freed, so frees come in random
/// order and every size class sees both allocation and free traffic.
pub(crate) fn churn(scale: f64) -> u64 {
    let ops = scaled(12_000_000, scale);
    let mut rng = Rng::new(1);
    let mut slots: Vec<Option<Box<[u8]>>> = (0..SLOTS).map(|_| None).collect();
    let mut ck = Checksum::new();
    for i in 0..ops {
        let s = rng.below(SLOTS);
        if let Some(old) = slots[s].take() {
            ck.add(digest(&old));
        }
        // One operation in eight only frees, so the working set breathes.
        if i % 8 != 7 {
            slots[s] = Some(filled(rng.log_size(8, 1024), i as u64));
        }
    }
    for b in slots.iter().flatten() {
        ck.add(digest(b));
    }
    ck.value()
}
