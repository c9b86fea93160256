// Unions cannot derive `Trace`.
use goheap_gc::Trace;

#[derive(Trace)]
union Bits {
    int: u32,
    float: f32,
}

fn main() {}
