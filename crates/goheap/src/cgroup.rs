//! The container's memory limit (cgroup v2 `memory.max`, v1
//! `memory.limit_in_bytes`) and the limit's environment variable, read
//! without allocating (memory sizes with units are parsed by
//! `options::parse_size`).
//!
//! See the crate docs for the overview.

use crate::heap::Heap;
use crate::limit::LimitSource;
pub use crate::options::parse_size;

/// Longest path we build.
const PATH_MAX: usize = 1024;

/// A path in a fixed buffer.
struct PathBuf {
    buf: [u8; PATH_MAX],
    len: usize,
}

impl PathBuf {
    fn new() -> Self {
        PathBuf {
            buf: [0; PATH_MAX],
            len: 0,
        }
    }

    fn push(&mut self, s: &[u8]) -> bool {
        if self.len + s.len() + 1 > PATH_MAX {
            return false;
        }
        self.buf[self.len..self.len + s.len()].copy_from_slice(s);
        self.len += s.len();
        self.buf[self.len] = 0;
        true
    }
}

/// Reads a small file into `buf`; returns the bytes read.
fn read_file<'a>(path: &PathBuf, buf: &'a mut [u8]) -> Option<&'a [u8]> {
    // SAFETY: `path.buf` is NUL-terminated by `push`.
    let fd = unsafe { libc::open(path.buf.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let mut len = 0;
    while len < buf.len() {
        // SAFETY: reads into the unused tail of `buf`.
        let n = unsafe { libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len) };
        if n <= 0 {
            break;
        }
        len += n as usize;
    }
    // SAFETY: `fd` is ours.
    unsafe { libc::close(fd) };
    Some(&buf[..len])
}

/// The memory limit of the cgroup the process is in, or `None` when it
/// has none (or cgroups are not mounted). `root` is where the cgroup file
/// systems are mounted (`/sys/fs/cgroup`), `proc_cgroup` the process's
/// membership file (`/proc/self/cgroup`); tests point both at fixtures.
/// The limit is the smallest one on the path from the process's cgroup up
/// to the root, as the kernel enforces it.
pub fn cgroup_memory_limit(root: &[u8], proc_cgroup: &[u8]) -> Option<usize> {
    let mut p = PathBuf::new();
    if !p.push(proc_cgroup) {
        return None;
    }
    let mut membership = [0u8; 4096];
    let text = read_file(&p, &mut membership)?;
    let mut best: Option<usize> = None;
    for line in text.split(|&c| c == b'\n') {
        // hierarchy-ID:controllers:path
        let mut parts = line.splitn(3, |&c| c == b':');
        let (Some(_id), Some(ctrl), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (sub, file): (&[u8], &[u8]) = if ctrl.is_empty() {
            (b"", b"/memory.max")
        } else if ctrl.split(|&c| c == b',').any(|c| c == b"memory") {
            (b"/memory", b"/memory.limit_in_bytes")
        } else {
            continue;
        };
        let mut path = path.trim_ascii();
        loop {
            if let Some(v) = read_limit_file(root, sub, path, file) {
                best = Some(best.map_or(v, |b| b.min(v)));
            }
            if path.is_empty() || path == b"/" {
                break;
            }
            path = match path.iter().rposition(|&c| c == b'/') {
                Some(0) => b"/",
                Some(i) => &path[..i],
                None => b"",
            };
        }
    }
    best
}

/// One limit file's value; `None` for "max", v1's "unlimited" (2^62 and
/// above) or a missing file.
fn read_limit_file(root: &[u8], sub: &[u8], path: &[u8], file: &[u8]) -> Option<usize> {
    let mut p = PathBuf::new();
    let path = if path == b"/" { b"" as &[u8] } else { path };
    if !(p.push(root) && p.push(sub) && p.push(path) && p.push(file)) {
        return None;
    }
    let mut buf = [0u8; 64];
    let text = read_file(&p, &mut buf)?;
    let v = parse_size(text)?;
    (v < 1 << 62).then_some(v)
}

/// Environment variable for a test-only override: the membership file is
/// `<dir>/self.cgroup` and the cgroup mount point `<dir>/sys`.
const CGROUP_ROOT_ENV: &core::ffi::CStr = c"GOHEAP_CGROUP_ROOT";

fn env(name: &core::ffi::CStr) -> Option<&'static [u8]> {
    // SAFETY: `getenv` returns null or a NUL-terminated string that lives
    // while the variable is unchanged; we copy what we need at once.
    unsafe {
        let p = libc::getenv(name.as_ptr());
        (!p.is_null()).then(|| core::ffi::CStr::from_ptr(p).to_bytes())
    }
}

/// The current container limit (honouring the test override).
fn container_limit() -> Option<usize> {
    match env(CGROUP_ROOT_ENV) {
        Some(dir) => {
            let (mut f, mut m) = (PathBuf::new(), PathBuf::new());
            if !(f.push(dir) && f.push(b"/self.cgroup") && m.push(dir) && m.push(b"/sys")) {
                return None;
            }
            cgroup_memory_limit(&m.buf[..m.len], &f.buf[..f.len])
        }
        None => cgroup_memory_limit(b"/sys/fs/cgroup", b"/proc/self/cgroup"),
    }
}

/// Sets the limit from `GOHEAP_MEMORY_LIMIT` if present, else from the
/// container. Called once when the heap initialises.
pub(crate) fn init_limit(heap: &Heap) {
    if let Some(v) = env(c"GOHEAP_MEMORY_LIMIT") {
        match parse_size(v) {
            Some(bytes) => {
                heap.limit.set(bytes, LimitSource::Env);
            }
            None => crate::report::print(format_args!(
                "GOHEAP_MEMORY_LIMIT={}: not a size (use e.g. 512MiB, 2GiB, max); ignored",
                core::str::from_utf8(v).unwrap_or("?")
            )),
        }
        return;
    }
    refresh_limit(heap);
}

/// Re-reads the container limit when it is the limit in force (or none is
/// set), so a resized container is honoured. The scavenger calls this
/// about once a second.
pub(crate) fn refresh_limit(heap: &Heap) {
    let src = heap.limit.source();
    if src != LimitSource::None && src != LimitSource::Cgroup {
        return;
    }
    match container_limit() {
        Some(bytes) => {
            heap.limit.set(bytes, LimitSource::Cgroup);
        }
        None if src == LimitSource::Cgroup => {
            heap.limit.set(usize::MAX, LimitSource::None);
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size(b"0"), Some(0));
        assert_eq!(parse_size(b"123"), Some(123));
        assert_eq!(parse_size(b"123B"), Some(123));
        assert_eq!(parse_size(b"64KiB"), Some(64 << 10));
        assert_eq!(parse_size(b"512MiB"), Some(512 << 20));
        assert_eq!(parse_size(b" 2GiB\n"), Some(2 << 30));
        assert_eq!(parse_size(b"3 G"), Some(3 << 30));
        assert_eq!(parse_size(b"1TiB"), Some(1 << 40));
        assert_eq!(parse_size(b"max"), Some(usize::MAX));
        assert_eq!(parse_size(b"off"), Some(usize::MAX));
        assert_eq!(parse_size(b""), None);
        assert_eq!(parse_size(b"MiB"), None);
        assert_eq!(parse_size(b"12PiB"), None);
        assert_eq!(parse_size(b"-5"), None);
        assert_eq!(parse_size(b"99999999999999999999999"), None);
        assert_eq!(parse_size(b"20000000TiB"), None);
    }
}
