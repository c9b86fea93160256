//! `goheap sizeclasses`: the size-class table, in the layout of the comment
//! at the top of Go's `sizeclasses.go` (written by the core crate, which
//! also generates that comment in its table source).

/// The table: class, bytes/obj, bytes/span, objects, tail waste, max waste.
pub(crate) fn table() -> String {
    let mut out = String::new();
    goheap::sizeclass::write_table(&mut out).expect("writing to a String cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_go() {
        let t = table();
        let rows: Vec<Vec<&str>> = t
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|w| {
                w.first()
                    .is_some_and(|c| c.chars().all(|ch| ch.is_ascii_digit()))
            })
            .collect();
        assert_eq!(rows.len(), 67, "{t}");
        // Go's sizeclasses.go: classes 1 and 67 (class, bytes/obj, bytes/span, objects).
        assert_eq!(rows[0][..4], ["1", "8", "8192", "1024"]);
        assert_eq!(rows[66][..4], ["67", "32768", "32768", "1"]);
    }
}
