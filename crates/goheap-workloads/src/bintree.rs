//! The benchmarks-game binary-trees program.

use crate::Checksum;

struct Node {
    left: Option<Box<Node>>,
    right: Option<Box<Node>>,
}

fn build(depth: u32) -> Box<Node> {
    if depth == 0 {
        Box::new(Node {
            left: None,
            right: None,
        })
    } else {
        Box::new(Node {
            left: Some(build(depth - 1)),
            right: Some(build(depth - 1)),
        })
    }
}

fn check(n: &Node) -> u64 {
    1 + n.left.as_deref().map_or(0, check) + n.right.as_deref().map_or(0, check)
}

/// binary-trees with maximum depth `17 + log2(scale)` (17 at scale 1):
/// a stretch tree of depth max+1, a long-lived tree of depth max kept for
/// the whole run, and for every even depth d from 4 to max,
/// `2^(max - d + 4)` trees of depth d built, walked and freed. Nodes are
/// 16-byte `Box`es allocated in depth-first order and freed in the same
/// order: the smallest size class at full speed.
pub(crate) fn bintree(scale: f64) -> u64 {
    const MIN_DEPTH: u32 = 4;
    let max_depth = (17.0 + scale.log2()).round().clamp(6.0, 24.0) as u32;
    let mut ck = Checksum::new();
    ck.add(check(&build(max_depth + 1)));
    let long_lived = build(max_depth);
    let mut depth = MIN_DEPTH;
    while depth <= max_depth {
        let iterations = 1u64 << (max_depth - depth + MIN_DEPTH);
        let mut nodes = 0;
        for _ in 0..iterations {
            nodes += check(&build(depth));
        }
        ck.add(nodes);
        depth += 2;
    }
    ck.add(check(&long_lived));
    ck.value()
}
