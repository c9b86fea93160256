//! The driver shared by the four benchmark binaries (`bench-goheap`,
//! `bench-system`, `bench-mimalloc`, `bench-jemalloc`). Each binary only
//! sets its `#[global_allocator]` and calls [`main`].
//!
//! Usage of every binary:
//!
//! ```text
//! bench-ALLOC WORKLOAD [SCALE]    run one workload, print one result line
//! bench-ALLOC --list              list the workloads
//! ```
//!
//! The result line is `key=value` pairs separated by spaces, for example
//! `workload=churn alloc=goheap scale=1 checksum=1f0e2d3c4b5a6978 secs=0.312100`,
//! possibly followed by allocator-specific statistics. `secs` is the time of
//! the workload alone, measured inside the process.

use std::process::ExitCode;
use std::time::Instant;

/// Runs the command line of a benchmark binary for allocator `alloc`;
/// `extra` returns allocator statistics to append to the result line
/// (`key=value` pairs, or an empty string).
pub fn main(alloc: &str, extra: fn() -> String) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--list") => {
            for w in goheap_workloads::WORKLOADS {
                println!("{:<12} {}", w.name, w.about);
            }
            for w in goheap_workloads::STANDALONE {
                println!("{:<12} (not in the suite) {}", w.name, w.about);
            }
            ExitCode::SUCCESS
        }
        Some(name) if args.len() <= 2 => {
            let Some(w) = goheap_workloads::find(name) else {
                eprintln!("bench-{alloc}: unknown workload {name:?} (try --list)");
                return ExitCode::from(2);
            };
            let scale = match args.get(1).map(|s| s.parse::<f64>()) {
                None => 1.0,
                Some(Ok(s)) if s > 0.0 && s.is_finite() => s,
                Some(_) => {
                    eprintln!("bench-{alloc}: SCALE must be a positive number");
                    return ExitCode::from(2);
                }
            };
            let start = Instant::now();
            let checksum = (w.run)(scale);
            let secs = start.elapsed().as_secs_f64();
            let extra = extra();
            let sep = if extra.is_empty() { "" } else { " " };
            println!(
                "workload={} alloc={alloc} scale={scale} checksum={checksum:016x} secs={secs:.6}{sep}{extra}",
                w.name
            );
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: bench-{alloc} WORKLOAD [SCALE]  |  bench-{alloc} --list");
            ExitCode::from(2)
        }
    }
}

/// No statistics.
pub fn no_extra() -> String {
    String::new()
}
