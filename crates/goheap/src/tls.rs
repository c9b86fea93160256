//! Finding the calling thread's cache: a thread-local pointer, set up on
//! first use, torn down at thread exit.
//!
//! See the crate docs for the overview. A thread starts with a null cache
//! pointer, so its first allocation takes the slow path, which builds the
//! real cache. Setting up a thread
//! can re-enter the allocator (registering the exit hook may allocate), and
//! so can code that runs after the thread's cache is gone; both use the
//! shared fallback cache under its lock.

use crate::cache::{enter, ThreadCache};
use crate::fixalloc::FixAlloc;
use crate::global::HEAP;
use crate::sizeclass::NUM_SIZE_CLASSES;
use crate::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use crate::sync::Mutex;
use core::cell::Cell;
use core::ptr;

#[derive(Clone, Copy, PartialEq, Eq)]
enum ThreadState {
    /// No cache yet.
    New,
    /// Building the cache (re-entrant calls use the fallback).
    Initializing,
    /// The cache is live.
    Live,
    /// The cache was torn down at thread exit.
    Dead,
}

std::thread_local! {
    static CACHE: Cell<*mut ThreadCache> = const { Cell::new(ptr::null_mut()) };
    static STATE: Cell<ThreadState> = const { Cell::new(ThreadState::New) };
}

/// The calling thread's cache, or null before its first allocation (and
/// after its exit): the front-end then takes [`alloc_without_cache`] /
/// [`free_without_cache`].
#[inline(always)]
pub(crate) fn cache() -> *mut ThreadCache {
    CACHE.with(|c| c.get())
}

/// Live caches and the counts of caches that are gone.
pub(crate) struct Registry {
    /// Doubly linked list of live caches.
    pub(crate) head: *mut ThreadCache,
    pub(crate) caches: FixAlloc,
    /// Counts folded in from exited threads, per class.
    pub(crate) dead_mallocs: [u64; NUM_SIZE_CLASSES],
    pub(crate) dead_frees: [u64; NUM_SIZE_CLASSES],
}

// SAFETY: the raw pointers are caches reachable only under the lock.
unsafe impl Send for Registry {}

/// Lock order: taken before central and heap locks, never while holding
/// them.
pub(crate) static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    head: ptr::null_mut(),
    caches: FixAlloc::new(core::mem::size_of::<ThreadCache>().next_multiple_of(64)),
    dead_mallocs: [0; NUM_SIZE_CLASSES],
    dead_frees: [0; NUM_SIZE_CLASSES],
});

/// Shared cache for threads without one of their own (while setting up,
/// after exit). Lock order: before central and heap locks.
pub(crate) static FALLBACK: Mutex<ThreadCache> = Mutex::new(ThreadCache::empty());

/// Bytes the registry's cache allocator has obtained from the OS, mirrored
/// here so the heap can read it without the registry lock (lock order).
static CACHE_SYS: AtomicUsize = AtomicUsize::new(0);

/// Bytes of thread-cache metadata obtained from the OS.
pub(crate) fn cache_sys() -> usize {
    CACHE_SYS.load(Ordering::Relaxed)
}

/// Releases thread-cache chunks with no cache in use; returns the bytes.
pub(crate) fn release_empty_caches() -> usize {
    let mut r = REGISTRY.lock();
    let n = r.caches.release_empty(HEAP.os);
    CACHE_SYS.store(r.caches.sys, Ordering::Relaxed);
    n
}

/// The pthread key whose destructor tears a cache down (0 = not created,
/// else key + 1).
static EXIT_KEY: AtomicU32 = AtomicU32::new(0);

fn with_fallback<R>(f: impl FnOnce(&mut ThreadCache) -> R) -> R {
    let mut fb = FALLBACK.lock();
    if fb.classes[1].max == 0 {
        fb.set_bounds();
    }
    f(&mut fb)
}

/// Allocation by a thread whose cache pointer is null.
#[cold]
#[inline(never)]
pub(crate) fn alloc_without_cache(class: usize) -> *mut u8 {
    match init_thread() {
        Some(c) => {
            // SAFETY: the calling thread's own, live cache.
            unsafe { enter(c, |c| c.alloc(class)) }
        }
        None => with_fallback(|fb| fb.alloc(class)),
    }
}

/// Free by a thread whose cache pointer is null.
///
/// # Safety
///
/// `p` is a live object of `class` that the caller gives up.
#[cold]
#[inline(never)]
pub(crate) unsafe fn free_without_cache(p: *mut u8, class: usize) {
    match init_thread() {
        // SAFETY: the calling thread's live cache; forwarded contract.
        Some(c) => unsafe { enter(c, |c| c.free(p, class)) },
        // SAFETY: forwarded contract.
        None => with_fallback(|fb| unsafe { fb.free(p, class) }),
    }
}

/// Builds the calling thread's cache if it has none. Returns it, or `None`
/// when the thread must use the fallback (re-entered during set-up, after
/// exit, or out of memory).
fn init_thread() -> Option<*mut ThreadCache> {
    let state = STATE.try_with(|s| s.get()).unwrap_or(ThreadState::Dead);
    match state {
        ThreadState::Live => return Some(cache()),
        ThreadState::Initializing | ThreadState::Dead => return None,
        ThreadState::New => {}
    }
    STATE.with(|s| s.set(ThreadState::Initializing));
    let c = {
        let mut r = REGISTRY.lock();
        let c = r.caches.alloc(HEAP.os).cast::<ThreadCache>();
        CACHE_SYS.store(r.caches.sys, Ordering::Relaxed);
        if c.is_null() {
            drop(r);
            STATE.with(|s| s.set(ThreadState::New));
            return None;
        }
        // SAFETY: a fresh slot of ThreadCache size, ours alone.
        unsafe {
            c.write(ThreadCache::empty());
            (*c).set_bounds();
            (*c).next = r.head;
            if !r.head.is_null() {
                (*r.head).prev = c;
            }
        }
        r.head = c;
        c
    };
    // Register the exit hook. This may allocate (glibc's pthread_setspecific
    // for keys past the first 32): that re-enters us and uses the fallback.
    let key = exit_key();
    if let Some(key) = key {
        // SAFETY: a valid key; the value is only handed to our destructor.
        unsafe { libc::pthread_setspecific(key, c.cast()) };
    }
    CACHE.with(|cell| cell.set(c));
    STATE.with(|s| s.set(ThreadState::Live));
    Some(c)
}

fn exit_key() -> Option<libc::pthread_key_t> {
    let k = EXIT_KEY.load(Ordering::Acquire);
    if k != 0 {
        return Some(k - 1);
    }
    let _r = REGISTRY.lock();
    let k = EXIT_KEY.load(Ordering::Acquire);
    if k != 0 {
        return Some(k - 1);
    }
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: creates a key with our destructor; glibc does not allocate
    // here (keys live in a static table).
    if unsafe { libc::pthread_key_create(&mut key, Some(thread_exit)) } != 0 {
        return None;
    }
    EXIT_KEY.store(key + 1, Ordering::Release);
    Some(key)
}

/// pthread destructor: returns the exiting thread's cache to the heap.
unsafe extern "C" fn thread_exit(arg: *mut libc::c_void) {
    let c = arg.cast::<ThreadCache>();
    if c.is_null() {
        return;
    }
    // From here on this thread allocates through the fallback.
    let _ = CACHE.try_with(|cell| cell.set(ptr::null_mut()));
    let _ = STATE.try_with(|s| s.set(ThreadState::Dead));
    // SAFETY: `c` is the exiting thread's own cache, no longer reachable
    // through its thread-local.
    unsafe { retire(c) };
}

/// Flushes cache `c`, folds its counters into the dead totals, unlinks and
/// frees it.
///
/// # Safety
///
/// `c` is a live registered cache that no thread will use again.
pub(crate) unsafe fn retire(c: *mut ThreadCache) {
    // SAFETY: per the contract, we own `c` (a reclaimer may be emptying it:
    // `enter` waits for that).
    unsafe { enter(c, |cache| cache.flush_all()) };
    let mut r = REGISTRY.lock();
    // SAFETY: flushed and unlinked below under the registry lock, which
    // reclaimers hold while they use a cache.
    let cache = unsafe { &mut *c };
    for class in 0..NUM_SIZE_CLASSES {
        r.dead_mallocs[class] += cache.classes[class].mallocs.load(Ordering::Relaxed);
        r.dead_frees[class] += cache.classes[class].frees.load(Ordering::Relaxed);
    }
    // SAFETY: `c` is on the registry list; its neighbours are live caches.
    unsafe {
        if cache.prev.is_null() {
            r.head = cache.next;
        } else {
            (*cache.prev).next = cache.next;
        }
        if !cache.next.is_null() {
            (*cache.next).prev = cache.prev;
        }
        r.caches.free(c.cast());
    }
}

/// Flushes the calling thread's cache to the central lists, and the
/// central lists' transfer caches into their spans: objects the thread
/// holds become available to other threads, and spans left empty go back
/// to the page heap.
pub fn flush_thread_cache() {
    let c = cache();
    if !c.is_null() {
        // SAFETY: the calling thread's own live cache.
        unsafe { enter(c, |c| c.flush_all()) };
    }
    for (class, central) in HEAP.centrals.iter().enumerate().skip(1) {
        central.drain_batches(&HEAP, class);
    }
}

/// Whether `membarrier(PRIVATE_EXPEDITED)` is registered (0 unknown, 1 yes,
/// 2 unavailable).
static MEMBARRIER: crate::sync::atomic::AtomicU8 = crate::sync::atomic::AtomicU8::new(0);

fn membarrier(cmd: libc::c_int) -> bool {
    // SAFETY: the membarrier system call takes plain integers.
    unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0, 0) == 0 }
}

/// Empties the caches of threads that have not allocated or freed since
/// the last call (made by the scavenger about once a second), so objects
/// sitting in idle threads' caches stop pinning their spans. Returns how
/// many caches it emptied. Does nothing where `membarrier` is unavailable.
///
/// The owner never takes a lock or an atomic read-modify-write for this
/// (see [`enter`]): the reclaimer raises each candidate's `reclaim` flag,
/// issues one `membarrier`, and then empties the candidates whose `busy`
/// flag is clear; an owner that comes back meanwhile sees `reclaim` and
/// waits for it to drop.
pub(crate) fn reclaim_idle_caches() -> usize {
    const CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
    const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;
    match MEMBARRIER.load(Ordering::Relaxed) {
        0 => {
            let ok = membarrier(CMD_REGISTER_PRIVATE_EXPEDITED);
            MEMBARRIER.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
            if !ok {
                return 0;
            }
        }
        1 => {}
        _ => return 0,
    }
    let r = REGISTRY.lock();
    let activity = |c: &ThreadCache| -> u64 {
        c.classes.iter().map(|cc| cc.mallocs.load(Ordering::Relaxed) + cc.frees.load(Ordering::Relaxed)).sum()
    };
    // Candidates: no activity since the last look, and some since the last
    // time we emptied them.
    let mut candidates = 0;
    let mut c = r.head;
    while !c.is_null() {
        // SAFETY: registered caches stay valid under the registry lock; we
        // only read atomics here.
        let cache = unsafe { &*c };
        let now = activity(cache);
        let seen = cache.seen_activity.swap(now, Ordering::Relaxed);
        if now == seen && now != cache.reclaimed_activity.load(Ordering::Relaxed) {
            cache.reclaim.store(true, Ordering::Relaxed);
            candidates += 1;
        }
        c = cache.next;
    }
    if candidates == 0 {
        return 0;
    }
    let fenced = membarrier(CMD_PRIVATE_EXPEDITED);
    let mut emptied = 0;
    let mut c = r.head;
    while !c.is_null() {
        // SAFETY: as above.
        let next = unsafe { (*c).next };
        // SAFETY: as above; flags are atomics.
        let (want, busy) = unsafe { ((*c).reclaim.load(Ordering::Relaxed), (*c).busy.load(Ordering::Relaxed)) };
        if want {
            if fenced && !busy {
                // SAFETY: the handshake excludes the owner until `reclaim`
                // drops (see `enter`); the registry lock excludes other
                // reclaimers and the owner's exit.
                unsafe {
                    (*c).flush_all();
                    (*c).reclaimed_activity.store((*c).seen_activity.load(Ordering::Relaxed), Ordering::Relaxed);
                }
                emptied += 1;
            }
            // SAFETY: an atomic; Release publishes our changes to the owner.
            unsafe { (*c).reclaim.store(false, Ordering::Release) };
        }
        c = next;
    }
    emptied
}
