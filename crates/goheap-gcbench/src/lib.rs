//! What the Rust programs of `goheap gcbench` share: the binary-trees
//! driver (its command line, its schedule of trees and the exact text it
//! prints) and the stats line on stderr. Each program only says how to
//! build a tree and count its nodes, with its own kind of node.
//!
//! The binary-trees programs (`gcbench-box`, `gcbench-rust-gc`,
//! `gcbench-dumpster`, and goheap-gc's own `binary_trees` example, which
//! prints the same) take:
//!
//! ```text
//! PROGRAM [N] [--stats]     N: the depth (default 10)
//! ```
//!
//! and print the Benchmarks Game's output: a stretch tree of depth N+1, a
//! long-lived tree of depth N kept until the end, and 2^(N−d+4) trees of
//! depth d for d = 4, 6, …, N, each built bottom-up and then walked to
//! count its nodes. With `--stats`, one more line on stderr:
//! `gc cycles: C  longest pause: P ms`, with what the collector can say
//! (`longest pause: - ms` when it does not measure its pauses).

use std::process::exit;

/// What a binary-trees program was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args {
    /// The depth N.
    pub depth: u32,
    /// Whether to print the stats line on stderr at the end.
    pub stats: bool,
}

/// Parses `[N] [--stats]`; `None` for anything else.
pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Option<Args> {
    let mut a = Args {
        depth: 10,
        stats: false,
    };
    for arg in args {
        match arg.as_ref() {
            "--stats" => a.stats = true,
            n => a.depth = n.parse().ok().filter(|&d| d <= 30)?,
        }
    }
    Some(a)
}

/// The command line of this process, or exit status 2 with a usage line.
pub fn args() -> Args {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    parse_args(&argv).unwrap_or_else(|| {
        let me = std::env::args().next().unwrap_or_default();
        eprintln!("usage: {me} [N] [--stats]   (N: the depth, at most 30, default 10)");
        exit(2)
    })
}

/// Runs binary-trees of depth `depth` and prints its output on stdout.
/// `tree(d)` builds a tree of depth `d` and returns it; `count(&t)` walks
/// it and returns its number of nodes.
pub fn binary_trees<T>(depth: u32, tree: impl Fn(u32) -> T, count: impl Fn(&T) -> u32) {
    let min_depth = 4;
    let max_depth = depth.max(min_depth + 2);
    let stretch = max_depth + 1;
    println!(
        "stretch tree of depth {stretch}\t check: {}",
        count(&tree(stretch))
    );
    let long_lived = tree(max_depth);
    let mut d = min_depth;
    while d <= max_depth {
        let iterations = 1u32 << (max_depth - d + min_depth);
        let mut sum = 0u32;
        for _ in 0..iterations {
            sum = sum.wrapping_add(count(&tree(d)));
        }
        println!("{iterations}\t trees of depth {d}\t check: {sum}");
        d += 2;
    }
    println!(
        "long lived tree of depth {max_depth}\t check: {}",
        count(&long_lived)
    );
}

/// The stats line: `gc cycles: C  longest pause: P ms`, `-` for what is
/// not known.
pub fn stats_line(cycles: Option<u64>, longest_pause_ns: Option<u64>) -> String {
    let cycles = cycles.map_or("-".to_string(), |c| c.to_string());
    let pause = longest_pause_ns.map_or("-".to_string(), |p| format!("{:.3}", p as f64 / 1e6));
    format!("gc cycles: {cycles}  longest pause: {pause} ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_command_line() {
        let none: [&str; 0] = [];
        assert_eq!(
            parse_args(&none),
            Some(Args {
                depth: 10,
                stats: false
            })
        );
        assert_eq!(
            parse_args(&["20", "--stats"]),
            Some(Args {
                depth: 20,
                stats: true
            })
        );
        assert_eq!(parse_args(&["x"]), None);
        assert_eq!(parse_args(&["31"]), None);
    }

    #[test]
    fn formats_the_stats_line() {
        assert_eq!(
            stats_line(Some(3), Some(1_500_000)),
            "gc cycles: 3  longest pause: 1.500 ms"
        );
        assert_eq!(stats_line(None, None), "gc cycles: -  longest pause: - ms");
    }
}
