// A handle gives `&T` only: a value (or a handle inside it) cannot be moved
// out of the collected heap.
use goheap_gc::Gc;

fn main() {
    let g = Gc::new(vec![Gc::new(1_i32)]);
    let v: Vec<Gc<i32>> = *g;
    drop(v);
}
