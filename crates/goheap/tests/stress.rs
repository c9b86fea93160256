//! Multi-threaded stress with goheap as the global allocator: many more
//! threads than cores, objects freed by other threads than the ones that
//! allocated them (through shared slots and channels), threads created
//! and destroyed all the time, random sizes from 1 byte to 4 MiB, and
//! every byte of every object checked before it is freed.
//!
//! Scale (see `docs/testing.md`):
//! - `GOHEAP_STRESS_SECS`: seconds of stress, shared by the two stress
//!   tests (default 4, for CI).
//! - `GOHEAP_PC_OBJECTS`: objects through the producer/consumer RSS test
//!   (default 10^6).
//!
//! Long soak:
//! `GOHEAP_STRESS_SECS=600 GOHEAP_PC_OBJECTS=100000000 cargo test --release -p goheap --test stress -- --nocapture`
#![cfg(not(goheap_loom))] // goheap is only `sync` under loom (ci/loom.sh)

mod common;
use common::Rng;
use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: goheap::GoHeap = goheap::GoHeap;

/// One test at a time: they measure the whole process (RSS, statistics).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Built once and kept: make it before any test measures the heap.
    pattern();
    g
}

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Stress seconds for one of the two time-bound tests.
fn stress_time() -> Duration {
    Duration::from_secs_f64(env_f64("GOHEAP_STRESS_SECS", 4.0) / 2.0)
}

/// Threads alive at once in the stress tests (the CI machine has 2 cores).
const THREADS: usize = 18;

const MAX_OBJ: usize = 4 << 20;
const WINDOWS: usize = 1 << 16;

/// Random bytes; an object with seed `s` holds `PATTERN[s % WINDOWS..]`.
fn pattern() -> &'static [u8] {
    static P: OnceLock<Vec<u8>> = OnceLock::new();
    P.get_or_init(|| {
        let mut rng = Rng::new(42);
        (0..MAX_OBJ + WINDOWS).map(|_| rng.next() as u8).collect()
    })
}

/// Sizes: mostly small, some up to 32 KiB, a few large (up to 4 MiB).
fn random_size(rng: &mut Rng) -> usize {
    match rng.below(1000) {
        0..=649 => rng.range(1, 512),
        650..=899 => rng.range(513, 32 << 10),
        900..=989 => rng.range((32 << 10) + 1, 256 << 10),
        _ => rng.range((256 << 10) + 1, MAX_OBJ),
    }
}

fn random_align(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=84 => 1 << rng.below(4),
        85..=97 => 1 << rng.range(4, 12),
        _ => 1 << rng.range(13, 16),
    }
}

/// A heap object owned by whoever holds this, filled with its pattern.
struct Obj {
    ptr: *mut u8,
    layout: Layout,
    seed: usize,
}

// SAFETY: the object is plain memory owned by the holder.
unsafe impl Send for Obj {}

impl Obj {
    fn new(rng: &mut Rng) -> Obj {
        let size = random_size(rng);
        let align = random_align(rng);
        Obj::with_size(rng, size, align)
    }

    fn with_size(rng: &mut Rng, size: usize, align: usize) -> Obj {
        let layout = Layout::from_size_align(size, align).unwrap();
        let zeroed = rng.below(8) == 0;
        // SAFETY: non-zero size.
        let ptr = unsafe {
            if zeroed {
                alloc_zeroed(layout)
            } else {
                alloc(layout)
            }
        };
        assert!(!ptr.is_null(), "allocation of {layout:?} failed");
        assert_eq!(ptr as usize % align, 0, "{layout:?} at {ptr:p}");
        if zeroed {
            // SAFETY: `size` bytes just allocated.
            let s = unsafe { std::slice::from_raw_parts(ptr, size) };
            assert!(
                s.iter().all(|&b| b == 0),
                "alloc_zeroed({layout:?}) not zero"
            );
        }
        let o = Obj {
            ptr,
            layout,
            seed: rng.below(WINDOWS),
        };
        o.fill();
        o
    }

    fn want(&self, len: usize) -> &'static [u8] {
        &pattern()[self.seed..self.seed + len]
    }

    fn fill(&self) {
        let src = self.want(self.layout.size());
        // SAFETY: our object holds `size` bytes; the pattern is elsewhere.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr, src.len()) };
    }

    fn verify_prefix(&self, len: usize) {
        // SAFETY: our object holds at least `len` bytes.
        let got = unsafe { std::slice::from_raw_parts(self.ptr, len) };
        if got != self.want(len) {
            let at = got
                .iter()
                .zip(self.want(len))
                .position(|(a, b)| a != b)
                .unwrap();
            panic!(
                "object {:p} ({:?}) corrupted at offset {at} (thread {:?})",
                self.ptr,
                self.layout,
                thread::current().id()
            );
        }
    }

    fn verify(&self) {
        self.verify_prefix(self.layout.size());
    }

    fn resize(&mut self, rng: &mut Rng) {
        self.verify();
        let new_size = if rng.below(2) == 0 {
            random_size(rng)
        } else {
            (self.layout.size() * rng.range(32, 96) / 64).clamp(1, MAX_OBJ)
        };
        // SAFETY: our live object with this layout; new_size > 0.
        let q = unsafe { realloc(self.ptr, self.layout, new_size) };
        assert!(!q.is_null());
        assert_eq!(q as usize % self.layout.align(), 0);
        let old = self.layout.size();
        self.ptr = q;
        self.layout = Layout::from_size_align(new_size, self.layout.align()).unwrap();
        self.verify_prefix(old.min(new_size));
        self.fill();
    }

    /// Checks and frees the object (dropping it does the same).
    fn free(self) {
        drop(self);
    }
}

impl Drop for Obj {
    fn drop(&mut self) {
        self.verify();
        // SAFETY: our live object, with its layout.
        unsafe { dealloc(self.ptr, self.layout) };
    }
}

/// Statistics computed under the heap lock are consistent even while
/// other threads allocate.
fn check_heap_stats() {
    let s = goheap::memstats();
    assert!(s.heap_sys >= s.heap_inuse, "{s:?}");
    assert_eq!(s.heap_idle, s.heap_sys - s.heap_inuse);
    assert!(s.sys >= s.heap_sys);
}

/// After the threads are gone: exact relations.
fn check_quiet_stats(before: &goheap::MemStats) -> goheap::MemStats {
    goheap::flush_thread_cache();
    let s = goheap::memstats();
    for (c, b) in s.by_size.iter().enumerate() {
        assert!(
            b.mallocs >= b.frees,
            "class {c}: {} mallocs < {} frees",
            b.mallocs,
            b.frees
        );
    }
    assert!(
        s.heap_inuse >= s.heap_alloc,
        "heap_inuse {} < heap_alloc {}",
        s.heap_inuse,
        s.heap_alloc
    );
    assert!(s.heap_sys >= s.heap_inuse);
    assert_eq!(s.heap_idle, s.heap_sys - s.heap_inuse);
    assert!(s.mallocs >= s.frees);
    assert_eq!(s.heap_objects, s.mallocs - s.frees);
    let small: u64 = s.by_size.iter().map(|b| b.mallocs - b.frees).sum();
    assert!(small <= s.heap_objects);
    // Everything the test made is freed: the heap holds what the harness
    // holds, plus at most spans cached by this thread and the shared
    // fallback cache (one per class).
    eprintln!(
        "  heap_alloc {} -> {} B, heap_inuse {} -> {} KiB, heap_sys {} MiB, objects {} -> {}",
        before.heap_alloc,
        s.heap_alloc,
        before.heap_inuse >> 10,
        s.heap_inuse >> 10,
        s.heap_sys >> 20,
        before.heap_objects,
        s.heap_objects
    );
    assert!(
        s.heap_alloc <= before.heap_alloc + (1 << 20),
        "live bytes grew by {} KiB after everything was freed",
        (s.heap_alloc - before.heap_alloc) >> 10
    );
    assert!(
        s.heap_inuse <= before.heap_inuse + (8 << 20),
        "in-use spans grew by {} KiB after everything was freed",
        (s.heap_inuse - before.heap_inuse) >> 10
    );
    s
}

/// Keeps `THREADS` workers running until `deadline`, replacing each one
/// that exits (thread churn). Returns how many threads ran.
fn churn<F>(deadline: Instant, mut spawn: F) -> usize
where
    F: FnMut(usize) -> thread::JoinHandle<()>,
{
    let mut live: Vec<thread::JoinHandle<()>> = (0..THREADS).map(&mut spawn).collect();
    let mut started = THREADS;
    while !live.is_empty() {
        let mut i = 0;
        while i < live.len() {
            if live[i].is_finished() {
                let h = live.swap_remove(i);
                if let Err(e) = h.join() {
                    std::panic::resume_unwind(e);
                }
                if Instant::now() < deadline {
                    live.push(spawn(started));
                    started += 1;
                }
            } else {
                i += 1;
            }
        }
        thread::sleep(Duration::from_millis(1));
    }
    started
}

/// Shared slots: every thread takes whatever object is in a random slot
/// (usually allocated by another, often dead, thread), checks and frees or
/// resizes it, or puts a new one there. Workers live for a few thousand
/// operations, so threads come and go all the time.
#[test]
fn shared_slots_cross_thread_frees_and_thread_churn() {
    let _g = serial();
    let before = goheap::memstats();
    const SLOTS: usize = 2048;
    let slots: Arc<Vec<Mutex<Option<Obj>>>> =
        Arc::new((0..SLOTS).map(|_| Mutex::new(None)).collect());
    let deadline = Instant::now() + stress_time();
    let ops = Arc::new(AtomicUsize::new(0));
    let threads = churn(deadline, |n| {
        let slots = Arc::clone(&slots);
        let ops = Arc::clone(&ops);
        thread::spawn(move || {
            let mut rng = Rng::new(n as u64 + 1);
            let mut own: Vec<Obj> = Vec::new();
            let budget = rng.range(100, 4000);
            for k in 0..budget {
                if k % 32 == 0 && Instant::now() >= deadline {
                    break;
                }
                match rng.below(100) {
                    0..=69 => {
                        let mut slot = slots[rng.below(SLOTS)].lock().unwrap();
                        match slot.take() {
                            Some(mut o) if rng.below(8) == 0 => {
                                o.resize(&mut rng);
                                *slot = Some(o);
                            }
                            Some(o) => {
                                drop(slot);
                                o.free();
                            }
                            None => *slot = Some(Obj::new(&mut rng)),
                        }
                    }
                    // Objects this thread allocates and frees itself.
                    70..=89 => own.push(Obj::new(&mut rng)),
                    90..=97 if !own.is_empty() => {
                        let i = rng.below(own.len());
                        own.swap_remove(i).free();
                    }
                    98 => goheap::flush_thread_cache(),
                    _ => check_heap_stats(),
                }
            }
            // Leave some of our own objects to other threads.
            for o in own {
                let mut slot = slots[rng.below(SLOTS)].lock().unwrap();
                match slot.take() {
                    Some(other) => {
                        *slot = Some(o);
                        drop(slot);
                        other.free();
                    }
                    None => *slot = Some(o),
                }
            }
            ops.fetch_add(budget, Ordering::Relaxed);
        })
    });
    let mut left = 0;
    for s in slots.iter() {
        if let Some(o) = s.lock().unwrap().take() {
            o.free();
            left += 1;
        }
    }
    eprintln!(
        "shared slots: {threads} threads, ~{} operations, {left} objects left at the end",
        ops.load(Ordering::Relaxed)
    );
    drop(slots);
    check_quiet_stats(&before);
}

/// Producers hand batches of objects to consumers over channels; each
/// generation of threads exits and leaves objects behind for the next one
/// (objects of dead threads freed by new threads), and consumers pass some
/// objects on to another consumer before they are freed.
#[test]
fn channels_between_generations_of_threads() {
    let _g = serial();
    let before = goheap::memstats();
    let deadline = Instant::now() + stress_time();
    let leftovers: Arc<Mutex<Vec<Obj>>> = Arc::new(Mutex::new(Vec::new()));
    let mut generations = 0;
    let mut total = 0usize;
    while generations == 0 || Instant::now() < deadline {
        generations += 1;
        const CONSUMERS: usize = 6;
        const PRODUCERS: usize = THREADS - CONSUMERS;
        let (txs, rxs): (Vec<_>, Vec<_>) =
            (0..CONSUMERS).map(|_| mpsc::channel::<Vec<Obj>>()).unzip();
        let received = Arc::new(AtomicUsize::new(0));
        let consumers: Vec<_> = rxs
            .into_iter()
            .enumerate()
            .map(|(c, rx)| {
                let leftovers = Arc::clone(&leftovers);
                let received = Arc::clone(&received);
                // Each consumer may forward to the next one.
                let next = (c < CONSUMERS - 1).then(|| txs[c + 1].clone());
                thread::spawn(move || {
                    let mut rng = Rng::new(1000 + generations as u64 * 64 + c as u64);
                    // Frees of the previous generation's objects.
                    let old = std::mem::take(&mut *leftovers.lock().unwrap());
                    let (free, keep): (Vec<Obj>, Vec<Obj>) =
                        old.into_iter().partition(|_| rng.below(3) == 0);
                    free.into_iter().for_each(Obj::free);
                    leftovers.lock().unwrap().extend(keep);
                    for batch in rx {
                        received.fetch_add(batch.len(), Ordering::Relaxed);
                        let mut fwd = Vec::new();
                        for mut o in batch {
                            match rng.below(20) {
                                0 => leftovers.lock().unwrap().push(o),
                                1 | 2 if next.is_some() => fwd.push(o),
                                3 => {
                                    o.resize(&mut rng);
                                    o.free();
                                }
                                _ => o.free(),
                            }
                        }
                        if let Some(tx) = &next {
                            if !fwd.is_empty() {
                                tx.send(fwd).unwrap();
                            }
                        } else {
                            fwd.into_iter().for_each(Obj::free);
                        }
                    }
                })
            })
            .collect();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let txs = txs.clone();
                let leftovers = Arc::clone(&leftovers);
                thread::spawn(move || {
                    let mut rng = Rng::new(generations as u64 * 1_000_003 + p as u64);
                    for _ in 0..rng.range(5, 40) {
                        let n = rng.range(1, 64);
                        let batch: Vec<Obj> = (0..n).map(|_| Obj::new(&mut rng)).collect();
                        txs[rng.below(CONSUMERS)].send(batch).unwrap();
                    }
                    // A few objects outlive this thread and its generation.
                    let mut l = leftovers.lock().unwrap();
                    for _ in 0..rng.range(0, 8) {
                        l.push(Obj::new(&mut rng));
                    }
                })
            })
            .collect();
        drop(txs);
        for h in producers {
            h.join().unwrap();
        }
        // Consumers end once every sender (producers, earlier consumers) is
        // gone; join in order so each one's forwarding sender is dropped.
        for h in consumers {
            h.join().unwrap();
        }
        total += received.load(Ordering::Relaxed);
    }
    let left = std::mem::take(&mut *leftovers.lock().unwrap());
    let nleft = left.len();
    left.into_iter().for_each(Obj::free);
    eprintln!("channels: {generations} generations of {THREADS} threads, {total} objects received, {nleft} left over");
    check_quiet_stats(&before);
}

/// Resident set size in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    pages * page
}

/// Producers allocate, consumers free, for `GOHEAP_PC_OBJECTS` objects:
/// after warm-up the process must not grow (memory freed by consumers has
/// to be reused by producers on other threads).
#[test]
fn producer_consumer_rss_stays_flat() {
    let _g = serial();
    let before = goheap::memstats();
    let total = env_usize("GOHEAP_PC_OBJECTS", 1_000_000);
    const PRODUCERS: usize = 8;
    const CONSUMERS: usize = 8;
    let warmup = (total / 10).max(1);
    let consumed = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..CONSUMERS)
        .map(|_| mpsc::sync_channel::<Box<[u8]>>(256))
        .unzip();
    let consumers: Vec<_> = rxs
        .into_iter()
        .map(|rx| {
            let consumed = Arc::clone(&consumed);
            thread::spawn(move || {
                for b in rx {
                    let n = b.len();
                    let tag = b[0];
                    assert!(
                        b[n - 1] == tag && b[n / 2] == tag,
                        "object of {n} bytes corrupted in transit"
                    );
                    drop(b);
                    consumed.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let txs = txs.clone();
            let count = total / PRODUCERS + usize::from(p < total % PRODUCERS);
            thread::spawn(move || {
                let mut rng = Rng::new(p as u64 + 77);
                for i in 0..count {
                    let size = match rng.below(1000) {
                        0..=899 => rng.range(8, 256),
                        900..=994 => rng.range(257, 8192),
                        _ => rng.range(8193, 100_000),
                    };
                    let tag = (i as u8) | 1;
                    let b = vec![tag; size].into_boxed_slice();
                    txs[rng.below(CONSUMERS)].send(b).unwrap();
                }
            })
        })
        .collect();
    drop(txs);
    // Sample RSS while it runs.
    let sampler = {
        let consumed = Arc::clone(&consumed);
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let mut warm = None;
            let mut peak = 0;
            while !done.load(Ordering::Relaxed) {
                let r = rss();
                if warm.is_none() && consumed.load(Ordering::Relaxed) >= warmup {
                    warm = Some(r);
                }
                if warm.is_some() {
                    peak = peak.max(r);
                }
                thread::sleep(Duration::from_millis(5));
            }
            (warm, peak)
        })
    };
    let t0 = Instant::now();
    for h in producers {
        h.join().unwrap();
    }
    for h in consumers {
        h.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let (warm, peak) = sampler.join().unwrap();
    let end = rss();
    assert_eq!(consumed.load(Ordering::Relaxed), total);
    let warm = warm.unwrap_or(end);
    let peak = peak.max(end);
    eprintln!(
        "producer/consumer: {total} objects in {:.2?}, RSS after warm-up {} MiB, peak {} MiB, end {} MiB",
        t0.elapsed(),
        warm >> 20,
        peak >> 20,
        end >> 20
    );
    assert!(
        peak <= warm + (16 << 20),
        "RSS grew from {} MiB after warm-up to {} MiB",
        warm >> 20,
        peak >> 20
    );
    check_heap_stats();
    check_quiet_stats(&before);
}
