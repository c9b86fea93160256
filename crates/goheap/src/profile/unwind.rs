//! The sampled allocation's call stack, from the DWARF call frame
//! information (`.eh_frame`) that compilers emit by default on x86-64
//! and aarch64, so no frame pointers are needed (most C programs and Rust
//! release builds have none).
//!
//! Two walkers read it:
//!
//! - libgcc's `_Unwind_Backtrace`, which every Rust program and
//!   `libgoheap.so` link already (Rust's `std` needs it for panics). It
//!   takes no lock and does not allocate on glibc 2.35 and later (it finds
//!   a PC's unwind table with `_dl_find_object`), but it finds and decodes
//!   every frame's unwind entry afresh: a binary search of the object's
//!   `.eh_frame_hdr`, then the entry's CIE and instructions, about 150 ns
//!   a frame, which made the walk most of a sample's cost.
//! - On x86-64 Linux, [`cfi`]: the same information, decoded once per
//!   return address and kept in a small lock-free cache ([`SeqCell`]s), so
//!   a sample at a site seen before costs a `_dl_find_object` and a cache
//!   read per frame. It understands the rules compilers write for
//!   ordinary code (the caller's stack pointer as `rsp` or `rbp` plus an
//!   offset, `rbp` saved in the frame, the return address just below it);
//!   anything else (a signal frame, a rule given as a DWARF expression, a
//!   stack realigned through another register) sends the whole walk to
//!   libgcc. A cache entry is tied to the loaded object it was decoded
//!   from (its link map, mapping and unwind table as `_dl_find_object`
//!   reports them), so an entry left behind by a library that was
//!   unloaded is never used for what was loaded at its address after.
//!
//! Walking frame pointers would cost less per frame but give garbage or
//! one frame on programs built without them. A frame without unwind
//! information (hand-written assembly without CFI, JIT code) ends the
//! stack there, with either walker.
//!
//! [`SeqCell`]: crate::sync::seqcell::SeqCell

#[cfg(not(miri))]
use core::ffi::{c_int, c_void};

/// `_Unwind_Reason_Code` values used here.
#[cfg(not(miri))]
const URC_NO_REASON: c_int = 0;
#[cfg(not(miri))]
const URC_NORMAL_STOP: c_int = 4;

#[cfg(not(miri))]
extern "C" {
    fn _Unwind_Backtrace(
        trace: extern "C" fn(ctx: *mut c_void, arg: *mut c_void) -> c_int,
        arg: *mut c_void,
    ) -> c_int;
    fn _Unwind_GetIP(ctx: *mut c_void) -> usize;
}

/// Frames of goheap's own the walk starts with: this module's
/// `capture_with` and the `sample_*` function calling it (through
/// [`capture`], inlined), both never inlined. (The allocator's entry points, `malloc` or `__rust_alloc`,
/// stay: readers drop them by name, see `pprof`'s `drop_frames`.)
#[cfg(not(miri))]
const SKIP: usize = 2;

#[cfg(not(miri))]
struct Walk<'a> {
    out: &'a mut [usize],
    n: usize,
    skip: usize,
}

#[cfg(not(miri))]
extern "C" fn step(ctx: *mut c_void, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Walk` that `capture` passed, alive for the
    // whole walk; `ctx` is the unwinder's context for this frame.
    let (w, ip) = unsafe { (&mut *arg.cast::<Walk<'_>>(), _Unwind_GetIP(ctx)) };
    if ip == 0 {
        return URC_NORMAL_STOP;
    }
    if w.skip > 0 {
        w.skip -= 1;
        return URC_NO_REASON;
    }
    // A return address: the call is the instruction before it, which is
    // what a symbolizer must look up (pprof's convention).
    w.out[w.n] = ip - 1;
    w.n += 1;
    if w.n == w.out.len() {
        URC_NORMAL_STOP
    } else {
        URC_NO_REASON
    }
}

/// Fills `out` with the caller's stack, innermost first, call-site
/// addresses (return address − 1); returns the frame count.
#[cfg(not(miri))]
#[inline(always)]
pub(super) fn capture(out: &mut [usize]) -> usize {
    capture_with(out, true)
}

/// [`capture`], by the cached walker if `fast` and it can, else by
/// libgcc's. One function for both, so that both walks start from the
/// same frame (the tests compare them).
#[inline(never)]
#[cfg(not(miri))]
fn capture_with(out: &mut [usize], fast: bool) -> usize {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    if fast {
        let regs = cfi::Regs::here();
        if let Some(n) = cfi::walk(regs, out, SKIP) {
            return n;
        }
    }
    let _ = fast;
    let mut w = Walk { out, n: 0, skip: SKIP };
    // SAFETY: `step` matches the callback type, and `w` outlives the walk.
    unsafe { _Unwind_Backtrace(step, (&mut w as *mut Walk<'_>).cast()) };
    w.n
}

/// Miri has no unwinder to call: no frames (profiling is off under it).
#[cfg(miri)]
pub(super) fn capture(_out: &mut [usize]) -> usize {
    0
}

/// The cached walker of x86-64 Linux.
#[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
mod cfi {
    use crate::sync::atomic::{AtomicUsize, Ordering};
    use crate::sync::seqcell::SeqCell;
    use core::ffi::c_void;

    /// DWARF register numbers of x86-64 (System V psABI).
    const RBP: u64 = 6;
    const RSP: u64 = 7;
    /// The return-address column.
    const RA: u64 = 16;

    /// A frame's size is taken as sane below this; a larger step of the
    /// stack pointer ends the walk (it would be reading something other
    /// than this thread's stack).
    const MAX_FRAME: usize = 1 << 24;

    /// glibc's `struct dl_find_object` (glibc 2.35).
    #[repr(C)]
    struct DlFindObject {
        flags: u64,
        map_start: usize,
        map_end: usize,
        link_map: usize,
        eh_frame: usize,
        reserved: [u64; 7],
    }

    /// libgcc's `struct dwarf_eh_bases`.
    #[repr(C)]
    struct EhBases {
        tbase: usize,
        dbase: usize,
        func: usize,
    }

    extern "C" {
        fn _Unwind_Find_FDE(pc: *mut c_void, bases: *mut EhBases) -> *const u8;
    }

    type DlFindObjectFn = unsafe extern "C" fn(*mut c_void, *mut DlFindObject) -> i32;

    /// `_dl_find_object`: 0 not looked up yet, 1 absent (glibc before
    /// 2.35: then every walk is libgcc's), else its address. Looked up by
    /// name rather than linked, so `libgoheap.so` still loads on older
    /// glibc.
    static DL_FIND_OBJECT: AtomicUsize = AtomicUsize::new(0);

    fn dl_find_object() -> Option<DlFindObjectFn> {
        let mut f = DL_FIND_OBJECT.load(Ordering::Relaxed);
        if f == 0 {
            // SAFETY: a lookup by a NUL-terminated name. It may allocate
            // (unsampled: the thread is inside a sample).
            let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"_dl_find_object".as_ptr()) };
            f = if p.is_null() { 1 } else { p as usize };
            DL_FIND_OBJECT.store(f, Ordering::Relaxed);
        }
        // SAFETY: `f` is `_dl_find_object`'s address, of that type.
        (f != 1).then(|| unsafe { core::mem::transmute::<usize, DlFindObjectFn>(f) })
    }

    /// A frame's registers: where its code is and its stack and frame
    /// pointers (`bp` is `None` once a frame's rules lost it).
    #[derive(Clone, Copy)]
    pub(super) struct Regs {
        ip: usize,
        sp: usize,
        bp: Option<usize>,
    }

    impl Regs {
        /// The caller's registers, at the point of the call (inlined into
        /// it: the frame described is the caller's).
        #[inline(always)]
        pub(super) fn here() -> Regs {
            let (ip, sp, bp): (usize, usize, usize);
            // SAFETY: reads three registers, writes nothing else.
            unsafe {
                core::arch::asm!(
                    "lea {ip}, [rip]",
                    "mov {sp}, rsp",
                    "mov {bp}, rbp",
                    ip = out(reg) ip,
                    sp = out(reg) sp,
                    bp = out(reg) bp,
                    options(nomem, nostack, preserves_flags),
                )
            };
            Regs { ip, sp, bp: Some(bp) }
        }
    }

    /// Where the caller's `rbp` is.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum SavedBp {
        /// Unchanged by this frame.
        Same,
        /// Saved at the CFA plus this offset.
        At(i16),
        /// Not recoverable here.
        Lost,
    }

    /// How to find a frame's caller, at one code address.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Rule {
        /// The CFA (the caller's stack pointer) is `rbp` + `cfa_off` if
        /// `cfa_bp`, else `rsp` + `cfa_off`; the return address is just
        /// below it.
        cfa_bp: bool,
        cfa_off: i32,
        bp: SavedBp,
        /// The outermost frame (its return address is undefined).
        end: bool,
    }

    /// A cache entry's rule word: 0 is "none"; the top bit marks a rule
    /// the walker cannot follow (the walk goes to libgcc).
    const PRESENT: u64 = 1 << 63;
    const UNSUPPORTED: u64 = 1 << 62;

    impl Rule {
        fn pack(self) -> u64 {
            // Bits 0-31 the CFA offset, 32 `cfa_bp`, 33 `end`, 34-35 the
            // kind of `bp`, 36-51 its offset.
            let bp = match self.bp {
                SavedBp::Same => 0,
                SavedBp::At(o) => 1 | u64::from(o as u16) << 2,
                SavedBp::Lost => 2,
            };
            PRESENT
                | u64::from(self.cfa_off as u32)
                | u64::from(self.cfa_bp) << 32
                | u64::from(self.end) << 33
                | bp << 34
        }

        fn unpack(w: u64) -> Rule {
            let bp = (w >> 34) & 0x3_ffff;
            Rule {
                cfa_off: w as u32 as i32,
                cfa_bp: w & 1 << 32 != 0,
                end: w & 1 << 33 != 0,
                bp: match bp & 3 {
                    0 => SavedBp::Same,
                    1 => SavedBp::At((bp >> 2) as u16 as i16),
                    _ => SavedBp::Lost,
                },
            }
        }
    }

    /// Entries of the rule cache: enough for the return addresses of a
    /// program's allocation sites and their callers.
    const CACHE_LEN: usize = 4096;

    /// The rule cache: per entry, the code address, the loaded object's
    /// tag ([`object_tag`]) and the packed rule. Shared by all threads; a
    /// write that collides with another is dropped.
    static CACHE: [SeqCell<3>; CACHE_LEN] = [const { SeqCell::new() }; CACHE_LEN];

    fn slot(ip: usize) -> &'static SeqCell<3> {
        let h = (ip as u64 ^ (ip as u64 >> 17)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        &CACHE[(h >> 52) as usize % CACHE_LEN]
    }

    /// What identifies the object a code address is in, while it stays
    /// loaded: its link map, mapping and unwind table.
    fn object_tag(o: &DlFindObject) -> u64 {
        (o.link_map as u64) ^ (o.map_start as u64).rotate_left(21) ^ (o.eh_frame as u64).rotate_left(42)
    }

    /// The rule word for code address `pc` (looked up exactly: a return
    /// address minus one, or the walk's own first address); 0 when no
    /// loaded object or no unwind entry covers `pc` (the stack ends).
    fn rule_word(find: DlFindObjectFn, pc: usize) -> u64 {
        let mut o = DlFindObject {
            flags: 0,
            map_start: 0,
            map_end: 0,
            link_map: 0,
            eh_frame: 0,
            reserved: [0; 7],
        };
        // SAFETY: `o` is a valid out-parameter of the right layout.
        if unsafe { find(pc as *mut c_void, &mut o) } != 0 {
            return 0;
        }
        let tag = object_tag(&o);
        let cell = slot(pc);
        if let Some([ip, t, rule]) = cell.read() {
            if ip == pc as u64 && t == tag {
                return rule;
            }
        }
        let mut bases = EhBases { tbase: 0, dbase: 0, func: 0 };
        // SAFETY: `bases` is a valid out-parameter; libgcc only reads the
        // loaded objects' tables.
        let fde = unsafe { _Unwind_Find_FDE(pc as *mut c_void, &mut bases) };
        if fde.is_null() {
            return 0;
        }
        // SAFETY: `fde` is an FDE in the `.eh_frame` of an object that is
        // loaded (it holds code on the stack being walked), so it and its
        // CIE are mapped for the length their headers give.
        let rule = match unsafe { rule_at(fde, bases.func, pc) } {
            Some(r) => r.pack(),
            None => PRESENT | UNSUPPORTED,
        };
        cell.try_write([pc as u64, tag, rule]);
        rule
    }

    /// Walks the stack from `regs` (a frame of the caller's, at a point
    /// where its registers agree with its unwind rules), skipping `skip`
    /// frames and writing call-site addresses to `out`; the frame count,
    /// or `None` if a frame needs libgcc's walker.
    pub(super) fn walk(mut regs: Regs, out: &mut [usize], mut skip: usize) -> Option<usize> {
        let find = dl_find_object()?;
        let mut n = 0;
        // The first address is where `regs` were read, not a return
        // address: its own rule applies, not the one before it. It counts
        // as a frame, as the frame calling `_Unwind_Backtrace` does in
        // libgcc's walk.
        let mut pc = regs.ip;
        if skip > 0 {
            skip -= 1;
        } else if !out.is_empty() {
            out[0] = pc;
            n = 1;
        }
        while n < out.len() {
            let w = rule_word(find, pc);
            if w == 0 {
                break;
            }
            if w & UNSUPPORTED != 0 {
                return None;
            }
            let rule = Rule::unpack(w);
            if rule.end {
                break;
            }
            let base = if rule.cfa_bp { regs.bp? } else { regs.sp };
            let cfa = base.wrapping_add_signed(rule.cfa_off as isize);
            if cfa < regs.sp + 8 || cfa - regs.sp > MAX_FRAME || cfa % 8 != 0 {
                break;
            }
            // SAFETY: `cfa - 8` is on this thread's stack, between the
            // frame's stack pointer and its caller's (checked above): the
            // return address the call pushed.
            let ra = unsafe { ((cfa - 8) as *const usize).read() };
            let bp = match rule.bp {
                SavedBp::Same => regs.bp,
                SavedBp::At(off) => {
                    let at = cfa.wrapping_add_signed(off as isize);
                    if at < regs.sp || at + 8 > cfa {
                        break;
                    }
                    // SAFETY: inside this frame, as checked just above.
                    Some(unsafe { (at as *const usize).read() })
                }
                SavedBp::Lost => None,
            };
            if ra == 0 {
                break;
            }
            regs = Regs { ip: ra, sp: cfa, bp };
            pc = ra - 1;
            if skip > 0 {
                skip -= 1;
            } else {
                out[n] = pc;
                n += 1;
            }
        }
        Some(n)
    }

    /// A bounds-checked reader of unwind tables: `[p, end)`, readable
    /// (made so by [`Reader::new`]'s contract).
    struct Reader {
        p: usize,
        end: usize,
    }

    impl Reader {
        /// # Safety
        ///
        /// `[p, end)` stays readable while the reader is used.
        unsafe fn new(p: usize, end: usize) -> Reader {
            Reader { p, end: end.max(p) }
        }

        fn bytes<const K: usize>(&mut self) -> Option<[u8; K]> {
            if self.end - self.p < K {
                return None;
            }
            // SAFETY: `[p, p + K)` is inside `[p, end)`, readable.
            let v = unsafe { (self.p as *const [u8; K]).read_unaligned() };
            self.p += K;
            Some(v)
        }

        fn u8(&mut self) -> Option<u8> {
            self.bytes::<1>().map(|b| b[0])
        }

        fn u32(&mut self) -> Option<u32> {
            self.bytes::<4>().map(u32::from_le_bytes)
        }

        fn skip(&mut self, k: u64) -> Option<()> {
            if ((self.end - self.p) as u64) < k {
                return None;
            }
            self.p += k as usize;
            Some(())
        }

        /// Moves to `to`, if it is inside the range.
        fn seek(&mut self, to: usize) -> Option<()> {
            (self.p..=self.end).contains(&to).then(|| self.p = to)
        }

        fn uleb(&mut self) -> Option<u64> {
            let (mut v, mut shift) = (0u64, 0);
            loop {
                let b = self.u8()?;
                if shift < 64 {
                    v |= u64::from(b & 0x7f) << shift;
                }
                shift += 7;
                if b & 0x80 == 0 {
                    return Some(v);
                }
            }
        }

        fn sleb(&mut self) -> Option<i64> {
            let (mut v, mut shift) = (0i64, 0);
            loop {
                let b = self.u8()?;
                if shift < 64 {
                    v |= i64::from(b & 0x7f) << shift;
                }
                shift += 7;
                if b & 0x80 == 0 {
                    if shift < 64 && b & 0x40 != 0 {
                        v |= -1i64 << shift;
                    }
                    return Some(v);
                }
            }
        }

        /// Skips a pointer in encoding `enc` (`DW_EH_PE_*`).
        fn skip_encoded(&mut self, enc: u8) -> Option<()> {
            match enc & 0x0f {
                _ if enc == 0xff => None,
                0x00 | 0x04 | 0x0c => self.skip(8),
                0x02 | 0x0a => self.skip(2),
                0x03 | 0x0b => self.skip(4),
                0x01 | 0x09 => self.uleb().map(drop),
                _ => None,
            }
        }
    }

    /// The rules while the instructions run.
    #[derive(Clone, Copy)]
    struct State {
        cfa_reg: u64,
        cfa_off: i64,
        /// The CFA is a DWARF expression (not followed here).
        cfa_expr: bool,
        bp: Saved,
        ra: Saved,
    }

    /// A register's rule, as far as the walker cares.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Saved {
        Same,
        At(i64),
        Undefined,
        Other,
    }

    impl State {
        fn set(&mut self, reg: u64, rule: Saved) {
            match reg {
                RBP => self.bp = rule,
                RA => self.ra = rule,
                _ => {}
            }
        }
    }

    /// How deep `DW_CFA_remember_state` may nest before the entry is
    /// left to libgcc.
    const STATE_STACK: usize = 4;

    /// The rule at `pc` of the function starting at `func`, from `fde`;
    /// `None` if the entry uses what the walker does not follow.
    ///
    /// # Safety
    ///
    /// `fde` is an FDE of a loaded object's `.eh_frame`: it and its CIE
    /// are readable for the lengths their headers give.
    unsafe fn rule_at(fde: *const u8, func: usize, pc: usize) -> Option<Rule> {
        let fde = fde as usize;
        // SAFETY: the FDE's length field is readable (the contract).
        let len = unsafe { Reader::new(fde, fde + 4) }.u32()?;
        if len == 0 || len == u32::MAX {
            return None;
        }
        // SAFETY: the FDE is readable for the length its header gives.
        let mut f = unsafe { Reader::new(fde + 4, fde + 4 + len as usize) };
        let cie_field = f.p;
        let cie_back = f.u32()? as usize;
        if cie_back == 0 || cie_back > cie_field {
            return None;
        }
        let cie = cie_field - cie_back;
        // SAFETY: the CIE the FDE names is readable (the contract).
        let clen = unsafe { Reader::new(cie, cie + 4) }.u32()?;
        if clen == 0 || clen == u32::MAX {
            return None;
        }
        // SAFETY: the CIE is readable for the length its header gives.
        let mut c = unsafe { Reader::new(cie + 4, cie + 4 + clen as usize) };
        if c.u32()? != 0 {
            return None;
        }
        let version = c.u8()?;
        if version != 1 && version != 3 {
            return None;
        }
        let mut aug = [0u8; 8];
        let mut alen = 0;
        loop {
            let ch = c.u8()?;
            if ch == 0 {
                break;
            }
            if alen == aug.len() {
                return None;
            }
            aug[alen] = ch;
            alen += 1;
        }
        let code_align = c.uleb()?;
        let data_align = c.sleb()?;
        let ra = if version == 1 { u64::from(c.u8()?) } else { c.uleb()? };
        if ra != RA {
            return None;
        }
        let mut fde_enc = 0u8;
        let z = alen > 0 && aug[0] == b'z';
        if z {
            let n = c.uleb()?;
            let data_end = c.p.checked_add(n as usize)?;
            for &ch in &aug[1..alen] {
                match ch {
                    b'R' => fde_enc = c.u8()?,
                    b'L' => drop(c.u8()?),
                    b'P' => {
                        let e = c.u8()?;
                        c.skip_encoded(e)?;
                    }
                    // 'S' (a signal frame) and the rest: libgcc's.
                    _ => return None,
                }
            }
            c.seek(data_end)?;
        } else if alen > 0 {
            return None;
        }
        // The FDE's address range (the function start is `func`), and its
        // augmentation data.
        f.skip_encoded(fde_enc)?;
        f.skip_encoded(fde_enc & 0x0f)?;
        if z {
            let n = f.uleb()?;
            f.skip(n)?;
        }
        let mut s = State { cfa_reg: RSP, cfa_off: 8, cfa_expr: false, bp: Saved::Same, ra: Saved::Other };
        let mut stack = [s; STATE_STACK];
        let mut depth = 0;
        let aligns = (code_align, data_align);
        run(&mut c, &mut s, None, &mut stack, &mut depth, aligns, None)?;
        let initial = s;
        run(&mut f, &mut s, Some((func, pc)), &mut stack, &mut depth, aligns, Some(&initial))?;
        if s.cfa_expr || (s.cfa_reg != RSP && s.cfa_reg != RBP) {
            return None;
        }
        let end = match s.ra {
            Saved::At(-8) => false,
            Saved::Undefined => true,
            _ => return None,
        };
        let bp = match s.bp {
            Saved::Same => SavedBp::Same,
            Saved::At(o) => SavedBp::At(i16::try_from(o).ok()?),
            Saved::Undefined | Saved::Other => SavedBp::Lost,
        };
        Some(Rule { cfa_bp: s.cfa_reg == RBP, cfa_off: i32::try_from(s.cfa_off).ok()?, bp, end })
    }

    /// Runs call frame instructions from `r` on `s`: all of them, or with
    /// `target` = (function start, pc), up to the row that covers pc.
    /// `initial` is the CIE's state (for `DW_CFA_restore`; `None` while
    /// running the CIE itself).
    fn run(
        r: &mut Reader,
        s: &mut State,
        target: Option<(usize, usize)>,
        stack: &mut [State; STATE_STACK],
        depth: &mut usize,
        (code_align, data_align): (u64, i64),
        initial: Option<&State>,
    ) -> Option<()> {
        let mut loc = target.map_or(0, |(func, _)| func);
        let factored = |v: u64| (v as i64).wrapping_mul(data_align);
        while r.p < r.end {
            let op = r.u8()?;
            let mut advance = None;
            match op >> 6 {
                1 => advance = Some(u64::from(op & 0x3f)),
                2 => {
                    let off = factored(r.uleb()?);
                    s.set(u64::from(op & 0x3f), Saved::At(off));
                }
                3 => {
                    let reg = u64::from(op & 0x3f);
                    let init = initial?;
                    s.set(reg, if reg == RBP { init.bp } else { init.ra });
                }
                _ => match op {
                    0x00 => {}
                    0x02 => advance = Some(u64::from(r.u8()?)),
                    0x03 => advance = Some(u64::from(u16::from_le_bytes(r.bytes::<2>()?))),
                    0x04 => advance = Some(u64::from(r.u32()?)),
                    0x05 => {
                        let reg = r.uleb()?;
                        let off = factored(r.uleb()?);
                        s.set(reg, Saved::At(off));
                    }
                    0x06 => {
                        let reg = r.uleb()?;
                        let init = initial?;
                        s.set(reg, if reg == RBP { init.bp } else { init.ra });
                    }
                    0x07 => s.set(r.uleb()?, Saved::Undefined),
                    0x08 => s.set(r.uleb()?, Saved::Same),
                    0x09 => {
                        let reg = r.uleb()?;
                        r.uleb()?;
                        s.set(reg, Saved::Other);
                    }
                    0x0a => {
                        if *depth == STATE_STACK {
                            return None;
                        }
                        stack[*depth] = *s;
                        *depth += 1;
                    }
                    0x0b => {
                        *depth = depth.checked_sub(1)?;
                        *s = stack[*depth];
                    }
                    0x0c => {
                        s.cfa_reg = r.uleb()?;
                        s.cfa_off = r.uleb()? as i64;
                        s.cfa_expr = false;
                    }
                    0x0d => {
                        s.cfa_reg = r.uleb()?;
                        s.cfa_expr = false;
                    }
                    0x0e => s.cfa_off = r.uleb()? as i64,
                    0x0f => {
                        let n = r.uleb()?;
                        r.skip(n)?;
                        s.cfa_expr = true;
                    }
                    0x10 | 0x16 => {
                        let reg = r.uleb()?;
                        let n = r.uleb()?;
                        r.skip(n)?;
                        s.set(reg, Saved::Other);
                    }
                    0x11 => {
                        let reg = r.uleb()?;
                        let off = r.sleb()?.wrapping_mul(data_align);
                        s.set(reg, Saved::At(off));
                    }
                    0x12 => {
                        s.cfa_reg = r.uleb()?;
                        s.cfa_off = r.sleb()?.wrapping_mul(data_align);
                        s.cfa_expr = false;
                    }
                    0x13 => s.cfa_off = r.sleb()?.wrapping_mul(data_align),
                    0x14 => {
                        let reg = r.uleb()?;
                        r.uleb()?;
                        s.set(reg, Saved::Other);
                    }
                    0x15 => {
                        let reg = r.uleb()?;
                        r.sleb()?;
                        s.set(reg, Saved::Other);
                    }
                    0x2e => drop(r.uleb()?),
                    0x2f => {
                        let reg = r.uleb()?;
                        let off = factored(r.uleb()?);
                        s.set(reg, Saved::At(off.wrapping_neg()));
                    }
                    // DW_CFA_set_loc and anything unknown: libgcc's.
                    _ => return None,
                },
            }
            if let (Some(delta), Some((_, pc))) = (advance, target) {
                let next = loc.checked_add(delta.checked_mul(code_align)? as usize)?;
                if next > pc {
                    return Some(());
                }
                loc = next;
            }
        }
        Some(())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn rules_pack_and_unpack() {
            for r in [
                Rule { cfa_bp: false, cfa_off: 8, bp: SavedBp::Same, end: false },
                Rule { cfa_bp: true, cfa_off: 16, bp: SavedBp::At(-16), end: false },
                Rule { cfa_bp: false, cfa_off: 4096 + 56, bp: SavedBp::Lost, end: false },
                Rule { cfa_bp: false, cfa_off: -8, bp: SavedBp::At(i16::MIN), end: true },
            ] {
                let w = r.pack();
                assert_ne!(w & PRESENT, 0);
                assert_eq!(w & UNSUPPORTED, 0);
                assert_eq!(Rule::unpack(w), r);
            }
        }

        #[test]
        fn leb128() {
            let bytes: [u8; 7] = [0xe5, 0x8e, 0x26, 0x7f, 0x80, 0x7f, 0x02];
            let p = bytes.as_ptr() as usize;
            // SAFETY: the reader's range is `bytes`, alive below.
            let mut r = unsafe { Reader::new(p, p + bytes.len()) };
            assert_eq!(r.uleb(), Some(624_485));
            assert_eq!(r.sleb(), Some(-1));
            assert_eq!(r.sleb(), Some(-128));
            assert_eq!(r.uleb(), Some(2));
            assert_eq!(r.uleb(), None, "past the end");
            assert_eq!(r.seek(p), None, "behind the reader");
        }
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    /// Both walkers, from the same frame, `depth` calls deep.
    #[inline(never)]
    fn both(depth: usize) -> ([usize; 64], usize, [usize; 64], usize) {
        if depth > 0 {
            // Not a tail call: the frame stays on the stack.
            let r = both(depth - 1);
            core::hint::black_box(depth);
            return r;
        }
        let (mut fast, mut slow) = ([0; 64], [0; 64]);
        // The cached walker from this frame, skipping it; libgcc's through
        // capture_with, skipping capture_with and this frame.
        #[cfg(target_arch = "x86_64")]
        let nf = cfi::walk(cfi::Regs::here(), &mut fast, 1).expect("the cached walker gave up");
        #[cfg(not(target_arch = "x86_64"))]
        let nf = capture_with(&mut fast, true);
        let ns = capture_with(&mut slow, false);
        (fast, nf, slow, ns)
    }

    /// The cached walker finds the frames libgcc's does, twice over (the
    /// second time from its cache), on this thread and on a new one.
    #[test]
    fn cached_walk_agrees_with_libgcc() {
        let check = || {
            for depth in [0, 3, 20] {
                for _ in 0..2 {
                    let (fast, nf, slow, ns) = both(depth);
                    assert_eq!(nf, ns, "frame counts at depth {depth}");
                    assert!(ns > depth + 1, "only {ns} frames at depth {depth}");
                    assert_eq!(fast[..nf], slow[..ns], "at depth {depth}");
                }
            }
        };
        check();
        std::thread::spawn(check).join().unwrap();
    }

    /// A buffer shorter than the stack is filled and not overrun.
    #[test]
    fn short_buffer() {
        let mut out = [0usize; 3];
        let n = capture(&mut out);
        assert_eq!(n, 3);
        assert!(out.iter().all(|&a| a != 0));
    }
}
