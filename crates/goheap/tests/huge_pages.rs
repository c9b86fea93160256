//! Transparent huge pages (`GOHEAP_HUGE_PAGES=1`), as the kernel reports
//! them: a large dense heap gets them (`AnonHugePages` in
//! `/proc/self/smaps_rollup`), a small heap does not, nor zeroed buffers
//! used sparsely, nor any heap with `GOHEAP_HUGE_PAGES=0`; memory freed from huge pages still goes back to
//! the OS, and huge pages released in part are hinted back to small pages.
//!
//! Each case runs in a child process (the heap and its options are the
//! process's), which prints what it measured. The checks need the kernel's
//! THP mode to be `madvise`, where only memory goheap hints gets huge pages:
//! under `always` or `never` the cases are skipped, with a note.

use std::process::Command;

#[global_allocator]
static GLOBAL: goheap::GoHeap = goheap::GoHeap;

const MIB: usize = 1 << 20;

/// The environment variable that makes the `child` test run a case.
const CASE_VAR: &str = "GOHEAP_HUGE_TEST_CASE";

/// `AnonHugePages` of the whole process, in bytes.
fn anon_huge_pages() -> usize {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
    let line = rollup
        .lines()
        .find(|l| l.starts_with("AnonHugePages:"))
        .expect("AnonHugePages in smaps_rollup");
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Bytes of the process's mappings marked `MADV_NOHUGEPAGE` (`nh` among
/// the `VmFlags` of `/proc/self/smaps`).
fn no_huge_mapped() -> usize {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let (mut total, mut size) = (0, 0);
    for line in smaps.lines() {
        if let Some(kib) = line.strip_prefix("Size:") {
            size = kib
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<usize>()
                .unwrap()
                * 1024;
        } else if let Some(flags) = line.strip_prefix("VmFlags:") {
            if flags.split_whitespace().any(|f| f == "nh") {
                total += size;
            }
        }
    }
    total
}

/// Whether the kernel gives huge pages only to memory hinted with
/// `MADV_HUGEPAGE`.
fn thp_madvise_mode() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|s| s.contains("[madvise]"))
}

/// Small objects (64 B) filling about `bytes`, every one written. (Boxes,
/// each its own allocation: the point is many small objects.)
#[allow(clippy::vec_box)]
fn small_objects(bytes: usize) -> Vec<Box<[u8; 64]>> {
    (0..bytes / 64).map(|i| Box::new([i as u8; 64])).collect()
}

/// `count` zeroed buffers of `size` bytes, one byte written in each.
fn sparse_buffers(size: usize, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let mut v = vec![0u8; size];
            v[(i * 4096 * 37) % size] = 1;
            v
        })
        .collect()
}

/// What a child measured: `key=value` on stdout (the first may share its
/// line with the test harness's `test child ... `).
fn measured(out: &str, key: &str) -> usize {
    let prefix = format!("{key}=");
    out.split_whitespace()
        .find_map(|w| w.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key} in the child's output:\n{out}"))
        .parse()
        .unwrap()
}

/// Runs `case` in a child process with `env`; returns its stdout.
fn run_child(case: &str, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CASE_VAR, case)
        // Off by default; each case turns it on unless it says otherwise.
        .env("GOHEAP_HUGE_PAGES", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child {case}: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// [`run_child`] where the checks mean something (THP mode `madvise`),
/// else `None`, with a note that the case is skipped.
fn run_case(case: &str, env: &[(&str, &str)]) -> Option<String> {
    if !thp_madvise_mode() {
        eprintln!("skipped: the kernel's THP mode is not madvise");
        return None;
    }
    Some(run_child(case, env))
}

/// The child side: runs the case named by [`CASE_VAR`] (nothing when it
/// is unset, as in the parent's own run).
#[test]
fn child() {
    let Ok(case) = std::env::var(CASE_VAR) else {
        return;
    };
    match case.as_str() {
        "dense" => {
            let objects = small_objects(96 * MIB);
            println!("huge={}", anon_huge_pages());
            println!("rss_full={}", goheap::process_rss());
            drop(objects);
            goheap::free_os_memory();
            println!("huge_freed={}", anon_huge_pages());
            println!("rss_freed={}", goheap::process_rss());
        }
        "survivors" => {
            // One object in 512 (one per 32 KiB) outlives the rest: every
            // huge page keeps a little in use when the rest is released.
            let mut objects = small_objects(96 * MIB);
            let survivors: Vec<_> = objects.drain(..).step_by(512).collect();
            goheap::free_os_memory();
            println!("no_huge={}", no_huge_mapped());
            println!("rss={}", goheap::process_rss());
            drop(survivors);
        }
        "small" => {
            let objects = small_objects(10 * MIB);
            println!("huge={}", anon_huge_pages());
            drop(objects);
        }
        "big_buffers" => {
            // A dense heap just under the threshold, then 128 MiB of zeroed
            // 4 MiB buffers with one byte written in each (all live): a few
            // MiB resident, unless huge pages fault in 2 MiB per byte.
            let small = small_objects(12 * MIB);
            let buffers = sparse_buffers(4 * MIB, 32);
            println!("huge={}", anon_huge_pages());
            drop((small, buffers));
        }
        "small_buffers" => {
            // Zeroed 512 KiB buffers, one byte written in each: a heap of
            // 128 MiB with little of it resident.
            let buffers = sparse_buffers(MIB / 2, 256);
            println!("huge={}", anon_huge_pages());
            drop(buffers);
        }
        other => panic!("unknown case {other}"),
    }
}

#[test]
fn a_large_dense_heap_gets_huge_pages_and_gives_them_back() {
    let Some(out) = run_case("dense", &[]) else {
        return;
    };
    let huge = measured(&out, "huge");
    // 64 of the 96 MiB lie past the 32 MiB threshold; the kernel may fail
    // to find free 2 MiB frames for some of them, so ask for a quarter.
    assert!(
        huge >= 20 * MIB,
        "only {} KiB of huge pages:\n{out}",
        huge >> 10
    );
    // Freed and released, the huge pages go (split where a survivor or
    // metadata sits) and RSS falls with them.
    let (rss_full, rss_freed) = (measured(&out, "rss_full"), measured(&out, "rss_freed"));
    assert!(
        rss_freed + 80 * MIB <= rss_full,
        "RSS {} MiB with the heap full, {} MiB after free_os_memory:\n{out}",
        rss_full >> 20,
        rss_freed >> 20
    );
    let huge_freed = measured(&out, "huge_freed");
    assert!(
        huge_freed <= 4 * MIB,
        "{} KiB of huge pages stayed",
        huge_freed >> 10
    );
}

/// Released around scattered survivors, the huge pages are hinted back to
/// no huge pages: `khugepaged` (which collapses a huge page around a single
/// resident 4 KiB page under the default `max_ptes_none`) would otherwise
/// fill the released memory back in, seconds later.
#[test]
fn huge_pages_released_around_survivors_are_hinted_back() {
    let Some(out) = run_case("survivors", &[]) else {
        return;
    };
    // 64 of the 96 MiB were hinted; nearly all of it is now partly free.
    let no_huge = measured(&out, "no_huge");
    assert!(
        no_huge >= 40 * MIB,
        "only {} KiB hinted back:\n{out}",
        no_huge >> 10
    );
}

#[test]
fn a_small_heap_gets_no_huge_pages() {
    let Some(out) = run_case("small", &[]) else {
        return;
    };
    assert_eq!(measured(&out, "huge"), 0, "{out}");
}

/// Big zeroed buffers used sparsely get no huge pages, even in a heap that
/// is dense otherwise: the memory grown for a run of 1 MiB or more is not
/// hinted.
#[test]
fn big_sparse_buffers_get_no_huge_pages() {
    let Some(out) = run_case("big_buffers", &[]) else {
        return;
    };
    let huge = measured(&out, "huge");
    assert!(huge <= 4 * MIB, "{} KiB of huge pages:\n{out}", huge >> 10);
}

/// A heap of smaller zeroed buffers used sparsely gets none either: most
/// of its in-use pages are not resident.
#[test]
fn a_sparse_heap_gets_no_huge_pages() {
    let Some(out) = run_case("small_buffers", &[]) else {
        return;
    };
    let huge = measured(&out, "huge");
    assert!(huge <= 4 * MIB, "{} KiB of huge pages:\n{out}", huge >> 10);
}

#[test]
fn huge_pages_off_means_none() {
    let Some(out) = run_case("dense", &[("GOHEAP_HUGE_PAGES", "0")]) else {
        return;
    };
    assert_eq!(measured(&out, "huge"), 0, "{out}");
}

/// Unset (here: empty, which counts as unset), the option is off.
#[test]
fn huge_pages_are_off_by_default() {
    let Some(out) = run_case("dense", &[("GOHEAP_HUGE_PAGES", "")]) else {
        return;
    };
    assert_eq!(measured(&out, "huge"), 0, "{out}");
}
