// `Gc::new` takes only `Send` values: a dead object's `Drop` runs on
// whichever thread collects.
use std::rc::Rc;

use goheap_gc::{Gc, Trace};

#[derive(Trace)]
struct Local {
    #[trace(skip)]
    shared: Rc<i32>,
}

fn main() {
    let _ = Gc::new(Local { shared: Rc::new(1) });
}
