//! Marking uses a work stack, not recursion: a long linked list marks (and
//! its nodes die) without overflowing the stack.

use goheap_gc::{Gc, Trace};

#[derive(Trace)]
struct Link {
    value: u64,
    next: Option<Gc<Link>>,
}

fn list(n: u64) -> Gc<Link> {
    let mut head = Gc::new(Link {
        value: 0,
        next: None,
    });
    for i in 1..n {
        head = Gc::new(Link {
            value: i,
            next: Some(head),
        });
    }
    head
}

fn check(head: &Gc<Link>, n: u64) {
    let mut at = Some(head);
    let mut expect = n;
    while let Some(l) = at {
        expect -= 1;
        assert_eq!(l.value, expect);
        at = l.next.as_ref();
    }
    assert_eq!(expect, 0);
}

fn run(n: u64) {
    let head = list(n);
    goheap_gc::collect();
    check(&head, n);
    let marked = goheap_gc::stats().marked_objects;
    assert!(marked >= n, "marked {marked} of {n}");
    drop(head);
    goheap_gc::collect();
    assert!(goheap_gc::stats().marked_objects < n / 10);
}

#[test]
fn a_million_node_list_marks_iteratively() {
    run(1_000_000);
}

/// 10⁸ nodes (3.2 GB): `cargo test --release -p goheap-gc --test deep -- --ignored`.
#[test]
#[ignore = "long: 10^8 nodes, several GB"]
fn a_hundred_million_node_list_marks_iteratively() {
    run(100_000_000);
}
