//! Growing strings and vectors.

use crate::{scaled, Checksum, Rng};

/// Strings and vectors alive at once.
const SLOTS: usize = 512;

/// Pieces appended to strings.
const PIECES: [&str; 8] = [
    "a",
    "go",
    "heap",
    "mspan",
    "mcache",
    "mcentral",
    "size class 67, 32 KiB",
    "the quick brown fox jumps over the lazy dog",
];

fn string_digest(s: &String) -> u64 {
    let b = s.as_bytes();
    (s.len() as u64) ^ (s.capacity() as u64) << 24 ^ (b[b.len() / 2] as u64) << 56
}

/// Realloc-heavy growth, `60k * scale` rounds. Each round picks a slot and
/// either appends small pieces to the string already there (growing a
/// long-lived buffer, up to 64 KiB, where an allocator can often grow in
/// place) or builds a new string of 16 B..16 KiB by `push_str` (amortised
/// doubling: about log2(len) reallocs); then builds a `Vec<u32>` of
/// 8..=1024 elements in steps of 1..=8 elements with `reserve_exact`, which
/// reallocates on every step (the worst case, as in code that grows a buffer
/// by exactly what it needs). One vector in four is shrunk with
/// `shrink_to_fit`, one string in four with `into_boxed_str`.
pub(crate) fn realloc(scale: f64) -> u64 {
    let rounds = scaled(60_000, scale);
    let mut rng = Rng::new(2);
    let mut strings: Vec<String> = vec![String::new(); SLOTS];
    let mut vecs: Vec<Vec<u32>> = vec![Vec::new(); SLOTS];
    let mut ck = Checksum::new();
    for _ in 0..rounds {
        let s = rng.below(SLOTS);

        let extend = rng.below(3) == 0 && !strings[s].is_empty() && strings[s].len() < 65_536;
        let mut st = if extend {
            std::mem::take(&mut strings[s])
        } else {
            String::new()
        };
        let target = st.len() + rng.log_size(16, 16_384);
        while st.len() < target {
            st.push_str(PIECES[rng.below(PIECES.len())]);
        }
        if rng.below(4) == 0 {
            st = st.into_boxed_str().into_string();
        }
        ck.add(string_digest(&st));
        strings[s] = st;

        let target = rng.log_size(8, 1024);
        let mut v: Vec<u32> = Vec::new();
        while v.len() < target {
            let k = rng.range(1, 8);
            v.reserve_exact(k);
            for _ in 0..k {
                v.push(rng.next_u64() as u32);
            }
        }
        if rng.below(4) == 0 {
            v.truncate(v.len() / 2);
            v.shrink_to_fit();
        }
        ck.add(v.len() as u64 ^ (v.capacity() as u64) << 20 ^ (v[v.len() / 2] as u64) << 32);
        vecs[s] = v;
    }
    for (st, v) in strings.iter().zip(&vecs) {
        if !st.is_empty() {
            ck.add(string_digest(st));
        }
        ck.add(
            v.iter()
                .fold(v.len() as u64, |a, &x| a.wrapping_add(x as u64)),
        );
    }
    ck.value()
}
