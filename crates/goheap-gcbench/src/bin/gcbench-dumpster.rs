//! binary-trees on the `dumpster` crate: `dumpster::unsync::Gc` nodes
//! (its single-threaded collector: reference counts, and a scan for cycles
//! among the handles dropped since the last one). The collection condition
//! is dumpster's default, wrapped to count the collections it starts; their
//! length is not measured.

use std::cell::Cell;

use dumpster::unsync::{default_collect_condition, set_collect_condition, CollectInfo, Gc};
use dumpster::Trace;

#[derive(Trace)]
struct Node {
    left: Option<Gc<Node>>,
    right: Option<Gc<Node>>,
}

thread_local! {
    /// Collections the condition started.
    static CYCLES: Cell<u64> = const { Cell::new(0) };
}

/// dumpster's default condition, counting the collections it starts.
fn counting_condition(info: &CollectInfo) -> bool {
    let go = default_collect_condition(info);
    if go {
        CYCLES.with(|c| c.set(c.get() + 1));
    }
    go
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
    set_collect_condition(counting_condition);
    goheap_gcbench::binary_trees(a.depth, tree, |t| count(t));
    if a.stats {
        let cycles = CYCLES.with(Cell::get);
        eprintln!("{}", goheap_gcbench::stats_line(Some(cycles), None));
    }
}
