//! Turning raw runs into medians, ratios, tables, a text chart and CSV.

use std::fmt::Write;

use crate::proc::Measured;

/// The allocators compared, in run order. goheap first: it is the subject.
pub(crate) const ALLOCATORS: [&str; 4] = ["goheap", "system", "mimalloc", "jemalloc"];
/// The allocator every chart is relative to.
pub(crate) const BASELINE: &str = "mimalloc";
/// The peers goheap is divided by in the tables, in column order.
pub(crate) const PEERS: [&str; 3] = ["mimalloc", "jemalloc", "system"];

/// The allocators of a suite and how goheap is compared with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lineup {
    /// Every allocator, in run order; `"goheap"` among them.
    pub(crate) allocators: &'static [&'static str],
    /// The peers goheap is divided by in the tables, in column order.
    pub(crate) peers: &'static [&'static str],
    /// The allocator the charts are relative to.
    pub(crate) baseline: &'static str,
}

/// `goheap bench`: Rust binaries, one per `#[global_allocator]`.
pub(crate) const RUST_LINEUP: Lineup = Lineup {
    allocators: &ALLOCATORS,
    peers: &PEERS,
    baseline: BASELINE,
};

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
    let peers = s.lineup.peers;
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
            for a in s.lineup.allocators {
                row.push(s.cell(w, a).map_or("-".into(), |c| {
                    format!("{:.3} s / {:.1} MiB", c.wall, c.rss_mib)
                }));
            }
            row
        })
        .collect();
    table(&header, &rows)
}

/// A text bar chart of each allocator's wall time relative to the
/// lineup's baseline.
pub(crate) fn text_chart(s: &Summary) -> String {
    const PER_UNIT: f64 = 20.0; // characters for a ratio of 1.0
    const CAP: f64 = 3.0;
    let baseline = s.lineup.baseline;
    let mut out = format!(
        "wall time relative to {baseline} (shorter is faster; each # is {:.2}; '|' marks 1.0, bars stop at {CAP:.1})\n",
        1.0 / PER_UNIT
    );
    let name_w = s
        .workloads
        .iter()
        .map(|w| w.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let mut group = |label: &str, ratio: &dyn Fn(&str) -> Option<f64>| {
        for (i, a) in s.lineup.allocators.iter().enumerate() {
            let first = if i == 0 { label } else { "" };
            let _ = write!(out, "{first:<name_w$}  {a:<8} ");
            match ratio(a) {
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
    };
    for (w, name) in s.workloads.iter().enumerate() {
        group(name, &|a| s.ratio(w, a, baseline, Metric::Wall));
    }
    group("geomean", &|a| s.geo_ratio(a, baseline, Metric::Wall));
    out
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
pub(crate) fn write_outputs<const N: usize>(
    cmd: &str,
    out_dir: &std::path::Path,
    files: [(&str, String); N],
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
