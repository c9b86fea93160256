//! loom model checks of goheap's synchronisation: the lock every shared
//! structure sits behind, and the Release/Acquire publication the arena
//! map uses so frees can find spans without a lock.
//!
//! Only built with `--cfg goheap_loom` (run `ci/loom.sh`); without it this
//! file is empty. Under that cfg goheap builds only its `sync` module, over
//! loom's atomics and cell, with the futex modelled (a wake-up the lock
//! forgets becomes a deadlock loom reports).
#![cfg(goheap_loom)]

use goheap::sync::{load_published, publish, Mutex};
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use std::ptr;

/// A model with its own bound on preemptions (for the bigger state
/// spaces), whatever `LOOM_MAX_PREEMPTIONS` says: that variable bounds the
/// models that set none (2 in `ci/loom.sh` unless set).
fn bounded(preemptions: usize) -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(preemptions);
    b
}

/// Two threads, two locked read-modify-writes each: no update is lost,
/// and loom's cell checks that the critical sections never overlap and are
/// ordered by happens-before (lock Acquire, unlock Release).
#[test]
fn mutex_excludes_and_loses_no_update() {
    loom::model(|| {
        let m = Arc::new(Mutex::new(0usize));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let m = Arc::clone(&m);
                thread::spawn(move || {
                    for _ in 0..2 {
                        let mut g = m.lock();
                        let v = *g;
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*m.lock(), 4);
    });
}

/// Three threads contend, so some go to sleep (state 2) and must be woken
/// by an unlock; a lost wake-up is a deadlock.
#[test]
fn mutex_three_threads_sleepers_are_woken() {
    bounded(3).check(|| {
        let m = Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..3)
            .map(|i| {
                let m = Arc::clone(&m);
                thread::spawn(move || m.lock().push(i))
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut v = m.lock().clone();
        v.sort_unstable();
        assert_eq!(v, [0, 1, 2]);
    });
}

/// The lock protects data around it too: what a thread writes to a
/// separate cell while holding the lock is visible to the next holder.
#[test]
fn mutex_orders_data_outside_it() {
    loom::model(|| {
        let m = Arc::new(Mutex::new(false));
        let side = Arc::new(UnsafeCell::new(0u64));
        let t = {
            let (m, side) = (Arc::clone(&m), Arc::clone(&side));
            thread::spawn(move || {
                let mut g = m.lock();
                // SAFETY: accessed only under the lock.
                side.with_mut(|p| unsafe { *p = 42 });
                *g = true;
            })
        };
        {
            let g = m.lock();
            if *g {
                // SAFETY: accessed only under the lock.
                side.with(|p| assert_eq!(unsafe { *p }, 42));
            }
        }
        t.join().unwrap();
    });
}

/// `try_lock` never enters a held lock, and of two simultaneous attempts
/// at least one gets it.
#[test]
fn try_lock_excludes() {
    loom::model(|| {
        let m = Arc::new(Mutex::new(0usize));
        let wins = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (m, wins) = (Arc::clone(&m), Arc::clone(&wins));
                thread::spawn(move || {
                    if let Some(mut g) = m.try_lock() {
                        *g += 1;
                        wins.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let wins = wins.load(Ordering::Relaxed);
        assert!(wins >= 1);
        assert_eq!(*m.lock(), wins);
    });
}

/// `try_lock` and `lock` mixed: the one holding through `try_lock` must
/// wake a sleeper when it unlocks.
#[test]
fn try_lock_holder_wakes_lock_waiter() {
    loom::model(|| {
        let m = Arc::new(Mutex::new(0usize));
        let t = {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                *m.lock() += 1;
            })
        };
        let mut got = 0;
        if let Some(mut g) = m.try_lock() {
            *g += 1;
            got = 1;
        }
        t.join().unwrap();
        assert_eq!(*m.lock(), 1 + got);
    });
}

// ---------------------------------------------------------------------
// The arena map's publication: index (set once at init) -> arena entry
// (null -> metadata when an arena is added) -> page entry (null -> span
// when a span is allocated, back to null when it is freed). Writers hold
// the heap lock; readers (frees, span_of) hold nothing.

/// Stands for a span: fields written before publication.
struct SpanLike {
    base: UnsafeCell<usize>,
    npages: UnsafeCell<usize>,
}

/// Stands for `HeapArena`: per-page span pointers, null at first.
struct ArenaLike {
    spans: [AtomicPtr<SpanLike>; 2],
}

/// Stands for the index array behind `ArenaMap::index`.
struct IndexLike {
    arenas: [AtomicPtr<ArenaLike>; 2],
}

struct Map {
    index: AtomicPtr<IndexLike>,
}

/// `span_of`: three Acquire loads, then the span's fields.
fn span_of(map: &Map, arena: usize, page: usize) -> Option<(usize, usize)> {
    let index = load_published(&map.index);
    if index.is_null() {
        return None;
    }
    // SAFETY: published objects are never freed while the model runs.
    let a = load_published(unsafe { &(*index).arenas[arena] });
    if a.is_null() {
        return None;
    }
    // SAFETY: as above.
    let s = load_published(unsafe { &(*a).spans[page] });
    if s.is_null() {
        return None;
    }
    // SAFETY: as above; the fields are only written before publication.
    unsafe {
        let base = (*s).base.with(|p| *p);
        let npages = (*s).npages.with(|p| *p);
        Some((base, npages))
    }
}

fn null_arena() -> ArenaLike {
    ArenaLike {
        spans: [
            AtomicPtr::new(ptr::null_mut()),
            AtomicPtr::new(ptr::null_mut()),
        ],
    }
}

/// The writer's side, with a chosen publish operation (so the negative
/// control below can swap in a broken one).
fn writer(map: &Map, publish_fn: fn(&AtomicPtr<SpanLike>, *mut SpanLike)) -> Vec<*mut SpanLike> {
    // ArenaMap::init: the index, once.
    let index = Box::into_raw(Box::new(IndexLike {
        arenas: [
            AtomicPtr::new(ptr::null_mut()),
            AtomicPtr::new(ptr::null_mut()),
        ],
    }));
    publish(&map.index, index);
    // add_arena: metadata (all-null spans) published in the index.
    let arena = Box::into_raw(Box::new(null_arena()));
    // SAFETY: `index` is ours and live.
    publish(unsafe { &(*index).arenas[1] }, arena);
    // alloc_span: fill the span in, then set_spans publishes it per page.
    let s = Box::into_raw(Box::new(SpanLike {
        base: UnsafeCell::new(0),
        npages: UnsafeCell::new(0),
    }));
    // SAFETY: `s` is not published yet: ours alone.
    unsafe {
        (*s).base.with_mut(|p| *p = 0x00c0_0000_0000);
        (*s).npages.with_mut(|p| *p = 2);
    }
    for page in 0..2 {
        // SAFETY: `arena` is live.
        publish_fn(unsafe { &(*arena).spans[page] }, s);
    }
    vec![s]
}

fn free_map(map: &Map, spans: Vec<*mut SpanLike>) {
    let index = map.index.load(Ordering::Relaxed);
    // SAFETY: every thread is joined; these came from Box::into_raw.
    unsafe {
        for a in &(*index).arenas {
            let a = a.load(Ordering::Relaxed);
            if !a.is_null() {
                drop(Box::from_raw(a));
            }
        }
        drop(Box::from_raw(index));
        for s in spans {
            drop(Box::from_raw(s));
        }
    }
}

/// A reader that finds a span sees it fully initialised, at every level.
#[test]
fn arena_map_publication_makes_spans_visible() {
    loom::model(|| {
        let map = Arc::new(Map {
            index: AtomicPtr::new(ptr::null_mut()),
        });
        let reader = {
            let map = Arc::clone(&map);
            thread::spawn(move || {
                for page in 0..2 {
                    if let Some((base, npages)) = span_of(&map, 1, page) {
                        assert_eq!((base, npages), (0x00c0_0000_0000, 2));
                    }
                }
                // Never-added arenas stay null.
                assert_eq!(span_of(&map, 0, 0), None);
            })
        };
        let spans = writer(&map, publish);
        reader.join().unwrap();
        assert_eq!(span_of(&map, 1, 1), Some((0x00c0_0000_0000, 2)));
        free_map(&map, spans);
    });
}

/// Freeing a span (set_spans(null)) and allocating another over the same
/// pages: a reader sees null, the old span or the new one, each complete.
#[test]
fn arena_map_republication_after_free() {
    bounded(3).check(|| {
        let map = Arc::new(Map {
            index: AtomicPtr::new(ptr::null_mut()),
        });
        let mut spans = writer(&map, publish);
        let reader = {
            let map = Arc::clone(&map);
            thread::spawn(move || {
                if let Some(s) = span_of(&map, 1, 0) {
                    assert!(
                        s == (0x00c0_0000_0000, 2) || s == (0x00c0_0000_0000, 1),
                        "{s:?}"
                    );
                }
            })
        };
        // Free: unpublish both pages; then a one-page span in a new struct.
        let index = load_published(&map.index);
        // SAFETY: live objects of this model.
        let arena = load_published(unsafe { &(*index).arenas[1] });
        for page in 0..2 {
            // SAFETY: as above.
            publish(unsafe { &(*arena).spans[page] }, ptr::null_mut());
        }
        let t = Box::into_raw(Box::new(SpanLike {
            base: UnsafeCell::new(0),
            npages: UnsafeCell::new(0),
        }));
        // SAFETY: not published yet.
        unsafe {
            (*t).base.with_mut(|p| *p = 0x00c0_0000_0000);
            (*t).npages.with_mut(|p| *p = 1);
        }
        // SAFETY: as above.
        publish(unsafe { &(*arena).spans[0] }, t);
        spans.push(t);
        reader.join().unwrap();
        free_map(&map, spans);
    });
}

fn publish_relaxed(slot: &AtomicPtr<SpanLike>, p: *mut SpanLike) {
    slot.store(p, Ordering::Relaxed);
}

/// Negative control: the same model with a Relaxed store for the span
/// entries must fail, or the test above would prove nothing.
#[test]
#[should_panic]
fn arena_map_relaxed_publication_is_caught() {
    loom::model(|| {
        let map = Arc::new(Map {
            index: AtomicPtr::new(ptr::null_mut()),
        });
        let reader = {
            let map = Arc::clone(&map);
            thread::spawn(move || {
                span_of(&map, 1, 0);
            })
        };
        let spans = writer(&map, publish_relaxed);
        reader.join().unwrap();
        free_map(&map, spans);
    });
}

// ---- The cache handshake (`goheap::sync::handshake`) ----
//
// The real `Handshake` code runs here: under `--cfg goheap_loom` its
// owner-side fence and the claimer's barrier are both `fence(SeqCst)`,
// which is what `membarrier` guarantees (and what the fence fallback
// does). The owner's state is a loom cell, so loom reports any access by
// the claimer that is not ordered after the owner's last operation (and
// the other way round).

use goheap::sync::handshake::{heavy_barrier, Handshake};

/// The owner's state: a counter it bumps in every operation, which a
/// claimer may reset.
struct Owned {
    hs: Handshake,
    count: UnsafeCell<usize>,
}

// SAFETY: the handshake serialises every access to `count`, which is what
// the model checks.
unsafe impl Sync for Owned {}

fn owner_op(o: &Owned) {
    o.hs.enter();
    // SAFETY: inside the handshake: no claimer uses the state.
    o.count.with_mut(|c| unsafe { *c += 1 });
    o.hs.exit();
}

/// The idle-cache reclaimer's pattern: claim, barrier, use the state only
/// if the owner is not busy, release. Whatever the interleaving, the two
/// never touch the state at once, and the claimer sees every operation the
/// owner finished before it.
#[test]
fn handshake_claimer_skips_a_busy_owner_and_never_races() {
    bounded(3).check(|| {
        let o = Arc::new(Owned {
            hs: Handshake::new(),
            count: UnsafeCell::new(0),
        });
        let owner = {
            let o = Arc::clone(&o);
            thread::spawn(move || {
                owner_op(&o);
                owner_op(&o);
            })
        };
        o.hs.request();
        assert!(heavy_barrier());
        if !o.hs.is_busy() {
            // SAFETY: claimed with the owner idle.
            let seen = o.count.with_mut(|c| unsafe {
                let v = *c;
                *c = 100;
                v
            });
            assert!(seen <= 2);
        }
        o.hs.release();
        owner.join().unwrap();
        // SAFETY: the owner has finished.
        let end = o.count.with(|c| unsafe { *c });
        assert!(end <= 2 || (100..=102).contains(&end), "count {end}");
    });
}

/// The exclusive claimer (exact double-free check, heap checker): waits
/// for the owner to be idle, then has the state; the owner's next
/// operation waits for the release and sees the claimer's write.
#[test]
fn handshake_waiting_claimer_gets_the_state_and_owner_sees_its_writes() {
    bounded(3).check(|| {
        let o = Arc::new(Owned {
            hs: Handshake::new(),
            count: UnsafeCell::new(0),
        });
        let owner = {
            let o = Arc::clone(&o);
            thread::spawn(move || {
                owner_op(&o);
                owner_op(&o);
            })
        };
        o.hs.request();
        heavy_barrier();
        o.hs.wait_idle();
        // SAFETY: the owner is idle and waits for our release.
        o.count.with_mut(|c| unsafe { *c += 10 });
        o.hs.release();
        owner.join().unwrap();
        // SAFETY: the owner has finished.
        assert_eq!(o.count.with(|c| unsafe { *c }), 12);
    });
}

/// Two owners and one claimer of both (one barrier for all of them, as
/// the reclaimer does): no race with either.
#[test]
fn handshake_one_barrier_for_several_owners() {
    // Three threads and the owners' wait loops make a large state space:
    // one preemption covers each owner entering before, during and after
    // the claim.
    let mut b = bounded(1);
    b.max_branches = 100_000;
    b.check(|| {
        let a = Arc::new(Owned {
            hs: Handshake::new(),
            count: UnsafeCell::new(0),
        });
        let b = Arc::new(Owned {
            hs: Handshake::new(),
            count: UnsafeCell::new(0),
        });
        let ta = {
            let a = Arc::clone(&a);
            thread::spawn(move || owner_op(&a))
        };
        let tb = {
            let b = Arc::clone(&b);
            thread::spawn(move || owner_op(&b))
        };
        a.hs.request();
        b.hs.request();
        heavy_barrier();
        for o in [&a, &b] {
            if !o.hs.is_busy() {
                // SAFETY: claimed with its owner idle.
                o.count.with_mut(|c| unsafe { *c += 10 });
            }
            o.hs.release();
        }
        ta.join().unwrap();
        tb.join().unwrap();
    });
}

/// The unwinder's cache cell: two writers race to store whole values
/// (each a pair of equal words) while a reader reads; the reader gets a
/// value one writer stored whole, or nothing, never a mix, and a writer
/// that loses the race writes nothing.
#[test]
fn seqcell_reads_whole_values_or_none() {
    use goheap::sync::seqcell::SeqCell;
    loom::model(|| {
        let cell = Arc::new(SeqCell::<2>::new());
        let writers: Vec<_> = [1u64, 2]
            .into_iter()
            .map(|v| {
                let c = cell.clone();
                thread::spawn(move || c.try_write([v, v]))
            })
            .collect();
        if let Some([a, b]) = cell.read() {
            assert_eq!(a, b, "a torn read: {a} and {b}");
        }
        let wrote: Vec<bool> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        let last = cell.read().expect("no write in progress after both joined");
        assert_eq!(last[0], last[1]);
        match last[0] {
            0 => assert_eq!(wrote, [false, false]),
            v => assert!(wrote[v as usize - 1], "{v} stored by a writer that gave up"),
        }
        assert!(
            wrote.iter().any(|&w| w),
            "both writers gave up with no other write"
        );
    });
}
