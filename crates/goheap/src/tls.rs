//! Threads and their caches: finding the calling thread's cache (a
//! thread-local pointer, set up on first use, torn down at thread exit),
//! the registry of every live cache, the shared fallback cache, and the
//! claims other threads make on a cache (idle-cache reclaim, the exact
//! double-free check, the heap checker).
//!
//! See the crate docs for the overview. A thread's cache pointer starts
//! at the placeholder ([`PLACEHOLDER`]), a cache whose handshake never
//! admits anyone, so its first allocation takes the slow path, which
//! builds the real cache, and the fast paths need no null test. Setting up
//! a thread can re-enter the allocator (registering the exit hook may
//! allocate), and so can code that runs after the thread's cache is gone
//! or while the allocator calls out of itself ([`call_out`]); all of these
//! use the shared fallback cache under its lock.

use crate::cache::{enter, ThreadCache};
use crate::fixalloc::FixAlloc;
use crate::heap::Heap;
use crate::sizeclass::NUM_SIZE_CLASSES;
use crate::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use crate::sync::handshake::{self, Handshake};
use crate::sync::{Mutex, MutexGuard};
use core::cell::Cell;
use core::ptr;

#[derive(Clone, Copy, PartialEq, Eq)]
enum ThreadState {
    /// No cache yet.
    New,
    /// Building the cache, or calling out of the allocator: allocations
    /// use the fallback.
    Initializing,
    /// The cache is live.
    Live,
    /// The cache was torn down at thread exit.
    Dead,
}

std::thread_local! {
    static STATE: Cell<ThreadState> = const { Cell::new(ThreadState::New) };
}

/// What the cache pointer of a thread without a cache points at: before
/// its first allocation, after its exit and while it calls out of the
/// allocator. Every operation through it fails the handshake's claim test
/// and goes to the front-end (`cache::AllocFront`, `cache::FreeFront`), which takes
/// [`Threads::alloc_without_cache`] / [`Threads::free_without_cache`].
pub(crate) static PLACEHOLDER: ThreadCache = ThreadCache::placeholder();

/// The calling thread's cache, or null before its first allocation, after
/// its exit and while it calls out of the allocator.
#[inline(always)]
pub(crate) fn cache() -> *const ThreadCache {
    let c = cache_slot::get();
    if ptr::eq(c, &PLACEHOLDER) {
        ptr::null()
    } else {
        c
    }
}

/// The calling thread's cache, or the placeholder when it has none: for
/// the fast paths, which go through either the same way
/// ([`ThreadCache::alloc_owned`], [`ThreadCache::free_owned`]).
#[inline(always)]
pub(crate) fn cache_or_placeholder() -> &'static ThreadCache {
    // SAFETY: the slot holds the placeholder or the thread's own live
    // cache, which stays valid until the thread's exit puts the
    // placeholder back.
    unsafe { &*cache_slot::get() }
}

/// Sets the calling thread's cache pointer (null: the placeholder);
/// returns the old one (null for the placeholder).
fn replace_cache(c: *const ThreadCache) -> *const ThreadCache {
    let old = cache();
    cache_slot::set(if c.is_null() { &PLACEHOLDER } else { c });
    old
}

/// The thread's cache pointer with the `initial-exec-tls` feature (which
/// the C library turns on) on x86-64 Linux: a word of static TLS read with
/// the initial-exec model, two instructions (`mov` of the offset from the
/// GOT, `mov` from `%fs`).
///
/// Why not `thread_local!`: in a shared library Rust uses the
/// general-dynamic model, a call to `__tls_get_addr` (11 instructions and
/// a call, twice per malloc/free pair) on every allocation, and stable
/// Rust cannot choose the model. Declaring the variable in assembly can.
/// The cost of initial-exec in a shared library is a static-TLS block (8
/// bytes here): a library loaded at start-up (`LD_PRELOAD`, linked with
/// `-lgoheap`) gets it with the others, and one loaded later with
/// `dlopen` takes it from the surplus glibc reserves for exactly this
/// (`glibc.rtld.optional_static_tls`, 512 bytes by default); the test
/// `c_api::dlopen_a_library_linked_with_goheap` loads it so.
///
/// The word's initial value is the placeholder's address (`.tdata`, with
/// a relocation: the dynamic loader relocates a library before it copies
/// the TLS image into a thread, for libraries loaded at start-up and by
/// `dlopen` alike).
///
/// The symbol is global (the code that reads it may be inlined into
/// another crate's object file) but hidden, so each binary that links
/// goheap has its own; its name carries a version, to be changed with the
/// slot's meaning (v2: never null), so that two goheaps of different
/// layouts in one link fail to link rather than share it.
#[cfg(all(
    feature = "initial-exec-tls",
    target_arch = "x86_64",
    target_os = "linux",
    not(miri)
))]
mod cache_slot {
    use super::ThreadCache;

    core::arch::global_asm!(
        ".pushsection .tdata,\"awT\",@progbits",
        ".balign 8",
        ".globl goheap_thread_cache_v2",
        ".hidden goheap_thread_cache_v2",
        ".type goheap_thread_cache_v2,@object",
        ".size goheap_thread_cache_v2,8",
        "goheap_thread_cache_v2:",
        ".quad {placeholder}",
        ".popsection",
        placeholder = sym super::PLACEHOLDER,
    );

    #[inline(always)]
    pub(super) fn get() -> *const ThreadCache {
        let p: *const ThreadCache;
        // SAFETY: reads the calling thread's own word of static TLS (the
        // offset from the GOT entry the linker fills for this model).
        unsafe {
            core::arch::asm!(
                "mov {p}, qword ptr [rip + goheap_thread_cache_v2@GOTTPOFF]",
                "mov {p}, qword ptr fs:[{p}]",
                p = out(reg) p,
                options(nostack, readonly, pure, preserves_flags),
            );
        }
        p
    }

    #[inline(always)]
    pub(super) fn set(c: *const ThreadCache) {
        // SAFETY: writes the calling thread's own word of static TLS; no
        // other memory.
        unsafe {
            core::arch::asm!(
                "mov {off}, qword ptr [rip + goheap_thread_cache_v2@GOTTPOFF]",
                "mov qword ptr fs:[{off}], {c}",
                off = out(reg) _,
                c = in(reg) c,
                options(nostack, preserves_flags),
            );
        }
    }
}

/// Without the `initial-exec-tls` feature, on other targets and under
/// Miri, a `thread_local!` with a const initialiser (no destructor, so it
/// stays readable until the thread is gone): in an executable rustc picks
/// the local-exec model, one `mov` from `%fs`.
#[cfg(not(all(
    feature = "initial-exec-tls",
    target_arch = "x86_64",
    target_os = "linux",
    not(miri)
)))]
mod cache_slot {
    use super::ThreadCache;
    use core::cell::Cell;

    std::thread_local! {
        static CACHE: Cell<*const ThreadCache> = const { Cell::new(&super::PLACEHOLDER) };
    }

    #[inline(always)]
    pub(super) fn get() -> *const ThreadCache {
        CACHE.try_with(|c| c.get()).unwrap_or(&super::PLACEHOLDER)
    }

    #[inline(always)]
    pub(super) fn set(c: *const ThreadCache) {
        let _ = CACHE.try_with(|cell| cell.set(c));
    }
}

/// Runs `f`, which may allocate through goheap (creating a thread,
/// registering a handler, looking up a symbol), with the calling thread
/// detached from its cache: an allocation or free inside `f` uses the
/// fallback cache instead of re-entering an operation on this thread's
/// cache that is still in progress (a refill in the middle of taking a
/// new span would otherwise have its span replaced under it).
pub(crate) fn call_out<R>(f: impl FnOnce() -> R) -> R {
    let saved = replace_cache(ptr::null());
    let state = STATE
        .try_with(|s| s.replace(ThreadState::Initializing))
        .unwrap_or(ThreadState::Dead);
    let r = f();
    replace_cache(saved);
    let _ = STATE.try_with(|s| s.set(state));
    r
}

/// Live caches, and what is left of the gone ones.
pub(crate) struct Registry {
    /// Doubly linked list of live caches (through `next`/`prev`).
    pub(crate) head: *mut ThreadCache,
    /// Caches of threads that did not survive a `fork` (in the child):
    /// never used or claimed again, still counted by statistics and the
    /// heap checker. Linked through `next`.
    pub(crate) lost: *mut ThreadCache,
    pub(crate) caches: FixAlloc,
    /// Counts folded in from exited threads, per class.
    pub(crate) dead_mallocs: [u64; NUM_SIZE_CLASSES],
    pub(crate) dead_frees: [u64; NUM_SIZE_CLASSES],
}

// SAFETY: the raw pointers are caches reachable only under the lock.
unsafe impl Send for Registry {}

impl Registry {
    /// The live caches.
    pub(crate) fn live(&self) -> impl Iterator<Item = &ThreadCache> {
        walk(self.head)
    }

    /// The caches lost in a fork.
    pub(crate) fn lost(&self) -> impl Iterator<Item = &ThreadCache> {
        walk(self.lost)
    }
}

fn walk<'a>(mut c: *mut ThreadCache) -> impl Iterator<Item = &'a ThreadCache> {
    core::iter::from_fn(move || {
        if c.is_null() {
            return None;
        }
        // SAFETY: registered caches stay valid while the registry lock is
        // held, which the borrow of the registry proves.
        let cache = unsafe { &*c };
        c = cache.next.get();
        Some(cache)
    })
}

/// The threads of a heap: their caches' registry and the fallback cache.
pub(crate) struct Threads {
    heap: &'static Heap,
    /// Lock order: taken before the fallback, central and heap locks,
    /// never while holding them.
    pub(crate) registry: Mutex<Registry>,
    /// Shared cache for threads without one of their own (while setting
    /// up, after exit, while calling out). Lock order: after the registry,
    /// before central and heap locks.
    pub(crate) fallback: Mutex<ThreadCache>,
    /// The pthread key whose destructor tears a cache down (0 = not
    /// created, else key + 1).
    exit_key: AtomicU32,
}

/// The process's `Threads`, for the thread-exit destructor (which gets
/// only the cache).
static EXIT_THREADS: AtomicPtr<Threads> = AtomicPtr::new(ptr::null_mut());

impl Threads {
    /// The threads of `heap`; nothing is set up until first use.
    pub(crate) const fn new(heap: &'static Heap) -> Self {
        Threads {
            heap,
            registry: Mutex::new(Registry {
                head: ptr::null_mut(),
                lost: ptr::null_mut(),
                caches: FixAlloc::new(core::mem::size_of::<ThreadCache>().next_multiple_of(64)),
                dead_mallocs: [0; NUM_SIZE_CLASSES],
                dead_frees: [0; NUM_SIZE_CLASSES],
            }),
            fallback: Mutex::new(ThreadCache::empty(heap)),
            exit_key: AtomicU32::new(0),
        }
    }

    /// The fallback cache, locked and usable.
    pub(crate) fn fallback(&self) -> MutexGuard<'_, ThreadCache> {
        let fb = self.fallback.lock();
        if fb.classes[1].max.get() == 0 {
            fb.set_bounds();
        }
        fb
    }

    /// Allocation by a thread whose cache pointer is null.
    #[cold]
    #[inline(never)]
    pub(crate) fn alloc_without_cache(&'static self, class: usize) -> *mut u8 {
        match self.init_thread() {
            // SAFETY: the calling thread's own, live cache.
            Some(c) => unsafe { enter(c, |c| c.alloc(class)) },
            None => self.fallback().alloc(class),
        }
    }

    /// Free by a thread whose cache pointer is null.
    ///
    /// # Safety
    ///
    /// `p` is a live object of `class` that the caller gives up.
    #[cold]
    #[inline(never)]
    pub(crate) unsafe fn free_without_cache(&'static self, p: *mut u8, class: usize) {
        match self.init_thread() {
            // SAFETY: the calling thread's live cache; forwarded contract.
            Some(c) => unsafe { enter(c, |c| c.free(p, class)) },
            // SAFETY: forwarded contract.
            None => unsafe { self.fallback().free(p, class) },
        }
    }

    /// Builds the calling thread's cache if it has none. Returns it, or
    /// `None` when the thread must use the fallback (re-entered during
    /// set-up, calling out, after exit, or out of memory).
    fn init_thread(&'static self) -> Option<&'static ThreadCache> {
        let state = STATE.try_with(|s| s.get()).unwrap_or(ThreadState::Dead);
        match state {
            // SAFETY: a live cache stays valid until this thread exits.
            ThreadState::Live => return unsafe { cache().as_ref() },
            ThreadState::Initializing | ThreadState::Dead => return None,
            ThreadState::New => {}
        }
        STATE.with(|s| s.set(ThreadState::Initializing));
        let c = {
            let mut r = self.registry.lock();
            let sys_before = r.caches.sys;
            let c = r.caches.alloc(self.heap.os).cast::<ThreadCache>();
            self.note_sys(sys_before, r.caches.sys);
            if c.is_null() {
                drop(r);
                STATE.with(|s| s.set(ThreadState::New));
                return None;
            }
            // SAFETY: a fresh slot of ThreadCache size, ours alone.
            unsafe {
                c.write(ThreadCache::empty(self.heap));
                // Its handshake takes the mode chosen at process set-up.
                core::ptr::addr_of_mut!((*c).handshake).write(Handshake::new());
                (*c).set_bounds();
                (*c).next.set(r.head);
                if !r.head.is_null() {
                    (*r.head).prev.set(c);
                }
            }
            r.head = c;
            c
        };
        // Register the exit hook. This may allocate (glibc's
        // pthread_setspecific for keys past the first 32): that re-enters
        // us and uses the fallback.
        if let Some(key) = self.exit_key() {
            // SAFETY: a valid key; the value is only handed to our destructor.
            unsafe { libc::pthread_setspecific(key, c.cast()) };
        }
        cache_slot::set(c);
        STATE.with(|s| s.set(ThreadState::Live));
        // SAFETY: registered, and freed only by this thread's exit.
        Some(unsafe { &*c })
    }

    /// Mirrors the cache allocator's mapped bytes into the heap's count of
    /// metadata mapped above it.
    fn note_sys(&self, before: usize, after: usize) {
        if after >= before {
            self.heap.meta_outside.fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.heap.meta_outside.fetch_sub(before - after, Ordering::Relaxed);
        }
    }

    fn exit_key(&'static self) -> Option<libc::pthread_key_t> {
        let k = self.exit_key.load(Ordering::Acquire);
        if k != 0 {
            return Some(k - 1);
        }
        let _r = self.registry.lock();
        let k = self.exit_key.load(Ordering::Acquire);
        if k != 0 {
            return Some(k - 1);
        }
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: creates a key with our destructor; glibc does not allocate
        // here (keys live in a static table).
        if unsafe { libc::pthread_key_create(&mut key, Some(thread_exit)) } != 0 {
            return None;
        }
        EXIT_THREADS.store(self as *const Threads as *mut Threads, Ordering::Release);
        self.exit_key.store(key + 1, Ordering::Release);
        Some(key)
    }

    /// Flushes cache `c`, folds its counters into the dead totals, unlinks
    /// and frees it.
    ///
    /// # Safety
    ///
    /// `c` is a live registered cache that no thread will use again.
    unsafe fn retire(&self, c: *mut ThreadCache) {
        // SAFETY: per the contract, we own `c` (a claimer may hold it:
        // `enter` waits for that).
        let cache = unsafe { &*c };
        // SAFETY: as above.
        unsafe { enter(cache, |cache| cache.flush_all()) };
        let mut r = self.registry.lock();
        for class in 0..NUM_SIZE_CLASSES {
            r.dead_mallocs[class] += cache.classes[class].mallocs.load(Ordering::Relaxed);
            r.dead_frees[class] += cache.classes[class].frees.load(Ordering::Relaxed);
        }
        let (prev, next) = (cache.prev.get(), cache.next.get());
        // SAFETY: `c` is on the registry list; its neighbours are live
        // caches, and claimers hold the registry lock we hold.
        unsafe {
            if prev.is_null() {
                r.head = next;
            } else {
                (*prev).next.set(next);
            }
            if !next.is_null() {
                (*next).prev.set(prev);
            }
            let sys_before = r.caches.sys;
            r.caches.free(c.cast());
            self.note_sys(sys_before, r.caches.sys);
        }
    }

    /// Flushes the calling thread's cache and the fallback cache to the
    /// central lists, and the central lists' transfer caches into their
    /// spans: cached objects become available to other threads, and spans
    /// left empty go back to the page heap.
    pub(crate) fn flush_thread_cache(&self) {
        // SAFETY: a non-null cache pointer is the calling thread's own
        // live cache.
        if let Some(c) = unsafe { cache().as_ref() } {
            // SAFETY: as above.
            unsafe { enter(c, |c| c.flush_all()) };
        }
        self.fallback().flush_all();
        for (class, central) in self.heap.centrals.iter().enumerate().skip(1) {
            central.drain_batches(self.heap, class);
        }
    }

    /// Releases thread-cache chunks with no cache in use; returns the bytes.
    pub(crate) fn release_empty_caches(&self) -> usize {
        let mut r = self.registry.lock();
        let before = r.caches.sys;
        let n = r.caches.release_empty(self.heap.os);
        self.note_sys(before, r.caches.sys);
        n
    }

    /// The objects every live thread cache has handed out and taken back
    /// so far, summed (wrapping): it stands still only while no thread
    /// allocates or frees. The scavenger reads it when the page heap has
    /// been quiet, since a program working out of its caches moves no
    /// spans for long stretches and is still busy.
    pub(crate) fn object_activity(&self) -> u64 {
        let r = self.registry.lock();
        r.live()
            .fold(0u64, |sum, c| sum.wrapping_add(c.object_activity()))
    }

    /// Empties the caches of threads that have not allocated or freed since
    /// the last call (made by the scavenger about once a second), so
    /// objects sitting in idle threads' caches stop pinning their spans.
    /// Returns how many caches it emptied.
    ///
    /// The owner never takes a lock or an atomic read-modify-write for this
    /// (see `sync::handshake`): the reclaimer claims each candidate, issues
    /// one barrier, and empties the candidates whose owners are not busy;
    /// an owner that comes back meanwhile waits for the claim to drop.
    pub(crate) fn reclaim_idle_caches(&self) -> usize {
        let r = self.registry.lock();
        // Candidates: no activity since the last look, and some since the
        // last time we emptied them.
        let mut candidates = 0;
        for cache in r.live() {
            let now = cache.object_activity();
            let seen = cache.seen_activity.swap(now, Ordering::Relaxed);
            if now == seen && now != cache.reclaimed_activity.load(Ordering::Relaxed) {
                cache.handshake.request();
                candidates += 1;
            }
        }
        if candidates == 0 {
            return 0;
        }
        let fenced = handshake::heavy_barrier();
        let mut emptied = 0;
        for cache in r.live() {
            if !cache.handshake.is_claimed() {
                continue;
            }
            if fenced && !cache.handshake.is_busy() {
                // The handshake excludes the owner until the claim drops;
                // the registry lock excludes other claimers and the
                // owner's exit.
                cache.flush_all();
                cache
                    .reclaimed_activity
                    .store(cache.seen_activity.load(Ordering::Relaxed), Ordering::Relaxed);
                emptied += 1;
            }
            cache.handshake.release();
        }
        emptied
    }

    /// Runs `f` with every thread's cache and the fallback cache held
    /// still: no owner is inside an operation until `f` returns (owners
    /// that try wait), and no reclaimer or other freezer runs. `f` gets
    /// the registry and the fallback. The calling thread must not be
    /// inside an operation on its own cache (it would wait for itself);
    /// its own cache is frozen like the others.
    pub(crate) fn freeze_all<R>(&self, f: impl FnOnce(&Registry, &ThreadCache) -> R) -> R {
        let r = self.registry.lock();
        let own = cache();
        for c in r.live() {
            if !ptr::eq(c, own) {
                c.handshake.request();
            }
        }
        // Without the barrier there is no safe way to wait for owners; the
        // fence fallback cannot fail, so this only happens when membarrier
        // itself fails after registering, and then the fences of the
        // waiting loop below still order us (see `Handshake::wait_idle`).
        let _ = handshake::heavy_barrier();
        for c in r.live() {
            if !ptr::eq(c, own) {
                c.handshake.wait_idle();
            }
        }
        let fb = self.fallback();
        let out = f(&r, &fb);
        drop(fb);
        for c in r.live() {
            if !ptr::eq(c, own) {
                c.handshake.release();
            }
        }
        out
    }

    /// In a child after `fork` (only the forking thread survives, with the
    /// registry lock and every other lock held by the fork handler): the
    /// other threads' caches are lost. They may have been in the middle of
    /// an operation, so they are neither flushed nor claimed again; they
    /// move to the `lost` list, where statistics still count them.
    ///
    /// # Safety
    ///
    /// Only from the fork handler in the child, which holds the registry
    /// lock (passed in as `r`).
    pub(crate) unsafe fn after_fork_in_child(&self, r: &mut Registry) {
        let own = cache() as *mut ThreadCache;
        let mut c = r.head;
        r.head = ptr::null_mut();
        while !c.is_null() {
            // SAFETY: registered caches stay valid (never freed once lost).
            let cache = unsafe { &*c };
            let next = cache.next.get();
            cache.prev.set(ptr::null_mut());
            if c == own {
                cache.next.set(r.head);
                r.head = c;
            } else {
                cache.next.set(r.lost);
                r.lost = c;
            }
            c = next;
        }
    }
}

/// pthread destructor: returns the exiting thread's cache to the heap.
unsafe extern "C" fn thread_exit(arg: *mut libc::c_void) {
    let c = arg.cast::<ThreadCache>();
    let threads = EXIT_THREADS.load(Ordering::Acquire);
    if c.is_null() || threads.is_null() {
        return;
    }
    // From here on this thread allocates through the fallback.
    cache_slot::set(&PLACEHOLDER);
    let _ = STATE.try_with(|s| s.set(ThreadState::Dead));
    // SAFETY: `c` is the exiting thread's own cache, no longer reachable
    // through its thread-local; `threads` is the process's, never freed.
    unsafe { (*threads).retire(c) };
}
