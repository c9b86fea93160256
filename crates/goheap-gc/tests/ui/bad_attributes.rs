// Misplaced and unknown `trace` attributes.
use goheap_gc::Trace;

#[derive(Trace)]
#[trace(skip)]
struct SkipOnType {
    a: u8,
}

#[derive(Trace)]
struct NoGcOnField {
    #[trace(no_gc)]
    a: u8,
}

#[derive(Trace)]
struct Unknown {
    #[trace(ignore)]
    a: u8,
}

#[derive(Trace)]
#[trace(no_gc, no_gc)]
struct Duplicate {
    a: u8,
}

#[derive(Trace)]
enum OnVariant {
    #[trace(skip)]
    A(u8),
}

#[derive(Trace)]
struct SkipAndRecursive {
    #[trace(skip, recursive)]
    a: Vec<SkipAndRecursive>,
}

fn main() {}
