//! The goheap workloads under jemalloc (the `tikv-jemallocator` crate).

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    goheap_bench::main("jemalloc", goheap_bench::no_extra)
}
