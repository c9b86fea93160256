//! `fork` support: taking every allocator lock before `fork` and releasing
//! them afterwards, so a child forked from a multithreaded parent never
//! inherits a lock that a thread which no longer exists was holding
//! (jemalloc #2019, gperftools #741).
//!
//! The C front-end registers these three functions with `pthread_atfork`;
//! a Rust program that forks while other threads allocate can call them
//! around its own `fork` the same way.
//!
//! Lock order (the allocator's own, so taking them all cannot deadlock
//! against a thread inside the allocator): the cache registry
//! (`tls::REGISTRY`), the fallback cache (`tls::FALLBACK`), every central
//! list in class order, then the heap lock (`HEAP.locked`).

use crate::global::HEAP;
use crate::tls::{FALLBACK, REGISTRY};

/// Takes every allocator lock, in lock order, and keeps them held (the
/// guards are forgotten) until [`postfork_parent`] or [`postfork_child`].
///
/// Call it right before `fork` (a `pthread_atfork` prepare handler). The
/// calling thread must not allocate through goheap until one of the
/// post-fork functions has run: it would wait for itself.
pub fn prefork() {
    core::mem::forget(REGISTRY.lock());
    core::mem::forget(FALLBACK.lock());
    for c in &HEAP.centrals {
        core::mem::forget(c.lists.lock());
    }
    core::mem::forget(HEAP.locked.lock());
}

/// Releases every lock [`prefork`] took, in reverse order.
///
/// # Safety
///
/// The calling thread called [`prefork`] and has not released its locks
/// since (exactly one post-fork function per `prefork`).
unsafe fn release_all() {
    // SAFETY: `prefork` took these locks on this thread (or, in the child,
    // on the thread the child is a copy of) and forgot their guards.
    unsafe { HEAP.locked.force_unlock() };
    for c in HEAP.centrals.iter().rev() {
        // SAFETY: as above.
        unsafe { c.lists.force_unlock() };
    }
    // SAFETY: as above.
    unsafe { FALLBACK.force_unlock() };
    // SAFETY: as above.
    unsafe { REGISTRY.force_unlock() };
}

/// Releases the locks in the parent after `fork` (a `pthread_atfork`
/// parent handler), waking threads that waited for them.
///
/// # Safety
///
/// The calling thread called [`prefork`] and no post-fork function since.
pub unsafe fn postfork_parent() {
    // SAFETY: forwarded contract.
    unsafe { release_all() }
}

/// Releases the locks in the child after `fork` (a `pthread_atfork` child
/// handler). The child has only the forking thread; the caches of the
/// parent's other threads stay registered but unused (their objects are
/// lost to the child, as with any thread-caching allocator), and the heap
/// is consistent because no other thread was inside a critical section.
///
/// # Safety
///
/// The calling thread called [`prefork`] before forking and is the only
/// thread of the child; no post-fork function has run since.
pub unsafe fn postfork_child() {
    // SAFETY: forwarded contract.
    unsafe { release_all() }
    crate::scavenger::forget_thread_after_fork();
}
