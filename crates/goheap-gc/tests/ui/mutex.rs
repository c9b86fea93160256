// `Mutex` is not `Trace`: through `&` it could move a handle out of the heap
// uncounted. Use `GcRefCell`.
use std::sync::Mutex;

use goheap_gc::Gc;

fn main() {
    let _ = Gc::new(Mutex::new(Gc::new(1_i32)));
}
