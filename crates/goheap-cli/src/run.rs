//! `goheap run [--stats] [--verbose] [--] CMD ARGS...`: runs a command with
//! every allocation of its processes served by goheap, by preloading
//! `libgoheap.so` (`LD_PRELOAD`), optionally printing goheap's statistics
//! when each process exits.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

const USAGE: &str = "usage: goheap run [--stats] [--verbose] [--heap-profile FILE] [--profile-rate BYTES] [--] CMD [ARGS...]\n\
    \n\
    Runs CMD with libgoheap.so preloaded (LD_PRELOAD), so its malloc, free\n\
    and C++ new/delete are goheap's, in CMD and in the processes it starts.\n\
    \n\
    --stats     print goheap's statistics on stderr as each process exits\n\
    \x20           (GOHEAP_PRINT_STATS=1)\n\
    --verbose   print a line on stderr as goheap starts in each process\n\
    \x20           (GOHEAP_VERBOSE=1)\n\
    --heap-profile FILE\n\
    \x20           sample allocations and write CMD's heap profile (pprof\n\
    \x20           format) to FILE when it exits; processes CMD starts write\n\
    \x20           FILE.PID. Read it with `goheap profile FILE`.\n\
    --profile-rate BYTES\n\
    \x20           mean bytes between samples (default Go's 524288; 1 samples\n\
    \x20           every allocation)\n\
    \n\
    libgoheap.so is looked for next to the goheap executable (as cargo\n\
    builds both into target/<profile>/) and built with cargo if missing.\n\
    The exit status is CMD's (128 + N if signal N killed it).";

/// Runs `goheap run` with the arguments that follow `run`; returns the
/// process exit status.
pub(crate) fn run(args: &[String]) -> i32 {
    let mut stats = false;
    let mut verbose = false;
    let mut heap_profile: Option<PathBuf> = None;
    let mut rate: Option<String> = None;
    let mut rest = args;
    while let Some(a) = rest.first() {
        match a.as_str() {
            "--stats" => stats = true,
            "--verbose" => verbose = true,
            "--heap-profile" | "--profile-rate" => {
                let Some(v) = rest.get(1) else {
                    eprintln!("goheap run: {a} needs a value\n\n{USAGE}");
                    return 2;
                };
                if a == "--heap-profile" {
                    heap_profile = Some(PathBuf::from(v));
                } else if goheap::parse_size(v.as_bytes()).is_some_and(|r| r != usize::MAX) {
                    rate = Some(v.clone());
                } else {
                    eprintln!("goheap run: --profile-rate {v}: not a byte count");
                    return 2;
                }
                rest = &rest[1..];
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return 0;
            }
            "--" => {
                rest = &rest[1..];
                break;
            }
            s if s.starts_with('-') => {
                eprintln!("goheap run: unknown option {s}\n\n{USAGE}");
                return 2;
            }
            _ => break,
        }
        rest = &rest[1..];
    }
    let Some((cmd, cmd_args)) = rest.split_first() else {
        eprintln!("goheap run: no command given\n\n{USAGE}");
        return 2;
    };
    let lib = match find_or_build_lib() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("goheap run: {e}");
            return 1;
        }
    };
    let mut c = Command::new(cmd);
    c.args(cmd_args).env(
        "LD_PRELOAD",
        preload_value(&lib, std::env::var_os("LD_PRELOAD")),
    );
    if stats {
        c.env("GOHEAP_PRINT_STATS", "1");
    }
    if verbose {
        c.env("GOHEAP_VERBOSE", "1");
    }
    if let Some(f) = &heap_profile {
        // Each process writes FILE.PID (`%p`); CMD's own becomes FILE.
        let mut v = f.clone().into_os_string();
        v.push(".%p");
        c.env("GOHEAP_HEAP_PROFILE", v);
    }
    if let Some(r) = &rate {
        c.env("GOHEAP_PROFILE_RATE", r);
    }
    let child = c.spawn().and_then(|mut ch| {
        let pid = ch.id();
        ch.wait().map(|st| (st, pid))
    });
    match child {
        Ok((st, pid)) => {
            if let Some(f) = &heap_profile {
                let mut own = f.clone().into_os_string();
                own.push(format!(".{pid}"));
                match std::fs::rename(&own, f) {
                    Ok(()) => eprintln!("goheap run: heap profile written to {}", f.display()),
                    Err(e) => eprintln!(
                        "goheap run: {cmd} wrote no heap profile ({}: {e})",
                        Path::new(&own).display()
                    ),
                }
            }
            exit_code(st)
        }
        Err(e) => {
            eprintln!("goheap run: cannot run {cmd}: {e}");
            if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            }
        }
    }
}

/// `LD_PRELOAD` with goheap first, keeping what was there.
fn preload_value(lib: &Path, old: Option<OsString>) -> OsString {
    let mut v = OsString::from(lib);
    if let Some(old) = old.filter(|o| !o.is_empty()) {
        v.push(":");
        v.push(old);
    }
    v
}

/// A child's exit status as a shell reports it.
fn exit_code(st: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        _ => 1,
    }
}

/// `libgoheap.so` next to the running executable (or one directory up, for
/// test binaries in `target/<profile>/deps/`); built with cargo into that
/// directory if it is a cargo target directory and the library is missing.
fn find_or_build_lib() -> Result<PathBuf, String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the goheap executable: {e}"))?;
    let mut dir = exe
        .parent()
        .ok_or("the goheap executable has no directory")?
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let lib = dir.join("libgoheap.so");
    if lib.exists() {
        return Ok(lib);
    }
    // target/<profile>/goheap: build the library with the same profile.
    let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let target = dir
        .parent()
        .ok_or_else(|| format!("{} not found", lib.display()))?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if !matches!(profile, "debug" | "release") || !workspace.join("crates/goheap-capi").exists() {
        return Err(format!(
            "{} not found; build it with `cargo build --release -p goheap-capi` and put it next to goheap",
            lib.display()
        ));
    }
    eprintln!(
        "goheap run: {} is missing; building it with cargo",
        lib.display()
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut c = Command::new(cargo);
    c.args(["build", "-p", "goheap-capi", "--target-dir"])
        .arg(target)
        .current_dir(&workspace);
    if profile == "release" {
        c.arg("--release");
    }
    let st = c.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !st.success() || !lib.exists() {
        return Err(format!("building {} failed", lib.display()));
    }
    Ok(lib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preload_keeps_existing_entries() {
        let lib = Path::new("/x/libgoheap.so");
        assert_eq!(preload_value(lib, None), OsString::from("/x/libgoheap.so"));
        assert_eq!(
            preload_value(lib, Some("".into())),
            OsString::from("/x/libgoheap.so")
        );
        assert_eq!(
            preload_value(lib, Some("/y/a.so".into())),
            OsString::from("/x/libgoheap.so:/y/a.so")
        );
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn usage_errors() {
        assert_eq!(run(&s(&[])), 2);
        assert_eq!(run(&s(&["--stats"])), 2);
        assert_eq!(run(&s(&["--bogus", "true"])), 2);
        assert_eq!(run(&s(&["--heap-profile"])), 2);
        assert_eq!(run(&s(&["--profile-rate", "lots", "true"])), 2);
        assert_eq!(run(&s(&["--help"])), 0);
    }

    #[test]
    fn runs_the_command_under_goheap() {
        // The child sees goheap preloaded (the library exists) and the
        // option, and its status comes back.
        let script = "case \"$LD_PRELOAD\" in */libgoheap.so) test -f \"$LD_PRELOAD\" || exit 1;; *) exit 1;; esac; \
                      test \"$GOHEAP_PRINT_STATS\" = 1 || exit 2; exit 7";
        assert_eq!(run(&s(&["--stats", "--", "sh", "-c", script])), 7);
        assert_eq!(
            run(&s(&[
                "sh",
                "-c",
                "test -z \"$GOHEAP_PRINT_STATS\" && exit 4"
            ])),
            4
        );
        assert_eq!(run(&s(&["sh", "-c", "kill -TERM $$"])), 128 + 15);
        assert_eq!(run(&s(&["/nonexistent/program"])), 127);
        // A real program allocates through goheap and still works.
        assert_eq!(
            run(&s(&["--", "sh", "-c", "echo hi | sort > /dev/null"])),
            0
        );
    }
}
