//! `goheap rss`: run the bursty workload (load, idle, load, idle, …) under
//! every allocator and report its RSS over time: the peak, the RSS one
//! second into each idle phase against the live bytes, and how long RSS
//! takes to fall back to 1.1 × live + 8 MiB once the load stops; with an
//! SVG line chart and a CSV of every sample.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::args::RssOpts;
use crate::bench::{self, mmss};
use crate::proc;
use crate::report::{self, median, Record, ALLOCATORS};
use crate::svg::{esc, COLORS};

/// The workload this command runs.
const WORKLOAD: &str = "bursty";
const MIB: f64 = 1024.0 * 1024.0;
/// The goal (issue 4): within 1 s of an idle start, RSS ≤ `FACTOR` × live +
/// `SLACK`.
const FACTOR: f64 = 1.1;
const SLACK: f64 = 8.0 * MIB;
/// How far into each idle phase RSS is read, ms.
const AT_MS: f64 = 1000.0;

/// The RSS goal for `live` bytes: 1.1 × live + 8 MiB.
fn goal(live: u64) -> f64 {
    FACTOR * live as f64 + SLACK
}

/// One sample printed by the workload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    /// Milliseconds since the workload started.
    pub(crate) t_ms: f64,
    /// Resident set size, bytes.
    pub(crate) rss: u64,
    /// Bytes the workload had allocated and not freed.
    pub(crate) live: u64,
    /// Phase name: `start`, `load1`, `idle1`, ….
    pub(crate) phase: String,
}

/// What the workload printed: its parameters line, phase start times and
/// samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Series {
    /// The `key=value` pairs of the `# bursty:` line.
    pub(crate) params: Vec<(String, String)>,
    /// `(phase, start ms)` in order.
    pub(crate) phases: Vec<(String, f64)>,
    /// Every sample, in time order.
    pub(crate) samples: Vec<Sample>,
}

impl Series {
    /// Parses the workload's stdout (the result line is ignored here).
    pub(crate) fn parse(stdout: &str) -> Series {
        let mut s = Series::default();
        for line in stdout.lines() {
            if let Some(rest) = line.strip_prefix("# bursty:") {
                s.params = rest
                    .split_whitespace()
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
            } else if let Some(rest) = line.strip_prefix("# phase ") {
                let mut f = rest.split_whitespace();
                if let (Some(name), Some(Ok(t))) = (f.next(), f.next().map(str::parse)) {
                    s.phases.push((name.to_string(), t));
                }
            } else if !line.starts_with('#') {
                let f: Vec<&str> = line.split_whitespace().collect();
                if let [t, rss, live, phase] = f[..] {
                    if let (Ok(t_ms), Ok(rss), Ok(live)) = (t.parse(), rss.parse(), live.parse()) {
                        s.samples.push(Sample {
                            t_ms,
                            rss,
                            live,
                            phase: phase.to_string(),
                        });
                    }
                }
            }
        }
        s
    }

    /// The value of parameter `key`.
    pub(crate) fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The idle phases, measured.
    pub(crate) fn idles(&self) -> Vec<Idle> {
        let mut out = Vec::new();
        for (i, (name, start)) in self.phases.iter().enumerate() {
            if !name.starts_with("idle") {
                continue;
            }
            let end = self
                .phases
                .get(i + 1)
                .map_or_else(|| self.samples.last().map_or(*start, |s| s.t_ms), |p| p.1);
            let inside: Vec<&Sample> = self.samples.iter().filter(|s| &s.phase == name).collect();
            let at = (end - start >= AT_MS)
                .then(|| {
                    inside
                        .iter()
                        .rev()
                        .find(|s| s.t_ms <= start + AT_MS)
                        .map(|s| (s.rss, s.live))
                })
                .flatten();
            let settle_ms = inside
                .iter()
                .find(|s| s.rss as f64 <= goal(s.live))
                .map(|s| (s.t_ms - start).max(0.0));
            let mean_rss = (!inside.is_empty())
                .then(|| inside.iter().map(|s| s.rss as f64).sum::<f64>() / inside.len() as f64);
            out.push(Idle {
                name: name.clone(),
                start_ms: *start,
                end_ms: end,
                at,
                settle_ms,
                mean_rss,
                start_rss: inside.first().map(|s| s.rss),
                end_rss: inside.last().map(|s| s.rss),
            });
        }
        out
    }

    /// The largest RSS sampled.
    pub(crate) fn peak(&self) -> u64 {
        self.samples.iter().map(|s| s.rss).max().unwrap_or(0)
    }
}

/// One idle phase of one run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Idle {
    /// `idle1`, `idle2`, ….
    pub(crate) name: String,
    /// When it started and ended, ms.
    pub(crate) start_ms: f64,
    pub(crate) end_ms: f64,
    /// RSS and live bytes 1 s after the start (the last sample at or before
    /// it); `None` if the phase is shorter than 1 s.
    pub(crate) at: Option<(u64, u64)>,
    /// Milliseconds from the start to the first sample with RSS ≤ 1.1 ×
    /// live + 8 MiB; `None`: never in this phase.
    pub(crate) settle_ms: Option<f64>,
    /// The mean RSS over the phase's samples.
    pub(crate) mean_rss: Option<f64>,
    /// The RSS of the phase's first sample.
    pub(crate) start_rss: Option<u64>,
    /// The RSS of the phase's last sample.
    pub(crate) end_rss: Option<u64>,
}

impl Idle {
    /// RSS ÷ (live + 8 MiB), 1 s in.
    pub(crate) fn ratio(&self) -> Option<f64> {
        self.at
            .map(|(rss, live)| rss as f64 / (live as f64 + SLACK))
    }

    /// Whether RSS met the goal within 1 s.
    pub(crate) fn met(&self) -> bool {
        self.settle_ms.is_some_and(|t| t <= AT_MS)
    }
}

/// One run: the process's measurements and what it printed.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    /// The process: wall time, `ru_maxrss`, checksum, failure.
    pub(crate) rec: Record,
    /// Its samples.
    pub(crate) series: Series,
    /// Its idle phases.
    pub(crate) idles: Vec<Idle>,
}

impl Run {
    /// A run from its record (stdout parsed here).
    pub(crate) fn new(mut rec: Record) -> Run {
        rec.parse_stdout();
        let series = Series::parse(&rec.m.stdout);
        if rec.ok() && series.samples.is_empty() {
            rec.m.failure = Some("printed no samples".to_string());
        }
        let idles = series.idles();
        Run { rec, series, idles }
    }

    /// The mean RSS over all idle samples: how runs are ranked.
    pub(crate) fn mean_idle_rss(&self) -> Option<f64> {
        let idle: Vec<f64> = self
            .series
            .samples
            .iter()
            .filter(|s| s.phase.starts_with("idle"))
            .map(|s| s.rss as f64)
            .collect();
        (!idle.is_empty()).then(|| idle.iter().sum::<f64>() / idle.len() as f64)
    }

    /// The peak RSS: `ru_maxrss` from `wait4`, or the largest sample if
    /// larger (never, in practice).
    pub(crate) fn peak(&self) -> u64 {
        (self.rec.m.maxrss_kib * 1024).max(self.series.peak())
    }

    /// Median over the idle phases of RSS 1 s in.
    fn at_rss(&self) -> Option<f64> {
        median(
            &mut self
                .idles
                .iter()
                .filter_map(|i| i.at.map(|a| a.0 as f64))
                .collect::<Vec<_>>(),
        )
    }

    /// Median over the idle phases of live bytes 1 s in.
    fn at_live(&self) -> Option<f64> {
        median(
            &mut self
                .idles
                .iter()
                .filter_map(|i| i.at.map(|a| a.1 as f64))
                .collect::<Vec<_>>(),
        )
    }

    /// Median over the idle phases of RSS ÷ (live + 8 MiB) 1 s in.
    fn at_ratio(&self) -> Option<f64> {
        median(
            &mut self
                .idles
                .iter()
                .filter_map(Idle::ratio)
                .collect::<Vec<_>>(),
        )
    }

    /// Median over the idle phases of the RSS at their start.
    fn start_rss(&self) -> Option<f64> {
        median(
            &mut self
                .idles
                .iter()
                .filter_map(|i| i.start_rss.map(|r| r as f64))
                .collect::<Vec<_>>(),
        )
    }

    /// Median over the idle phases of the RSS at their end.
    fn end_rss(&self) -> Option<f64> {
        median(
            &mut self
                .idles
                .iter()
                .filter_map(|i| i.end_rss.map(|r| r as f64))
                .collect::<Vec<_>>(),
        )
    }
}

/// The index in `runs` of `alloc`'s median run by mean idle RSS (the lower
/// median for an even count), among its successful runs.
pub(crate) fn median_run(runs: &[Run], alloc: &str) -> Option<usize> {
    let mut ok: Vec<(usize, f64)> = runs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.rec.alloc == alloc && r.rec.ok())
        .filter_map(|(i, r)| r.mean_idle_rss().map(|m| (i, m)))
        .collect();
    ok.sort_by(|a, b| a.1.total_cmp(&b.1));
    ok.get(ok.len().saturating_sub(1) / 2).map(|p| p.0)
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / MIB)
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "-".to_string(), f)
}

fn settle(t: Option<f64>) -> String {
    t.map_or_else(|| "never".to_string(), |ms| format!("{:.2} s", ms / 1e3))
}

/// The table of the chosen runs, one row per allocator.
pub(crate) fn main_table(runs: &[Run], chosen: &[Option<usize>]) -> String {
    let phases = chosen
        .iter()
        .flatten()
        .map(|&i| runs[i].idles.len())
        .max()
        .unwrap_or(0);
    let names: Vec<String> = (1..=phases).map(|i| format!("idle{i}")).collect();
    let header = vec![
        "allocator".to_string(),
        "peak RSS".to_string(),
        "RSS at idle start".to_string(),
        "RSS at idle +1 s".to_string(),
        "live at idle +1 s".to_string(),
        "÷ (live + 8 MiB)".to_string(),
        format!("until ≤ 1.1 × live + 8 MiB ({})", names.join(" / ")),
        "RSS at idle end".to_string(),
    ];
    let mut rows = Vec::new();
    for (a, c) in ALLOCATORS.iter().zip(chosen) {
        let Some(r) = c.map(|i| &runs[i]) else {
            rows.push(vec![a.to_string(), "no successful run".into()]);
            rows.last_mut().unwrap().resize(header.len(), String::new());
            continue;
        };
        rows.push(vec![
            a.to_string(),
            mib(r.peak() as f64),
            opt(r.start_rss(), mib),
            opt(r.at_rss(), mib),
            opt(r.at_live(), mib),
            opt(r.at_ratio(), |x| format!("{x:.2}")),
            r.idles
                .iter()
                .map(|i| settle(i.settle_ms))
                .collect::<Vec<_>>()
                .join(" / "),
            opt(r.end_rss(), mib),
        ]);
    }
    report::table(&header, &rows)
}

/// Every run, in allocator order; `*` marks the run each figure above is
/// from.
pub(crate) fn runs_table(runs: &[Run], chosen: &[Option<usize>]) -> String {
    let header: Vec<String> = [
        "allocator",
        "run",
        "peak RSS",
        "mean idle RSS",
        "RSS at idle +1 s",
        "wall",
        "status",
    ]
    .map(String::from)
    .to_vec();
    let mut rows = Vec::new();
    for (a, c) in ALLOCATORS.iter().zip(chosen) {
        for (i, r) in runs.iter().enumerate().filter(|(_, r)| r.rec.alloc == *a) {
            let mark = if *c == Some(i) { " *" } else { "" };
            rows.push(vec![
                a.to_string(),
                format!("{}{mark}", r.rec.round),
                mib(r.peak() as f64),
                opt(r.mean_idle_rss(), mib),
                opt(r.at_rss(), mib),
                format!("{:.2} s", r.rec.m.wall),
                r.rec.m.failure.clone().unwrap_or_else(|| "ok".into()),
            ]);
        }
    }
    report::table(&header, &rows)
}

/// The one-paragraph summary.
pub(crate) fn summary(runs: &[Run], chosen: &[Option<usize>]) -> String {
    let pick = |a: &str| {
        ALLOCATORS
            .iter()
            .position(|x| *x == a)
            .and_then(|k| chosen[k])
            .map(|i| &runs[i])
    };
    let list = |f: &dyn Fn(&Run) -> Option<String>| {
        ALLOCATORS
            .iter()
            .filter_map(|a| pick(a).and_then(f).map(|v| format!("{a} {v}")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut s = String::new();
    let at = list(&|r| {
        let (rss, ratio) = (r.at_rss()?, r.at_ratio()?);
        Some(format!("{} ({ratio:.2}× live + 8 MiB)", mib(rss)))
    });
    let _ = write!(s, "Peak RSS: {}. ", list(&|r| Some(mib(r.peak() as f64))));
    if at.is_empty() {
        s.push_str("No idle phase lasted 1 s (scale below 0.5?). ");
    } else {
        let _ = write!(
            s,
            "One second into the idle phases (median over the phases), RSS was {at}. "
        );
    }
    let reached: Vec<String> = ALLOCATORS
        .iter()
        .filter_map(|a| {
            let r = pick(a)?;
            let met = r.idles.iter().filter(|i| i.met()).count();
            Some(format!("{a} in {met} of {}", r.idles.len()))
        })
        .collect();
    let _ = write!(
        s,
        "RSS came down to 1.1 × live + 8 MiB within 1 s of the idle start for {}. ",
        reached.join(", ")
    );
    match pick("goheap") {
        Some(g) if !g.idles.is_empty() => {
            if g.idles.iter().all(Idle::met) {
                s.push_str("goheap meets the goal of issue 4 in every idle phase.");
            } else {
                let _ = write!(
                    s,
                    "goheap does not meet the goal of issue 4 (RSS ≤ 1.1 × live + 8 MiB within 1 s of each idle start)"
                );
                // Whether RSS fell at all while idle: by more than 1 MiB
                // or 2% in some phase.
                let fell = g.idles.iter().any(|i| match (i.start_rss, i.end_rss) {
                    (Some(a), Some(b)) => a as f64 - b as f64 > (MIB).max(0.02 * a as f64),
                    _ => false,
                });
                match (fell, g.start_rss()) {
                    (false, Some(rss)) => {
                        let _ = write!(
                            s,
                            ": its RSS stays at about {} through the idle phases, nothing is returned to the OS while idle.",
                            mib(rss)
                        );
                    }
                    _ => s.push('.'),
                }
            }
        }
        _ => s.push_str("goheap has no successful run."),
    }
    s
}

/// Every sample of every run as CSV.
pub(crate) fn csv(runs: &[Run], chosen: &[Option<usize>]) -> String {
    let mut out = String::from("round,alloc,chosen,t_ms,rss_bytes,live_bytes,phase\n");
    for (i, r) in runs.iter().enumerate() {
        let c = u8::from(chosen.contains(&Some(i)));
        for s in &r.series.samples {
            let _ = writeln!(
                out,
                "{},{},{c},{:.1},{},{},{}",
                r.rec.round, r.rec.alloc, s.t_ms, s.rss, s.live, s.phase
            );
        }
    }
    out
}

/// A step of 1, 2 or 5 × 10ⁿ giving about `n` intervals up to `max`.
fn nice_step(max: f64, n: f64) -> f64 {
    let raw = (max / n).max(1e-9);
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * p)
}

/// The SVG line chart of the chosen runs: RSS over time, one line per
/// allocator, live bytes dashed, the goal dotted in the idle phases, idle
/// phases shaded.
pub(crate) fn chart(runs: &[Run], chosen: &[Option<usize>], subtitle: &str) -> String {
    const W: f64 = 960.0;
    const H: f64 = 480.0;
    const L: f64 = 64.0;
    const R: f64 = 24.0;
    const T: f64 = 84.0;
    const B: f64 = 44.0;
    let shown: Vec<(usize, &Run)> = chosen
        .iter()
        .enumerate()
        .filter_map(|(k, c)| c.map(|i| (k, &runs[i])))
        .collect();
    let t_max = shown
        .iter()
        .flat_map(|(_, r)| r.series.samples.last())
        .map(|s| s.t_ms / 1e3)
        .fold(1.0, f64::max);
    let y_max = shown
        .iter()
        .map(|(_, r)| r.series.peak() as f64 / MIB)
        .fold(16.0, f64::max);
    let (xs, ys) = (nice_step(t_max, 10.0), nice_step(y_max, 6.0));
    let (t_max, y_max) = ((t_max / xs).ceil() * xs, (y_max / ys).ceil() * ys);
    let x = |t_ms: f64| L + t_ms / 1e3 / t_max * (W - L - R);
    let y = |bytes: f64| T + (1.0 - bytes / MIB / y_max) * (H - T - B);

    let mut o = String::new();
    let _ = writeln!(
        o,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="{L}" y="18" font-size="15" font-weight="bold">goheap rss: RSS over time in a bursty server (median run of each allocator)</text>
<text x="{L}" y="34" font-size="11" fill="#444">{}</text>"##,
        esc(subtitle)
    );
    // Grid and axes.
    let mut v = 0.0;
    while v <= y_max + 1e-9 {
        let yy = y(v * MIB);
        let _ = writeln!(
            o,
            r##"<line x1="{L}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="{}"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{v}</text>"##,
            W - R,
            if v == 0.0 { "#000" } else { "#ddd" },
            L - 6.0,
            yy + 4.0
        );
        v += ys;
    }
    let mut t = 0.0;
    while t <= t_max + 1e-9 {
        let xx = x(t * 1e3);
        let _ = writeln!(
            o,
            r##"<line x1="{xx:.1}" y1="{T}" x2="{xx:.1}" y2="{:.1}" stroke="#eee"/><text x="{xx:.1}" y="{:.1}" font-size="11" text-anchor="middle">{t}</text>"##,
            H - B,
            H - B + 15.0
        );
        t += xs;
    }
    // Idle phases, shaded once per allocator (they start within a few
    // tens of ms of each other); labels from the first run shown.
    for (_, r) in &shown {
        for i in &r.idles {
            let _ = writeln!(
                o,
                r##"<rect x="{:.1}" y="{T}" width="{:.1}" height="{:.1}" fill="#000" fill-opacity="0.025"/>"##,
                x(i.start_ms),
                (x(i.end_ms) - x(i.start_ms)).max(0.0),
                H - T - B
            );
        }
    }
    if let Some((_, r)) = shown.first() {
        for i in &r.idles {
            let _ = writeln!(
                o,
                r##"<text x="{:.1}" y="{:.1}" font-size="11" fill="#666" text-anchor="middle">{}</text>"##,
                (x(i.start_ms) + x(i.end_ms)) / 2.0,
                H - B - 26.0,
                esc(&i.name)
            );
        }
    }
    let _ = writeln!(
        o,
        r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">time (s)</text>
<text transform="translate(16,{:.1}) rotate(-90)" font-size="12" text-anchor="middle">MiB</text>"#,
        (L + W - R) / 2.0,
        H - 8.0,
        (T + H - B) / 2.0
    );
    let points = |f: &dyn Fn(&Sample) -> f64, samples: &mut dyn Iterator<Item = &Sample>| {
        samples
            .map(|s| format!("{:.1},{:.1}", x(s.t_ms), y(f(s))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    // Live bytes and the goal, from the first run shown (the workload does
    // the same allocations under every allocator).
    if let Some((_, r)) = shown.first() {
        let _ = writeln!(
            o,
            r##"<polyline fill="none" stroke="#000" stroke-width="1.2" stroke-dasharray="5,3" points="{}"><title>live bytes</title></polyline>"##,
            points(&|s| s.live as f64, &mut r.series.samples.iter())
        );
        for i in &r.idles {
            let _ = writeln!(
                o,
                r##"<polyline fill="none" stroke="#000" stroke-width="1" stroke-dasharray="1,2" points="{}"><title>1.1 × live + 8 MiB</title></polyline>"##,
                points(
                    &|s| goal(s.live),
                    &mut r.series.samples.iter().filter(|s| s.phase == i.name)
                )
            );
        }
    }
    for (k, r) in &shown {
        let _ = writeln!(
            o,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.6" stroke-linejoin="round" points="{}"><title>{} RSS</title></polyline>"#,
            COLORS[*k],
            points(&|s| s.rss as f64, &mut r.series.samples.iter()),
            ALLOCATORS[*k]
        );
    }
    // Legend: a line (colour, dash pattern) or, for None, the idle shading.
    let mut items: Vec<(Option<(&str, &str)>, &str)> = ALLOCATORS
        .iter()
        .zip(COLORS)
        .map(|(a, c)| (Some((c, "none")), *a))
        .collect();
    items.push((Some(("#000", "5,3")), "live bytes"));
    items.push((Some(("#000", "1,2")), "goal: 1.1 × live + 8 MiB"));
    items.push((None, "idle"));
    let mut lx = L;
    for (swatch, label) in items {
        match swatch {
            Some((color, dash)) => {
                let _ = write!(
                    o,
                    r#"<line x1="{lx:.1}" y1="54" x2="{:.1}" y2="54" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/>"#,
                    lx + 20.0
                );
            }
            None => {
                let _ = write!(
                    o,
                    r##"<rect x="{lx:.1}" y="48" width="20" height="12" fill="#000" fill-opacity="0.1"/>"##
                );
            }
        }
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="58" font-size="11">{}</text>"#,
            lx + 24.0,
            esc(label)
        );
        lx += 24.0 + label.chars().count() as f64 * 6.5 + 16.0;
    }
    o.push_str("</svg>\n");
    o
}

/// Runs `goheap rss`.
pub(crate) fn run(o: &RssOpts) -> ExitCode {
    match rss(o) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("goheap rss: {e}");
            ExitCode::FAILURE
        }
    }
}

fn rss(o: &RssOpts) -> Result<ExitCode, String> {
    let (target, bins) = bench::binaries("rss", o.no_build)?;
    let total = o.runs * ALLOCATORS.len();
    let date = proc::utc_now();
    let load_before = bench::load_average();
    let scale_arg = o.scale.to_string();
    eprintln!(
        "goheap rss: {WORKLOAD} × {} allocators × {} run(s) = {total} runs of ~{:.0} s each",
        ALLOCATORS.len(),
        o.runs,
        3.0 * 3.5 * o.scale + 0.3
    );
    for bin in &bins {
        let _ = proc::run(bin, &["--list"], Duration::from_secs(30));
    }
    let start = Instant::now();
    let timeout = Duration::from_secs(o.timeout);
    let mut runs: Vec<Run> = Vec::with_capacity(total);
    for round in 1..=o.runs {
        for k in 0..ALLOCATORS.len() {
            let k = (k + round - 1) % ALLOCATORS.len();
            let (a, bin) = (ALLOCATORS[k], &bins[k]);
            let m = proc::run(bin, &[WORKLOAD, &scale_arg], timeout)
                .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
            let r = Run::new(Record {
                round,
                workload: WORKLOAD,
                alloc: a,
                scale: o.scale,
                m,
                checksum: None,
                inproc: None,
                extra: String::new(),
            });
            let what = match &r.rec.m.failure {
                Some(f) => format!("FAILED: {f}"),
                None => format!(
                    "peak {}, idle +1 s {}, {:.1} s",
                    mib(r.peak() as f64),
                    opt(r.at_rss(), mib),
                    r.rec.m.wall
                ),
            };
            eprintln!(
                "[{:>2}/{total}] {} run {round} {a}: {what}",
                runs.len() + 1,
                mmss(start.elapsed()),
            );
            if !r.rec.ok() {
                for line in r.rec.m.stderr.lines().take(20) {
                    eprintln!("    {line}");
                }
            }
            runs.push(r);
        }
    }
    let took = start.elapsed();
    let chosen: Vec<Option<usize>> = ALLOCATORS.iter().map(|a| median_run(&runs, a)).collect();

    let cmd = bench::command_line();
    let params = runs
        .iter()
        .find(|r| !r.series.params.is_empty())
        .map(|r| &r.series);
    let p = |k: &str| params.and_then(|s| s.param(k)).unwrap_or("?").to_string();
    let mb = |k: &str| {
        params
            .and_then(|s| s.param(k))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or("?".to_string(), |v| format!("{:.0} MB", v / 1e6))
    };
    let mut text = String::new();
    let _ = write!(
        text,
        "## goheap rss\n\n\
         - command: `{cmd}` (from the workspace: `cargo run --release -p goheap-cli -- {}`)\n\
         - date: {date}\n\
         - workload: `{WORKLOAD}` at scale {}: {} cycles of a {} ms load phase ({} threads build \
         {} of 16 B–4 KiB and 64 KiB–1 MiB blocks, churn them, free all but {} scattered \
         through them) and a {} ms idle phase; the workload samples its own RSS (`/proc/self/statm`) \
         and live bytes every {} ms\n\
         - {} run{} per allocator, interleaved, each its own process; figures from the median run of \
         each allocator by mean RSS over the idle phases (marked * below); {total} runs in {}\n\
         - peak RSS is `ru_maxrss` from `wait4`; \"+1 s\" is the last sample at most 1 s after the \
         idle phase started, median over the idle phases; the goal (issue 4) is RSS ≤ 1.1 × live + \
         8 MiB within 1 s of each idle start\n\
         - machine: {} CPUs, load average {load_before} before, {} after\n\n",
        cmd.split_once(' ').map_or("", |(_, rest)| rest),
        o.scale,
        p("cycles"),
        p("load_ms"),
        p("threads"),
        mb("live_target"),
        mb("keep_target"),
        p("idle_ms"),
        p("every_ms"),
        o.runs,
        if o.runs == 1 { "" } else { "s" },
        mmss(took),
        bench::cpus(),
        bench::load_average(),
    );
    text.push_str("### RSS in the idle phases (median run of each allocator)\n\n");
    text.push_str(&main_table(&runs, &chosen));
    text.push_str("\n### Every run\n\n");
    text.push_str(&runs_table(&runs, &chosen));
    text.push('\n');

    // Checksums, failures, dropped samples.
    let mut notes = String::new();
    let mut seen: Vec<(&str, &str, usize)> = Vec::new();
    for r in &runs {
        if let Some(c) = &r.rec.checksum {
            if !seen.iter().any(|(s, _, _)| s == c) {
                seen.push((c, r.rec.alloc, r.rec.round));
            }
        }
    }
    let mismatch = seen.len() > 1;
    if mismatch {
        notes.push_str("!!! CHECKSUM MISMATCH:");
        for (c, a, round) in &seen {
            let _ = write!(notes, " {c} ({a}, run {round})");
        }
        notes.push('\n');
    }
    let failed = runs.iter().filter(|r| !r.rec.ok()).count();
    for r in runs.iter().filter(|r| !r.rec.ok()) {
        let _ = writeln!(
            notes,
            "!!! FAILED RUN: {} run {}: {}",
            r.rec.alloc,
            r.rec.round,
            r.rec.m.failure.as_deref().unwrap_or("")
        );
    }
    for r in &runs {
        if r.series.param("dropped").is_some_and(|d| d != "0") {
            let _ = writeln!(
                notes,
                "note: {} run {}: the sampler ran out of room and dropped {} samples",
                r.rec.alloc,
                r.rec.round,
                r.series.param("dropped").unwrap_or("?")
            );
        }
        if r.rec.ok() && r.series.samples.iter().all(|s| s.rss == 0) {
            let _ = writeln!(
                notes,
                "note: {} run {}: RSS read as 0 (no /proc/self/statm?)",
                r.rec.alloc, r.rec.round
            );
        }
    }
    if let Some(g) = chosen[0].map(|i| &runs[i]) {
        if !g.rec.extra.is_empty() {
            let _ = writeln!(
                notes,
                "goheap's statistics at exit (median run): {}",
                g.rec.extra
            );
        }
    }
    if !notes.is_empty() {
        text.push_str(&notes);
        text.push('\n');
    }
    text.push_str(&summary(&runs, &chosen));
    text.push('\n');
    print!("{text}");

    let out_dir = target.join("goheap-bench");
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let subtitle = format!(
        "{cmd} · {date} · {} run(s) per allocator · scale {} · {} CPUs; shaded: idle",
        o.runs,
        o.scale,
        bench::cpus()
    );
    println!();
    for (name, contents) in [
        ("rss.svg", chart(&runs, &chosen, &subtitle)),
        ("rss.csv", csv(&runs, &chosen)),
        ("rss.md", text.clone()),
    ] {
        let path = out_dir.join(name);
        std::fs::write(&path, contents)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if mismatch || failed > 0 {
        eprintln!("goheap rss: checksum mismatch or failed run(s): see above");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc::Measured;

    const M: u64 = 1 << 20;

    /// Workload output: a 1 s load to 300 MiB, then a 2 s idle with 8 MiB
    /// live in which RSS falls from `idle_rss[0]` to `idle_rss[1]` after
    /// 600 ms.
    fn output(idle_rss: [u64; 2]) -> String {
        let mut s = String::from(
            "# bursty: threads=4 live_target=300000000 keep_target=8000000 load_ms=1000 idle_ms=2000 cycles=1 every_ms=10 page_size=4096 samples=300 dropped=0\n\
             # phase load1 0.5\n# phase idle1 1000.0\n# phase end 3000.0\n# t_ms rss_bytes live_bytes phase\n",
        );
        for i in 0..300u64 {
            let t = i as f64 * 10.0 + 1.0;
            let (rss, live, phase) = if t < 1000.0 {
                (320 * M, 300 * M, "load1")
            } else if t < 1600.0 {
                (idle_rss[0], 8 * M, "idle1")
            } else {
                (idle_rss[1], 8 * M, "idle1")
            };
            s.push_str(&format!("{t:.1} {rss} {live} {phase}\n"));
        }
        s.push_str("workload=bursty alloc=x scale=1 checksum=00ab secs=3.0\n");
        s
    }

    fn run_of(alloc: &'static str, round: usize, idle_rss: [u64; 2]) -> Run {
        Run::new(Record {
            round,
            workload: WORKLOAD,
            alloc,
            scale: 1.0,
            m: Measured {
                wall: 3.1,
                maxrss_kib: 330 * 1024,
                stdout: output(idle_rss),
                ..Measured::default()
            },
            checksum: None,
            inproc: None,
            extra: String::new(),
        })
    }

    #[test]
    fn parses_the_output() {
        let s = Series::parse(&output([320 * M, 320 * M]));
        assert_eq!(s.samples.len(), 300);
        assert_eq!(s.param("idle_ms"), Some("2000"));
        assert_eq!(s.phases.len(), 3);
        assert_eq!(s.phases[1], ("idle1".to_string(), 1000.0));
        assert_eq!(s.samples[0].phase, "load1");
        assert_eq!(s.peak(), 320 * M);
    }

    #[test]
    fn measures_idle_phases() {
        // RSS stays high: never reaches the goal.
        let r = run_of("goheap", 1, [320 * M, 320 * M]);
        assert!(r.rec.ok());
        assert_eq!(r.idles.len(), 1);
        let i = &r.idles[0];
        assert_eq!(i.at, Some((320 * M, 8 * M)));
        assert_eq!(i.settle_ms, None);
        assert!(!i.met());
        assert!((i.ratio().unwrap() - 20.0).abs() < 1e-9);
        // Falls to 15 MiB (goal: 1.1 × 8 + 8 = 16.8 MiB) after 600 ms.
        let r = run_of("mimalloc", 1, [100 * M, 15 * M]);
        let i = &r.idles[0];
        assert_eq!(i.at, Some((15 * M, 8 * M)));
        assert!((i.settle_ms.unwrap() - 601.0).abs() < 1e-9);
        assert!(i.met());
        assert_eq!(i.end_rss, Some(15 * M));
        // Falls to 17 MiB: above the goal.
        let r = run_of("system", 1, [100 * M, 17 * M]);
        assert_eq!(r.idles[0].settle_ms, None);
        assert_eq!(r.peak(), 330 * M);
    }

    #[test]
    fn a_run_without_samples_failed() {
        let mut r = run_of("goheap", 1, [M, M]);
        r.rec.m.stdout = "workload=bursty checksum=00ab\n".into();
        let r = Run::new(r.rec);
        assert_eq!(r.rec.m.failure.as_deref(), Some("printed no samples"));
    }

    fn sample_runs() -> (Vec<Run>, Vec<Option<usize>>) {
        let mut runs = Vec::new();
        for round in 1..=3 {
            for a in ALLOCATORS {
                let idle = match a {
                    "goheap" => 300 + round as u64 * 10,
                    "mimalloc" => 15,
                    _ => 100 + round as u64,
                };
                runs.push(run_of(a, round, [idle * M, idle * M]));
            }
        }
        let chosen = ALLOCATORS.iter().map(|a| median_run(&runs, a)).collect();
        (runs, chosen)
    }

    #[test]
    fn picks_the_median_run() {
        let (runs, chosen) = sample_runs();
        let g = chosen[0].unwrap();
        assert_eq!(runs[g].rec.alloc, "goheap");
        assert_eq!(runs[g].rec.round, 2);
        assert_eq!(median_run(&runs, "nope"), None);
    }

    #[test]
    fn tables_summary_csv_chart() {
        let (runs, chosen) = sample_runs();
        let t = main_table(&runs, &chosen);
        assert_eq!(t.lines().count(), 2 + ALLOCATORS.len(), "{t}");
        assert!(t.contains("| goheap"), "{t}");
        assert!(t.contains("never"), "{t}");
        assert!(t.contains("0.00 s"), "{t}");
        let t = runs_table(&runs, &chosen);
        assert_eq!(t.lines().count(), 2 + runs.len(), "{t}");
        assert_eq!(t.matches(" * ").count(), ALLOCATORS.len(), "{t}");
        let s = summary(&runs, &chosen);
        assert!(s.contains("goheap does not meet the goal"), "{s}");
        assert!(s.contains("stays at about 320.0 MiB"), "{s}");
        assert!(s.contains("mimalloc 15.0 MiB (0.94× live + 8 MiB)"), "{s}");
        assert!(s.contains("mimalloc in 1 of 1"), "{s}");
        let c = csv(&runs, &chosen);
        assert_eq!(c.lines().count(), 1 + runs.len() * 300);
        assert_eq!(
            c.lines()
                .filter(|l| l.split(',').nth(2) == Some("1"))
                .count(),
            ALLOCATORS.len() * 300
        );
        let svg = chart(&runs, &chosen, "goheap rss <&>");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("&lt;&amp;&gt;"));
        // A line per allocator, live bytes, the goal in the one idle phase.
        assert_eq!(svg.matches("<polyline").count(), ALLOCATORS.len() + 2);
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(10.7, 10.0), 2.0);
        assert_eq!(nice_step(400.0, 6.0), 100.0);
        assert_eq!(nice_step(33.0, 6.0), 10.0);
        assert_eq!(nice_step(0.5, 10.0), 0.05);
    }
}
