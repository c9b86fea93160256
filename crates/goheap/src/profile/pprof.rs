//! The heap profile in pprof's format: a gzipped `profile.proto`
//! (github.com/google/pprof, `proto/profile.proto`), what `go tool pprof`,
//! Google's `pprof`, `goheap profile` and most flame-graph tools read.
//!
//! What is written:
//!
//! - Go's four heap sample types, in Go's order: `alloc_objects`/count,
//!   `alloc_space`/bytes, `inuse_objects`/count, `inuse_space`/bytes, with
//!   `period_type` space/bytes and `period` the rate; values scaled for
//!   sampling as Go's `scaleHeapSample` does: a bucket of `n` samples of
//!   `s` bytes stands for `n / (1 - exp(-s / rate))` allocations;
//! - one sample per bucket, its frames as location ids (innermost
//!   first), and a `bytes` label with the allocation size (as Go's);
//! - one mapping per executable mapping of `/proc/self/maps` backed by a
//!   file (start, limit, file offset, path), `has_functions` false;
//! - one location per distinct frame address (a call site: return address
//!   − 1) with its mapping; no functions or lines: readers symbolize from
//!   the binaries;
//! - `drop_frames`: a regular expression naming goheap's entry points
//!   (`malloc`, `operator new`, `__rust_alloc`, ...), which pprof removes
//!   with every frame below them, so each stack starts at the program's
//!   own allocation site.
//!
//! Nothing here allocates through goheap: buffers are `mmap`ed. The gzip
//! stream uses stored (uncompressed) deflate blocks: valid for every
//! reader, no compressor in the allocator, and the profiles are small.

use super::table::{self, Bucket};
use core::ffi::{c_int, CStr};
use core::ptr;

/// The `drop_frames` expression (RE2 syntax, matched against whole
/// function names): the allocator's entry points and goheap's own code,
/// by full name and by the bare names symbolizers read from DWARF.
///
/// The collected heap's allocation path is dropped whole, `Gc::new`
/// included (`goheap_gc::gc::Gc<T>::new`, every `Gc` method, the
/// mutator's bracket, the core's `gcheap`): `Gc::new` is that heap's
/// allocator entry point, as `malloc` and `operator new` are malloc's, so
/// a `Gc` sample's leaf is the user's function calling it, and `goheap
/// profile` (which drops every `goheap*` frame) shows the same stack.
/// `Box::new` stays: it is the `alloc` crate's container, not goheap's
/// entry point, and both tools keep it. Only functions that never call
/// back into the program are named, so a stack through the collector
/// (a `Drop` that allocates) keeps its user frames.
pub const DROP_FRAMES: &str = "(malloc|calloc|realloc|reallocarray|free|posix_memalign|aligned_alloc|\
memalign|valloc|pvalloc|operator new.*|__rust_alloc.*|__rust_realloc|__rdl_.*|__rg_.*|\
alloc::alloc::.*|goheap_core::.*|goheap_capi::.*|<goheap::GoHeap as .*|goheap::GoHeap.*|\
alloc_maybe_sampled|alloc_zeroed_maybe_sampled|alloc_large|malloc_impl|calloc_impl|realloc_impl|\
new_impl|new_or_abort|<?goheap_gc::gc::Gc<.*|goheap_gc::mutator::.*|goheap::gcheap::.*|\
alloc_in_sampled|alloc_sampled|record_sample|alloc_with_zeroed<.*)";

/// Fixed entries of the string table; mapping file names follow.
const STRINGS: [&str; 9] = [
    "",
    "alloc_objects",
    "count",
    "alloc_space",
    "bytes",
    "inuse_objects",
    "inuse_space",
    "space",
    DROP_FRAMES,
];
const S_ALLOC_OBJECTS: u64 = 1;
const S_COUNT: u64 = 2;
const S_ALLOC_SPACE: u64 = 3;
const S_BYTES: u64 = 4;
const S_INUSE_OBJECTS: u64 = 5;
const S_INUSE_SPACE: u64 = 6;
const S_SPACE: u64 = 7;
const S_DROP_FRAMES: u64 = 8;

/// Why a profile could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteError {
    /// The OS refused memory for the writer's buffers.
    NoMemory,
    /// A system call failed with this `errno` (open, write, read).
    Os(i32),
}

/// A growable byte buffer in its own mapping.
struct OsBuf {
    ptr: *mut u8,
    cap: usize,
    len: usize,
}

impl OsBuf {
    fn new(cap: usize) -> Result<OsBuf, WriteError> {
        // SAFETY: a fresh anonymous mapping.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                cap,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(WriteError::NoMemory);
        }
        Ok(OsBuf { ptr: p.cast(), cap, len: 0 })
    }

    fn reserve(&mut self, more: usize) -> Result<(), WriteError> {
        if self.len + more <= self.cap {
            return Ok(());
        }
        let cap = (self.len + more).next_power_of_two().max(self.cap * 2);
        // SAFETY: `ptr`/`cap` is our mapping; MREMAP_MAYMOVE keeps the
        // contents.
        let p = unsafe {
            libc::mremap(self.ptr.cast(), self.cap, cap, libc::MREMAP_MAYMOVE)
        };
        if p == libc::MAP_FAILED {
            return Err(WriteError::NoMemory);
        }
        self.ptr = p.cast();
        self.cap = cap;
        Ok(())
    }

    fn push(&mut self, b: &[u8]) -> Result<(), WriteError> {
        self.reserve(b.len())?;
        // SAFETY: room reserved above; `b` is not inside our mapping.
        unsafe { ptr::copy_nonoverlapping(b.as_ptr(), self.ptr.add(self.len), b.len()) };
        self.len += b.len();
        Ok(())
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the first `len` bytes are written.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

impl Drop for OsBuf {
    fn drop(&mut self) {
        // SAFETY: our mapping, not used after this.
        unsafe { libc::munmap(self.ptr.cast(), self.cap) };
    }
}

/// Protobuf encoding into an [`OsBuf`].
impl OsBuf {
    fn varint(&mut self, mut v: u64) -> Result<(), WriteError> {
        let mut b = [0u8; 10];
        let mut n = 0;
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                b[n] = byte;
                n += 1;
                break;
            }
            b[n] = byte | 0x80;
            n += 1;
        }
        self.push(&b[..n])
    }

    /// A varint field (wire type 0); zero is omitted (proto3 default).
    fn uint(&mut self, field: u32, v: u64) -> Result<(), WriteError> {
        if v == 0 {
            return Ok(());
        }
        self.varint(u64::from(field) << 3)?;
        self.varint(v)
    }

    /// A length-delimited field (wire type 2).
    fn bytes_field(&mut self, field: u32, b: &[u8]) -> Result<(), WriteError> {
        self.varint(u64::from(field) << 3 | 2)?;
        self.varint(b.len() as u64)?;
        self.push(b)
    }
}

/// CRC-32 (IEEE, reflected), gzip's checksum.
const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

fn crc32_update(mut crc: u32, data: &[u8]) -> u32 {
    crc = !crc;
    for &b in data {
        crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// The most a stored deflate block holds.
const BLOCK: usize = 65535;

/// A gzip stream of stored deflate blocks to a file descriptor.
struct Gzip {
    fd: c_int,
    block: OsBuf,
    crc: u32,
    size: u32,
}

impl Gzip {
    fn new(fd: c_int) -> Result<Gzip, WriteError> {
        let g = Gzip { fd, block: OsBuf::new(BLOCK + 8)?, crc: 0, size: 0 };
        // Magic, deflate, no flags, no mtime, no extra flags, OS unknown.
        write_all(fd, &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])?;
        Ok(g)
    }

    fn write(&mut self, mut data: &[u8]) -> Result<(), WriteError> {
        self.crc = crc32_update(self.crc, data);
        self.size = self.size.wrapping_add(data.len() as u32);
        while !data.is_empty() {
            let room = BLOCK - self.block.len;
            let n = room.min(data.len());
            self.block.push(&data[..n])?;
            data = &data[n..];
            if self.block.len == BLOCK {
                self.flush_block(false)?;
            }
        }
        Ok(())
    }

    fn flush_block(&mut self, last: bool) -> Result<(), WriteError> {
        let n = self.block.len as u16;
        let head = [u8::from(last), n as u8, (n >> 8) as u8, !n as u8, (!n >> 8) as u8];
        write_all(self.fd, &head)?;
        write_all(self.fd, self.block.bytes())?;
        self.block.clear();
        Ok(())
    }

    fn finish(mut self) -> Result<(), WriteError> {
        self.flush_block(true)?;
        let mut tail = [0u8; 8];
        tail[..4].copy_from_slice(&self.crc.to_le_bytes());
        tail[4..].copy_from_slice(&self.size.to_le_bytes());
        write_all(self.fd, &tail)
    }
}

fn errno() -> i32 {
    // SAFETY: errno's location is always valid for the calling thread.
    unsafe { *libc::__errno_location() }
}

fn write_all(fd: c_int, mut b: &[u8]) -> Result<(), WriteError> {
    while !b.is_empty() {
        // SAFETY: `b` is readable for its length.
        let n = unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return Err(WriteError::Os(errno()));
        }
        b = &b[n as usize..];
    }
    Ok(())
}

/// An executable, file-backed mapping of the process.
#[derive(Clone, Copy)]
struct Mapping {
    start: u64,
    limit: u64,
    offset: u64,
    /// The path: a range of the maps text.
    path: (usize, usize),
}

/// The contents of `/proc/self/maps`.
fn read_maps() -> Result<OsBuf, WriteError> {
    let mut buf = OsBuf::new(1 << 16)?;
    // SAFETY: a NUL-terminated path.
    let fd = unsafe { libc::open(c"/proc/self/maps".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(WriteError::Os(errno()));
    }
    let r = loop {
        if let Err(e) = buf.reserve(1 << 14) {
            break Err(e);
        }
        // SAFETY: at least 16 KiB are free at the end of the buffer.
        let n = unsafe { libc::read(fd, buf.ptr.add(buf.len).cast(), buf.cap - buf.len) };
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            break Err(WriteError::Os(errno()));
        }
        if n == 0 {
            break Ok(());
        }
        buf.len += n as usize;
    };
    // SAFETY: our descriptor.
    unsafe { libc::close(fd) };
    r.map(|()| buf)
}

fn hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        v = v.checked_mul(16)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

/// Parses one maps line: `start-end perms offset dev inode path`;
/// `Some` for an executable mapping of a file.
fn parse_map_line(text: &[u8], line: (usize, usize)) -> Option<Mapping> {
    let l = &text[line.0..line.1];
    let mut fields = l.split(|&c| c == b' ').filter(|f| !f.is_empty());
    let range = fields.next()?;
    let perms = fields.next()?;
    let offset = hex(fields.next()?)?;
    let _dev = fields.next()?;
    let _inode = fields.next()?;
    if perms.get(2) != Some(&b'x') {
        return None;
    }
    // The path is the rest of the line from its first '/'.
    let slash = l.iter().position(|&c| c == b'/')?;
    let dash = range.iter().position(|&c| c == b'-')?;
    Some(Mapping {
        start: hex(&range[..dash])?,
        limit: hex(&range[dash + 1..])?,
        offset,
        path: (line.0 + slash, line.1),
    })
}

/// Go's `scaleHeapSample`: `count` samples of `size`-byte blocks, as
/// estimated allocations and bytes at `rate`.
pub(crate) fn scale(count: u64, size: u64, rate: u64) -> (i64, i64) {
    if count == 0 || size == 0 {
        return (0, 0);
    }
    if rate <= 1 {
        return (count as i64, (count * size) as i64);
    }
    let s = 1.0 / (1.0 - (-(size as f64) / rate as f64).exp());
    ((count as f64 * s) as i64, ((count * size) as f64 * s) as i64)
}

/// An open-addressing map of frame addresses to location ids.
struct Locations {
    slots: OsBuf,
    mask: usize,
    next_id: u64,
}

impl Locations {
    fn new(frames: usize) -> Result<Locations, WriteError> {
        let n = (frames * 2).next_power_of_two().max(64);
        let mut slots = OsBuf::new(n * 16)?;
        slots.len = n * 16;
        Ok(Locations { slots, mask: n - 1, next_id: 1 })
    }

    /// The id for `addr`, and whether it is new.
    fn id(&mut self, addr: u64) -> (u64, bool) {
        let words = self.slots.ptr.cast::<u64>();
        let mut i = (addr.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20) as usize & self.mask;
        loop {
            // SAFETY: `i <= mask`, and the mapping holds 2 words per slot
            // (zeroed: id 0 = empty).
            unsafe {
                let id = *words.add(2 * i + 1);
                if id == 0 {
                    *words.add(2 * i) = addr;
                    *words.add(2 * i + 1) = self.next_id;
                    self.next_id += 1;
                    return (self.next_id - 1, true);
                }
                if *words.add(2 * i) == addr {
                    return (id, false);
                }
            }
            i = (i + 1) & self.mask;
        }
    }
}

/// Writes the heap profile, gzipped, to `fd`.
pub(crate) fn write_to_fd(fd: c_int) -> Result<(), WriteError> {
    let rate = super::profile_rate().max(1) as u64;
    let maps_text = read_maps()?;
    let text = maps_text.bytes();
    let mut maps = OsBuf::new(1 << 16)?;
    let mut start = 0;
    for (i, &c) in text.iter().enumerate() {
        if c == b'\n' {
            if let Some(m) = parse_map_line(text, (start, i)) {
                // SAFETY: `Mapping` is plain data; read back as such.
                maps.push(unsafe {
                    core::slice::from_raw_parts(
                        (&m as *const Mapping).cast::<u8>(),
                        core::mem::size_of::<Mapping>(),
                    )
                })?;
            }
            start = i + 1;
        }
    }
    // SAFETY: `maps` holds whole `Mapping`s, aligned (mmap is page
    // aligned and Mapping's size is a multiple of its alignment).
    let mappings = unsafe {
        core::slice::from_raw_parts(
            maps.ptr.cast::<Mapping>(),
            maps.len / core::mem::size_of::<Mapping>(),
        )
    };

    let dropped = table::dropped();
    if dropped > 0 {
        crate::report::print(format_args!(
            "heap profile: {dropped} samples were not recorded (the profile's tables or its \
             region of sampled objects are full); figures are low by about that many samples"
        ));
    }
    let mut frames = 0;
    table::for_each_bucket(|_, f| frames += f.len());
    let mut locs = Locations::new(frames)?;

    let mut out = Gzip::new(fd)?;
    let mut msg = OsBuf::new(1 << 16)?;
    let mut inner = OsBuf::new(1 << 12)?;

    // Sample types and the period.
    for (t, u) in [
        (S_ALLOC_OBJECTS, S_COUNT),
        (S_ALLOC_SPACE, S_BYTES),
        (S_INUSE_OBJECTS, S_COUNT),
        (S_INUSE_SPACE, S_BYTES),
    ] {
        msg.clear();
        msg.uint(1, t)?;
        msg.uint(2, u)?;
        field(&mut out, 1, &msg)?;
    }
    msg.clear();
    msg.uint(1, S_SPACE)?;
    msg.uint(2, S_BYTES)?;
    field(&mut out, 11, &msg)?;
    msg.clear();
    msg.uint(12, rate)?;
    msg.uint(7, S_DROP_FRAMES)?;
    msg.uint(9, crate::os::clock_ns(libc::CLOCK_REALTIME))?;
    out.write(msg.bytes())?;

    // Mappings: ids from 1; file names after the fixed strings.
    for (i, m) in mappings.iter().enumerate() {
        msg.clear();
        msg.uint(1, i as u64 + 1)?;
        msg.uint(2, m.start)?;
        msg.uint(3, m.limit)?;
        msg.uint(4, m.offset)?;
        msg.uint(5, (STRINGS.len() + i) as u64)?;
        field(&mut out, 3, &msg)?;
    }

    // Locations as first met, then each bucket's sample.
    let mut result = Ok(());
    table::for_each_bucket(|b: &Bucket, f: &[usize]| {
        if result.is_err() {
            return;
        }
        result = write_sample(&mut out, &mut msg, &mut inner, &mut locs, mappings, b, f, rate);
    });
    result?;

    // The string table, in index order.
    for s in STRINGS {
        out.write(&[6 << 3 | 2])?;
        msg.clear();
        msg.varint(s.len() as u64)?;
        out.write(msg.bytes())?;
        out.write(s.as_bytes())?;
    }
    for m in mappings {
        msg.clear();
        msg.bytes_field(6, &text[m.path.0..m.path.1])?;
        out.write(msg.bytes())?;
    }
    out.finish()
}

/// Emits `body` as length-delimited field `num` of the top-level message.
fn field(out: &mut Gzip, num: u32, body: &OsBuf) -> Result<(), WriteError> {
    let mut head = [0u8; 16];
    let mut n = 0;
    for mut v in [u64::from(num) << 3 | 2, body.len as u64] {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            head[n] = if v == 0 { byte } else { byte | 0x80 };
            n += 1;
            if v == 0 {
                break;
            }
        }
    }
    out.write(&head[..n])?;
    out.write(body.bytes())
}

#[allow(clippy::too_many_arguments)]
fn write_sample(
    out: &mut Gzip,
    msg: &mut OsBuf,
    inner: &mut OsBuf,
    locs: &mut Locations,
    mappings: &[Mapping],
    b: &Bucket,
    frames: &[usize],
    rate: u64,
) -> Result<(), WriteError> {
    inner.clear();
    for &addr in frames {
        let (id, new) = locs.id(addr as u64);
        if new {
            msg.clear();
            msg.uint(1, id)?;
            let a = addr as u64;
            // Mappings are in address order.
            let i = mappings.partition_point(|m| m.limit <= a);
            if let Some(m) = mappings.get(i).filter(|m| m.start <= a) {
                let _ = m;
                msg.uint(2, i as u64 + 1)?;
            }
            msg.uint(3, a)?;
            field(out, 4, msg)?;
        }
        inner.varint(id)?;
    }
    // Frees before allocations: a racing pair then never shows a
    // negative in-use count.
    let frees = b.frees.load(core::sync::atomic::Ordering::Relaxed);
    let allocs = b.allocs.load(core::sync::atomic::Ordering::Relaxed);
    let (ao, asz) = scale(allocs, b.size, rate);
    let (io, isz) = scale(allocs.saturating_sub(frees), b.size, rate);
    msg.clear();
    msg.bytes_field(1, inner.bytes())?;
    inner.clear();
    for v in [ao, asz, io, isz] {
        inner.varint(v as u64)?;
    }
    msg.bytes_field(2, inner.bytes())?;
    // Label {key: "bytes", num: size}.
    inner.clear();
    inner.uint(1, S_BYTES)?;
    inner.uint(3, b.size)?;
    msg.bytes_field(3, inner.bytes())?;
    field(out, 2, msg)
}


/// Writes the heap profile to the file at `path` (created or truncated,
/// mode 0644).
pub(crate) fn write_to_path(path: &CStr) -> Result<(), WriteError> {
    // SAFETY: a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o644 as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(WriteError::Os(errno()));
    }
    let r = write_to_fd(fd);
    // SAFETY: our descriptor.
    if unsafe { libc::close(fd) } != 0 && r.is_ok() {
        return Err(WriteError::Os(errno()));
    }
    r
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32_update(0, b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32_update(crc32_update(0, b"1234"), b"56789"), 0xcbf4_3926);
    }

    #[test]
    fn scale_matches_go() {
        // Go: scaleHeapSample(1, 512*1024, 512*1024) = 1/(1-e^-1) ≈ 1.582.
        let (n, b) = scale(1, 512 * 1024, 512 * 1024);
        assert_eq!(n, 1);
        assert_eq!(b, (524288.0 / (1.0 - (-1.0f64).exp())) as i64);
        let (n, _) = scale(1000, 16, 512 * 1024);
        assert!((32_700_000..32_800_000).contains(&n), "{n}");
        assert_eq!(scale(3, 100, 1), (3, 300));
        assert_eq!(scale(0, 100, 512), (0, 0));
    }

    #[test]
    fn maps_lines_keep_executable_files_only() {
        let text = b"55d0c0a00000-55d0c0a21000 r-xp 00001000 08:01 123 /usr/bin/prog x\n\
7ffd1000-7ffd2000 rw-p 00000000 00:00 0 [stack]\n\
7f0000000000-7f0000001000 r-xp 00000000 00:00 0 [vdso]\n";
        let first = text.iter().position(|&c| c == b'\n').unwrap();
        let m = parse_map_line(text, (0, first)).unwrap();
        assert_eq!((m.start, m.limit, m.offset), (0x55d0c0a00000, 0x55d0c0a21000, 0x1000));
        assert_eq!(&text[m.path.0..m.path.1], b"/usr/bin/prog x");
        let second_end = first + 1 + text[first + 1..].iter().position(|&c| c == b'\n').unwrap();
        assert!(parse_map_line(text, (first + 1, second_end)).is_none());
        assert!(parse_map_line(text, (second_end + 1, text.len() - 1)).is_none());
    }
}
