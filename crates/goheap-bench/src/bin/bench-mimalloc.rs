//! The goheap workloads under mimalloc (the `mimalloc` crate, default
//! features: mimalloc 3.x).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    goheap_bench::main("mimalloc", goheap_bench::no_extra)
}
