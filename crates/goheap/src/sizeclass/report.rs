//! The per-class report: bytes per object, span size, objects, tail waste
//! and worst-case waste, as in the comment table of Go's `sizeclasses.go`.
//!
//! This file is shared: goheap compiles it for [`super::write_table`], and
//! `goheap-sizegen` includes it by path to write the comment table at the top
//! of the generated `table.rs`. It must therefore depend on nothing but
//! `core`.

use core::fmt;

/// Bytes in one goheap page. Kept here (instead of importing the module's
/// constant) so the generator can compile this file on its own.
const PAGE_BYTES: usize = 8192;

/// One line of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Row {
    /// Size class number (1 and up; class 0 is never reported).
    pub(crate) class: usize,
    /// Bytes per object.
    pub(crate) size: usize,
    /// Bytes per span.
    pub(crate) span_bytes: usize,
    /// Objects per span.
    pub(crate) objects: usize,
    /// Bytes left over at the end of a span after the last whole object.
    pub(crate) tail_waste: usize,
    /// The worst fraction of a span that is wasted, in hundredths of a
    /// percent (8750 means 87.50%): every object holds the smallest request
    /// that lands in this class (one byte more than the previous class's
    /// size), and the tail is unused too.
    pub(crate) max_waste_bp: usize,
}

/// The report rows of a class table, one per class from 1 on.
///
/// `sizes[c]` and `npages[c]` are the object size and span pages of class
/// `c`; entry 0 (large objects) is skipped.
pub(crate) fn rows<'a>(sizes: &'a [u16], npages: &'a [u8]) -> impl Iterator<Item = Row> + 'a {
    debug_assert_eq!(sizes.len(), npages.len());
    (1..sizes.len()).map(move |class| {
        let size = usize::from(sizes[class]);
        let prev_size = usize::from(sizes[class - 1]);
        let span_bytes = usize::from(npages[class]) * PAGE_BYTES;
        let objects = span_bytes / size;
        let tail_waste = span_bytes - objects * size;
        let worst = (size - prev_size - 1) * objects + tail_waste;
        // Round to the nearest hundredth of a percent, halves up.
        let max_waste_bp = (worst * 10_000 * 2 + span_bytes) / (2 * span_bytes);
        Row {
            class,
            size,
            span_bytes,
            objects,
            tail_waste,
            max_waste_bp,
        }
    })
}

/// Writes the report for `sizes`/`npages` (see [`rows`]), a header line and
/// one line per class, each line starting with `prefix` (`""` for a
/// terminal, `"// "` for a comment).
pub(crate) fn write_rows<W: fmt::Write + ?Sized>(
    out: &mut W,
    prefix: &str,
    sizes: &[u16],
    npages: &[u8],
) -> fmt::Result {
    writeln!(
        out,
        "{prefix}class  bytes/obj  bytes/span  objects  tail waste  max waste"
    )?;
    for row in rows(sizes, npages) {
        writeln!(
            out,
            "{prefix}{:5}  {:9}  {:10}  {:7}  {:10}  {:5}.{:02}%",
            row.class,
            row.size,
            row.span_bytes,
            row.objects,
            row.tail_waste,
            row.max_waste_bp / 100,
            row.max_waste_bp % 100,
        )?;
    }
    Ok(())
}
