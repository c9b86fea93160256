//! `goheap profile FILE`: reads a heap profile in pprof's format
//! ([`crate::pprof`]), symbolizes its bare addresses ([`crate::symbolize`]),
//! prints the top allocation sites like `go tool pprof -top`, and writes a
//! flame graph ([`crate::flame`]), so that reading a profile needs no other
//! tool.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::args::ProfileOpts;
use crate::flame;
use crate::pprof::{Location, Profile};
use crate::symbolize::{demangle, MappedAt, Symbolizer};

/// Frames of the allocator itself, dropped from the leaf end of every
/// stack (unless `--keep-allocator-frames`) so that the first frame shown
/// is the user's allocation site. A pattern ending in `*` matches names
/// that start with the rest, any other must equal the name; a leading `<`
/// of the name (a trait impl, `<goheap::GoHeap as
/// core::alloc::global::GlobalAlloc>::alloc`) is ignored when matching.
/// Names are matched demangled, Rust's without the hash.
pub(crate) const ALLOCATOR_FRAMES: &[&str] = &[
    // goheap's own code: the crates (goheap::, goheap_core::, goheap_capi::,
    // goheap_gc:: with Gc::new, the collected heap's entry point) and the
    // C API's goheap_malloc and friends.
    "goheap*",
    // The C entry points libgoheap.so defines.
    "malloc",
    "calloc",
    "realloc",
    "reallocarray",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "valloc",
    "pvalloc",
    // C++ operator new, every overload.
    "operator new*",
    // Rust's global allocator shims and the alloc crate's plumbing to them
    // (alloc::alloc::Global, RawVec's growth): the caller of Vec, Box or
    // String is the allocation site, not these.
    "__rust_alloc*",
    "__rust_realloc",
    "__rdl_alloc*",
    "__rdl_realloc",
    "__rg_alloc*",
    "__rg_realloc",
    "alloc::alloc::*",
    "alloc::raw_vec::*",
];

/// Whether `name` is one of [`ALLOCATOR_FRAMES`].
pub(crate) fn is_allocator_frame(name: &str) -> bool {
    let name = name.strip_prefix('<').unwrap_or(name);
    ALLOCATOR_FRAMES.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == *p,
    })
}

/// Runs `goheap profile`.
pub(crate) fn run(o: &ProfileOpts) -> ExitCode {
    match report(o) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("goheap profile: {e}");
            ExitCode::from(1)
        }
    }
}

fn report(o: &ProfileOpts) -> Result<(), String> {
    let shown = o.file.display();
    let data = std::fs::read(&o.file).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let p = crate::pprof::parse(&data).map_err(|e| format!("{shown}: {e}"))?;
    let ty = choose_sample_type(&p, o.sample.as_deref())?;
    let mut sym = Symbolizer::default();
    let stacks = resolve(&p, &mut sym, o.lines);
    let a = analyze(&p, &stacks, ty, o.keep_allocator_frames);
    print!("{}", top_table(&p, &shown.to_string(), ty, &a, o.top));
    if !o.no_svg {
        let path = o.svg.clone().unwrap_or_else(|| default_svg_path(&o.file));
        let fmt = |v| format_value(&p, ty, v);
        let title = format!(
            "{}: {} ({})",
            file_name(&shown.to_string()),
            p.str(p.sample_type[ty].ty),
            fmt(a.total)
        );
        let svg = flame::svg(&a.tree, &title, &fmt);
        std::fs::write(&path, svg).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("wrote flame graph to {}", path.display());
    }
    Ok(())
}

/// `FILE` with `.gz` and then its extension replaced by `.svg`:
/// heap.pb.gz and heap.pprof give heap.svg.
pub(crate) fn default_svg_path(file: &Path) -> PathBuf {
    let base = if file.extension().is_some_and(|e| e == "gz") {
        file.with_extension("")
    } else {
        file.to_path_buf()
    };
    let svg = base.with_extension("svg");
    // Never overwrite the profile itself (one named x.svg).
    if svg == file {
        let mut s = file.as_os_str().to_owned();
        s.push(".flame.svg");
        PathBuf::from(s)
    } else {
        svg
    }
}

/// The index of the sample type to show: `--sample NAME` if given; else
/// inuse_space if the profile has it; else its default_sample_type; else
/// its last (as pprof does).
pub(crate) fn choose_sample_type(p: &Profile, wanted: Option<&str>) -> Result<usize, String> {
    let find = |name: &str| p.sample_type.iter().position(|t| p.str(t.ty) == name);
    if let Some(w) = wanted {
        return find(w).ok_or_else(|| {
            let have: Vec<&str> = p.sample_type.iter().map(|t| p.str(t.ty)).collect();
            format!(
                "--sample {w}: the profile has no such sample type (it has {})",
                have.join(", ")
            )
        });
    }
    Ok(find("inuse_space")
        .or_else(|| (p.default_sample_type != 0).then(|| find(p.str(p.default_sample_type)))?)
        .unwrap_or(p.sample_type.len() - 1))
}

/// A frame of a stack as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shown {
    /// The function's name, which [`ALLOCATOR_FRAMES`] is matched against.
    pub(crate) function: String,
    /// What the report aggregates by and prints: the function, or with
    /// `--lines` the function and its `file:line`.
    pub(crate) key: String,
}

/// Every location's frames, leaf (innermost inlined) first, by location id.
pub(crate) fn resolve(p: &Profile, sym: &mut Symbolizer, lines: bool) -> HashMap<u64, Vec<Shown>> {
    let funcs = p.function_index();
    let maps = p.mapping_index();
    let show = |name: String, file: Option<&str>, line: i64| Shown {
        key: match file {
            Some(f) if lines && !f.is_empty() && line > 0 => format!("{name} {f}:{line}"),
            Some(f) if lines && !f.is_empty() => format!("{name} {f}"),
            _ => name.clone(),
        },
        function: name,
    };
    let mut out = HashMap::new();
    for loc in &p.location {
        let mapping = maps
            .get(&loc.mapping_id)
            .map(|&i| &p.mapping[i])
            .or_else(|| {
                // No mapping id: the mapping whose range holds the address.
                p.mapping
                    .iter()
                    .find(|m| (m.memory_start..m.memory_limit).contains(&loc.address))
            });
        let at = mapping.map(|m| MappedAt {
            path: p.str(m.filename),
            memory_start: m.memory_start,
            file_offset: m.file_offset,
        });
        let mut names = Vec::new();
        // Lines given: the writer symbolized it (Go's profiles).
        for l in &loc.line {
            let Some(f) = funcs.get(&l.function_id).map(|&i| &p.function[i]) else {
                continue;
            };
            let name = match p.str(f.name) {
                "" => p.str(f.system_name),
                n => n,
            };
            if !name.is_empty() {
                names.push(show(demangle(name), Some(p.str(f.filename)), l.line));
            }
        }
        if names.is_empty() {
            if let Some(at) = at {
                for f in sym.frames(at, loc.address) {
                    names.push(show(f.name, f.file.as_deref(), i64::from(f.line)));
                }
            }
        }
        if names.is_empty() {
            // No name: the start of its function stands for it, so that
            // the call sites of one function are one row; with --lines
            // each address is its own.
            let start = match at {
                Some(at) if !lines => sym.function_start(at, loc.address),
                _ => None,
            };
            let name = unsymbolized(loc, at, start);
            names.push(show(name, None, 0));
        }
        // GCC's DWARF can have a function inlined into its own out-of-line
        // copy (CPython's PyUnicode_New at two of its lines, as addr2line
        // and llvm-symbolizer also show it): the same key twice in one
        // location's chain would be a frame on top of itself. With --lines
        // the keys differ and both stay.
        names.dedup_by(|outer, inner| outer.key == inner.key);
        out.insert(loc.id, names);
    }
    out
}

/// How an address that could not be symbolized is shown: `file+0xoffset`
/// when its mapping names a file (the offset in the file of
/// `function_start`, its function's start, if known, else of the address),
/// else `0xaddress`.
fn unsymbolized(loc: &Location, at: Option<MappedAt<'_>>, function_start: Option<u64>) -> String {
    match at {
        Some(at) if !at.path.is_empty() => format!(
            "{}+0x{:x}",
            file_name(at.path),
            function_start.unwrap_or_else(|| at.file_offset_of(loc.address))
        ),
        _ => format!("0x{:x}", loc.address),
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Flat and cum per function, and the flame graph's tree.
pub(crate) struct Analysis {
    /// The sum of the chosen value over all samples.
    pub(crate) total: i64,
    /// Per function: (flat, cum).
    pub(crate) by_function: HashMap<String, (i64, i64)>,
    /// The tree of stack prefixes, root first.
    pub(crate) tree: flame::Node,
}

/// Flat, cum and the tree, for sample type `ty`; allocator frames are
/// dropped from the leaf end of each stack unless `keep_allocator`.
pub(crate) fn analyze(
    p: &Profile,
    stacks: &HashMap<u64, Vec<Shown>>,
    ty: usize,
    keep_allocator: bool,
) -> Analysis {
    let mut a = Analysis {
        total: 0,
        by_function: HashMap::new(),
        tree: flame::Node::default(),
    };
    let mut seen = HashSet::new();
    for s in &p.sample {
        let v = s.value[ty];
        // As pprof's graph: a sample of no value of this type (in a heap
        // profile's inuse_* types, one whose objects were all freed) puts
        // neither its functions in the table nor its stack in the graph.
        if v == 0 {
            continue;
        }
        // Saturating: a corrupt profile's huge values must not panic.
        a.total = a.total.saturating_add(v);
        let full: Vec<&Shown> = s
            .location_id
            .iter()
            .flat_map(|id| stacks.get(id).into_iter().flatten())
            .collect();
        let mut user = 0;
        if !keep_allocator {
            // A stack of nothing but allocator frames is kept whole: there
            // is no user frame to show instead.
            user = full
                .iter()
                .position(|f| !is_allocator_frame(&f.function))
                .unwrap_or(0);
        }
        let stack: Vec<&str> = full[user..].iter().map(|f| f.key.as_str()).collect();
        if let Some(leaf) = stack.first() {
            let e = a.by_function.entry((*leaf).to_owned()).or_default();
            e.0 = e.0.saturating_add(v);
        }
        seen.clear();
        for f in &stack {
            if seen.insert(*f) {
                let e = a.by_function.entry((*f).to_owned()).or_default();
                e.1 = e.1.saturating_add(v);
            }
        }
        // The tree is drawn (and dropped) recursively, so its depth is
        // bounded; real stacks are far shallower (Go's hold 32 frames).
        let root_first: Vec<&str> = stack.iter().rev().take(flame::MAX_DEPTH).copied().collect();
        a.tree.add(&root_first, v);
    }
    a
}

/// `v` of sample type `ty`: bytes human-readable, anything else a number.
pub(crate) fn format_value(p: &Profile, ty: usize, v: i64) -> String {
    match p.str(p.sample_type[ty].unit) {
        "bytes" => human_bytes(v),
        "" | "count" | "objects" => v.to_string(),
        unit => format!("{v} {unit}"),
    }
}

/// Bytes in B, KiB, MiB, GiB or TiB.
pub(crate) fn human_bytes(v: i64) -> String {
    let units = ["KiB", "MiB", "GiB", "TiB"];
    let a = v.unsigned_abs() as f64;
    if a < 1024.0 {
        return format!("{v} B");
    }
    let mut x = v as f64 / 1024.0;
    let mut u = 0;
    while x.abs() >= 1024.0 && u + 1 < units.len() {
        x /= 1024.0;
        u += 1;
    }
    format!("{x:.2} {}", units[u])
}

/// The report: a header, the totals of every sample type, and the top
/// `n` functions by flat value of type `ty`.
pub(crate) fn top_table(p: &Profile, file: &str, ty: usize, a: &Analysis, n: usize) -> String {
    let mut s = String::new();
    let type_name = p.str(p.sample_type[ty].ty);
    let _ = writeln!(s, "File: {file}");
    let _ = writeln!(s, "Type: {type_name}");
    let totals: Vec<String> = (0..p.sample_type.len())
        .map(|t| {
            let sum = p
                .sample
                .iter()
                .fold(0i64, |acc, x| acc.saturating_add(x.value[t]));
            format!("{} {}", p.str(p.sample_type[t].ty), format_value(p, t, sum))
        })
        .collect();
    let _ = writeln!(s, "Totals: {}", totals.join(", "));
    if p.duration_nanos > 0 {
        let _ = writeln!(s, "Duration: {:.2} s", p.duration_nanos as f64 / 1e9);
    }
    let mut rows: Vec<(&str, i64, i64)> = a
        .by_function
        .iter()
        .map(|(name, &(flat, cum))| (name.as_str(), flat, cum))
        .collect();
    rows.sort_by(|x, y| y.1.cmp(&x.1).then(y.2.cmp(&x.2)).then_with(|| x.0.cmp(y.0)));
    let _ = writeln!(
        s,
        "Showing top {} of {} functions, by flat {type_name} ({} samples)",
        n.min(rows.len()),
        rows.len(),
        p.sample.len()
    );
    let _ = writeln!(
        s,
        "{:>10} {:>7} {:>7} {:>10} {:>7}  function",
        "flat", "flat%", "sum%", "cum", "cum%"
    );
    let pct = |v: i64| {
        if a.total == 0 {
            0.0
        } else {
            100.0 * v as f64 / a.total as f64
        }
    };
    let mut sum = 0i64;
    for (name, flat, cum) in rows.into_iter().take(n) {
        sum = sum.saturating_add(flat);
        let _ = writeln!(
            s,
            "{:>10} {:>6.2}% {:>6.2}% {:>10} {:>6.2}%  {name}",
            format_value(p, ty, flat),
            pct(flat),
            pct(sum),
            format_value(p, ty, cum),
            pct(cum),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pprof::{Function, Line, Sample, ValueType};

    #[test]
    fn allocator_frames() {
        for f in [
            "goheap::alloc::alloc_small",
            "goheap_core::mcache::refill",
            "goheap_capi::malloc",
            "goheap_malloc",
            "<goheap::GoHeap as core::alloc::global::GlobalAlloc>::alloc",
            "malloc",
            "posix_memalign",
            "operator new(unsigned long)",
            "operator new[](unsigned long, std::align_val_t)",
            "__rust_alloc",
            "__rust_alloc_zeroed",
            "__rdl_alloc",
            "alloc::alloc::exchange_malloc",
            "<alloc::alloc::Global as core::alloc::Allocator>::allocate",
            "alloc::raw_vec::RawVecInner<A>::try_allocate_in",
            // The collected heap's path: a Gc sample starts at the caller
            // of Gc::new, as the profile's drop_frames has it.
            "goheap_gc::gc::Gc<T>::new",
            "<goheap_gc::gc::Gc<profile::Node>>::new_zeroed",
            "goheap_gc::mutator::Mutator::op",
            "goheap::gcheap::GcCache::alloc_in_sampled",
        ] {
            assert!(is_allocator_frame(f), "{f}");
        }
        for f in [
            "main",
            "malloc_wrapper",
            "alloc_site_alpha",
            "alloc::vec::Vec<T>::with_capacity",
            "std::vector<int>::push_back",
            "my::goheap::thing",
        ] {
            assert!(!is_allocator_frame(f), "{f}");
        }
    }

    #[test]
    fn bytes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.00 KiB");
        assert_eq!(human_bytes(3 << 20), "3.00 MiB");
        assert_eq!(human_bytes(-(5 << 30)), "-5.00 GiB");
        assert_eq!(human_bytes(12_900_000), "12.30 MiB");
    }

    #[test]
    fn svg_paths() {
        let d = |s: &str| default_svg_path(Path::new(s));
        assert_eq!(d("heap.pb.gz"), Path::new("heap.svg"));
        assert_eq!(d("/t/heap.pprof"), Path::new("/t/heap.svg"));
        assert_eq!(d("heap"), Path::new("heap.svg"));
        assert_eq!(d("x.svg"), Path::new("x.svg.flame.svg"));
    }

    /// A symbolized profile: main -> alpha -> malloc (3 B, 1 object),
    /// main -> beta (1 B), with inuse_space and alloc_objects.
    fn profile() -> Profile {
        let strings = [
            "",
            "inuse_space",
            "bytes",
            "alloc_objects",
            "count",
            "main",
            "alpha",
            "beta",
            "malloc",
            "m.go",
        ];
        let f = |id, name| Function {
            id,
            name,
            filename: 9,
            ..Function::default()
        };
        let loc = |id, function_id| Location {
            id,
            line: vec![Line {
                function_id,
                line: id as i64 * 10,
            }],
            ..Location::default()
        };
        Profile {
            sample_type: vec![ValueType { ty: 3, unit: 4 }, ValueType { ty: 1, unit: 2 }],
            sample: vec![
                Sample {
                    location_id: vec![4, 2, 1],
                    value: vec![1, 3],
                },
                Sample {
                    location_id: vec![3, 1],
                    value: vec![1, 1],
                },
            ],
            location: vec![loc(1, 1), loc(2, 2), loc(3, 3), loc(4, 4)],
            function: vec![f(1, 5), f(2, 6), f(3, 7), f(4, 8)],
            string_table: strings.iter().map(|s| s.to_string()).collect(),
            ..Profile::default()
        }
    }

    #[test]
    fn flat_cum_and_the_table() {
        let p = profile();
        p.check().unwrap();
        let ty = choose_sample_type(&p, None).unwrap();
        assert_eq!(ty, 1, "inuse_space first");
        assert_eq!(choose_sample_type(&p, Some("alloc_objects")), Ok(0));
        assert!(choose_sample_type(&p, Some("x"))
            .unwrap_err()
            .contains("it has alloc_objects, inuse_space"));
        let stacks = resolve(&p, &mut Symbolizer::default(), false);
        let a = analyze(&p, &stacks, ty, false);
        assert_eq!(a.total, 4);
        assert_eq!(a.by_function["alpha"], (3, 3));
        assert_eq!(a.by_function["beta"], (1, 1));
        assert_eq!(a.by_function["main"], (0, 4));
        assert!(!a.by_function.contains_key("malloc"));
        let t = top_table(&p, "h.pb", ty, &a, 2);
        assert!(
            t.contains("Totals: alloc_objects 2, inuse_space 4 B"),
            "{t}"
        );
        let rows: Vec<&str> = t.lines().skip(5).collect();
        assert_eq!(rows.len(), 2, "{t}");
        assert!(rows[0].ends_with("  alpha"), "{t}");
        assert!(rows[0].contains("75.00%  75.00%"), "{t}");
        assert!(rows[1].ends_with("  beta"), "{t}");
        assert!(rows[1].contains("25.00% 100.00%"), "{t}");
        let a = analyze(&p, &stacks, ty, true);
        assert_eq!(a.by_function["malloc"], (3, 3));
        assert_eq!(a.by_function["alpha"], (0, 3));
        let stacks = resolve(&p, &mut Symbolizer::default(), true);
        assert_eq!(stacks[&2][0].key, "alpha m.go:20");
        assert_eq!(stacks[&2][0].function, "alpha");
        // The allocator's frames are known by their function, not key.
        let a = analyze(&p, &stacks, ty, false);
        assert!(!a.by_function.contains_key("malloc m.go:40"));
        assert_eq!(a.by_function["alpha m.go:20"], (3, 3));
    }

    #[test]
    fn unsymbolized_addresses() {
        let mut p = profile();
        p.string_table.push("/nonexistent/libfoo.so".into());
        p.mapping.push(crate::pprof::Mapping {
            id: 1,
            memory_start: 0x7f00_0000_0000,
            memory_limit: 0x7f00_0010_0000,
            file_offset: 0x1000,
            filename: 10,
            ..Default::default()
        });
        p.location.push(Location {
            id: 5,
            mapping_id: 1,
            address: 0x7f00_0000_0234,
            ..Default::default()
        });
        p.location.push(Location {
            id: 6,
            address: 0x1234,
            ..Default::default()
        });
        let mut sym = Symbolizer::default();
        let stacks = resolve(&p, &mut sym, false);
        assert_eq!(stacks[&5][0].key, "libfoo.so+0x1234");
        assert_eq!(stacks[&6][0].key, "0x1234");
        assert_eq!(sym.warnings.len(), 1);
    }

    #[test]
    fn samples_of_no_value_are_left_out() {
        let mut p = profile();
        // gamma's only sample: allocated, all freed.
        p.string_table.push("gamma".into());
        p.function.push(Function {
            id: 5,
            name: 10,
            ..Function::default()
        });
        p.location.push(Location {
            id: 5,
            line: vec![Line {
                function_id: 5,
                line: 1,
            }],
            ..Location::default()
        });
        p.sample.push(Sample {
            location_id: vec![5, 1],
            value: vec![7, 0],
        });
        let stacks = resolve(&p, &mut Symbolizer::default(), false);
        let inuse = analyze(&p, &stacks, 1, false);
        assert!(!inuse.by_function.contains_key("gamma"));
        assert_eq!(inuse.by_function["main"], (0, 4));
        assert!(!inuse.tree.children["main"].children.contains_key("gamma"));
        let t = top_table(&p, "h.pb", 1, &inuse, 10);
        assert!(t.contains("Showing top 3 of 3 functions"), "{t}");
        let allocs = analyze(&p, &stacks, 0, false);
        assert_eq!(allocs.by_function["gamma"], (7, 7));
        assert_eq!(allocs.total, 9);
    }

    #[test]
    fn a_function_inlined_into_itself_is_one_frame() {
        let mut p = profile();
        // alpha at line 5, "inlined" into alpha at line 1, into main.
        let line = |function_id, line| Line { function_id, line };
        p.location.push(Location {
            id: 7,
            line: vec![line(2, 5), line(2, 1), line(1, 30)],
            ..Default::default()
        });
        let stacks = resolve(&p, &mut Symbolizer::default(), false);
        let keys: Vec<&str> = stacks[&7].iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["alpha", "main"]);
        let stacks = resolve(&p, &mut Symbolizer::default(), true);
        let keys: Vec<&str> = stacks[&7].iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["alpha m.go:5", "alpha m.go:1", "main m.go:30"]);
    }
}
