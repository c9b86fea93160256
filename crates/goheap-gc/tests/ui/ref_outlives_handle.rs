// A reference into an object lives no longer than the handle it came from:
// once the last handle is gone the object may be freed.
use goheap_gc::Gc;

fn main() {
    let r: &i32 = {
        let g = Gc::new(1_i32);
        &*g
    };
    println!("{r}");
}
