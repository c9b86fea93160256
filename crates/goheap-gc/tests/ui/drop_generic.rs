// The no-`Drop` rule holds for generic types too.
use goheap_gc::Trace;

#[derive(Trace)]
struct Wrapper<T> {
    value: T,
}

impl<T> Drop for Wrapper<T> {
    fn drop(&mut self) {}
}

fn main() {}
