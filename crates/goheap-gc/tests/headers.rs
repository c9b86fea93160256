//! Small objects that need their type's information go in typed span
//! classes, without a header; once every typed class is bound they carry a
//! header instead. This binary turns typed classes off before its first
//! allocation, so every such object here takes the header path: the same
//! graph checks as the typed path gets elsewhere.

use std::sync::atomic::{AtomicUsize, Ordering};

use goheap_gc::{Gc, GcRefCell, Trace};

static DROPS: AtomicUsize = AtomicUsize::new(0);

#[derive(Trace)]
#[trace(no_gc)]
struct Counted(u32);

impl Drop for Counted {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Trace)]
struct Node {
    id: Counted,
    kids: GcRefCell<Vec<Gc<Node>>>,
}

fn node(i: u32) -> Gc<Node> {
    Gc::new(Node {
        id: Counted(i),
        kids: GcRefCell::new(Vec::new()),
    })
}

#[derive(Trace)]
struct Pair {
    a: Option<Gc<Pair>>,
    b: Option<Gc<Pair>>,
}

#[test]
fn objects_with_headers_trace_drop_and_die() {
    goheap::gc_support::set_typed_classes(false);
    // With a header, a 16-byte `Pair` takes a 24-byte slot.
    let pairs: Vec<Gc<Pair>> = (0..64)
        .map(|_| Gc::new(Pair { a: None, b: None }))
        .collect();
    let spaced = pairs
        .windows(2)
        .filter(|w| Gc::as_ptr(&w[1]) as usize - Gc::as_ptr(&w[0]) as usize == 24)
        .count();
    assert!(spaced >= 60, "{spaced} of 63 pairs 24 bytes apart");
    drop(pairs);

    let root = node(0);
    for i in 1..1000 {
        let n = node(i);
        if i % 3 == 0 {
            n.kids.borrow_mut().push(n.clone()); // a self-loop, dropped
        } else {
            root.kids.borrow_mut().push(n);
        }
    }
    goheap_gc::collect();
    assert_eq!(DROPS.load(Ordering::Relaxed), 333);
    let ids: u32 = root.kids.borrow().iter().map(|k| k.id.0).sum();
    assert_eq!(ids, (1..1000).filter(|i| i % 3 != 0).sum::<u32>());
    drop(root);
    goheap_gc::collect();
    assert_eq!(DROPS.load(Ordering::Relaxed), 1000);
}
