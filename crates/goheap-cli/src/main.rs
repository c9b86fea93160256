//! `goheap`: the project's command. `goheap bench` compares goheap with the
//! system allocator, mimalloc and jemalloc; `goheap cbench` compares
//! libgoheap.so with glibc, jemalloc, mimalloc and tcmalloc on C programs
//! under `LD_PRELOAD`; `goheap rss` records RSS over time in a bursty
//! server; `goheap gcbench` compares goheap-gc with other garbage
//! collectors; `goheap sizeclasses` prints the size-class table; `goheap
//! profile` reads a heap profile (pprof format) and prints its top
//! allocation sites and writes a flame graph. `goheap help` describes them.

mod args;
mod bench;
mod cbench;
mod flame;
mod gcbench;
mod pprof;
mod proc;
mod profile;
mod report;
mod rss;
mod run;
mod sizeclasses;
mod svg;
mod symbolize;

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
  gcbench       goheap-gc against Go, the Boehm collector, Rust Box with
                mimalloc, the gc crate and dumpster: binary-trees and
                allocation sizes (see `goheap help gcbench`)
  rss           RSS over time of a bursty server (load, idle, ...) under
                the same four allocators (see `goheap help rss`)
  run [--stats] -- CMD ARGS...
                run a program with libgoheap.so preloaded (see `goheap help run`)
  sizeclasses   print the size-class table: class, bytes/obj, bytes/span,
                objects, tail waste, max waste
  profile FILE  read a heap profile (pprof format, gzipped or not): the top
                allocation sites, symbolized and demangled, and a flame
                graph SVG (see `goheap help profile`)
  help [CMD]    this text, or the help of CMD

From the source tree: cargo run --release -p goheap-cli -- <command>
";

const HELP_BENCH: &str = "\
usage: goheap bench [--runs N] [--filter SUBSTR] [--quick] [--scale X]
                    [--no-build] [--timeout SECS]
                    [--baseline PATH [--baseline-name NAME] [--baseline-env NAME=VALUE]...]

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
  --baseline-env NAME=VALUE
                    set NAME for the baseline's runs only (repeatable); with
                    PATH this build's own file, it measures an option, e.g.
                    --baseline-env GOHEAP_PROFILE_RATE=524288 for the cost
                    of heap profiling

Exit status 1 if a run failed or checksums disagree.

workloads:
";

const HELP_CBENCH: &str = "\
usage: goheap cbench [--runs N] [--filter SUBSTR] [--no-build] [--scale X]
                     [--timeout SECS] [--baseline PATH [--baseline-name NAME] [--baseline-env NAME=VALUE]...]

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
  --baseline-env NAME=VALUE
                    set NAME for the baseline's runs only (repeatable); with
                    PATH this build's own file, it measures an option, e.g.
                    --baseline-env GOHEAP_PROFILE_RATE=524288 for the cost
                    of heap profiling

Exit status 1 if a run failed, a preload did not serve malloc, or
checksums disagree.

workloads:
";

const HELP_GCBENCH: &str = "\
usage: goheap gcbench [--runs N] [--depth N] [--filter SUBSTR] [--no-build]
                      [--timeout SECS]

goheap-gc, the garbage-collected heap, against other collectors. Builds
goheap-gc's binary_trees example (cargo build --release -p goheap-gc
--example binary_trees) and the Rust peers (cargo build --release -p
goheap-gcbench; uses $CARGO if set); with a `go` binary (Go 1.23 from
/usr/lib/go-1.23 first, else the newest /usr/lib/go-*, else go on PATH),
builds the Go programs of crates/goheap-gcbench/go; with the Boehm
collector's headers (libgc-dev), compiles crates/goheap-gcbench/c with
$CC (default cc) -O2 ... -lgc; all into <target>/goheap-bench/gcbench/.
Then runs, each run its own process, interleaved (every implementation once
per benchmark per round, the order rotated every round):

binary-trees  the Benchmarks Game's, single-threaded: a stretch tree of
              depth N+1, a long-lived tree of depth N, 2^(N-d+4) trees of
              depth d for d = 4, 6, ..., N; in goheap-gc, Go, C with the
              Boehm collector, Rust Box with mimalloc (no collector), the
              gc crate and the dumpster crate. Every run must print the
              game's exact output; each prints its collector's cycles and
              longest pause (where it measures them) on stderr.
alloc-SIZE    allocation sizes (Go's BenchmarkAllocationSizes, ported):
              zeroed byte buffers of 8B, 32B, 256B, 1KiB, 10KiB or 1MiB in
              a loop, each left to the collector; goheap-gc's Gc::<[u8;
              N]>::new_zeroed() against Go's make([]byte, n) (the test binary of go test
              -c, run with -test.bench; both loops calibrated to at least
              0.5 s, like -benchtime 0.5s); each size its own process.

Prints, for binary-trees, every implementation's median wall time, CPU
time (user + sys) and peak RSS (ru_maxrss from wait4), its GC cycles and
longest pause, and goheap-gc's ratios to it (below 1.00: goheap-gc is
faster or smaller), then whether goheap-gc meets the project's goal against
Go 1.23 (half its time, at most its peak RSS); for the allocation sizes,
goheap-gc's and Go's median ns per allocation and their ratio; and bar
charts. Writes to <target>/goheap-bench/:
  gcbench.csv   every run      gcbench.svg   the charts      gcbench.md   the tables

A peer whose toolchain or library is missing is skipped (a note says how
to install it), never a failure. scripts/install-bench-deps.sh installs
them all on Debian 12 (bookworm): Go 1.23 from bookworm-backports
(golang-1.23-go; else Debian's golang-go, Go 1.19), libgc-dev and a C
compiler, and the peers of `goheap cbench`.

The full run (depth 20, 5 rounds) takes about 16 minutes on 2 cores, most
of it the gc crate's binary-trees (over 2 minutes a run).

options:
  --runs N          rounds (default 5)
  --depth N         binary-trees' depth, 4 to 25 (default 20)
  --filter SUBSTR   only the benchmarks whose name contains SUBSTR
                    (binary-trees, alloc-8B, alloc-32B, alloc-256B,
                    alloc-1KiB, alloc-10KiB, alloc-1MiB)
  --no-build        use the programs already built
  --timeout SECS    kill a run after SECS seconds (default 600)

Exit status 1 if a run failed or printed the wrong output.

implementations of binary-trees:
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

const HELP_PROFILE: &str = "\
usage: goheap profile FILE [--sample TYPE] [--top N] [--lines]
                      [--svg PATH | --no-svg] [--keep-allocator-frames]

Reads FILE, a heap profile in pprof's format (profile.proto, gzipped or
not): goheap's own, or Go's (runtime/pprof's WriteHeapProfile). Prints,
like `go tool pprof -top`, the totals of every sample type and the top N
functions by the chosen type: flat (samples whose leaf frame is the
function), flat%, sum% (of the rows so far), cum (samples with the
function anywhere in their stack, once per sample) and cum%. Bytes are
shown in B, KiB, MiB, GiB; counts as integers. As in pprof, samples of
no value of the chosen type (for inuse_*, sites whose objects were all
freed) are left out of the table and the flame graph.

Locations that carry only an address (goheap's profiles) are symbolized
from the files of their mappings: the address is converted to the ELF
file's virtual address (through its PT_LOAD program headers) and looked up
in its DWARF, inlined frames included, else its symbol table (.symtab,
else .dynsym): the function symbol whose extent (st_size) holds it, so an
address in a static function of a stripped library, which .dynsym does
not list, is left unsymbolized rather than named after the exported
function before it. Rust names (legacy and v0) are demangled without the
hash, C++ names demangled. An address that cannot be symbolized is shown as
FILE+0xOFFSET, the offset in its mapped file of the start of the function
holding it (from the file's .eh_frame, which stripping keeps), so one
function's call sites are one row; of the address itself with --lines or
without .eh_frame; or 0xADDRESS with no mapping. A file that cannot be
read is a warning, once.

The allocator's own frames at the leaf end of each stack (goheap*, malloc,
calloc, realloc, posix_memalign, aligned_alloc, memalign, operator new*,
__rust_alloc*, __rdl_alloc*, alloc::alloc::*, alloc::raw_vec::*, ...) are
dropped, so the first frame shown is the allocation site in the
program.

Writes a flame graph, a static SVG (tooltips, no script): one rectangle
per stack prefix, its width proportional to the chosen sample type, the
root at the bottom. It goes to FILE with .gz and its extension replaced
by .svg (heap.pb.gz: heap.svg) unless --svg or --no-svg.

options:
  --sample TYPE     the sample type to rank by: inuse_space, inuse_objects,
                    alloc_space, alloc_objects or any type the file has
                    (default inuse_space if present, else the profile's
                    default_sample_type, else its last)
  --top N           list N functions (default 20)
  --lines           one row per source line (function file:line)
  --svg PATH        write the flame graph to PATH
  --no-svg          write no flame graph
  --keep-allocator-frames
                    keep the allocator's frames (see above)

Exit status 1 if FILE cannot be read or is not a valid profile (the
message names the field and byte offset).
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
        Some("gcbench") => {
            print!("{HELP_GCBENCH}");
            for i in &gcbench::IMPLEMENTATIONS {
                println!("  {:<13} {}", i.name, i.about);
            }
        }
        Some("rss") => print!("{HELP_RSS}"),
        Some("run") => {
            run::run(&["--help".to_owned()]);
        }
        Some("sizeclasses") => print!("{HELP_SIZECLASSES}"),
        Some("profile") => print!("{HELP_PROFILE}"),
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
        Ok(Cmd::Gcbench(o)) => gcbench::run(&o),
        Ok(Cmd::Profile(o)) => profile::run(&o),
        Err(e) => {
            eprintln!("goheap: {e}\n");
            eprint!("{HELP}");
            ExitCode::from(2)
        }
    }
}
