//! What a freed small object holds while it waits on a free list: the
//! link to the next object, encoded (safe-linking), and the free marker
//! that makes a second free of it cheap to suspect.
//!
//! See the crate docs ("What is checked") for how these fit with the
//! exact checks. In checked builds ([`CHECKED`]) a freed object holds
//!
//! ```text
//! word 0: next ^ LINK_SECRET   (safe-linking, as glibc 2.32, with a random secret)
//! word 1: FREE_MARK                                        (like glibc's tcache key)
//! ```
//!
//! A use-after-free write over word 0 without the secret decodes to an
//! address that is almost surely misaligned or outside goheap's arenas,
//! which the pop of that link reports ([`check_link`]) instead of handing
//! out memory the attacker chose. Word 1 is cleared whenever an object is
//! handed out, so a `free` that finds `FREE_MARK` there is freeing an
//! object that is already free (or, with odds of 2^-64, a live object
//! whose bytes happen to match): it takes the exact, slower check.
//!
//! Both secrets come from `getrandom` when the first span is made, before
//! any object can be freed. Unchecked builds store the plain link and no
//! marker, and every function here compiles to a load or a store.

use crate::report::fatal;
use crate::sync::atomic::{AtomicU8, AtomicUsize, Ordering::{Acquire, Relaxed, Release}};
use crate::sync::Mutex;
use crate::CHECKED;
use core::cell::Cell;

/// The secrets and the heap's address range, on one cache line: every
/// push and pop reads them.
#[repr(C, align(64))]
struct Secrets {
    /// XORed into every stored link.
    link: AtomicUsize,
    /// Written into word 1 of every freed object.
    mark: AtomicUsize,
    /// Lowest arena address, and the length of the range up to the end of
    /// the highest arena divided by 8: every valid link lies in
    /// `[lo, lo + span8 * 8)` and is 8-aligned.
    lo: AtomicUsize,
    span8: AtomicUsize,
    /// The fast path's test (see [`Guard::try_pop`]): a link with any of
    /// these bits set is not 8-aligned or lies above every arena. Only
    /// loosens, as the range grows.
    reject: AtomicUsize,
}

static SECRETS: Secrets = Secrets {
    link: AtomicUsize::new(0),
    mark: AtomicUsize::new(0),
    lo: AtomicUsize::new(usize::MAX),
    span8: AtomicUsize::new(0),
    reject: AtomicUsize::new(usize::MAX),
};

/// 0: secrets not drawn; 1: being drawn; 2: drawn (Release after both).
static DRAWN: AtomicU8 = AtomicU8::new(0);

/// Draws the secrets, once per process (later calls do nothing, or wait
/// for the thread drawing them). Called before a cache is made and when a
/// heap makes its first span, so before any object is freed.
pub(crate) fn init_secrets() {
    if !CHECKED || DRAWN.load(Acquire) == 2 {
        return;
    }
    if DRAWN.compare_exchange(0, 1, Acquire, Acquire).is_err() {
        while DRAWN.load(Acquire) != 2 {
            core::hint::spin_loop();
        }
        return;
    }
    let mut bytes = [0u8; 16];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into our buffer;
    // GRND_NONBLOCK keeps it from blocking early in boot.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), libc::GRND_NONBLOCK) };
    let (mut link, mut mark) = (
        usize::from_ne_bytes(bytes[..8].try_into().unwrap_or([0; 8])),
        usize::from_ne_bytes(bytes[8..].try_into().unwrap_or([0; 8])),
    );
    if n != 16 {
        // No entropy yet: the clock and addresses are weaker, but the
        // checks stay exact; only the cost of forging a link goes down.
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: a valid out-parameter.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        let t = (ts.tv_sec as usize).wrapping_mul(1_000_000_007) ^ ts.tv_nsec as usize;
        link = splitmix(t ^ (&bytes as *const _ as usize));
        mark = splitmix(link);
    }
    // The marker must never be 0: fresh memory and cleared words are 0;
    // nor the placeholder cache's, which has the top bit.
    mark = (mark | 1) & !(1 << (usize::BITS - 1));
    SECRETS.link.store(link, Relaxed);
    SECRETS.mark.store(mark, Relaxed);
    DRAWN.store(2, Release);
}

fn splitmix(mut z: usize) -> usize {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Serialises [`add_heap_range`]: each heap adds its arenas under its own
/// lock, and more than one heap may exist (tests make their own).
static RANGE_LOCK: Mutex<()> = Mutex::new(());

/// Records that `[base, base + len)` is arena memory: links may point
/// there. Called as an arena is added.
///
/// Readers load `lo` (Acquire), then `span8`, with no lock, so no moment
/// may show a range smaller than before: the length grows first (with
/// the old `lo` it covers the old range and more), then `lo` moves down
/// (Release: a reader that sees the new `lo` sees the new length). Two
/// plain stores in the other order once let a free on another thread see
/// the new, lower `lo` with the old length, a range that missed the top
/// arena, and report its links as corrupt.
pub(crate) fn add_heap_range(base: usize, len: usize) {
    let _g = RANGE_LOCK.lock();
    let lo = SECRETS.lo.load(Relaxed);
    let hi = if lo == usize::MAX { 0 } else { lo + SECRETS.span8.load(Relaxed) * 8 };
    let (new_lo, new_hi) = (lo.min(base), hi.max(base + len));
    SECRETS.span8.store((new_hi - new_lo) / 8, Relaxed);
    SECRETS.lo.store(new_lo, Release);
    SECRETS.reject.store(reject_mask(new_hi), Relaxed);
}

/// The bits no link into arenas ending below `hi` has: the three low ones
/// (links are 8-aligned) and those above the highest bit of `hi - 1`.
/// Null has none, so the fast path needs no test of its own for the end
/// of a list.
fn reject_mask(hi: usize) -> usize {
    let bits = usize::BITS - (hi - 1).leading_zeros();
    let below = 1usize.checked_shl(bits).map_or(usize::MAX, |b| b - 1);
    !below | 7
}

/// Reads the link stored in `obj` (no check).
///
/// # Safety
///
/// `obj` is an object on a free list (its word 0 holds a link).
#[inline(always)]
pub(crate) unsafe fn read_link(obj: *mut u8) -> *mut u8 {
    // SAFETY: per the contract.
    let stored = unsafe { obj.cast::<usize>().read() };
    if CHECKED {
        (stored ^ SECRETS.link.load(Relaxed)) as *mut u8
    } else {
        stored as *mut u8
    }
}

/// A list walk's copy of the link secret and the heap's range, read once
/// for a whole list instead of at every link (the central lists' loops):
/// every object of a list the walker was handed was allocated, so lies in
/// the range, before the copy was taken. A link the copy rejects is tested
/// again against the current range ([`check_link`]) before it is reported.
/// Not a [`Guard`]: a guard's quick test is a mask without the lower
/// bound, and the central lists keep the exact test.
#[derive(Clone, Copy)]
pub(crate) struct LinkReader {
    link: usize,
    lo: usize,
    span8: usize,
}

impl LinkReader {
    /// A copy of the current secret and range.
    #[inline(always)]
    pub(crate) fn new() -> Self {
        // Acquire on `lo` as in `check_link`: the range's other words were
        // stored before it.
        let lo = SECRETS.lo.load(Acquire);
        LinkReader {
            link: SECRETS.link.load(Relaxed),
            lo,
            span8: SECRETS.span8.load(Relaxed),
        }
    }

    /// The link stored in `obj`, checked as [`check_link`] checks it.
    ///
    /// # Safety
    ///
    /// As [`read_link`].
    #[inline(always)]
    pub(crate) unsafe fn next(&self, obj: *mut u8) -> *mut u8 {
        // SAFETY: per the contract.
        let stored = unsafe { obj.cast::<usize>().read() };
        if !CHECKED {
            return stored as *mut u8;
        }
        let next = (stored ^ self.link) as *mut u8;
        if outside_range(next, self.lo, self.span8) {
            check_link(obj, next);
        }
        next
    }
}

/// Clears the free marker of an object about to be handed out from its
/// span's fresh slots (the slot may hold a marker from an earlier life).
///
/// # Safety
///
/// `obj` is a slot of at least 16 bytes the caller is handing out.
#[inline(always)]
pub(crate) unsafe fn clear_mark(obj: *mut u8) {
    if CHECKED {
        // SAFETY: per the contract.
        unsafe { obj.cast::<usize>().add(1).write(0) };
    }
}

/// Whether `obj` carries the free marker: it is on a free list, or back
/// in its span after being freed, unless its owner wrote the marker's
/// value itself. Always false in unchecked builds.
///
/// # Safety
///
/// `obj` is the start of a slot of at least 16 bytes in an in-use span.
#[inline(always)]
pub(crate) unsafe fn is_marked(obj: *const u8) -> bool {
    // SAFETY: forwarded contract.
    unsafe { has_mark(obj, SECRETS.mark.load(Relaxed)) }
}

/// [`is_marked`] with the marker already read (a cache's copy, from
/// [`Guard::mark`]).
///
/// # Safety
///
/// As [`is_marked`].
#[inline(always)]
pub(crate) unsafe fn has_mark(obj: *const u8, mark: usize) -> bool {
    // SAFETY: per the contract, word 1 is readable.
    CHECKED && unsafe { obj.cast::<usize>().add(1).read() } == mark
}

/// Checks a link read from `obj`: null (end of list) or an 8-aligned
/// address inside goheap's arenas. Reports and aborts otherwise: a
/// use-after-free write over `obj` would otherwise steer an allocation to
/// an address of the writer's choice.
#[inline(always)]
pub(crate) fn check_link(obj: *mut u8, next: *mut u8) {
    if !CHECKED {
        return;
    }
    if outside_range(next, SECRETS.lo.load(Acquire), SECRETS.span8.load(Relaxed)) {
        corrupt_link(obj, next);
    }
}

/// Whether `next` is neither null nor an 8-aligned address in
/// `[lo, lo + span8 * 8)`. One compare for both rules: misalignment
/// rotates the low bits to the top, far above the range length.
#[inline(always)]
fn outside_range(next: *mut u8, lo: usize, span8: usize) -> bool {
    (next as usize).wrapping_sub(lo).rotate_right(3) >= span8 && !next.is_null()
}

#[cold]
#[inline(never)]
fn corrupt_link(obj: *mut u8, next: *mut u8) -> ! {
    fatal!(
        "corrupt free list: the freed object at {obj:p} links to {next:p}, which is not a goheap \
         object (a write to freed memory: use after free or heap overflow)"
    )
}

/// [`Guard::placeholder`]'s marker: not the process's (which is drawn
/// with its top bit clear), and unlikely in a live object's second word.
const PLACEHOLDER_MARK: usize = 0xb5c1_8e3a_9d47_f26b;
const _: () = assert!(PLACEHOLDER_MARK >> (usize::BITS - 1) == 1);

/// A thread cache's copy of the secrets and of the link test's mask, on a
/// line of the cache it touches anyway: the fast paths read no global
/// (which a shared library reaches through the GOT). The secrets never
/// change once drawn; the heap's range only grows, so a link the copy's
/// mask rejects is checked again against the global range (and the copy
/// refreshed) before it is reported.
#[derive(Debug)]
pub(crate) struct Guard {
    link: Cell<usize>,
    mark: Cell<usize>,
    reject: Cell<usize>,
}

impl Guard {
    /// An empty copy (fill it with [`refresh`](Self::refresh)).
    pub(crate) const fn new() -> Self {
        Guard {
            link: Cell::new(0),
            mark: Cell::new(0),
            reject: Cell::new(usize::MAX),
        }
    }

    /// The copy of the placeholder cache (`tls::PLACEHOLDER`), which
    /// never links an object: a marker no freed object holds, so that a
    /// free through the placeholder does not take the exact double-free
    /// check for every live object (whose second word is usually 0); the
    /// placeholder's slow path tests the process's marker instead.
    pub(crate) const fn placeholder() -> Self {
        Guard {
            link: Cell::new(0),
            mark: Cell::new(PLACEHOLDER_MARK),
            reject: Cell::new(usize::MAX),
        }
    }

    /// Copies the process's secrets (drawing them if nobody has yet) and
    /// the link test's mask for the heap's current range.
    pub(crate) fn refresh(&self) {
        init_secrets();
        // `init_secrets` returned after an Acquire load of DRAWN == 2 (or
        // drew them itself): both secrets are visible.
        self.link.set(SECRETS.link.load(Relaxed));
        self.mark.set(SECRETS.mark.load(Relaxed));
        self.reject.set(SECRETS.reject.load(Relaxed));
    }

    /// Links `obj` in front of `next` and marks it free with `mark`, this
    /// copy's marker ([`mark`](Self::mark)), passed in: the free that
    /// tested the object's marker against it writes it without a second
    /// load.
    ///
    /// # Safety
    ///
    /// `obj` is a free object of at least 16 bytes (8 in unchecked builds)
    /// that the caller owns; `mark` is this copy's marker.
    #[inline(always)]
    pub(crate) unsafe fn push(&self, obj: *mut u8, next: *mut u8, mark: usize) {
        debug_assert!(!CHECKED || mark == self.mark.get());
        // SAFETY: per the contract, both words are ours to write.
        unsafe {
            if CHECKED {
                obj.cast::<usize>().write(next as usize ^ self.link.get());
                obj.cast::<usize>().add(1).write(mark);
            } else {
                obj.cast::<*mut u8>().write(next);
            }
        }
    }

    /// Takes `obj` off a list for handing out: returns its link, checked
    /// (see [`check_link`]), and clears its free marker.
    ///
    /// # Safety
    ///
    /// `obj` is the head of a free list the caller owns.
    #[inline(always)]
    pub(crate) unsafe fn pop(&self, obj: *mut u8) -> *mut u8 {
        // SAFETY: per the contract.
        unsafe { self.try_pop(obj) }.unwrap_or_else(|| self.pop_recheck(obj))
    }

    /// [`pop`](Self::pop) for the owner's fast path: the link of `obj`,
    /// with its free marker cleared, or `None` (nothing changed) when the
    /// link fails this copy's test, which `pop` then decides.
    ///
    /// The test is one mask ([`reject_mask`]): the link must be 8-aligned
    /// and below the end of the highest arena, which null is too. It does
    /// not check the lower bound, which the exact test of `pop`'s other
    /// path and of the central lists (`check_link`) does: a corrupt link
    /// still has to decode, without the secret, to an aligned address
    /// under the arenas' top to pass here (with arenas below 2^40, as they
    /// are placed, a random word does so once in 2^27), and the stack,
    /// shared libraries and a position-independent program's own data all
    /// lie above. The exact test cost 8 instructions more per `malloc`
    /// (the lower bound, and a conditional move to let null through).
    ///
    /// # Safety
    ///
    /// As [`pop`](Self::pop).
    #[inline(always)]
    pub(crate) unsafe fn try_pop(&self, obj: *mut u8) -> Option<*mut u8> {
        // SAFETY: per the contract.
        unsafe {
            if !CHECKED {
                return Some(obj.cast::<*mut u8>().read());
            }
            let next = self.decode(obj);
            // A null link (the list's last object) passes the mask, without
            // a branch of its own: it comes as often as the program makes
            // it, so such a branch mispredicts (a quarter of `tight`'s pops
            // did).
            if next as usize & self.reject.get() != 0 {
                return None;
            }
            obj.cast::<usize>().add(1).write(0);
            Some(next)
        }
    }

    /// The link `obj` holds, decoded (checked builds).
    ///
    /// # Safety
    ///
    /// As [`pop`](Self::pop).
    #[inline(always)]
    unsafe fn decode(&self, obj: *mut u8) -> *mut u8 {
        // SAFETY: per the contract, word 0 is readable.
        (unsafe { obj.cast::<usize>().read() } ^ self.link.get()) as *mut u8
    }

    /// [`pop`](Self::pop) of a link this copy's mask rejects: the heap
    /// may have grown since, so the link is checked against the process's
    /// exact range (a report if outside it), the copy refreshed, and the
    /// pop finished.
    #[cold]
    #[inline(never)]
    fn pop_recheck(&self, obj: *mut u8) -> *mut u8 {
        // SAFETY: `obj` is the list head `pop` was given.
        let next = unsafe { self.decode(obj) };
        check_link(obj, next);
        self.refresh();
        // SAFETY: as above; word 1 is ours to clear.
        unsafe { obj.cast::<usize>().add(1).write(0) };
        next
    }

    /// This copy's free marker (see [`push`](Self::push)).
    #[inline(always)]
    pub(crate) fn mark(&self) -> usize {
        self.mark.get()
    }

}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path's mask passes null and every 8-aligned address below
    /// the arenas' top, and rejects misaligned links and addresses above
    /// it (the stack's, a shared library's) for the placements goheap
    /// uses (arenas from `0xc0 << 32`) and for one anywhere in the space.
    #[test]
    fn reject_mask_passes_aligned_links_below_the_top_only() {
        let passes = |hi: usize, link: usize| link & reject_mask(hi) == 0;
        let first = 0xc0usize << 32;
        let hi = first + (64 << 20);
        assert!(passes(hi, 0), "null ends a list");
        for link in [first, first + 16, hi - 8, hi - 4096] {
            assert!(passes(hi, link), "{link:#x} is inside the arenas");
        }
        for link in [first + 4, first + 1, hi - 12] {
            assert!(!passes(hi, link), "{link:#x} is misaligned");
        }
        for link in [1usize << 40, 0x7ffd_1234_5670, 0x7f12_3456_7000, 0x5555_5555_4000] {
            assert!(!passes(hi, link), "{link:#x} is above every arena");
        }
        // The top of the 47-bit user space: only alignment is left to test.
        let top = 1usize << 47;
        assert!(passes(top, top - 8) && !passes(top, top - 7));
        assert!(!passes(top, top));
        // The mask only loosens as the range grows.
        assert_eq!(reject_mask(hi) & reject_mask(hi + (1 << 40)), reject_mask(hi + (1 << 40)));
    }
}
