//! `goheap sizeclasses`: the size-class table, in the layout of the comment
//! at the top of Go's `sizeclasses.go`.

use std::fmt::Write;

use goheap::sizeclass::{class_nelems, class_npages, class_size, NUM_SIZE_CLASSES, PAGE_SIZE};

/// The table: class, bytes/obj, bytes/span, objects, tail waste, max waste.
///
/// Tail waste is the end of a span too small for one more object; max waste
/// is the worst case of internal fragmentation: every object one byte bigger
/// than the previous class, plus the tail, as a share of the span.
pub(crate) fn table() -> String {
    let mut out = String::from("class  bytes/obj  bytes/span  objects  tail waste  max waste\n");
    for c in 1..NUM_SIZE_CLASSES {
        let size = class_size(c);
        let span = class_npages(c) * PAGE_SIZE;
        let objects = class_nelems(c);
        let tail = span - objects * size;
        let prev = class_size(c - 1);
        let max_waste = ((size - prev - 1) * objects + tail) as f64 / span as f64 * 100.0;
        let _ = writeln!(
            out,
            "{c:5}  {size:9}  {span:10}  {objects:7}  {tail:10}  {max_waste:8.2}%"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_go() {
        let t = table();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), NUM_SIZE_CLASSES);
        // Go's sizeclasses.go: class 1 and class 67.
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["1", "8", "8192", "1024", "0", "87.50%"]
        );
        assert_eq!(
            lines[67].split_whitespace().collect::<Vec<_>>(),
            ["67", "32768", "32768", "1", "0", "12.50%"]
        );
    }
}
