// `RefCell` is not `Trace`: use `GcRefCell`.
use std::cell::RefCell;

use goheap_gc::Gc;

fn main() {
    let _ = Gc::new(RefCell::new(Gc::new(1_i32)));
}
