// A type that may hold `Gc` handles must not implement `Drop`.
use goheap_gc::{Gc, Trace};

#[derive(Trace)]
struct Node {
    next: Option<Gc<Node>>,
}

impl Drop for Node {
    fn drop(&mut self) {}
}

fn main() {}
