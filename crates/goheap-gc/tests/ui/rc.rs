// `Rc` is not `Trace`: use `Gc`.
use std::rc::Rc;

use goheap_gc::Gc;

fn main() {
    let _ = Gc::new(Rc::new(1_i32));
}
