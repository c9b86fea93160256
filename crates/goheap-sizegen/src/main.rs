//! `goheap-sizegen`: writes goheap's size-class table.
//!
//! ```sh
//! cargo run -p goheap-sizegen            # rewrite crates/goheap/src/sizeclass/table.rs
//! cargo run -p goheap-sizegen -- --stdout  # print it instead
//! ```
//!
//! The rules and the checks live in `crates/goheap/src/sizeclass/rules.rs`,
//! which goheap's tests compile too: they regenerate the text and fail if
//! the checked-in `table.rs` differs. This program writes nothing when a
//! check fails.

use std::path::PathBuf;
use std::process::ExitCode;

#[path = "../../goheap/src/sizeclass/report.rs"]
mod report;
#[path = "../../goheap/src/sizeclass/rules.rs"]
mod rules;

fn main() -> ExitCode {
    let stdout = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--stdout") => true,
        Some(other) => {
            eprintln!("goheap-sizegen: unknown argument {other:?} (only --stdout)");
            return ExitCode::from(2);
        }
    };
    let text = match rules::generate() {
        Ok(text) => text,
        Err(why) => {
            eprintln!("goheap-sizegen: refusing to write the table: {why}");
            return ExitCode::FAILURE;
        }
    };
    if stdout {
        print!("{text}");
        return ExitCode::SUCCESS;
    }
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "goheap",
        "src",
        "sizeclass",
        "table.rs",
    ]
    .iter()
    .collect();
    match std::fs::write(&path, text) {
        Ok(()) => {
            eprintln!("goheap-sizegen: wrote {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("goheap-sizegen: writing {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}
