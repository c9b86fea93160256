//! Running one benchmark process and measuring it: wall time, user and
//! system CPU time and peak RSS, the last three from `wait4` (the child's own
//! `rusage`, not that of all children).

use std::ffi::OsStr;
use std::io::{self, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What one child process did.
#[derive(Debug, Clone, Default)]
pub(crate) struct Measured {
    /// Wall-clock seconds from spawn to exit.
    pub(crate) wall: f64,
    /// User CPU seconds of the child.
    pub(crate) user: f64,
    /// System CPU seconds of the child.
    pub(crate) sys: f64,
    /// Peak resident set size of the child, KiB (`ru_maxrss`).
    pub(crate) maxrss_kib: u64,
    /// `None` for a normal exit with status 0, else what went wrong.
    pub(crate) failure: Option<String>,
    /// Everything the child printed on stdout.
    pub(crate) stdout: String,
    /// Everything the child printed on stderr.
    pub(crate) stderr: String,
}

/// Shared between the waiting thread and the watchdog: `true` once the
/// child has exited (before it is reaped), so the watchdog never signals a
/// reaped, possibly reused, pid.
type Done = Arc<(Mutex<bool>, Condvar)>;

/// Runs `program args…` to completion, killing it after `timeout`.
pub(crate) fn run(program: &Path, args: &[&str], timeout: Duration) -> io::Result<Measured> {
    run_env(program, args, &[], timeout)
}

/// A change to a child's environment: set the variable (`Some`) or remove
/// it (`None`).
pub(crate) type EnvChange<'a> = (&'a str, Option<&'a OsStr>);

/// [`run`] with changes to the inherited environment.
pub(crate) fn run_env(
    program: &Path,
    args: &[&str],
    env: &[EnvChange<'_>],
    timeout: Duration,
) -> io::Result<Measured> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
    let start = Instant::now();
    let mut child = cmd.spawn()?;
    let pid = child.id() as libc::pid_t;

    let done: Done = Arc::new((Mutex::new(false), Condvar::new()));
    let watchdog = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let (lock, cv) = &*done;
            let guard = lock.lock().unwrap();
            let (guard, res) = cv.wait_timeout_while(guard, timeout, |d| !*d).unwrap();
            if res.timed_out() && !*guard {
                // SAFETY: plain syscall. `pid` is our child, not yet reaped:
                // the reaping thread sets the flag (which we hold locked)
                // before it reaps.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return true;
            }
            false
        })
    };

    let mut err_pipe = child.stderr.take().expect("stderr is piped");
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let mut stdout = String::new();
    let _ = child
        .stdout
        .take()
        .expect("stdout is piped")
        .read_to_string(&mut stdout);

    // Wait for the exit without reaping, so that the pid stays ours while
    // the watchdog may still use it.
    loop {
        // SAFETY: siginfo_t is plain data, for which all zeroes is valid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointer to a local; waits for our own child.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    let wall = start.elapsed().as_secs_f64();
    {
        let (lock, cv) = &*done;
        *lock.lock().unwrap() = true;
        cv.notify_all();
    }
    let killed = watchdog.join().unwrap_or(false);

    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data, for which all zeroes is valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to locals; reaps our own exited child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    // `child` was reaped above; dropping it neither waits nor kills.
    drop(child);
    let stderr = err_reader.join().unwrap_or_default();

    let failure = if killed {
        Some(format!("killed after {} s timeout", timeout.as_secs()))
    } else if libc::WIFEXITED(status) {
        match libc::WEXITSTATUS(status) {
            0 => None,
            c => Some(format!("exit status {c}")),
        }
    } else if libc::WIFSIGNALED(status) {
        Some(format!("killed by signal {}", libc::WTERMSIG(status)))
    } else {
        Some(format!("wait status {status:#x}"))
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    Ok(Measured {
        wall,
        user: secs(ru.ru_utime),
        sys: secs(ru.ru_stime),
        maxrss_kib: ru.ru_maxrss.max(0) as u64,
        failure,
        stdout,
        stderr,
    })
}

/// Whether file descriptor `fd` is a terminal.
pub(crate) fn isatty(fd: i32) -> bool {
    // SAFETY: plain syscall on an integer.
    unsafe { libc::isatty(fd) == 1 }
}

/// The current date and time, UTC, as `YYYY-MM-DD HH:MM:SS UTC`.
pub(crate) fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as libc::time_t;
    // SAFETY: tm is plain data, for which all zeroes is valid.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to locals; gmtime_r is thread-safe.
    let ok = unsafe { !libc::gmtime_r(&secs, &mut tm).is_null() };
    if !ok {
        return format!("{secs} s after the epoch");
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_child() {
        let m = run(
            Path::new("/bin/sh"),
            &["-c", "echo out; echo err >&2; exit 0"],
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(m.stdout, "out\n");
        assert_eq!(m.stderr, "err\n");
        assert!(m.failure.is_none());
        assert!(m.maxrss_kib > 0);
        assert!(m.wall > 0.0);
    }

    #[test]
    fn reports_failures_and_timeouts() {
        let m = run(
            Path::new("/bin/sh"),
            &["-c", "exit 3"],
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(m.failure.as_deref(), Some("exit status 3"));
        let m = run(
            Path::new("/bin/sh"),
            &["-c", "kill -9 $$"],
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(m.failure.as_deref(), Some("killed by signal 9"));
        let m = run(Path::new("/bin/sleep"), &["10"], Duration::from_millis(200)).unwrap();
        assert!(m.failure.unwrap().contains("timeout"));
        assert!(m.wall < 5.0);
    }

    #[test]
    fn changes_the_environment() {
        std::env::set_var("GOHEAP_PROC_TEST_REMOVED", "x");
        let m = run_env(
            Path::new("/bin/sh"),
            &[
                "-c",
                "echo \"$GOHEAP_PROC_TEST_SET/${GOHEAP_PROC_TEST_REMOVED-unset}\"",
            ],
            &[
                ("GOHEAP_PROC_TEST_SET", Some(OsStr::new("v"))),
                ("GOHEAP_PROC_TEST_REMOVED", None),
            ],
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(m.stdout, "v/unset\n");
    }

    #[test]
    fn date_looks_like_a_date() {
        let d = utc_now();
        assert_eq!(d.len(), 23, "{d}");
        assert!(d.ends_with(" UTC"));
    }
}
