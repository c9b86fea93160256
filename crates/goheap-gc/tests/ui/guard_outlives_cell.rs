// A `GcRefCell` guard lives no longer than the handle the cell was reached
// through.
use goheap_gc::{Gc, GcRefCell};

fn main() {
    let guard = {
        let cell = Gc::new(GcRefCell::new(Vec::<Gc<i32>>::new()));
        cell.borrow_mut()
    };
    drop(guard);
}
