//! Shared helpers for the C API tests: building libgoheap, compiling C and
//! C++ with the system compilers, running programs with a time limit.
#![allow(dead_code, unreachable_pub)]

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The cargo profile the tests were built with, which is also the one the
/// library is built with (`GOHEAP_CAPI_PROFILE=release` overrides).
pub fn profile() -> &'static str {
    static P: OnceLock<&'static str> = OnceLock::new();
    P.get_or_init(|| match std::env::var("GOHEAP_CAPI_PROFILE").as_deref() {
        Ok("release") => "release",
        Ok("debug") => "debug",
        _ if cfg!(debug_assertions) => "debug",
        _ => "release",
    })
}

/// The workspace's target directory (the parent of `CARGO_TARGET_TMPDIR`).
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_path_buf()
}

/// Builds `libgoheap.so` and `libgoheap.a` (once per test binary; `cargo
/// test` does not build a `cdylib`) and returns their directory.
pub fn lib_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "-p", "goheap-capi", "--target-dir"])
            .arg(target_dir())
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile() == "release" {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("run cargo build");
        assert!(st.success(), "cargo build -p goheap-capi failed");
        let dir = target_dir().join(profile());
        assert!(
            dir.join("libgoheap.so").exists(),
            "no libgoheap.so in {}",
            dir.display()
        );
        assert!(
            dir.join("libgoheap.a").exists(),
            "no libgoheap.a in {}",
            dir.display()
        );
        dir
    })
}

/// `libgoheap.so`.
pub fn lib_so() -> PathBuf {
    lib_dir().join("libgoheap.so")
}

/// `libgoheap.so` built with `--release` whatever the profile of the tests
/// (once per test binary): for tests that must see the checks the shipped
/// library makes, not the extra ones of a debug build.
pub fn release_lib_so() -> &'static Path {
    static SO: OnceLock<PathBuf> = OnceLock::new();
    SO.get_or_init(|| {
        let st = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--release", "-p", "goheap-capi"])
            .arg("--target-dir")
            .arg(target_dir())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build --release");
        assert!(st.success(), "cargo build --release -p goheap-capi failed");
        let so = target_dir().join("release").join("libgoheap.so");
        assert!(so.exists(), "no {}", so.display());
        so
    })
}

/// Directory for this test's files.
pub fn work_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("goheap-capi")
        .join(name);
    std::fs::create_dir_all(&d).expect("create work dir");
    d
}

/// The checked-in C sources.
pub fn c_src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(name)
}

/// `include/`.
pub fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include")
}

/// Whether `prog` can be run (found on PATH).
pub fn have(prog: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {prog} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Whether this run is CI's: the `CI` environment variable is set (and not
/// empty), as `.ci/run` is run.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// The rule for a test that runs an external program (a compiler,
/// `readelf`, `python3`, `sqlite3`, `git`, `awk`, `tar`, ...): it starts
/// with `if !need("tool") { return; }`. When `tool` is on PATH this
/// returns true. When it is missing, under CI ([`in_ci`]) the test fails
/// here, since CI installs every tool the tests use (`.ci/run`); outside CI
/// the test prints that it skipped and returns false.
pub fn need(tool: &str) -> bool {
    if have(tool) {
        return true;
    }
    assert!(
        !in_ci(),
        "{tool} is not installed, and under CI a missing tool is a failure, not a skip \
         (.ci/run installs what the tests need)"
    );
    eprintln!("skipped: {tool} is not installed");
    false
}

/// Runs a compiler command and panics with its output if it fails.
pub fn compile(mut cmd: Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `cc` (or `c++`) with the warnings and include path every test uses.
pub fn cc(cxx: bool) -> Command {
    let mut c = Command::new(if cxx { "c++" } else { "cc" });
    c.args([
        "-O2",
        "-g",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pthread",
        "-fno-builtin",
        "-Wno-alloc-size-larger-than",
    ])
    .arg("-I")
    .arg(include_dir());
    if cxx {
        c.arg("-std=c++17");
    } else {
        c.arg("-std=gnu11");
    }
    c
}

/// Linker arguments for linking with `-lgoheap` from [`lib_dir`].
pub fn link_goheap(c: &mut Command) {
    let d = lib_dir();
    c.arg("-L")
        .arg(d)
        .arg(format!("-Wl,-rpath,{}", d.display()))
        .arg("-lgoheap");
}

/// Result of a run.
pub struct Run {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Run {
    /// Exit code, or `None` if killed by a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The signal that killed it.
    pub fn signal(&self) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        self.status.signal()
    }

    /// Panics (showing the output) unless it exited with 0.
    pub fn assert_ok(&self, what: &str) {
        assert!(
            !self.timed_out && self.code() == Some(0),
            "{what}: status {:?} (timed out: {})\n--- stdout\n{}\n--- stderr\n{}",
            self.status,
            self.timed_out,
            tail(&self.stdout),
            tail(&self.stderr)
        );
    }

    /// The `goheap: stats:` lines of stderr, as their `mallocs=` values.
    pub fn stats_mallocs(&self) -> Vec<u64> {
        self.stderr
            .lines()
            .filter_map(|l| l.strip_prefix("goheap: stats: mallocs="))
            .map(|rest| {
                rest.split(' ')
                    .next()
                    .unwrap_or("")
                    .parse()
                    .expect("mallocs number")
            })
            .collect()
    }
}

fn tail(s: &str) -> &str {
    let n = s.len();
    if n > 4000 {
        let mut i = n - 4000;
        while !s.is_char_boundary(i) {
            i += 1;
        }
        &s[i..]
    } else {
        s
    }
}

/// Runs `cmd` with a time limit (killed after it), no core dumps, stdin
/// closed, capturing its output.
pub fn run(mut cmd: Command, limit: Duration) -> Run {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure only calls setrlimit, which is async-signal-safe,
    // between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let zero = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &zero);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > limit {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = String::from_utf8_lossy(&t_out.join().expect("stdout reader")).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().expect("stderr reader")).into_owned();
    Run {
        status,
        stdout,
        stderr,
        timed_out,
    }
}

/// Like [`run`], returning the raw [`Output`] bytes of stdout.
pub fn output_bytes(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null());
    cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}
