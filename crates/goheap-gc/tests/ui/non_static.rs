// A type with lifetimes may derive `Trace`, but `Gc::new` takes only
// `'static` values.
use goheap_gc::{Gc, Trace};

#[derive(Trace)]
struct Borrowing<'a> {
    #[trace(skip)]
    value: &'a i32,
}

fn main() {
    let local = 5;
    let gc = Gc::new(Borrowing { value: &local });
    let _ = gc.value;
}
