// References other than `&'static str` are not `Trace`: a borrowed field
// that holds no `Gc` needs `#[trace(skip)]`.
use goheap_gc::Trace;

#[derive(Trace)]
struct View<'a> {
    name: &'a str,
    data: &'a [u8],
}

fn main() {}
