// `#[trace(no_gc)]` on a generic type is checked once the type parameters
// are known: here `T = Gc<u8>` holds a handle.
use goheap_gc::{Gc, Trace};

#[derive(Trace)]
#[trace(no_gc)]
struct Holder<T> {
    value: T,
}

fn no_gc<T: Trace>() -> bool {
    T::NO_GC
}

fn main() {
    assert!(no_gc::<Holder<u8>>());
    let _ = no_gc::<Holder<Gc<u8>>>();
}
