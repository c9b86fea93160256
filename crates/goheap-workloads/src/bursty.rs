//! A bursty server: load, idle, load, idle, load, idle, while a sampling
//! thread records the process's resident set size every 10 ms. Not part of
//! the default suite (it runs for about 11 s whatever the allocator, and
//! measures memory over time, not speed): `goheap rss` runs it.
//!
//! Each load phase, every worker thread builds a working set of small blocks
//! (16 B..=4 KiB, log-uniform) with large ones (64 KiB..=1 MiB) scattered
//! among them, about 300 MB in all, churns it (replaces random blocks) until
//! the phase's time is up, then frees it all except every `keep_every`-th
//! small block: a long-lived set of about 8 MB scattered through the memory
//! just freed, which lives until the end of the next load phase. In the idle
//! phase the workers stay alive, blocked, and the process allocates nothing.
//!
//! The output, on stdout: comment lines starting with `#` (the parameters,
//! and `# phase NAME T_MS` when each phase starts), then one line per sample,
//! `t_ms rss_bytes live_bytes phase`: milliseconds since the start, the RSS
//! (`/proc/self/statm` resident pages × page size), the bytes the workload
//! has allocated and not yet freed (blocks and the vectors holding them, kept
//! by the workload itself in per-thread atomic counters), and the phase name
//! (`start`, `load1`, `idle1`, …).
//!
//! The checksum depends only on the data: every block carries its tag in its
//! first 8 bytes and its size and fill byte are derived from the tag, so each
//! block is verified when it is freed. The sum of the tags of all blocks of
//! the build step (deterministic; each freed exactly once, during the churn
//! or after it) and the number of corrupted blocks (0) go into the checksum;
//! the number of churn steps, which depends on the allocator's speed, does
//! not.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::{Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::{mix, Checksum, Rng};

/// The shape of one run.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    /// Worker threads.
    pub(crate) threads: usize,
    /// Bytes in the working set of all threads after each build step.
    pub(crate) live: usize,
    /// Bytes kept alive through each idle phase, all threads.
    pub(crate) keep: usize,
    /// Length of each load phase (build, churn, free).
    pub(crate) load: Duration,
    /// Length of each idle phase.
    pub(crate) idle: Duration,
    /// Load + idle cycles.
    pub(crate) cycles: usize,
    /// Sampling interval.
    pub(crate) every: Duration,
}

impl Params {
    /// The benchmark at `scale`: 4 threads, 300 MB × `scale` live, 8 MB ×
    /// `scale` kept, load phases of 1.5 s × `scale` and idle phases of
    /// 2 s × `scale`, 3 cycles, a sample every 10 ms.
    pub(crate) fn scaled(scale: f64) -> Params {
        let mb = |n: f64| (n * 1e6 * scale) as usize;
        let ms = |n: f64| Duration::from_secs_f64(n * 1e-3 * scale);
        Params {
            threads: 4,
            live: mb(300.0),
            keep: mb(8.0),
            load: ms(1500.0),
            idle: ms(2000.0),
            cycles: 3,
            every: Duration::from_millis(10),
        }
    }

    fn phase_name(&self, code: u8) -> String {
        let code = code as usize;
        if code == 0 {
            "start".to_string()
        } else if code > 2 * self.cycles {
            "end".to_string()
        } else if code % 2 == 1 {
            format!("load{}", code.div_ceil(2))
        } else {
            format!("idle{}", code / 2)
        }
    }
}

/// Smallest and largest small block.
const SMALL: (usize, usize) = (16, 4096);
/// Smallest and largest large block.
const LARGE: (usize, usize) = (64 << 10, 1 << 20);
/// In the churn, one replacement in this many is of a large block.
const LARGE_EVERY: u64 = 2048;
/// Churn steps between two looks at the clock.
const CLOCK_EVERY: usize = 64;

/// The size of the block tagged `tag`.
fn size_of_tag(tag: u64, large: bool) -> usize {
    let (lo, hi) = if large { LARGE } else { SMALL };
    Rng::new(tag).log_size(lo, hi)
}

/// The byte every block tagged `tag` is filled with (never 0).
fn fill_of(tag: u64) -> u8 {
    (tag >> 56) as u8 | 1
}

/// A block tagged `tag`: its size derived from the tag, the tag in its
/// first 8 bytes, every other byte written (so every page is touched).
fn block(tag: u64, large: bool) -> Box<[u8]> {
    let mut b = vec![fill_of(tag); size_of_tag(tag, large)].into_boxed_slice();
    b[..8].copy_from_slice(&tag.to_le_bytes());
    b
}

/// Reads a block back: its tag, if the block is intact.
fn check(b: &[u8], large: bool) -> Option<u64> {
    let tag = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
    let f = fill_of(tag);
    let n = b.len();
    (n == size_of_tag(tag, large) && b[8] == f && b[n / 2] == f && b[n - 1] == f).then_some(tag)
}

/// A counter on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(AtomicUsize);

/// One worker thread.
struct Worker<'a> {
    id: u64,
    p: &'a Params,
    /// Where this thread publishes its live bytes for the sampler.
    live: &'a AtomicUsize,
    /// Its live bytes.
    bytes: usize,
    /// Corrupted blocks seen.
    bad: u64,
    /// Wrapping sum over the freed blocks of the build steps of their tags.
    build_sum: u64,
    /// Blocks of the build steps freed.
    build_freed: u64,
    /// The long-lived blocks kept from the last load phase.
    kept: Vec<Box<[u8]>>,
    ck: Checksum,
}

impl Worker<'_> {
    fn add(&mut self, n: usize) {
        self.bytes += n;
        self.live.store(self.bytes, Relaxed);
    }

    fn sub(&mut self, n: usize) {
        self.bytes -= n;
        self.live.store(self.bytes, Relaxed);
    }

    /// Pushes `b` onto `v`, counting any growth of `v`.
    fn push(&mut self, v: &mut Vec<Box<[u8]>>, b: Box<[u8]>) {
        let cap = v.capacity();
        v.push(b);
        if v.capacity() != cap {
            self.add((v.capacity() - cap) * size_of::<Box<[u8]>>());
        }
    }

    /// Frees `v` itself (it must be empty).
    fn drop_vec(&mut self, v: Vec<Box<[u8]>>) {
        self.sub(v.capacity() * size_of::<Box<[u8]>>());
    }

    /// Allocates a new block.
    fn new_block(&mut self, tag: u64, large: bool) -> Box<[u8]> {
        let b = block(tag, large);
        self.add(b.len());
        b
    }

    /// Verifies and frees a block.
    fn free(&mut self, b: Box<[u8]>, large: bool) {
        match check(&b, large) {
            Some(tag) if tag & 1 == 0 => {
                self.build_sum = self.build_sum.wrapping_add(tag);
                self.build_freed += 1;
            }
            Some(_) => {}
            None => self.bad += 1,
        }
        self.sub(b.len());
    }

    /// One load phase: build, churn until `p.load` after `start`, free all
    /// but the long-lived set.
    fn load(&mut self, cycle: u64, start: Instant) {
        let p = self.p;
        let threads = p.threads.max(1);
        let small_target = p.live * 2 / 3 / threads;
        let large_target = p.live / 3 / threads;
        let keep_target = (p.keep / threads).max(1);
        // Small blocks kept: every keep_every-th, about keep_target bytes.
        let keep_every = (small_target / keep_target).max(1);
        let kept = |s: usize| s % keep_every == 0;
        let seed = (self.id << 48) | (cycle << 40);

        // Build: small and large blocks interleaved in proportion.
        let mut small: Vec<Box<[u8]>> = Vec::new();
        let mut large: Vec<Box<[u8]>> = Vec::new();
        let (mut small_bytes, mut large_bytes) = (0usize, 0usize);
        let mut j = 0u64;
        while small_bytes < small_target || large_bytes < large_target {
            j += 1;
            let tag = mix(seed ^ j) & !1;
            let big = large_bytes < large_target
                && (small_bytes >= small_target
                    || (large_bytes as u128) * (small_target as u128)
                        <= (small_bytes as u128) * (large_target as u128));
            let b = self.new_block(tag, big);
            if big {
                large_bytes += b.len();
                self.push(&mut large, b);
            } else {
                small_bytes += b.len();
                self.push(&mut small, b);
            }
        }

        // Churn until the phase's time is up.
        let deadline = start + p.load;
        let mut rng = Rng::new(seed ^ (0xc4 << 32));
        let mut i = 0u64;
        'churn: while !small.is_empty() {
            for _ in 0..CLOCK_EVERY {
                i += 1;
                let tag = mix(seed ^ (1 << 39) ^ i) | 1;
                if i % LARGE_EVERY == 0 && !large.is_empty() {
                    let s = rng.below(large.len());
                    let b = self.new_block(tag, true);
                    let old = std::mem::replace(&mut large[s], b);
                    self.free(old, true);
                } else {
                    let s = rng.below(small.len());
                    if kept(s) {
                        continue;
                    }
                    let b = self.new_block(tag, false);
                    let old = std::mem::replace(&mut small[s], b);
                    self.free(old, false);
                }
            }
            if Instant::now() >= deadline {
                break 'churn;
            }
        }

        // Free almost everything: the last long-lived set, then the working
        // set but for a new long-lived set scattered through it.
        let old_kept = std::mem::take(&mut self.kept);
        self.release_kept(old_kept);
        let mut new_kept = Vec::new();
        for (s, b) in small.drain(..).enumerate() {
            if kept(s) {
                self.push(&mut new_kept, b);
            } else {
                self.free(b, false);
            }
        }
        for b in large.drain(..) {
            self.free(b, true);
        }
        self.drop_vec(small);
        self.drop_vec(large);
        self.kept = new_kept;
    }

    /// Frees a long-lived set, folding it into the checksum in order.
    fn release_kept(&mut self, mut kept: Vec<Box<[u8]>>) {
        for b in kept.drain(..) {
            self.ck.add(check(&b, false).unwrap_or(0) ^ b.len() as u64);
            self.free(b, false);
        }
        self.drop_vec(kept);
    }

    /// Frees what is left and returns the checksum.
    fn finish(mut self) -> u64 {
        let kept = std::mem::take(&mut self.kept);
        self.release_kept(kept);
        self.ck.add(self.build_sum);
        self.ck.add(self.build_freed);
        self.ck.add(self.bad);
        self.ck.add(self.bytes as u64);
        self.ck.value()
    }
}

/// One sample.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Microseconds since the start.
    t_us: u64,
    rss_pages: u64,
    live: u64,
    phase: u8,
}

/// The process's resident pages, from `/proc/self/statm`, without
/// allocating (the path is short enough for `File::open` to build its C
/// string on the stack).
fn rss_pages() -> Option<u64> {
    let mut buf = [0u8; 128];
    let mut f = File::open("/proc/self/statm").ok()?;
    let n = f.read(&mut buf).ok()?;
    let field = buf[..n].split(|&c| c == b' ').nth(1)?;
    let mut v = 0u64;
    for &c in field {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
    }
    Some(v)
}

/// The page size, from the auxiliary vector (`AT_PAGESZ`); 4096 if it
/// cannot be read.
fn page_size() -> u64 {
    const AT_PAGESZ: usize = 6;
    const W: usize = size_of::<usize>();
    let Ok(aux) = std::fs::read("/proc/self/auxv") else {
        return 4096;
    };
    let word = |c: &[u8]| usize::from_ne_bytes(c.try_into().unwrap_or([0; W]));
    aux.chunks_exact(2 * W)
        .find(|kv| word(&kv[..W]) == AT_PAGESZ)
        .map_or(4096, |kv| word(&kv[W..]) as u64)
}

/// Runs the workload; returns the checksum and the text to print.
pub(crate) fn run(p: &Params) -> (u64, String) {
    let page = page_size();
    let lives: Vec<Padded> = (0..p.threads).map(|_| Padded::default()).collect();
    let phase = AtomicU8::new(0);
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(p.threads + 1);
    // Room for twice the planned samples; a sampler that falls behind never
    // needs more, and one that runs out stops recording rather than
    // allocate.
    let planned = (p.load + p.idle).as_secs_f64() * p.cycles as f64;
    let cap = (2.0 * planned / p.every.as_secs_f64().max(1e-3)) as usize + 200;
    let mut samples: Vec<Sample> = Vec::with_capacity(cap);
    let phase_starts: Mutex<Vec<(u8, Duration)>> = Mutex::new(Vec::new());
    let t0 = Instant::now();

    let (checksum, dropped) = thread::scope(|s| {
        let sampler = s.spawn(|| {
            // No allocation in this loop: `samples` never grows.
            let mut dropped = 0u64;
            let mut next = Instant::now();
            while !stop.load(Relaxed) {
                let now = Instant::now();
                let rss = rss_pages().unwrap_or(0);
                let live: usize = lives.iter().map(|l| l.0.load(Relaxed)).sum();
                let sample = Sample {
                    t_us: now.duration_since(t0).as_micros() as u64,
                    rss_pages: rss,
                    live: live as u64,
                    phase: phase.load(Relaxed),
                };
                if samples.len() < samples.capacity() {
                    samples.push(sample);
                } else {
                    dropped += 1;
                }
                next += p.every;
                let now = Instant::now();
                if next <= now {
                    // Behind (descheduled): skip the missed ticks rather
                    // than take a burst of samples.
                    next = now + p.every;
                }
                thread::sleep(next - now);
            }
            dropped
        });
        let workers: Vec<_> = (0..p.threads)
            .map(|id| {
                let (barrier, live) = (&barrier, &lives[id].0);
                s.spawn(move || {
                    let mut w = Worker {
                        id: id as u64,
                        p,
                        live,
                        bytes: 0,
                        bad: 0,
                        build_sum: 0,
                        build_freed: 0,
                        kept: Vec::new(),
                        ck: Checksum::new(),
                    };
                    for c in 0..p.cycles {
                        barrier.wait();
                        w.load(c as u64, Instant::now());
                        barrier.wait();
                    }
                    // Idle until the last idle phase is over.
                    barrier.wait();
                    w.finish()
                })
            })
            .collect();
        let mark = |code: u8| {
            phase.store(code, Relaxed);
            phase_starts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((code, t0.elapsed()));
        };
        for c in 0..p.cycles {
            mark(2 * c as u8 + 1);
            barrier.wait(); // the workers start loading
            barrier.wait(); // they have freed their working sets
            mark(2 * c as u8 + 2);
            thread::sleep(p.idle);
        }
        mark(2 * p.cycles as u8 + 1);
        stop.store(true, Relaxed);
        let dropped = sampler.join().expect("sampler panicked");
        barrier.wait(); // the workers free what they kept
        let mut ck = Checksum::new();
        for w in workers {
            ck.add(w.join().expect("worker panicked"));
        }
        (ck.value(), dropped)
    });

    let mut out = String::with_capacity(64 + samples.len() * 40);
    let _ = writeln!(
        out,
        "# bursty: threads={} live_target={} keep_target={} load_ms={} idle_ms={} cycles={} every_ms={} page_size={page} samples={} dropped={dropped}",
        p.threads,
        p.live,
        p.keep,
        p.load.as_millis(),
        p.idle.as_millis(),
        p.cycles,
        p.every.as_millis(),
        samples.len()
    );
    for (code, t) in phase_starts.into_inner().unwrap_or_else(|e| e.into_inner()) {
        let _ = writeln!(
            out,
            "# phase {} {:.1}",
            p.phase_name(code),
            t.as_secs_f64() * 1e3
        );
    }
    let _ = writeln!(out, "# t_ms rss_bytes live_bytes phase");
    for s in &samples {
        let _ = writeln!(
            out,
            "{:.1} {} {} {}",
            s.t_us as f64 / 1e3,
            s.rss_pages * page,
            s.live,
            p.phase_name(s.phase)
        );
    }
    (checksum, out)
}

/// The workload at `scale` (see [`Params::scaled`]); prints its samples.
pub(crate) fn bursty(scale: f64) -> u64 {
    let (checksum, out) = run(&Params::scaled(scale));
    print!("{out}");
    checksum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Params {
        Params {
            threads: 3,
            live: 3 << 20,
            keep: 100 << 10,
            load: Duration::from_millis(30),
            idle: Duration::from_millis(25),
            cycles: 2,
            every: Duration::from_millis(2),
        }
    }

    #[test]
    fn blocks_verify() {
        for (tag, large) in [(0x1234_5678_9abc_def0, false), (42, true)] {
            let mut b = block(tag, large);
            assert_eq!(check(&b, large), Some(tag));
            let n = b.len();
            b[n - 1] ^= 0x10;
            assert_eq!(check(&b, large), None);
        }
        assert_eq!(check(&[1, 2, 3], false), None);
    }

    #[test]
    fn reads_its_own_rss() {
        assert!(rss_pages().unwrap() > 0);
        let p = page_size();
        assert!(p.is_power_of_two() && p >= 4096, "{p}");
    }

    #[test]
    fn samples_and_checksum() {
        let p = tiny();
        let (a, out) = run(&p);
        // The churn runs for a fixed time, so does a different number of
        // steps each run; the checksum must not depend on it.
        let (b, _) = run(&p);
        assert_eq!(a, b);
        let mut phases = Vec::new();
        let mut rows = 0;
        let mut last_t = -1.0;
        for line in out.lines() {
            if let Some(rest) = line.strip_prefix("# phase ") {
                phases.push(rest.split(' ').next().unwrap().to_string());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let f: Vec<&str> = line.split(' ').collect();
            assert_eq!(f.len(), 4, "{line}");
            let t: f64 = f[0].parse().unwrap();
            assert!(t >= last_t);
            last_t = t;
            assert!(f[1].parse::<u64>().unwrap() > 0);
            let live: usize = f[2].parse().unwrap();
            // At this size a few large blocks are most of the working set,
            // and the churn makes it drift by whole large blocks.
            assert!(live < p.live + 2 * p.threads * LARGE.1, "{line}");
            if f[3].starts_with("idle") {
                // Only the long-lived set is live when idle.
                assert!(live <= 2 * p.keep, "{line}");
            }
            rows += 1;
        }
        assert_eq!(phases, ["load1", "idle1", "load2", "idle2", "end"]);
        assert!(rows >= 10, "{out}");
    }

    #[test]
    fn phase_names() {
        let p = tiny();
        let names: Vec<String> = (0..6).map(|c| p.phase_name(c)).collect();
        assert_eq!(names, ["start", "load1", "idle1", "load2", "idle2", "end"]);
    }
}
