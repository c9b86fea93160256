//! A flame graph as a static SVG (no script): one rectangle per stack
//! prefix, its width proportional to the value of the samples under it,
//! the root ("all") at the bottom and callees above their callers, each
//! with a `<title>` tooltip (name, value, percent) and a label cut to fit.
//! Colours are warm tones chosen by a hash of the name, as in Brendan
//! Gregg's flamegraph.pl, so the same function has the same colour in
//! every graph.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::svg::esc;

/// The SVG's width in pixels.
const WIDTH: f64 = 1200.0;
/// Margin left and right of the frames.
const PAD: f64 = 10.0;
/// Height of a row of frames.
const ROW: f64 = 16.0;
/// Space above the frames, for the title.
const TOP: f64 = 40.0;
/// Space below the frames.
const BOTTOM: f64 = 16.0;
/// Label font size; a character is about 0.6 of it wide.
const FONT: f64 = 12.0;
/// The deepest stack drawn (from the root): the tree is walked
/// recursively, so a corrupt profile's endless stack must not exhaust the
/// thread's stack.
pub(crate) const MAX_DEPTH: usize = 1024;
/// Frames narrower than this are not drawn (their parents' width still
/// counts them): they would be unreadable slivers.
const MIN_WIDTH: f64 = 0.3;

/// A node of the tree of stack prefixes.
#[derive(Debug, Default)]
pub(crate) struct Node {
    /// The samples' value under this prefix.
    pub(crate) value: i64,
    /// Callees by name; a BTreeMap so siblings are drawn in name order,
    /// as flamegraph.pl does, which keeps graphs of similar profiles alike.
    pub(crate) children: BTreeMap<String, Node>,
}

impl Node {
    /// Adds a stack, root (outermost caller) first, with its value.
    pub(crate) fn add(&mut self, stack_root_first: &[&str], value: i64) {
        self.value = self.value.saturating_add(value);
        let mut node = self;
        for name in stack_root_first {
            node = node.children.entry((*name).to_owned()).or_default();
            node.value = node.value.saturating_add(value);
        }
    }

    /// The rows drawn from this node up (itself included) at `scale`
    /// pixels per unit of value: none if it is narrower than
    /// [`MIN_WIDTH`], so a deep stack of slivers, which is not drawn, adds
    /// no empty space to the graph.
    fn rows(&self, scale: f64) -> usize {
        if (self.value.max(0) as f64) * scale < MIN_WIDTH {
            return 0;
        }
        1 + self
            .children
            .values()
            .map(|c| c.rows(scale))
            .max()
            .unwrap_or(0)
    }
}

/// A warm colour (red to yellow) from a hash of `name`.
pub(crate) fn color(name: &str) -> String {
    // FNV-1a: stable across runs and platforms, unlike std's hasher.
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let f = |shift: u32| f64::from((h >> shift) & 0xff) / 255.0;
    let r = 205.0 + 50.0 * f(0);
    let g = 230.0 * f(8);
    let b = 55.0 * f(16);
    format!("rgb({},{},{})", r as u8, g as u8, b as u8)
}

/// `label` cut to fit `width` pixels ("" if not even three characters fit).
fn fit(label: &str, width: f64) -> String {
    let chars = ((width - 6.0) / (FONT * 0.6)).floor();
    if chars < 3.0 {
        return String::new();
    }
    let chars = chars as usize;
    if label.chars().count() <= chars {
        label.to_owned()
    } else {
        let cut: String = label.chars().take(chars - 2).collect();
        format!("{cut}..")
    }
}

/// The SVG of the flame graph of `root`, headed by `title`; `fmt` formats
/// a value for the tooltips.
pub(crate) fn svg(root: &Node, title: &str, fmt: &dyn Fn(i64) -> String) -> String {
    let total = root.value.max(0);
    let scale = if total > 0 {
        (WIDTH - 2.0 * PAD) / total as f64
    } else {
        0.0
    };
    // One row at least: the root's, or the note that there is nothing.
    let rows = root.rows(scale).max(1);
    let height = TOP + rows as f64 * ROW + BOTTOM;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<?xml version="1.0" standalone="no"?>
<svg version="1.1" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg">
<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#f8f8f0"/>
<text x="{}" y="24" font-family="Verdana, sans-serif" font-size="17" text-anchor="middle">{}</text>
<g font-family="Verdana, sans-serif" font-size="{FONT}">"##,
        WIDTH / 2.0,
        esc(title)
    );
    if total > 0 {
        let ctx = Draw {
            total,
            scale,
            bottom: height - BOTTOM,
            fmt,
        };
        ctx.node(&mut s, "all", root, PAD, 0);
    } else {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}">no samples with a positive value</text>"#,
            PAD,
            TOP + ROW
        );
    }
    s.push_str("</g>\n</svg>\n");
    s
}

/// What drawing a node needs to know of the whole graph.
struct Draw<'a> {
    total: i64,
    scale: f64,
    /// The y of the root row's bottom edge.
    bottom: f64,
    fmt: &'a dyn Fn(i64) -> String,
}

impl Draw<'_> {
    fn node(&self, s: &mut String, name: &str, node: &Node, x: f64, level: usize) {
        let w = node.value.max(0) as f64 * self.scale;
        if w < MIN_WIDTH {
            return;
        }
        let y = self.bottom - (level + 1) as f64 * ROW;
        let pct = 100.0 * node.value as f64 / self.total as f64;
        let tip = format!("{name} ({}, {pct:.2}%)", (self.fmt)(node.value));
        let fill = if level == 0 {
            "rgb(230,120,60)".to_owned()
        } else {
            color(name)
        };
        let _ = writeln!(
            s,
            r#"<g><title>{}</title><rect x="{x:.2}" y="{y:.2}" width="{:.2}" height="{:.2}" fill="{fill}" rx="2" ry="2"/>"#,
            esc(&tip),
            w,
            ROW - 1.0
        );
        let label = fit(name, w);
        if !label.is_empty() {
            let _ = writeln!(
                s,
                r#"<text x="{:.2}" y="{:.2}">{}</text>"#,
                x + 3.0,
                y + ROW - 4.5,
                esc(&label)
            );
        }
        s.push_str("</g>\n");
        let mut cx = x;
        for (child_name, child) in &node.children {
            self.node(s, child_name, child, cx, level + 1);
            cx += child.value.max(0) as f64 * self.scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_and_svg() {
        let mut root = Node::default();
        root.add(&["main", "alpha"], 3);
        root.add(&["main", "beta"], 1);
        root.add(&["main"], 0);
        assert_eq!(root.value, 4);
        assert_eq!(root.children["main"].value, 4);
        assert_eq!(root.children["main"].children["alpha"].value, 3);
        assert_eq!(root.rows(1.0), 3);
        let svg = svg(&root, "a <title>", &|v| format!("{v} B"));
        assert!(svg.contains("<title>alpha (3 B, 75.00%)</title>"), "{svg}");
        assert!(svg.contains("<title>all (4 B, 100.00%)</title>"));
        assert!(svg.contains("a &lt;title&gt;"));
        assert!(!svg.contains("<script"));
        // Three rows plus the background.
        assert_eq!(svg.matches("<rect").count(), 5);
    }

    #[test]
    fn slivers_add_no_height() {
        let mut root = Node::default();
        root.add(&["main", "wide"], 1_000_000);
        let shallow = svg(&root, "t", &|v| format!("{v} B"));
        // A stack 100 frames deep, far narrower than MIN_WIDTH.
        let deep: Vec<String> = (0..100).map(|i| format!("f{i}")).collect();
        let deep: Vec<&str> = std::iter::once("main")
            .chain(deep.iter().map(String::as_str))
            .collect();
        root.add(&deep, 1);
        let scale = (WIDTH - 2.0 * PAD) / root.value as f64;
        assert_eq!(root.rows(scale), 3);
        let with_slivers = svg(&root, "t", &|v| format!("{v} B"));
        let height = |s: &str| {
            s.split("height=\"")
                .nth(1)
                .and_then(|h| h.split('"').next())
                .map(str::to_owned)
        };
        assert_eq!(height(&with_slivers), height(&shallow));
        assert_eq!(
            height(&shallow),
            Some(format!("{}", TOP + 3.0 * ROW + BOTTOM))
        );
        assert!(!with_slivers.contains("<title>f0 "));
        // Nothing to draw: one row, for the note.
        let empty = svg(&Node::default(), "t", &|v| format!("{v} B"));
        assert_eq!(height(&empty), Some(format!("{}", TOP + ROW + BOTTOM)));
    }

    #[test]
    fn labels_fit_and_colours_are_warm() {
        assert_eq!(fit("alloc_site_alpha", 1000.0), "alloc_site_alpha");
        assert_eq!(fit("alloc_site_alpha", 60.0), "alloc..");
        assert_eq!(fit("alloc_site_alpha", 20.0), "");
        for name in ["a", "main", "alloc_site_beta"] {
            let c = color(name);
            assert_eq!(c, color(name));
            let rgb: Vec<u32> = c
                .trim_start_matches("rgb(")
                .trim_end_matches(')')
                .split(',')
                .map(|v| v.parse().unwrap())
                .collect();
            assert!(rgb[0] >= 205 && rgb[1] <= 230 && rgb[2] <= 55, "{c}");
        }
    }
}
