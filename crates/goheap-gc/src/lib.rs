//! A garbage-collected heap for Rust on goheap's allocator: [`Gc<T>`]
//! handles to objects that the collector frees once unreachable.
//!
//! This version has the tracing layer only ([`Trace`], its derive, its
//! impls for std types); [`Gc`] is a stub that leaks, until the collector
//! lands.
//!
//! # Tracing
//!
//! A `Gc<T>` handle outside the GC heap is a root; a handle inside a GC
//! object is not. Values change sides explicitly: `Gc::new(value)` visits
//! `value` to unroot each handle it holds, `GcRefCell` roots its contents
//! while borrowed mutably and unroots them when the guard drops, and
//! marking visits objects to find what they reach. Each of these is a call
//! of [`Trace::trace`], so a `Trace` impl must visit **exactly** the
//! handles its value owns, each exactly once, and the same ones on every
//! visit of an unchanged value. That is a promise the collector's safety
//! rests on, hence an `unsafe trait`: a trace that visits a handle the value
//! does not own is unsound, one that skips a handle only leaks (the handle
//! stays a root forever, and what it reaches is never freed).
//!
//! Derive it:
//!
//! ```
//! use goheap_gc::{Gc, Trace};
//!
//! #[derive(Trace)]
//! struct Node {
//!     value: i64,
//!     children: Vec<Gc<Node>>,
//!     #[trace(skip)] // holds no `Gc`: not visited
//!     name: std::rc::Rc<str>,
//! }
//!
//! #[derive(Trace)]
//! #[trace(no_gc)] // holds no `Gc` at all: may implement `Drop`
//! struct Buffer {
//!     bytes: Box<[u8]>,
//! }
//!
//! impl Drop for Buffer {
//!     fn drop(&mut self) {}
//! }
//! ```
//!
//! * `#[trace(skip)]` on a field: the field is not visited and does not
//!   count against the type's `NO_GC`. It must hold no `Gc`; if it does,
//!   those handles stay roots (a leak, not unsafety). Use it for a field
//!   whose type is not `Trace` but holds no handle (an `Rc<str>`, a raw
//!   pointer to foreign memory, a `&'a T`).
//! * `#[trace(no_gc)]` on the type: asserts that it holds no `Gc` (each
//!   field not skipped has [`Trace::NO_GC`]), checked at compile time for
//!   field types that name no generic parameter and when the impl is used
//!   for the others; `trace` then visits nothing, `NO_GC` is true (the
//!   collector allocates such objects in noscan spans), and the type may
//!   implement `Drop`.
//! * Recursive types: a field whose type names the type itself (or `Self`),
//!   like `kids: Vec<Tree>`, counts as possibly holding `Gc` (the type is
//!   not `NO_GC` unless it says `#[trace(no_gc)]`), because asking its
//!   type's `NO_GC` would ask the type's own again, a const-evaluation
//!   cycle. The derive cannot see recursion through other types
//!   (`Expr` holds `Vec<Stmt>`, `Stmt` holds `Box<Expr>`): that shows as
//!   a "cycle detected" error naming `NO_GC`, and `#[trace(recursive)]` on
//!   one field of the cycle (`Vec<Stmt>`) does the same for it. The field is
//!   still traced.
//! * A type that may hold `Gc` handles must not implement `Drop`: when a
//!   dead object is dropped, the objects its handles reach may be dead too
//!   and already freed, and `drop` could reach them. Without `no_gc`, the
//!   derive makes `impl Drop` a compile error (a conflicting impl of
//!   `__private::TypesHoldingGcMustNotImplementDrop__UseNoGcOrRemoveDrop`).
//!
//! The derive bounds each type parameter by `Trace` and keeps the type's
//! where clause. A type with lifetimes may derive `Trace`, but `Gc::new`
//! takes only `'static` values. Unions cannot derive it.
//!
//! Trait objects: `Trace` has a const, so a trait whose objects go in the
//! heap takes [`DynTrace`] as a supertrait and names its object type in
//! [`impl_trace_for_dyn!`]; then `Box<dyn Shape>` is `Trace`.
//!
//! ## Std types
//!
//! `Trace` is implemented, with `NO_GC` true, for the primitive types,
//! `str`, `&'static str`, `String`, the `NonZero*` integers, `Duration`,
//! `Instant`, `SystemTime`, `Path`/`PathBuf`, `OsStr`/`OsString`,
//! `CStr`/`CString`, `cmp::Ordering`, the integer and bool atomics and
//! `PhantomData<T>` (any `T`). Containers are `Trace` when their elements
//! are, and `NO_GC` when their elements are: tuples up to 12, `[T; N]`,
//! `[T]`, `Option`, `Result`, `Box<T>` (`T: ?Sized`), `Vec`, `VecDeque`,
//! `LinkedList`, `BinaryHeap`, `HashMap` and `HashSet` (any hasher),
//! `BTreeMap`, `BTreeSet`, `Reverse`, `Wrapping`, and `OnceCell` (it can be
//! emptied only through `&mut`). `Cell<T>` is `Trace` for a `Copy` `T`,
//! which cannot hold a `Gc`. [`Gc<T>`] itself is `Trace` and never
//! `NO_GC`.
//!
//! Not `Trace`, on purpose, because each can move a handle out of a GC
//! object through `&` (which would leave an unrooted handle on the stack,
//! freed while in use) or does not own what it reaches: `RefCell`,
//! `Mutex`, `RwLock` (use `GcRefCell`), `Rc`, `Arc`, `Weak` (use `Gc`),
//! `Cell<T>` of a non-`Copy` `T`, raw pointers, `AtomicPtr` and references
//! other than `&'static str` (use `#[trace(skip)]` for a field that holds
//! no handle).

// The derive names `::goheap_gc`, also inside this crate (its tests).
extern crate self as goheap_gc;

mod cell;
mod collector;
mod gc;
mod impls;
mod mutator;
mod trace;
mod visitor;

#[cfg(test)]
mod tests;

pub use cell::{write_barrier, BorrowError, GcMutex, GcRef, GcRefCell, GcRefMut};
pub use collector::{collect, free_os_memory, set_gc_percent, stats, GcStats, MIN_HEAP_GOAL};
pub use gc::Gc;
/// Turns the tiny allocator on or off for allocations from now on (it is on
/// by default); returns the previous setting. For measuring what it saves.
pub use goheap::gc_support::set_tiny_allocator;
pub use trace::{DynTrace, Trace};
pub use visitor::Visitor;

/// Derives [`Trace`](trait@Trace): see the crate documentation, section
/// "Tracing".
pub use goheap_gc_derive::Trace;

/// What `#[derive(Trace)]` expands to uses; not part of the API.
#[doc(hidden)]
pub mod __private {
    /// Implemented by `#[derive(Trace)]` for every type not marked
    /// `#[trace(no_gc)]`, and by every type that implements `Drop`: a type
    /// that derives `Trace` without `no_gc` and implements `Drop` gets a
    /// "conflicting implementations" error naming this trait. Its name is
    /// the explanation: a type that may hold `Gc` handles must not implement
    /// `Drop` (a dead object's `drop` could reach dead objects); remove the
    /// `Drop` impl, or mark the type `#[trace(no_gc)]` if it holds no `Gc`.
    #[allow(non_camel_case_types, reason = "the name is the error message")]
    pub trait TypesHoldingGcMustNotImplementDrop__UseNoGcOrRemoveDrop {}

    #[allow(drop_bounds, reason = "this impl exists to conflict with `Drop` impls")]
    impl<T: ?Sized + Drop> TypesHoldingGcMustNotImplementDrop__UseNoGcOrRemoveDrop for T {}
}
