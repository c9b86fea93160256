//! [`Trace`] for std types.
//!
//! Leaf types are `NO_GC` and visit nothing; a container is `NO_GC` when
//! its elements are, and then visits nothing without walking them.
//!
//! Missing on purpose (see the comment before each group at the end):
//! `RefCell`, `Mutex`, `RwLock`, `Rc`, `Arc`, `Weak`, raw pointers and
//! `AtomicPtr`, references other than `&'static str`, `Cell<T>` for a
//! non-`Copy` `T`.

use core::cell::{Cell, OnceCell};
use core::marker::PhantomData;
use core::num::{
    NonZeroI128, NonZeroI16, NonZeroI32, NonZeroI64, NonZeroI8, NonZeroIsize, NonZeroU128,
    NonZeroU16, NonZeroU32, NonZeroU64, NonZeroU8, NonZeroUsize,
};
use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, LinkedList, VecDeque};
use std::ffi::{CStr, CString, OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use crate::{Trace, Visitor};

/// Types that hold no `Gc`: `NO_GC`, visit nothing.
macro_rules! leaf {
    ($($ty:ty),* $(,)?) => {
        $(
            // SAFETY: the type holds no `Gc` handle; `trace` visits none.
            unsafe impl Trace for $ty {
                const NO_GC: bool = true;
                #[inline]
                fn trace(&self, _: &mut Visitor<'_>) {}
            }
        )*
    };
}

leaf! {
    (), bool, char, f32, f64,
    i8, i16, i32, i64, i128, isize,
    u8, u16, u32, u64, u128, usize,
    NonZeroI8, NonZeroI16, NonZeroI32, NonZeroI64, NonZeroI128, NonZeroIsize,
    NonZeroU8, NonZeroU16, NonZeroU32, NonZeroU64, NonZeroU128, NonZeroUsize,
    str, &'static str, String,
    Path, PathBuf, OsStr, OsString, CStr, CString,
    Duration, Instant, SystemTime,
    core::cmp::Ordering,
    core::sync::atomic::AtomicBool,
}

#[cfg(target_has_atomic = "8")]
leaf!(core::sync::atomic::AtomicI8, core::sync::atomic::AtomicU8);
#[cfg(target_has_atomic = "16")]
leaf!(core::sync::atomic::AtomicI16, core::sync::atomic::AtomicU16);
#[cfg(target_has_atomic = "32")]
leaf!(core::sync::atomic::AtomicI32, core::sync::atomic::AtomicU32);
#[cfg(target_has_atomic = "64")]
leaf!(core::sync::atomic::AtomicI64, core::sync::atomic::AtomicU64);
#[cfg(target_has_atomic = "ptr")]
leaf!(
    core::sync::atomic::AtomicIsize,
    core::sync::atomic::AtomicUsize
);

// SAFETY: a `PhantomData<T>` holds nothing, whatever `T` is.
unsafe impl<T: ?Sized> Trace for PhantomData<T> {
    const NO_GC: bool = true;
    #[inline]
    fn trace(&self, _: &mut Visitor<'_>) {}
}

/// Wrappers that hold exactly one `T`, reached by `$get`.
macro_rules! wrapper {
    ($($ty:ident => |$this:ident| $get:expr),* $(,)?) => {
        $(
            // SAFETY: visits the one `T` inside, through its own `trace`.
            unsafe impl<T: Trace> Trace for $ty<T> {
                const NO_GC: bool = T::NO_GC;
                #[inline]
                fn trace(&self, v: &mut Visitor<'_>) {
                    let $this = self;
                    T::trace($get, v);
                }
            }
        )*
    };
}

use core::cmp::Reverse;
use core::num::Wrapping;
wrapper! {
    Reverse => |this| &this.0,
    Wrapping => |this| &this.0,
}

/// Whether dropping a `T` does nothing but drop `Gc` handles.
const fn only_handles<T: Trace>() -> bool {
    T::DROP_ONLY_HANDLES || !core::mem::needs_drop::<T>()
}

/// Tuples: each element in order.
macro_rules! tuple {
    ($(($($name:ident),+))*) => {
        $(
            // SAFETY: visits each element once, through its own `trace`.
            unsafe impl<$($name: Trace),+> Trace for ($($name,)+) {
                const NO_GC: bool = true $(&& $name::NO_GC)+;
                const DROP_ONLY_HANDLES: bool = true $(&& only_handles::<$name>())+;
                #[inline]
                #[allow(non_snake_case, reason = "the bindings are named after the type parameters")]
                fn trace(&self, v: &mut Visitor<'_>) {
                    let ($($name,)+) = self;
                    $($name.trace(v);)+
                }
            }
        )*
    };
}

tuple! {
    (A)
    (A, B)
    (A, B, C)
    (A, B, C, D)
    (A, B, C, D, E)
    (A, B, C, D, E, F)
    (A, B, C, D, E, F, G)
    (A, B, C, D, E, F, G, H)
    (A, B, C, D, E, F, G, H, I)
    (A, B, C, D, E, F, G, H, I, J)
    (A, B, C, D, E, F, G, H, I, J, K)
    (A, B, C, D, E, F, G, H, I, J, K, L)
}

/// Collections whose `iter()` yields `&T` once per element.
macro_rules! sequence {
    ($($ty:ident),* $(,)?) => {
        $(
            // SAFETY: visits each element once (`iter` yields each once),
            // or none when the element type is `NO_GC`.
            unsafe impl<T: Trace> Trace for $ty<T> {
                const NO_GC: bool = T::NO_GC;
                #[inline]
                fn trace(&self, v: &mut Visitor<'_>) {
                    if T::NO_GC {
                        return;
                    }
                    for element in self.iter() {
                        element.trace(v);
                    }
                }
            }
        )*
    };
}

sequence!(Vec, VecDeque, LinkedList, BinaryHeap, BTreeSet);

// SAFETY: visits each element once, or none when `T` is `NO_GC`.
unsafe impl<T: Trace> Trace for [T] {
    const NO_GC: bool = T::NO_GC;
    #[inline]
    fn trace(&self, v: &mut Visitor<'_>) {
        if T::NO_GC {
            return;
        }
        for element in self {
            element.trace(v);
        }
    }
}

// SAFETY: the same as for `[T]`.
unsafe impl<T: Trace, const N: usize> Trace for [T; N] {
    const DROP_ONLY_HANDLES: bool = only_handles::<T>();
    const NO_GC: bool = T::NO_GC;
    #[inline]
    fn trace(&self, v: &mut Visitor<'_>) {
        self.as_slice().trace(v);
    }
}

// SAFETY: visits the value if there is one.
unsafe impl<T: Trace> Trace for Option<T> {
    const NO_GC: bool = T::NO_GC;
    const DROP_ONLY_HANDLES: bool = only_handles::<T>();
    #[inline]
    fn trace(&self, v: &mut Visitor<'_>) {
        if let Some(value) = self {
            value.trace(v);
        }
    }
}

// SAFETY: visits whichever value there is.
unsafe impl<T: Trace, E: Trace> Trace for Result<T, E> {
    const NO_GC: bool = T::NO_GC && E::NO_GC;
    const DROP_ONLY_HANDLES: bool = only_handles::<T>() && only_handles::<E>();
    #[inline]
    fn trace(&self, v: &mut Visitor<'_>) {
        match self {
            Ok(value) => value.trace(v),
            Err(error) => error.trace(v),
        }
    }
}

// Maps: each key and each value once. The hasher `S` is not traced (it
// has no `Trace` bound, so std's `RandomState` and any other hasher fit):
// a `Gc` inside a hasher would never be unrooted, a leak but not unsound,
// since only unrooted handles can be freed while reachable.

// SAFETY: visits each key and each value once, or nothing when both are
// `NO_GC`.
unsafe impl<K: Trace, V: Trace, S> Trace for HashMap<K, V, S> {
    const NO_GC: bool = K::NO_GC && V::NO_GC;
    #[inline]
    fn trace(&self, v: &mut Visitor<'_>) {
        if Self::NO_GC {
            return;
        }
        for (key, value) in self {
            key.trace(v);
            value.trace(v);
        }
    }
}

// SAFETY: visits each element once, or none when `T` is `NO_GC`.
unsafe impl<T: Trace, S> Trace for HashSet<T, S> {
    const NO_GC: bool = T::NO_GC;
    #[inline]
    fn trace(&self, v: &mut Visitor<'_>) {
        if T::NO_GC {
            return;
        }
        for element in self {
            element.trace(v);
        }
    }
}

// SAFETY: visits each key and each value once, or nothing when both are
// `NO_GC`.
unsafe impl<K: Trace, V: Trace> Trace for BTreeMap<K, V> {
    const NO_GC: bool = K::NO_GC && V::NO_GC;
    #[inline]
    fn trace(&self, v: &mut Visitor<'_>) {
        if Self::NO_GC {
            return;
        }
        for (key, value) in self {
            key.trace(v);
            value.trace(v);
        }
    }
}

// `Box<T>` takes `T: ?Sized + Trace`, not `T: ?Sized + DynTrace`, so that
// its `NO_GC` is `T::NO_GC` for every `T`, sized or not: `Box<[u8]>`,
// `Box<str>`, `Box<u64>` are `NO_GC` and may sit in a `#[trace(no_gc)]`
// type. With a `DynTrace` bound the impl could not read `T::NO_GC` (a
// dyn-compatible trait has no consts), a second impl for sized `T` would
// overlap it, and `Box<str>` would need its own impl, which would overlap
// too (`str` is `DynTrace` through `Trace`). So a trait object type gets
// `Trace` from one line, `impl_trace_for_dyn!(dyn Shape)`, which forwards
// to `DynTrace`; then `Box<dyn Shape>` is `Trace` through this impl.

// SAFETY: visits the boxed value, through its own `trace`.
unsafe impl<T: ?Sized + Trace> Trace for Box<T> {
    const NO_GC: bool = T::NO_GC;
    #[inline]
    fn trace(&self, v: &mut Visitor<'_>) {
        T::trace(self, v);
    }
}

crate::impl_trace_for_dyn!(
    dyn crate::DynTrace,
    dyn crate::DynTrace + Send,
    dyn crate::DynTrace + Sync,
    dyn crate::DynTrace + Send + Sync,
);

/// Fails to compile (when used) unless `T` is `NO_GC`.
struct AssertNoGc<T>(PhantomData<T>);

impl<T: Trace> AssertNoGc<T> {
    const OK: () = assert!(
        T::NO_GC,
        "`Cell<T>` is `Trace` only for a `T` that is `Copy` and `Trace::NO_GC` (a `Copy` type holds no `Gc`; its `Trace` impl must say so)"
    );
}

// `Cell<T>` only for `T: Copy`. A `Copy` type cannot hold a `Gc` (`Gc` is
// not `Copy`), so the cell holds no handle, and nothing is visited; the
// assertion catches a hand-written `Trace` impl of a `Copy` type that says
// otherwise. For any other `T`, `Cell::take` and `Cell::replace` move a
// value out through `&`: a handle stored in a GC object, and so unrooted,
// would come out still unrooted and be freed while in use. Use `GcRefCell`.

// SAFETY: a `Copy` `T` holds no `Gc` handle (asserted), so there is nothing
// to visit.
unsafe impl<T: Copy + Trace> Trace for Cell<T> {
    const NO_GC: bool = {
        let () = AssertNoGc::<T>::OK;
        true
    };
    #[inline]
    fn trace(&self, _: &mut Visitor<'_>) {
        let () = AssertNoGc::<T>::OK;
    }
}

// `OnceCell<T>`: through `&` it can only be set once (`set`,
// `get_or_init`) and then read; taking the value out (`take`, `into_inner`)
// needs `&mut` or ownership, which for a value in the GC heap only the
// rooting `GcRefCell::borrow_mut` gives. So no unrooted handle can leave it
// through `&`. Setting it through `&` after `Gc::new` (which found it empty)
// moves a still-rooted handle in, which then stays a root: a leak, not a
// use-after-free. Inside a `GcRefCell` guard, the root visit and the unroot
// visit bracket the change, as for any other field.

// SAFETY: visits the value once, if the cell has been set; see above for
// why a cell that changes through `&` is still sound.
unsafe impl<T: Trace> Trace for OnceCell<T> {
    const NO_GC: bool = T::NO_GC;
    #[inline]
    fn trace(&self, v: &mut Visitor<'_>) {
        if let Some(value) = self.get() {
            value.trace(v);
        }
    }
}

// Not `Trace`, on purpose:
//
// * `RefCell<T>`, `Mutex<T>`, `RwLock<T>`: they give `&mut T` through `&`,
//   so a handle stored in a GC object (unrooted) could be moved out to the
//   stack still unrooted, and its object freed while in use. Use
//   `GcRefCell`, which roots its contents while borrowed mutably.
// * `Rc<T>`, `Arc<T>`, `Weak<T>`: `Rc::clone(&field)` takes a second
//   owner of the same handles out through `&`. The handles inside an `Rc`
//   stored in a GC object are unrooted; a clone of it on the stack keeps
//   using them after the GC object, their only tracer, has died and they
//   were freed. Use `Gc` to share.
// * raw pointers, `AtomicPtr`, `NonNull`, references (other than
//   `&'static str`): they do not own what they point to, and a trace
//   through them would visit handles the value does not own. A field that
//   holds no `Gc` can be left out with `#[trace(skip)]`.
// * `Cell<T>` for a non-`Copy` `T`: see above.
