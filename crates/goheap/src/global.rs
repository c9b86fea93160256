//! The process: the one page heap, its threads, and the hooks that wire
//! the services (scavenger, memory limit, statistics at exit, fork
//! handlers) into the layers below, which do not know them.
//!
//! This is the composition root: the only module that names both the
//! lower layers and the services, and the only place with the allocator's
//! process-wide statics besides per-layer counters.

use crate::gcheap::GcHeap;
use crate::heap::{Heap, HeapHooks};
#[cfg(not(miri))]
use crate::os::SystemOs;
use crate::sync::atomic::{AtomicU8, Ordering};
use crate::tls::{self, Threads};

#[cfg(not(miri))]
static SYSTEM_OS: SystemOs = SystemOs;
/// Under Miri, which has no `mprotect` or `madvise`, the process heap maps
/// plain read-write memory (the mock OS models release by zeroing), so the
/// front-ends' own tests (and goheap-gc's) run under it.
#[cfg(miri)]
static SYSTEM_OS: crate::os::mock::MockOs = crate::os::mock::MockOs::new();

/// The one page heap shared by every front-end in the process.
pub(crate) static HEAP: Heap = Heap::with_hooks(
    &SYSTEM_OS,
    HeapHooks {
        first_span: start_scavenger,
    },
);

/// The process's threads and their caches.
pub(crate) static THREADS: Threads = Threads::new(&HEAP);

/// The process's collected heap (`goheap-gc`'s), on the same page heap.
pub static GC_HEAP: GcHeap = GcHeap::new(&HEAP);

/// Hook: the heap made its first span. Starts the background scavenger.
/// This can run inside an operation on the calling thread's cache (a
/// refill), and creating a thread allocates (glibc allocates the new
/// thread's TLS vector with `calloc`, which under `LD_PRELOAD` is ours), so
/// it runs detached from that cache.
fn start_scavenger() {
    // Miri runs tests, not a long-lived process: no background thread.
    if cfg!(miri) {
        return;
    }
    tls::call_out(|| {
        crate::scavenger::start(&HEAP, &THREADS);
        crate::profile::writer::start();
    });
}

/// 0 = not initialised, 1 = initialising, 2 = done.
static INIT: AtomicU8 = AtomicU8::new(0);

/// Process set-up, once, before the first thread cache is made or the first
/// large object allocated; a load afterwards.
#[inline(always)]
pub(crate) fn ensure_init() {
    if INIT.load(Ordering::Acquire) != 2 {
        init();
    }
}

/// Reads the options, chooses the cache handshake's mechanism, sets the
/// memory limit from the environment or the container, and registers the
/// exit statistics and the fork handlers. The last two may allocate: such
/// an allocation re-enters goheap, finds initialisation in progress and
/// goes ahead (none of it needs the rest), like any allocation by another
/// thread meanwhile.
#[cold]
#[inline(never)]
fn init() {
    if INIT
        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Acquire)
        .is_err()
    {
        return;
    }
    use crate::options::{self, Opt};
    if !options::loaded() {
        options::load();
    }
    // Before any thread cache exists: owners read the mode on every
    // operation.
    // (Miri has no `membarrier`: fences.)
    crate::sync::handshake::init(options::get(Opt::Membarrier) && !cfg!(miri));
    crate::scavenger::init_from_env(&HEAP);
    crate::profile::writer::init_from_env();
    if !cfg!(miri) {
        crate::cgroup::init_limit(&HEAP);
        crate::stats::init_exit_stats();
    }
    // SAFETY: registers three `extern "C"` functions with no arguments
    // that live for the whole process; glibc may allocate here, which
    // re-enters us harmlessly (see above). (Miri cannot fork.)
    #[cfg(not(miri))]
    unsafe {
        libc::pthread_atfork(Some(atfork_prepare), Some(atfork_parent), Some(atfork_child))
    };
    INIT.store(2, Ordering::Release);
}

extern "C" fn atfork_prepare() {
    crate::fork::prefork(&HEAP, &THREADS);
}

extern "C" fn atfork_parent() {
    // SAFETY: glibc runs this in the thread that ran `atfork_prepare`,
    // right after the fork.
    unsafe { crate::fork::postfork_parent(&HEAP, &THREADS) };
}

extern "C" fn atfork_child() {
    // SAFETY: glibc runs this in the child's only thread, a copy of the one
    // that ran `atfork_prepare`.
    unsafe { crate::fork::postfork_child(&HEAP, &THREADS) };
    HEAP.after_fork_in_child();
    crate::scavenger::after_fork_in_child();
}
