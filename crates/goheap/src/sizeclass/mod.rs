//! Go's size classes: size → class in one table load, class → size, pages
//! and object count, and offset → object index by multiply-shift.
//!
//! See the crate docs for the overview.

mod table;

pub use table::{CLASS_TO_ALLOCNPAGES, CLASS_TO_SIZE};

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

const fn build_class8() -> [u8; SMALL_SIZE_MAX / SMALL_SIZE_DIV + 1] {
    let mut t = [0u8; SMALL_SIZE_MAX / SMALL_SIZE_DIV + 1];
    let mut i = 0;
    let mut c = 1;
    while i < t.len() {
        let size = i * SMALL_SIZE_DIV;
        while (CLASS_TO_SIZE[c] as usize) < size {
            c += 1;
        }
        t[i] = c as u8;
        i += 1;
    }
    t
}

const fn build_class128() -> [u8; (MAX_SMALL_SIZE - SMALL_SIZE_MAX) / LARGE_SIZE_DIV + 1] {
    let mut t = [0u8; (MAX_SMALL_SIZE - SMALL_SIZE_MAX) / LARGE_SIZE_DIV + 1];
    let mut i = 0;
    let mut c = 1;
    while i < t.len() {
        let size = SMALL_SIZE_MAX + i * LARGE_SIZE_DIV;
        while (CLASS_TO_SIZE[c] as usize) < size {
            c += 1;
        }
        t[i] = c as u8;
        i += 1;
    }
    t
}

const fn build_divmagic() -> [u32; NUM_SIZE_CLASSES] {
    let mut t = [0u32; NUM_SIZE_CLASSES];
    let mut c = 1;
    while c < NUM_SIZE_CLASSES {
        t[c] = (u32::MAX / CLASS_TO_SIZE[c] as u32) + 1;
        c += 1;
    }
    t
}

/// Class of sizes in 8-byte steps up to 1024 B (`(size + 7) / 8`).
pub static SIZE_TO_CLASS8: [u8; SMALL_SIZE_MAX / SMALL_SIZE_DIV + 1] = build_class8();
/// Class of sizes in 128-byte steps from 1024 B to 32 KiB.
pub static SIZE_TO_CLASS128: [u8; (MAX_SMALL_SIZE - SMALL_SIZE_MAX) / LARGE_SIZE_DIV + 1] =
    build_class128();
/// `2^32 / size` rounded up: `(offset * magic) >> 32 == offset / size` for
/// every offset inside a span of the class.
pub static CLASS_TO_DIVMAGIC: [u32; NUM_SIZE_CLASSES] = build_divmagic();

/// The size class for a request of `size` bytes (`size <= MAX_SMALL_SIZE`).
/// Size 0 maps to class 1 (callers that need distinct zero-size objects
/// get an 8-byte one).
#[inline(always)]
pub fn size_to_class(size: usize) -> usize {
    debug_assert!(size <= MAX_SMALL_SIZE, "size {size} is not a small size");
    if size <= SMALL_SIZE_MAX - 8 {
        SIZE_TO_CLASS8[(size + SMALL_SIZE_DIV - 1) / SMALL_SIZE_DIV] as usize
    } else {
        SIZE_TO_CLASS128[(size + LARGE_SIZE_DIV - 1 - SMALL_SIZE_MAX) / LARGE_SIZE_DIV] as usize
    }
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
    ((offset as u64 * CLASS_TO_DIVMAGIC[class] as u64) >> 32) as usize
}
