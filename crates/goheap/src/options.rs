//! Run-time options from environment variables, all in one table, read
//! once without allocating (`getenv`, never `std::env`).
//!
//! Every option is a switch: `1`, `y`, `yes`, `t`, `true`, `on` (any case)
//! turn it on, anything else (or unset) leaves it at its default. The C
//! library ([`load`] at first use) acts on them; the Rust global allocator
//! reads none of them today.

use crate::sync::atomic::{AtomicU8, Ordering};
use core::ffi::CStr;

/// One option: its environment variable, default and meaning.
#[derive(Debug, Clone, Copy)]
pub struct OptionInfo {
    /// The environment variable.
    pub name: &'static CStr,
    /// Value when the variable is unset.
    pub default: bool,
    /// What it does, for people.
    pub description: &'static str,
}

/// The options, in [`Opt`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Opt {
    /// `GOHEAP_IGNORE_INVALID_FREE`.
    IgnoreInvalidFree = 0,
    /// `GOHEAP_PRINT_STATS`.
    PrintStats = 1,
    /// `GOHEAP_VERBOSE`.
    Verbose = 2,
}

impl Opt {
    /// Every option, in table order.
    pub const ALL: [Opt; NUM_OPTIONS] = [Opt::IgnoreInvalidFree, Opt::PrintStats, Opt::Verbose];

    /// The option's row of [`OPTIONS`].
    pub fn info(self) -> &'static OptionInfo {
        &OPTIONS[self as usize]
    }
}

/// Number of options.
pub const NUM_OPTIONS: usize = 3;

/// The table of every option (the C library's README repeats it).
pub const OPTIONS: [OptionInfo; NUM_OPTIONS] = [
    OptionInfo {
        name: c"GOHEAP_IGNORE_INVALID_FREE",
        default: false,
        description: "C `free`/`realloc`-free of a pointer goheap does not own (another \
                      allocator's, the stack, static data) is ignored, with one warning on \
                      stderr, instead of aborting. Interior pointers into goheap memory and \
                      double frees still abort.",
    },
    OptionInfo {
        name: c"GOHEAP_PRINT_STATS",
        default: false,
        description: "Print statistics to stderr when the process exits (`atexit`).",
    },
    OptionInfo {
        name: c"GOHEAP_VERBOSE",
        default: false,
        description: "Print one line to stderr when goheap initialises, with the options in force.",
    },
];

/// 0 = unset, 1 = off, 2 = on.
static VALUES: [AtomicU8; NUM_OPTIONS] = [const { AtomicU8::new(0) }; NUM_OPTIONS];

/// Reads every option from the environment (again, if called again).
/// Never allocates: `getenv` returns a pointer into the environment.
pub fn load() {
    for (i, info) in OPTIONS.iter().enumerate() {
        let on = match env_bytes(info.name) {
            Some(v) => parse_bool(v),
            None => info.default,
        };
        VALUES[i].store(if on { 2 } else { 1 }, Ordering::Relaxed);
    }
}

/// Whether the environment has been read (by [`load`]).
pub fn loaded() -> bool {
    VALUES[0].load(Ordering::Relaxed) != 0
}

/// The value of `opt`: its default until [`load`] ran.
pub fn get(opt: Opt) -> bool {
    match VALUES[opt as usize].load(Ordering::Relaxed) {
        0 => OPTIONS[opt as usize].default,
        v => v == 2,
    }
}

/// The bytes of environment variable `name`, without allocating.
fn env_bytes(name: &CStr) -> Option<&'static [u8]> {
    // SAFETY: `name` is NUL-terminated; `getenv` returns null or a pointer
    // to a NUL-terminated string in the environment, which lives as long
    // as nobody changes that variable (we read it at once).
    unsafe {
        let p = libc::getenv(name.as_ptr());
        if p.is_null() {
            None
        } else {
            Some(CStr::from_ptr(p).to_bytes())
        }
    }
}

/// `1`, `y`, `yes`, `t`, `true`, `on` (any case) are true.
pub fn parse_bool(v: &[u8]) -> bool {
    const TRUE: [&[u8]; 6] = [b"1", b"y", b"yes", b"t", b"true", b"on"];
    TRUE.iter().any(|t| t.eq_ignore_ascii_case(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_enum() {
        for (i, o) in Opt::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i);
        }
        assert_eq!(
            OPTIONS[Opt::IgnoreInvalidFree as usize].name,
            c"GOHEAP_IGNORE_INVALID_FREE"
        );
        assert_eq!(
            OPTIONS[Opt::PrintStats as usize].name,
            c"GOHEAP_PRINT_STATS"
        );
        assert_eq!(OPTIONS[Opt::Verbose as usize].name, c"GOHEAP_VERBOSE");
    }

    #[test]
    fn parses_switches() {
        for v in ["1", "yes", "TRUE", "On", "y"] {
            assert!(parse_bool(v.as_bytes()), "{v}");
        }
        for v in ["", "0", "no", "false", "off", "2"] {
            assert!(!parse_bool(v.as_bytes()), "{v}");
        }
    }
}
