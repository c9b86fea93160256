//! The heap profile's record of sampled objects of the collected heap:
//! which sampled object lies in which slot, keyed by the slot's address.
//!
//! A `Gc` object is never freed by its program: the sweeper finds it dead
//! (allocated, not marked) and reuses its slot. So unlike a sampled
//! malloc object, which moves to the sampled region so that `dealloc`
//! tells it by its address, a sampled object of the collected heap stays
//! in its slot, and this map tells the sweeper which bucket to count its
//! free in: Go records a profile "special" on the object's span, which the
//! sweeper frees with the object (`mProf_Free`). The span counts its
//! entries (`Span::gc_samples`), so sweeping a span without any costs one
//! load.
//!
//! The key is the slot's first byte, not the object's: a tiny block (one
//! 16-byte slot) holds several tiny objects, each sampled on its own, and
//! they all die with the block. So a key may appear more than once, one
//! entry per sampled object, and the sweeper removes every entry of a dead
//! slot.
//!
//! Open addressing with linear probing, [`CAPACITY`] entries of 16 bytes
//! (16 MiB of address space, `mmap`ed with `MAP_NORESERVE` on the first
//! sample, backed only where touched: never through goheap itself), at
//! most [`MAX_LEN`] of them used so that probes stay short; a sample
//! beyond is dropped and counted with the table's. Removal shifts the
//! following entries back (no tombstones), so a long-running program's
//! map does not fill with dead entries.
//!
//! # Locks
//!
//! [`MAP`] is a leaf lock, like the table's: taken by a sampling thread
//! (with no other lock held) and by the sweeper (with a span class's lock
//! held, or none); nothing under it takes another lock or allocates (the
//! buckets' free counts are atomics, [`table::record_free`]). It is never
//! held together with the table's lock.

use super::table;
use crate::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use crate::sync::Mutex;
use core::ptr;

/// Entries in the map (a power of two).
pub(crate) const CAPACITY: usize = 1 << 20;
/// Entries that may be in use at once: seven eighths of the capacity.
pub(crate) const MAX_LEN: usize = CAPACITY / 8 * 7;

/// One sampled object: its slot's address (0: the entry is empty) and its
/// bucket.
#[repr(C)]
#[derive(Clone, Copy)]
struct Entry {
    slot: usize,
    bucket: u32,
    _pad: u32,
}

/// The map, under [`MAP`].
struct Map {
    /// 0 = not yet mapped, 1 = ready, 2 = the mapping failed.
    state: u8,
    entries: *mut Entry,
}

// SAFETY: the pointer is a private mapping used under the lock.
unsafe impl Send for Map {}

/// The map's lock: a leaf (see the module docs).
static MAP: Mutex<Map> = Mutex::new(Map {
    state: 0,
    entries: ptr::null_mut(),
});

/// Entries in use or promised by [`reserve`] (at most [`MAX_LEN`]).
static RESERVED: AtomicUsize = AtomicUsize::new(0);

/// The entry slot `slot` is looked for first.
#[inline]
fn home(slot: usize) -> usize {
    ((slot >> 4) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) as usize
        >> (usize::BITS - CAPACITY.trailing_zeros())
}

#[inline]
fn next(i: usize) -> usize {
    (i + 1) & (CAPACITY - 1)
}

impl Map {
    /// Maps the entries, once. False if that failed (then, or before).
    fn ready(&mut self) -> bool {
        match self.state {
            1 => return true,
            2 => return false,
            _ => {}
        }
        let bytes = CAPACITY * core::mem::size_of::<Entry>();
        // SAFETY: an anonymous mapping without MAP_FIXED replaces nothing.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            self.state = 2;
            return false;
        }
        // Fresh anonymous memory reads as zero: every entry is empty.
        self.entries = p.cast();
        self.state = 1;
        true
    }

    /// Entry `i` (`i < CAPACITY`, the map ready).
    #[inline]
    fn at(&mut self, i: usize) -> &mut Entry {
        debug_assert!(i < CAPACITY && self.state == 1);
        // SAFETY: `i < CAPACITY`, inside the mapping, which is ours under
        // the lock (`&mut self`).
        unsafe { &mut *self.entries.add(i) }
    }

    /// Empties entry `i`, shifting back the entries after it that probing
    /// would no longer reach (linear probing's deletion).
    fn delete(&mut self, mut i: usize) {
        loop {
            self.at(i).slot = 0;
            let mut j = i;
            loop {
                j = next(j);
                let e = *self.at(j);
                if e.slot == 0 {
                    return;
                }
                let h = home(e.slot);
                // `e` stays if its home lies cyclically in (i, j]: probing
                // from there still reaches it without crossing the hole.
                let stays = if i <= j { i < h && h <= j } else { i < h || h <= j };
                if !stays {
                    *self.at(i) = e;
                    i = j;
                    break;
                }
            }
        }
    }
}

/// Promises an entry to a sample about to be recorded; false (the sample
/// is to be dropped) if the map is full.
pub(crate) fn reserve() -> bool {
    if RESERVED.fetch_add(1, Relaxed) < MAX_LEN {
        return true;
    }
    RESERVED.fetch_sub(1, Relaxed);
    false
}

/// Gives back a promise of [`reserve`] that [`insert`] will not use.
pub(crate) fn unreserve() {
    RESERVED.fetch_sub(1, Relaxed);
}

/// Records a sampled object in the slot at `slot`, counted in bucket `b`;
/// uses a promise of [`reserve`]. False (the promise given back) if the
/// map could not be mapped: the caller counts the free at once.
pub(crate) fn insert(slot: usize, b: u32) -> bool {
    debug_assert!(slot != 0);
    let mut m = MAP.lock();
    if !m.ready() {
        drop(m);
        unreserve();
        return false;
    }
    let mut i = home(slot);
    // Never full: at most MAX_LEN < CAPACITY entries are in use.
    while m.at(i).slot != 0 {
        i = next(i);
    }
    *m.at(i) = Entry {
        slot,
        bucket: b,
        _pad: 0,
    };
    true
}

/// Removes every entry of each slot `dead` yields (the dead slots of one
/// span, as the sweeper finds them), counting each entry's free in its
/// bucket, until `limit` entries are gone (the span's count: the rest of
/// its slots have none). Returns how many were removed. One lock for the
/// whole span.
pub(crate) fn free_dead(dead: impl Iterator<Item = usize>, limit: usize) -> usize {
    let mut m = MAP.lock();
    if m.state != 1 {
        return 0;
    }
    let mut removed = 0;
    for slot in dead {
        if removed == limit {
            break;
        }
        let mut i = home(slot);
        loop {
            let e = *m.at(i);
            if e.slot == 0 {
                break;
            }
            if e.slot == slot {
                table::record_free(e.bucket);
                m.delete(i);
                removed += 1;
                // Entry `i` now holds what was shifted into it, if
                // anything: look at it again.
                continue;
            }
            i = next(i);
        }
    }
    drop(m);
    RESERVED.fetch_sub(removed, Relaxed);
    removed
}

/// Entries in use (tests).
#[cfg(test)]
pub(crate) fn len() -> usize {
    RESERVED.load(Relaxed)
}

/// Before `fork`: takes the map's lock and keeps it (a leaf lock, so taken
/// last) until [`postfork`].
pub(crate) fn prefork() {
    core::mem::forget(MAP.lock());
}

/// After `fork`, in parent and child: releases the lock [`prefork`] took.
///
/// # Safety
///
/// The calling thread called [`prefork`] and no `postfork` since.
pub(crate) unsafe fn postfork() {
    // SAFETY: forwarded contract: `prefork` took it and forgot the guard.
    unsafe { MAP.force_unlock() };
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    /// Slots whose entries collide (the same home, and homes around the
    /// wrap from the last entry to the first), several entries per slot,
    /// removed half first and then the rest: every entry is found once
    /// (the backward shift keeps the others reachable).
    #[test]
    fn removal_keeps_colliding_entries_reachable() {
        // Slots far above any real heap address: no other test's.
        let base = 0x7e00_0000_0000usize;
        let homes = [CAPACITY - 2, CAPACITY - 1, 0, 1];
        let mut slots = Vec::new();
        let mut k = 0;
        while slots.len() < 16 {
            let s = base + k * 16;
            let h = home(s);
            if homes.contains(&h) && slots.iter().filter(|&&t| home(t) == h).count() < 4 {
                slots.push(s);
            }
            k += 1;
        }
        let b = table::record_alloc(&[1, 2, 3], 16).expect("a bucket");
        let copies = |n: usize| n % 3 + 1;
        for (n, &s) in slots.iter().enumerate() {
            for _ in 0..copies(n) {
                assert!(reserve());
                assert!(insert(s, b));
            }
        }
        let before = len();
        let (first, rest): (Vec<_>, Vec<_>) = slots.iter().enumerate().partition(|(n, _)| n % 2 == 0);
        let want = |v: &[(usize, &usize)]| v.iter().map(|&(n, _)| copies(n)).sum::<usize>();
        let addrs = |v: &[(usize, &usize)]| v.iter().map(|&(_, &s)| s).collect::<Vec<_>>();
        assert_eq!(free_dead(addrs(&first).into_iter(), usize::MAX), want(&first));
        assert_eq!(free_dead(addrs(&first).into_iter(), usize::MAX), 0);
        // The limit stops the walk early: after the first slot's entries.
        let n0 = copies(rest[0].0);
        assert_eq!(free_dead(addrs(&rest).into_iter(), n0), n0);
        assert_eq!(free_dead(addrs(&rest).into_iter(), usize::MAX), want(&rest) - n0);
        assert_eq!(len(), before - want(&first) - want(&rest));
    }
}
