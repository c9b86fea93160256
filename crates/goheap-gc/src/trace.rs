//! The [`Trace`] trait and its object-safe companion [`DynTrace`].

use crate::Visitor;

/// A type whose `Gc` handles the collector can find.
///
/// Implement it with `#[derive(Trace)]`; see the crate documentation,
/// section "Tracing", for the attributes and the impls std types have.
///
/// # Safety
///
/// An implementation promises:
///
/// * `trace` passes `v` to exactly the `Gc` handles `self` owns, each
///   exactly once (a handle is visited through `Trace::trace(&handle, v)`,
///   or through the `trace` of a field that owns it). Visiting a handle
///   `self` does not own is unsound; skipping one only leaks (it stays a
///   root forever).
/// * Visiting the same value twice visits the same handles, unless the
///   value was changed through `&mut` in between. (So a type that lets a
///   handle be moved out through `&self`, like `RefCell` or `Mutex`, must
///   not implement `Trace`.)
/// * `NO_GC` is true only if no value of the type can own a `Gc` handle;
///   then `trace` visits nothing. Such values are allocated in noscan spans
///   and never traced.
///
/// A type that may own `Gc` handles must also not implement `Drop`: when a
/// garbage object is dropped, the objects its handles point to may be
/// garbage too, already freed. The derive enforces this unless the type is
/// `#[trace(no_gc)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not implement `Trace`, so it cannot be in a `Gc` or in a traced field",
    label = "not `Trace`",
    note = "`#[derive(Trace)]` implements it; a field that holds no `Gc` can be left out with `#[trace(skip)]`",
    note = "`RefCell`, `Mutex`, `RwLock`, `Rc`, `Arc`, `Weak`, raw pointers, references other than `&'static str`, and `Cell` of a non-`Copy` type are not `Trace` on purpose: use `GcRefCell` to mutate, `Gc` to share",
    note = "a trait object `dyn Tr` is `Trace` once `Tr` has `DynTrace` as a supertrait and `goheap_gc::impl_trace_for_dyn!(dyn Tr);` names it"
)]
pub unsafe trait Trace {
    /// True when values of this type can hold no `Gc` handle: allocated in a
    /// noscan span and never scanned.
    const NO_GC: bool = false;

    /// True when dropping a value of this type does nothing but drop `Gc`
    /// handles (`Option<Gc<T>>`, a derived struct of such fields): the
    /// collector then skips the `Drop` of dead objects of the type, which
    /// would only drop handles that were never counted. False (the
    /// default) is always correct; a wrong `true` only leaks what the skipped
    /// drop would have freed.
    const DROP_ONLY_HANDLES: bool = false;

    /// Passes `v` to every `Gc` handle `self` owns, each exactly once.
    fn trace(&self, v: &mut Visitor<'_>);
}

/// The object-safe part of [`Trace`], for trait objects.
///
/// `Trace` has an associated const, so `dyn Trace` cannot exist. A trait
/// whose objects go in the GC heap takes `DynTrace` as a supertrait instead,
/// and its object type gets a `Trace` impl from [`impl_trace_for_dyn!`](crate::impl_trace_for_dyn):
///
/// ```
/// use goheap_gc::{DynTrace, Gc, Trace};
///
/// trait Shape: DynTrace {
///     fn area(&self) -> f64;
/// }
/// goheap_gc::impl_trace_for_dyn!(dyn Shape + Send);
///
/// #[derive(Trace)]
/// struct Square(f64);
/// impl Shape for Square {
///     fn area(&self) -> f64 {
///         self.0 * self.0
///     }
/// }
///
/// let shapes: Gc<Vec<Box<dyn Shape + Send>>> = Gc::new(vec![Box::new(Square(2.0))]);
/// assert_eq!(shapes[0].area(), 4.0);
/// ```
///
/// Every `T: Trace` (sized or not) is `DynTrace`.
///
/// # Safety
///
/// `dyn_trace` keeps the contract of [`Trace::trace`]. Implement it by hand
/// only for a type that is not `Trace`; the blanket impl covers the rest.
pub unsafe trait DynTrace {
    /// Passes `v` to every `Gc` handle `self` owns, each exactly once: the
    /// same as [`Trace::trace`].
    fn dyn_trace(&self, v: &mut Visitor<'_>);
}

// SAFETY: forwards to `Trace::trace`, whose contract is the same.
unsafe impl<T: ?Sized + Trace> DynTrace for T {
    #[inline]
    fn dyn_trace(&self, v: &mut Visitor<'_>) {
        self.trace(v);
    }
}

/// Implements [`Trace`] for trait object types whose trait has
/// [`DynTrace`] as a supertrait, so that `Box<dyn Shape>` is `Trace`.
///
/// ```
/// # use goheap_gc::DynTrace;
/// trait Shape: DynTrace {}
/// goheap_gc::impl_trace_for_dyn!(dyn Shape, dyn Shape + Send, dyn Shape + Send + Sync);
/// ```
///
/// The impl forwards to `DynTrace::dyn_trace`, and so goes through the
/// object's vtable to the concrete type's `Trace::trace`; `NO_GC` is false
/// (the concrete type is not known). (`dyn Tr` is then `DynTrace` twice
/// over: through the compiler's object impl and through the blanket impl
/// for `Trace` types. Rustc picks the object impl, the vtable; were it
/// ever to pick the blanket one, the call would recurse, which the unit
/// test `trait_objects_visit_through_the_vtable` would show as a stack
/// overflow.) For a generic trait, write the same
/// impl by hand: `unsafe impl<T> Trace for dyn Shape<T>` with
/// `fn trace(&self, v) { DynTrace::dyn_trace(self, v) }`.
#[macro_export]
macro_rules! impl_trace_for_dyn {
    ($($object:ty),+ $(,)?) => {
        $(
            // SAFETY: `dyn_trace` keeps the contract of `Trace::trace`
            // (`DynTrace` is an unsafe trait promising so), and `NO_GC`
            // keeps its default, false.
            unsafe impl $crate::Trace for $object {
                #[inline]
                fn trace(&self, v: &mut $crate::Visitor<'_>) {
                    $crate::DynTrace::dyn_trace(self, v)
                }
            }
        )+
    };
}
