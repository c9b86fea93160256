//! Large blocks.

use crate::{scaled, Checksum, Rng};

/// Blocks alive at once.
const SLOTS: usize = 6;
/// Bytes between touched bytes: one per 4 KiB page.
const PAGE: usize = 4096;

/// A large block. Even `tag`s: allocated zeroed (`vec![0; n]`, where an
/// allocator can skip zeroing pages fresh from the OS), then one byte
/// written per 4 KiB page. Odd `tag`s: allocated uninitialised and filled
/// completely (`resize`), as a program filling a buffer does.
fn make(size: usize, tag: u64) -> Vec<u8> {
    let byte = (tag as u8) | 1;
    if tag % 2 == 0 {
        let mut v = vec![0u8; size];
        for i in (0..size).step_by(PAGE) {
            v[i] = byte;
        }
        v
    } else {
        let mut v = Vec::with_capacity(size);
        v.resize(size, byte);
        v
    }
}

/// Reads the block back: its length and every touched byte.
fn check(v: &[u8]) -> u64 {
    let mut sum = v.len() as u64;
    for i in (0..v.len()).step_by(PAGE) {
        sum = sum.wrapping_mul(31).wrapping_add(v[i] as u64);
    }
    sum
}

/// `2 000 * scale` times, replaces one of 6 live blocks by a new one of
/// 64 KiB..=4 MiB (log-uniform; about 1 MiB on average), touching every
/// page of it. The allocator's large-object path: page-heap allocation,
/// reuse of freed runs versus returning them to the OS (and paying page
/// faults to get them back).
pub(crate) fn large(scale: f64) -> u64 {
    let ops = scaled(2_000, scale);
    let mut rng = Rng::new(5);
    let mut slots: Vec<Vec<u8>> = vec![Vec::new(); SLOTS];
    let mut ck = Checksum::new();
    for i in 0..ops {
        let s = rng.below(SLOTS);
        let old = std::mem::take(&mut slots[s]);
        ck.add(check(&old));
        drop(old);
        let size = rng.log_size(64 << 10, 4 << 20);
        slots[s] = make(size, i as u64);
    }
    for v in &slots {
        ck.add(check(v));
    }
    ck.value()
}

/// Zeroed buffers alive at once in `zeroed`'s ring.
const RING: usize = 32;

/// `3 000 * scale` times, replaces the oldest of 32 zeroed buffers
/// (`vec![0u8; n]`, n uniform in 64 KiB..=4 MiB) by a new one and writes
/// a single byte of it: a program that asks for big zeroed buffers and
/// uses little of each (sparse tables, reserved scratch space). The
/// allocator's zeroed large path: clearing reused pages touches all of
/// them, while pages the OS hands out fresh are zero without being touched.
pub(crate) fn zeroed(scale: f64) -> u64 {
    let ops = scaled(3_000, scale);
    let mut rng = Rng::new(11);
    let mut ring: Vec<Vec<u8>> = (0..RING).map(|_| Vec::new()).collect();
    let mut ck = Checksum::new();
    for i in 0..ops {
        let slot = i % RING;
        let old = std::mem::take(&mut ring[slot]);
        ck.add(old.len() as u64);
        ck.add(old.get(old.len() / 2).copied().unwrap_or(0) as u64);
        drop(old);
        let size = rng.range(64 << 10, 4 << 20);
        let mut v = vec![0u8; size];
        let at = rng.below(size);
        ck.add(v[at] as u64);
        v[size / 2] = (i as u8) | 1;
        ring[slot] = v;
    }
    ck.value()
}
