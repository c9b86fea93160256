//! `goheap gcbench`: goheap-gc against other garbage collectors (and a
//! heap without one) on two benchmarks, each run its own process, rounds
//! interleaved, medians, as `goheap bench` and `goheap cbench` do:
//!
//! * binary-trees (the Benchmarks Game's rules, single-threaded) in
//!   goheap-gc, Go, C with the Boehm collector, Rust `Box` with mimalloc,
//!   the `gc` crate and the `dumpster` crate; every run must print the
//!   game's exact output, and each prints a stats line (collections,
//!   longest pause) on stderr;
//! * allocation sizes (Go's `BenchmarkAllocationSizes`, ported): zeroed
//!   byte buffers of 8 B to 1 MiB allocated in a timed loop and left to the
//!   collector, goheap-gc against Go, each size its own process.
//!
//! The Go and C programs are built when their toolchain is there; a peer
//! whose toolchain or library is missing is reported as skipped, with the
//! command that installs it.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use crate::args::GcbenchOpts;
use crate::bench::{self, Progress};
use crate::cbench::first_line;
use crate::proc;
use crate::report::{self, median, Lineup, Metric, Record, Summary};
use crate::svg::{self, Panel};

/// The script that installs every peer (Go 1.23, libgc-dev, a C compiler).
pub(crate) const INSTALL_SCRIPT: &str = "scripts/install-bench-deps.sh";

/// How Go 1.23 gets onto Debian 12 (bookworm).
pub(crate) const GO_INSTALL: &str =
    "echo 'deb http://deb.debian.org/debian bookworm-backports main' \
     > /etc/apt/sources.list.d/bookworm-backports.list && apt-get update && \
     apt-get install -t bookworm-backports golang-1.23-go";

/// How the Boehm collector's headers get installed.
pub(crate) const LIBGC_INSTALL: &str = "apt-get install libgc-dev";

/// Where the Go and C sources are, under the workspace root.
const SRC_DIR: &str = "crates/goheap-gcbench";

/// How an implementation's program is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Maker {
    /// goheap-gc's `binary_trees` example.
    GoheapGcExample,
    /// A binary of the goheap-gcbench crate.
    Cargo(&'static str),
    /// Built with `go`.
    Go,
    /// Compiled with `cc … -lgc`.
    Boehm,
}

/// One implementation of binary-trees.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Implementation {
    /// Its name in the tables.
    pub(crate) name: &'static str,
    /// One line on what it is.
    pub(crate) about: &'static str,
    maker: Maker,
}

/// The implementations of binary-trees, in table order; goheap-gc first.
pub(crate) const IMPLEMENTATIONS: [Implementation; 6] = [
    Implementation {
        name: "goheap-gc",
        about: "goheap-gc's binary_trees example: Gc<Node> nodes, #[derive(Trace)] \
                (crates/goheap-gc/examples/binary_trees.rs)",
        maker: Maker::GoheapGcExample,
    },
    Implementation {
        name: "go",
        about: "Go (1.23 preferred), plain struct nodes joined by pointers, one goroutine, \
                GOGC and GOMAXPROCS at their defaults (crates/goheap-gcbench/go/binarytrees)",
        maker: Maker::Go,
    },
    Implementation {
        name: "boehm-gc",
        about: "C, nodes from GC_MALLOC of the Boehm collector (Debian's libgc), one thread, \
                cc -O2 (crates/goheap-gcbench/c/binarytrees_boehm.c)",
        maker: Maker::Boehm,
    },
    Implementation {
        name: "box-mimalloc",
        about: "Rust Box nodes with mimalloc as the global allocator, no collector \
                (crates/goheap-gcbench/src/bin/gcbench-box.rs)",
        maker: Maker::Cargo("gcbench-box"),
    },
    Implementation {
        name: "rust-gc",
        about: "the gc crate: gc::Gc nodes, #[derive(Trace, Finalize)], the system allocator \
                (crates/goheap-gcbench/src/bin/gcbench-rust-gc.rs)",
        maker: Maker::Cargo("gcbench-rust-gc"),
    },
    Implementation {
        name: "dumpster",
        about: "the dumpster crate: dumpster::unsync::Gc nodes, #[derive(Trace)], the system \
                allocator (crates/goheap-gcbench/src/bin/gcbench-dumpster.rs)",
        maker: Maker::Cargo("gcbench-dumpster"),
    },
];

/// The name of the binary-trees benchmark.
pub(crate) const BINARY_TREES: &str = "binary-trees";

/// The allocation sizes: benchmark name, Go's sub-benchmark name, bytes.
pub(crate) const ALLOC_SIZES: [(&str, &str, usize); 6] = [
    ("alloc-8B", "8B", 8),
    ("alloc-32B", "32B", 32),
    ("alloc-256B", "256B", 256),
    ("alloc-1KiB", "1KiB", 1 << 10),
    ("alloc-10KiB", "10KiB", 10 << 10),
    ("alloc-1MiB", "1MiB", 1 << 20),
];

/// Seconds each allocation-size loop runs for (at least), as Go's
/// `-benchtime`.
const BENCH_SECS: f64 = 0.5;

/// The implementations of the allocation sizes.
const ALLOC_IMPLS: [&str; 2] = ["goheap-gc", "go"];

/// Every benchmark name, in run order.
pub(crate) fn benchmark_names() -> Vec<&'static str> {
    std::iter::once(BINARY_TREES)
        .chain(ALLOC_SIZES.iter().map(|s| s.0))
        .collect()
}

/// What binary-trees of depth `depth` prints: the Benchmarks Game's
/// output, worked out from the node counts (a tree of depth d has
/// 2^(d+1) − 1 nodes).
pub(crate) fn expected_output(depth: u32) -> String {
    let (min_depth, max_depth) = (4, depth.max(6));
    let nodes = |d: u32| ((1u64 << (d + 1)) - 1) as u32;
    let mut out = format!(
        "stretch tree of depth {}\t check: {}\n",
        max_depth + 1,
        nodes(max_depth + 1)
    );
    for d in (min_depth..=max_depth).step_by(2) {
        let iterations = 1u32 << (max_depth - d + min_depth);
        let sum = iterations.wrapping_mul(nodes(d));
        let _ = writeln!(out, "{iterations}\t trees of depth {d}\t check: {sum}");
    }
    let _ = writeln!(
        out,
        "long lived tree of depth {max_depth}\t check: {}",
        nodes(max_depth)
    );
    out
}

/// Why `got` is not `want`: the first line that differs.
fn output_difference(got: &str, want: &str) -> Option<String> {
    if got == want {
        return None;
    }
    let (mut g, mut w) = (got.lines(), want.lines());
    for n in 1.. {
        match (g.next(), w.next()) {
            (Some(a), Some(b)) if a == b => continue,
            (a, b) => {
                return Some(format!(
                    "output differs from binary-trees' at line {n}: {:?}, expected {:?}",
                    a.unwrap_or("(end)"),
                    b.unwrap_or("(end)")
                ))
            }
        }
    }
    unreachable!()
}

/// The collector's figures from a `gc cycles: C  longest pause: P ms …`
/// line on stderr: cycles and longest pause in ms, each `None` for `-`;
/// `None` without such a line.
pub(crate) fn parse_stats_line(stderr: &str) -> Option<(Option<u64>, Option<f64>)> {
    let line = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("gc cycles:"))?;
    let (cycles, rest) = line.trim_start().split_once(char::is_whitespace)?;
    let pause = rest.trim_start().strip_prefix("longest pause:")?;
    let pause = pause.split_whitespace().next()?;
    let num = |s: &str| -> Option<Option<f64>> {
        if s == "-" {
            Some(None)
        } else {
            s.parse::<f64>().ok().filter(|x| x.is_finite()).map(Some)
        }
    };
    let cycles = match cycles {
        "-" => None,
        c => Some(c.parse().ok()?),
    };
    Some((cycles, num(pause)?))
}

/// The results of `go test -bench` in `out`: for every line of a
/// sub-benchmark of `BenchmarkAllocationSizes`, its name (without the
/// `-GOMAXPROCS` suffix), iterations and ns/op.
pub(crate) fn parse_go_bench(out: &str) -> Vec<(String, u64, f64)> {
    out.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next()?.strip_prefix("BenchmarkAllocationSizes/")?;
            let iters = f.next()?.parse().ok()?;
            let ns: f64 = f.next()?.parse().ok()?;
            if f.next()? != "ns/op" {
                return None;
            }
            // `8B-2`: the suffix is GOMAXPROCS, absent when it is 1.
            let name = match name.rsplit_once('-') {
                Some((n, procs)) if procs.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => name,
            };
            Some((name.to_string(), iters, ns))
        })
        .collect()
}

/// `key=value` pairs of a result line, as a map-like list.
fn pairs(line: &str) -> Vec<(&str, &str)> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

/// A 64-bit FNV-1a hash of `s`, in hex: the checksum of a run's output.
fn fnv(s: &str) -> String {
    let h = s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{h:016x}")
}

/// A Go toolchain: its `go` and what `go version` says.
#[derive(Debug, Clone)]
struct GoTool {
    path: PathBuf,
    version: String,
}

/// `go version`'s version word (`go1.23.5`) for the `go` at `path`.
fn go_version(path: &Path) -> Option<String> {
    let out = Command::new(path)
        .arg("version")
        .env("GOTOOLCHAIN", "local")
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout);
    s.split_whitespace()
        .find(|w| w.starts_with("go1"))
        .map(str::to_string)
}

/// The `go` to use: Go 1.23 from Debian's backports if installed, else the
/// newest other `/usr/lib/go-1.*`, else `go` on `PATH` (Debian's
/// golang-go, 1.19 on bookworm).
fn find_go() -> Option<GoTool> {
    let mut candidates = vec![PathBuf::from("/usr/lib/go-1.23/bin/go")];
    let mut others: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let v = name.strip_prefix("go-")?;
            let key = v
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            Some((key, e.path().join("bin/go")))
        })
        .collect();
    others.sort();
    candidates.extend(others.into_iter().rev().map(|(_, p)| p));
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("go")));
    }
    candidates
        .into_iter()
        .filter(|p| p.is_file())
        .find_map(|path| {
            let version = go_version(&path)?;
            Some(GoTool { path, version })
        })
}

/// Whether the Boehm collector's header is installed.
fn have_libgc() -> bool {
    ["/usr/include/gc.h", "/usr/include/gc/gc.h"]
        .iter()
        .any(|p| Path::new(p).is_file())
}

/// Builds the Go programs into `out`: `go-binarytrees` and the test binary
/// `go-allocsizes.test` (`go test -c`).
fn build_go(go: &GoTool, src: &Path, out: &Path) -> Result<(), String> {
    eprintln!(
        "goheap gcbench: building the Go programs with {} ({})",
        go.path.display(),
        go.version
    );
    let steps: [&[&str]; 2] = [
        &["build", "-o", "BIN/go-binarytrees", "./binarytrees"],
        &["test", "-c", "-o", "BIN/go-allocsizes.test", "./allocsizes"],
    ];
    for args in steps {
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("BIN", &out.to_string_lossy()))
            .collect();
        let status = Command::new(&go.path)
            .args(&args)
            .current_dir(src)
            // Offline, with the installed toolchain; its build cache in
            // the target directory.
            .env("GOTOOLCHAIN", "local")
            .env("GOPROXY", "off")
            .env("GOFLAGS", "")
            .env("GOCACHE", out.join("go-cache"))
            .status()
            .map_err(|e| format!("cannot run {}: {e}", go.path.display()))?;
        if !status.success() {
            return Err(format!("go {} failed ({status})", args.join(" ")));
        }
    }
    Ok(())
}

/// Compiles the Boehm program into `out/boehm-binarytrees` with `$CC`
/// (default `cc`) `-O2`.
fn build_boehm(src: &Path, out: &Path) -> Result<(), String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    eprintln!("goheap gcbench: compiling the Boehm program: {cc} -O2 … -lgc");
    let status = Command::new(&cc)
        .args(["-O2", "-Wall", "-Wextra", "-o"])
        .arg(out.join("boehm-binarytrees"))
        .arg(src.join("c/binarytrees_boehm.c"))
        .arg("-lgc")
        .status()
        .map_err(|e| format!("cannot run {cc}: {e}"))?;
    if !status.success() {
        return Err(format!("{cc} failed on binarytrees_boehm.c ({status})"));
    }
    Ok(())
}

/// A program ready to run, or why not.
#[derive(Debug, Clone)]
enum Ready {
    Yes(PathBuf),
    /// Skipped: why, and how to fix it.
    No(String),
}

/// A program's path if it was built, else why not.
fn built(path: PathBuf, hint: &str) -> Ready {
    if path.is_file() {
        Ready::Yes(path)
    } else {
        Ready::No(format!("{} not built ({hint})", path.display()))
    }
}

/// The version of `package` in the workspace's `Cargo.lock`.
fn locked_version(root: &Path, package: &str) -> Option<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).ok()?;
    let at = lock.find(&format!("\nname = \"{package}\"\nversion = \""))?;
    let rest = &lock[at..].splitn(3, '\n').nth(2)?;
    Some(
        rest.strip_prefix("version = \"")?
            .split('"')
            .next()?
            .to_string(),
    )
}

/// The median of `key=` (a number) over the successful runs of `alloc` in
/// benchmark `w`.
fn median_extra(records: &[Record], w: &str, alloc: &str, key: &str) -> Option<f64> {
    let mut v: Vec<f64> = records
        .iter()
        .filter(|r| r.workload == w && r.alloc == alloc && r.ok())
        .filter_map(|r| r.extra_value(key)?.parse().ok())
        .collect();
    median(&mut v)
}

/// Runs `goheap gcbench`.
pub(crate) fn run(o: &GcbenchOpts) -> ExitCode {
    match gcbench(o) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("goheap gcbench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One run to make: benchmark, implementation, program and its arguments.
struct Job {
    workload: &'static str,
    alloc: &'static str,
    bin: PathBuf,
    args: Vec<String>,
}

/// The arguments of `alloc`'s run of `workload`, at binary-trees depth
/// `depth`.
fn job_args(workload: &str, alloc: &str, depth: u32) -> Vec<String> {
    if workload == BINARY_TREES {
        return vec![depth.to_string(), "--stats".into()];
    }
    let (_, sub, _) = ALLOC_SIZES
        .iter()
        .find(|s| s.0 == workload)
        .expect("an allocation size");
    if alloc == "go" {
        vec![
            "-test.run".into(),
            "^$".into(),
            "-test.bench".into(),
            format!("^BenchmarkAllocationSizes$/^{sub}$"),
            "-test.benchtime".into(),
            format!("{BENCH_SECS}s"),
        ]
    } else {
        vec![sub.to_string(), BENCH_SECS.to_string()]
    }
}

/// Checks run `r` of `workload` and fills in its checksum and extra
/// figures; sets its failure if its output is wrong.
fn check(r: &mut Record, expected: &str) {
    if !r.ok() {
        return;
    }
    let why = if r.workload == BINARY_TREES {
        r.checksum = Some(fnv(&r.m.stdout));
        match (
            output_difference(&r.m.stdout, expected),
            parse_stats_line(&r.m.stderr),
        ) {
            (Some(d), _) => Some(d),
            (None, None) => Some("printed no `gc cycles: N  longest pause: X ms` line".into()),
            (None, Some((cycles, pause))) => {
                let mut e = Vec::new();
                if let Some(c) = cycles {
                    e.push(format!("gc_cycles={c}"));
                }
                if let Some(p) = pause {
                    e.push(format!("longest_pause_ms={p}"));
                }
                r.extra = e.join(" ");
                None
            }
        }
    } else {
        let sub = ALLOC_SIZES
            .iter()
            .find(|s| s.0 == r.workload)
            .map_or("", |s| s.1);
        if r.alloc == "go" {
            match parse_go_bench(&r.m.stdout).into_iter().find(|b| b.0 == sub) {
                Some((_, iters, ns)) => {
                    r.extra = format!("ns_per_op={ns} iters={iters}");
                    None
                }
                None => Some(format!("printed no BenchmarkAllocationSizes/{sub} result")),
            }
        } else {
            let line = r.m.stdout.lines().find(|l| l.contains("ns_per_op="));
            match line {
                Some(l) => {
                    r.extra = pairs(l)
                        .into_iter()
                        .filter(|(k, _)| *k != "size")
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ");
                    None
                }
                None => Some("printed no ns_per_op= line".into()),
            }
        }
    };
    r.m.failure = why;
}

fn gcbench(o: &GcbenchOpts) -> Result<ExitCode, String> {
    let benches: Vec<&'static str> = benchmark_names()
        .into_iter()
        .filter(|n| o.filter.as_deref().is_none_or(|f| n.contains(f)))
        .collect();
    if benches.is_empty() {
        return Err(format!(
            "no benchmark matches {:?}; the benchmarks are: {}",
            o.filter.as_deref().unwrap_or(""),
            benchmark_names().join(", ")
        ));
    }
    let root = bench::find_workspace()?;
    let target = bench::target_dir(&root);
    let out_dir = target.join("goheap-bench");
    let bin_dir = out_dir.join("gcbench");
    let src = root.join(SRC_DIR);
    std::fs::create_dir_all(&bin_dir)
        .map_err(|e| format!("cannot create {}: {e}", bin_dir.display()))?;

    let go = find_go();
    let libgc = have_libgc();
    if !o.no_build {
        bench::cargo_build(
            "gcbench",
            &root,
            &["-p", "goheap-gc", "--example", "binary_trees"],
            "goheap-gc's binary_trees",
        )?;
        bench::cargo_build(
            "gcbench",
            &root,
            &["-p", "goheap-gcbench"],
            "the Rust peers and goheap-gc's allocation loop",
        )?;
        if let Some(go) = &go {
            build_go(go, &src.join("go"), &bin_dir)?;
        }
        if libgc {
            build_boehm(&src, &bin_dir)?;
        }
    }
    let release = target.join("release");
    let no_build_hint = if o.no_build {
        "run without --no-build"
    } else {
        "the build did not make it"
    };
    let go_missing = format!(
        "no go found (looked for /usr/lib/go-1.23/bin/go, /usr/lib/go-*/bin/go and go on PATH); \
         install Go 1.23 with {INSTALL_SCRIPT}, or: {GO_INSTALL}"
    );
    let program = |imp: &Implementation| -> Ready {
        match imp.maker {
            Maker::GoheapGcExample => built(release.join("examples/binary_trees"), no_build_hint),
            Maker::Cargo(bin) => built(release.join(bin), no_build_hint),
            Maker::Go if go.is_none() => Ready::No(go_missing.clone()),
            Maker::Go => built(bin_dir.join("go-binarytrees"), no_build_hint),
            Maker::Boehm if !libgc => Ready::No(format!(
                "the Boehm collector's gc.h is not installed (libgc-dev): {LIBGC_INSTALL}, \
                 or {INSTALL_SCRIPT}"
            )),
            Maker::Boehm => built(bin_dir.join("boehm-binarytrees"), no_build_hint),
        }
    };
    let ready: Vec<(&'static str, Ready)> = IMPLEMENTATIONS
        .iter()
        .map(|i| (i.name, program(i)))
        .collect();
    let alloc_ready: Vec<(&'static str, Ready)> = vec![
        (
            "goheap-gc",
            built(release.join("gcbench-allocsizes"), no_build_hint),
        ),
        (
            "go",
            if go.is_none() {
                Ready::No(go_missing.clone())
            } else {
                built(bin_dir.join("go-allocsizes.test"), no_build_hint)
            },
        ),
    ];
    debug_assert!(alloc_ready.iter().map(|a| a.0).eq(ALLOC_IMPLS));
    // goheap-gc is the subject: without its programs there is nothing to
    // compare.
    let trees = benches.contains(&BINARY_TREES);
    let sizes = benches.iter().any(|b| *b != BINARY_TREES);
    for (wanted, (name, r)) in [(trees, &ready[0]), (sizes, &alloc_ready[0])] {
        if let (true, Ready::No(why)) = (wanted, r) {
            return Err(format!("{name}: {why}"));
        }
    }
    let runnable = |w: &str| -> Vec<(&'static str, PathBuf)> {
        let list = if w == BINARY_TREES {
            &ready
        } else {
            &alloc_ready
        };
        list.iter()
            .filter_map(|(a, r)| match r {
                Ready::Yes(p) => Some((*a, p.clone())),
                Ready::No(_) => None,
            })
            .collect()
    };

    let total: usize = o.runs * benches.iter().map(|w| runnable(w).len()).sum::<usize>();
    let date = proc::utc_now();
    let load_before = bench::load_average();
    eprintln!(
        "goheap gcbench: {} benchmark(s) × their implementations × {} round(s) = {total} runs; \
         binary-trees depth {}",
        benches.len(),
        o.runs,
        o.depth
    );
    let timeout = Duration::from_secs(o.timeout);
    // Load every program once, untimed, so that no first run pays for it.
    for (_, bin) in runnable(BINARY_TREES) {
        let _ = proc::run(&bin, &["4"], timeout);
    }
    for (a, bin) in runnable(ALLOC_SIZES[0].0) {
        let args: &[&str] = if a == "go" {
            &["-test.run", "^$"]
        } else {
            &["8B", "0.001"]
        };
        let _ = proc::run(&bin, args, timeout);
    }

    let expected = expected_output(o.depth);
    let progress = Progress {
        tty: proc::isatty(2),
        total,
        start: Instant::now(),
    };
    let mut records: Vec<Record> = Vec::with_capacity(total);
    for round in 1..=o.runs {
        for &w in &benches {
            let impls = runnable(w);
            for j in 0..impls.len() {
                // Each round starts one implementation later.
                let (a, bin) = &impls[(j + round - 1) % impls.len()];
                let job = Job {
                    workload: w,
                    alloc: a,
                    bin: bin.clone(),
                    args: job_args(w, a, o.depth),
                };
                let i = records.len();
                progress.starting(i, round, o.runs, job.workload, job.alloc);
                let args: Vec<&str> = job.args.iter().map(String::as_str).collect();
                let m = proc::run(&job.bin, &args, timeout)
                    .map_err(|e| format!("cannot run {}: {e}", job.bin.display()))?;
                let mut r = Record {
                    round,
                    workload: job.workload,
                    alloc: job.alloc,
                    scale: 1.0,
                    m,
                    checksum: None,
                    inproc: None,
                    extra: String::new(),
                };
                check(&mut r, &expected);
                progress.finished(i, &r);
                if !r.ok() {
                    for line in r.m.stderr.lines().take(20) {
                        eprintln!("    {line}");
                    }
                }
                records.push(r);
            }
        }
    }
    progress.done();
    let took = progress.start.elapsed();

    // The lineup: every implementation, charts relative to Go when it ran.
    let names: Vec<&'static str> = IMPLEMENTATIONS.iter().map(|i| i.name).collect();
    let go_ran = records.iter().any(|r| r.alloc == "go" && r.ok());
    let lineup = Lineup {
        allocators: Cow::Owned(names.clone()),
        peers: Cow::Owned(names[1..].to_vec()),
        baseline: if go_ran { "go" } else { "goheap-gc" },
        goheap_base: None,
    };
    let summary = Summary::new(lineup, &benches, &records);
    let cmd = bench::command_line();
    let mut text = String::new();
    let _ = write!(
        text,
        "## goheap gcbench\n\n\
         - command: `{cmd}` (from the workspace: `cargo run --release -p goheap-cli -- {}`)\n\
         - date: {date}\n\
         - {} round{}, interleaved (each implementation once per benchmark per round, the order \
         rotated every round), each run its own process; medians; {total} runs in {}\n\
         - machine: {} CPUs, load average {load_before} before, {} after\n",
        cmd.split_once(' ').map_or("", |(_, rest)| rest),
        o.runs,
        if o.runs == 1 { "" } else { "s" },
        bench::mmss(took),
        bench::cpus(),
        bench::load_average(),
    );
    let lock = |p: &str| locked_version(&root, p).unwrap_or_else(|| "?".into());
    let _ = writeln!(
        text,
        "- versions: {}; Go {}; libgc {}; {}; crates mimalloc {}, gc {}, dumpster {}",
        first_line("rustc", &["--version"]).unwrap_or_else(|| "rustc ?".into()),
        go.as_ref().map_or("not installed".into(), |g| format!(
            "{} ({})",
            g.version,
            g.path.display()
        )),
        if libgc {
            first_line("dpkg-query", &["-W", "-f=${Version}", "libgc-dev"])
                .unwrap_or_else(|| "?".into())
        } else {
            "not installed".into()
        },
        first_line(
            &std::env::var("CC").unwrap_or_else(|_| "cc".into()),
            &["--version"]
        )
        .unwrap_or_else(|| "cc ?".into()),
        lock("mimalloc"),
        lock("gc"),
        lock("dumpster"),
    );

    if benches.contains(&BINARY_TREES) {
        text.push_str(&binary_trees_section(
            &summary,
            &records,
            &ready,
            o.depth,
            go.as_ref(),
        ));
    }
    let alloc_benches: Vec<&str> = benches
        .iter()
        .copied()
        .filter(|b| *b != BINARY_TREES)
        .collect();
    if !alloc_benches.is_empty() {
        text.push_str(&alloc_section(
            &summary,
            &records,
            &alloc_ready,
            &alloc_benches,
            o.runs,
        ));
    }
    let problems = summary.problems();
    if !problems.is_empty() {
        text.push('\n');
        text.push_str(&problems);
    }
    text.push_str("\n### The implementations\n\n");
    for i in &IMPLEMENTATIONS {
        let _ = writeln!(text, "- `{}`: {}", i.name, i.about);
    }
    let _ = writeln!(
        text,
        "- allocation sizes: goheap-gc's `Gc::<[u8; N]>::new_zeroed()` (zeroed in place) in a \
         loop, each handle replacing the last in a sink \
         (crates/goheap-gcbench/src/bin/gcbench-allocsizes.rs), against Go's \
         `sink = make([]byte, n)` (crates/goheap-gcbench/go/allocsizes, `go test -c`, run with \
         `-test.bench`); each calibrates its loop to run at least {BENCH_SECS} s, as \
         `-benchtime {BENCH_SECS}s` does\n"
    );

    print!("{text}");
    let chart = text_chart(&summary, &records, &alloc_benches);
    println!("{chart}");

    let subtitle = format!(
        "{cmd} · {date} · {} round(s) · binary-trees depth {} · medians; {} CPUs",
        o.runs,
        o.depth,
        bench::cpus()
    );
    let md = format!("{text}```text\n{chart}```\n");
    let files = vec![
        ("gcbench.csv", report::csv(&records)),
        (
            "gcbench.svg",
            svg_chart(&summary, &records, &alloc_benches, o.depth, &subtitle),
        ),
        ("gcbench.md", md),
    ];
    report::write_outputs("goheap gcbench", &out_dir, files, &summary)
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_string(), |r| format!("{r:.2}"))
}

/// The binary-trees table, the goal, and notes on skipped implementations.
fn binary_trees_section(
    s: &Summary,
    records: &[Record],
    ready: &[(&'static str, Ready)],
    depth: u32,
    go: Option<&GoTool>,
) -> String {
    let w = s
        .workloads
        .iter()
        .position(|&b| b == BINARY_TREES)
        .expect("binary-trees ran");
    let mut out = format!(
        "\n### binary-trees, depth {depth}: medians, and goheap-gc ÷ each (below 1: goheap-gc \
         faster or smaller)\n\n"
    );
    let header: Vec<String> = [
        "implementation",
        "wall",
        "CPU",
        "peak RSS",
        "GC cycles",
        "longest pause",
        "goheap-gc time ÷",
        "goheap-gc CPU ÷",
        "goheap-gc RSS ÷",
    ]
    .map(String::from)
    .to_vec();
    let mut rows = Vec::new();
    for (a, r) in ready {
        let mut row = vec![a.to_string()];
        match (r, s.cell(w, a)) {
            (Ready::No(_), _) => {
                row.push("skipped".into());
                row.extend(std::iter::repeat_n("-".to_string(), 7));
            }
            (Ready::Yes(_), None) => {
                row.push("failed".into());
                row.extend(std::iter::repeat_n("-".to_string(), 7));
            }
            (Ready::Yes(_), Some(c)) => {
                let cycles = median_extra(records, BINARY_TREES, a, "gc_cycles");
                let pause = median_extra(records, BINARY_TREES, a, "longest_pause_ms");
                row.push(format!("{:.3} s", c.wall));
                row.push(format!("{:.3} s", c.cpu));
                row.push(format!("{:.1} MiB", c.rss_mib));
                row.push(cycles.map_or("–".into(), |c| format!("{c:.0}")));
                row.push(pause.map_or("–".into(), |p| format!("{p:.2} ms")));
                for m in [Metric::Wall, Metric::Cpu, Metric::Rss] {
                    row.push(if *a == "goheap-gc" {
                        "-".into()
                    } else {
                        fmt_ratio(s.ratio(w, "goheap-gc", a, m))
                    });
                }
            }
        }
        rows.push(row);
    }
    out.push_str(&report::table(&header, &rows));
    out.push_str(
        "\nGC cycles and longest pause: each program's own count (medians over the runs); Go's \
         longest pause is the longest of the last 256 that MemStats.PauseNs holds (its \
         stop-the-world phases; marking runs beside the program), Boehm's is a whole collection \
         (its start to its end event), goheap-gc's a whole stop-the-world mark; `–`: not \
         measured by that collector.\n",
    );

    out.push_str("\n### The goal: goheap-gc against Go 1.23 on binary-trees\n\n");
    let yes = |b: bool| if b { "yes" } else { "NO" };
    let go_note = match go {
        Some(g) if !g.version.starts_with("go1.23") => {
            format!(" (measured Go is {}, not 1.23)", g.version)
        }
        _ => String::new(),
    };
    match s.ratio(w, "goheap-gc", "go", Metric::Wall) {
        Some(r) => {
            let _ = writeln!(
                out,
                "- time, goheap-gc ÷ Go ≤ 0.50 (twice as fast){go_note}: {} ({r:.2}; CPU {})",
                yes(r <= 0.5),
                fmt_ratio(s.ratio(w, "goheap-gc", "go", Metric::Cpu))
            );
        }
        None => out.push_str("- time, goheap-gc ÷ Go ≤ 0.50 (twice as fast): not measured\n"),
    }
    match s.ratio(w, "goheap-gc", "go", Metric::Rss) {
        Some(r) => {
            let _ = writeln!(
                out,
                "- peak RSS, goheap-gc ÷ Go ≤ 1.00{go_note}: {} ({r:.2})",
                yes(r <= 1.0)
            );
        }
        None => out.push_str("- peak RSS, goheap-gc ÷ Go ≤ 1.00: not measured\n"),
    }
    skipped_notes(&mut out, ready, "");
    out
}

/// A line for every implementation of `ready` that was skipped, after a
/// blank line; `what` follows "skipped".
fn skipped_notes(out: &mut String, ready: &[(&'static str, Ready)], what: &str) {
    let mut first = true;
    for (a, r) in ready {
        if let Ready::No(why) = r {
            if std::mem::take(&mut first) {
                out.push('\n');
            }
            let _ = writeln!(out, "note: {a} skipped{what}: {why}");
        }
    }
}

/// The allocation-sizes table and notes.
fn alloc_section(
    s: &Summary,
    records: &[Record],
    ready: &[(&'static str, Ready)],
    benches: &[&str],
    runs: usize,
) -> String {
    let mut out = format!(
        "\n### allocation sizes: ns per allocation (median of {runs} run{}), goheap-gc ÷ Go \
         (below 1: goheap-gc faster)\n\n",
        if runs == 1 { "" } else { "s" }
    );
    let header: Vec<String> = [
        "size",
        "goheap-gc ns/op",
        "Go ns/op",
        "goheap-gc ÷ Go",
        "goheap-gc GC cycles",
        "goheap-gc peak RSS",
        "Go peak RSS",
    ]
    .map(String::from)
    .to_vec();
    let mut rows = Vec::new();
    let mut ratios = Vec::new();
    for &b in benches {
        let size = ALLOC_SIZES.iter().find(|x| x.0 == b).map_or(b, |x| x.1);
        let ns = |a: &str| median_extra(records, b, a, "ns_per_op");
        let (g, go) = (ns("goheap-gc"), ns("go"));
        let ratio = match (g, go) {
            (Some(g), Some(go)) if go > 0.0 => Some(g / go),
            _ => None,
        };
        ratios.extend(ratio);
        let w = s.workloads.iter().position(|x| *x == b);
        let rss = |a: &str| {
            w.and_then(|w| s.cell(w, a))
                .map_or("-".into(), |c| format!("{:.1} MiB", c.rss_mib))
        };
        let fmt_ns = |x: Option<f64>| x.map_or("-".into(), |x| format!("{x:.1}"));
        rows.push(vec![
            size.to_string(),
            fmt_ns(g),
            fmt_ns(go),
            fmt_ratio(ratio),
            median_extra(records, b, "goheap-gc", "gc_cycles")
                .map_or("-".into(), |c| format!("{c:.0}")),
            rss("goheap-gc"),
            rss("go"),
        ]);
    }
    rows.push(vec![
        "geomean".into(),
        String::new(),
        String::new(),
        fmt_ratio(report::geomean(ratios)),
        String::new(),
        String::new(),
        String::new(),
    ]);
    out.push_str(&report::table(&header, &rows));
    skipped_notes(&mut out, ready, " in the allocation sizes");
    out
}

/// goheap-gc ÷ Go in ns/op for allocation-size benchmark `b`.
fn alloc_ratio(records: &[Record], b: &str, over: &str) -> Option<f64> {
    let g = median_extra(records, b, "goheap-gc", "ns_per_op")?;
    let o = median_extra(records, b, over, "ns_per_op")?;
    (o > 0.0).then(|| g / o)
}

/// The text chart: binary-trees' wall time of each implementation relative
/// to the baseline (Go when it ran), then goheap-gc's ns/op relative to
/// Go's per allocation size.
fn text_chart(s: &Summary, records: &[Record], alloc_benches: &[&str]) -> String {
    let base = s.lineup.baseline;
    let mut out = String::new();
    let name_w = 14;
    let series_w = 12;
    if let Some(w) = s.workloads.iter().position(|&b| b == BINARY_TREES) {
        let _ = writeln!(
            out,
            "binary-trees, wall time relative to {base} (shorter is faster; '|' marks 1.0, bars stop at 3.0)"
        );
        for (i, a) in s.lineup.allocators.iter().enumerate() {
            let label = if i == 0 { BINARY_TREES } else { "" };
            let r = s.ratio(w, a, base, Metric::Wall);
            if r.is_some() {
                report::bar_line(&mut out, (name_w, series_w), label, a, r);
            }
        }
    }
    let go_sizes: Vec<(&str, Option<f64>)> = alloc_benches
        .iter()
        .map(|b| (*b, alloc_ratio(records, b, "go")))
        .collect();
    if go_sizes.iter().any(|(_, r)| r.is_some()) {
        let _ = writeln!(
            out,
            "\nallocation sizes, goheap-gc ns/op relative to go (shorter is faster)"
        );
        for (b, r) in go_sizes {
            let size = ALLOC_SIZES.iter().find(|x| x.0 == b).map_or(b, |x| x.1);
            report::bar_line(&mut out, (name_w, series_w), size, "goheap-gc", r);
        }
    }
    out
}

/// The SVG chart: binary-trees' wall time, CPU time and peak RSS of every
/// implementation relative to the baseline (Go when it ran); then
/// goheap-gc's ns/op relative to Go's per allocation size.
fn svg_chart(
    s: &Summary,
    records: &[Record],
    alloc_benches: &[&str],
    depth: u32,
    subtitle: &str,
) -> String {
    let base = s.lineup.baseline;
    let mut panels = Vec::new();
    let measured: Vec<&'static str> = match s.workloads.iter().position(|&b| b == BINARY_TREES) {
        Some(w) => s
            .lineup
            .allocators
            .iter()
            .copied()
            .filter(|a| s.cell(w, a).is_some())
            .collect(),
        None => Vec::new(),
    };
    if let Some(w) = s.workloads.iter().position(|&b| b == BINARY_TREES) {
        let metrics = [
            ("wall time", Metric::Wall),
            ("CPU time", Metric::Cpu),
            ("peak RSS", Metric::Rss),
        ];
        panels.push(Panel {
            title: format!(
                "binary-trees, depth {depth}, relative to {base} (log scale; below 1: faster, smaller)"
            ),
            groups: metrics.iter().map(|m| m.0.to_string()).collect(),
            series: measured
                .iter()
                .map(|a| (a.to_string(), base.to_string(), svg::color(a)))
                .collect(),
            data: metrics
                .iter()
                .map(|&(_, m)| measured.iter().map(|a| s.ratio(w, a, base, m)).collect())
                .collect(),
            slots: measured.len(),
            last_is_summary: false,
        });
    }
    let ratios: Vec<Option<f64>> = alloc_benches
        .iter()
        .map(|b| alloc_ratio(records, b, "go"))
        .collect();
    if ratios.iter().any(Option::is_some) {
        let mut groups: Vec<String> = alloc_benches
            .iter()
            .map(|b| {
                ALLOC_SIZES
                    .iter()
                    .find(|x| x.0 == *b)
                    .map_or(*b, |x| x.1)
                    .to_string()
            })
            .collect();
        groups.push("geomean".into());
        let mut data: Vec<Vec<Option<f64>>> = ratios.iter().map(|r| vec![*r]).collect();
        data.push(vec![report::geomean(ratios.iter().flatten().copied())]);
        panels.push(Panel {
            title: "allocation sizes, goheap-gc's ns/op relative to go's (log scale)".into(),
            groups,
            series: vec![("goheap-gc".into(), "go".into(), svg::color("goheap-gc"))],
            data,
            slots: 1,
            last_is_summary: true,
        });
    }
    let legend: Vec<(&str, &str)> = measured.iter().map(|&a| (a, svg::color(a))).collect();
    svg::render(
        &format!("goheap gcbench: medians relative to {base}"),
        subtitle,
        &legend,
        &panels,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc::Measured;

    fn rec(w: &'static str, alloc: &'static str, stdout: &str, stderr: &str) -> Record {
        Record {
            round: 1,
            workload: w,
            alloc,
            scale: 1.0,
            m: Measured {
                wall: 1.0,
                user: 1.0,
                maxrss_kib: 1024,
                stdout: stdout.into(),
                stderr: stderr.into(),
                ..Measured::default()
            },
            checksum: None,
            inproc: None,
            extra: String::new(),
        }
    }

    #[test]
    fn the_expected_output() {
        let out = expected_output(10);
        assert_eq!(
            out,
            "stretch tree of depth 11\t check: 4095\n\
             1024\t trees of depth 4\t check: 31744\n\
             256\t trees of depth 6\t check: 32512\n\
             64\t trees of depth 8\t check: 32704\n\
             16\t trees of depth 10\t check: 32752\n\
             long lived tree of depth 10\t check: 2047\n"
        );
        let deep = expected_output(20);
        assert!(deep.starts_with("stretch tree of depth 21\t check: 4194303\n"));
        assert!(deep.contains("\n1048576\t trees of depth 4\t check: 32505856\n"));
        assert!(deep.ends_with("long lived tree of depth 20\t check: 2097151\n"));
        // Below 6, the game uses 6.
        assert_eq!(expected_output(4), expected_output(6));
        assert_eq!(output_difference(&out, &out), None);
        let wrong = out.replace("32512", "32511");
        let d = output_difference(&wrong, &out).unwrap();
        assert!(d.contains("line 3") && d.contains("32511"), "{d}");
        let short = output_difference("stretch tree of depth 11\t check: 4095\n", &out).unwrap();
        assert!(short.contains("line 2: \"(end)\""), "{short}");
    }

    #[test]
    fn parses_stats_lines() {
        let goheap = "gc cycles: 141  longest pause: 49.072 ms  total pause: 3806.416 ms  heap goal: 151100 KiB\n";
        assert_eq!(parse_stats_line(goheap), Some((Some(141), Some(49.072))));
        assert_eq!(
            parse_stats_line("x\ngc cycles: 0  longest pause: - ms\n"),
            Some((Some(0), None))
        );
        assert_eq!(
            parse_stats_line("gc cycles: -  longest pause: - ms"),
            Some((None, None))
        );
        assert_eq!(parse_stats_line("gc cycles: 3"), None);
        assert_eq!(parse_stats_line("gc cycles: x  longest pause: 1 ms"), None);
        assert_eq!(parse_stats_line("nothing here\n"), None);
    }

    #[test]
    fn parses_go_bench_output() {
        let out = "goos: linux\ngoarch: amd64\npkg: goheap-gcbench/allocsizes\n\
                   cpu: AMD EPYC\n\
                   BenchmarkAllocationSizes/8B-2         \t50000000\t        12.34 ns/op\n\
                   BenchmarkAllocationSizes/1MiB-2       \t    2000\t    123456 ns/op\n\
                   BenchmarkAllocationSizes/10KiB        \t  100000\t      1500.5 ns/op\t 10240 B/op\n\
                   BenchmarkOther/8B-2 1 2 ns/op\nPASS\nok  \tgoheap-gcbench/allocsizes\t1.2s\n";
        let got = parse_go_bench(out);
        assert_eq!(
            got,
            vec![
                ("8B".to_string(), 50_000_000, 12.34),
                ("1MiB".to_string(), 2000, 123_456.0),
                ("10KiB".to_string(), 100_000, 1500.5),
            ]
        );
        assert!(parse_go_bench("BenchmarkAllocationSizes/8B-2 --- FAIL").is_empty());
    }

    #[test]
    fn checks_runs() {
        let exp = expected_output(6);
        let mut r = rec(
            BINARY_TREES,
            "go",
            &exp,
            "gc cycles: 7  longest pause: 0.125 ms  total pause: 1 ms\n",
        );
        check(&mut r, &exp);
        assert!(r.ok(), "{:?}", r.m.failure);
        assert_eq!(r.extra, "gc_cycles=7 longest_pause_ms=0.125");
        assert_eq!(r.checksum, Some(fnv(&exp)));
        let mut bad = rec(
            BINARY_TREES,
            "go",
            "nope\n",
            "gc cycles: 7  longest pause: 1 ms",
        );
        check(&mut bad, &exp);
        assert!(bad.m.failure.unwrap().contains("differs"));
        let mut quiet = rec(BINARY_TREES, "go", &exp, "");
        check(&mut quiet, &exp);
        assert!(quiet.m.failure.unwrap().contains("gc cycles"));

        let mut g = rec(
            "alloc-1KiB",
            "go",
            "BenchmarkAllocationSizes/1KiB-2 \t 1000 \t 250.5 ns/op\nPASS\n",
            "",
        );
        check(&mut g, "");
        assert_eq!(g.extra, "ns_per_op=250.5 iters=1000");
        let mut g = rec(
            "alloc-1KiB",
            "go",
            "BenchmarkAllocationSizes/8B-2 1 2 ns/op\n",
            "",
        );
        check(&mut g, "");
        assert!(!g.ok());
        let mut h = rec(
            "alloc-1KiB",
            "goheap-gc",
            "size=1024 iters=9 secs=0.5 ns_per_op=99.5 gc_cycles=3 longest_pause_ms=0.010\n",
            "",
        );
        check(&mut h, "");
        assert_eq!(
            h.extra,
            "iters=9 secs=0.5 ns_per_op=99.5 gc_cycles=3 longest_pause_ms=0.010"
        );
        assert_eq!(
            median_extra(&[h, g], "alloc-1KiB", "goheap-gc", "ns_per_op"),
            Some(99.5)
        );
    }

    #[test]
    fn arguments_of_each_run() {
        assert_eq!(job_args(BINARY_TREES, "rust-gc", 20), ["20", "--stats"]);
        assert_eq!(job_args("alloc-10KiB", "goheap-gc", 20), ["10KiB", "0.5"]);
        let go = job_args("alloc-1MiB", "go", 20);
        assert!(
            go.contains(&"^BenchmarkAllocationSizes$/^1MiB$".to_string()),
            "{go:?}"
        );
        assert!(go.contains(&"0.5s".to_string()), "{go:?}");
        assert_eq!(benchmark_names().len(), 1 + ALLOC_SIZES.len());
    }

    #[test]
    fn sources_exist() {
        let root = bench::workspace_root().expect("tests run inside the workspace");
        for f in [
            "go/go.mod",
            "go/binarytrees/main.go",
            "go/allocsizes/allocsizes_test.go",
            "c/binarytrees_boehm.c",
        ] {
            assert!(root.join(SRC_DIR).join(f).is_file(), "{f}");
        }
        assert!(root.join(INSTALL_SCRIPT).is_file());
        assert!(locked_version(&root, "dumpster").is_some());
    }

    #[test]
    fn tables_and_charts() {
        let exp = expected_output(6);
        let mut v = Vec::new();
        for (a, wall, rss) in [
            ("goheap-gc", 1.0, 2048),
            ("go", 2.0, 1024),
            ("rust-gc", 4.0, 4096),
        ] {
            let mut r = rec(BINARY_TREES, a, &exp, "gc cycles: 3  longest pause: - ms\n");
            r.m.wall = wall;
            r.m.user = wall;
            r.m.maxrss_kib = rss;
            check(&mut r, &exp);
            v.push(r);
        }
        let mut h = rec("alloc-8B", "goheap-gc", "size=8 ns_per_op=10 iters=1\n", "");
        check(&mut h, "");
        let mut g = rec(
            "alloc-8B",
            "go",
            "BenchmarkAllocationSizes/8B-2 5 20 ns/op\n",
            "",
        );
        check(&mut g, "");
        v.extend([h, g]);
        let names: Vec<&'static str> = IMPLEMENTATIONS.iter().map(|i| i.name).collect();
        let lineup = Lineup {
            allocators: Cow::Owned(names.clone()),
            peers: Cow::Owned(names[1..].to_vec()),
            baseline: "go",
            goheap_base: None,
        };
        let s = Summary::new(lineup, &[BINARY_TREES, "alloc-8B"], &v);
        assert!(s.clean(), "{}", s.problems());
        let ready: Vec<(&'static str, Ready)> = IMPLEMENTATIONS
            .iter()
            .map(|i| {
                let r = if i.name == "boehm-gc" {
                    Ready::No("no libgc".into())
                } else {
                    Ready::Yes("/x".into())
                };
                (i.name, r)
            })
            .collect();
        let t = binary_trees_section(&s, &v, &ready, 6, None);
        assert!(t.contains("| boehm-gc "), "{t}");
        assert!(t.contains("skipped"), "{t}");
        assert!(t.contains("note: boehm-gc skipped: no libgc"), "{t}");
        // goheap-gc ÷ go: 0.50 time, 2.00 RSS; ÷ rust-gc 0.25.
        assert!(t.contains("twice as fast): yes (0.50"), "{t}");
        assert!(t.contains("≤ 1.00: NO (2.00)"), "{t}");
        assert!(t.contains("0.25"), "{t}");
        let a = alloc_section(&s, &v, &ready[..2], &["alloc-8B"], 1);
        assert!(a.contains("| 8B "), "{a}");
        assert!(a.contains("0.50"), "{a}");
        let c = text_chart(&s, &v, &["alloc-8B"]);
        assert!(c.contains("rust-gc") && c.contains("8B"), "{c}");
        let svg = svg_chart(&s, &v, &["alloc-8B"], 6, "sub");
        // Panel 1: 3 groups × 3 measured; panel 2: 2 groups × 1; the
        // background and 3 legend swatches.
        assert_eq!(svg.matches("<rect").count(), 3 * 3 + 2 + 1 + 3, "{svg}");
        assert!(svg.contains("<title>peak RSS goheap-gc: 2.00× go</title>"));
    }
}
