// Types that contain each other through other types make `NO_GC` a
// const-evaluation cycle, until one field of the cycle is marked
// `#[trace(recursive)]`.
use goheap_gc::{Gc, Trace};

#[derive(Trace)]
enum Expr {
    Leaf(Gc<i64>),
    Block(Vec<Stmt>),
}

#[derive(Trace)]
enum Stmt {
    Eval(Box<Expr>),
}

fn no_gc<T: Trace>() -> bool {
    T::NO_GC
}

fn main() {
    let _ = no_gc::<Expr>();
}
