//! binary-trees on the `gc` crate (rust-gc): `gc::Gc` nodes, a
//! thread-local mark-and-sweep heap. Its statistics count the collections
//! (feature `unstable-stats`); it does not time them.

// gc_derive 0.5 puts its impls inside a `const _` block.
#![allow(non_local_definitions)]

use gc::{Finalize, Gc, Trace};

#[derive(Trace, Finalize)]
struct Node {
    left: Option<Gc<Node>>,
    right: Option<Gc<Node>>,
}

fn tree(depth: u32) -> Gc<Node> {
    if depth == 0 {
        return Gc::new(Node {
            left: None,
            right: None,
        });
    }
    Gc::new(Node {
        left: Some(tree(depth - 1)),
        right: Some(tree(depth - 1)),
    })
}

fn count(node: &Node) -> u32 {
    1 + node.left.as_deref().map_or(0, count) + node.right.as_deref().map_or(0, count)
}

fn main() {
    let a = goheap_gcbench::args();
    goheap_gcbench::binary_trees(a.depth, tree, |t| count(t));
    if a.stats {
        let cycles = gc::stats().collections_performed as u64;
        eprintln!("{}", goheap_gcbench::stats_line(Some(cycles), None));
    }
}
