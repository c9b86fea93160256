//! Error reports that never allocate: formatting goes straight to file
//! descriptor 2 through a fixed buffer.
//!
//! See the crate docs for the overview.

use core::fmt::{self, Write};

/// A `fmt::Write` that buffers up to 512 bytes and writes them to stderr
/// with `write(2)`, so messages can be printed from inside the allocator.
///
/// Public so front-ends (the C library) can print from inside allocator
/// calls too.
pub struct StderrWriter {
    buf: [u8; 512],
    len: usize,
    fd: libc::c_int,
}

impl StderrWriter {
    /// An empty writer.
    pub const fn new() -> Self {
        Self::with_fd(2)
    }

    /// An empty writer to file descriptor `fd` instead of stderr.
    pub const fn with_fd(fd: libc::c_int) -> Self {
        StderrWriter {
            buf: [0; 512],
            len: 0,
            fd,
        }
    }

    /// Writes out what is buffered (also done on drop).
    pub fn flush(&mut self) {
        let mut off = 0;
        while off < self.len {
            // SAFETY: writes initialised bytes of our own buffer to our fd.
            let n =
                unsafe { libc::write(self.fd, self.buf[off..].as_ptr().cast(), self.len - off) };
            if n <= 0 {
                break;
            }
            off += n as usize;
        }
        self.len = 0;
    }
}

impl Default for StderrWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for StderrWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

impl Drop for StderrWriter {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Prints `goheap: <message>` and a newline to stderr without allocating.
pub fn print(args: fmt::Arguments<'_>) {
    let mut w = StderrWriter::new();
    let _ = w.write_str("goheap: ");
    let _ = w.write_fmt(args);
    let _ = w.write_str("\n");
}

/// Reports a broken invariant or invalid use and aborts the process: the
/// heap can no longer be trusted, and unwinding through an allocator call
/// is never an option.
#[cold]
#[inline(never)]
pub(crate) fn fatal_args(args: fmt::Arguments<'_>) -> ! {
    print(format_args!("fatal error: {}", args));
    std::process::abort()
}

/// `fatal!("...", args)`: report and abort, without allocating.
macro_rules! fatal {
    ($($arg:tt)*) => { $crate::report::fatal_args(format_args!($($arg)*)) };
}
pub(crate) use fatal;
