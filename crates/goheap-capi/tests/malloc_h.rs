//! glibc's `<malloc.h>` extras answered by goheap: `tests/c/malloc_h.c`
//! run under `LD_PRELOAD=libgoheap.so` (`mallinfo`, `mallinfo2`,
//! `malloc_stats`, `malloc_info`, `mallopt`, `malloc_trim`, and `operator
//! new` called from C). Every case also checks that glibc's own allocator
//! was never used (see the program's comment).

mod common;

use common::*;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

fn program() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = work_dir("malloc_h").join("malloc_h");
        let mut c = cc(false);
        c.arg(c_src("malloc_h.c")).arg("-o").arg(&out).arg("-ldl");
        compile(c);
        out
    })
}

fn run_case(case: &str) -> Run {
    let mut cmd = Command::new(program());
    cmd.arg(case).env("LD_PRELOAD", lib_so());
    run(cmd, LIMIT)
}

/// Runs `case`, which must pass and find glibc's allocator unused.
fn case(name: &str) -> Run {
    let r = run_case(name);
    r.assert_ok(name);
    assert!(
        r.stderr.lines().any(|l| l == "glibc untouched"),
        "{name}: the glibc check did not run:\n{}",
        r.stderr
    );
    r
}

#[test]
fn mallinfo_and_mallinfo2_track_goheap() {
    if !need("cc") {
        return;
    }
    let r = case("mallinfo");
    assert_eq!(r.stdout, "mallinfo ok\n");
}

#[test]
fn malloc_stats_prints_goheaps_stats() {
    if !need("cc") {
        return;
    }
    let r = case("malloc_stats");
    let m = r.stats_mallocs();
    assert_eq!(m.len(), 1, "one goheap stats line:\n{}", r.stderr);
    assert!(
        r.stderr.contains("goheap: memory: "),
        "the memory line too:\n{}",
        r.stderr
    );
}

#[test]
fn mallopt_return_values() {
    if !need("cc") {
        return;
    }
    case("mallopt");
}

#[test]
fn malloc_trim_answers() {
    if !need("cc") {
        return;
    }
    case("malloc_trim");
}

/// `operator new` called by a C program (libstdc++ not loaded): it cannot
/// throw, so a failure reports and aborts.
#[test]
fn operator_new_without_libstdcxx_reports_and_aborts() {
    if !need("cc") {
        return;
    }
    let r = run_case("new_from_c");
    assert_eq!(
        r.signal(),
        Some(libc::SIGABRT),
        "{:?} {}",
        r.status,
        r.stderr
    );
    assert!(!r.stdout.contains("survived"), "{}", r.stdout);
    assert!(
        r.stderr
            .contains("goheap: fatal error: operator new(4611686018427387904 bytes")
            && r.stderr.contains("libstdc++ is not loaded"),
        "{}",
        r.stderr
    );
}

/// One element of the document: its name and attributes, and whether it
/// closes one (`</name>`) or is empty (`<name/>`).
#[derive(Debug)]
struct Tag {
    name: String,
    attrs: HashMap<String, String>,
    closing: bool,
    empty: bool,
}

/// The tags of `xml` in order; panics on text outside tags or a malformed
/// tag (the document has neither).
fn tags(xml: &str) -> Vec<Tag> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find('<') {
        assert!(
            rest[..start].trim().is_empty(),
            "text outside tags: {:?}",
            &rest[..start]
        );
        let end = rest[start..].find('>').expect("unclosed tag") + start;
        let mut body = &rest[start + 1..end];
        rest = &rest[end + 1..];
        let closing = body.starts_with('/');
        if closing {
            body = &body[1..];
        }
        let empty = body.ends_with('/');
        if empty {
            body = &body[..body.len() - 1];
        }
        let mut words = body.split_whitespace();
        let name = words.next().expect("tag name").to_string();
        let mut attrs = HashMap::new();
        for w in words {
            let (k, v) = w.split_once('=').expect("attribute");
            assert!(
                v.starts_with('"') && v.ends_with('"') && v.len() >= 2,
                "{w}"
            );
            attrs.insert(k.to_string(), v[1..v.len() - 1].to_string());
        }
        out.push(Tag {
            name,
            attrs,
            closing,
            empty,
        });
    }
    assert!(rest.trim().is_empty(), "text after the document: {rest:?}");
    out
}

fn num(t: &Tag, attr: &str) -> u64 {
    t.attrs
        .get(attr)
        .unwrap_or_else(|| panic!("{t:?} lacks {attr}"))
        .parse()
        .unwrap_or_else(|e| panic!("{t:?}: {attr}: {e}"))
}

#[test]
fn malloc_info_writes_glibcs_xml() {
    if !need("cc") {
        return;
    }
    let r = case("malloc_info");
    let tags = tags(&r.stdout);
    // Well formed: every element closed, in order, one root.
    let mut stack: Vec<&str> = Vec::new();
    let mut shape = Vec::new();
    for t in &tags {
        if t.closing {
            assert_eq!(stack.pop(), Some(t.name.as_str()), "{}", r.stdout);
            continue;
        }
        let path: String = stack
            .iter()
            .chain([&t.name.as_str()])
            .map(|n| format!("/{n}"))
            .collect();
        let kind = t.attrs.get("type").map(String::as_str).unwrap_or("");
        shape.push(format!("{path}:{kind}"));
        if !t.empty {
            stack.push(&t.name);
        }
    }
    assert!(stack.is_empty(), "unclosed {stack:?}:\n{}", r.stdout);
    let sizes = shape
        .iter()
        .filter(|s| s.as_str() == "/malloc/heap/sizes/size:")
        .count();
    let expected: Vec<String> = ["/malloc:", "/malloc/heap:", "/malloc/heap/sizes:"]
        .iter()
        .map(|s| s.to_string())
        .chain(std::iter::repeat_n(
            "/malloc/heap/sizes/size:".to_string(),
            sizes,
        ))
        .chain(
            [
                "/malloc/heap/total:fast",
                "/malloc/heap/total:rest",
                "/malloc/heap/system:current",
                "/malloc/heap/system:max",
                "/malloc/heap/aspace:total",
                "/malloc/heap/aspace:mprotect",
                "/malloc/total:fast",
                "/malloc/total:rest",
                "/malloc/total:mmap",
                "/malloc/system:current",
                "/malloc/system:max",
                "/malloc/aspace:total",
                "/malloc/aspace:mprotect",
            ]
            .iter()
            .map(|s| s.to_string()),
        )
        .collect();
    assert_eq!(shape, expected, "{}", r.stdout);
    assert_eq!(tags[0].attrs.get("version").map(String::as_str), Some("1"));
    assert_eq!(tags[1].attrs.get("nr").map(String::as_str), Some("0"));

    // The program holds 50 blocks of 20 000 bytes (the 20 480-byte class)
    // and one of 8 MiB while it writes the document.
    let class = tags
        .iter()
        .find(|t| t.name == "size" && num(t, "to") == 20480)
        .unwrap_or_else(|| panic!("no size element for the 20480 class:\n{}", r.stdout));
    assert!(num(class, "from") < 20000, "{class:?}");
    assert!(num(class, "count") >= 50, "{class:?}");
    assert_eq!(num(class, "total"), num(class, "count") * 20480);
    let mut prev_to = None;
    for t in tags.iter().filter(|t| t.name == "size") {
        assert!(num(t, "from") <= num(t, "to"), "{t:?}");
        if let Some(p) = prev_to {
            assert!(num(t, "from") > p, "classes in order: {t:?}");
        }
        prev_to = Some(num(t, "to"));
    }
    let mmap = tags
        .iter()
        .find(|t| t.name == "total" && t.attrs.get("type").map(String::as_str) == Some("mmap"))
        .expect("mmap total");
    assert!(
        num(mmap, "count") >= 1 && num(mmap, "size") >= 8 << 20,
        "{mmap:?}"
    );
    let system = |kind: &str| {
        let t = tags
            .iter()
            .rev()
            .find(|t| t.name == "system" && t.attrs.get("type").map(String::as_str) == Some(kind))
            .expect("system element");
        num(t, "size")
    };
    assert!(system("current") >= 50 * 20480, "{}", r.stdout);
    assert!(
        system("max") >= system("current") + (8 << 20),
        "{}",
        r.stdout
    );
}
