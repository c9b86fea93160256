//! The goheap workloads under the system allocator (glibc malloc on Linux).

#[global_allocator]
static GLOBAL: std::alloc::System = std::alloc::System;

fn main() -> std::process::ExitCode {
    goheap_bench::main("system", goheap_bench::no_extra)
}
