//! Several mutator threads: their own subgraphs and a shared one, handles
//! cloned on one thread and dropped on another, threads that come and go,
//! collections started by any thread (the pacer's and `collect`'s), and a
//! thread blocked in a system call while others collect.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use goheap_gc::{Gc, GcMutex, Trace};

static CREATED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

#[derive(Trace)]
#[trace(no_gc)]
struct Tracked(u64);

impl Drop for Tracked {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Trace)]
struct Node {
    id: Tracked,
    check: u64,
    tiny: Gc<u8>,
    kids: GcMutex<Vec<Gc<Node>>>,
}

fn node(id: u64) -> Gc<Node> {
    CREATED.fetch_add(1, Ordering::Relaxed);
    Gc::new(Node {
        id: Tracked(id),
        check: id.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        tiny: Gc::new(id as u8),
        kids: GcMutex::new(Vec::new()),
    })
}

fn check(n: &Node) {
    assert_eq!(n.check, n.id.0.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    assert_eq!(*n.tiny, n.id.0 as u8);
}

/// Checks every node reachable from `root` (each once).
fn check_all(root: &Gc<Node>) -> usize {
    let mut seen = std::collections::HashSet::new();
    let mut work = vec![root.clone()];
    while let Some(n) = work.pop() {
        if !seen.insert(Gc::as_ptr(&n)) {
            continue;
        }
        check(&n);
        work.extend(n.kids.read().iter().cloned());
    }
    seen.len()
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn four_threads_mutate_own_and_shared_graphs_while_collections_run() {
    let shared: Gc<GcMutex<Vec<Gc<Node>>>> = Gc::new(GcMutex::new(Vec::new()));
    let ops = 60_000u64;
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(0x1234_5678 + t * 0x9999);
                let mut mine: Vec<Gc<Node>> = Vec::new();
                for i in 0..ops {
                    let id = t << 40 | i;
                    match rng.next() % 10 {
                        0..=3 => mine.push(node(id)),
                        4 => {
                            // Link two of mine (cycles allowed).
                            if mine.len() >= 2 {
                                let a = &mine[(rng.next() as usize) % mine.len()];
                                let b = mine[(rng.next() as usize) % mine.len()].clone();
                                a.kids.lock().push(b);
                            }
                        }
                        5 => {
                            // Publish one of mine.
                            if let Some(n) = mine.pop() {
                                shared.lock().push(n);
                            }
                        }
                        6 => {
                            // Take one another thread may have published:
                            // made there, dropped here eventually.
                            let taken = {
                                let mut s = shared.lock();
                                let len = s.len();
                                (len > 0).then(|| s.swap_remove((rng.next() as usize) % len))
                            };
                            if let Some(n) = taken {
                                check_all(&n);
                                mine.push(n);
                            }
                        }
                        7 => {
                            if !mine.is_empty() {
                                let k = (rng.next() as usize) % mine.len();
                                mine.swap_remove(k);
                            }
                        }
                        8 => {
                            if let Some(n) = mine.last() {
                                check_all(n);
                            }
                        }
                        _ => {
                            if i % 5000 == 0 {
                                goheap_gc::collect();
                            }
                        }
                    }
                    if mine.len() > 300 {
                        mine.drain(..150);
                    }
                }
                for n in &mine {
                    check_all(n);
                }
                // Hand some of what is left to the shared graph, drop the
                // rest with the thread.
                let keep = mine.len() / 2;
                shared.lock().extend(mine.drain(..keep));
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a worker panicked");
    }
    goheap_gc::collect();
    for n in shared.read().iter() {
        check_all(n);
    }
    assert!(
        goheap_gc::stats().cycles.num_gc > 4,
        "collections ran during the mutation"
    );
    drop(shared);
    goheap_gc::collect();
    assert_eq!(
        DROPPED.load(Ordering::Relaxed),
        CREATED.load(Ordering::Relaxed),
        "every node dropped once the last handle went"
    );
}

#[test]
fn a_thread_blocked_in_a_system_call_does_not_stall_a_collection() {
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let held = node(1 << 62);
    held.kids.lock().push(node((1 << 62) + 1));
    let t = std::thread::spawn(move || {
        let mine = held;
        ready_tx.send(()).unwrap();
        // Blocked in `futex` until the collections below are done: were a
        // collection to wait for this thread, neither would finish.
        go_rx.recv().unwrap();
        assert_eq!(check_all(&mine), 2);
    });
    ready_rx.recv().unwrap();
    for _ in 0..3 {
        goheap_gc::collect();
    }
    go_tx.send(()).unwrap();
    t.join().expect("the blocked thread's objects survived");
}

#[test]
fn threads_come_and_go_with_handles() {
    let root = node(2 << 62);
    for round in 0..20u64 {
        let r = root.clone();
        std::thread::spawn(move || {
            let n = node((2 << 62) + 1 + round);
            n.kids.lock().push(r.clone());
            r.kids.lock().push(n);
            // Lots of clones and drops, logged on this thread, which then
            // exits: its log goes to the root table.
            for _ in 0..10_000 {
                let c = r.clone();
                std::hint::black_box(&c);
            }
        })
        .join()
        .unwrap();
        goheap_gc::collect();
        assert_eq!(check_all(&root), 2 + round as usize);
    }
}
