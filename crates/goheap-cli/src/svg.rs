//! The SVG chart: two panels of grouped bars, wall time and peak RSS of each
//! allocator relative to the suite's baseline (mimalloc for `goheap bench`),
//! per workload, on a log scale centred on 1.0 (bars grow up when worse than
//! the baseline, down when better). With an earlier build of goheap in the
//! lineup (`--baseline`), a third panel: goheap's wall time and peak RSS
//! relative to that build.

use std::fmt::Write;

use crate::report::{Metric, Series, Summary};

/// Bar colours of `goheap bench`'s allocators, in
/// [`ALLOCATORS`](crate::report::ALLOCATORS) order.
pub(crate) const COLORS: [&str; 4] = ["#d62728", "#7f7f7f", "#1f77b4", "#2ca02c"];
/// Bar colours of the panel of goheap relative to its earlier build: wall
/// time (goheap's colour), peak RSS (a lighter shade).
const BEFORE_AFTER_COLORS: [&str; 2] = ["#d62728", "#ff9896"];
const LEFT: f64 = 58.0;
const RIGHT: f64 = 16.0;
const BAR: f64 = 14.0;
const BAR_GAP: f64 = 2.0;
const PLOT_H: f64 = 230.0;

/// The colour of an allocator's bars and lines, the same in every chart.
pub(crate) fn color(alloc: &str) -> &'static str {
    match alloc {
        "goheap" => COLORS[0],
        "system" | "glibc" => COLORS[1],
        "mimalloc" => COLORS[2],
        "jemalloc" => COLORS[3],
        "tcmalloc" => "#ff7f0e",
        // goheap gcbench's implementations.
        "goheap-gc" => COLORS[0],
        "go" => "#17becf",
        "boehm-gc" => "#8c564b",
        "box-mimalloc" => COLORS[2],
        "rust-gc" => "#e377c2",
        "dumpster" => "#bcbd22",
        _ => "#9467bd",
    }
}

/// The width of a group of `slots` bars.
fn group_width(slots: usize) -> f64 {
    slots as f64 * (BAR + BAR_GAP) + 18.0
}

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One panel of grouped bars: ratios on a log scale centred on 1.0.
#[derive(Debug, Clone)]
pub(crate) struct Panel {
    /// Its title, above it.
    pub(crate) title: String,
    /// The label under each group.
    pub(crate) groups: Vec<String>,
    /// Each series (a bar of every group): its label, what it is relative
    /// to (both for the bar's tooltip) and its colour.
    pub(crate) series: Vec<(String, String, &'static str)>,
    /// `data[group][series]`: the ratio, or `None` for no bar.
    pub(crate) data: Vec<Vec<Option<f64>>>,
    /// Bar slots per group: the widest panel's series count, so that the
    /// groups of every panel of a chart line up (fewer series: centred).
    pub(crate) slots: usize,
    /// A dashed line before the last group (the geometric mean).
    pub(crate) last_is_summary: bool,
}

impl Panel {
    /// The panel's width.
    fn width(&self) -> f64 {
        LEFT + self.groups.len() as f64 * group_width(self.slots) + RIGHT
    }

    /// Draws the panel with its top edge at `top`; returns its height.
    fn draw(&self, out: &mut String, top: f64) -> f64 {
        let all: Vec<f64> = self.data.iter().flatten().flatten().copied().collect();
        // Whole octaves, with room for the value labels beyond the longest bars.
        let lo = (all.iter().copied().fold(0.5, f64::min).log2() - 0.4).floor();
        let hi = (all.iter().copied().fold(2.0, f64::max).log2() + 0.4).ceil();
        let plot_top = top + 22.0;
        let y = |r: f64| plot_top + (hi - r.log2()) / (hi - lo) * PLOT_H;
        let group = group_width(self.slots);
        let width = self.width();
        let inset =
            9.0 + self.slots.saturating_sub(self.series.len()) as f64 * (BAR + BAR_GAP) / 2.0;

        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="{:.1}" font-size="13" font-weight="bold">{}</text>"#,
            top + 14.0,
            esc(&self.title)
        );
        // Grid lines and labels at powers of two.
        let mut e = lo;
        while e <= hi {
            let r = 2f64.powf(e);
            let yy = y(r);
            let (stroke, dash) = if e == 0.0 {
                ("#000", "")
            } else {
                ("#ccc", r#" stroke-dasharray="3,3""#)
            };
            let _ = writeln!(
                out,
                r#"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="{stroke}"{dash}/>"#,
                width - RIGHT
            );
            let label = if r >= 1.0 {
                format!("{r}×")
            } else {
                format!("{}×", format!("{r:.3}").trim_end_matches('0'))
            };
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{label}</text>"#,
                LEFT - 6.0,
                yy + 4.0
            );
            e += 1.0;
        }
        for (g, (name, row)) in self.groups.iter().zip(&self.data).enumerate() {
            let gx = LEFT + g as f64 * group;
            if self.last_is_summary && g + 1 == self.groups.len() {
                let _ = writeln!(
                    out,
                    r##"<line x1="{gx:.1}" y1="{plot_top:.1}" x2="{gx:.1}" y2="{:.1}" stroke="#999" stroke-dasharray="4,3"/>"##,
                    plot_top + PLOT_H
                );
            }
            for (i, r) in row.iter().enumerate() {
                let Some(r) = *r else { continue };
                let (label, over, color) = &self.series[i];
                let x = gx + inset + i as f64 * (BAR + BAR_GAP);
                let (y1, y0) = (y(r), y(1.0));
                let (top_y, h) = (y1.min(y0), (y1 - y0).abs().max(1.5));
                let _ = writeln!(
                    out,
                    r#"<rect x="{x:.1}" y="{top_y:.1}" width="{BAR}" height="{h:.1}" fill="{color}"><title>{} {}: {r:.2}× {}</title></rect>"#,
                    esc(name),
                    esc(label),
                    esc(over)
                );
                let cx = x + BAR / 2.0 + 3.5;
                let (ly, anchor) = if r >= 1.0 {
                    (top_y - 3.0, "start")
                } else {
                    (top_y + h + 3.0, "end")
                };
                let _ = writeln!(
                    out,
                    r#"<text transform="translate({cx:.1},{ly:.1}) rotate(-90)" font-size="9" text-anchor="{anchor}">{r:.2}</text>"#
                );
            }
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#,
                gx + group / 2.0,
                plot_top + PLOT_H + 16.0,
                esc(name)
            );
        }
        22.0 + PLOT_H + 26.0
    }
}

/// A chart of `panels`, one below the other, under a heading (`heading`,
/// then `subtitle`) and a legend of `(name, colour)` swatches.
pub(crate) fn render(
    heading: &str,
    subtitle: &str,
    legend: &[(&str, &str)],
    panels: &[Panel],
) -> String {
    // Wide enough for the bars, the legend and (roughly) the text lines.
    let text = |s: &str, per_char: f64| LEFT + s.chars().count() as f64 * per_char + RIGHT;
    let width = panels
        .iter()
        .flat_map(|p| [p.width(), text(&p.title, 7.5)])
        .chain([text(heading, 8.5), text(subtitle, 5.8)])
        .fold(LEFT + legend.len() as f64 * 90.0 + RIGHT, f64::max);
    let mut body = String::new();
    let mut y = 52.0;
    for (i, p) in panels.iter().enumerate() {
        if i > 0 {
            y += 10.0;
        }
        y += p.draw(&mut body, y);
    }
    let height = y + 8.0;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif">"#
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="18" font-size="15" font-weight="bold">{}</text>
<text x="{LEFT}" y="34" font-size="11" fill="#444">{}</text>"##,
        esc(heading),
        esc(subtitle)
    );
    for (i, (name, color)) in legend.iter().enumerate() {
        let x = LEFT + i as f64 * 90.0;
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="40" width="12" height="10" fill="{color}"/><text x="{}" y="49" font-size="11">{}</text>"#,
            x + 16.0,
            esc(name)
        );
    }
    out.push_str(&body);
    out.push_str("</svg>\n");
    out
}

/// The panel of `series` of `s` (a bar per series in every workload and
/// the geometric mean), the bars coloured `colors` in order.
fn summary_panel(s: &Summary, series: &[Series], colors: &[&'static str], title: String) -> Panel {
    Panel {
        title,
        groups: s.groups().map(|(name, _)| name.to_string()).collect(),
        series: series
            .iter()
            .zip(colors)
            .map(|(x, &c)| (x.label.to_string(), x.over.to_string(), c))
            .collect(),
        data: s
            .groups()
            .map(|(_, w)| series.iter().map(|x| s.series_ratio(w, x)).collect())
            .collect(),
        slots: s.lineup.allocators.len(),
        last_is_summary: true,
    }
}

/// The whole chart; `title` names the suite (`goheap bench`), `subtitle`
/// says what was run and when.
pub(crate) fn chart(s: &Summary, title: &str, subtitle: &str) -> String {
    let base = s.lineup.baseline;
    let colors: Vec<&'static str> = s.lineup.allocators.iter().map(|a| color(a)).collect();
    let mut panels = vec![
        summary_panel(
            s,
            &s.series(Metric::Wall),
            &colors,
            format!("Wall time relative to {base} (log scale; below the line is faster)"),
        ),
        summary_panel(
            s,
            &s.series(Metric::Rss),
            &colors,
            format!("Peak RSS relative to {base} (log scale; below the line is smaller)"),
        ),
    ];
    let before = s.base_series();
    if let Some(x) = before.first() {
        panels.push(summary_panel(
            s,
            &before,
            &BEFORE_AFTER_COLORS,
            format!(
                "{} relative to {}: wall time (dark), peak RSS (light)",
                x.alloc, x.over
            ),
        ));
    }
    let legend: Vec<(&str, &str)> = s.lineup.allocators.iter().map(|&a| (a, color(a))).collect();
    render(
        &format!("{title}: medians relative to {base}"),
        subtitle,
        &legend,
        &panels,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::{sample, sample_with_base};
    use crate::report::RUST_LINEUP;

    #[test]
    fn chart_is_well_formed() {
        let (w, recs) = sample();
        let s = Summary::new(RUST_LINEUP, &w, &recs);
        let svg = chart(&s, "goheap bench", "goheap bench --runs 3 <&>");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("&lt;&amp;&gt;"));
        // 3 groups (2 workloads + geomean) × 4 allocators × 2 panels, plus
        // the background and 4 legend swatches.
        assert_eq!(svg.matches("<rect").count(), 3 * 4 * 2 + 1 + 4);
        assert!(svg.contains(">1.50<"));
        assert!(svg.contains(">0.50<"));
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }

    #[test]
    fn chart_has_a_panel_for_the_earlier_build() {
        let (lineup, w, recs) = sample_with_base();
        let s = Summary::new(lineup, &w, &recs);
        let svg = chart(&s, "goheap bench", "x");
        // 3 groups × (5 allocators × 2 panels + 2 bars of goheap ÷
        // goheap-base), plus the background and 5 legend swatches.
        assert_eq!(svg.matches("<rect").count(), 3 * (5 * 2 + 2) + 1 + 5);
        assert!(svg.contains(">goheap relative to goheap-base: wall time"));
        assert!(svg.contains("<title>geomean goheap time: 0.60× goheap-base</title>"));
        assert!(svg.contains("<title>churn goheap RSS: 1.33× goheap-base</title>"));
        assert!(svg.contains(">goheap-base</text>"));
    }
}
