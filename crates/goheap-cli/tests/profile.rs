//! `goheap profile` on profiles made here: encoded by the small protobuf
//! encoder below with bare addresses of functions of programs compiled
//! here (C with gcc, Rust with rustc), as goheap's sampler writes them;
//! written by Go's runtime/pprof (when Go is installed); and malformed.
//! Each runs the built `goheap` binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use object::{Object, ObjectSegment, ObjectSymbol};

/// A protobuf message being encoded.
#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn varint(&mut self, mut v: u64) -> &mut Self {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
        self
    }

    fn key(&mut self, field: u64, wire: u64) -> &mut Self {
        self.varint(field << 3 | wire)
    }

    /// A varint field; zero is left out, as proto3 writers do.
    fn uint(&mut self, field: u64, v: u64) -> &mut Self {
        if v != 0 {
            self.key(field, 0).varint(v);
        }
        self
    }

    fn bytes(&mut self, field: u64, b: &[u8]) -> &mut Self {
        self.key(field, 2).varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    fn msg(&mut self, field: u64, m: &Enc) -> &mut Self {
        self.bytes(field, &m.0)
    }

    /// A repeated scalar, packed (one length-delimited field) or not (a
    /// field per element): readers must accept both.
    fn repeated(&mut self, field: u64, vs: &[u64], packed: bool) -> &mut Self {
        if packed {
            let mut p = Enc::default();
            for &v in vs {
                p.varint(v);
            }
            self.bytes(field, &p.0)
        } else {
            for &v in vs {
                self.key(field, 0).varint(v);
            }
            self
        }
    }
}

/// A `Profile` being built.
struct Prof {
    strings: Vec<String>,
    body: Enc,
}

impl Prof {
    fn new() -> Self {
        Prof {
            strings: vec![String::new()],
            body: Enc::default(),
        }
    }

    /// The string table index of `s`.
    fn s(&mut self, s: &str) -> u64 {
        if let Some(i) = self.strings.iter().position(|x| x == s) {
            return i as u64;
        }
        self.strings.push(s.to_owned());
        self.strings.len() as u64 - 1
    }

    /// Go's heap profile sample types.
    fn heap_types(&mut self) -> &mut Self {
        for (ty, unit) in [
            ("alloc_objects", "count"),
            ("alloc_space", "bytes"),
            ("inuse_objects", "count"),
            ("inuse_space", "bytes"),
        ] {
            let mut v = Enc::default();
            v.uint(1, self.s(ty)).uint(2, self.s(unit));
            self.body.msg(1, &v);
        }
        self
    }

    fn mapping(&mut self, id: u64, m: Mapping, file: &str) -> &mut Self {
        let mut e = Enc::default();
        e.uint(1, id)
            .uint(2, m.start)
            .uint(3, m.limit)
            .uint(4, m.offset)
            .uint(5, self.s(file));
        self.body.msg(3, &e);
        self
    }

    /// A location with an address and no lines, as goheap writes them.
    fn location(&mut self, id: u64, mapping_id: u64, address: u64) -> &mut Self {
        let mut e = Enc::default();
        e.uint(1, id).uint(2, mapping_id).uint(3, address);
        self.body.msg(4, &e);
        self
    }

    /// A sample of `bytes` in `objects` allocations, live (inuse = alloc).
    fn sample(&mut self, locs: &[u64], objects: u64, bytes: u64, packed: bool) -> &mut Self {
        let mut e = Enc::default();
        e.repeated(1, locs, packed)
            .repeated(2, &[objects, bytes, objects, bytes], packed);
        self.body.msg(2, &e);
        self
    }

    fn finish(&self) -> Vec<u8> {
        let mut out = Enc(self.body.0.clone());
        for s in &self.strings {
            out.bytes(6, s.as_bytes());
        }
        out.0
    }
}

/// A mapping of the profiled process (a line of /proc/self/maps).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Mapping {
    start: u64,
    limit: u64,
    offset: u64,
}

/// The functions of a binary as the profiled process would see them.
struct Binary {
    obj_data: Vec<u8>,
}

impl Binary {
    fn read(path: &Path) -> Self {
        Binary {
            obj_data: std::fs::read(path).expect("read the binary"),
        }
    }

    /// The runtime address of the function named `name` (or, for a
    /// mangled name, the first whose symbol contains `name`), plus 4:
    /// inside the function, a call site; and the mapping of its PT_LOAD
    /// segment, as the loader would map it: a PIE at a made-up base, a
    /// fixed-address executable where it says.
    fn address(&self, name_part: &str) -> (u64, Mapping) {
        let obj = object::File::parse(&self.obj_data[..]).expect("parse the binary");
        let mangled = |n: &str| n.starts_with("_ZN") || n.starts_with("_R");
        let sym = obj
            .symbols()
            .find(|s| {
                s.name()
                    .is_ok_and(|n| n == name_part || (mangled(n) && n.contains(name_part)))
                    && s.size() > 4
            })
            .unwrap_or_else(|| panic!("no symbol {name_part}"));
        let vaddr = sym.address();
        let seg = obj
            .segments()
            .find(|s| (s.address()..s.address() + s.size()).contains(&vaddr))
            .expect("the segment of the symbol");
        let (p_offset, p_filesz) = seg.file_range();
        let p_vaddr = seg.address();
        let base = if obj.kind() == object::ObjectKind::Executable {
            0
        } else {
            0x5555_5555_0000
        };
        let page = 0xfff;
        let start = base + (p_vaddr & !page);
        let m = Mapping {
            start,
            limit: start + ((p_filesz + (p_offset & page) + page) & !page),
            offset: p_offset & !page,
        };
        let runtime = m.start + (vaddr + 4 - p_vaddr) + (p_offset - m.offset);
        (runtime, m)
    }
}

/// This test's directory.
fn work_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("goheap-cli-profile")
        .join(name);
    std::fs::create_dir_all(&d).expect("create work dir");
    d
}

/// Whether CI runs this (the `CI` variable set and not empty).
fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// The rule of goheap-capi's tests for an external tool (CI installs
/// every tool the tests use, so there a missing one is a failure; outside
/// CI a skip with a note).
fn need(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            !in_ci(),
            "{tool} is not installed, and under CI a missing tool is a failure, not a skip"
        );
        eprintln!("skipped: {tool} is not installed");
    }
    found
}

/// Runs a compiler, panicking with its output if it fails.
fn compile(mut cmd: Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn goheap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_goheap"))
        .args(args)
        .output()
        .expect("run goheap")
}

/// Runs `goheap profile ARGS`, which must succeed; returns stdout, stderr.
fn profile_ok(args: &[&str]) -> (String, String) {
    let mut all = vec!["profile"];
    all.extend_from_slice(args);
    let out = goheap(&all);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "goheap {all:?}: {:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

/// The rows of the top table (the lines after the column header).
fn rows(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .skip(1)
        .collect()
}

const C_PROGRAM: &str = r#"
#include <stdlib.h>

/* Stands for goheap's malloc: a leaf frame `goheap profile` drops. */
void *goheap_test_malloc(size_t n) { return malloc(n); }

void *alloc_site_alpha(size_t n) { return goheap_test_malloc(n); }

void *alloc_site_beta(size_t n) { return goheap_test_malloc(n); }

int main(void) {
    free(alloc_site_alpha(16));
    free(alloc_site_beta(16));
    return 0;
}
"#;

#[test]
fn c_profile_names_the_allocation_sites() {
    if !need("cc") {
        return;
    }
    let dir = work_dir("c");
    let src = dir.join("prog.c");
    std::fs::write(&src, C_PROGRAM).unwrap();
    let exe = dir.join("prog");
    let mut cc = Command::new("cc");
    cc.args(["-O0", "-g", "-o"]).arg(&exe).arg(&src);
    compile(cc);
    let bin = Binary::read(&exe);
    let (malloc, m) = bin.address("goheap_test_malloc");
    let (alpha, m2) = bin.address("alloc_site_alpha");
    let (beta, m3) = bin.address("alloc_site_beta");
    let (main, m4) = bin.address("main");
    assert!(m == m2 && m == m3 && m == m4, "one text segment");

    let mut p = Prof::new();
    p.heap_types()
        .mapping(1, m, exe.to_str().unwrap())
        .location(1, 1, malloc)
        .location(2, 1, alpha)
        .location(3, 1, beta)
        .location(4, 1, main)
        // 3:1, one sample packed, the other not.
        .sample(&[1, 2, 4], 3, 3 * 1024, true)
        .sample(&[1, 3, 4], 1, 1024, false);
    // Gzipped, as pprof files usually are.
    let file = dir.join("heap.pb.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&p.finish()).unwrap();
    std::fs::write(&file, gz.finish().unwrap()).unwrap();
    let svg = dir.join("heap.svg");
    let _ = std::fs::remove_file(&svg);

    let (out, err) = profile_ok(&[file.to_str().unwrap()]);
    assert!(out.contains("Type: inuse_space"), "{out}");
    assert!(
        out.contains(
            "Totals: alloc_objects 4, alloc_space 4.00 KiB, inuse_objects 4, inuse_space 4.00 KiB"
        ),
        "{out}"
    );
    let r = rows(&out);
    assert!(
        r[0].ends_with("  alloc_site_alpha") && r[0].contains("3.00 KiB  75.00%  75.00%"),
        "{out}"
    );
    assert!(
        r[1].ends_with("  alloc_site_beta") && r[1].contains("1.00 KiB  25.00% 100.00%"),
        "{out}"
    );
    assert!(
        r[2].ends_with("  main") && r[2].contains("4.00 KiB 100.00%"),
        "{out}"
    );
    assert!(!out.contains("goheap_test_malloc"), "{out}");
    assert!(
        err.contains(&format!("wrote flame graph to {}", svg.display())),
        "{err}"
    );
    let s = std::fs::read_to_string(&svg).expect("the flame graph");
    assert!(s.starts_with("<?xml") && s.trim_end().ends_with("</svg>"));
    assert!(
        s.contains("<title>alloc_site_alpha (3.00 KiB, 75.00%)</title>"),
        "{s}"
    );
    assert!(
        s.contains("<title>alloc_site_beta (1.00 KiB, 25.00%)</title>"),
        "{s}"
    );

    // With source lines, the allocator's frame still dropped.
    let (out, _) = profile_ok(&[file.to_str().unwrap(), "--lines", "--no-svg"]);
    let r = rows(&out);
    assert!(
        r[0].contains("  alloc_site_alpha /") && r[0].ends_with("/prog.c:7"),
        "{out}"
    );
    assert!(!out.contains("goheap_test_malloc"), "{out}");

    // The objects, the allocator's frame kept, source lines from DWARF.
    let (out, _) = profile_ok(&[
        file.to_str().unwrap(),
        "--sample",
        "alloc_objects",
        "--keep-allocator-frames",
        "--lines",
        "--no-svg",
        "--top",
        "2",
    ]);
    let r = rows(&out);
    assert_eq!(r.len(), 2, "{out}");
    assert!(r[0].contains("4 100.00% 100.00%"), "{out}");
    // goheap_test_malloc is all on line 5 of prog.c.
    assert!(
        r[0].contains("  goheap_test_malloc /") && r[0].ends_with("/prog.c:5"),
        "{out}"
    );
    assert!(
        r[1].contains("  main /") && r[1].contains("/prog.c:"),
        "{out}"
    );
}

const RUST_PROGRAM: &str = r#"
mod sites {
    #[inline(never)]
    pub fn alloc_site_rust(n: usize) -> Vec<u8> {
        vec![7; n]
    }
}
pub use sites::alloc_site_rust;

fn main() {
    let v = alloc_site_rust(std::env::args().count() + 10);
    println!("{}", v.len());
}
"#;

#[test]
fn rust_profile_is_demangled() {
    let dir = work_dir("rust");
    let src = dir.join("profsite.rs");
    std::fs::write(&src, RUST_PROGRAM).unwrap();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    // Legacy mangling and the symbol table; v0 mangling and DWARF.
    for (name, flags) in [
        ("legacy", &["-C", "debuginfo=0"][..]),
        ("v0", &["-C", "symbol-mangling-version=v0", "-g"][..]),
    ] {
        let exe = dir.join(format!("profsite-{name}"));
        let mut c = Command::new(&rustc);
        c.args([
            "--edition",
            "2021",
            "--crate-name",
            "profsite",
            "-C",
            "opt-level=0",
        ])
        .args(flags)
        .arg("-o")
        .arg(&exe)
        .arg(&src);
        compile(c);
        let bin = Binary::read(&exe);
        let (site, m) = bin.address("alloc_site_rust");
        let (main, m2) = bin.address("8profsite4main");
        assert_eq!(m, m2, "{name}: one text segment");
        let mut p = Prof::new();
        p.heap_types()
            .mapping(1, m, exe.to_str().unwrap())
            .location(1, 1, site)
            .location(2, 1, main)
            .sample(&[1, 2], 1, 96, true)
            .sample(&[2], 1, 32, true);
        let file = dir.join(format!("heap-{name}.pb"));
        std::fs::write(&file, p.finish()).unwrap();
        let svg = dir.join(format!("flame-{name}.svg"));
        let (out, err) = profile_ok(&[file.to_str().unwrap(), "--svg", svg.to_str().unwrap()]);
        let r = rows(&out);
        assert!(
            r[0].ends_with("  profsite::sites::alloc_site_rust") && r[0].contains("75.00%"),
            "{name}: {out}"
        );
        assert!(
            r[1].ends_with("  profsite::main") && r[1].contains("25.00% 100.00%"),
            "{name}: {out}"
        );
        assert!(!out.contains("::h"), "{name}: a hash left in: {out}");
        assert!(err.contains("wrote flame graph"), "{err}");
        let s = std::fs::read_to_string(&svg).unwrap();
        assert!(s.contains("profsite::sites::alloc_site_rust ("), "{s}");
    }
}

const C_LIBRARY: &str = r#"
#include <stdlib.h>

/* A one-byte exported function: in a stripped library's .dynsym the
   nearest symbol before the static function below. */
void exported_tiny(void) {}

static void *hidden_alloc_site(size_t n) { return malloc(n); }

/* Keeps the static function. */
void *(*volatile keep_hidden)(size_t) = hidden_alloc_site;
"#;

/// A stripped library has only its exported functions in .dynsym: an
/// address in a static function after one of them is shown as
/// `file+0xoffset` (of the function's start, from .eh_frame; with --lines
/// of the address), not as the exported function (whose extent it is
/// past).
#[test]
fn stripped_library_addresses_are_not_misnamed() {
    if !need("cc") || !need("strip") {
        return;
    }
    let dir = work_dir("stripped");
    let src = dir.join("lib.c");
    std::fs::write(&src, C_LIBRARY).unwrap();
    let full = dir.join("libfull.so");
    let mut cc = Command::new("cc");
    cc.args(["-O0", "-shared", "-fPIC", "-o"])
        .arg(&full)
        .arg(&src);
    compile(cc);
    let stripped = dir.join("libstripped.so");
    let mut strip = Command::new("strip");
    strip.arg("--strip-all").arg("-o").arg(&stripped).arg(&full);
    compile(strip);
    let bin = Binary::read(&full);
    let (site, m) = bin.address("hidden_alloc_site");
    let obj = object::File::parse(&bin.obj_data[..]).unwrap();
    let tiny = obj
        .dynamic_symbols()
        .find(|s| s.name() == Ok("exported_tiny"))
        .expect("exported_tiny in .dynsym");
    assert!(
        obj.dynamic_symbols()
            .all(|s| s.name() != Ok("hidden_alloc_site")),
        "a static function is not exported"
    );
    // The site must be past exported_tiny, with no exported function
    // between, for the test to mean anything.
    let site_vaddr = site - m.start + m.offset;
    assert!(tiny.address() + tiny.size() <= site_vaddr, "layout");

    for (lib, want) in [(&full, "hidden_alloc_site"), (&stripped, "")] {
        let mut p = Prof::new();
        p.heap_types()
            .mapping(1, m, lib.to_str().unwrap())
            .location(1, 1, site)
            .sample(&[1], 1, 1024, false);
        let file = dir.join("heap.pb");
        std::fs::write(&file, p.finish()).unwrap();
        let (out, _) = profile_ok(&[file.to_str().unwrap(), "--no-svg"]);
        let r = rows(&out);
        assert!(!out.contains("exported_tiny"), "{out}");
        if want.is_empty() {
            // No name: the function's start, from .eh_frame (the site is
            // 4 bytes into the function)...
            let lib_name = lib.file_name().unwrap().to_str().unwrap();
            let name = format!("  {lib_name}+0x{:x}", site - 4 - m.start + m.offset);
            assert!(r[0].ends_with(&name), "{out}");
            // ... and with --lines the address itself.
            let (out, _) = profile_ok(&[file.to_str().unwrap(), "--no-svg", "--lines"]);
            let name = format!("  {lib_name}+0x{:x}", site - m.start + m.offset);
            assert!(rows(&out)[0].ends_with(&name), "{out}");
        } else {
            assert!(r[0].ends_with(&format!("  {want}")), "{out}");
        }
    }
}

#[test]
fn missing_binary_is_a_warning_once() {
    let dir = work_dir("missing");
    let mut p = Prof::new();
    let m = Mapping {
        start: 0x7f00_0000_0000,
        limit: 0x7f00_0001_0000,
        offset: 0x1000,
    };
    p.heap_types()
        .mapping(1, m, "/nonexistent/dir/libfoo.so")
        .location(1, 1, 0x7f00_0000_0234)
        .location(2, 1, 0x7f00_0000_0500)
        // No mapping: shown as a bare address.
        .location(3, 0, 0x4242)
        .sample(&[1, 2], 1, 2048, false)
        .sample(&[3], 1, 1024, false);
    let file = dir.join("heap.pb");
    std::fs::write(&file, p.finish()).unwrap();
    let (out, err) = profile_ok(&[file.to_str().unwrap(), "--no-svg"]);
    let r = rows(&out);
    assert!(r[0].ends_with("  libfoo.so+0x1234"), "{out}");
    assert!(r[1].ends_with("  0x4242"), "{out}");
    assert!(out.contains("libfoo.so+0x1500"), "{out}");
    assert_eq!(
        err.matches("cannot read /nonexistent/dir/libfoo.so")
            .count(),
        1,
        "{err}"
    );
    assert!(!err.contains("wrote flame graph"), "{err}");
}

#[test]
fn malformed_profiles_are_errors_not_panics() {
    let dir = work_dir("malformed");
    let mut p = Prof::new();
    p.heap_types()
        .location(1, 0, 0x1000)
        .sample(&[1], 1, 100, true);
    let good = p.finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&good).unwrap();
    let gz = gz.finish().unwrap();
    // A length-delimited sample_type whose length is a runaway varint.
    let mut bad_varint = vec![0x0a];
    bad_varint.extend([0xff; 11]);
    let cases: &[(&str, Vec<u8>, &[&str])] = &[
        (
            "truncated",
            good[..good.len() - 3].to_vec(),
            &["Profile.string_table", "runs past the end", "byte offset"],
        ),
        (
            "bad-varint",
            bad_varint,
            &["Profile.sample_type", "varint overflows", "byte offset 1"],
        ),
        (
            "wrong-wire-type",
            // sample_type (field 1) as a varint.
            vec![0x08, 0x01],
            &["Profile.sample_type", "wrong wire type", "byte offset 1"],
        ),
        (
            "text",
            b"hello, this is not a profile\n".to_vec(),
            &[
                "not a valid pprof profile",
                "neither gzip nor profile.proto",
            ],
        ),
        (
            "truncated-gzip",
            gz[..gz.len() / 2].to_vec(),
            &["bad gzip data"],
        ),
        (
            "gzipped-garbage",
            {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), Default::default());
                e.write_all(&[0x08, 0x01]).unwrap();
                e.finish().unwrap()
            },
            &["gzipped, but", "Profile.sample_type", "wrong wire type"],
        ),
        ("empty", Vec::new(), &["empty profile"]),
    ];
    for (name, data, expect) in cases {
        let file = dir.join(format!("{name}.pb"));
        std::fs::write(&file, data).unwrap();
        let out = goheap(&["profile", file.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(err.starts_with("goheap profile: "), "{name}: {err}");
        for e in *expect {
            assert!(err.contains(e), "{name}: no {e:?} in {err}");
        }
        assert!(!dir.join(format!("{name}.svg")).exists(), "{name}");
    }
    // A file that is not there, and an unknown sample type.
    let out = goheap(&["profile", dir.join("nope.pb").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
    let file = dir.join("good.pb");
    std::fs::write(&file, &good).unwrap();
    let out = goheap(&["profile", file.to_str().unwrap(), "--sample", "cpu"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such sample type"));
    // Bad usage is exit status 2.
    assert_eq!(goheap(&["profile"]).status.code(), Some(2));
}

#[test]
fn help_describes_profile() {
    let out = goheap(&["help", "profile"]);
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--sample",
        "--top",
        "--lines",
        "--svg",
        "--no-svg",
        "--keep-allocator-frames",
    ] {
        assert!(s.contains(opt), "{opt} in {s}");
    }
    let out = goheap(&["help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("profile FILE"));
}

/// Go 1.23's go (as `goheap gcbench` looks for it), else the newest
/// /usr/lib/go-*, else go on PATH.
fn find_go() -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("/usr/lib/go-1.23/bin/go")];
    if let Ok(rd) = std::fs::read_dir("/usr/lib") {
        let mut gos: Vec<PathBuf> = rd
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("go-"))
            .map(|e| e.path().join("bin/go"))
            .collect();
        gos.sort();
        candidates.extend(gos.into_iter().rev());
    }
    candidates.push(PathBuf::from("go"));
    candidates.into_iter().find(|go| {
        Command::new(go)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

const GO_PROGRAM: &str = r#"package main

import (
	"os"
	"runtime"
	"runtime/pprof"
)

var keep [][]byte

//go:noinline
func allocAlpha() {
	for i := 0; i < 300; i++ {
		keep = append(keep, make([]byte, 4096))
	}
}

//go:noinline
func allocBeta() {
	for i := 0; i < 100; i++ {
		keep = append(keep, make([]byte, 4096))
	}
}

func main() {
	runtime.MemProfileRate = 1
	keep = make([][]byte, 0, 400)
	allocAlpha()
	allocBeta()
	runtime.GC()
	f, err := os.Create(os.Args[1])
	if err != nil {
		panic(err)
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		panic(err)
	}
	f.Close()
}
"#;

#[test]
fn go_heap_profile() {
    // Go is optional here even under CI, as it is for `goheap gcbench`:
    // .ci/run does not install it (scripts/install-bench-deps.sh does).
    let Some(go) = find_go() else {
        eprintln!("skipped: no Go toolchain (/usr/lib/go-1.23/bin/go or go on PATH)");
        return;
    };
    let dir = work_dir("go");
    let src = dir.join("main.go");
    std::fs::write(&src, GO_PROGRAM).unwrap();
    let exe = dir.join("goalloc");
    let mut build = Command::new(&go);
    build
        .arg("build")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .current_dir(&dir)
        // Never download a toolchain or a module.
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .env("GOPROXY", "off");
    if std::env::var_os("HOME").is_none() {
        build.env("GOCACHE", dir.join("gocache"));
    }
    compile(build);
    let file = dir.join("heap.pprof");
    let st = Command::new(&exe)
        .arg(&file)
        .status()
        .expect("run the Go program");
    assert!(st.success());
    let (out, err) = profile_ok(&[file.to_str().unwrap()]);
    assert!(out.contains("inuse_space"), "{out}");
    let r = rows(&out);
    assert!(r[0].ends_with("  main.allocAlpha"), "{out}");
    assert!(r[1].ends_with("  main.allocBeta"), "{out}");
    // 300 and 100 blocks of 4 KiB: 75% and 25% of the two.
    let pct = |row: &str| -> f64 {
        row.split_whitespace()
            .find(|w| w.ends_with('%'))
            .and_then(|w| w.trim_end_matches('%').parse().ok())
            .unwrap()
    };
    let (a, b) = (pct(r[0]), pct(r[1]));
    let share = a / (a + b);
    assert!((0.7..0.8).contains(&share), "alpha's share {share}: {out}");
    assert!(err.contains("wrote flame graph to"), "{err}");
    let svg = std::fs::read_to_string(dir.join("heap.svg")).unwrap();
    assert!(svg.contains("main.allocAlpha") && svg.contains("main.allocBeta"));
}

/// A C program with known allocation sites: alpha holds 100 MB in
/// 1000-byte blocks, beta 50 MB (calloc), gamma allocates and frees 50 MB,
/// and main holds one 5 MiB block. At Go's rate the smallest site gets
/// about 95 samples, so 30 % is three standard deviations. Every block is read at the end so the compiler
/// keeps the allocations.
const SITES_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static void *keep[150001];
static int nkeep;
__attribute__((noinline)) void alloc_site_alpha(int n) {
    for (int i = 0; i < n; i++) { keep[nkeep] = malloc(1000); memset(keep[nkeep], 1, 1000); nkeep++; }
}
__attribute__((noinline)) void alloc_site_beta(int n) {
    for (int i = 0; i < n; i++) keep[nkeep++] = calloc(1, 1000);
}
__attribute__((noinline)) long alloc_site_gamma(int n) {
    long s = 0;
    for (int i = 0; i < n; i++) { char *volatile p = malloc(1000); p[0] = (char)i; s += p[0]; free(p); }
    return s;
}
int main(void) {
    alloc_site_alpha(100000);
    alloc_site_beta(50000);
    long s = alloc_site_gamma(50000);
    char *big = malloc(5 << 20);
    memset(big, 2, 5 << 20);
    keep[nkeep++] = big;
    for (int i = 0; i < nkeep; i++) s += ((char *)keep[i])[0];
    printf("%ld %d\n", s, nkeep);
    return 0;
}
"#;

/// The inuse_space cell of the top table's row for `func`, in bytes.
fn inuse_of(stdout: &str, func: &str) -> f64 {
    let row = rows(stdout)
        .into_iter()
        .find(|r| r.split_whitespace().last() == Some(func))
        .unwrap_or_else(|| panic!("no row for {func} in\n{stdout}"));
    let f: Vec<&str> = row.split_whitespace().collect();
    let unit = match f[1] {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        u => panic!("unit {u} in {row}"),
    };
    f[0].parse::<f64>().unwrap() * unit
}

/// `goheap run --heap-profile` on a real C program under the real
/// sampler, read back by `goheap profile`: the sites by name, with their
/// in-use bytes within 10 % of the truth at rate 1 and 30 % at Go's
/// default rate.
#[test]
fn goheap_run_heap_profile_of_a_c_program() {
    if !need("cc") {
        return;
    }
    let dir = work_dir("run-sites");
    let src = dir.join("sites.c");
    std::fs::write(&src, SITES_C).unwrap();
    let exe = dir.join("sites");
    let mut cc = Command::new("cc");
    cc.args(["-O2", "-g", "-o"]).arg(&exe).arg(&src);
    compile(cc);
    for (rate, tolerance) in [("1", 0.10), ("524288", 0.30)] {
        let prof = dir.join(format!("heap-{rate}.pb.gz"));
        let _ = std::fs::remove_file(&prof);
        let out = goheap(&[
            "run",
            "--heap-profile",
            prof.to_str().unwrap(),
            "--profile-rate",
            rate,
            "--",
            exe.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "goheap run: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).ends_with(" 150001\n"),
            "{out:?}"
        );
        assert!(
            prof.exists(),
            "no profile: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (stdout, _) = profile_ok(&[prof.to_str().unwrap(), "--no-svg"]);
        let top: Vec<&str> = rows(&stdout)
            .iter()
            .take(3)
            .map(|r| r.split_whitespace().last().unwrap())
            .collect();
        assert_eq!(
            top,
            ["alloc_site_alpha", "alloc_site_beta", "main"],
            "rate {rate}:\n{stdout}"
        );
        for (func, truth) in [("alloc_site_alpha", 100e6), ("alloc_site_beta", 50e6)] {
            let got = inuse_of(&stdout, func);
            assert!(
                (got / truth - 1.0).abs() <= tolerance,
                "rate {rate}: {func} holds {truth} bytes, the profile says {got}:\n{stdout}"
            );
        }
        assert!(
            !stdout.contains("alloc_site_gamma ") || inuse_of(&stdout, "alloc_site_gamma") == 0.0
        );
        let (alloc, _) = profile_ok(&[
            prof.to_str().unwrap(),
            "--no-svg",
            "--sample",
            "alloc_space",
        ]);
        let got = inuse_of(&alloc, "alloc_site_gamma");
        assert!(
            (got / 50e6 - 1.0).abs() <= tolerance,
            "rate {rate}: gamma allocated {got}:\n{alloc}"
        );
    }
}
