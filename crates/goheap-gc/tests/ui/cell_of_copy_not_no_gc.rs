// `Cell<T>` needs `T::NO_GC`: a `Copy` type whose hand-written `Trace`
// keeps the default `NO_GC = false` is caught once the impl is used.
use std::cell::Cell;

use goheap_gc::{Trace, Visitor};

#[derive(Clone, Copy)]
struct Index(u32);

// SAFETY: `Index` holds no `Gc`; its `NO_GC` is (needlessly) false.
unsafe impl Trace for Index {
    fn trace(&self, _: &mut Visitor<'_>) {}
}

fn no_gc<T: Trace>() -> bool {
    T::NO_GC
}

fn main() {
    let cell = Cell::new(Index(1));
    assert_eq!(cell.get().0, 1);
    let _ = no_gc::<Cell<Index>>();
}
