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
    CLASS_TO_ALLOCNPAGES, CLASS_TO_DIVMAGIC, CLASS_TO_SIZE, SIZE_TO_CLASS128, SIZE_TO_CLASS8,
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
pub fn size_to_class(size: usize) -> usize {
    debug_assert!(size <= MAX_SMALL_SIZE, "size {size} is not a small size");
    if size <= SMALL_SIZE_MAX - 8 {
        SIZE_TO_CLASS8[size.div_ceil(SMALL_SIZE_DIV)] as usize
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

/// Writes the class table for people: one line per class with its object
/// size, span size, objects per span, tail waste (bytes after the last
/// object) and max waste (the worst share of a span lost, when every object
/// holds the smallest request of its class), the columns of the comment in
/// Go's `sizeclasses.go`. Used by `goheap sizeclasses`, not by the allocator.
pub fn write_table(out: &mut impl fmt::Write) -> fmt::Result {
    report::write_rows(out, "", &CLASS_TO_SIZE, &CLASS_TO_ALLOCNPAGES)
}
