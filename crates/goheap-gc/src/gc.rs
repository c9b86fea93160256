//! STUB: replaced by the collector. A `Gc<T>` that leaks its value, so that
//! the tracing layer and its tests compile against the real signatures.

use core::ops::Deref;
use core::ptr::NonNull;

use crate::{Trace, Visitor};

/// A handle to a `T` in the garbage-collected heap.
///
/// STUB: replaced by the collector. This one never frees: `new` leaks a
/// `Box`, and there are no roots and no collection.
pub struct Gc<T: Trace + 'static> {
    ptr: NonNull<T>,
}

impl<T: Trace + 'static> Gc<T> {
    /// Moves `value` into the GC heap.
    ///
    /// STUB: replaced by the collector. Leaks a `Box`.
    pub fn new(value: T) -> Gc<T> {
        Gc {
            ptr: NonNull::from(Box::leak(Box::new(value))),
        }
    }

    /// The address of the object (what a visit of this handle records).
    #[cfg(test)]
    pub(crate) fn addr(this: &Gc<T>) -> *const u8 {
        this.ptr.as_ptr().cast_const().cast()
    }
}

impl<T: Trace + 'static> Clone for Gc<T> {
    fn clone(&self) -> Gc<T> {
        Gc { ptr: self.ptr }
    }
}

impl<T: Trace + 'static> Deref for Gc<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: `ptr` came from `Box::leak`, which the stub never frees,
        // and is only ever read through shared references.
        unsafe { self.ptr.as_ref() }
    }
}

// SAFETY: a `Gc<T>` gives `&T` to any thread holding a clone, so `T: Sync`,
// and the last handle's thread may drop the `T`, so `T: Send`.
unsafe impl<T: Trace + Send + Sync + 'static> Send for Gc<T> {}

// SAFETY: `&Gc<T>` gives `&T` and can be cloned into a `Gc<T>` on another
// thread: as for `Send`.
unsafe impl<T: Trace + Send + Sync + 'static> Sync for Gc<T> {}

// SAFETY: a handle owns exactly itself, and visits itself once.
unsafe impl<T: Trace + 'static> Trace for Gc<T> {
    const NO_GC: bool = false;
    #[inline]
    fn trace(&self, v: &mut Visitor<'_>) {
        v.visit_raw(self.ptr.as_ptr().cast_const().cast());
    }
}
