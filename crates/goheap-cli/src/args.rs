//! A small hand-written command-line parser (no dependencies, fast build).

use std::path::PathBuf;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cmd {
    /// `goheap help`, `goheap --help`, `goheap` alone; `Some(topic)` for
    /// `goheap help bench` or `goheap bench --help`.
    Help(Option<String>),
    /// `goheap bench …`.
    Bench(BenchOpts),
    /// `goheap rss …`.
    Rss(RssOpts),
    /// `goheap cbench …`.
    Cbench(CbenchOpts),
    /// `goheap gcbench …`.
    Gcbench(GcbenchOpts),
    /// `goheap sizeclasses`.
    SizeClasses,
    /// `goheap profile FILE …`.
    Profile(ProfileOpts),
}

/// Options of `goheap profile`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProfileOpts {
    /// The profile to read.
    pub(crate) file: PathBuf,
    /// The sample type to show (`None`: inuse_space, or the profile's
    /// default).
    pub(crate) sample: Option<String>,
    /// How many functions to list.
    pub(crate) top: usize,
    /// One row per source line (function file:line), not per function.
    pub(crate) lines: bool,
    /// Where to write the flame graph (`None`: beside FILE).
    pub(crate) svg: Option<PathBuf>,
    /// Write no flame graph.
    pub(crate) no_svg: bool,
    /// Keep the allocator's own frames at the leaf end of the stacks.
    pub(crate) keep_allocator_frames: bool,
}

/// Options of `goheap rss`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RssOpts {
    /// Runs per allocator, interleaved.
    pub(crate) runs: usize,
    /// Workload scale: memory and phase lengths (1: the benchmark).
    pub(crate) scale: f64,
    /// Do not run `cargo build` first.
    pub(crate) no_build: bool,
    /// Seconds after which a run is killed.
    pub(crate) timeout: u64,
}

impl Default for RssOpts {
    fn default() -> Self {
        RssOpts {
            runs: 3,
            scale: 1.0,
            no_build: false,
            timeout: 120,
        }
    }
}

/// `--baseline PATH` and `--baseline-name NAME` of `goheap bench` and
/// `goheap cbench`: an earlier build of goheap to run beside this one.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct BaselineOpts {
    /// The earlier build: a `libgoheap.so` for cbench, a `bench-goheap`
    /// binary for bench. `None`: no baseline.
    pub(crate) path: Option<PathBuf>,
    /// Its name in the reports (default
    /// [`GOHEAP_BASE`](crate::report::GOHEAP_BASE)).
    pub(crate) name: Option<String>,
    /// `--baseline-env NAME=VALUE`: variables set for the baseline's runs
    /// only (the same build with an option on, for example).
    pub(crate) env: Vec<(String, String)>,
}

impl BaselineOpts {
    /// Takes `flag` if it is `--baseline` or `--baseline-name`, its value
    /// from `value`; returns whether it was one of them.
    fn take(
        &mut self,
        flag: &str,
        value: impl FnOnce(&str) -> Result<String, String>,
    ) -> Result<bool, String> {
        match flag {
            "--baseline" => self.path = Some(value("a path")?.into()),
            "--baseline-name" => self.name = Some(value("a name")?),
            "--baseline-env" => {
                let v = value("NAME=VALUE")?;
                match v.split_once('=') {
                    Some((n, val)) if !n.is_empty() && !n.contains('\0') && !val.contains('\0') => {
                        self.env.push((n.to_string(), val.to_string()))
                    }
                    _ => return Err(format!("--baseline-env needs NAME=VALUE, not {v:?}")),
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks the options once all are read: a name only with a path, and
    /// a name that reads as one word in tables and CSV.
    fn check(&self, cmd: &str) -> Result<(), String> {
        if !self.env.is_empty() && self.path.is_none() {
            return Err(format!("{cmd}: --baseline-env needs --baseline"));
        }
        let Some(name) = &self.name else {
            return Ok(());
        };
        if self.path.is_none() {
            return Err(format!("{cmd}: --baseline-name needs --baseline"));
        }
        let word = |c: char| c.is_ascii_alphanumeric() || "-_.+".contains(c);
        if name.is_empty() || !name.chars().all(word) {
            return Err(format!(
                "{cmd}: --baseline-name needs letters, digits and - _ . + only"
            ));
        }
        Ok(())
    }
}

/// Options of `goheap cbench`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CbenchOpts {
    /// Rounds: every workload under every allocator once per round.
    pub(crate) runs: usize,
    /// Only workloads whose name contains this.
    pub(crate) filter: Option<String>,
    /// Workload scale (1: the benchmark).
    pub(crate) scale: f64,
    /// Build neither libgoheap.so nor the C programs.
    pub(crate) no_build: bool,
    /// Seconds after which a run is killed.
    pub(crate) timeout: u64,
    /// An earlier `libgoheap.so` to run beside this one.
    pub(crate) baseline: BaselineOpts,
}

impl Default for CbenchOpts {
    fn default() -> Self {
        CbenchOpts {
            runs: 5,
            filter: None,
            scale: 1.0,
            no_build: false,
            timeout: 120,
            baseline: BaselineOpts::default(),
        }
    }
}

/// Options of `goheap gcbench`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GcbenchOpts {
    /// Rounds: every benchmark under every implementation once per round.
    pub(crate) runs: usize,
    /// binary-trees' depth N.
    pub(crate) depth: u32,
    /// Only the benchmarks whose name contains this.
    pub(crate) filter: Option<String>,
    /// Build none of the programs.
    pub(crate) no_build: bool,
    /// Seconds after which a run is killed.
    pub(crate) timeout: u64,
}

impl Default for GcbenchOpts {
    fn default() -> Self {
        GcbenchOpts {
            runs: 5,
            depth: 20,
            filter: None,
            no_build: false,
            timeout: 600,
        }
    }
}

/// Options of `goheap bench`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BenchOpts {
    /// Rounds: every workload under every allocator once per round.
    pub(crate) runs: usize,
    /// Only workloads whose name contains this.
    pub(crate) filter: Option<String>,
    /// Smoke-test size (scale 0.1).
    pub(crate) quick: bool,
    /// Explicit workload scale (overrides `quick`).
    pub(crate) scale: Option<f64>,
    /// Do not run `cargo build` first.
    pub(crate) no_build: bool,
    /// Seconds after which a run is killed.
    pub(crate) timeout: u64,
    /// An earlier `bench-goheap` binary to run beside this one.
    pub(crate) baseline: BaselineOpts,
}

impl Default for BenchOpts {
    fn default() -> Self {
        BenchOpts {
            runs: 5,
            filter: None,
            quick: false,
            scale: None,
            no_build: false,
            timeout: 120,
            baseline: BaselineOpts::default(),
        }
    }
}

impl BenchOpts {
    /// The workload scale to pass to the benchmark binaries.
    pub(crate) fn scale(&self) -> f64 {
        self.scale.unwrap_or(if self.quick { 0.1 } else { 1.0 })
    }
}

/// Splits `--name=value` into its parts.
fn split_eq(arg: &str) -> (&str, Option<&str>) {
    match arg.split_once('=') {
        Some((n, v)) if n.starts_with("--") => (n, Some(v)),
        _ => (arg, None),
    }
}

/// Parses the arguments after the program name.
pub(crate) fn parse(args: &[String]) -> Result<Cmd, String> {
    let Some(first) = args.first() else {
        return Ok(Cmd::Help(None));
    };
    let rest = &args[1..];
    match first.as_str() {
        "help" | "--help" | "-h" => Ok(Cmd::Help(rest.first().cloned())),
        "sizeclasses" => match rest.first().map(String::as_str) {
            None => Ok(Cmd::SizeClasses),
            Some("--help" | "-h") => Ok(Cmd::Help(Some("sizeclasses".into()))),
            Some(a) => Err(format!("sizeclasses: unexpected argument {a:?}")),
        },
        "bench" => parse_bench(rest),
        "rss" => parse_rss(rest),
        "cbench" => parse_cbench(rest),
        "gcbench" => parse_gcbench(rest),
        "profile" => parse_profile(rest),
        other => Err(format!("unknown command {other:?}")),
    }
}

fn parse_bench(args: &[String]) -> Result<Cmd, String> {
    let mut o = BenchOpts::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = split_eq(arg);
        let mut value = |what: &str| -> Result<String, String> {
            inline
                .map(str::to_string)
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("bench: {name} needs {what}"))
        };
        if o.baseline.take(name, &mut value)? {
            continue;
        }
        match name {
            "--help" | "-h" => return Ok(Cmd::Help(Some("bench".into()))),
            "--runs" => {
                o.runs = at_least_one("bench", "--runs", &value("a number")?)? as usize;
            }
            "--filter" => o.filter = Some(value("a substring")?),
            "--scale" => {
                o.scale = Some(positive("bench", "--scale", &value("a number")?)?);
            }
            "--timeout" => {
                o.timeout = at_least_one("bench", "--timeout", &value("seconds")?)?;
            }
            "--quick" | "--no-build" if inline.is_some() => {
                return Err(format!("bench: {name} takes no value"))
            }
            "--quick" => o.quick = true,
            "--no-build" => o.no_build = true,
            _ => return Err(format!("bench: unknown option {arg:?}")),
        }
    }
    o.baseline.check("bench")?;
    Ok(Cmd::Bench(o))
}

fn parse_rss(args: &[String]) -> Result<Cmd, String> {
    let mut o = RssOpts::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = split_eq(arg);
        let mut value = |what: &str| -> Result<String, String> {
            inline
                .map(str::to_string)
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("rss: {name} needs {what}"))
        };
        match name {
            "--help" | "-h" => return Ok(Cmd::Help(Some("rss".into()))),
            "--runs" => {
                o.runs = at_least_one("rss", "--runs", &value("a number")?)? as usize;
            }
            "--scale" => {
                o.scale = positive("rss", "--scale", &value("a number")?)?;
            }
            "--timeout" => {
                o.timeout = at_least_one("rss", "--timeout", &value("seconds")?)?;
            }
            "--no-build" if inline.is_some() => return Err("rss: --no-build takes no value".into()),
            "--no-build" => o.no_build = true,
            _ => return Err(format!("rss: unknown option {arg:?}")),
        }
    }
    Ok(Cmd::Rss(o))
}

fn parse_cbench(args: &[String]) -> Result<Cmd, String> {
    let mut o = CbenchOpts::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = split_eq(arg);
        let mut value = |what: &str| -> Result<String, String> {
            inline
                .map(str::to_string)
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("cbench: {name} needs {what}"))
        };
        if o.baseline.take(name, &mut value)? {
            continue;
        }
        match name {
            "--help" | "-h" => return Ok(Cmd::Help(Some("cbench".into()))),
            "--runs" => {
                o.runs = at_least_one("cbench", "--runs", &value("a number")?)? as usize;
            }
            "--filter" => o.filter = Some(value("a substring")?),
            "--scale" => {
                o.scale = positive("cbench", "--scale", &value("a number")?)?;
            }
            "--timeout" => {
                o.timeout = at_least_one("cbench", "--timeout", &value("seconds")?)?;
            }
            "--no-build" if inline.is_some() => {
                return Err("cbench: --no-build takes no value".into())
            }
            "--no-build" => o.no_build = true,
            _ => return Err(format!("cbench: unknown option {arg:?}")),
        }
    }
    o.baseline.check("cbench")?;
    Ok(Cmd::Cbench(o))
}

fn parse_gcbench(args: &[String]) -> Result<Cmd, String> {
    let mut o = GcbenchOpts::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = split_eq(arg);
        let mut value = |what: &str| -> Result<String, String> {
            inline
                .map(str::to_string)
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("gcbench: {name} needs {what}"))
        };
        match name {
            "--help" | "-h" => return Ok(Cmd::Help(Some("gcbench".into()))),
            "--runs" => {
                o.runs = at_least_one("gcbench", "--runs", &value("a number")?)? as usize;
            }
            "--depth" => {
                o.depth = value("a number")?
                    .parse()
                    .ok()
                    .filter(|d| (4..=25).contains(d))
                    .ok_or("gcbench: --depth needs a whole number from 4 to 25")?;
            }
            "--filter" => o.filter = Some(value("a substring")?),
            "--timeout" => {
                o.timeout = at_least_one("gcbench", "--timeout", &value("seconds")?)?;
            }
            "--no-build" if inline.is_some() => {
                return Err("gcbench: --no-build takes no value".into())
            }
            "--no-build" => o.no_build = true,
            _ => return Err(format!("gcbench: unknown option {arg:?}")),
        }
    }
    Ok(Cmd::Gcbench(o))
}

fn parse_profile(args: &[String]) -> Result<Cmd, String> {
    let mut file = None;
    let mut o = ProfileOpts {
        file: PathBuf::new(),
        sample: None,
        top: 20,
        lines: false,
        svg: None,
        no_svg: false,
        keep_allocator_frames: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = split_eq(arg);
        let mut value = |what: &str| -> Result<String, String> {
            inline
                .map(str::to_string)
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("profile: {name} needs {what}"))
        };
        match name {
            "--help" | "-h" => return Ok(Cmd::Help(Some("profile".into()))),
            "--sample" => o.sample = Some(value("a sample type")?),
            "--top" => o.top = at_least_one("profile", "--top", &value("a number")?)? as usize,
            "--svg" => o.svg = Some(value("a path")?.into()),
            "--lines" | "--no-svg" | "--keep-allocator-frames" if inline.is_some() => {
                return Err(format!("profile: {name} takes no value"))
            }
            "--lines" => o.lines = true,
            "--no-svg" => o.no_svg = true,
            "--keep-allocator-frames" => o.keep_allocator_frames = true,
            _ if arg.starts_with('-') && arg != "-" => {
                return Err(format!("profile: unknown option {arg:?}"))
            }
            _ if file.is_some() => return Err(format!("profile: unexpected argument {arg:?}")),
            _ => file = Some(PathBuf::from(arg)),
        }
    }
    if o.svg.is_some() && o.no_svg {
        return Err("profile: --svg and --no-svg together".into());
    }
    o.file = file.ok_or("profile: no profile file given")?;
    Ok(Cmd::Profile(o))
}

/// A whole number of at least 1 for `flag` of command `cmd`.
fn at_least_one(cmd: &str, flag: &str, v: &str) -> Result<u64, String> {
    v.parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{cmd}: {flag} needs a whole number of at least 1"))
}

/// A positive finite number for `flag` of command `cmd`.
fn positive(cmd: &str, flag: &str, v: &str) -> Result<f64, String> {
    v.parse()
        .ok()
        .filter(|&s: &f64| s > 0.0 && s.is_finite())
        .ok_or_else(|| format!("{cmd}: {flag} needs a positive number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Cmd, String> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn commands() {
        assert_eq!(p(""), Ok(Cmd::Help(None)));
        assert_eq!(p("--help"), Ok(Cmd::Help(None)));
        assert_eq!(p("help bench"), Ok(Cmd::Help(Some("bench".into()))));
        assert_eq!(p("bench -h"), Ok(Cmd::Help(Some("bench".into()))));
        assert_eq!(p("sizeclasses"), Ok(Cmd::SizeClasses));
        assert!(p("sizeclasses x").is_err());
        assert!(p("frobnicate").is_err());
    }

    #[test]
    fn bench_options() {
        assert_eq!(p("bench"), Ok(Cmd::Bench(BenchOpts::default())));
        let Ok(Cmd::Bench(o)) = p("bench --runs 3 --filter=map --quick --no-build --timeout=9")
        else {
            panic!()
        };
        assert_eq!(o.runs, 3);
        assert_eq!(o.filter.as_deref(), Some("map"));
        assert!(o.quick && o.no_build);
        assert_eq!(o.timeout, 9);
        assert_eq!(o.scale(), 0.1);
        let Ok(Cmd::Bench(o)) = p("bench --quick --scale 0.5") else {
            panic!()
        };
        assert_eq!(o.scale(), 0.5);
        assert!(p("bench --runs").is_err());
        assert!(p("bench --runs 0").is_err());
        assert!(p("bench --runs x").is_err());
        assert!(p("bench --scale -1").is_err());
        assert!(p("bench --quick=1").is_err());
        assert!(p("bench --bogus").is_err());
    }

    #[test]
    fn rss_options() {
        assert_eq!(p("rss"), Ok(Cmd::Rss(RssOpts::default())));
        assert_eq!(p("rss --help"), Ok(Cmd::Help(Some("rss".into()))));
        let Ok(Cmd::Rss(o)) = p("rss --runs 1 --no-build --scale=0.1 --timeout 30") else {
            panic!()
        };
        assert_eq!(
            o,
            RssOpts {
                runs: 1,
                scale: 0.1,
                no_build: true,
                timeout: 30
            }
        );
        assert!(p("rss --runs 0").is_err());
        assert!(p("rss --scale 0").is_err());
        assert!(p("rss --no-build=1").is_err());
        assert!(p("rss --filter x").is_err());
    }

    #[test]
    fn cbench_options() {
        assert_eq!(p("cbench"), Ok(Cmd::Cbench(CbenchOpts::default())));
        assert_eq!(p("cbench -h"), Ok(Cmd::Help(Some("cbench".into()))));
        let Ok(Cmd::Cbench(o)) =
            p("cbench --runs 2 --filter=larson --no-build --scale 0.1 --timeout=30")
        else {
            panic!()
        };
        assert_eq!(
            o,
            CbenchOpts {
                runs: 2,
                filter: Some("larson".into()),
                scale: 0.1,
                no_build: true,
                timeout: 30,
                baseline: BaselineOpts::default(),
            }
        );
        assert!(p("cbench --runs 0").is_err());
        assert!(p("cbench --scale x").is_err());
        assert!(p("cbench --no-build=1").is_err());
        assert!(p("cbench --quick").is_err());
    }

    #[test]
    fn gcbench_options() {
        assert_eq!(p("gcbench"), Ok(Cmd::Gcbench(GcbenchOpts::default())));
        assert_eq!(p("gcbench --help"), Ok(Cmd::Help(Some("gcbench".into()))));
        let Ok(Cmd::Gcbench(o)) = p("gcbench --runs 3 --depth=16 --filter alloc --no-build") else {
            panic!()
        };
        assert_eq!(
            o,
            GcbenchOpts {
                runs: 3,
                depth: 16,
                filter: Some("alloc".into()),
                no_build: true,
                timeout: 600,
            }
        );
        assert_eq!(GcbenchOpts::default().depth, 20);
        assert!(p("gcbench --depth 3").is_err());
        assert!(p("gcbench --depth 26").is_err());
        assert!(p("gcbench --depth x").is_err());
        assert!(p("gcbench --runs 0").is_err());
        assert!(p("gcbench --no-build=1").is_err());
        assert!(p("gcbench --baseline x").is_err());
    }

    #[test]
    fn profile_options() {
        let Ok(Cmd::Profile(o)) = p("profile heap.pb.gz") else {
            panic!()
        };
        assert_eq!(o.file, PathBuf::from("heap.pb.gz"));
        assert_eq!((o.sample, o.top, o.svg), (None, 20, None));
        assert!(!o.lines && !o.no_svg && !o.keep_allocator_frames);
        let Ok(Cmd::Profile(o)) = p(
            "profile --top=5 --sample alloc_space h --svg /t/f.svg --lines --keep-allocator-frames",
        ) else {
            panic!()
        };
        assert_eq!(o.file, PathBuf::from("h"));
        assert_eq!(o.sample.as_deref(), Some("alloc_space"));
        assert_eq!(o.top, 5);
        assert_eq!(o.svg, Some(PathBuf::from("/t/f.svg")));
        assert!(o.lines && o.keep_allocator_frames);
        let Ok(Cmd::Profile(o)) = p("profile h --no-svg") else {
            panic!()
        };
        assert!(o.no_svg);
        assert_eq!(p("profile -h"), Ok(Cmd::Help(Some("profile".into()))));
        assert!(p("profile").unwrap_err().contains("no profile file"));
        assert!(p("profile a b")
            .unwrap_err()
            .contains("unexpected argument"));
        assert!(p("profile a --top 0").is_err());
        assert!(p("profile a --top").is_err());
        assert!(p("profile a --bogus").is_err());
        assert!(p("profile a --no-svg=1").is_err());
        assert!(p("profile a --no-svg --svg x").is_err());
    }

    #[test]
    fn baseline_options() {
        let base = |path: &str, name: Option<&str>| BaselineOpts {
            path: Some(path.into()),
            name: name.map(String::from),
            env: Vec::new(),
        };
        let Ok(Cmd::Cbench(o)) = p("cbench --baseline /tmp/libgoheap-base.so --runs 1") else {
            panic!()
        };
        assert_eq!(o.baseline, base("/tmp/libgoheap-base.so", None));
        assert_eq!(o.runs, 1);
        let Ok(Cmd::Cbench(o)) = p("cbench --baseline-name=v0.1 --baseline=old/libgoheap.so")
        else {
            panic!()
        };
        assert_eq!(o.baseline, base("old/libgoheap.so", Some("v0.1")));
        let Ok(Cmd::Bench(o)) = p("bench --quick --baseline /o/bench-goheap --baseline-name old")
        else {
            panic!()
        };
        assert_eq!(o.baseline, base("/o/bench-goheap", Some("old")));
        assert!(o.quick);
        // Without the option, nothing changes.
        assert_eq!(BenchOpts::default().baseline, BaselineOpts::default());
        for cmd in ["bench", "cbench"] {
            let e = |args: &str| p(&format!("{cmd} {args}")).unwrap_err();
            assert!(e("--baseline").contains("--baseline needs a path"));
            assert!(e("--baseline-name x").contains("--baseline-name needs --baseline"));
            assert!(e("--baseline b --baseline-name").contains("needs a name"));
            for bad in ["a,b", "a\"b", "a/b", "x=y"] {
                let err = e(&format!("--baseline b --baseline-name {bad}"));
                assert!(
                    err.starts_with(&format!("{cmd}: --baseline-name needs")),
                    "{err}"
                );
            }
            assert!(e("--baseline b --baseline-name=").contains("letters, digits"));
        }
        assert!(p("rss --baseline b").is_err());
        // The same build with an option on, set for its runs only.
        let Ok(Cmd::Cbench(o)) = p(
            "cbench --baseline l.so --baseline-env GOHEAP_PROFILE_RATE=524288 --baseline-env A=b=c",
        ) else {
            panic!()
        };
        let env = vec![
            ("GOHEAP_PROFILE_RATE".to_string(), "524288".to_string()),
            ("A".to_string(), "b=c".to_string()),
        ];
        assert_eq!(o.baseline.env, env);
        for cmd in ["bench", "cbench"] {
            let e = |args: &str| p(&format!("{cmd} {args}")).unwrap_err();
            assert!(e("--baseline-env A=1").contains("--baseline-env needs --baseline"));
            assert!(e("--baseline b --baseline-env A").contains("needs NAME=VALUE"));
            assert!(e("--baseline b --baseline-env =1").contains("needs NAME=VALUE"));
        }
    }
}
