// In a recursive `#[trace(no_gc)]` type, the recursive field is checked too:
// at compile time when it names no generic parameter nor `Self`, else in
// `trace` (checking it in `NO_GC` would evaluate `NO_GC` again).
use goheap_gc::{Gc, Trace};

#[derive(Trace)]
#[trace(no_gc)]
struct Liar {
    kids: Vec<(Liar, Gc<u8>)>,
}

fn main() {}
