// A recursive field of a generic `#[trace(no_gc)]` type is checked in
// `trace`, once it is used with concrete types.
use goheap_gc::{Gc, Trace};

#[derive(Trace)]
#[trace(no_gc)]
struct GenericLiar<T> {
    value: T,
    kids: Vec<(Self, Gc<u8>)>,
}

fn main() {
    let liar = GenericLiar::<u8> {
        value: 1,
        kids: Vec::new(),
    };
    let _ = (liar.value, liar.kids);
    let _: fn(&GenericLiar<u8>, &mut goheap_gc::Visitor<'_>) = Trace::trace;
}
