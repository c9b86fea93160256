//! The Benchmarks Game's binary-trees on goheap-gc: a stretch tree of
//! depth N+1, a long-lived tree of depth N, then 2^(N−d+4) trees of depth d
//! for d = 4, 6, …, N, each built bottom-up and checked (its node count),
//! single-threaded. Prints exactly the game's output, so it compares with
//! any other implementation:
//!
//! ```text
//! cargo run --release -p goheap-gc --example binary_trees -- 20
//! ```
//!
//! With `GOHEAP_GCTRACE=1` each collection prints a line to stderr; with
//! `--stats` a summary (cycles, longest pause) follows the output.

use goheap_gc::{Gc, Trace};

#[derive(Trace)]
struct Node {
    left: Option<Gc<Node>>,
    right: Option<Gc<Node>>,
}

fn bottom_up(depth: u32) -> Gc<Node> {
    if depth == 0 {
        return Gc::new(Node {
            left: None,
            right: None,
        });
    }
    Gc::new(Node {
        left: Some(bottom_up(depth - 1)),
        right: Some(bottom_up(depth - 1)),
    })
}

fn check(node: &Node) -> u32 {
    1 + node.left.as_deref().map_or(0, check) + node.right.as_deref().map_or(0, check)
}

fn main() {
    let mut n = 10;
    let mut stats = false;
    for a in std::env::args().skip(1) {
        if a == "--stats" {
            stats = true;
        } else {
            n = a.parse().unwrap_or_else(|_| {
                eprintln!("usage: binary_trees [N] [--stats]   (N: the depth, default 10)");
                std::process::exit(2)
            });
        }
    }
    let min_depth = 4;
    let max_depth = n.max(min_depth + 2);
    let stretch = max_depth + 1;
    println!(
        "stretch tree of depth {stretch}\t check: {}",
        check(&bottom_up(stretch))
    );
    let long_lived = bottom_up(max_depth);
    let mut d = min_depth;
    while d <= max_depth {
        let iterations = 1u32 << (max_depth - d + min_depth);
        let mut sum = 0;
        for _ in 0..iterations {
            sum += check(&bottom_up(d));
        }
        println!("{iterations}\t trees of depth {d}\t check: {sum}");
        d += 2;
    }
    println!(
        "long lived tree of depth {max_depth}\t check: {}",
        check(&long_lived)
    );
    if stats {
        let s = goheap_gc::stats();
        eprintln!(
            "gc cycles: {}  longest pause: {:.3} ms  total pause: {:.3} ms  heap goal: {} KiB",
            s.cycles.num_gc,
            s.cycles.max_pause_ns as f64 / 1e6,
            s.cycles.pause_total_ns as f64 / 1e6,
            s.cycles.next_gc >> 10
        );
    }
}
