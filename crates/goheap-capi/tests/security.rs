//! Attacks on the heap through the C interface: double frees wherever the
//! first copy went, frees of slots never handed out, bad frees of large
//! objects, and use-after-free writes to a free list's links. Each test
//! runs one case of `tests/c/security.c` (or `tests/c/security.cc`) as a
//! child process under `LD_PRELOAD` of the **release** `libgoheap.so` (the
//! checks the shipped library makes, whatever the test profile) and
//! expects goheap to abort (SIGABRT) with a `goheap: fatal error:` line
//! that names the pointer the case printed (`ptr=0x...` on stderr) and
//! says what is wrong.
//!
//! A case that survives its bad operation exits with status 3; status 4
//! means a function it needs is missing (`NO_FREE_SIZED`), 5 that the
//! heap's layout is not the one the case assumes. The control test runs a
//! benign workload under the same library, so that checks which fire on
//! correct programs are caught too.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// Time limit per run (the programs also set `alarm(20)`).
const LIMIT: Duration = Duration::from_secs(60);

/// Compiles `tests/c/<src>` into `<name>` (once per test binary per
/// program): `security.c` for the C cases, `security.cc` for the C++ one.
/// Not linked with goheap: it comes in with `LD_PRELOAD`.
fn program(src: &'static str) -> &'static Path {
    static C: OnceLock<PathBuf> = OnceLock::new();
    static CXX: OnceLock<PathBuf> = OnceLock::new();
    let (cell, cxx) = match src {
        "security.c" => (&C, false),
        "security.cc" => (&CXX, true),
        _ => panic!("no program {src}"),
    };
    cell.get_or_init(|| {
        let out = work_dir("security").join(src.replace('.', "-"));
        let mut c = cc(cxx);
        c.arg(c_src(src)).arg("-o").arg(&out).arg("-ldl");
        compile(c);
        out
    })
}

/// What a case must do.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Die of SIGABRT with a `goheap: fatal error:` line that names the
    /// pointer the case printed and contains this phrase.
    Abort(&'static str),
    /// The same, without checking the pointer (the report may name the
    /// corrupt link or the object).
    AbortAnyPointer(&'static str),
    /// Exit 0, no fatal error, and this many `ignoring free` warnings
    /// (each naming the printed pointer).
    Exit0 { ignoring_free_warnings: usize },
}

/// The status of a run in words, for failure messages.
fn describe(r: &Run) -> String {
    if r.timed_out {
        return "timed out (killed)".to_string();
    }
    match (r.code(), r.signal()) {
        (Some(3), _) => "exit 3: the bad operation went unnoticed".to_string(),
        (Some(4), _) if r.stderr.contains("NO_FREE_SIZED") => {
            "exit 4: free_sized is not exported by libgoheap (NO_FREE_SIZED)".to_string()
        }
        (Some(4), _) => "exit 4: a function the case needs is missing".to_string(),
        (Some(5), _) => "exit 5: the heap's layout is not the one the case assumes".to_string(),
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) if s == libc::SIGABRT => "killed by SIGABRT".to_string(),
        (None, Some(s)) if s == libc::SIGALRM => "killed by SIGALRM (alarm(20): hung)".to_string(),
        (None, Some(s)) => format!("killed by signal {s}"),
        (None, None) => format!("{:?}", r.status),
    }
}

/// Runs `case` of `security.c` (of `security.cc` for the `cxx_` cases)
/// under `LD_PRELOAD` of the release library with `env` added, and checks
/// it does what `expect` says; on failure the message shows the status and
/// the child's whole stderr. Without the compiler (`cc`, or `c++` for the
/// `cxx_` cases) it fails under CI and skips elsewhere ([`need`]).
fn run_case(case: &str, env: &[(&str, &str)], expect: Expect) {
    let cxx = case.starts_with("cxx_");
    if !need(if cxx { "c++" } else { "cc" }) {
        return;
    }
    let src = if cxx { "security.cc" } else { "security.c" };
    let mut cmd = Command::new(program(src));
    cmd.arg(case)
        .env("LD_PRELOAD", release_lib_so())
        .env_remove("GOHEAP_IGNORE_INVALID_FREE")
        .env_remove("GOHEAP_PRINT_STATS")
        .env_remove("GOHEAP_VERBOSE");
    for &(k, v) in env {
        cmd.env(k, v);
    }
    let r = run(cmd, LIMIT);
    let fail = |why: String| -> ! {
        panic!(
            "{case}: {why}\nstatus: {} ({:?})\n--- stderr\n{}--- end of stderr",
            describe(&r),
            r.status,
            r.stderr
        )
    };
    let ptr = r
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("ptr="))
        .map(str::trim);
    let fatal: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("goheap: fatal error:"))
        .collect();
    match expect {
        Expect::Abort(phrase) | Expect::AbortAnyPointer(phrase) => {
            if r.timed_out || r.signal() != Some(libc::SIGABRT) {
                fail(format!(
                    "expected SIGABRT with a report containing {phrase:?}"
                ));
            }
            let ptr = match (expect, ptr) {
                (Expect::AbortAnyPointer(_), _) => None,
                (_, Some(p)) if p.starts_with("0x") => Some(p),
                _ => fail("the case printed no ptr=0x... line".to_string()),
            };
            if !fatal
                .iter()
                .any(|l| l.contains(phrase) && ptr.is_none_or(|p| l.contains(p)))
            {
                fail(match ptr {
                    Some(p) => format!(
                        "no `goheap: fatal error:` line naming {p} and containing {phrase:?}"
                    ),
                    None => format!("no `goheap: fatal error:` line containing {phrase:?}"),
                });
            }
        }
        Expect::Exit0 {
            ignoring_free_warnings,
        } => {
            if r.timed_out || r.code() != Some(0) {
                fail("expected exit 0".to_string());
            }
            if !fatal.is_empty() || r.stderr.contains("fatal error") {
                fail("a fatal error was reported".to_string());
            }
            let warnings: Vec<&str> = r
                .stderr
                .lines()
                .filter(|l| l.contains("ignoring free"))
                .collect();
            if warnings.len() != ignoring_free_warnings {
                fail(format!(
                    "expected {ignoring_free_warnings} `ignoring free` warning(s), got {}",
                    warnings.len()
                ));
            }
            if let Some(p) = ptr {
                if !warnings.iter().all(|w| w.contains(p)) {
                    fail(format!("an `ignoring free` warning does not name {p}"));
                }
            }
        }
    }
}

/// Attack 1: `free(p); free(q); free(p)`: the double free is not the
/// thread's last free.
#[test]
fn double_free_after_other_free() {
    run_case(
        "double_free_after_other_free",
        &[],
        Expect::Abort("double free"),
    );
}

/// Attack 2: `free(p); free(p)` (caught today; a regression test).
#[test]
fn double_free_immediate() {
    run_case("double_free_immediate", &[], Expect::Abort("double free"));
}

/// Attack 3: the first copy of `p` sits in the cache of another thread,
/// alive and blocked, when the main thread frees `p`.
#[test]
fn double_free_in_other_threads_cache() {
    run_case(
        "double_free_in_other_threads_cache",
        &[],
        Expect::Abort("double free"),
    );
}

/// Attack 3b: the second free is a new thread's first call, before the
/// thread has a cache (its pointer is the placeholder, whose free marker
/// is not the process's: the placeholder's slow path must test that).
#[test]
fn double_free_first_call_of_a_thread() {
    run_case(
        "double_free_first_call_of_a_thread",
        &[],
        Expect::Abort("double free"),
    );
}

/// Attack 4: the first copy of `p` has left the thread's list for the
/// central list's transfer cache (2000 frees later) when `p` is freed
/// again.
#[test]
fn double_free_in_transfer_batch() {
    run_case(
        "double_free_in_transfer_batch",
        &[],
        Expect::Abort("double free"),
    );
}

/// Attack 5: `free(p)`, `goheap_flush_thread_cache()` (another object
/// keeps the span in use), `free(p)`.
#[test]
fn double_free_after_flush() {
    run_case("double_free_after_flush", &[], Expect::Abort("double free"));
}

/// Attack 6: free of `p + 48 * 20`, a slot of `p`'s own span that no
/// allocation reached. If it survives, the case shows what follows: the
/// slot is handed out twice (`DUP` on stderr).
#[test]
fn free_never_handed_out_same_span() {
    run_case(
        "free_never_handed_out_same_span",
        &[],
        Expect::Abort("never handed out"),
    );
}

/// Attack 7: the main thread frees `p + 48 * 30`, a never-allocated slot
/// of the span another live thread allocates `p` from.
#[test]
fn free_never_handed_out_other_thread_span() {
    run_case(
        "free_never_handed_out_other_thread_span",
        &[],
        Expect::Abort("never handed out"),
    );
}

/// Attack 8, first case: double free of a slot that was freed and flushed
/// back to its span, a partial span no cache holds.
#[test]
fn double_free_in_uncached_span() {
    run_case(
        "double_free_in_uncached_span",
        &[],
        Expect::Abort("double free"),
    );
}

/// Attack 8, second case: free of `p + 3072 * 2`, a never-used slot of a
/// fresh 3072-byte span no cache holds (after a flush).
#[test]
fn free_never_handed_out_uncached_span() {
    run_case(
        "free_never_handed_out_uncached_span",
        &[],
        Expect::Abort("never handed out"),
    );
}

/// Attack 9: a 100000-byte object freed twice. It aborts today, but as
/// "not a pointer goheap allocated" (the freed object's pages no longer
/// belong to a span); the report must say it is no live large object.
#[test]
fn large_double_free() {
    run_case(
        "large_double_free",
        &[],
        Expect::Abort("not the start of a live large object"),
    );
}

/// Attack 10: free of `p + 8192` of a 100000-byte object.
#[test]
fn large_interior_free() {
    run_case(
        "large_interior_free",
        &[],
        Expect::Abort("not the start of a live large object"),
    );
}

/// Attack 11: `free(p); free(q); realloc(p, 40)`: the report must say
/// the object was freed ("double free" or "realloc of freed").
#[test]
fn realloc_of_freed() {
    run_case("realloc_of_freed", &[], Expect::Abort("freed"));
}

/// Attack 12: `free_sized(p, 48); free(q); free_sized(p, 48)` through
/// goheap's C23 `free_sized` (exit 4, `NO_FREE_SIZED`, if libgoheap does
/// not export it).
#[test]
fn free_sized_double() {
    run_case("free_sized_double", &[], Expect::Abort("double free"));
}

/// Attack 13 (C++): `delete[] a; delete[] b; delete[] a` of `new int[12]`
/// arrays.
#[test]
fn cxx_delete_double() {
    run_case("cxx_delete_double", &[], Expect::Abort("double free"));
}

/// Attack 14: a use-after-free write points the free list's head link at
/// a stack buffer; the second `malloc(48)` must not return it
/// (`GOT_STACK`, exit 3, if it does).
#[test]
fn safe_linking_stack_target() {
    run_case(
        "safe_linking_stack_target",
        &[],
        Expect::AbortAnyPointer("corrupt free list"),
    );
}

/// Attack 15: the same with a misaligned link, `q + 4`
/// (`GOT_MISALIGNED`, exit 3, if the second `malloc(48)` returns it).
#[test]
fn safe_linking_misaligned() {
    run_case(
        "safe_linking_misaligned",
        &[],
        Expect::AbortAnyPointer("corrupt free list"),
    );
}

/// Attack 16: `GOHEAP_IGNORE_INVALID_FREE=1` ignores the free of a stack
/// pointer (one warning, exit 0) but does not excuse a double free
/// (attack 1 still aborts).
#[test]
fn ignore_invalid_free_keeps_meaning() {
    let env = [("GOHEAP_IGNORE_INVALID_FREE", "1")];
    run_case(
        "ignored_stack_free",
        &env,
        Expect::Exit0 {
            ignoring_free_warnings: 1,
        },
    );
    run_case(
        "double_free_after_other_free",
        &env,
        Expect::Abort("double free"),
    );
}

/// Control: mixed-size malloc/free, calloc, realloc, posix_memalign, frees
/// of other threads' blocks, a flush and a trim, on several threads: no
/// check may fire.
#[test]
fn control_benign_program_runs_clean() {
    run_case(
        "control",
        &[],
        Expect::Exit0 {
            ignoring_free_warnings: 0,
        },
    );
}
