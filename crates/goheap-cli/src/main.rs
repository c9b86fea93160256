//! `goheap`: the project's command. `goheap bench` compares goheap with the
//! system allocator, mimalloc and jemalloc; `goheap sizeclasses` prints the
//! size-class table. `goheap help` describes both.

mod args;
mod bench;
mod proc;
mod report;
mod sizeclasses;
mod svg;

use std::process::ExitCode;

use args::Cmd;

const HELP: &str = "\
goheap: Go's memory allocator as a Rust global allocator

usage: goheap <command> [options]

commands:
  bench         compare goheap with the system allocator, mimalloc and
                jemalloc on every workload (see `goheap help bench`)
  sizeclasses   print the size-class table: class, bytes/obj, bytes/span,
                objects, tail waste, max waste
  help [CMD]    this text, or the help of CMD

From the source tree: cargo run --release -p goheap-cli -- <command>
";

const HELP_BENCH: &str = "\
usage: goheap bench [--runs N] [--filter SUBSTR] [--quick] [--scale X]
                    [--no-build] [--timeout SECS]

Builds the benchmark binaries (cargo build --release -p goheap-bench; uses
$CARGO if set), then runs every workload under every allocator, each run in
its own process, interleaved: round 1 runs goheap, system, mimalloc and
jemalloc on each workload in turn, then round 2, and so on. Each run's wall
time, user+sys CPU time and peak RSS (ru_maxrss from wait4) are recorded,
and every run of a workload must print the same checksum.

Prints goheap's median time and peak RSS per workload with its ratios to
each peer (below 1.00: goheap is faster or smaller) and their geometric
means, the same for CPU time, every allocator's medians, and a bar chart of
time relative to mimalloc. Writes to <target>/goheap-bench/:
  results.csv   every run      report.svg   the charts      report.md   the tables
(<target> is $CARGO_TARGET_DIR or the workspace's target directory.)

options:
  --runs N          rounds (default 5)
  --filter SUBSTR   only the workloads whose name contains SUBSTR
  --quick           smaller workloads (scale 0.1) for a smoke test
  --scale X         workload scale (default 1; 0.1 with --quick)
  --no-build        use the binaries already built
  --timeout SECS    kill a run after SECS seconds (default 120)

Exit status 1 if a run failed or checksums disagree.

workloads:
";

const HELP_SIZECLASSES: &str = "\
usage: goheap sizeclasses

Prints goheap's size classes (Go's): for each class its object size, span
size, objects per span, the tail wasted at the end of a span, and the worst
internal fragmentation (every object one byte above the previous class).
";

fn help(topic: Option<&str>) -> ExitCode {
    match topic {
        None => print!("{HELP}"),
        Some("bench") => {
            print!("{HELP_BENCH}");
            for w in goheap_workloads::WORKLOADS {
                println!("  {:<12}  {}", w.name, w.about);
            }
        }
        Some("sizeclasses") => print!("{HELP_SIZECLASSES}"),
        Some(other) => {
            eprintln!("goheap: no help for {other:?}\n");
            eprint!("{HELP}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match args::parse(&argv) {
        Ok(Cmd::Help(topic)) => help(topic.as_deref()),
        Ok(Cmd::SizeClasses) => {
            print!("{}", sizeclasses::table());
            ExitCode::SUCCESS
        }
        Ok(Cmd::Bench(o)) => bench::run(&o),
        Err(e) => {
            eprintln!("goheap: {e}\n");
            eprint!("{HELP}");
            ExitCode::from(2)
        }
    }
}
