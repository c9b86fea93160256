//! Turning raw runs into medians, ratios, tables, a text chart and CSV.

use std::borrow::Cow;
use std::fmt::Write;

use crate::proc::Measured;

/// The allocators compared, in run order. goheap first: it is the subject.
pub(crate) const ALLOCATORS: [&str; 4] = ["goheap", "system", "mimalloc", "jemalloc"];
/// The allocator every chart is relative to.
pub(crate) const BASELINE: &str = "mimalloc";
/// The peers goheap is divided by in the tables, in column order.
pub(crate) const PEERS: [&str; 3] = ["mimalloc", "jemalloc", "system"];

/// The name of the earlier build of goheap that `--baseline` adds, unless
/// `--baseline-name` gives another.
pub(crate) const GOHEAP_BASE: &str = "goheap-base";

/// The allocators of a suite and how goheap is compared with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lineup {
    /// Every allocator, in run order; `"goheap"` among them.
    pub(crate) allocators: Cow<'static, [&'static str]>,
    /// The peers goheap is divided by in the tables, in column order.
    pub(crate) peers: Cow<'static, [&'static str]>,
    /// The allocator the charts are relative to.
    pub(crate) baseline: &'static str,
    /// An earlier build of goheap (`--baseline`), also among the
    /// allocators and the peers: run, checked and reported like goheap,
    /// and compared with goheap in a chart of its own.
    pub(crate) goheap_base: Option<&'static str>,
}

/// `goheap bench`: Rust binaries, one per `#[global_allocator]`.
pub(crate) const RUST_LINEUP: Lineup = Lineup {
    allocators: Cow::Borrowed(&ALLOCATORS),
    peers: Cow::Borrowed(&PEERS),
    baseline: BASELINE,
    goheap_base: None,
};

impl Lineup {
    /// This lineup with an earlier build of goheap named `name`: run right
    /// after goheap, and the first peer goheap is divided by. Fails if
    /// `name` is already an allocator of the lineup.
    pub(crate) fn with_goheap_base(self, name: &'static str) -> Result<Lineup, String> {
        if self.allocators.contains(&name) {
            return Err(format!(
                "the baseline cannot be named {name:?}: that is an allocator of the lineup ({})",
                self.allocators.join(", ")
            ));
        }
        let mut allocators = self.allocators.into_owned();
        let at = allocators
            .iter()
            .position(|&a| a == "goheap")
            .map_or(0, |i| i + 1);
        allocators.insert(at, name);
        let mut peers = self.peers.into_owned();
        peers.insert(0, name);
        Ok(Lineup {
            allocators: allocators.into(),
            peers: peers.into(),
            goheap_base: Some(name),
            ..self
        })
    }

    /// Whether `alloc` is a build of goheap (goheap, or its earlier build):
    /// one that reports goheap's statistics.
    pub(crate) fn is_goheap(&self, alloc: &str) -> bool {
        alloc == "goheap" || self.goheap_base == Some(alloc)
    }
}

/// One run of one workload under one allocator, in its own process.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// Round, from 1.
    pub(crate) round: usize,
    /// Workload name.
    pub(crate) workload: &'static str,
    /// Allocator name (one of the suite's [`Lineup::allocators`]).
    pub(crate) alloc: &'static str,
    /// The workload scale passed to the binary.
    pub(crate) scale: f64,
    /// The measurements.
    pub(crate) m: Measured,
    /// The checksum the binary printed, if it printed one.
    pub(crate) checksum: Option<String>,
    /// The workload time measured inside the process, if printed.
    pub(crate) inproc: Option<f64>,
    /// Further `key=value` pairs printed (allocator statistics).
    pub(crate) extra: String,
}

impl Record {
    /// Fills in the fields parsed from the binary's result line.
    pub(crate) fn parse_stdout(&mut self) {
        let line = self
            .m
            .stdout
            .lines()
            .find(|l| l.contains("checksum="))
            .unwrap_or("");
        let mut extra = Vec::new();
        for kv in line.split_whitespace() {
            match kv.split_once('=') {
                Some(("checksum", v)) => self.checksum = Some(v.to_string()),
                Some(("secs", v)) => self.inproc = v.parse().ok(),
                Some(("workload" | "alloc" | "scale", _)) => {}
                _ => extra.push(kv),
            }
        }
        self.extra = extra.join(" ");
        if self.m.failure.is_none() && self.checksum.is_none() {
            self.m.failure = Some("printed no checksum".to_string());
        }
    }

    /// Whether the run finished normally with a checksum.
    pub(crate) fn ok(&self) -> bool {
        self.m.failure.is_none()
    }

    /// The value of `key=` among the run's extra `key=value` pairs.
    pub(crate) fn extra_value(&self, key: &str) -> Option<&str> {
        self.extra
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    }

    /// User plus system CPU seconds.
    pub(crate) fn cpu(&self) -> f64 {
        self.m.user + self.m.sys
    }
}

/// The median of `v` (`None` if empty).
pub(crate) fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The geometric mean of the positive values of `v` (`None` if none).
pub(crate) fn geomean(v: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (sum, n) = v
        .into_iter()
        .filter(|x| *x > 0.0 && x.is_finite())
        .fold((0.0, 0usize), |(s, n), x| (s + x.ln(), n + 1));
    (n > 0).then(|| (sum / n as f64).exp())
}

/// Medians of one workload under one allocator.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cell {
    /// Median wall seconds.
    pub(crate) wall: f64,
    /// Median user+system CPU seconds.
    pub(crate) cpu: f64,
    /// Median peak RSS, MiB.
    pub(crate) rss_mib: f64,
}

/// Which metric of a [`Cell`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Metric {
    /// Wall time.
    Wall,
    /// CPU time.
    Cpu,
    /// Peak RSS.
    Rss,
}

impl Cell {
    fn get(&self, m: Metric) -> f64 {
        match m {
            Metric::Wall => self.wall,
            Metric::Cpu => self.cpu,
            Metric::Rss => self.rss_mib,
        }
    }
}

/// A checksum seen for a workload, with the allocator and round of its
/// first appearance.
pub(crate) type Seen = (String, &'static str, usize);

/// Medians for every workload × allocator, plus the checksum verdicts.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    /// The allocators compared.
    pub(crate) lineup: Lineup,
    /// Workload names, in report order.
    pub(crate) workloads: Vec<&'static str>,
    /// `cells[w][a]`: workload `w`, allocator `lineup.allocators[a]`;
    /// `None` if no run succeeded.
    pub(crate) cells: Vec<Vec<Option<Cell>>>,
    /// Workloads whose runs disagree on the checksum, with the distinct
    /// `(checksum, allocator, round)` seen.
    pub(crate) mismatches: Vec<(&'static str, Vec<Seen>)>,
    /// Runs that failed: `(workload, allocator, round, what)`.
    pub(crate) failures: Vec<(&'static str, &'static str, usize, String)>,
}

impl Summary {
    /// `!!!` lines for checksum mismatches and failed runs (empty if none).
    pub(crate) fn problems(&self) -> String {
        let mut notes = String::new();
        for (w, seen) in &self.mismatches {
            notes.push_str(&format!("!!! CHECKSUM MISMATCH in {w}:"));
            for (c, a, round) in seen {
                notes.push_str(&format!(" {c} ({a}, round {round})"));
            }
            notes.push('\n');
        }
        for (w, a, round, f) in &self.failures {
            notes.push_str(&format!(
                "!!! FAILED RUN: {w} under {a}, round {round}: {f}\n"
            ));
        }
        notes
    }

    /// Summarises `records` of the allocators of `lineup` for `workloads`.
    pub(crate) fn new(lineup: Lineup, workloads: &[&'static str], records: &[Record]) -> Summary {
        let mut cells = Vec::new();
        let mut mismatches = Vec::new();
        for &w in workloads {
            let mut row = vec![None; lineup.allocators.len()];
            for (a, &alloc) in lineup.allocators.iter().enumerate() {
                let runs: Vec<&Record> = records
                    .iter()
                    .filter(|r| r.workload == w && r.alloc == alloc && r.ok())
                    .collect();
                let pick = |f: &dyn Fn(&Record) -> f64| {
                    median(&mut runs.iter().map(|r| f(r)).collect::<Vec<_>>())
                };
                if let (Some(wall), Some(cpu), Some(rss)) = (
                    pick(&|r| r.m.wall),
                    pick(&Record::cpu),
                    pick(&|r| r.m.maxrss_kib as f64 / 1024.0),
                ) {
                    row[a] = Some(Cell {
                        wall,
                        cpu,
                        rss_mib: rss,
                    });
                }
            }
            cells.push(row);
            let mut seen: Vec<Seen> = Vec::new();
            for r in records.iter().filter(|r| r.workload == w) {
                if let Some(c) = &r.checksum {
                    if !seen.iter().any(|(s, _, _)| s == c) {
                        seen.push((c.clone(), r.alloc, r.round));
                    }
                }
            }
            if seen.len() > 1 {
                mismatches.push((w, seen));
            }
        }
        let failures = records
            .iter()
            .filter_map(|r| {
                r.m.failure
                    .as_ref()
                    .map(|f| (r.workload, r.alloc, r.round, f.clone()))
            })
            .collect();
        Summary {
            lineup,
            workloads: workloads.to_vec(),
            cells,
            mismatches,
            failures,
        }
    }

    /// The cell of workload index `w`, allocator `alloc`.
    pub(crate) fn cell(&self, w: usize, alloc: &str) -> Option<Cell> {
        let a = self.lineup.allocators.iter().position(|&x| x == alloc)?;
        self.cells[w][a]
    }

    /// `alloc`'s metric divided by `base`'s for workload index `w`.
    pub(crate) fn ratio(&self, w: usize, alloc: &str, base: &str, m: Metric) -> Option<f64> {
        let (x, y) = (self.cell(w, alloc)?.get(m), self.cell(w, base)?.get(m));
        (y > 0.0).then(|| x / y)
    }

    /// The geometric mean over workloads of [`ratio`](Self::ratio).
    pub(crate) fn geo_ratio(&self, alloc: &str, base: &str, m: Metric) -> Option<f64> {
        geomean((0..self.workloads.len()).filter_map(|w| self.ratio(w, alloc, base, m)))
    }

    /// Whether every run succeeded and every checksum agreed.
    pub(crate) fn clean(&self) -> bool {
        self.mismatches.is_empty() && self.failures.is_empty()
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_string(), |r| format!("{r:.2}"))
}

/// Lays out a markdown table with aligned columns (first column left, the
/// rest right-aligned).
pub(crate) fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let width = |c: usize| {
        rows.iter()
            .map(|r| r[c].chars().count())
            .chain([header[c].chars().count(), 3])
            .max()
            .unwrap_or(3)
    };
    let widths: Vec<usize> = (0..cols).map(width).collect();
    let line = |cells: &[String]| {
        let mut s = String::from("|");
        for (c, cell) in cells.iter().enumerate() {
            if c == 0 {
                let _ = write!(s, " {cell:<w$} |", w = widths[c]);
            } else {
                let _ = write!(s, " {cell:>w$} |", w = widths[c]);
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(header);
    out.push('|');
    for (c, w) in widths.iter().enumerate() {
        if c == 0 {
            let _ = write!(out, "{}|", "-".repeat(w + 2));
        } else {
            let _ = write!(out, "{}:|", "-".repeat(w + 1));
        }
    }
    out.push('\n');
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

/// The main table: goheap's medians and its ratios to each peer, for time
/// (`time` = wall or CPU) and, with `rss`, peak RSS; with a geometric-mean
/// row.
pub(crate) fn main_table(s: &Summary, time: Metric, rss: bool) -> String {
    let tname = if time == Metric::Cpu { "CPU" } else { "time" };
    let mut header = vec!["workload".to_string(), format!("goheap {tname}")];
    if rss {
        header.push("goheap RSS".to_string());
    }
    let peers = &s.lineup.peers;
    header.extend(peers.iter().map(|p| format!("{tname} ÷ {p}")));
    if rss {
        header.extend(peers.iter().map(|p| format!("RSS ÷ {p}")));
    }
    let mut rows = Vec::new();
    for (w, name) in s.workloads.iter().enumerate() {
        let g = s.cell(w, "goheap");
        let mut row = vec![
            name.to_string(),
            g.map_or("-".into(), |c| format!("{:.3} s", c.get(time))),
        ];
        if rss {
            row.push(g.map_or("-".into(), |c| format!("{:.1} MiB", c.rss_mib)));
        }
        row.extend(
            peers
                .iter()
                .map(|p| fmt_ratio(s.ratio(w, "goheap", p, time))),
        );
        if rss {
            row.extend(
                peers
                    .iter()
                    .map(|p| fmt_ratio(s.ratio(w, "goheap", p, Metric::Rss))),
            );
        }
        rows.push(row);
    }
    let mut row = vec!["geomean".to_string(), String::new()];
    if rss {
        row.push(String::new());
    }
    row.extend(
        peers
            .iter()
            .map(|p| fmt_ratio(s.geo_ratio("goheap", p, time))),
    );
    if rss {
        row.extend(
            peers
                .iter()
                .map(|p| fmt_ratio(s.geo_ratio("goheap", p, Metric::Rss))),
        );
    }
    rows.push(row);
    table(&header, &rows)
}

/// Every allocator's median wall time and peak RSS.
pub(crate) fn medians_table(s: &Summary) -> String {
    let mut header = vec!["workload".to_string()];
    header.extend(s.lineup.allocators.iter().map(|a| a.to_string()));
    let rows: Vec<Vec<String>> = s
        .workloads
        .iter()
        .enumerate()
        .map(|(w, name)| {
            let mut row = vec![name.to_string()];
            for a in s.lineup.allocators.iter() {
                row.push(s.cell(w, a).map_or("-".into(), |c| {
                    format!("{:.3} s / {:.1} MiB", c.wall, c.rss_mib)
                }));
            }
            row
        })
        .collect();
    table(&header, &rows)
}

/// Characters of a text-chart bar for a ratio of 1.0.
const PER_UNIT: f64 = 20.0;
/// Text-chart bars stop at this ratio.
const CAP: f64 = 3.0;

/// Writes one line of a text chart: the group `label` (`name_w` wide), the
/// series label (`series_w` wide), a bar for `r` with `'|'` at 1.0, and `r`.
pub(crate) fn bar_line(
    out: &mut String,
    (name_w, series_w): (usize, usize),
    label: &str,
    series: &str,
    r: Option<f64>,
) {
    let _ = write!(out, "{label:<name_w$}  {series:<series_w$} ");
    match r {
        None => out.push_str("(no data)\n"),
        Some(r) => {
            let n = (r.min(CAP) * PER_UNIT).round() as usize;
            let mark = PER_UNIT as usize;
            let mut bar: String = (0..n.max(mark + 1))
                .map(|c| match (c < n, c == mark) {
                    (_, true) => '|',
                    (true, false) => '#',
                    (false, false) => ' ',
                })
                .collect();
            if r > CAP {
                bar.push('>');
            }
            let pad = (CAP * PER_UNIT) as usize + 2;
            let _ = writeln!(out, "{bar:<pad$} {r:.2}");
        }
    }
}

/// A text bar chart of each allocator's wall time relative to the
/// lineup's baseline; with an earlier build of goheap in the lineup, then
/// goheap's wall time and peak RSS relative to that build.
pub(crate) fn text_chart(s: &Summary) -> String {
    let baseline = s.lineup.baseline;
    let mut out = format!(
        "wall time relative to {baseline} (shorter is faster; each # is {:.2}; '|' marks 1.0, bars stop at {CAP:.1})\n",
        1.0 / PER_UNIT
    );
    let (main, base) = (s.series(Metric::Wall), s.base_series());
    let name_w = s
        .workloads
        .iter()
        .map(|w| w.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let series_w = main
        .iter()
        .chain(&base)
        .map(|x| x.label.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let widths = (name_w, series_w);
    bar_groups(&mut out, s, widths, &main);
    if let Some(x) = base.first() {
        let _ = writeln!(
            out,
            "\n{} relative to {} (this build ÷ the earlier one; below 1.0 it is faster or smaller)",
            x.alloc, x.over
        );
        bar_groups(&mut out, s, widths, &base);
    }
    out
}

/// Writes the bar lines of every group of `s`, one per series.
fn bar_groups(out: &mut String, s: &Summary, widths: (usize, usize), series: &[Series]) {
    for (label, w) in s.groups() {
        for (i, x) in series.iter().enumerate() {
            let first = if i == 0 { label } else { "" };
            bar_line(out, widths, first, x.label, s.series_ratio(w, x));
        }
    }
}

/// One bar of every group of a chart: the ratio `alloc ÷ over` of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Series {
    /// What the bar is called in the chart.
    pub(crate) label: &'static str,
    /// The allocator divided.
    pub(crate) alloc: &'static str,
    /// The allocator it is divided by.
    pub(crate) over: &'static str,
    /// The metric.
    pub(crate) metric: Metric,
}

impl Summary {
    /// The groups of a chart: each workload (`Some(index)`), then the
    /// geometric mean (`None`).
    pub(crate) fn groups(&self) -> impl Iterator<Item = (&'static str, Option<usize>)> + '_ {
        let workloads = self
            .workloads
            .iter()
            .enumerate()
            .map(|(w, &n)| (n, Some(w)));
        workloads.chain([("geomean", None)])
    }

    /// The ratio of `x` for workload `Some(w)`, or its geometric mean for
    /// `None` (see [`groups`](Self::groups)).
    pub(crate) fn series_ratio(&self, w: Option<usize>, x: &Series) -> Option<f64> {
        match w {
            Some(w) => self.ratio(w, x.alloc, x.over, x.metric),
            None => self.geo_ratio(x.alloc, x.over, x.metric),
        }
    }

    /// Every allocator's `metric` relative to the lineup's baseline.
    pub(crate) fn series(&self, metric: Metric) -> Vec<Series> {
        let over = self.lineup.baseline;
        self.lineup
            .allocators
            .iter()
            .map(|&a| Series {
                label: a,
                alloc: a,
                over,
                metric,
            })
            .collect()
    }

    /// goheap's wall time and peak RSS relative to its earlier build, if
    /// the lineup has one (else empty).
    pub(crate) fn base_series(&self) -> Vec<Series> {
        let Some(over) = self.lineup.goheap_base else {
            return Vec::new();
        };
        [("goheap time", Metric::Wall), ("goheap RSS", Metric::Rss)]
            .map(|(label, metric)| Series {
                label,
                alloc: "goheap",
                over,
                metric,
            })
            .to_vec()
    }
}

/// goheap's medians, its earlier build's and their ratios, per workload and
/// as geometric means, as CSV (`None` without an earlier build).
pub(crate) fn base_csv(s: &Summary) -> Option<String> {
    let base = s.lineup.goheap_base?;
    let mut out = format!("workload,metric,goheap,{base},ratio\n");
    for (label, w) in s.groups() {
        for (metric, m) in [
            ("wall_s", Metric::Wall),
            ("cpu_s", Metric::Cpu),
            ("maxrss_mib", Metric::Rss),
        ] {
            let value = |a: &str| {
                w.and_then(|w| s.cell(w, a))
                    .map_or(String::new(), |c| format!("{:.6}", c.get(m)))
            };
            let x = Series {
                label,
                alloc: "goheap",
                over: base,
                metric: m,
            };
            let ratio = s
                .series_ratio(w, &x)
                .map_or(String::new(), |r| format!("{r:.6}"));
            let _ = writeln!(
                out,
                "{label},{metric},{},{},{ratio}",
                value("goheap"),
                value(base)
            );
        }
    }
    Some(out)
}

/// Every raw run as CSV, one line per run.
pub(crate) fn csv(records: &[Record]) -> String {
    let mut out = String::from(
        "round,workload,alloc,scale,wall_s,user_s,sys_s,cpu_s,maxrss_kib,checksum,inproc_s,status,extra\n",
    );
    for r in records {
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let _ = writeln!(
            out,
            "{},{},{},{},{:.6},{:.6},{:.6},{:.6},{},{},{},{},{}",
            r.round,
            r.workload,
            r.alloc,
            r.scale,
            r.m.wall,
            r.m.user,
            r.m.sys,
            r.cpu(),
            r.m.maxrss_kib,
            r.checksum.as_deref().unwrap_or(""),
            r.inproc.map_or(String::new(), |t| format!("{t:.6}")),
            quote(r.m.failure.as_deref().unwrap_or("ok")),
            quote(&r.extra),
        );
    }
    out
}

/// Writes each `(file name, contents)` into `out_dir`, says so, and turns
/// the summary into the command's exit code (failure on any checksum
/// mismatch or failed run).
pub(crate) fn write_outputs(
    cmd: &str,
    out_dir: &std::path::Path,
    files: Vec<(&str, String)>,
    summary: &Summary,
) -> Result<std::process::ExitCode, String> {
    for (name, contents) in files {
        let path = out_dir.join(name);
        std::fs::write(&path, contents)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if summary.clean() {
        Ok(std::process::ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{cmd}: {} checksum mismatch(es), {} failed run(s): see above",
            summary.mismatches.len(),
            summary.failures.len()
        );
        Ok(std::process::ExitCode::FAILURE)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record with the given numbers and a successful result line.
    pub(crate) fn rec(
        round: usize,
        workload: &'static str,
        alloc: &'static str,
        wall: f64,
        rss_kib: u64,
        checksum: &str,
    ) -> Record {
        let mut r = Record {
            round,
            workload,
            alloc,
            scale: 1.0,
            m: Measured {
                wall,
                user: wall * 0.9,
                sys: wall * 0.05,
                maxrss_kib: rss_kib,
                stdout: format!(
                    "workload={workload} alloc={alloc} scale=1 checksum={checksum} secs=0.1 goheap_mallocs=5\n"
                ),
                ..Measured::default()
            },
            checksum: None,
            inproc: None,
            extra: String::new(),
        };
        r.parse_stdout();
        r
    }

    /// Two workloads, every allocator, three rounds, goheap 1.5× mimalloc's
    /// time and half its RSS.
    pub(crate) fn sample() -> (Vec<&'static str>, Vec<Record>) {
        let mut v = Vec::new();
        for round in 1..=3 {
            for w in ["churn", "large"] {
                for (a, t, m) in [
                    ("goheap", 1.5, 1000),
                    ("system", 2.0, 1500),
                    ("mimalloc", 1.0, 2000),
                    ("jemalloc", 1.2, 1800),
                ] {
                    v.push(rec(round, w, a, t * round as f64, m, "abc"));
                }
            }
        }
        (vec!["churn", "large"], v)
    }

    #[test]
    fn median_and_geomean() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        let g = geomean([2.0, 8.0]).unwrap();
        assert!((g - 4.0).abs() < 1e-12);
        assert_eq!(geomean([]), None);
    }

    #[test]
    fn parses_the_result_line() {
        let r = rec(1, "churn", "goheap", 1.0, 100, "00ff");
        assert_eq!(r.checksum.as_deref(), Some("00ff"));
        assert_eq!(r.inproc, Some(0.1));
        assert_eq!(r.extra, "goheap_mallocs=5");
        assert!(r.ok());
        let mut bad = r.clone();
        bad.m.stdout = String::new();
        bad.checksum = None;
        bad.parse_stdout();
        assert!(!bad.ok());
    }

    #[test]
    fn ratios_and_tables() {
        let (w, recs) = sample();
        let s = Summary::new(RUST_LINEUP, &w, &recs);
        assert!(s.clean());
        let r = s.ratio(0, "goheap", "mimalloc", Metric::Wall).unwrap();
        assert!((r - 1.5).abs() < 1e-9);
        let r = s.geo_ratio("goheap", "mimalloc", Metric::Rss).unwrap();
        assert!((r - 0.5).abs() < 1e-9);
        let c = main_table(&s, Metric::Cpu, false);
        assert!(!c.contains("RSS"), "{c}");
        assert_eq!(c.lines().next().unwrap().matches('|').count(), 6);
        let t = main_table(&s, Metric::Wall, true);
        assert!(t.contains("| geomean"), "{t}");
        assert!(t.contains("1.50"), "{t}");
        assert!(t.contains("0.50"), "{t}");
        assert_eq!(t.lines().count(), 2 + 2 + 1);
        let m = medians_table(&s);
        assert!(m.contains("4.000 s / 1.5 MiB"), "{m}");
        let c = text_chart(&s);
        assert!(c.contains("1.50") && c.contains('|'), "{c}");
        let csv = csv(&recs);
        assert_eq!(csv.lines().count(), 1 + recs.len());
        assert!(csv.lines().nth(1).unwrap().starts_with("1,churn,goheap,1,"));
    }

    /// [`sample`] with an earlier build of goheap, `goheap-base`: goheap
    /// takes 0.60 of its time and 1.33 of its RSS.
    pub(crate) fn sample_with_base() -> (Lineup, Vec<&'static str>, Vec<Record>) {
        let (w, mut v) = sample();
        for round in 1..=3 {
            for &wl in &w {
                v.push(rec(round, wl, GOHEAP_BASE, 2.5 * round as f64, 750, "abc"));
            }
        }
        let lineup = RUST_LINEUP.with_goheap_base(GOHEAP_BASE).unwrap();
        (lineup, w, v)
    }

    #[test]
    fn lineup_with_an_earlier_build() {
        let l = RUST_LINEUP.with_goheap_base("old").unwrap();
        assert_eq!(
            *l.allocators,
            ["goheap", "old", "system", "mimalloc", "jemalloc"]
        );
        assert_eq!(*l.peers, ["old", "mimalloc", "jemalloc", "system"]);
        assert_eq!((l.baseline, l.goheap_base), (BASELINE, Some("old")));
        assert!(l.is_goheap("goheap") && l.is_goheap("old") && !l.is_goheap("system"));
        assert!(!RUST_LINEUP.is_goheap("old") && RUST_LINEUP.goheap_base.is_none());
        let e = RUST_LINEUP.with_goheap_base("mimalloc").unwrap_err();
        assert!(e.contains("\"mimalloc\""), "{e}");
        assert!(RUST_LINEUP.with_goheap_base("goheap").is_err());
    }

    #[test]
    fn reports_goheap_over_its_earlier_build() {
        let (lineup, w, recs) = sample_with_base();
        let s = Summary::new(lineup, &w, &recs);
        assert!(s.clean());
        let r = s.geo_ratio("goheap", GOHEAP_BASE, Metric::Wall).unwrap();
        assert!((r - 0.6).abs() < 1e-9);
        // The main tables: the earlier build is the first peer, in the
        // per-workload rows and the geomean.
        let t = main_table(&s, Metric::Wall, true);
        let header = t.lines().next().unwrap();
        assert!(
            header.contains("| time ÷ goheap-base | time ÷ mimalloc |")
                && header.contains("| RSS ÷ goheap-base | RSS ÷ mimalloc |"),
            "{t}"
        );
        for line in t.lines().skip(2) {
            assert!(line.contains("0.60") && line.contains("1.33"), "{line}");
        }
        let c = main_table(&s, Metric::Cpu, false);
        assert!(c.contains("CPU ÷ goheap-base") && c.contains("0.60"), "{c}");
        assert!(medians_table(&s)
            .lines()
            .next()
            .unwrap()
            .contains(" goheap-base "));
        // The text chart: the earlier build among the allocators, then
        // goheap relative to it.
        let chart = text_chart(&s);
        let (main, before) = chart
            .split_once("\ngoheap relative to goheap-base")
            .unwrap();
        assert!(main.contains("goheap-base"), "{chart}");
        assert_eq!(before.matches("goheap time ").count(), 3, "{chart}");
        assert_eq!(before.matches("goheap RSS ").count(), 3, "{chart}");
        assert!(
            before.contains(" 0.60\n") && before.contains(" 1.33\n"),
            "{chart}"
        );
        // The CSV of the ratios.
        let csv = base_csv(&s).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "workload,metric,goheap,goheap-base,ratio");
        assert_eq!(lines.len(), 1 + 3 * 3);
        assert_eq!(lines[1], "churn,wall_s,3.000000,5.000000,0.600000");
        assert!(lines[3].starts_with("churn,maxrss_mib,0.976562,0.732422,1.333333"));
        assert_eq!(lines[7], "geomean,wall_s,,,0.600000");
        // Without an earlier build: no such CSV, no such chart.
        let (w, recs) = sample();
        let plain = Summary::new(RUST_LINEUP, &w, &recs);
        assert!(base_csv(&plain).is_none());
        assert!(!text_chart(&plain).contains("relative to goheap-base"));
    }

    #[test]
    fn mismatches_and_failures_are_found() {
        let (w, mut recs) = sample();
        recs.push(rec(4, "large", "jemalloc", 1.0, 100, "bad"));
        let mut failed = rec(4, "churn", "system", 1000.0, 100, "abc");
        failed.m.failure = Some("killed by signal 11".into());
        recs.push(failed);
        let s = Summary::new(RUST_LINEUP, &w, &recs);
        assert!(!s.clean());
        assert_eq!(s.mismatches.len(), 1);
        assert_eq!(s.mismatches[0].0, "large");
        assert_eq!(s.failures.len(), 1);
        // The failed run does not count in the medians.
        assert_eq!(s.cell(0, "system").unwrap().wall, 4.0);
    }
}
