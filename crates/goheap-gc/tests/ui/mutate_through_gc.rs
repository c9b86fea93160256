// Fields of a collected object change only through `GcRefCell` or `Cell`.
use goheap_gc::{Gc, Trace};

#[derive(Trace)]
struct Node {
    next: Option<Gc<Node>>,
}

fn main() {
    let a = Gc::new(Node { next: None });
    let b = Gc::new(Node { next: None });
    a.next = Some(b);
}
