// A `Gc<T>` is `Send` only when `T` is `Send + Sync`.
use std::rc::Rc;

use goheap_gc::{Gc, Trace};

#[derive(Trace)]
struct Local {
    #[trace(skip)]
    shared: Rc<i32>,
}

fn main() {
    let gc = Gc::new(Local { shared: Rc::new(1) });
    std::thread::spawn(move || {
        let _ = &gc.shared;
    });
}
