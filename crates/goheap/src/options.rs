//! Run-time options from environment variables, all in one table, read
//! once without allocating (`getenv`, never `std::env`).
//!
//! [`OPTIONS`] are switches: `1`, `y`, `yes`, `t`, `true`, `on` (any case)
//! turn one on, `0`, `n`, `no`, `f`, `false`, `off` turn it off, anything
//! else (or unset) leaves its default. [`VALUE_OPTIONS`] take a value.
//! Both front-ends read them when the process heap initialises; the C
//! library also acts on them at its first call.

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
    /// `GOHEAP_SCAVENGER`.
    Scavenger = 3,
    /// `GOHEAP_SCAVTRACE`.
    ScavTrace = 4,
    /// `GOHEAP_MADV_FREE`.
    MadvFree = 5,
    /// `GOHEAP_HARD_LIMIT`.
    HardLimit = 6,
    /// `GOHEAP_MEMBARRIER`.
    Membarrier = 7,
    /// `GOHEAP_HUGE_PAGES`.
    HugePages = 8,
}

impl Opt {
    /// Every option, in table order.
    pub const ALL: [Opt; NUM_OPTIONS] = [
        Opt::IgnoreInvalidFree,
        Opt::PrintStats,
        Opt::Verbose,
        Opt::Scavenger,
        Opt::ScavTrace,
        Opt::MadvFree,
        Opt::HardLimit,
        Opt::Membarrier,
        Opt::HugePages,
    ];

    /// The option's row of [`OPTIONS`].
    pub fn info(self) -> &'static OptionInfo {
        &OPTIONS[self as usize]
    }
}

/// Number of options.
pub const NUM_OPTIONS: usize = 9;

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
    OptionInfo {
        name: c"GOHEAP_SCAVENGER",
        default: true,
        description: "The background scavenger, which returns free memory to the OS (paced at \
                      about 1 % of a CPU while the heap is busy, at once when it goes idle). \
                      `0` turns it off: RSS is then bounded only by the memory limit and \
                      `free_os_memory`.",
    },
    OptionInfo {
        name: c"GOHEAP_SCAVTRACE",
        default: false,
        description: "Print a line to stderr for each scavenger cycle that released memory \
                      (like Go's `GODEBUG=scavtrace=1`).",
    },
    OptionInfo {
        name: c"GOHEAP_MADV_FREE",
        default: false,
        description: "Release memory with `MADV_FREE` instead of `MADV_DONTNEED`: cheaper, but \
                      the pages keep counting in RSS until the kernel needs them.",
    },
    OptionInfo {
        name: c"GOHEAP_HARD_LIMIT",
        default: false,
        description: "Make the memory limit hard: an allocation that would exceed it after \
                      releasing every free page fails (null / `ENOMEM`).",
    },
    OptionInfo {
        name: c"GOHEAP_MEMBARRIER",
        default: true,
        description: "Coordinate with threads' caches (idle-cache reclaim, the exact double-free \
                      check) through `membarrier(2)`, so a thread's own allocations pay no fence. \
                      `0`, or a kernel without it, uses the fallback: a full fence per cache \
                      operation. `goheap::metrics().cache_handshake` says which is in use.",
    },
    OptionInfo {
        name: c"GOHEAP_HUGE_PAGES",
        default: false,
        description: "`1`: ask for transparent huge pages (`MADV_HUGEPAGE`) on the heap once it \
                      has grown to 32 MiB and most of it is resident: fewer page faults for \
                      large heaps, nothing for small ones. Off by default: no workload of the \
                      project's benchmarks gained, and SQLite's lost 3-5 %. Off, goheap gives \
                      no huge-page advice (the kernel's `transparent_hugepage` setting decides \
                      alone).",
    },
];

/// An option that takes a value rather than a switch.
#[derive(Debug, Clone, Copy)]
pub struct ValueOptionInfo {
    /// The environment variable.
    pub name: &'static CStr,
    /// The form of its value, for people.
    pub value: &'static str,
    /// What it does, for people.
    pub description: &'static str,
}

/// Options with values, read where they are used (see each one).
pub const VALUE_OPTIONS: [ValueOptionInfo; 6] = [
    ValueOptionInfo {
        name: c"GOHEAP_MEMORY_LIMIT",
        value: "bytes with an optional unit (`B`, `KiB`, `MiB`, `GiB`, `TiB`), or `max`",
        description: "Soft memory limit on everything goheap maps (like `GOMEMLIMIT`). Unset: \
                      the container's limit (cgroup v2 `memory.max`, v1 \
                      `memory.limit_in_bytes`), re-read every second; `max`: none.",
    },
    ValueOptionInfo {
        name: c"GOHEAP_PROFILE_RATE",
        value: "bytes with an optional unit",
        description: "Heap profile sampling: one allocation per this many bytes on average (Go's \
                      `MemProfileRate`); `1` samples every allocation, `0` none. Unset: off, or \
                      512 KiB when `GOHEAP_HEAP_PROFILE` is set. Also `goheap::set_profile_rate`.",
    },
    ValueOptionInfo {
        name: c"GOHEAP_HEAP_PROFILE",
        value: "a path (`%p` = the process id)",
        description: "Profile the heap and write the profile (pprof format) there at exit. Read \
                      it with `goheap profile PATH` or `go tool pprof PATH`.",
    },
    ValueOptionInfo {
        name: c"GOHEAP_HEAP_PROFILE_INTERVAL",
        value: "seconds",
        description: "With `GOHEAP_HEAP_PROFILE`: also write `PATH.0001`, `PATH.0002`, ... every \
                      that many seconds.",
    },
    ValueOptionInfo {
        name: c"GOHEAP_HEAP_PROFILE_SIGNAL",
        value: "a signal number or name (`USR2`)",
        description: "With `GOHEAP_HEAP_PROFILE`: also write a numbered profile each time the \
                      process gets this signal.",
    },
    ValueOptionInfo {
        name: c"GOHEAP_CGROUP_ROOT",
        value: "a directory",
        description: "For tests: read the process's cgroup membership from `DIR/self.cgroup` \
                      and the cgroup tree from `DIR/sys` instead of `/proc/self/cgroup` and \
                      `/sys/fs/cgroup`.",
    },
];

/// 0 = unset, 1 = off, 2 = on.
static VALUES: [AtomicU8; NUM_OPTIONS] = [const { AtomicU8::new(0) }; NUM_OPTIONS];

/// Reads every option from the environment (again, if called again).
/// Never allocates: `getenv` returns a pointer into the environment.
pub fn load() {
    for (i, info) in OPTIONS.iter().enumerate() {
        let on = env_bytes(info.name).and_then(parse_switch).unwrap_or(info.default);
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
    parse_switch(v).unwrap_or(false)
}

/// A switch's value: `Some(true)` for the on words, `Some(false)` for
/// `0`, `n`, `no`, `f`, `false`, `off`, `None` for anything else.
pub fn parse_switch(v: &[u8]) -> Option<bool> {
    const FALSE: [&[u8]; 6] = [b"0", b"n", b"no", b"f", b"false", b"off"];
    if FALSE.iter().any(|f| f.eq_ignore_ascii_case(v)) {
        return Some(false);
    }
    on_word(v).then_some(true)
}

fn on_word(v: &[u8]) -> bool {
    const TRUE: [&[u8]; 6] = [b"1", b"y", b"yes", b"t", b"true", b"on"];
    TRUE.iter().any(|t| t.eq_ignore_ascii_case(v))
}

/// Parses a memory size the way Go parses `GOMEMLIMIT`: a non-negative
/// integer with an optional unit `B`, `KiB`, `MiB`, `GiB` or `TiB` (also
/// `K`/`M`/`G`/`T`, `KB`/`MB`/`GB`/`TB` as the binary units, as people
/// write them). `max`, `off` and `none` mean no limit (`usize::MAX`).
/// Leading and trailing whitespace is ignored.
pub fn parse_size(s: &[u8]) -> Option<usize> {
    let s = s.trim_ascii();
    if s.eq_ignore_ascii_case(b"max")
        || s.eq_ignore_ascii_case(b"off")
        || s.eq_ignore_ascii_case(b"none")
    {
        return Some(usize::MAX);
    }
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut n: usize = 0;
    for &c in &s[..digits] {
        n = n.checked_mul(10)?.checked_add((c - b'0') as usize)?;
    }
    let unit = s[digits..].trim_ascii_start();
    let shift = match unit.to_ascii_lowercase_arr()? {
        (0, _) => 0,
        (len, u) => match &u[..len] {
            b"b" => 0,
            b"k" | b"kb" | b"kib" => 10,
            b"m" | b"mb" | b"mib" => 20,
            b"g" | b"gb" | b"gib" => 30,
            b"t" | b"tb" | b"tib" => 40,
            _ => return None,
        },
    };
    n.checked_mul(1usize << shift)
}

trait LowerArr {
    fn to_ascii_lowercase_arr(&self) -> Option<(usize, [u8; 3])>;
}

impl LowerArr for [u8] {
    /// Up to three bytes, lowercased, without allocating.
    fn to_ascii_lowercase_arr(&self) -> Option<(usize, [u8; 3])> {
        if self.len() > 3 {
            return None;
        }
        let mut out = [0u8; 3];
        for (o, c) in out.iter_mut().zip(self) {
            *o = c.to_ascii_lowercase();
        }
        Some((self.len(), out))
    }
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
        assert_eq!(OPTIONS[Opt::Scavenger as usize].name, c"GOHEAP_SCAVENGER");
        assert_eq!(OPTIONS[Opt::ScavTrace as usize].name, c"GOHEAP_SCAVTRACE");
        assert_eq!(OPTIONS[Opt::MadvFree as usize].name, c"GOHEAP_MADV_FREE");
        assert_eq!(OPTIONS[Opt::HardLimit as usize].name, c"GOHEAP_HARD_LIMIT");
        assert_eq!(OPTIONS[Opt::Membarrier as usize].name, c"GOHEAP_MEMBARRIER");
        assert_eq!(OPTIONS[Opt::HugePages as usize].name, c"GOHEAP_HUGE_PAGES");
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
