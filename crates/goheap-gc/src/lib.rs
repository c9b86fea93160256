//! A garbage-collected heap for Rust on goheap's allocator: [`Gc<T>`]
//! handles to objects that the collector frees once unreachable. It is
//! Go's collected heap: span classes in scan and noscan pairs, the tiny
//! allocator, mark bits per span that become its allocation bits when it is
//! swept, and Go's pacer (`GOGC`, the memory limit). It shares one page
//! heap, one scavenger, one memory limit and one set of statistics with
//! goheap's `malloc`.
//!
//! ```
//! use goheap_gc::{Gc, GcRefCell, Trace};
//!
//! #[derive(Trace)]
//! struct Node {
//!     value: u32,
//!     next: GcRefCell<Option<Gc<Node>>>,
//! }
//!
//! let a = Gc::new(Node { value: 1, next: GcRefCell::new(None) });
//! let b = Gc::new(Node { value: 2, next: GcRefCell::new(Some(a.clone())) });
//! *a.next.borrow_mut() = Some(b.clone()); // a cycle
//! drop((a, b));
//! goheap_gc::collect(); // both freed: unreachable
//! ```
//!
//! # Structures
//!
//! - [`Gc<T>`]: a pointer to the value of an object. The collector needs a
//!   type's information (how to trace it, how to drop it) when the type may
//!   hold handles or has a `Drop`: small objects of such a type go in a
//!   typed span class, bound at first use to that type and size class, so
//!   the span says what its objects are and they carry no header (512
//!   typed classes; after those, and for large objects, a one-word header
//!   points at the information). Objects of other types are bare bytes in
//!   noscan spans (under 16 bytes: tiny blocks).
//! - Mutator (`mutator.rs`): per thread, its root log, its span cache of the
//!   collected heap (goheap's `GcCache`) and the handshake the collector
//!   holds it still with. A registry lists them.
//! - The root table: per object, how many handles to it exist outside the
//!   collected heap, summed from the logs.
//! - [`GcRefCell`] / [`GcMutex`]: interior mutability for objects; a mutable
//!   borrow counts the contents as roots while it lives.
//! - The core's collected heap (`goheap::gc_support`): Go's 136 span
//!   classes with their lists, mark bits, sweep cycles.
//!
//! # Allocating (`Gc::new`)
//!
//! 1. Enter the thread's bracket (two stores and a load of its handshake).
//! 2. A slot from the thread's span of the object's span class (the type's
//!    typed class, found in a per-thread cache; or noscan by
//!    [`Trace::NO_GC`] and `needs_drop`), or a tiny block; a new
//!    span from the central lists, swept first if the last cycle left it
//!    unswept, or from the page heap.
//! 3. Write the value (and the header, if it has one); visit it to take its handles
//!    out of the roots (they are inside the heap now); log `+1` for the new
//!    handle. Leave the bracket.
//! 4. If a new span was taken and the collected heap reached the trigger (or
//!    goheap's memory reached the memory limit), collect.
//!
//! Heap profiles cover `Gc` objects: with goheap's profile rate set
//! ([`goheap::set_profile_rate`], `GOHEAP_PROFILE_RATE`,
//! `GOHEAP_HEAP_PROFILE`), step 2 samples allocations as malloc does (a
//! countdown per thread's cache, the stack recorded), and
//! [`goheap::write_heap_profile`] writes malloc's and the collected heap's
//! samples in one profile. The stacks start at the function calling
//! `Gc::new` (the profile's `drop_frames` names goheap-gc's frames).
//!
//! Cloning a handle logs `+1`, dropping one logs `−1`; an entry that is the
//! inverse of one of the last four cancels it, so building a structure
//! bottom-up leaves the log almost empty.
//!
//! # A collection (`collector.rs`; the world stopped for steps 2–5)
//!
//! 1. Take the collection lock and the registry lock.
//! 2. Raise every mutator's claim and wait until none is inside a `Gc`
//!    operation. Threads outside one run on (computing, or blocked in a
//!    system call): they can only read objects their own counted handles
//!    keep alive.
//! 3. Sum every log into the root table; flush every span cache; finish
//!    the last cycle's sweep.
//! 4. Mark every object with a positive root count, then, popping a work
//!    stack (no recursion), every object reached through its type's
//!    `trace` (from its span, or its header); interior and tiny addresses resolve to their slot through
//!    the page map; large objects have one mark bit.
//! 5. The core ends the mark: every span becomes unswept, spans holding
//!    dead objects with a `Drop` are set aside; the next goal is computed;
//!    the claims drop.
//! 6. The dead objects' `Drop`s run on the collecting thread, the world
//!    running, then their spans are swept. The rest are swept lazily when a
//!    cache next takes them, and by a background sweeper; a span with
//!    nothing marked goes back to the page heap (and the scavenger returns
//!    it to the OS). [`collect`] also sweeps everything before it returns.
//!    Sampled objects found dead leave the heap profile as they are swept
//!    (Go's sweeper freeing their profile specials): the profile's in-use
//!    figures are those of the last sweep.
//!
//! # Roots and their soundness
//!
//! Rust has no stack maps, so the collector cannot find the handles on a
//! thread's stack; instead every handle outside the collected heap is
//! counted, without any shared counter, and the collector sums the counts.
//! The argument that no object is freed while reachable:
//!
//! - **Every handle outside the heap is counted once.** A handle comes into
//!   being only through `Gc::new` or `clone` (`+1`) and ends through `drop`
//!   (`−1`); `Gc` is not `Copy`. When a value moves into the heap
//!   (`Gc::new`) its handles are uncounted by visiting it; a handle can
//!   leave the heap only through `&mut` access to an object's contents,
//!   which only [`GcRefCell::borrow_mut`] (and [`GcMutex::lock`]) give,
//!   and they count the contents as roots until the guard drops, when the
//!   contents (as they are then) are uncounted. `Trace` is an unsafe trait
//!   whose impls visit exactly the handles a value owns, and types that can
//!   move a handle out through `&` (`RefCell`, `Mutex`, `Rc`, `Cell` of a
//!   non-`Copy` type) are not `Trace` (compile-fail tests). With the world
//!   stopped every log is summed, so each count is exact.
//! - **Handles inside the heap are found by tracing.** The collector visits
//!   every reached object through its header; a cell borrowed mutably is
//!   skipped, but its contents are counted as roots.
//! - **Nothing changes under the mark.** Every operation that changes a
//!   count, allocates, or begins or ends a mutable borrow runs inside its
//!   thread's bracket, which the stopped world excludes; a thread outside
//!   every bracket can still read objects (`&T`), never write handles.
//! - **References live no longer than handles.** `Deref` borrows the handle
//!   (compile-fail tests show a `&T` or a cell guard cannot outlive it), so
//!   while a thread uses an object, a counted handle (or one inside an
//!   object reached from a counted one, borrowed through it) keeps it
//!   alive.
//!
//! What the design gives: collection at any allocation, in any thread,
//! with handles anywhere (locals, arguments, `Vec`s and maps on the stack
//! or in other objects, closures); no shared counter on clone or drop; a
//! thread blocked in a system call never holds a collection up. What it
//! costs: a log entry per clone and drop (most cancel in place), a visit
//! of each value put in the heap and of each cell's contents per mutable
//! borrow. Leaks, never unsoundness, come from `mem::forget` of a handle, a
//! leaked guard, or a handle set into a `OnceCell` inside an object (it
//! stays counted).
//!
//! # Drop
//!
//! A dead object's `Drop` runs exactly once, before its slot is reused, on
//! the thread that collected; `Gc::new` therefore takes `T: Send`. No
//! `Drop` can reach a freed object: a type that may hold handles cannot
//! implement `Drop` (the derive makes it a compile error; `#[trace(no_gc)]`
//! types may, but hold no handle), so a drop only ever drops handles,
//! which log nothing while the collector runs drops. Dead objects are all
//! dropped before their spans are swept. A `Drop` that calls `collect`
//! returns at once; one that allocates works. Types whose drop would only
//! drop handles ([`Trace::DROP_ONLY_HANDLES`]) skip it.
//!
//! # Pacing
//!
//! After each cycle the goal is Go's: `marked × (1 + GOGC/100)`, at least
//! 4 MiB × GOGC/100. Go starts a cycle at a trigger between 70 % and 95 %
//! of the way from the marked heap to the goal, placed so that its
//! concurrent mark ends by the goal; a mark that stops the world needs no
//! runway (no mutator allocates during it), so the trigger is at Go's upper
//! bound, 95 %.
//! With a memory limit ([`goheap::set_memory_limit`], `GOHEAP_MEMORY_LIMIT`
//! or the container's), the goal is also at most the limit less every
//! other byte goheap has mapped (the malloc heap, metadata) less Go's 3 %
//! headroom, but never under `marked + max(marked/16, 1 MiB)`, so a limit
//! the live heap alone exceeds does not collect continuously; and a cycle
//! also starts when goheap's memory reaches the limit before the collected
//! heap reaches its goal.
//!
//! | Setting | Meaning |
//! |---|---|
//! | `GOHEAP_GOGC=N` / [`set_gc_percent`] | Go's `GOGC`: a percent, or `off` (no cycle but `collect` and the limit's) |
//! | `GOHEAP_GCTRACE=1` | a line per cycle on stderr, in the shape of Go's `gctrace` |
//!
//! The trace line: `gc N @T s F%: A+B+C ms clock, H0 -> H1 -> L MB, G MB
//! goal, P P`: cycle number, seconds since start, CPU fraction used by the
//! collector so far; stopping the world and sweeping the last cycle, the
//! mark, the drops and sweep after the world restarted; heap at the start,
//! after, marked; the next goal; cores.
//!
//! # Not yet
//!
//! The whole cycle stops the world (bounded pauses, a concurrent marker
//! with its write barrier behind [`write_barrier`], assists, finalizers and
//! weak pointers are the next step); marking is single-threaded.
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
pub use gc::{Gc, Zeroable};
/// Turns the tiny allocator on or off for allocations from now on (it is on
/// by default); returns the previous setting. For measuring what it saves.
pub use goheap::gc_support::set_tiny_allocator;
/// The collector's cycle records, as [`stats`] returns them.
pub use goheap::gc_support::GcCycles;
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
