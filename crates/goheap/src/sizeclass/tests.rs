//! Size-class tests: the table against Go's published one, the lookups by
//! brute force, and the checked-in table against its generator.

use super::report::{self, Row};
use super::*;

/// Go's size classes as published in the comment of Go's
/// `internal/runtime/gc/sizeclasses.go` (typed in from there, not from our
/// generator): class, bytes/obj, bytes/span, objects, tail waste and max
/// waste in hundredths of a percent.
const GO_TABLE: [(usize, usize, usize, usize, usize, usize); 67] = [
    (1, 8, 8192, 1024, 0, 8750),
    (2, 16, 8192, 512, 0, 4375),
    (3, 24, 8192, 341, 8, 2924),
    (4, 32, 8192, 256, 0, 2188),
    (5, 48, 8192, 170, 32, 3152),
    (6, 64, 8192, 128, 0, 2344),
    (7, 80, 8192, 102, 32, 1907),
    (8, 96, 8192, 85, 32, 1595),
    (9, 112, 8192, 73, 16, 1356),
    (10, 128, 8192, 64, 0, 1172),
    (11, 144, 8192, 56, 128, 1182),
    (12, 160, 8192, 51, 32, 973),
    (13, 176, 8192, 46, 96, 959),
    (14, 192, 8192, 42, 128, 925),
    (15, 208, 8192, 39, 80, 812),
    (16, 224, 8192, 36, 128, 815),
    (17, 240, 8192, 34, 32, 662),
    (18, 256, 8192, 32, 0, 586),
    (19, 288, 8192, 28, 128, 1216),
    (20, 320, 8192, 25, 192, 1180),
    (21, 352, 8192, 23, 96, 988),
    (22, 384, 8192, 21, 128, 951),
    (23, 416, 8192, 19, 288, 1071),
    (24, 448, 8192, 18, 128, 837),
    (25, 480, 8192, 17, 32, 682),
    (26, 512, 8192, 16, 0, 605),
    (27, 576, 8192, 14, 128, 1233),
    (28, 640, 8192, 12, 512, 1548),
    (29, 704, 8192, 11, 448, 1393),
    (30, 768, 8192, 10, 512, 1394),
    (31, 896, 8192, 9, 128, 1552),
    (32, 1024, 8192, 8, 0, 1240),
    (33, 1152, 8192, 7, 128, 1241),
    (34, 1280, 8192, 6, 512, 1555),
    (35, 1408, 16384, 11, 896, 1400),
    (36, 1536, 8192, 5, 512, 1400),
    (37, 1792, 16384, 9, 256, 1557),
    (38, 2048, 8192, 4, 0, 1245),
    (39, 2304, 16384, 7, 256, 1246),
    (40, 2688, 8192, 3, 128, 1559),
    (41, 3072, 24576, 8, 0, 1247),
    (42, 3200, 16384, 5, 384, 622),
    (43, 3456, 24576, 7, 384, 883),
    (44, 4096, 8192, 2, 0, 1560),
    (45, 4864, 24576, 5, 256, 1665),
    (46, 5376, 16384, 3, 256, 1092),
    (47, 6144, 24576, 4, 0, 1248),
    (48, 6528, 32768, 5, 128, 623),
    (49, 6784, 40960, 6, 256, 436),
    (50, 6912, 49152, 7, 768, 337),
    (51, 8192, 8192, 1, 0, 1561),
    (52, 9472, 57344, 6, 512, 1428),
    (53, 9728, 49152, 5, 512, 364),
    (54, 10240, 40960, 4, 0, 499),
    (55, 10880, 32768, 3, 128, 624),
    (56, 12288, 24576, 2, 0, 1145),
    (57, 13568, 40960, 3, 256, 999),
    (58, 14336, 57344, 4, 0, 535),
    (59, 16384, 16384, 1, 0, 1249),
    (60, 18432, 73728, 4, 0, 1111),
    (61, 19072, 57344, 3, 128, 357),
    (62, 20480, 40960, 2, 0, 687),
    (63, 21760, 65536, 3, 256, 625),
    (64, 24576, 24576, 1, 0, 1145),
    (65, 27264, 81920, 3, 128, 1000),
    (66, 28672, 57344, 2, 0, 491),
    (67, 32768, 32768, 1, 0, 1250),
];

fn spans() -> impl Iterator<Item = (usize, usize, usize)> {
    (1..NUM_SIZE_CLASSES).map(|c| (c, class_size(c), class_npages(c) * PAGE_SIZE))
}

#[test]
fn matches_gos_published_table() {
    assert_eq!(CLASS_TO_SIZE.len(), NUM_SIZE_CLASSES);
    assert_eq!(CLASS_TO_ALLOCNPAGES.len(), NUM_SIZE_CLASSES);
    assert_eq!(
        (class_size(0), class_npages(0)),
        (0, 0),
        "class 0 is large objects"
    );
    let rows: Vec<Row> = report::rows(&CLASS_TO_SIZE, &CLASS_TO_ALLOCNPAGES).collect();
    assert_eq!(rows.len(), GO_TABLE.len());
    for (&(class, size, span, objects, tail, max_waste), row) in GO_TABLE.iter().zip(&rows) {
        assert_eq!(class_size(class), size, "class {class} size");
        assert_eq!(class_npages(class) * PAGE_SIZE, span, "class {class} span");
        assert_eq!(class_nelems(class), objects, "class {class} objects");
        let want = Row {
            class,
            size,
            span_bytes: span,
            objects,
            tail_waste: tail,
            max_waste_bp: max_waste,
        };
        assert_eq!(*row, want, "class {class} report row");
    }
}

#[test]
fn constants_agree_with_generator_and_table() {
    assert_eq!(PAGE_SHIFT, rules::PAGE_SHIFT);
    assert_eq!(PAGE_SIZE, rules::PAGE_SIZE);
    assert_eq!(NUM_SIZE_CLASSES, rules::NUM_SIZE_CLASSES);
    assert_eq!(MAX_SMALL_SIZE, rules::MAX_SMALL_SIZE);
    assert_eq!(SMALL_SIZE_DIV, rules::SMALL_SIZE_DIV);
    assert_eq!(SMALL_SIZE_MAX, rules::SMALL_SIZE_MAX);
    assert_eq!(LARGE_SIZE_DIV, rules::LARGE_SIZE_DIV);
    assert_eq!(class_size(NUM_SIZE_CLASSES - 1), MAX_SMALL_SIZE);
    let most = (1..NUM_SIZE_CLASSES).map(class_nelems).max();
    assert_eq!(most, Some(MAX_OBJS_PER_SPAN));
}

#[test]
// Every size to 32 KiB against a linear search (a million steps): over ten
// minutes under Miri, and it checks arithmetic only, which Miri adds
// nothing to.
#[cfg_attr(miri, ignore)]
fn size_to_class_is_smallest_fit() {
    assert_eq!(size_to_class(0), 1, "size 0 gets the 8-byte class");
    for size in 0..=MAX_SMALL_SIZE {
        let want = (1..NUM_SIZE_CLASSES)
            .find(|&c| class_size(c) >= size)
            .unwrap();
        assert_eq!(size_to_class(size), want, "size {size}");
    }
}

#[test]
// Every offset of every class's span (two million divisions): four and a
// half minutes under Miri, for arithmetic only.
#[cfg_attr(miri, ignore)]
fn object_index_divides_exactly() {
    for (class, size, span) in spans() {
        assert_eq!(
            CLASS_TO_DIVMAGIC[class],
            u32::MAX / size as u32 + 1,
            "class {class} divmagic"
        );
        for offset in 0..=span {
            assert_eq!(
                object_index(class, offset),
                offset / size,
                "class {class}, offset {offset}"
            );
        }
    }
}

#[test]
fn tail_waste_at_most_an_eighth() {
    // Go's rule: the bytes after the last whole object are at most 1/8 of
    // the span.
    for (class, size, span) in spans() {
        assert!(span % size <= span / 8, "class {class}: {span} % {size}");
    }
}

#[test]
fn write_table_matches_generated_comment() {
    let mut text = String::new();
    write_table(&mut text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), NUM_SIZE_CLASSES, "header + one line per class");
    let table = include_str!("table.rs");
    for line in lines {
        assert!(
            table.contains(&format!("// {line}\n")),
            "{line:?} is not in table.rs's comment"
        );
    }
}

/// The "check-generated" test: `table.rs` is exactly what the generator
/// writes today.
#[test]
// The generator checks every offset of every span too (two million
// divisions): over five minutes under Miri, for arithmetic only.
#[cfg_attr(miri, ignore)]
fn table_rs_is_generated() {
    let want = rules::generate().expect("the generator's checks pass");
    let have = include_str!("table.rs").replace("\r\n", "\n");
    if have != want {
        let first = have
            .lines()
            .zip(want.lines())
            .position(|(h, w)| h != w)
            .unwrap_or(have.lines().count().min(want.lines().count()));
        panic!(
            "sizeclass/table.rs is stale from line {}: run `cargo run -p goheap-sizegen`\n\
             have: {:?}\nwant: {:?}",
            first + 1,
            have.lines().nth(first),
            want.lines().nth(first),
        );
    }
}
