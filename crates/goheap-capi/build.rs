//! Link flags for `libgoheap.so`.

fn main() {
    // An allocator must never be unloaded: memory it handed out outlives a
    // `dlclose`, and so do the pthread key destructor, fork handlers and
    // exit report it registered. `-z nodelete` makes `dlclose` keep it.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
}
