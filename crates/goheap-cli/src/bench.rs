//! `goheap bench`: build the benchmark binaries, run every workload under
//! every allocator (each run its own process, rounds interleaved), and
//! report. With `--baseline`, an earlier build's `bench-goheap` runs too,
//! as one more allocator (see [`with_baseline`], shared with cbench).

use std::ffi::OsStr;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use crate::args::{BaselineOpts, BenchOpts};
use crate::proc::{self, EnvChange};
use crate::report::{self, Lineup, Metric, Record, Summary, ALLOCATORS, GOHEAP_BASE, RUST_LINEUP};
use crate::svg;

/// The workspace root: the nearest directory above the current one whose
/// `Cargo.toml` lists goheap-bench, else the source tree this binary was
/// built from.
pub(crate) fn workspace_root() -> Option<PathBuf> {
    let is_root = |d: &Path| {
        std::fs::read_to_string(d.join("Cargo.toml"))
            .is_ok_and(|s| s.contains("[workspace]") && s.contains("crates/goheap-bench"))
    };
    let cwd = std::env::current_dir().ok();
    if let Some(found) = cwd.iter().flat_map(|d| d.ancestors()).find(|d| is_root(d)) {
        return Some(found.to_path_buf());
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    is_root(&built).then(|| built.canonicalize().unwrap_or(built))
}

/// Cargo's target directory: `CARGO_TARGET_DIR` or `<root>/target`.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                std::env::current_dir().map(|c| c.join(&d)).unwrap_or(d)
            }
        }
        _ => root.join("target"),
    }
}

/// The command line as typed, quoted where needed.
pub(crate) fn command_line() -> String {
    let mut args: Vec<String> = std::env::args().collect();
    if let Some(a0) = args.first_mut() {
        if let Some(base) = Path::new(a0.as_str()).file_name() {
            *a0 = base.to_string_lossy().into_owned();
        }
    }
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_=./,:".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

pub(crate) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub(crate) fn mmss(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

/// The progress display on stderr: one line rewritten in place on a
/// terminal, one line per finished run otherwise.
pub(crate) struct Progress {
    /// Whether stderr is a terminal.
    pub(crate) tty: bool,
    /// Runs in all.
    pub(crate) total: usize,
    /// When the first run started.
    pub(crate) start: Instant,
}

impl Progress {
    /// Shows run `i` (from 0) as running.
    pub(crate) fn starting(&self, i: usize, round: usize, rounds: usize, w: &str, a: &str) {
        if !self.tty {
            return;
        }
        let elapsed = self.start.elapsed();
        let eta = if i > 0 {
            let per = elapsed.as_secs_f64() / i as f64;
            format!(
                "  eta {}",
                mmss(Duration::from_secs_f64(per * (self.total - i) as f64))
            )
        } else {
            String::new()
        };
        let mut e = io::stderr().lock();
        let _ = write!(
            e,
            "\r\x1b[2K[{:>nw$}/{}] round {round}/{rounds}  {w:<12} {a:<9} elapsed {}{eta}",
            i + 1,
            self.total,
            mmss(elapsed),
            nw = self.total.to_string().len(),
        );
        let _ = e.flush();
    }

    /// Shows run `i` (from 0) as finished.
    pub(crate) fn finished(&self, i: usize, r: &Record) {
        let what = match &r.m.failure {
            Some(f) => format!("FAILED: {f}"),
            None => format!(
                "{:.3} s wall, {:.3} s cpu, {:.1} MiB",
                r.m.wall,
                r.cpu(),
                r.m.maxrss_kib as f64 / 1024.0
            ),
        };
        if self.tty {
            if r.m.failure.is_some() {
                eprintln!(
                    "\r\x1b[2K{} under {} (round {}): {what}",
                    r.workload, r.alloc, r.round
                );
            }
        } else {
            eprintln!(
                "[{:>nw$}/{}] round {} {} {}: {what}",
                i + 1,
                self.total,
                r.round,
                r.workload,
                r.alloc,
                nw = self.total.to_string().len()
            );
        }
    }

    /// Clears the progress line.
    pub(crate) fn done(&self) {
        if self.tty {
            eprint!("\r\x1b[2K");
        }
    }
}

/// Runs `cargo build --release <args>` in the workspace at `root` (with
/// `$CARGO` if set), saying so on stderr; `cmd` names the subcommand,
/// `args` select what to build (`-p goheap-bench`) and `what` names it.
pub(crate) fn cargo_build(cmd: &str, root: &Path, args: &[&str], what: &str) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "goheap {cmd}: building {what}: {} build --release {}",
        Path::new(&cargo).display(),
        args.join(" ")
    );
    let status = Command::new(&cargo)
        .args(["build", "--release"])
        .args(args)
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .status()
        .map_err(|e| format!("cannot run {}: {e}", Path::new(&cargo).display()))?;
    if !status.success() {
        return Err(format!("cargo build failed ({status})"));
    }
    Ok(())
}

/// The workspace root, or an error saying it was not found.
pub(crate) fn find_workspace() -> Result<PathBuf, String> {
    workspace_root()
        .ok_or_else(|| "cannot find the goheap workspace (run from inside its source tree)".into())
}

/// Finds the workspace, builds the benchmark binaries there (unless
/// `no_build`; `cargo build --release -p goheap-bench`, with `$CARGO` if
/// set) and returns the target directory and the binaries, in
/// [`ALLOCATORS`] order. `cmd` names the subcommand in messages.
pub(crate) fn binaries(cmd: &str, no_build: bool) -> Result<(PathBuf, Vec<PathBuf>), String> {
    let root = find_workspace()?;
    let target = target_dir(&root);

    if !no_build {
        cargo_build(
            cmd,
            &root,
            &["-p", "goheap-bench"],
            "the benchmark binaries",
        )?;
    }
    let bins: Vec<PathBuf> = ALLOCATORS
        .iter()
        .map(|a| target.join("release").join(format!("bench-{a}")))
        .collect();
    if let Some(missing) = bins.iter().find(|b| !b.is_file()) {
        return Err(format!(
            "{} not found (build it with: cargo build --release -p goheap-bench)",
            missing.display()
        ));
    }

    Ok((target, bins))
}

/// `lineup` with the earlier build of goheap that `--baseline` names (see
/// [`Lineup::with_goheap_base`]), and that build's absolute path; `lineup`
/// and `None` without `--baseline`. `current` is the file this run
/// measures as goheap: naming it too is allowed (an A/A comparison), but
/// said on stderr, as cargo may rebuild it.
pub(crate) fn with_baseline(
    cmd: &str,
    lineup: Lineup,
    b: &BaselineOpts,
    current: &Path,
) -> Result<(Lineup, Option<PathBuf>), String> {
    let Some(given) = &b.path else {
        return Ok((lineup, None));
    };
    let path = given
        .canonicalize()
        .map_err(|e| format!("--baseline {}: {e}", given.display()))?;
    if !path.is_file() {
        return Err(format!("--baseline {}: not a file", given.display()));
    }
    if b.env.is_empty() && current.canonicalize().is_ok_and(|c| c == path) {
        eprintln!(
            "goheap {cmd}: note: --baseline {} is the file measured as goheap, not an earlier build",
            path.display()
        );
    }
    // Every record and the lineup hold the name until the process exits.
    let name: &'static str = match &b.name {
        Some(n) => Box::leak(n.clone().into_boxed_str()),
        None => GOHEAP_BASE,
    };
    Ok((lineup.with_goheap_base(name)?, Some(path)))
}

/// The header line that says which build is which, for a lineup with an
/// earlier build of goheap at `base`; empty without one. `current` is
/// what this run measures as goheap.
pub(crate) fn baseline_line(
    lineup: &Lineup,
    current: &Path,
    base: Option<&Path>,
    env: &[(String, String)],
) -> String {
    let with: String = env.iter().map(|(n, v)| format!(" with {n}={v}")).collect();
    match (lineup.goheap_base, base) {
        (Some(name), Some(base)) => format!(
            "- before/after: goheap is {} (this tree); {name} is {}{with} (--baseline), run and \
             checked as goheap is; the `÷ {name}` columns are goheap ÷ {name}\n",
            current.display(),
            base.display()
        ),
        _ => String::new(),
    }
}

/// The environment changes of `alloc`'s runs: the `--baseline-env`
/// variables for the baseline, nothing for the others.
pub(crate) fn base_env<'a>(
    lineup: &Lineup,
    alloc: &str,
    b: &'a BaselineOpts,
) -> Vec<EnvChange<'a>> {
    if lineup.goheap_base == Some(alloc) {
        b.env
            .iter()
            .map(|(n, v)| (n.as_str(), Some(OsStr::new(v.as_str()))))
            .collect()
    } else {
        Vec::new()
    }
}

/// The binary of every allocator of `lineup`, in its order: `bins` (in
/// [`ALLOCATORS`] order, from [`binaries`]) and, for the earlier build of
/// goheap, `base`.
fn lineup_binaries(lineup: &Lineup, bins: &[PathBuf], base: Option<&Path>) -> Vec<PathBuf> {
    lineup
        .allocators
        .iter()
        .map(|&a| match (ALLOCATORS.iter().position(|&x| x == a), base) {
            (Some(k), _) => bins[k].clone(),
            (None, Some(base)) if lineup.goheap_base == Some(a) => base.to_path_buf(),
            _ => unreachable!("{a} is neither in ALLOCATORS nor the baseline"),
        })
        .collect()
}

/// Runs `goheap bench`.
pub(crate) fn run(o: &BenchOpts) -> ExitCode {
    match bench(o) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("goheap bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(o: &BenchOpts) -> Result<ExitCode, String> {
    let workloads: Vec<&'static str> = goheap_workloads::WORKLOADS
        .iter()
        .map(|w| w.name)
        .filter(|n| o.filter.as_deref().is_none_or(|f| n.contains(f)))
        .collect();
    if workloads.is_empty() {
        let all: Vec<&str> = goheap_workloads::WORKLOADS.iter().map(|w| w.name).collect();
        return Err(format!(
            "no workload matches {:?}; the workloads are: {}",
            o.filter.as_deref().unwrap_or(""),
            all.join(", ")
        ));
    }
    let (target, bins) = binaries("bench", o.no_build)?;
    let (lineup, base) = with_baseline("bench", RUST_LINEUP, &o.baseline, &bins[0])?;
    let bins = lineup_binaries(&lineup, &bins, base.as_deref());
    let allocators = &lineup.allocators;

    let scale = o.scale();
    let scale_arg = scale.to_string();
    let total = o.runs * workloads.len() * allocators.len();
    let date = proc::utc_now();
    let load_before = load_average();
    eprintln!(
        "goheap bench: {} workloads × {} allocators × {} round(s) = {total} runs, scale {scale}",
        workloads.len(),
        allocators.len(),
        o.runs
    );
    let progress = Progress {
        tty: proc::isatty(2),
        total,
        start: Instant::now(),
    };
    // Load every binary once, untimed, so that no first run pays for it.
    for bin in &bins {
        let _ = proc::run(bin, &["--list"], Duration::from_secs(30));
    }
    let mut records = Vec::with_capacity(total);
    let timeout = Duration::from_secs(o.timeout);
    for round in 1..=o.runs {
        for &w in &workloads {
            for k in 0..allocators.len() {
                // Each round starts one allocator later, so that none is
                // always the first to run after a change of workload.
                let k = (k + round - 1) % allocators.len();
                let (a, bin) = (allocators[k], &bins[k]);
                let i = records.len();
                progress.starting(i, round, o.runs, w, a);
                let env = base_env(&lineup, a, &o.baseline);
                let m = proc::run_env(bin, &[w, &scale_arg], &env, timeout)
                    .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
                let mut r = Record {
                    round,
                    workload: w,
                    alloc: a,
                    scale,
                    m,
                    checksum: None,
                    inproc: None,
                    extra: String::new(),
                };
                r.parse_stdout();
                progress.finished(i, &r);
                if !r.ok() && !r.m.stderr.trim().is_empty() {
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

    let summary = Summary::new(lineup.clone(), &workloads, &records);
    let cmd = command_line();
    let mut text = String::new();
    text.push_str(&format!(
        "## goheap bench\n\n\
         - command: `{cmd}` (from the workspace: `cargo run --release -p goheap-cli -- {}`)\n\
         - date: {date}\n\
         - {} round{}, interleaved (each allocator once per workload per round, the order rotated \
         every round), each run its own process; workload scale {scale}; medians; {total} runs in {}\n\
         - machine: {} CPUs, load average {load_before} before, {} after\n{}\n",
        cmd.split_once(' ').map_or("", |(_, rest)| rest),
        o.runs,
        if o.runs == 1 { "" } else { "s" },
        mmss(took),
        cpus(),
        load_average(),
        baseline_line(&lineup, &bins[0], base.as_deref(), &o.baseline.env),
    ));
    text.push_str(
        "### Wall time and peak RSS: goheap, and goheap ÷ each peer (below 1: goheap better)\n\n",
    );
    text.push_str(&report::main_table(&summary, Metric::Wall, true));
    text.push_str("\n### CPU time (user + sys): goheap, and goheap ÷ each peer (steadier than wall time for one thread)\n\n");
    text.push_str(&report::main_table(&summary, Metric::Cpu, false));
    text.push_str("\n### Medians of every allocator: wall time / peak RSS\n\n");
    text.push_str(&report::medians_table(&summary));
    text.push('\n');

    let mut notes = String::new();
    let goheaps = allocators
        .iter()
        .zip(&bins)
        .filter(|(a, _)| lineup.is_goheap(a));
    for (&a, bin) in goheaps {
        let counted = records.iter().filter(|r| r.alloc == a && r.ok()).any(|r| {
            r.extra
                .split_whitespace()
                .any(|kv| kv.starts_with("goheap_mallocs=") && kv != "goheap_mallocs=0")
        });
        if !counted {
            notes.push_str(&format!(
                "note: goheap::memstats() counted no allocations in {a}'s {}: either GoHeap still \
                 forwards to the system allocator or its statistics are not wired up.\n",
                bin.display()
            ));
        }
    }
    notes.push_str(&summary.problems());
    if !notes.is_empty() {
        text.push_str(&notes);
        text.push('\n');
    }

    print!("{text}");
    println!("{}", report::text_chart(&summary));

    let out_dir = target.join("goheap-bench");
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let subtitle = format!(
        "{cmd} · {date} · {} round(s) · scale {scale} · medians; {} CPUs",
        o.runs,
        cpus()
    );
    let mut files = vec![
        ("results.csv", report::csv(&records)),
        (
            "report.svg",
            svg::chart(&summary, "goheap bench", &subtitle),
        ),
        ("report.md", text.clone()),
    ];
    files.extend(report::base_csv(&summary).map(|c| ("baseline.csv", c)));
    report::write_outputs("goheap bench", &out_dir, files, &summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::BASELINE;

    #[test]
    fn finds_the_workspace() {
        let root = workspace_root().expect("tests run inside the workspace");
        assert!(root.join("crates/goheap-bench/Cargo.toml").is_file());
        assert!(
            target_dir(&root).ends_with("target") || std::env::var_os("CARGO_TARGET_DIR").is_some()
        );
    }

    #[test]
    fn formats_durations() {
        assert_eq!(mmss(Duration::from_secs(75)), "1:15");
        assert_eq!(mmss(Duration::from_secs(5)), "0:05");
    }

    #[test]
    fn adds_the_earlier_build() {
        let bins: Vec<PathBuf> = ALLOCATORS
            .iter()
            .map(|a| format!("/t/bench-{a}").into())
            .collect();
        let none = BaselineOpts::default();
        let (l, base) = with_baseline("bench", RUST_LINEUP, &none, &bins[0]).unwrap();
        assert_eq!((l, base), (RUST_LINEUP, None));
        assert_eq!(lineup_binaries(&RUST_LINEUP, &bins, None), bins);
        assert_eq!(baseline_line(&RUST_LINEUP, &bins[0], None, &[]), "");

        // This test's own executable stands in for an earlier build.
        let exe = std::env::current_exe().unwrap();
        let b = BaselineOpts {
            path: Some(exe.clone()),
            name: Some("before".into()),
            env: Vec::new(),
        };
        let (l, base) = with_baseline("bench", RUST_LINEUP, &b, &bins[0]).unwrap();
        let base = base.unwrap();
        assert_eq!(base, exe.canonicalize().unwrap());
        assert_eq!(l.goheap_base, Some("before"));
        let run = lineup_binaries(&l, &bins, Some(&base));
        assert_eq!(run.len(), 5);
        assert_eq!((&run[0], &run[1], &run[2]), (&bins[0], &base, &bins[1]));
        let line = baseline_line(&l, &bins[0], Some(&base), &[]);
        assert!(
            line.starts_with("- before/after: goheap is /t/bench-goheap (this tree); before is /")
                && line.contains("`÷ before` columns"),
            "{line}"
        );

        let missing = BaselineOpts {
            path: Some("/nonexistent/bench-goheap".into()),
            name: None,
            env: Vec::new(),
        };
        let e = with_baseline("bench", RUST_LINEUP, &missing, &bins[0]).unwrap_err();
        assert!(
            e.starts_with("--baseline /nonexistent/bench-goheap: "),
            "{e}"
        );
        let dir = BaselineOpts {
            path: Some(std::env::temp_dir()),
            name: None,
            env: Vec::new(),
        };
        assert!(with_baseline("bench", RUST_LINEUP, &dir, &bins[0])
            .unwrap_err()
            .ends_with("not a file"));
        let clash = BaselineOpts {
            path: Some(exe),
            name: Some("system".into()),
            env: Vec::new(),
        };
        assert!(with_baseline("bench", RUST_LINEUP, &clash, &bins[0]).is_err());
    }

    /// `--baseline-env` reaches the baseline's runs only, and the header
    /// names it.
    #[test]
    fn baseline_env_is_the_baselines_own() {
        let exe = std::env::current_exe().unwrap();
        let b = BaselineOpts {
            path: Some(exe.clone()),
            name: Some("goheap-prof".into()),
            env: vec![("GOHEAP_PROFILE_RATE".into(), "524288".into())],
        };
        let (l, base) = with_baseline("bench", RUST_LINEUP, &b, &exe).unwrap();
        let env = base_env(&l, "goheap-prof", &b);
        assert_eq!(
            env,
            vec![("GOHEAP_PROFILE_RATE", Some(OsStr::new("524288")))]
        );
        for other in l.allocators.iter().filter(|&&a| a != "goheap-prof") {
            assert!(base_env(&l, other, &b).is_empty(), "{other}");
        }
        let line = baseline_line(&l, &exe, base.as_deref(), &b.env);
        assert!(
            line.contains(" with GOHEAP_PROFILE_RATE=524288 (--baseline)"),
            "{line}"
        );
    }

    #[test]
    fn baseline_is_an_allocator() {
        assert!(ALLOCATORS.contains(&BASELINE));
    }
}
