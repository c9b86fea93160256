// In a recursive `#[trace(no_gc)]` type, the recursive field is checked too
// (in `trace`, so that checking it does not evaluate `NO_GC` again).
use goheap_gc::{Gc, Trace};

#[derive(Trace)]
#[trace(no_gc)]
struct Liar {
    kids: Vec<(Liar, Gc<u8>)>,
}

fn main() {}
