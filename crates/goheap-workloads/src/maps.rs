//! Maps with `String` keys.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use crate::{mix, scaled, Checksum, Rng};

/// The map operations the workload needs.
trait Map: Default {
    fn put(&mut self, k: String, v: u64) -> Option<u64>;
    fn look(&self, k: &str) -> Option<u64>;
    fn take(&mut self, k: &str) -> Option<(String, u64)>;
    fn size(&self) -> usize;
}

impl Map for BTreeMap<String, u64> {
    fn put(&mut self, k: String, v: u64) -> Option<u64> {
        self.insert(k, v)
    }
    fn look(&self, k: &str) -> Option<u64> {
        self.get(k).copied()
    }
    fn take(&mut self, k: &str) -> Option<(String, u64)> {
        self.remove_entry(k)
    }
    fn size(&self) -> usize {
        self.len()
    }
}

/// FxHash (as in rustc): fast and deterministic, so that the time goes to
/// the allocator and the table rather than to SipHash.
#[derive(Default)]
struct FxHasher(u64);

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap()));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxHashMap = HashMap<String, u64, BuildHasherDefault<FxHasher>>;

impl Map for FxHashMap {
    fn put(&mut self, k: String, v: u64) -> Option<u64> {
        self.insert(k, v)
    }
    fn look(&self, k: &str) -> Option<u64> {
        self.get(k).copied()
    }
    fn take(&mut self, k: &str) -> Option<(String, u64)> {
        self.remove_entry(k)
    }
    fn size(&self) -> usize {
        self.len()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes the key of `id` into `buf`: 16 hex digits of a bijective hash of
/// `id` (so keys are unique and spread over the key space) and 0..=24 more
/// characters, 16 to 40 bytes in all.
fn key(id: u64, buf: &mut String) {
    buf.clear();
    let h = mix(id);
    for i in 0..16 {
        buf.push(HEX[((h >> (60 - 4 * i)) & 15) as usize] as char);
    }
    let extra = mix(h) % 25;
    for i in 0..extra {
        buf.push(HEX[((h >> (i * 2)) & 15) as usize] as char);
    }
}

/// 5 generations; each builds a map of `window` (times 1, 2 or 4) keys from
/// empty, then does `ops` steps of: insert a new key, look up a present key and a
/// missing one, remove the oldest key (a sliding window over a stream of
/// keys, so removals hit random places in the map), and finally drops the
/// map. Every insert allocates an exactly-sized `String` key (16-40 B); the
/// map allocates its nodes or tables.
fn run<M: Map>(seed: u64, window: usize, ops: usize, scale: f64) -> u64 {
    let mut rng = Rng::new(seed);
    let mut ck = Checksum::new();
    let mut buf = String::with_capacity(64);
    let mut next_id = 0u64;
    for g in 0..5u64 {
        let window = scaled(window << (g % 3), scale) as u64;
        let ops = scaled(ops, scale);
        let mut map = M::default();
        let lo0 = next_id;
        for id in lo0..lo0 + window {
            key(id, &mut buf);
            assert!(map.put(buf.clone(), mix(id)).is_none(), "duplicate key");
        }
        let (mut lo, mut hi) = (lo0, lo0 + window);
        for _ in 0..ops {
            key(hi, &mut buf);
            assert!(map.put(buf.clone(), mix(hi)).is_none(), "duplicate key");
            hi += 1;
            let id = lo + rng.below((hi - lo) as usize) as u64;
            key(id, &mut buf);
            let v = map.look(&buf);
            assert_eq!(v, Some(mix(id)), "lost key");
            ck.add(v.unwrap_or(0));
            key(hi + (1 << 40), &mut buf);
            assert_eq!(map.look(&buf), None, "phantom key");
            key(lo, &mut buf);
            let (k, v) = map.take(&buf).expect("lost key");
            assert_eq!(v, mix(lo), "wrong value");
            ck.add(v ^ k.len() as u64);
            lo += 1;
        }
        ck.add(map.size() as u64);
        next_id = hi;
    }
    ck.value()
}

/// `BTreeMap<String, u64>` (B-tree nodes of about 0.3 and 0.4 KiB).
pub(crate) fn btreemap(scale: f64) -> u64 {
    run::<BTreeMap<String, u64>>(3, 10_000, 100_000, scale)
}

/// `HashMap<String, u64>` with FxHash (one table, regrown by doubling during
/// each build: a new table of up to about 2 MiB, then the old one freed).
pub(crate) fn hashmap(scale: f64) -> u64 {
    run::<FxHashMap>(4, 20_000, 200_000, scale)
}

/// `8 * scale` times, builds a `HashMap<String, Vec<u8>>` of 100 000
/// entries (fewer below scale 1) from empty (the table doubles 17 times: each new table
/// allocated, the old one freed; 16-byte keys; values of 1-200 bytes
/// filled with one byte), looks every key up, and drops the whole map: a
/// program that rebuilds an index per request or per file. Every object
/// of a build dies together, so the allocator sees 200 000 small frees in
/// a burst and the same sizes asked for again at once.
pub(crate) fn maprebuild(scale: f64) -> u64 {
    // Below scale 1 the maps shrink, above it the rounds multiply.
    let entries = scaled(100_000, scale.min(1.0));
    let mut rng = Rng::new(13);
    let mut ck = Checksum::new();
    for round in 0..scaled(8, scale.max(1.0)) {
        // A 16-byte key per entry of the round.
        let key = |i: usize| {
            format!(
                "k{:015}",
                mix((round * entries + i) as u64) % 1_000_000_000_000_000
            )
        };
        let mut m: HashMap<String, Vec<u8>, BuildHasherDefault<FxHasher>> = HashMap::default();
        for i in 0..entries {
            let len = rng.range(1, 200);
            m.insert(key(i), vec![(i as u8) | 1; len]);
        }
        for i in (0..entries).step_by(7) {
            ck.add(m.get(&key(i)).map_or(0, |v| v.len() as u64 + v[0] as u64));
        }
        ck.add(m.len() as u64);
    }
    ck.value()
}
