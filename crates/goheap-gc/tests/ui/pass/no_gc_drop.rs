// A `#[trace(no_gc)]` type may implement `Drop`.
use goheap_gc::{Gc, Trace};

#[derive(Trace)]
#[trace(no_gc)]
struct Counter {
    hits: u64,
    misses: i32,
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.hits += 1;
    }
}

#[derive(Trace)]
#[trace(no_gc)]
struct GenericCounter<T> {
    value: T,
}

impl<T> Drop for GenericCounter<T> {
    fn drop(&mut self) {}
}

fn main() {
    assert!(<Counter as Trace>::NO_GC);
    let gc = Gc::new(Counter { hits: 1, misses: -1 });
    assert_eq!(gc.hits as i64 + gc.misses as i64, 0);
    let generic = GenericCounter { value: 3_u8 };
    assert!(<GenericCounter<u8> as Trace>::NO_GC);
    assert_eq!(generic.value, 3);
}
