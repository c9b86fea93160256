//! `fork` support: taking every allocator lock before `fork` and releasing
//! them afterwards, so a child forked from a multithreaded parent never
//! inherits a lock that a thread which no longer exists was holding
//! (jemalloc #2019, gperftools #741). The process registers these with
//! `pthread_atfork` when it sets itself up (`global.rs`), for Rust programs
//! and the C library alike.
//!
//! Lock order (the allocator's own, so taking them all cannot deadlock
//! against a thread inside the allocator): the cache registry, the
//! fallback cache, every central list in class order, then the heap lock,
//! then the heap profile's leaf locks (its table, the collected heap's
//! address map).

use crate::heap::Heap;
use crate::tls::Threads;

/// Takes every allocator lock, in lock order, and keeps them held (the
/// guards are forgotten) until [`postfork_parent`] or [`postfork_child`].
/// Waits for a claimer (which holds the registry lock) to finish, so no
/// claim is raised across the fork.
pub(crate) fn prefork(heap: &Heap, threads: &Threads) {
    core::mem::forget(threads.registry.lock());
    core::mem::forget(threads.fallback.lock());
    for c in &heap.centrals {
        core::mem::forget(c.lists.lock());
    }
    core::mem::forget(heap.locked.lock());
    crate::profile::table::prefork();
    crate::profile::gcmap::prefork();
}

/// Releases every lock [`prefork`] took, in reverse order.
///
/// # Safety
///
/// The calling thread called [`prefork`] and has not released its locks
/// since (exactly one post-fork function per `prefork`).
unsafe fn release_all(heap: &Heap, threads: &Threads) {
    // SAFETY: `prefork` took these locks on this thread (or, in the child,
    // on the thread the child is a copy of) and forgot their guards.
    unsafe {
        crate::profile::gcmap::postfork();
        crate::profile::table::postfork();
        heap.locked.force_unlock();
        for c in heap.centrals.iter().rev() {
            c.lists.force_unlock();
        }
        threads.fallback.force_unlock();
        threads.registry.force_unlock();
    }
}

/// Releases the locks in the parent after `fork`, waking threads that
/// waited for them.
///
/// # Safety
///
/// The calling thread called [`prefork`] and no post-fork function since.
pub(crate) unsafe fn postfork_parent(heap: &Heap, threads: &Threads) {
    // SAFETY: forwarded contract.
    unsafe { release_all(heap, threads) }
}

/// Repairs what did not survive the fork, then releases the locks, in the
/// child (which has only the forking thread):
///
/// - the parent's other threads' caches are moved aside as lost (their
///   objects are lost to the child, as with any thread-caching allocator;
///   they may have been mid-operation, so they are not flushed);
/// - a run of free pages the scavenger thread had claimed to release
///   outside the heap lock goes back to the page allocator as free (not as
///   released: whether the parent's `madvise` reached the child's copy is
///   unknown);
/// - the heap's first-span hook will run again and start a new scavenger.
///
/// # Safety
///
/// The calling thread called [`prefork`] before forking and is the only
/// thread of the child; no post-fork function has run since.
pub(crate) unsafe fn postfork_child(heap: &Heap, threads: &Threads) {
    // SAFETY: we hold every lock (taken by `prefork` in the thread this one
    // is a copy of), so the data behind them is ours.
    unsafe {
        threads.after_fork_in_child(&mut *threads.registry.data_ptr());
        let h = &mut *heap.locked.data_ptr();
        let (base, npages) = core::mem::take(&mut h.releasing);
        if npages != 0 {
            h.pages.free(base, npages);
        }
        release_all(heap, threads);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::mock::MockOs;
    use crate::span::SpanState;

    /// A child forked while the scavenger released a run of free pages
    /// outside the heap lock gets the run back as free pages (nobody in the
    /// child would ever mark it released).
    #[test]
    fn a_run_being_released_at_fork_is_free_again_in_the_child() {
        let heap: &'static Heap = Box::leak(Box::new(Heap::new(Box::leak(Box::new(MockOs::new())))));
        let threads: &'static Threads = Box::leak(Box::new(Threads::new(heap)));
        // Grow the heap, then free what was taken: free pages to release.
        let s = heap.alloc_span(64, 1, |s, _| s.set_state(SpanState::Large));
        assert!(!s.is_null());
        // SAFETY: ours, unreferenced.
        unsafe { heap.free_span(s) };
        let free_before = heap.locked.lock().pages.free_pages();
        // What `Heap::release` does before its unlocked madvise.
        {
            let mut h = heap.locked.lock();
            let run = h.pages.find_scavenge_candidate_in(16, crate::pagealloc::Scan::All).expect("a free run");
            h.releasing = run;
        }
        assert_eq!(heap.locked.lock().pages.free_pages(), free_before - 16);
        prefork(heap, threads);
        // SAFETY: this thread called prefork; it plays the child.
        unsafe { postfork_child(heap, threads) };
        let h = heap.locked.lock();
        assert_eq!(h.releasing, (0, 0));
        assert_eq!(h.pages.free_pages(), free_before, "the claimed run was lost");
    }
}
