//! The goheap workloads under goheap.

#[global_allocator]
static GLOBAL: goheap::GoHeap = goheap::GoHeap;

/// goheap's own statistics at exit: show that goheap served the run.
fn stats() -> String {
    let s = goheap::memstats();
    format!(
        "goheap_mallocs={} goheap_frees={} goheap_sys={} goheap_heap_released={}",
        s.mallocs, s.frees, s.sys, s.heap_released
    )
}

fn main() -> std::process::ExitCode {
    goheap_bench::main("goheap", stats)
}
