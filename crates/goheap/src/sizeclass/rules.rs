//! The size-class generator: Go's rules for choosing size classes, applied
//! from scratch, and the text of `table.rs` that records the result.
//!
//! This file is shared: `goheap-sizegen` includes it by path and writes
//! [`generate`]'s text to `table.rs`; goheap compiles it under `cfg(test)`
//! so a test can regenerate the text and compare it with the checked-in
//! file. Besides `std` it uses only its sibling `report` module.
//!
//! The rules (Go's `mksizeclasses.go`):
//!
//! 1. Candidate sizes run from 8 B to 32 KiB in steps of an alignment that
//!    grows at each power of two: 8 B below 32 B, 16 B from 32 B, an eighth
//!    of the size from 128 B (so 16, 32, … 128 B), and 256 B from 2 KiB.
//! 2. Each candidate gets the fewest 8 KiB pages whose span leaves at most
//!    an eighth (12.5%) of itself unused after the last whole object.
//! 3. A candidate that needs the same pages and fits the same number of
//!    objects as the class before it replaces that class's size instead of
//!    starting a new class (the larger size costs nothing).
//! 4. Finally each class grows to the largest multiple of 128 B that still
//!    fits the same number of objects in its span (128 B keeps the
//!    128-byte-step lookup table exact).
//!
//! That yields 67 classes plus class 0 for large objects. Offsets within a
//! span are divided by the object size with a multiply and shift by
//! `u32::MAX / size + 1`; the generator checks that this is exact for every
//! offset of every span and fails rather than write a wrong table.

use core::fmt::Write as _;

use super::report;

/// log2 of the page size.
pub(crate) const PAGE_SHIFT: u32 = 13;
/// goheap's page: 8 KiB.
pub(crate) const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
/// The smallest object and the first alignment.
pub(crate) const MIN_ALIGN: usize = 8;
/// The largest size served by a size class.
pub(crate) const MAX_SMALL_SIZE: usize = 32 << 10;
/// Step of the first size → class table.
pub(crate) const SMALL_SIZE_DIV: usize = 8;
/// Largest size covered by the first size → class table.
pub(crate) const SMALL_SIZE_MAX: usize = 1024;
/// Step of the second size → class table.
pub(crate) const LARGE_SIZE_DIV: usize = 128;
/// How many classes Go's rules give (class 0 included).
pub(crate) const NUM_SIZE_CLASSES: usize = 68;

/// One size class as the rules produce it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Class {
    /// Bytes per object (0 for class 0).
    size: usize,
    /// Pages per span (0 for class 0).
    npages: usize,
}

impl Class {
    fn span_bytes(self) -> usize {
        self.npages * PAGE_SIZE
    }

    fn objects(self) -> usize {
        self.span_bytes() / self.size
    }
}

/// The alignment of the candidates from `size` on, when `size` is a power
/// of two (rule 1); `current` is kept below 32 B.
fn alignment_at(size: usize, current: usize) -> usize {
    if size >= 2048 {
        256
    } else if size >= 128 {
        size / 8
    } else if size >= 32 {
        16
    } else {
        current
    }
}

/// The fewest pages whose span wastes at most an eighth of itself at the
/// tail when cut into `size`-byte objects (rule 2).
fn span_pages(size: usize) -> usize {
    let mut span = PAGE_SIZE;
    while span % size > span / 8 {
        span += PAGE_SIZE;
    }
    span / PAGE_SIZE
}

/// The classes by Go's rules, class 0 (large objects) first.
fn make_classes() -> Vec<Class> {
    let mut classes = vec![Class { size: 0, npages: 0 }];
    let mut align = MIN_ALIGN;
    let mut size = MIN_ALIGN;
    while size <= MAX_SMALL_SIZE {
        if size.is_power_of_two() {
            align = alignment_at(size, align);
        }
        let candidate = Class {
            size,
            npages: span_pages(size),
        };
        match classes.last_mut() {
            // Rule 3: same span, same count: the bigger size is free.
            Some(last)
                if last.size != 0
                    && last.npages == candidate.npages
                    && last.objects() == candidate.objects() =>
            {
                last.size = size;
            }
            _ => classes.push(candidate),
        }
        size += align;
    }
    // Rule 4: stretch each class to fill its span, in 128-byte steps.
    for class in &mut classes[1..] {
        let stretched = (class.span_bytes() / class.objects()) & !(LARGE_SIZE_DIV - 1);
        class.size = class.size.max(stretched);
    }
    classes
}

/// The multiply-shift constant for dividing by `size`:
/// `(offset * magic) >> 32 == offset / size` within a span.
fn divmagic(size: usize) -> u32 {
    match u32::try_from(size) {
        Ok(0) | Err(_) => 0,
        Ok(size) => u32::MAX / size + 1,
    }
}

/// The divisibility constant for `size` (Lemire, Kaser and Kurz, "Faster
/// remainder by direct computation", 2019): `ceil(2^64 / size)`, so that
/// for any offset below 2^32, `offset * magic mod 2^64 < magic` exactly
/// when `size` divides `offset`. One multiply and one compare tell a free
/// whether a pointer starts an object, without the quotient.
fn startmagic(size: usize) -> u64 {
    match u64::try_from(size) {
        Ok(0) | Err(_) => 0,
        Ok(size) => u64::MAX / size + 1,
    }
}

/// Checks by brute force, at every offset `0..=span bytes` of every class,
/// that [`divmagic`] divides exactly and [`startmagic`] tells object
/// starts exactly.
fn check_magics(classes: &[Class]) -> Result<(), String> {
    for (class, c) in classes.iter().enumerate().skip(1) {
        let div = u64::from(divmagic(c.size));
        let start = startmagic(c.size);
        for offset in 0..=c.span_bytes() {
            let got = (offset as u64 * div) >> 32;
            if got != (offset / c.size) as u64 {
                return Err(format!(
                    "class {class} (size {}): divmagic {div} gives {got} for offset \
                     {offset}, want {}",
                    c.size,
                    offset / c.size
                ));
            }
            let says_start = (offset as u64).wrapping_mul(start) < start;
            if says_start != (offset % c.size == 0) {
                return Err(format!(
                    "class {class} (size {}): startmagic {start} says {says_start} for offset \
                     {offset}",
                    c.size
                ));
            }
        }
    }
    Ok(())
}

/// Checks the shape of the table: the expected count, sizes that fit the
/// table types, strictly increasing sizes and at most 12.5% tail waste.
fn check_classes(classes: &[Class]) -> Result<(), String> {
    if classes.len() != NUM_SIZE_CLASSES {
        return Err(format!(
            "the rules gave {} classes, expected {NUM_SIZE_CLASSES}",
            classes.len()
        ));
    }
    for (class, pair) in classes.windows(2).enumerate() {
        let c = pair[1];
        if c.size <= pair[0].size || c.size > MAX_SMALL_SIZE || c.npages > usize::from(u8::MAX) {
            return Err(format!(
                "class {} is out of order or range: {c:?}",
                class + 1
            ));
        }
        if c.span_bytes() % c.size > c.span_bytes() / 8 {
            return Err(format!("class {} wastes over 12.5%: {c:?}", class + 1));
        }
    }
    Ok(())
}

/// The smallest class of at least `size` bytes (class 1 for size 0).
fn class_for(classes: &[Class], size: usize) -> usize {
    (1..classes.len())
        .find(|&c| classes[c].size >= size)
        .expect("size is at most MAX_SMALL_SIZE")
}

/// Writes `name`, a Rust array of `values`, `per_line` to a line.
fn write_array(
    out: &mut String,
    doc: &str,
    name: &str,
    ty: &str,
    values: &[usize],
    per_line: usize,
) -> core::fmt::Result {
    let width = values
        .iter()
        .map(|v| v.to_string().len())
        .max()
        .unwrap_or(1);
    writeln!(out)?;
    for line in doc.lines() {
        writeln!(out, "///{}{line}", if line.is_empty() { "" } else { " " })?;
    }
    writeln!(out, "pub static {name}: [{ty}; {}] = [", values.len())?;
    for chunk in values.chunks(per_line) {
        out.push_str("   ");
        for v in chunk {
            write!(out, " {v:>width$},")?;
        }
        out.push('\n');
    }
    writeln!(out, "];")
}

/// The full text of `table.rs`, or why the rules gave a table that must not
/// be written.
pub(crate) fn generate() -> Result<String, String> {
    let classes = make_classes();
    check_classes(&classes)?;
    check_magics(&classes)?;
    render(&classes).map_err(|e| format!("formatting failed: {e}"))
}

fn render(classes: &[Class]) -> Result<String, core::fmt::Error> {
    let sizes: Vec<usize> = classes.iter().map(|c| c.size).collect();
    let npages: Vec<usize> = classes.iter().map(|c| c.npages).collect();
    let magics: Vec<usize> = classes.iter().map(|c| divmagic(c.size) as usize).collect();
    let startmagics: Vec<usize> = classes
        .iter()
        .map(|c| startmagic(c.size) as usize)
        .collect();
    let class8: Vec<usize> = (0..=SMALL_SIZE_MAX / SMALL_SIZE_DIV)
        .map(|i| class_for(classes, i * SMALL_SIZE_DIV))
        .collect();
    let class128: Vec<usize> = (0..=(MAX_SMALL_SIZE - SMALL_SIZE_MAX) / LARGE_SIZE_DIV)
        .map(|i| class_for(classes, SMALL_SIZE_MAX + i * LARGE_SIZE_DIV))
        .collect();

    let mut out = String::new();
    out.push_str(
        "// @generated by goheap-sizegen; do not edit.\n\
         // Regenerate with `cargo run -p goheap-sizegen`; the rules are in rules.rs.\n\
         // The sizeclass tests fail while this file differs from its output.\n\
         //! Go's size classes, generated from Go's rules.\n\
         \n",
    );
    let sizes16: Vec<u16> = sizes.iter().map(|&s| s as u16).collect();
    let npages8: Vec<u8> = npages.iter().map(|&n| n as u8).collect();
    report::write_rows(&mut out, "// ", &sizes16, &npages8)?;

    write_array(
        &mut out,
        "Bytes per object of each class (class 0 = large objects).",
        "CLASS_TO_SIZE",
        "u16",
        &sizes,
        12,
    )?;
    write_array(
        &mut out,
        "Pages (8 KiB) per span of each class.",
        "CLASS_TO_ALLOCNPAGES",
        "u8",
        &npages,
        20,
    )?;
    write_array(
        &mut out,
        "`u32::MAX / size + 1` for each class (0 for class 0): for every offset\n\
         in a span, `(offset * magic) >> 32 == offset / size` (checked by the\n\
         generator for every offset of every class).",
        "CLASS_TO_DIVMAGIC",
        "u32",
        &magics,
        6,
    )?;
    write_array(
        &mut out,
        "`u64::MAX / size + 1` (`ceil(2^64 / size)`) for each class (0 for class\n\
         0): for every offset in a span, `offset * magic` wrapped to 64 bits is\n\
         below `magic` exactly when the offset starts an object (checked by the\n\
         generator for every offset of every class).",
        "CLASS_TO_STARTMAGIC",
        "u64",
        &startmagics,
        4,
    )?;
    write_array(
        &mut out,
        "Class of the sizes `8 * i - 7 ..= 8 * i` (index 0: size 0 gets class 1,\n\
         where Go's table has 0), for sizes up to 1024 B.",
        "SIZE_TO_CLASS8",
        "u8",
        &class8,
        16,
    )?;
    write_array(
        &mut out,
        "Class of the sizes `1024 + 128 * i - 127 ..= 1024 + 128 * i`, for sizes\n\
         from 1024 B to 32 KiB.",
        "SIZE_TO_CLASS128",
        "u8",
        &class128,
        16,
    )?;
    Ok(out)
}
