// Only `&'static str` is `Trace`, not `&'a str`.
use goheap_gc::Trace;

#[derive(Trace)]
struct Name<'a> {
    name: &'a str,
}

fn main() {}
