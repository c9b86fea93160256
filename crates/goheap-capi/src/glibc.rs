//! glibc's malloc introspection and tuning calls from `<malloc.h>`:
//! `mallinfo`, `mallinfo2`, `malloc_stats`, `malloc_info`, `mallopt`,
//! answered from goheap's statistics so that a program (or a library such
//! as a language runtime) asking "how much is in use?" gets goheap's
//! numbers, not those of glibc's arenas, which a preloaded goheap leaves
//! empty.
//!
//! # Field meanings
//!
//! glibc describes its main arena (memory from `brk`) and its `mmap`ed
//! chunks; goheap's nearest equivalents are its small-object spans and
//! its large objects (one span each):
//!
//! | field | glibc | here |
//! | --- | --- | --- |
//! | `arena` | bytes the arenas got from the system | heap pages held from the OS and not released (`heap_sys - heap_released`), minus the large objects' pages |
//! | `ordblks` | free chunks | 0 (not counted) |
//! | `smblks` | free fastbin chunks | 0 (no fastbins) |
//! | `hblks` | `mmap`ed chunks | live large objects |
//! | `hblkhd` | bytes in `mmap`ed chunks | their bytes (whole pages) |
//! | `usmblks` | 0 (obsolete) | 0 |
//! | `fsmblks` | bytes in fastbin chunks | 0 |
//! | `uordblks` | bytes in in-use chunks (not `mmap`ed) | bytes of live small objects (size-class rounded) |
//! | `fordblks` | free bytes in the arenas | `arena - uordblks`: free slots, objects in thread caches, free resident pages |
//! | `keepcost` | releasable top-of-heap bytes | free pages not yet returned to the OS (what `goheap_free_os_memory` would release) |
//!
//! so, as in glibc, `arena == uordblks + fordblks` and the bytes in use are
//! `uordblks + hblkhd`. `mallinfo`'s `int` fields saturate at `INT_MAX`
//! (glibc's wrap around past 2 GiB, which makes them useless; `mallinfo2`
//! is exact).
//!
//! Nothing here allocates or calls into glibc's allocator:
//! [`goheap_core::memstats`] reads counters under goheap's own locks into
//! a value on the stack, and every lock is released before `malloc_info`
//! calls into stdio (whose buffer, if it needs one, comes from goheap's
//! `malloc`).

use core::ffi::c_int;
use core::fmt::Write;
use goheap_core::MemStats;

/// glibc's `struct mallinfo` (`int` fields, in `<malloc.h>`'s order).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mallinfo {
    /// Bytes of the small-object heap held from the OS.
    pub arena: c_int,
    /// Free chunks (0: not counted).
    pub ordblks: c_int,
    /// Free fastbin chunks (0).
    pub smblks: c_int,
    /// Live large objects.
    pub hblks: c_int,
    /// Bytes of live large objects.
    pub hblkhd: c_int,
    /// Unused (0), as in glibc.
    pub usmblks: c_int,
    /// Bytes in fastbins (0).
    pub fsmblks: c_int,
    /// Bytes of live small objects.
    pub uordblks: c_int,
    /// Free bytes of the small-object heap (`arena - uordblks`).
    pub fordblks: c_int,
    /// Free bytes not yet returned to the OS.
    pub keepcost: c_int,
}

/// glibc's `struct mallinfo2` (glibc 2.33): [`Mallinfo`] with `size_t`
/// fields.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mallinfo2 {
    /// See [`Mallinfo::arena`].
    pub arena: usize,
    /// See [`Mallinfo::ordblks`].
    pub ordblks: usize,
    /// See [`Mallinfo::smblks`].
    pub smblks: usize,
    /// See [`Mallinfo::hblks`].
    pub hblks: usize,
    /// See [`Mallinfo::hblkhd`].
    pub hblkhd: usize,
    /// See [`Mallinfo::usmblks`].
    pub usmblks: usize,
    /// See [`Mallinfo::fsmblks`].
    pub fsmblks: usize,
    /// See [`Mallinfo::uordblks`].
    pub uordblks: usize,
    /// See [`Mallinfo::fordblks`].
    pub fordblks: usize,
    /// See [`Mallinfo::keepcost`].
    pub keepcost: usize,
}

/// The figures every call here reports, derived from one [`MemStats`].
#[derive(Debug, Clone, Copy)]
struct Summary {
    /// `Mallinfo::arena`.
    arena: u64,
    /// Live large objects and their bytes.
    large_objects: u64,
    large_bytes: u64,
    /// Bytes of live small objects.
    small_bytes: u64,
    /// `arena - small_bytes`.
    free_bytes: u64,
    /// Free pages still resident.
    free_resident: u64,
    /// The heap's mapped bytes (never shrinks: goheap releases pages to
    /// the OS but keeps their addresses) and the released part.
    heap_sys: u64,
    heap_released: u64,
}

impl Summary {
    fn of(m: &MemStats) -> Summary {
        // MemStats counts small objects per class and large ones only in
        // the totals, so the large figures are the totals minus the
        // classes. Per-thread counters are read while threads run, hence
        // the saturating arithmetic.
        let (mut class_mallocs, mut class_frees, mut small_bytes) = (0u64, 0u64, 0u64);
        for b in &m.by_size[1..] {
            class_mallocs += b.mallocs;
            class_frees += b.frees;
            small_bytes += b.mallocs.saturating_sub(b.frees) * b.size as u64;
        }
        let large_objects = m
            .mallocs
            .saturating_sub(class_mallocs)
            .saturating_sub(m.frees.saturating_sub(class_frees));
        let large_bytes = m.heap_alloc.saturating_sub(small_bytes);
        let resident = m.heap_sys.saturating_sub(m.heap_released);
        let arena = resident.saturating_sub(large_bytes);
        let free_bytes = arena.saturating_sub(small_bytes);
        let free_resident = m.heap_idle.saturating_sub(m.heap_released).min(free_bytes);
        Summary {
            arena,
            large_objects,
            large_bytes,
            small_bytes,
            free_bytes,
            free_resident,
            heap_sys: m.heap_sys,
            heap_released: m.heap_released,
        }
    }

    fn now() -> Summary {
        crate::ensure_init();
        Summary::of(&goheap_core::memstats())
    }

    fn mallinfo2(&self) -> Mallinfo2 {
        let z = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        Mallinfo2 {
            arena: z(self.arena),
            hblks: z(self.large_objects),
            hblkhd: z(self.large_bytes),
            uordblks: z(self.small_bytes),
            fordblks: z(self.free_bytes),
            keepcost: z(self.free_resident),
            ..Mallinfo2::default()
        }
    }
}

/// `v` as a `mallinfo` field: saturated at `INT_MAX`.
fn saturate(v: usize) -> c_int {
    c_int::try_from(v).unwrap_or(c_int::MAX)
}

/// glibc's `mallinfo2`: goheap's heap in glibc's terms (see the module
/// docs for each field). Does not allocate.
///
/// # Safety
///
/// Always safe to call.
#[no_mangle]
pub unsafe extern "C" fn mallinfo2() -> Mallinfo2 {
    Summary::now().mallinfo2()
}

/// glibc's `mallinfo`: [`mallinfo2`] with each field saturated at
/// `INT_MAX` (glibc's wrap around).
///
/// # Safety
///
/// Always safe to call.
#[no_mangle]
pub unsafe extern "C" fn mallinfo() -> Mallinfo {
    let m = Summary::now().mallinfo2();
    Mallinfo {
        arena: saturate(m.arena),
        ordblks: saturate(m.ordblks),
        smblks: saturate(m.smblks),
        hblks: saturate(m.hblks),
        hblkhd: saturate(m.hblkhd),
        usmblks: saturate(m.usmblks),
        fsmblks: saturate(m.fsmblks),
        uordblks: saturate(m.uordblks),
        fordblks: saturate(m.fordblks),
        keepcost: saturate(m.keepcost),
    }
}

/// glibc's `malloc_stats`: goheap's statistics on stderr (the
/// `goheap: stats: ...` and `goheap: memory: ...` lines of
/// `goheap_print_stats`) instead of glibc's per-arena table.
///
/// # Safety
///
/// Always safe to call.
#[no_mangle]
pub unsafe extern "C" fn malloc_stats() {
    crate::ensure_init();
    crate::stats::print_stats();
}

/// A `fmt::Write` into a stack buffer, written to a `FILE *` with `fwrite`
/// when full: `malloc_info` builds its XML without allocating.
struct FileWriter {
    fp: *mut libc::FILE,
    buf: [u8; 1024],
    len: usize,
    /// `fwrite` wrote less than asked (`errno` says why).
    failed: bool,
}

impl FileWriter {
    fn flush(&mut self) {
        if self.len > 0 && !self.failed {
            // SAFETY: `fp` is the caller's open stream (`malloc_info`'s
            // contract); the bytes are initialised and ours. No goheap lock
            // is held, so stdio may call malloc.
            let n = unsafe { libc::fwrite(self.buf.as_ptr().cast(), 1, self.len, self.fp) };
            self.failed = n != self.len;
        }
        self.len = 0;
    }
}

impl Write for FileWriter {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for chunk in s.as_bytes().chunks(self.buf.len()) {
            if self.len + chunk.len() > self.buf.len() {
                self.flush();
            }
            self.buf[self.len..self.len + chunk.len()].copy_from_slice(chunk);
            self.len += chunk.len();
        }
        Ok(())
    }
}

/// Writes `malloc_info`'s document for `m` to `w`.
fn write_malloc_info(w: &mut impl Write, m: &MemStats) -> core::fmt::Result {
    let s = Summary::of(m);
    w.write_str("<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n")?;
    // One element per size class that has been used: from the smallest to
    // the largest request it serves, its live objects and their bytes
    // (glibc lists free chunks per bin; goheap counts allocations and frees
    // per class, not free slots).
    let mut from = 0u64;
    for b in &m.by_size[1..] {
        let size = b.size as u64;
        if b.mallocs > 0 {
            let count = b.mallocs.saturating_sub(b.frees);
            writeln!(
                w,
                "  <size from=\"{from}\" to=\"{size}\" total=\"{}\" count=\"{count}\"/>",
                count * size
            )?;
        }
        from = size + 1;
    }
    let mapped = s.heap_sys;
    let backed = s.heap_sys.saturating_sub(s.heap_released);
    // Per heap and in total (one heap): no fastbins; the free bytes of the
    // small-object heap (their number of pieces is not counted); what the
    // heap holds now; the most it has mapped (it never unmaps); its
    // address space and the part not released.
    let totals = |w: &mut dyn Write| -> core::fmt::Result {
        writeln!(w, "<total type=\"fast\" count=\"0\" size=\"0\"/>")?;
        writeln!(
            w,
            "<total type=\"rest\" count=\"0\" size=\"{}\"/>",
            s.free_bytes
        )
    };
    let system = |w: &mut dyn Write| -> core::fmt::Result {
        writeln!(w, "<system type=\"current\" size=\"{}\"/>", s.arena)?;
        writeln!(w, "<system type=\"max\" size=\"{mapped}\"/>")?;
        writeln!(w, "<aspace type=\"total\" size=\"{mapped}\"/>")?;
        writeln!(w, "<aspace type=\"mprotect\" size=\"{backed}\"/>")
    };
    w.write_str("</sizes>\n")?;
    totals(w)?;
    system(w)?;
    w.write_str("</heap>\n")?;
    totals(w)?;
    writeln!(
        w,
        "<total type=\"mmap\" count=\"{}\" size=\"{}\"/>",
        s.large_objects, s.large_bytes
    )?;
    system(w)?;
    w.write_str("</malloc>\n")
}

/// glibc's `malloc_info`: writes goheap's statistics to `fp` as glibc's
/// XML (`<malloc version="1">`, one `<heap>` whose `<size>` elements are
/// the used size classes with their live objects, then the totals).
/// Returns 0; -1 with `errno = EINVAL` if `options` is not 0 (as glibc) or
/// `fp` is null, and -1 if writing failed (`errno` from `fwrite`).
///
/// # Safety
///
/// `fp` is null or an open `FILE *` the caller may write to.
#[no_mangle]
pub unsafe extern "C" fn malloc_info(options: c_int, fp: *mut libc::FILE) -> c_int {
    if options != 0 || fp.is_null() {
        crate::set_errno(libc::EINVAL);
        return -1;
    }
    crate::ensure_init();
    // Read before any stdio call: memstats takes goheap's locks, stdio may
    // call malloc.
    let m = goheap_core::memstats();
    let mut w = FileWriter {
        fp,
        buf: [0; 1024],
        len: 0,
        failed: false,
    };
    let _ = write_malloc_info(&mut w, &m);
    w.flush();
    if w.failed {
        -1
    } else {
        0
    }
}

// glibc's `mallopt` parameters (`<malloc.h>`).
const M_MXFAST: c_int = 1;
const M_TRIM_THRESHOLD: c_int = -1;
const M_TOP_PAD: c_int = -2;
const M_MMAP_THRESHOLD: c_int = -3;
const M_MMAP_MAX: c_int = -4;
const M_CHECK_ACTION: c_int = -5;
const M_PERTURB: c_int = -6;
const M_ARENA_TEST: c_int = -7;
const M_ARENA_MAX: c_int = -8;

/// glibc's largest `M_MXFAST` (`80 * sizeof(size_t) / 4`).
const MAX_FAST_SIZE: c_int = (80 * core::mem::size_of::<usize>() / 4) as c_int;
/// glibc's largest `M_MMAP_THRESHOLD` on 64-bit targets (half its 64 MiB
/// `HEAP_MAX_SIZE`).
const MAX_MMAP_THRESHOLD: usize = 32 << 20;

/// glibc's `mallopt`: accepts each of glibc's parameters, validating the
/// value as glibc does, and ignores it (goheap has no fastbins, arenas or
/// `mmap` threshold, and its scavenger paces itself; see the README).
/// Returns 1, or 0 for `M_MXFAST` outside 0..=160, `M_MMAP_THRESHOLD`
/// above 32 MiB (or negative) and for a parameter glibc does not have
/// (glibc itself returns 1 there).
///
/// # Safety
///
/// Always safe to call.
#[no_mangle]
pub unsafe extern "C" fn mallopt(param: c_int, value: c_int) -> c_int {
    let ok = match param {
        M_MXFAST => (0..=MAX_FAST_SIZE).contains(&value),
        // glibc converts the int to size_t: a negative value is huge.
        M_MMAP_THRESHOLD => (value as isize as usize) <= MAX_MMAP_THRESHOLD,
        M_TRIM_THRESHOLD | M_TOP_PAD | M_MMAP_MAX | M_CHECK_ACTION | M_PERTURB | M_ARENA_TEST
        | M_ARENA_MAX => true,
        _ => false,
    };
    ok as c_int
}

// glibc's layouts.
const _: () = assert!(core::mem::size_of::<Mallinfo>() == 10 * 4);
const _: () = assert!(core::mem::size_of::<Mallinfo2>() == 10 * 8);

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that keeps what `malloc_info` would write.
    struct Text(String);
    impl Write for Text {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            self.0.push_str(s);
            Ok(())
        }
    }

    fn stats() -> MemStats {
        let mut m = goheap_core::memstats();
        for b in &mut m.by_size {
            b.mallocs = 0;
            b.frees = 0;
        }
        // Two 32-byte objects live of three, one 1 MiB large object.
        let c32 = m.by_size.iter().position(|b| b.size == 32).unwrap();
        m.by_size[c32].mallocs = 3;
        m.by_size[c32].frees = 1;
        m.mallocs = 3 + 1;
        m.frees = 1;
        m.heap_alloc = 64 + (1 << 20);
        m.heap_sys = 4 << 20;
        m.heap_released = 1 << 20;
        m.heap_inuse = (1 << 20) + 8192;
        m.heap_idle = m.heap_sys - m.heap_inuse;
        m
    }

    #[test]
    fn summary_follows_glibc_arithmetic() {
        let s = Summary::of(&stats()).mallinfo2();
        assert_eq!(s.hblks, 1);
        assert_eq!(s.hblkhd, 1 << 20);
        assert_eq!(s.uordblks, 64);
        assert_eq!(s.arena, (3 << 20) - (1 << 20));
        assert_eq!(s.arena, s.uordblks + s.fordblks);
        // Idle 4 MiB - in use, minus the released MiB.
        assert_eq!(s.keepcost, (4 << 20) - (1 << 20) - 8192 - (1 << 20));
        assert!(s.keepcost <= s.fordblks);
    }

    #[test]
    fn mallinfo_saturates() {
        assert_eq!(saturate(usize::MAX), c_int::MAX);
        assert_eq!(saturate(5), 5);
    }

    #[test]
    fn malloc_info_xml_shape() {
        let mut t = Text(String::new());
        write_malloc_info(&mut t, &stats()).unwrap();
        let x = t.0;
        assert!(
            x.starts_with("<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n"),
            "{x}"
        );
        assert!(
            x.contains("<size from=\"25\" to=\"32\" total=\"64\" count=\"2\"/>"),
            "{x}"
        );
        assert_eq!(x.matches("<size ").count(), 1, "{x}");
        assert!(
            x.contains("<total type=\"mmap\" count=\"1\" size=\"1048576\"/>"),
            "{x}"
        );
        assert_eq!(x.matches("<system type=\"current\"").count(), 2, "{x}");
        assert!(
            x.ends_with("</heap>\n") || x.ends_with("</malloc>\n"),
            "{x}"
        );
    }

    #[test]
    fn mallopt_return_values() {
        // SAFETY: mallopt has no preconditions.
        let m = |p, v| unsafe { mallopt(p, v) };
        assert_eq!(m(M_MXFAST, 0), 1);
        assert_eq!(m(M_MXFAST, 160), 1);
        assert_eq!(m(M_MXFAST, 161), 0);
        assert_eq!(m(M_MXFAST, -1), 0);
        assert_eq!(m(M_MMAP_THRESHOLD, 32 << 20), 1);
        assert_eq!(m(M_MMAP_THRESHOLD, (32 << 20) + 1), 0);
        assert_eq!(m(M_MMAP_THRESHOLD, -1), 0);
        for p in [
            M_TRIM_THRESHOLD,
            M_TOP_PAD,
            M_MMAP_MAX,
            M_CHECK_ACTION,
            M_PERTURB,
        ] {
            assert_eq!(m(p, 12345), 1);
        }
        assert_eq!(m(M_ARENA_TEST, 0), 1);
        assert_eq!(m(M_ARENA_MAX, 4), 1);
        assert_eq!(m(42, 0), 0);
        assert_eq!(m(-9, 0), 0);
    }
}
