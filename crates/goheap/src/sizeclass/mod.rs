//! Go's size classes: size → class in one table load, class → size, pages
//! and object count, and offset → object index by multiply-shift.
//!
//! See the crate docs for the overview.

use core::fmt;

mod report;
#[cfg(test)]
mod rules;
// Written by `goheap-sizegen` (see rules.rs); its layout is the generator's.
#[rustfmt::skip]
mod table;
#[cfg(test)]
mod tests;

pub use table::{
    CLASS_TO_ALLOCNPAGES, CLASS_TO_DIVMAGIC, CLASS_TO_SIZE, CLASS_TO_STARTMAGIC, SIZE_TO_CLASS128,
    SIZE_TO_CLASS8,
};

/// log2 of goheap's page size (Go's `_PageShift`).
pub const PAGE_SHIFT: u32 = 13;
/// goheap's page: 8 KiB, not the OS page.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
/// Number of entries in the class tables; class 0 means "large object".
pub const NUM_SIZE_CLASSES: usize = 68;
/// The largest size served from a size class; bigger requests get pages.
pub const MAX_SMALL_SIZE: usize = 32768;
/// Step of the first lookup table.
pub const SMALL_SIZE_DIV: usize = 8;
/// Largest size covered by the first lookup table.
pub const SMALL_SIZE_MAX: usize = 1024;
/// Step of the second lookup table.
pub const LARGE_SIZE_DIV: usize = 128;
/// The most objects any span holds (class 1: 8 KiB / 8 B).
pub const MAX_OBJS_PER_SPAN: usize = 1024;

/// The size class for a request of `size` bytes (`size <= MAX_SMALL_SIZE`).
/// Size 0 maps to class 1 (callers that need distinct zero-size objects
/// get an 8-byte one).
#[inline(always)]
pub const fn size_to_class(size: usize) -> usize {
    debug_assert!(size <= MAX_SMALL_SIZE, "not a small size");
    if size <= SMALL_SIZE_MAX - 8 {
        SIZE_TO_CLASS8[size.div_ceil(SMALL_SIZE_DIV)] as usize
    } else {
        SIZE_TO_CLASS128[(size + LARGE_SIZE_DIV - 1 - SMALL_SIZE_MAX) / LARGE_SIZE_DIV] as usize
    }
}

/// The smallest class at or above `class` whose object size is a multiple
/// of `1 << align_shift` (32 B to 8 KiB), or 0 if there is none: every
/// object of such a class is aligned, since spans are page-aligned. One
/// table load, for requests aligned above 16 bytes.
#[inline]
pub const fn aligned_class(class: usize, align_shift: u32) -> usize {
    debug_assert!(align_shift >= ALIGNED_MIN_SHIFT && align_shift <= PAGE_SHIFT);
    ALIGNED_CLASS[(align_shift - ALIGNED_MIN_SHIFT) as usize][class] as usize
}

/// Smallest alignment (as a shift) [`aligned_class`] answers for.
pub const ALIGNED_MIN_SHIFT: u32 = 5;

/// `ALIGNED_CLASS[shift - 5][class]`: see [`aligned_class`].
static ALIGNED_CLASS: [[u8; NUM_SIZE_CLASSES]; (PAGE_SHIFT - ALIGNED_MIN_SHIFT + 1) as usize] = {
    let mut t = [[0u8; NUM_SIZE_CLASSES]; (PAGE_SHIFT - ALIGNED_MIN_SHIFT + 1) as usize];
    let mut row = 0;
    while row < t.len() {
        let align = 1usize << (row as u32 + ALIGNED_MIN_SHIFT);
        // From the top down: the answer for `c` is `c` itself if aligned,
        // else the answer for `c + 1`.
        let mut c = NUM_SIZE_CLASSES - 1;
        while c >= 1 {
            t[row][c] = if CLASS_TO_SIZE[c] as usize % align == 0 {
                c as u8
            } else if c + 1 < NUM_SIZE_CLASSES {
                t[row][c + 1]
            } else {
                0
            };
            c -= 1;
        }
        row += 1;
    }
    t
};

/// The class C's `malloc(size)` takes, for `size <= MAX_SMALL_SIZE`: the
/// smallest class that holds `size` with every object aligned to 16 (8 for
/// sizes up to 8, as glibc), and, when `min_class_2` (checked builds, whose
/// freed objects hold a second word, the free marker), never the 8-byte
/// class. The same as `size_to_class` followed by those two adjustments,
/// in one table load: the C `malloc` fast path's whole size lookup.
#[inline(always)]
pub fn c_malloc_class(size: usize, min_class_2: bool) -> usize {
    debug_assert!(size <= MAX_SMALL_SIZE, "not a small size");
    // SAFETY: `size.div_ceil(8) <= MAX_SMALL_SIZE / 8`, the table's last
    // index (callers take larger sizes elsewhere; `malloc` checks first).
    unsafe { *C_MALLOC_CLASS[min_class_2 as usize].get_unchecked(size.div_ceil(SMALL_SIZE_DIV)) as usize }
}

/// [`c_malloc_class`]'s tables: one byte per 8 bytes of size, to 32 KiB (4
/// KiB each, of which a program touches the lines of the sizes it uses),
/// so the lookup is one load with no branch between the two ranges of
/// `size_to_class`.
type CMallocClass = [u8; MAX_SMALL_SIZE / SMALL_SIZE_DIV + 1];

static C_MALLOC_CLASS: [CMallocClass; 2] = [c_malloc_table(false), c_malloc_table(true)];

/// The class at or above `class` (`size_to_class` of the request) whose
/// objects are all 16-aligned when `align16` (spans are page-aligned, so a
/// class size that is a multiple of 16 is the rule), and never the 8-byte
/// class when `min_class_2`. Every class is 8-aligned; all but 8 and 24
/// bytes are 16-aligned, and the class after each of those (16, 32) is,
/// so one step is enough. The malloc front-end's rule for alignments up to
/// 16, shared by its `class_for` and the C table.
#[inline(always)]
pub const fn class_at_align16(class: usize, align16: bool, min_class_2: bool) -> usize {
    if min_class_2 && class == 1 {
        return 2;
    }
    // `class < len` spares the sized free its bounds-check panic: with
    // it, `__rust_dealloc` is small enough for callers to inline.
    if align16 && class < CLASS_TO_SIZE.len() && CLASS_TO_SIZE[class] % 16 != 0 {
        return class + 1;
    }
    class
}

/// The class `class_for` gives a layout of `size <= MAX_SMALL_SIZE` bytes
/// at an alignment of at most 16 (`align16`: above 8), in the build's
/// rule (`min_class_2` in checked builds): one load from a 4 KiB table, as
/// C's `malloc` does. Rust's sized `dealloc` computes the class on every
/// free, and [`size_to_class`]'s two tables, the branch between them and
/// the alignment step made boxed-object churn 25 % slower.
#[inline(always)]
pub fn layout_class(size: usize, align16: bool, min_class_2: bool) -> usize {
    debug_assert!(size <= MAX_SMALL_SIZE, "not a small size");
    let table = &LAYOUT_CLASS[align16 as usize][min_class_2 as usize];
    // SAFETY: `size.div_ceil(8) <= MAX_SMALL_SIZE / 8`, the last index.
    unsafe { *table.get_unchecked(size.div_ceil(SMALL_SIZE_DIV)) as usize }
}

/// [`layout_class`]'s tables, by `[align16][min_class_2]` (a program
/// touches the lines of the sizes it uses).
static LAYOUT_CLASS: [[CMallocClass; 2]; 2] = [
    [layout_table(false, false), layout_table(false, true)],
    [layout_table(true, false), layout_table(true, true)],
];

const fn layout_table(align16: bool, min_class_2: bool) -> CMallocClass {
    let mut t = [0; MAX_SMALL_SIZE / SMALL_SIZE_DIV + 1];
    let mut i = 0;
    while i < t.len() {
        t[i] = class_at_align16(size_to_class(i * SMALL_SIZE_DIV), align16, min_class_2) as u8;
        i += 1;
    }
    t
}

const fn c_malloc_table(min_class_2: bool) -> CMallocClass {
    let mut t = [0; MAX_SMALL_SIZE / SMALL_SIZE_DIV + 1];
    let mut i = 0;
    while i < t.len() {
        // Index i holds sizes 8i-7 ..= 8i: above 8 from i = 2.
        t[i] = class_at_align16(size_to_class(i * SMALL_SIZE_DIV), i >= 2, min_class_2) as u8;
        i += 1;
    }
    t
}

/// Bytes per object of class `class`.
#[inline(always)]
pub fn class_size(class: usize) -> usize {
    CLASS_TO_SIZE[class] as usize
}

/// Pages per span of class `class`.
#[inline(always)]
pub fn class_npages(class: usize) -> usize {
    CLASS_TO_ALLOCNPAGES[class] as usize
}

/// Objects per span of class `class`.
#[inline]
pub fn class_nelems(class: usize) -> usize {
    class_npages(class) * PAGE_SIZE / class_size(class)
}

/// Index of the object containing byte `offset` of a span of class `class`,
/// by multiply-shift instead of division.
#[inline(always)]
pub fn object_index(class: usize, offset: usize) -> usize {
    ObjectIndex::of(class).at(offset)
}

/// [`object_index`] for one class over many offsets, its table entry read
/// once (the central lists' loops, which the compiler does not hoist the
/// table's load out of).
#[derive(Clone, Copy)]
pub(crate) struct ObjectIndex(u64);

impl ObjectIndex {
    #[inline(always)]
    pub(crate) fn of(class: usize) -> Self {
        ObjectIndex(CLASS_TO_DIVMAGIC[class] as u64)
    }

    /// Index of the object containing byte `offset` of a span of the class.
    #[inline(always)]
    pub(crate) fn at(self, offset: usize) -> usize {
        ((offset as u64 * self.0) >> 32) as usize
    }
}

/// Whether byte `offset` of a span of class `class` starts an object: one
/// multiply and one compare (`CLASS_TO_STARTMAGIC`), for the free path,
/// whose class comes from the arena map's page records.
///
/// # Safety
///
/// `0 < class < NUM_SIZE_CLASSES`, and `offset` is below 2^32.
#[inline(always)]
pub(crate) unsafe fn is_object_start_unchecked(class: usize, offset: usize) -> bool {
    debug_assert!(class > 0 && class < NUM_SIZE_CLASSES && offset >> 32 == 0);
    // SAFETY: per the contract, in bounds.
    let magic = unsafe { *CLASS_TO_STARTMAGIC.get_unchecked(class) };
    (offset as u64).wrapping_mul(magic) < magic
}

/// Writes the class table for people: one line per class with its object
/// size, span size, objects per span, tail waste (bytes after the last
/// object) and max waste (the worst share of a span lost, when every object
/// holds the smallest request of its class), the columns of the comment in
/// Go's `sizeclasses.go`. Used by `goheap sizeclasses`, not by the allocator.
pub fn write_table(out: &mut impl fmt::Write) -> fmt::Result {
    report::write_rows(out, "", &CLASS_TO_SIZE, &CLASS_TO_ALLOCNPAGES)
}
