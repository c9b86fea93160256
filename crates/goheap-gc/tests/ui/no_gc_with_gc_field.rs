// `#[trace(no_gc)]` on a type with a `Gc` field is rejected at compile time.
use goheap_gc::{Gc, Trace};

#[derive(Trace)]
#[trace(no_gc)]
struct Liar {
    count: u32,
    handle: Vec<Gc<u32>>,
}

// In a generic type, a field whose type names no type parameter is checked
// at compile time too.
#[derive(Trace)]
#[trace(no_gc)]
struct GenericLiar<T> {
    value: T,
    handle: Option<Gc<u8>>,
}

fn main() {}
