//! `mmap`/`madvise` implementation of [`Os`](super::Os).

use super::Os;
use core::ptr;

/// The real operating system, through `mmap`, `mprotect`, `madvise` and
/// `munmap`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemOs;

// SAFETY: every method only issues system calls (no allocation), is callable
// from any thread, and `reserve` returns a fresh private mapping.
unsafe impl Os for SystemOs {
    fn reserve(&self, size: usize, align: usize, hint: usize) -> *mut u8 {
        debug_assert!(align.is_power_of_two() && size % super::OS_PAGE_SIZE == 0);
        if hint != 0 && hint % align == 0 {
            // SAFETY: a PROT_NONE anonymous mapping without MAP_FIXED cannot
            // clobber an existing mapping; the kernel treats `hint` as a hint.
            let p = unsafe { map_none(hint as *mut u8, size) };
            if p as usize == hint {
                return p;
            }
            if !p.is_null() {
                // SAFETY: `p` is the mapping we just made, of `size` bytes.
                unsafe { libc::munmap(p.cast(), size) };
            }
        }
        if align <= super::OS_PAGE_SIZE {
            // SAFETY: as above.
            return unsafe { map_none(ptr::null_mut(), size) };
        }
        // Over-reserve by `align` and trim both ends so the result is aligned.
        let Some(total) = size.checked_add(align) else {
            return ptr::null_mut();
        };
        // SAFETY: as above.
        let raw = unsafe { map_none(ptr::null_mut(), total) };
        if raw.is_null() {
            return raw;
        }
        let start = raw as usize;
        let aligned = (start + align - 1) & !(align - 1);
        let head = aligned - start;
        let tail = total - head - size;
        // SAFETY: both trimmed pieces lie inside the mapping made above and
        // are not part of the range we return.
        unsafe {
            if head != 0 {
                libc::munmap(raw.cast(), head);
            }
            if tail != 0 {
                libc::munmap((aligned + size) as *mut libc::c_void, tail);
            }
        }
        aligned as *mut u8
    }

    fn avoids_sampled_bit(&self) -> bool {
        true
    }

    unsafe fn commit(&self, addr: *mut u8, size: usize) -> bool {
        // SAFETY: the caller guarantees the range is inside our reservation.
        unsafe { libc::mprotect(addr.cast(), size, libc::PROT_READ | libc::PROT_WRITE) == 0 }
    }

    unsafe fn decommit(&self, addr: *mut u8, size: usize, lazy: bool) {
        let advice = if lazy {
            libc::MADV_FREE
        } else {
            libc::MADV_DONTNEED
        };
        // SAFETY: the caller guarantees the range is committed and unused.
        let rc = unsafe { libc::madvise(addr.cast(), size, advice) };
        if rc != 0 && lazy {
            // Kernels before 4.5 lack MADV_FREE; fall back to DONTNEED.
            // SAFETY: as above.
            unsafe { libc::madvise(addr.cast(), size, libc::MADV_DONTNEED) };
        }
    }

    unsafe fn release(&self, addr: *mut u8, size: usize) {
        // SAFETY: the caller guarantees the range is ours and unused.
        unsafe { libc::munmap(addr.cast(), size) };
    }

    unsafe fn resident_pages(&self, addr: *const u8, size: usize) -> Option<usize> {
        // One byte per page, on the stack, 4 MiB of pages per call.
        let mut vec = [0u8; 1024];
        let page = super::OS_PAGE_SIZE;
        let mut resident = 0;
        let mut off = 0;
        while off < size {
            let len = (size - off).min(vec.len() * page);
            // SAFETY: the range is mapped (the caller's contract); `vec`
            // holds a byte for each of its `len / page` pages.
            let rc = unsafe { libc::mincore(addr.add(off) as *mut libc::c_void, len, vec.as_mut_ptr()) };
            if rc != 0 {
                return None;
            }
            resident += vec[..len.div_ceil(page)].iter().filter(|&&b| b & 1 != 0).count();
            off += len;
        }
        Some(resident)
    }

    unsafe fn hint_huge(&self, addr: *mut u8, size: usize) {
        // SAFETY: the caller guarantees the range is committed; the advice
        // does not change its contents.
        unsafe { libc::madvise(addr.cast(), size, libc::MADV_HUGEPAGE) };
    }

    unsafe fn populate(&self, addr: *mut u8, size: usize) {
        // SAFETY: the caller guarantees the range is committed; populating
        // maps zeroed pages and changes no contents. Kernels before 5.14
        // answer EINVAL, and the pages fault in at first touch as before.
        unsafe { libc::madvise(addr.cast(), size, libc::MADV_POPULATE_WRITE) };
    }

    unsafe fn hint_no_huge(&self, addr: *mut u8, size: usize) {
        // SAFETY: the caller guarantees the range is ours; the advice does
        // not change its contents or protection.
        unsafe { libc::madvise(addr.cast(), size, libc::MADV_NOHUGEPAGE) };
    }

    fn resident_bytes(&self) -> Option<usize> {
        statm_resident()
    }
}

/// Reads the file at `path` (a small `/proc` file) into `buf`, without
/// allocating: what one `read` returned, or `None`.
fn read_proc<'a>(path: &core::ffi::CStr, buf: &'a mut [u8]) -> Option<&'a [u8]> {
    // SAFETY: a NUL-terminated path; read-only open.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: reads into our buffer; `fd` is ours and closed after.
    let n = unsafe {
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    (n > 0).then(|| &buf[..n as usize])
}

/// The decimal number at the start of `field`.
fn leading_number(field: &[u8]) -> usize {
    field
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .fold(0usize, |a, &c| a * 10 + (c - b'0') as usize)
}

/// The process's resident set size in bytes, from `/proc/self/statm`
/// (`None` if it cannot be read). Read without allocating.
pub(crate) fn statm_resident() -> Option<usize> {
    let mut buf = [0u8; 128];
    let text = read_proc(c"/proc/self/statm", &mut buf)?;
    // Second field: resident pages.
    let pages = leading_number(text.split(|&c| c == b' ').nth(1)?);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
    Some(pages * page)
}

/// The state of the process's first thread (`R`, `S`, `Z` for a zombie:
/// one that exited while others run) and how many threads the process
/// has, zombie first thread included, from `/proc/self/stat` (`None` if it
/// cannot be read). Read without allocating.
pub(crate) fn leader_state_and_threads() -> Option<(u8, usize)> {
    let mut buf = [0u8; 1024];
    let text = read_proc(c"/proc/self/stat", &mut buf)?;
    // `pid (comm) state ...`: the command may hold spaces and parentheses,
    // so count from the last `)`. The state is field 3, the first after
    // it; `num_threads` is field 20, the 18th.
    let close = text.iter().rposition(|&c| c == b')')?;
    let mut fields = text[close + 1..].split(|&c| c == b' ').filter(|f| !f.is_empty());
    let state = *fields.next()?.first()?;
    Some((state, leading_number(fields.nth(16)?)))
}

/// Maps `size` bytes of inaccessible, unbacked address space.
///
/// # Safety
///
/// `hint` is only a hint (no `MAP_FIXED`), so any value is allowed; the
/// caller owns the returned mapping.
unsafe fn map_none(hint: *mut u8, size: usize) -> *mut u8 {
    // SAFETY: anonymous private mapping without MAP_FIXED; the kernel picks
    // an unused range.
    let p = unsafe {
        libc::mmap(
            hint.cast(),
            size,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p.cast()
    }
}
