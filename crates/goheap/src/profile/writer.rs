//! When heap profiles are written, from the environment:
//!
//! - `GOHEAP_PROFILE_RATE`: the mean bytes between samples (`1` samples
//!   every allocation, `0` none); unset: off, or Go's 512 KiB when
//!   `GOHEAP_HEAP_PROFILE` is set;
//! - `GOHEAP_HEAP_PROFILE=PATH`: profile, and write the profile to PATH
//!   when the process exits (`atexit`); `%p` in PATH becomes the process
//!   id, for programs that fork or run others;
//! - `GOHEAP_HEAP_PROFILE_INTERVAL=SECONDS`: also write one every that
//!   many seconds, to `PATH.0001`, `PATH.0002`, ...;
//! - `GOHEAP_HEAP_PROFILE_SIGNAL=SIG` (a number, or a name such as `USR2`):
//!   also write one (numbered as above) each time the process gets that
//!   signal.
//!
//! Numbered profiles are written by a thread of goheap's own
//! (`goheap-prof`), started with the scavenger; the signal handler only
//! wakes it (a store and a `futex` wake are async-signal-safe, writing a
//! file under the profile's lock is not).

use super::pprof::{self, WriteError};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::Mutex;
use core::ffi::{c_int, CStr};
use core::ptr;

/// `GOHEAP_HEAP_PROFILE`, NUL-terminated; empty = not set.
struct ProfilePath {
    bytes: [u8; 4096],
    len: usize,
}

static PATH: Mutex<ProfilePath> = Mutex::new(ProfilePath { bytes: [0; 4096], len: 0 });
/// Seconds between numbered profiles; 0 = none.
static INTERVAL: AtomicU64 = AtomicU64::new(0);
/// The signal that asks for a numbered profile; 0 = none.
static SIGNAL: AtomicU32 = AtomicU32::new(0);
/// Bumped by the signal handler; the writer thread waits on it.
static WAKE: AtomicU32 = AtomicU32::new(0);
/// Numbered profiles written.
static SEQ: AtomicU32 = AtomicU32::new(0);

fn env(name: &CStr) -> Option<&'static [u8]> {
    // SAFETY: NUL-terminated name; `getenv` returns null or a pointer to a
    // NUL-terminated string in the environment, read at once.
    unsafe {
        let p = libc::getenv(name.as_ptr());
        (!p.is_null()).then(|| CStr::from_ptr(p).to_bytes())
    }
}

/// A signal by number or name (`USR1`, `SIGUSR2`, `HUP`, ...).
fn parse_signal(v: &[u8]) -> Option<c_int> {
    let v = v.trim_ascii();
    let name = v.strip_prefix(b"SIG").unwrap_or(v);
    let n = match name {
        b"HUP" => libc::SIGHUP,
        b"USR1" => libc::SIGUSR1,
        b"USR2" => libc::SIGUSR2,
        b"PROF" => libc::SIGPROF,
        b"URG" => libc::SIGURG,
        b"WINCH" => libc::SIGWINCH,
        _ => core::str::from_utf8(name).ok()?.parse().ok()?,
    };
    (1..=64).contains(&n).then_some(n)
}

/// Reads the options above; called once as the process heap initialises.
/// Reports (and ignores) values it cannot use.
pub(crate) fn init_from_env() {
    if cfg!(miri) {
        return;
    }
    let rate = env(c"GOHEAP_PROFILE_RATE").filter(|v| !v.is_empty()).map(|v| match crate::options::parse_size(v) {
        Some(r) if r != usize::MAX => r,
        _ => {
            crate::report::print(format_args!(
                "GOHEAP_PROFILE_RATE={}: not a byte count; profiling stays off",
                v.escape_ascii()
            ));
            0
        }
    });
    let path = env(c"GOHEAP_HEAP_PROFILE").filter(|p| !p.is_empty());
    if let Some(p) = path {
        if p.len() >= 4096 {
            crate::report::print(format_args!(
                "GOHEAP_HEAP_PROFILE is longer than 4095 bytes; no profile will be written"
            ));
        } else {
            let mut g = PATH.lock();
            g.bytes[..p.len()].copy_from_slice(p);
            g.bytes[p.len()] = 0;
            g.len = p.len();
            drop(g);
            // SAFETY: registers a function that lives for the process.
            unsafe { libc::atexit(write_at_exit) };
        }
    }
    let rate = rate.unwrap_or(if path.is_some() { super::DEFAULT_RATE } else { 0 });
    super::set_rate(rate, None);
    if path.is_none() {
        return;
    }
    if let Some(v) = env(c"GOHEAP_HEAP_PROFILE_INTERVAL") {
        let secs = v.trim_ascii();
        let secs = secs.strip_suffix(b"s").unwrap_or(secs);
        match core::str::from_utf8(secs).ok().and_then(|s| s.parse::<u64>().ok()) {
            Some(s) if s > 0 => INTERVAL.store(s, Ordering::Relaxed),
            _ => crate::report::print(format_args!(
                "GOHEAP_HEAP_PROFILE_INTERVAL={}: not a whole number of seconds; ignored",
                v.escape_ascii()
            )),
        }
    }
    if let Some(v) = env(c"GOHEAP_HEAP_PROFILE_SIGNAL") {
        match parse_signal(v) {
            Some(sig) => {
                SIGNAL.store(sig as u32, Ordering::Relaxed);
                // SAFETY: a zeroed sigaction with a handler that only
                // touches an atomic and makes a system call.
                unsafe {
                    let mut sa: libc::sigaction = core::mem::zeroed();
                    sa.sa_sigaction = on_signal as extern "C" fn(c_int) as usize;
                    sa.sa_flags = libc::SA_RESTART;
                    libc::sigemptyset(&mut sa.sa_mask);
                    libc::sigaction(sig, &sa, ptr::null_mut());
                }
            }
            None => crate::report::print(format_args!(
                "GOHEAP_HEAP_PROFILE_SIGNAL={}: not a signal; ignored",
                v.escape_ascii()
            )),
        }
    }
}

extern "C" fn on_signal(_sig: c_int) {
    WAKE.fetch_add(1, Ordering::Relaxed);
    futex_wake(&WAKE);
}

fn futex_wake(w: &AtomicU32) {
    // SAFETY: FUTEX_WAKE on a valid aligned word.
    unsafe { libc::syscall(libc::SYS_futex, w.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1) };
}

/// Waits until [`WAKE`] differs from `seen` or `secs` pass (0 = forever).
fn futex_wait(seen: u32, secs: u64) {
    let ts = libc::timespec { tv_sec: secs as libc::time_t, tv_nsec: 0 };
    let tp = if secs == 0 { ptr::null() } else { &ts as *const libc::timespec };
    // SAFETY: FUTEX_WAIT on a valid aligned word with a valid timeout.
    unsafe { libc::syscall(libc::SYS_futex, WAKE.as_ptr(), libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG, seen, tp) };
}

/// Starts the writer thread if an interval or a signal is set. Creating
/// a thread allocates; the caller has detached this thread from its
/// cache (`tls::call_out`).
pub(crate) fn start() {
    if INTERVAL.load(Ordering::Relaxed) == 0 && SIGNAL.load(Ordering::Relaxed) == 0 {
        return;
    }
    let mut tid: libc::pthread_t = 0;
    // SAFETY: `writer_main` has the entry point signature and needs no
    // argument.
    let r = unsafe { libc::pthread_create(&mut tid, ptr::null(), writer_main, ptr::null_mut()) };
    if r != 0 {
        crate::report::print(format_args!(
            "cannot start the heap profile writer (error {r}): no numbered profiles"
        ));
        return;
    }
    // SAFETY: a thread we just created.
    unsafe {
        libc::pthread_detach(tid);
        libc::pthread_setname_np(tid, c"goheap-prof".as_ptr());
    }
}

extern "C" fn writer_main(_: *mut libc::c_void) -> *mut libc::c_void {
    let secs = INTERVAL.load(Ordering::Relaxed);
    loop {
        let seen = WAKE.load(Ordering::Relaxed);
        futex_wait(seen, secs);
        let n = SEQ.fetch_add(1, Ordering::Relaxed) + 1;
        write_numbered(n);
    }
}

/// `PATH` with `%p` replaced by the process id, and `.NNNN` appended
/// when `seq` is not 0, into `out` (NUL-terminated); false if unset or
/// too long.
fn expand_path(seq: u32, out: &mut [u8; 4200]) -> bool {
    let g = PATH.lock();
    if g.len == 0 {
        return false;
    }
    let mut w = Cursor { buf: &mut out[..], len: 0 };
    let path = &g.bytes[..g.len];
    let mut i = 0;
    while i < path.len() {
        if path[i] == b'%' && path.get(i + 1) == Some(&b'p') {
            // SAFETY: getpid has no preconditions.
            let _ = core::fmt::write(&mut w, format_args!("{}", unsafe { libc::getpid() }));
            i += 2;
        } else {
            w.put(path[i]);
            i += 1;
        }
    }
    if seq != 0 {
        let _ = core::fmt::write(&mut w, format_args!(".{seq:04}"));
    }
    let len = w.len;
    if len >= out.len() {
        return false;
    }
    out[len] = 0;
    true
}

struct Cursor<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Cursor<'_> {
    fn put(&mut self, b: u8) {
        if self.len < self.buf.len() {
            self.buf[self.len] = b;
        }
        self.len += 1;
    }
}

impl core::fmt::Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            self.put(b);
        }
        Ok(())
    }
}

fn write_numbered(seq: u32) {
    let mut path = [0u8; 4200];
    if !expand_path(seq, &mut path) {
        return;
    }
    write_reporting(&path);
}

/// Writes to the NUL-terminated path in `path`, reporting a failure.
fn write_reporting(path: &[u8]) {
    let Ok(p) = CStr::from_bytes_until_nul(path) else { return };
    if let Err(e) = pprof::write_to_path(p) {
        report_error(p, e);
    }
}

pub(crate) fn report_error(path: &CStr, e: WriteError) {
    match e {
        WriteError::NoMemory => crate::report::print(format_args!(
            "cannot write the heap profile to {}: out of memory",
            path.to_bytes().escape_ascii()
        )),
        WriteError::Os(errno) => {
            // SAFETY: strerror returns a NUL-terminated static string.
            let msg = unsafe { CStr::from_ptr(libc::strerror(errno)) };
            crate::report::print(format_args!(
                "cannot write the heap profile to {}: {}",
                path.to_bytes().escape_ascii(),
                msg.to_bytes().escape_ascii()
            ))
        }
    }
}

extern "C" fn write_at_exit() {
    let mut path = [0u8; 4200];
    if expand_path(0, &mut path) {
        write_reporting(&path);
    }
}
