// A trait object type is `Trace` only once `impl_trace_for_dyn!` names it.
use goheap_gc::{DynTrace, Gc};

trait Shape: DynTrace {}

fn main() {
    let _ = Gc::new(Vec::<Box<dyn Shape>>::new());
}
