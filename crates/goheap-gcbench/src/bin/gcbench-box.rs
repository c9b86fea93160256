//! binary-trees with `Box` nodes and mimalloc as the global allocator: no
//! collector, each tree freed when it goes out of scope (the stats line
//! says 0 cycles).

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

struct Node {
    left: Option<Box<Node>>,
    right: Option<Box<Node>>,
}

fn tree(depth: u32) -> Box<Node> {
    if depth == 0 {
        return Box::new(Node {
            left: None,
            right: None,
        });
    }
    Box::new(Node {
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
        eprintln!("{}", goheap_gcbench::stats_line(Some(0), None));
    }
}
