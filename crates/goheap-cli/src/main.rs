//! `goheap`: the project's command. `goheap bench` compares goheap with the
//! system allocator, mimalloc and jemalloc; `goheap cbench` compares
//! libgoheap.so with glibc, jemalloc, mimalloc and tcmalloc on C programs
//! under `LD_PRELOAD`; `goheap rss` records RSS over time in a bursty
//! server; `goheap sizeclasses` prints the size-class table. `goheap help`
//! describes them.

mod args;
mod bench;
mod cbench;
mod proc;
mod report;
mod rss;
mod run;
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
  cbench        compare libgoheap.so with glibc, jemalloc, mimalloc and
                tcmalloc on C/C++ programs under LD_PRELOAD (see
                `goheap help cbench`)
  rss           RSS over time of a bursty server (load, idle, ...) under
                the same four allocators (see `goheap help rss`)
  run [--stats] -- CMD ARGS...
                run a program with libgoheap.so preloaded (see `goheap help run`)
  sizeclasses   print the size-class table: class, bytes/obj, bytes/span,
                objects, tail waste, max waste
  help [CMD]    this text, or the help of CMD

From the source tree: cargo run --release -p goheap-cli -- <command>
";

const HELP_BENCH: &str = "\
usage: goheap bench [--runs N] [--filter SUBSTR] [--quick] [--scale X]
                    [--no-build] [--timeout SECS]
                    [--baseline PATH [--baseline-name NAME]]

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

Before/after in one run: --baseline PATH, where PATH is the bench-goheap
binary of an earlier build (<its target>/release/bench-goheap), adds that
build as the allocator goheap-base (or NAME), run right after goheap in
every round and checked as goheap is (its checksums must match every other
run's; a note if its goheap_mallocs count nothing). The tables gain
\"÷ goheap-base\" columns (goheap ÷ the earlier build, per workload and
geometric mean), the header names both files, the charts gain goheap
relative to goheap-base, and baseline.csv holds the two builds' medians and
ratios. See \"Comparing with an earlier build\" in
crates/goheap-bench/README.md.

options:
  --runs N          rounds (default 5)
  --filter SUBSTR   only the workloads whose name contains SUBSTR
  --quick           smaller workloads (scale 0.1) for a smoke test
  --scale X         workload scale (default 1; 0.1 with --quick)
  --no-build        use the binaries already built
  --timeout SECS    kill a run after SECS seconds (default 120)
  --baseline PATH   also run PATH, an earlier build's bench-goheap
  --baseline-name NAME
                    its name in the reports (default goheap-base; letters,
                    digits and - _ . +)

Exit status 1 if a run failed or checksums disagree.

workloads:
";

const HELP_CBENCH: &str = "\
usage: goheap cbench [--runs N] [--filter SUBSTR] [--no-build] [--scale X]
                     [--timeout SECS] [--baseline PATH [--baseline-name NAME]]

Builds libgoheap.so (cargo build --release -p goheap-capi; uses $CARGO if
set) and compiles the C and C++ workloads of crates/goheap-bench/c/ with
$CC / $CXX (default cc / c++) -O2 into <target>/goheap-bench/c/, then runs
every workload under glibc's malloc (no preload) and, by LD_PRELOAD, under
goheap and Debian's jemalloc, mimalloc and tcmalloc, each run its own
process, interleaved (the order rotated every round). Records wall time,
user+sys CPU time and peak RSS (ru_maxrss from wait4) of every run.

Every run is checked: the program prints the library that defines malloc
and free in its process (dladdr), which must be the one preloaded
(libc.so.6 for glibc); goheap's runs set GOHEAP_PRINT_STATS=1 and must
report allocations; every run of a workload must print the same checksum.

The peers are /usr/lib/<arch>-linux-gnu/libjemalloc.so.2,
libmimalloc.so.2 and libtcmalloc_minimal.so.4. If one is missing, prints
  apt-get install libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4
and, when running as root with apt-get at hand, runs it (with -y; after
apt-get update if it fails); scripts/install-peers.sh does the same with
sudo. A peer still missing is left out of the runs (\"-\" in the tables).

Prints goheap's median time and peak RSS per workload with its ratios to
glibc, jemalloc, mimalloc and tcmalloc (below 1.00: goheap is faster or
smaller) and their geometric means, the same for CPU time, every
allocator's medians, whether goheap meets the bar of issue 3, and a bar
chart of time relative to glibc. Writes to <target>/goheap-bench/:
  cbench.csv   every run      cbench.svg   the charts      cbench.md   the tables

Before/after in one run: --baseline PATH, where PATH is the libgoheap.so of
an earlier build, adds that build as the allocator goheap-base (or NAME),
preloaded and checked as goheap is (malloc and free must be served by PATH
itself, its GOHEAP_PRINT_STATS=1 line must count allocations, its
checksums must match), run right after goheap in every round. The tables
gain \"÷ goheap-base\" columns (goheap ÷ the earlier build, per workload and
geometric mean), the header names both libraries, the charts gain goheap
relative to goheap-base, and cbench-baseline.csv holds the two builds'
medians and ratios. See \"Comparing with an earlier build\" in
crates/goheap-bench/README.md.

options:
  --runs N          rounds (default 5)
  --filter SUBSTR   only the workloads whose name contains SUBSTR
  --no-build        use libgoheap.so and the programs already built
  --scale X         multiply each workload's work by X (default 1)
  --timeout SECS    kill a run after SECS seconds (default 120)
  --baseline PATH   also run PATH, an earlier build's libgoheap.so
  --baseline-name NAME
                    its name in the reports (default goheap-base; letters,
                    digits and - _ . +)

Exit status 1 if a run failed, a preload did not serve malloc, or
checksums disagree.

workloads:
";

const HELP_RSS: &str = "\
usage: goheap rss [--runs N] [--no-build] [--scale X] [--timeout SECS]

Builds the benchmark binaries as `goheap bench` does, then runs the bursty
workload under goheap, the system allocator, mimalloc and jemalloc, each run
its own process, interleaved. The workload runs 3 cycles of a 1.5 s load
phase (4 threads build up to ~300 MB of small and large blocks, churn them,
then free all but ~8 MB scattered among them) and a 2 s idle phase; a
thread in the workload samples its RSS (/proc/self/statm) and its live
bytes every 10 ms. About 11 s per run.

For the median run of each allocator (by mean RSS over the idle phases)
prints: peak RSS; RSS 1 s into each idle phase (median over the phases) and
its ratio to live + 8 MiB; and how long after each idle start RSS took to
fall to 1.1 × live + 8 MiB (the scavenger's goal for goheap), or \"never\".
Then every run, and a summary. Writes to <target>/goheap-bench/:
  rss.svg   RSS over time, a line per allocator, live bytes dashed, idle shaded
  rss.csv   every sample of every run      rss.md   the tables

options:
  --runs N          runs per allocator (default 3)
  --no-build        use the binaries already built
  --scale X         workload memory and phase lengths (default 1; a smaller
                    scale is a smoke test: idle phases under 1 s have no
                    figure at +1 s)
  --timeout SECS    kill a run after SECS seconds (default 120)

Exit status 1 if a run failed or checksums disagree.
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
        Some("cbench") => {
            print!("{HELP_CBENCH}");
            for w in cbench::C_WORKLOADS {
                println!("  {:<12}  {}", w.name, w.about);
            }
        }
        Some("rss") => print!("{HELP_RSS}"),
        Some("run") => {
            run::run(&["--help".to_owned()]);
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
    // `run` takes the rest of the line as the command, so it parses its own.
    if argv.first().map(String::as_str) == Some("run") {
        return ExitCode::from(run::run(&argv[1..]).clamp(0, 255) as u8);
    }
    match args::parse(&argv) {
        Ok(Cmd::Help(topic)) => help(topic.as_deref()),
        Ok(Cmd::SizeClasses) => {
            print!("{}", sizeclasses::table());
            ExitCode::SUCCESS
        }
        Ok(Cmd::Bench(o)) => bench::run(&o),
        Ok(Cmd::Rss(o)) => rss::run(&o),
        Ok(Cmd::Cbench(o)) => cbench::run(&o),
        Err(e) => {
            eprintln!("goheap: {e}\n");
            eprint!("{HELP}");
            ExitCode::from(2)
        }
    }
}
