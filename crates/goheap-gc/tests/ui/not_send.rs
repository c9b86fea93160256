// A `Gc<T>` is `Send` only when `T` is `Send + Sync`: a `Cell` is `Send`
// (so it may be in a `Gc`) but not `Sync`.
use std::cell::Cell;

use goheap_gc::Gc;

fn main() {
    let gc = Gc::new(Cell::new(1_i32));
    std::thread::spawn(move || {
        gc.set(2);
    });
}
