//! Randomized graph mutation against a reference model of reachability.
//!
//! Nodes of the collected heap hold handles to other nodes (scan objects,
//! through a `GcRefCell`), a tiny noscan payload, sometimes a buffer with a
//! `Drop` or a large object; a `Tracked` field records the node's drop.
//! The model mirrors every operation on plain ids. After every collection:
//! every node the model says is reachable is intact (its contents match
//! its id), and the nodes dropped so far are exactly the ones the model
//! says are unreachable: none early, none late (within the one cycle).
//!
//! `GOHEAP_GC_MODEL_OPS` sets the number of operations (default 200 000;
//! the long run documented in docs/testing.md uses 1 000 000).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use goheap_gc::{Gc, GcRefCell, Trace};

/// Ids of the nodes whose `Drop` ran.
static DROPPED: Mutex<Vec<u64>> = Mutex::new(Vec::new());

#[derive(Trace)]
#[trace(no_gc)]
struct Tracked(u64);

impl Drop for Tracked {
    fn drop(&mut self) {
        DROPPED.lock().unwrap().push(self.0);
    }
}

#[derive(Trace)]
struct Node {
    id: Tracked,
    kids: GcRefCell<Vec<Gc<Node>>>,
    /// A tiny noscan object (shares a 16-byte block).
    tiny: Gc<u16>,
    /// A noscan object with a `Drop` (a malloc'd buffer), sometimes large.
    blob: Option<Gc<Vec<u64>>>,
    /// A scan array inline, so nodes come in several sizes.
    pad: [u64; 3],
}

fn blob_for(id: u64) -> Option<Vec<u64>> {
    match id % 7 {
        0 => Some((0..(id % 50)).map(|i| i ^ id).collect()),
        // Over 32 KiB: a large object of its own.
        3 if id % 5 == 0 => Some((0..5000).map(|i| i * id).collect()),
        _ => None,
    }
}

fn make(id: u64) -> Gc<Node> {
    Gc::new(Node {
        id: Tracked(id),
        kids: GcRefCell::new(Vec::new()),
        tiny: Gc::new(id as u16 ^ 0x5a5a),
        blob: blob_for(id).map(Gc::new),
        pad: [id, !id, id.rotate_left(17)],
    })
}

fn check_node(n: &Node) {
    let id = n.id.0;
    assert_eq!(*n.tiny, id as u16 ^ 0x5a5a, "tiny payload of node {id}");
    assert_eq!(
        n.pad,
        [id, !id, id.rotate_left(17)],
        "inline payload of node {id}"
    );
    assert!(
        n.blob.as_deref().map(|b| b.as_slice()) == blob_for(id).as_deref(),
        "buffer of node {id} changed"
    );
}

/// A xorshift generator: the run is reproducible from its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The reference: each node's kids, by id; the roots, by id.
#[derive(Default)]
struct Model {
    kids: HashMap<u64, Vec<u64>>,
    roots: Vec<u64>,
}

impl Model {
    fn reachable(&self) -> HashSet<u64> {
        let mut seen = HashSet::new();
        let mut work: Vec<u64> = self.roots.clone();
        while let Some(id) = work.pop() {
            if seen.insert(id) {
                work.extend(&self.kids[&id]);
            }
        }
        seen
    }
}

/// A random node reachable from the roots: a short random walk. Returns
/// the handle and the path's ids, to check the walk against the model.
fn pick(rng: &mut Rng, roots: &[Gc<Node>], model: &Model) -> Option<Gc<Node>> {
    if roots.is_empty() {
        return None;
    }
    let r = rng.below(roots.len());
    let mut at = roots[r].clone();
    assert_eq!(at.id.0, model.roots[r]);
    for _ in 0..rng.below(4) {
        let next = {
            let kids = at.kids.borrow();
            let ids: Vec<u64> = kids.iter().map(|k| k.id.0).collect();
            assert_eq!(ids, model.kids[&at.id.0], "kids of node {}", at.id.0);
            if kids.is_empty() {
                break;
            }
            kids[rng.below(kids.len())].clone()
        };
        at = next;
    }
    Some(at)
}

fn verify(roots: &[Gc<Node>], model: &Model, created: u64) {
    let reachable = model.reachable();
    // Walk the real graph from the roots: the same nodes, intact.
    let mut seen = HashSet::new();
    let mut work: Vec<Gc<Node>> = roots.to_vec();
    while let Some(n) = work.pop() {
        if !seen.insert(n.id.0) {
            continue;
        }
        check_node(&n);
        let kids = n.kids.borrow();
        let ids: Vec<u64> = kids.iter().map(|k| k.id.0).collect();
        assert_eq!(ids, model.kids[&n.id.0]);
        work.extend(kids.iter().cloned());
    }
    assert_eq!(seen, reachable);
    let dropped: HashSet<u64> = DROPPED.lock().unwrap().iter().copied().collect();
    assert_eq!(
        dropped.len(),
        DROPPED.lock().unwrap().len(),
        "a node was dropped twice"
    );
    for id in 0..created {
        assert_eq!(
            dropped.contains(&id),
            !reachable.contains(&id),
            "node {id}: reachable {} but dropped {}",
            reachable.contains(&id),
            dropped.contains(&id)
        );
    }
}

#[test]
fn random_graph_mutation_matches_the_model() {
    let ops: u64 = std::env::var("GOHEAP_GC_MODEL_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut model = Model::default();
    let mut roots: Vec<Gc<Node>> = Vec::new();
    let mut next_id = 0u64;
    let mut collections = 0;
    for op in 0..ops {
        match rng.below(100) {
            // A new root node.
            0..=29 => {
                let n = make(next_id);
                model.kids.insert(next_id, Vec::new());
                model.roots.push(next_id);
                roots.push(n);
                next_id += 1;
            }
            // Drop a root.
            30..=49 => {
                if !roots.is_empty() {
                    let i = rng.below(roots.len());
                    roots.swap_remove(i);
                    model.roots.swap_remove(i);
                }
            }
            // Link a to b (b may be a: a self-loop; may close a cycle).
            50..=69 => {
                if let (Some(a), Some(b)) = (
                    pick(&mut rng, &roots, &model),
                    pick(&mut rng, &roots, &model),
                ) {
                    model.kids.get_mut(&a.id.0).unwrap().push(b.id.0);
                    a.kids.borrow_mut().push(b);
                }
            }
            // Unlink a kid.
            70..=79 => {
                if let Some(a) = pick(&mut rng, &roots, &model) {
                    let mut kids = a.kids.borrow_mut();
                    if !kids.is_empty() {
                        let i = rng.below(kids.len());
                        kids.remove(i);
                        model.kids.get_mut(&a.id.0).unwrap().remove(i);
                    }
                }
            }
            // Relink: a kid of a becomes a new node, with the old kid
            // moved under the new one.
            80..=89 => {
                if let Some(a) = pick(&mut rng, &roots, &model) {
                    let n = make(next_id);
                    model.kids.insert(next_id, Vec::new());
                    let mut kids = a.kids.borrow_mut();
                    if kids.is_empty() {
                        kids.push(n);
                        model.kids.get_mut(&a.id.0).unwrap().push(next_id);
                    } else {
                        let i = rng.below(kids.len());
                        let old = std::mem::replace(&mut kids[i], n);
                        let old_id = std::mem::replace(
                            &mut model.kids.get_mut(&a.id.0).unwrap()[i],
                            next_id,
                        );
                        kids[i].kids.borrow_mut().push(old);
                        model.kids.get_mut(&next_id).unwrap().push(old_id);
                    }
                    next_id += 1;
                }
            }
            // Promote a reachable node to a root (a handle kept on the
            // stack only).
            _ => {
                if let Some(a) = pick(&mut rng, &roots, &model) {
                    model.roots.push(a.id.0);
                    roots.push(a);
                }
            }
        }
        // Keep the live graph bounded.
        if roots.len() > 400 {
            let keep = roots.len() - 200;
            roots.drain(..keep);
            model.roots.drain(..keep);
        }
        if op % 20_000 == 19_999 {
            goheap_gc::collect();
            collections += 1;
            verify(&roots, &model, next_id);
        }
    }
    roots.clear();
    model.roots.clear();
    goheap_gc::collect();
    verify(&roots, &model, next_id);
    assert_eq!(DROPPED.lock().unwrap().len() as u64, next_id);
    assert!(collections >= 5);
    // The pacer ran cycles of its own too.
    assert!(goheap_gc::stats().cycles.num_gc > collections);
}
