//! `goheap cbench`: C and C++ programs (`crates/goheap-bench/c/`) run under
//! glibc's malloc and, by `LD_PRELOAD`, under goheap (`libgoheap.so`) and
//! Debian's jemalloc, mimalloc and tcmalloc; each run its own process,
//! rounds interleaved; reported as `goheap bench` reports (medians, ratios,
//! geometric means, a text chart, CSV, SVG, markdown), with a verdict
//! against the bar of issue 3.
//!
//! Every run is checked: its checksum must match the other runs of its
//! workload, and the program names the library that defines `malloc` and
//! `free` in its process (`dladdr` on `dlsym(RTLD_DEFAULT, "malloc")`),
//! which must be the one preloaded (glibc's `libc.so.6` without a preload).
//! goheap's runs also print goheap's statistics at exit
//! (`GOHEAP_PRINT_STATS=1`), which must count allocations.
//!
//! With `--baseline`, an earlier build's `libgoheap.so` runs too, as one
//! more allocator of the lineup, preloaded and checked as goheap is.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use crate::args::CbenchOpts;
use crate::bench::{self, Progress};
use crate::proc::{self, EnvChange};
use crate::report::{self, Lineup, Metric, Record, Summary};
use crate::svg;

/// One C or C++ workload: a program of its own.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CWorkload {
    /// Its name, and that of its binary.
    pub(crate) name: &'static str,
    /// Its source, in `crates/goheap-bench/c/` (`.c` or `.cc`).
    pub(crate) source: &'static str,
    /// One line on what it does.
    pub(crate) about: &'static str,
    /// Libraries it links (`-l` flags) beyond libc and libdl, and the
    /// Debian package that provides them (named when compiling fails).
    pub(crate) libs: &'static [&'static str],
    pub(crate) package: Option<&'static str>,
}

/// The workloads, in report order.
pub(crate) const C_WORKLOADS: [CWorkload; 11] = [
    CWorkload {
        name: "tight",
        source: "tight.c",
        about: "1 thread: batches of 64 blocks of 16-271 B allocated and freed at once, \
                25.6M pairs: the malloc/free fast path alone (glibc-simple)",
        libs: &[],
        package: None,
    },
    CWorkload {
        name: "small",
        source: "small.c",
        about: "1 thread: bignum-style arithmetic, 2.5M steps of ~9 blocks of 8-256 B, \
                nearly all freed within microseconds (cfrac, espresso)",
        libs: &[],
        package: None,
    },
    CWorkload {
        name: "larson",
        source: "larson.c",
        about: "4 threads × 1000 generations: each frees 8-1000 B blocks its exited \
                predecessor allocated, then hands over to a new thread (larsonN)",
        libs: &[],
        package: None,
    },
    CWorkload {
        name: "larson-sized",
        source: "larson-sized.cc",
        about: "larson's server loop in C++ with sized deallocation: operator new(n), \
                operator delete(p, n) (larson-sized)",
        libs: &[],
        package: None,
    },
    CWorkload {
        name: "xmalloc",
        source: "xmalloc.c",
        about: "2 producers allocate 15M objects of 16-128 B, 2 consumers free them: \
                every free remote (xmalloc-testN)",
        libs: &[],
        package: None,
    },
    CWorkload {
        name: "rand16k",
        source: "rand16k.c",
        about: "4 threads churn 1024-block working sets of 8 B-16 KiB (log-uniform), \
                passing 128 blocks on every round (glibc-thread, rptest)",
        libs: &[],
        package: None,
    },
    CWorkload {
        name: "calloc-large",
        source: "calloc-large.c",
        about: "1 thread: 1000 callocs of 256 KiB-16 MiB, 8 live, one byte per page \
                checked and written (malloc-large)",
        libs: &[],
        package: None,
    },
    CWorkload {
        name: "stl",
        source: "stl.cc",
        about: "C++, 1 thread: std::map<std::string, std::string> insert/replace/erase/find \
                and vectors of strings, through operator new/delete",
        libs: &[],
        package: None,
    },
    CWorkload {
        name: "sqlite",
        source: "sqlite.c",
        about: "1 thread, a real library: SQLite (Debian's libsqlite3) on an in-memory database, \
                4 rounds of 40k indexed rows inserted, queried, updated, half deleted, dropped",
        libs: &["-lsqlite3"],
        package: Some("libsqlite3-dev"),
    },
    CWorkload {
        name: "python",
        source: "python.c",
        about: "a real program: CPython with PYTHONMALLOC=malloc, 3 rounds of a 120k-key dict \
                of float lists built, JSON-encoded and parsed back, filtered and sorted",
        libs: &[],
        package: None,
    },
    CWorkload {
        name: "gcc",
        source: "gcc.c",
        about: "a real program: gcc -O2 -S (driver and cc1) on a generated file of 150 \
                functions of loops, switches and calls",
        libs: &[],
        package: None,
    },
];

/// The allocators, in run order (rotated every round).
pub(crate) const C_ALLOCATORS: [&str; 5] = ["goheap", "glibc", "jemalloc", "mimalloc", "tcmalloc"];
const C_PEERS: [&str; 4] = ["glibc", "jemalloc", "mimalloc", "tcmalloc"];

/// `goheap cbench`'s lineup: charts relative to glibc.
pub(crate) const C_LINEUP: Lineup = Lineup {
    allocators: Cow::Borrowed(&C_ALLOCATORS),
    peers: Cow::Borrowed(&C_PEERS),
    baseline: "glibc",
    goheap_base: None,
};

/// The peers preloaded from Debian's packages: allocator, library file (in
/// [`lib_dir`]), package.
pub(crate) const PEER_LIBS: [(&str, &str, &str); 3] = [
    ("jemalloc", "libjemalloc.so.2", "libjemalloc2"),
    ("mimalloc", "libmimalloc.so.2", "libmimalloc2.0"),
    (
        "tcmalloc",
        "libtcmalloc_minimal.so.4",
        "libtcmalloc-minimal4",
    ),
];

/// The command that installs the peers.
pub(crate) const INSTALL_CMD: &str =
    "apt-get install libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 libsqlite3-dev";

/// Where Debian installs shared libraries: `/usr/lib/<arch>-linux-gnu`.
fn lib_dir() -> PathBuf {
    PathBuf::from(format!("/usr/lib/{}-linux-gnu", std::env::consts::ARCH))
}

/// How an allocator gets into a process.
#[derive(Debug, Clone, PartialEq)]
enum Preload {
    /// glibc: no preload.
    None,
    /// This library in `LD_PRELOAD`.
    Lib(PathBuf),
    /// The library is not installed: not measured.
    Missing(PathBuf),
}

/// The first line a command prints, if it runs and succeeds.
pub(crate) fn first_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8_lossy(&out.stdout);
    s.lines()
        .next()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
}

/// Whether this process runs as root.
fn is_root() -> bool {
    // SAFETY: plain syscall, no arguments.
    unsafe { libc::geteuid() == 0 }
}

/// Finds the peers' libraries; if some are missing, says how to install
/// them and, as root with apt-get at hand, installs them.
fn find_peers() -> Vec<(&'static str, Preload)> {
    let dir = lib_dir();
    let look = || -> Vec<(&'static str, Preload)> {
        PEER_LIBS
            .iter()
            .map(|&(a, file, _)| {
                let p = dir.join(file);
                (
                    a,
                    if p.is_file() {
                        Preload::Lib(p)
                    } else {
                        Preload::Missing(p)
                    },
                )
            })
            .collect()
    };
    let found = look();
    let missing: Vec<&str> = found
        .iter()
        .filter(|(_, p)| matches!(p, Preload::Missing(_)))
        .map(|(a, _)| *a)
        .collect();
    if missing.is_empty() {
        return found;
    }
    eprintln!(
        "goheap cbench: not installed: {} (looked in {}). Install the peers with:\n    {INSTALL_CMD}\n\
         (or scripts/install-peers.sh, which uses sudo when not root)",
        missing.join(", "),
        dir.display()
    );
    let apt = Path::new("/usr/bin/apt-get");
    if !(is_root() && apt.is_file()) {
        eprintln!(
            "goheap cbench: not root: going on without {}",
            missing.join(", ")
        );
        return found;
    }
    eprintln!("goheap cbench: running as root: {INSTALL_CMD} -y");
    let install = || {
        let mut c = Command::new(apt);
        c.args(["install", "-y"])
            .args(PEER_LIBS.map(|(_, _, pkg)| pkg))
            .env("DEBIAN_FRONTEND", "noninteractive");
        c.status().is_ok_and(|s| s.success())
    };
    if !install() {
        eprintln!("goheap cbench: that failed; trying again after apt-get update");
        let updated = Command::new(apt)
            .arg("update")
            .status()
            .is_ok_and(|s| s.success());
        if !updated || !install() {
            eprintln!("goheap cbench: could not install the peers; going on without them");
        }
    }
    look()
}

/// Compiles the programs of `workloads` into `out_dir` with `$CC` (default
/// `cc`) or, for C++, `$CXX` (default `c++`): `-O2 -g -pthread`.
fn compile(src_dir: &Path, out_dir: &Path, workloads: &[CWorkload]) -> Result<(), String> {
    std::fs::create_dir_all(out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    eprintln!(
        "goheap cbench: compiling {} program(s) into {}: {cc} / {cxx} -O2 -g -pthread -Wall",
        workloads.len(),
        out_dir.display()
    );
    for w in workloads {
        let compiler = if w.source.ends_with(".cc") { &cxx } else { &cc };
        let status = Command::new(compiler)
            .args(["-O2", "-g", "-pthread", "-Wall", "-Wextra", "-o"])
            .arg(out_dir.join(w.name))
            .arg(src_dir.join(w.source))
            .args(w.libs)
            .arg("-ldl")
            .status()
            .map_err(|e| format!("cannot run {compiler}: {e}"))?;
        if !status.success() {
            let needs = match w.package {
                Some(p) => {
                    format!("; it needs Debian's {p} (scripts/install-peers.sh installs it)")
                }
                None => String::new(),
            };
            return Err(format!(
                "{compiler} failed on {} ({status}){needs}",
                w.source
            ));
        }
    }
    Ok(())
}

/// `N` in goheap's `goheap: stats: mallocs=N …` line on stderr.
fn goheap_mallocs(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|l| {
        l.strip_prefix("goheap: stats: mallocs=")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// Whether the library `got` that a program named (`dladdr`) is `lib`:
/// the same file if `got` is a path that exists, else the same file name
/// (so a build of goheap is not taken for another one of the same name).
fn same_lib(got: &str, lib: &Path) -> bool {
    let got = Path::new(got);
    match (got.canonicalize(), lib.canonicalize()) {
        (Ok(a), Ok(b)) if got.is_absolute() => a == b,
        _ => got.file_name().is_some() && got.file_name() == lib.file_name(),
    }
}

/// Checks that the allocator of run `r` (preloaded from `lib`, or glibc for
/// `None`) served `malloc` and `free`, and, for a build of goheap
/// (`goheap`), that goheap's statistics counted its allocations; returns
/// what is wrong. Adds `goheap_mallocs=N` to a goheap build's record.
fn verify(goheap: bool, lib: Option<&Path>, r: &mut Record) -> Option<String> {
    let libc = Path::new("libc.so.6");
    for key in ["malloc_lib", "free_lib"] {
        let Some(got) = r.extra_value(key) else {
            return Some(format!("printed no {key}"));
        };
        let ok = match lib {
            None => Path::new(got).file_name() == libc.file_name(),
            Some(l) => same_lib(got, l),
        };
        if !ok {
            let what = key.trim_end_matches("_lib");
            let expected = lib.unwrap_or(libc).display();
            return Some(format!("{what} served by {got}, not {expected}"));
        }
    }
    if goheap {
        match goheap_mallocs(&r.m.stderr) {
            None => return Some("no `goheap: stats:` line (GOHEAP_PRINT_STATS=1)".into()),
            Some(0) => return Some("goheap's statistics counted no allocations".into()),
            Some(n) => r.extra.push_str(&format!(" goheap_mallocs={n}")),
        }
    }
    None
}

/// The environment of a run under an allocator preloaded by `preload`;
/// `goheap`: a build of goheap, asked for its statistics.
fn env_for(goheap: bool, preload: &Preload) -> Vec<EnvChange<'_>> {
    let lib = match preload {
        Preload::Lib(p) => Some(p.as_os_str()),
        _ => None,
    };
    let stats = goheap.then(|| OsStr::new("1"));
    vec![("LD_PRELOAD", lib), ("GOHEAP_PRINT_STATS", stats)]
}

/// One line per criterion of issue 3: met or not, with the figures.
pub(crate) fn verdict(s: &Summary) -> String {
    let yes = |b: bool| if b { "yes" } else { "NO" };
    let geo = |peer: &str, m: Metric| s.geo_ratio("goheap", peer, m);
    let above = |peer: &str, m: Metric, limit: f64| -> Vec<String> {
        (0..s.workloads.len())
            .filter_map(|w| {
                let r = s.ratio(w, "goheap", peer, m)?;
                (r >= limit).then(|| format!("{} {r:.2}", s.workloads[w]))
            })
            .collect()
    };
    let mut out = String::new();
    let measured = (0..s.workloads.len())
        .filter(|&w| s.ratio(w, "goheap", "glibc", Metric::Wall).is_some())
        .count();
    if measured == 0 {
        out.push_str("- minimum, faster than glibc on every workload: not measured\n");
    } else {
        let slow = above("glibc", Metric::Wall, 1.0);
        out.push_str(&format!(
            "- minimum, faster than glibc on every workload (median wall time): {}{}\n",
            yes(slow.is_empty() && measured == s.workloads.len()),
            if slow.is_empty() {
                String::new()
            } else {
                format!(": not on {}", slow.join(", "))
            }
        ));
    }
    let line = |label: &str, r: Option<f64>, limit: f64| match r {
        None => format!("- {label}: not measured\n"),
        Some(r) => format!("- {label}: {} ({r:.2})\n", yes(r <= limit)),
    };
    out.push_str(&line(
        "minimum, geometric-mean time ≤ jemalloc's (goheap ÷ jemalloc)",
        geo("jemalloc", Metric::Wall),
        1.0,
    ));
    out.push_str(&line(
        "goal, geometric-mean time ≤ 0.9 × mimalloc's (goheap ÷ mimalloc)",
        geo("mimalloc", Metric::Wall),
        0.9,
    ));
    match geo("mimalloc", Metric::Rss) {
        None => out.push_str("- goal, peak RSS ≤ mimalloc's: not measured\n"),
        Some(r) => {
            let big = above("mimalloc", Metric::Rss, 1.0 + 1e-9);
            out.push_str(&format!(
                "- goal, peak RSS ≤ mimalloc's (geometric mean of goheap ÷ mimalloc): {} ({r:.2}){}\n",
                yes(r <= 1.0),
                if big.is_empty() {
                    "; at or below on every workload".to_string()
                } else {
                    format!("; above on {}", big.join(", "))
                }
            ));
        }
    }
    out
}

/// Runs `goheap cbench`.
pub(crate) fn run(o: &CbenchOpts) -> ExitCode {
    match cbench(o) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("goheap cbench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn cbench(o: &CbenchOpts) -> Result<ExitCode, String> {
    let workloads: Vec<CWorkload> = C_WORKLOADS
        .iter()
        .filter(|w| o.filter.as_deref().is_none_or(|f| w.name.contains(f)))
        .copied()
        .collect();
    if workloads.is_empty() {
        let all: Vec<&str> = C_WORKLOADS.iter().map(|w| w.name).collect();
        return Err(format!(
            "no workload matches {:?}; the workloads are: {}",
            o.filter.as_deref().unwrap_or(""),
            all.join(", ")
        ));
    }
    let root = bench::find_workspace()?;
    let target = bench::target_dir(&root);
    let out_dir = target.join("goheap-bench");
    let bin_dir = out_dir.join("c");
    if !o.no_build {
        bench::cargo_build("cbench", &root, &["-p", "goheap-capi"], "libgoheap.so")?;
        compile(&root.join("crates/goheap-bench/c"), &bin_dir, &workloads)?;
    }
    let goheap_lib = target.join("release/libgoheap.so");
    if !goheap_lib.is_file() {
        return Err(format!(
            "{} not found (build it with: cargo build --release -p goheap-capi)",
            goheap_lib.display()
        ));
    }
    let bins: Vec<PathBuf> = workloads.iter().map(|w| bin_dir.join(w.name)).collect();
    if let Some(missing) = bins.iter().find(|b| !b.is_file()) {
        return Err(format!(
            "{} not found (run goheap cbench without --no-build)",
            missing.display()
        ));
    }

    let (lineup, base) = bench::with_baseline("cbench", C_LINEUP, &o.baseline, &goheap_lib)?;
    let mut allocs: Vec<(&'static str, Preload)> =
        vec![("goheap", Preload::Lib(goheap_lib.clone()))];
    if let (Some(name), Some(path)) = (lineup.goheap_base, &base) {
        allocs.push((name, Preload::Lib(path.clone())));
    }
    allocs.push(("glibc", Preload::None));
    allocs.extend(find_peers());
    debug_assert!(allocs.iter().map(|(a, _)| a).eq(lineup.allocators.iter()));
    let runnable: Vec<usize> = (0..allocs.len())
        .filter(|&k| !matches!(allocs[k].1, Preload::Missing(_)))
        .collect();

    let scale_arg = o.scale.to_string();
    let total = o.runs * workloads.len() * runnable.len();
    let date = proc::utc_now();
    let load_before = bench::load_average();
    eprintln!(
        "goheap cbench: {} workloads × {} allocators × {} round(s) = {total} runs, scale {}",
        workloads.len(),
        runnable.len(),
        o.runs,
        o.scale
    );
    let timeout = Duration::from_secs(o.timeout);
    // Load every program and library once, untimed.
    let warm = (o.scale * 0.01).to_string();
    for bin in &bins {
        for &k in &runnable {
            let (a, p) = &allocs[k];
            let mut env = env_for(lineup.is_goheap(a), p);
            env.extend(bench::base_env(&lineup, a, &o.baseline));
            let _ = proc::run_env(bin, &[&warm], &env, timeout);
        }
    }
    let progress = Progress {
        tty: proc::isatty(2),
        total,
        start: Instant::now(),
    };
    let mut records: Vec<Record> = Vec::with_capacity(total);
    for round in 1..=o.runs {
        for (w, bin) in workloads.iter().zip(&bins) {
            for j in 0..runnable.len() {
                // Each round starts one allocator later.
                let k = runnable[(j + round - 1) % runnable.len()];
                let (a, preload) = &allocs[k];
                let i = records.len();
                progress.starting(i, round, o.runs, w.name, a);
                let goheap = lineup.is_goheap(a);
                let mut env = env_for(goheap, preload);
                env.extend(bench::base_env(&lineup, a, &o.baseline));
                let m = proc::run_env(bin, &[&scale_arg], &env, timeout)
                    .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
                let mut r = Record {
                    round,
                    workload: w.name,
                    alloc: a,
                    scale: o.scale,
                    m,
                    checksum: None,
                    inproc: None,
                    extra: String::new(),
                };
                r.parse_stdout();
                if r.ok() {
                    let lib = match preload {
                        Preload::Lib(p) => Some(p.as_path()),
                        _ => None,
                    };
                    r.m.failure = verify(goheap, lib, &mut r);
                }
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

    let names: Vec<&'static str> = workloads.iter().map(|w| w.name).collect();
    let summary = Summary::new(lineup.clone(), &names, &records);
    let cmd = bench::command_line();
    let mut text = String::new();
    text.push_str(&format!(
        "## goheap cbench\n\n\
         - command: `{cmd}` (from the workspace: `cargo run --release -p goheap-cli -- {}`)\n\
         - date: {date}\n\
         - {} round{}, interleaved (each allocator once per workload per round, the order rotated \
         every round), each run its own process; workload scale {}; medians; {total} runs in {}\n\
         - machine: {} CPUs, load average {load_before} before, {} after\n",
        cmd.split_once(' ').map_or("", |(_, rest)| rest),
        o.runs,
        if o.runs == 1 { "" } else { "s" },
        o.scale,
        bench::mmss(took),
        bench::cpus(),
        bench::load_average(),
    ));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    if let Some(v) = first_line(&cc, &["--version"]) {
        text.push_str(&format!("- compiler: {v}, `-O2 -g -pthread`\n"));
    }
    text.push_str(&format!(
        "- allocators: glibc {} (no preload); goheap {} (LD_PRELOAD, with GOHEAP_PRINT_STATS=1)",
        first_line("ldd", &["--version"])
            .and_then(|l| l.rsplit(' ').next().map(str::to_string))
            .unwrap_or_default(),
        goheap_lib.display()
    ));
    for (a, preload) in &allocs {
        let Some(&(_, _, pkg)) = PEER_LIBS.iter().find(|(peer, _, _)| peer == a) else {
            continue;
        };
        let version = first_line("dpkg-query", &["-W", "-f=${Version}", pkg]);
        match preload {
            Preload::Lib(p) => text.push_str(&format!(
                "; {a} {} ({pkg} {})",
                p.display(),
                version.as_deref().unwrap_or("?")
            )),
            _ => text.push_str(&format!("; {a}: not installed, not measured")),
        }
    }
    text.push('\n');
    text.push_str(&bench::baseline_line(
        &lineup,
        &goheap_lib,
        base.as_deref(),
        &o.baseline.env,
    ));
    let goheap_env: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("GOHEAP_"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !goheap_env.is_empty() {
        text.push_str(&format!(
            "- goheap options from the environment: {}\n",
            goheap_env.join(" ")
        ));
    }
    text.push_str(
        "\n### Wall time and peak RSS: goheap, and goheap ÷ each peer (below 1: goheap better)\n\n",
    );
    text.push_str(&report::main_table(&summary, Metric::Wall, true));
    text.push_str("\n### CPU time (user + sys): goheap, and goheap ÷ each peer (steadier than wall time for one thread)\n\n");
    text.push_str(&report::main_table(&summary, Metric::Cpu, false));
    text.push_str("\n### Medians of every allocator: wall time / peak RSS\n\n");
    text.push_str(&report::medians_table(&summary));
    text.push_str("\n### Against the bar of issue 3\n\n");
    text.push_str(&verdict(&summary));
    text.push('\n');

    let mut notes = String::new();
    for (a, p) in &allocs {
        if let Preload::Missing(path) = p {
            notes.push_str(&format!(
                "note: {a} not measured: {} is not installed ({INSTALL_CMD})\n",
                path.display()
            ));
        }
    }
    notes.push_str(&summary.problems());
    if !notes.is_empty() {
        text.push_str(&notes);
        text.push('\n');
    }
    text.push_str("### The workloads\n\n");
    for w in &workloads {
        text.push_str(&format!("- `{}` ({}): {}\n", w.name, w.source, w.about));
    }
    text.push('\n');

    print!("{text}");
    let chart = report::text_chart(&summary);
    println!("{chart}");

    std::fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let subtitle = format!(
        "{cmd} · {date} · {} round(s) · scale {} · medians; {} CPUs",
        o.runs,
        o.scale,
        bench::cpus()
    );
    let md = format!("{text}```text\n{chart}```\n");
    let mut files = vec![
        ("cbench.csv", report::csv(&records)),
        (
            "cbench.svg",
            svg::chart(&summary, "goheap cbench", &subtitle),
        ),
        ("cbench.md", md),
    ];
    files.extend(report::base_csv(&summary).map(|c| ("cbench-baseline.csv", c)));
    report::write_outputs("goheap cbench", &out_dir, files, &summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc::Measured;

    fn rec(alloc: &'static str, w: &'static str, wall: f64, rss_kib: u64) -> Record {
        Record {
            round: 1,
            workload: w,
            alloc,
            scale: 1.0,
            m: Measured {
                wall,
                user: wall,
                maxrss_kib: rss_kib,
                ..Measured::default()
            },
            checksum: Some("c".into()),
            inproc: None,
            extra: String::new(),
        }
    }

    #[test]
    fn sources_exist_and_names_are_unique() {
        let root = bench::workspace_root().expect("tests run inside the workspace");
        for (i, w) in C_WORKLOADS.iter().enumerate() {
            assert!(
                root.join("crates/goheap-bench/c").join(w.source).is_file(),
                "{}",
                w.source
            );
            assert!(C_WORKLOADS[..i].iter().all(|v| v.name != w.name));
        }
        assert_eq!(C_LINEUP.allocators.len(), 2 + PEER_LIBS.len());
        assert!(C_LINEUP.allocators.contains(&C_LINEUP.baseline));
    }

    #[test]
    fn verifies_the_library_that_served_malloc() {
        let mut r = rec("goheap", "small", 1.0, 100);
        r.extra = "malloc_lib=/t/release/libgoheap.so free_lib=/t/release/libgoheap.so".into();
        r.m.stderr = "goheap: stats: mallocs=42 frees=41\n".into();
        let lib = Path::new("/x/libgoheap.so");
        assert_eq!(verify(true, Some(lib), &mut r), None);
        assert!(r.extra.ends_with(" goheap_mallocs=42"), "{}", r.extra);

        r.m.stderr = "goheap: stats: mallocs=0 frees=0\n".into();
        assert!(verify(true, Some(lib), &mut r).is_some());
        r.m.stderr = String::new();
        assert!(verify(true, Some(lib), &mut r).is_some());

        let mut g = rec("glibc", "small", 1.0, 100);
        g.extra =
            "malloc_lib=/lib/x86_64-linux-gnu/libc.so.6 free_lib=/lib/x86_64-linux-gnu/libc.so.6"
                .into();
        assert_eq!(verify(false, None, &mut g), None);
        // A preload that fell through to glibc is caught.
        let je = Path::new("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2");
        let e = verify(false, Some(je), &mut g).unwrap();
        assert!(
            e.contains("malloc served by") && e.contains("libjemalloc.so.2"),
            "{e}"
        );
        g.extra =
            "malloc_lib=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 free_lib=/lib/libc.so.6".into();
        assert!(verify(false, Some(je), &mut g)
            .unwrap()
            .starts_with("free served"));
        g.extra = String::new();
        assert!(verify(false, None, &mut g).is_some());
    }

    #[test]
    fn tells_two_builds_of_the_same_name_apart() {
        let dir = std::env::temp_dir().join(format!("goheap-cbench-test-{}", std::process::id()));
        let (new, old) = (dir.join("new/libgoheap.so"), dir.join("old/libgoheap.so"));
        for lib in [&new, &old] {
            std::fs::create_dir_all(lib.parent().unwrap()).unwrap();
            std::fs::write(lib, "").unwrap();
        }
        let printed = |p: &Path| p.to_str().unwrap().to_string();
        assert!(same_lib(&printed(&old), &old));
        assert!(!same_lib(&printed(&new), &old));
        // A relative name, or a path that does not exist: by file name.
        assert!(same_lib("libgoheap.so", &old));
        assert!(!same_lib("libc.so.6", &old));
        // The earlier build of goheap is checked as goheap is: the library
        // that served malloc, and goheap's statistics.
        let mut r = rec("goheap-base", "small", 1.0, 100);
        r.extra = format!("malloc_lib={} free_lib={}", printed(&new), printed(&new));
        r.m.stderr = "goheap: stats: mallocs=9 frees=9\n".into();
        let e = verify(true, Some(&old), &mut r).unwrap();
        assert!(
            e.starts_with("malloc served by") && e.ends_with("old/libgoheap.so"),
            "{e}"
        );
        r.extra = format!("malloc_lib={} free_lib={}", printed(&old), printed(&old));
        assert_eq!(verify(true, Some(&old), &mut r), None);
        assert!(r.extra.ends_with(" goheap_mallocs=9"));
        r.m.stderr = String::new();
        assert!(verify(true, Some(&old), &mut r)
            .unwrap()
            .contains("goheap: stats:"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lineup_with_an_earlier_build() {
        let l = C_LINEUP.with_goheap_base("goheap-base").unwrap();
        assert_eq!(
            *l.allocators,
            [
                "goheap",
                "goheap-base",
                "glibc",
                "jemalloc",
                "mimalloc",
                "tcmalloc"
            ]
        );
        assert_eq!(l.peers[0], "goheap-base");
        assert!(C_LINEUP.with_goheap_base("glibc").is_err());
        // Its runs are asked for goheap's statistics.
        let lib = Preload::Lib("/old/libgoheap.so".into());
        let e = env_for(l.is_goheap("goheap-base"), &lib);
        assert_eq!(e[1], ("GOHEAP_PRINT_STATS", Some(OsStr::new("1"))));
    }

    #[test]
    fn environment_of_each_allocator() {
        let lib = Preload::Lib("/x/libgoheap.so".into());
        let e = env_for(true, &lib);
        assert_eq!(e[0], ("LD_PRELOAD", Some(OsStr::new("/x/libgoheap.so"))));
        assert_eq!(e[1], ("GOHEAP_PRINT_STATS", Some(OsStr::new("1"))));
        let e = env_for(false, &Preload::None);
        assert_eq!(e, vec![("LD_PRELOAD", None), ("GOHEAP_PRINT_STATS", None)]);
    }

    #[test]
    fn verdict_lines() {
        // goheap: faster than everyone on "a", slower than glibc on "b".
        let mut v = Vec::new();
        for (a, ta, tb, rss) in [
            ("goheap", 1.0, 2.2, 900),
            ("glibc", 2.0, 2.0, 800),
            ("jemalloc", 1.5, 2.0, 1000),
            ("mimalloc", 1.2, 2.0, 1000),
            ("tcmalloc", 1.1, 2.0, 1000),
        ] {
            v.push(rec(a, "a", ta, rss));
            v.push(rec(a, "b", tb, rss));
        }
        let s = Summary::new(C_LINEUP, &["a", "b"], &v);
        let t = verdict(&s);
        assert!(
            t.contains("every workload (median wall time): NO: not on b 1.10"),
            "{t}"
        );
        assert!(
            t.contains("≤ jemalloc's (goheap ÷ jemalloc): yes (0.86)"),
            "{t}"
        );
        assert!(
            t.contains("0.9 × mimalloc's (goheap ÷ mimalloc): NO (0.96)"),
            "{t}"
        );
        assert!(t.contains("peak RSS ≤ mimalloc's"), "{t}");
        assert!(
            t.contains("yes (0.90); at or below on every workload"),
            "{t}"
        );
        // Tables and chart take the five allocators.
        let m = report::main_table(&s, Metric::Wall, true);
        assert!(
            m.contains("time ÷ tcmalloc") && m.contains("RSS ÷ glibc"),
            "{m}"
        );
        let svg = svg::chart(&s, "goheap cbench", "x");
        assert_eq!(svg.matches("<rect").count(), 3 * 5 * 2 + 1 + 5);
        assert!(report::text_chart(&s).contains("tcmalloc"));
        // A peer that was not measured.
        let s = Summary::new(C_LINEUP, &["a"], &v[..2]);
        assert!(verdict(&s).contains("jemalloc's (goheap ÷ jemalloc): not measured"));
    }

    #[test]
    fn reads_goheap_stats() {
        assert_eq!(
            goheap_mallocs("x\ngoheap: stats: mallocs=7 frees=3\n"),
            Some(7)
        );
        assert_eq!(goheap_mallocs("goheap: memory: objects=1\n"), None);
    }
}
