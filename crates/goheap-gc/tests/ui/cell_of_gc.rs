// `Cell<T>` is `Trace` only for a `Copy` `T`, and `Gc` is not `Copy`.
use std::cell::Cell;

use goheap_gc::{Gc, Trace};

#[derive(Trace)]
struct Slot {
    current: Cell<Gc<i32>>,
}

fn main() {}
