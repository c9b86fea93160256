//! Turns the bare addresses of a profile's locations into function names:
//! a runtime address is converted to the offset in its mapping's file
//! (`address − memory_start + file_offset`), then through the ELF program
//! headers to the file's virtual address (the PT_LOAD segment holding that
//! offset), which is looked up in the file's DWARF (with inlined frames)
//! by `addr2line`, else in its symbol table (.symtab, else .dynsym): the
//! function symbol at or before it whose extent (st_size) holds it. A
//! stripped library has only its exported functions in .dynsym; an address
//! in a static function after one of them is not that function's, and is
//! left unsymbolized rather than misnamed.
//! Names are demangled: Rust (legacy and v0, without the trailing hash)
//! and C++ (Itanium ABI).
//!
//! An address with no name (a stripped binary's static function) can still
//! be put in its function: [`Symbolizer::function_start`] finds the start
//! of the function holding it from the file's `.eh_frame` (through the
//! binary-search table of `.eh_frame_hdr`), which stripping keeps, as
//! unwinding needs it.
//!
//! Each file is opened once; one that cannot be read is a warning on
//! stderr (once per file), and its addresses are shown as `file+0xoffset`.

use std::collections::HashMap;
use std::fs::File;

/// A symbolized frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    /// The function's demangled name.
    pub(crate) name: String,
    /// Its source file, where known.
    pub(crate) file: Option<String>,
    /// The line in it (0: unknown).
    pub(crate) line: u32,
}

/// Where an address was mapped in the profiled process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MappedAt<'a> {
    /// The mapped file's path.
    pub(crate) path: &'a str,
    /// The mapping's first runtime address.
    pub(crate) memory_start: u64,
    /// The file offset mapped there.
    pub(crate) file_offset: u64,
}

impl MappedAt<'_> {
    /// The offset in the file of runtime address `addr`.
    pub(crate) fn file_offset_of(&self, addr: u64) -> u64 {
        addr.wrapping_sub(self.memory_start)
            .wrapping_add(self.file_offset)
    }
}

/// A PT_LOAD segment: where its bytes are in the file and in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    /// p_offset.
    pub(crate) offset: u64,
    /// p_filesz.
    pub(crate) file_size: u64,
    /// p_vaddr.
    pub(crate) vaddr: u64,
}

/// The virtual address (as in the file's symbols and DWARF) of file offset
/// `off`, through the segment that holds it.
pub(crate) fn vaddr_of_offset(segments: &[Segment], off: u64) -> Option<u64> {
    segments
        .iter()
        .find(|s| off >= s.offset && off - s.offset < s.file_size)
        .map(|s| off - s.offset + s.vaddr)
}

/// A function symbol: its virtual address, size (0: unknown) and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Symbol {
    pub(crate) addr: u64,
    pub(crate) size: u64,
    pub(crate) name: String,
}

/// A binary's function symbols, sorted by address.
#[derive(Debug, Default)]
pub(crate) struct Symbols(Vec<Symbol>);

impl Symbols {
    pub(crate) fn new(mut syms: Vec<Symbol>) -> Symbols {
        // By address, the sized first among symbols at one address (aliases,
        // versioned twins).
        syms.sort_by(|a, b| a.addr.cmp(&b.addr).then(b.size.cmp(&a.size)));
        Symbols(syms)
    }

    /// The function holding `vaddr`: of the symbols at the greatest address
    /// not above it, one whose extent holds it, else one of unknown size
    /// (0); none if every one ends before `vaddr`.
    pub(crate) fn find(&self, vaddr: u64) -> Option<&str> {
        let end = self.0.partition_point(|s| s.addr <= vaddr);
        let nearest = self.0[..end].last()?.addr;
        let at = self.0[..end].iter().rev().take_while(|s| s.addr == nearest);
        let mut sizeless = None;
        for s in at {
            if s.size == 0 {
                sizeless.get_or_insert(s);
            } else if vaddr - s.addr < s.size {
                return Some(&s.name);
            }
        }
        sizeless.map(|s| s.name.as_str())
    }
}

/// The file offset of virtual address `vaddr`, through the segment that
/// holds it ([`vaddr_of_offset`] reversed).
pub(crate) fn offset_of_vaddr(segments: &[Segment], vaddr: u64) -> Option<u64> {
    segments
        .iter()
        .find(|s| vaddr >= s.vaddr && vaddr - s.vaddr < s.file_size)
        .map(|s| vaddr - s.vaddr + s.offset)
}

/// A binary's call frame information: `.eh_frame_hdr` and `.eh_frame`,
/// copied, with their virtual addresses (which their pointers are relative
/// to).
struct Cfi {
    hdr: Vec<u8>,
    hdr_addr: u64,
    eh: Vec<u8>,
    eh_addr: u64,
    text_addr: u64,
    address_size: u8,
}

impl Cfi {
    /// The start of the function (the FDE) holding `vaddr`.
    fn function_start(&self, vaddr: u64) -> Option<u64> {
        use addr2line::gimli::{BaseAddresses, EhFrame, EhFrameHdr, NativeEndian, UnwindSection};
        let bases = BaseAddresses::default()
            .set_eh_frame_hdr(self.hdr_addr)
            .set_eh_frame(self.eh_addr)
            .set_text(self.text_addr);
        let hdr = EhFrameHdr::new(&self.hdr[..], NativeEndian)
            .parse(&bases, self.address_size)
            .ok()?;
        let eh = EhFrame::new(&self.eh[..], NativeEndian);
        let fde = hdr
            .table()?
            .fde_for_address(&eh, &bases, vaddr, |eh, bases, off| {
                eh.cie_from_offset(bases, off)
            })
            .ok()?;
        Some(fde.initial_address())
    }
}

/// An opened binary.
struct Binary {
    loader: addr2line::Loader,
    segments: Vec<Segment>,
    symbols: Symbols,
    cfi: Option<Cfi>,
}

/// Symbolizes addresses, caching each binary.
#[derive(Default)]
pub(crate) struct Symbolizer {
    /// By path; `None` for a file that could not be read.
    binaries: HashMap<String, Option<Binary>>,
    /// The warnings printed, for the tests.
    pub(crate) warnings: Vec<String>,
}

impl Symbolizer {
    /// The frames of `addr` in `at`, innermost (inlined callee) first;
    /// empty when the address cannot be symbolized.
    pub(crate) fn frames(&mut self, at: MappedAt<'_>, addr: u64) -> Vec<Frame> {
        let Some(bin) = self.binary(at.path) else {
            return Vec::new();
        };
        let Some(vaddr) = vaddr_of_offset(&bin.segments, at.file_offset_of(addr)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Ok(mut frames) = bin.loader.find_frames(vaddr) {
            while let Ok(Some(f)) = frames.next() {
                let Some(name) = f.function.as_ref().and_then(|n| n.raw_name().ok()) else {
                    continue;
                };
                let (file, line) = f.location.map_or((None, 0), |l| {
                    (l.file.map(str::to_owned), l.line.unwrap_or(0))
                });
                out.push(Frame {
                    name: demangle(&name),
                    file,
                    line,
                });
            }
        }
        if out.is_empty() {
            if let Some(sym) = bin.symbols.find(vaddr) {
                out.push(Frame {
                    name: demangle(sym),
                    file: None,
                    line: 0,
                });
            }
        }
        out
    }

    /// The offset in its file of the start of the function holding `addr`
    /// in `at`, from the file's `.eh_frame`; `None` if the file cannot be
    /// read, has no `.eh_frame_hdr` or no entry covers the address.
    pub(crate) fn function_start(&mut self, at: MappedAt<'_>, addr: u64) -> Option<u64> {
        let bin = self.binary(at.path)?;
        let vaddr = vaddr_of_offset(&bin.segments, at.file_offset_of(addr))?;
        let start = bin.cfi.as_ref()?.function_start(vaddr)?;
        offset_of_vaddr(&bin.segments, start)
    }

    /// The binary at `path`, opened on first use; `None` (and a warning,
    /// once) if it cannot be read.
    fn binary(&mut self, path: &str) -> Option<&Binary> {
        // Pseudo-files of /proc/self/maps ([vdso], [heap], anonymous
        // memory) have nothing to read.
        if path.is_empty() || path.starts_with('[') {
            return None;
        }
        let bin = self
            .binaries
            .entry(path.to_owned())
            .or_insert_with(|| match open(path) {
                Ok(b) => Some(b),
                Err(e) => {
                    let w = format!(
                        "goheap profile: warning: cannot read {path}: {e}; its addresses are \
                         shown unsymbolized"
                    );
                    eprintln!("{w}");
                    self.warnings.push(w);
                    None
                }
            });
        bin.as_ref()
    }
}

/// Opens the binary at `path`: its DWARF and symbols, and its PT_LOAD
/// segments.
fn open(path: &str) -> Result<Binary, String> {
    use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol, SymbolKind};
    // The program headers are read through a cache of the file, not the
    // whole file: a binary with debug info can be hundreds of MB.
    let file = File::open(path).map_err(|e| e.to_string())?;
    let cache = object::ReadCache::new(file);
    let obj = object::File::parse(&cache).map_err(|e| format!("not an object file: {e}"))?;
    let segments = obj
        .segments()
        .map(|s| {
            let (offset, file_size) = s.file_range();
            Segment {
                offset,
                file_size,
                vaddr: s.address(),
            }
        })
        .collect();
    let functions = |syms: object::SymbolIterator<'_, '_, _>| -> Vec<Symbol> {
        syms.filter(|s| s.kind() == SymbolKind::Text && s.is_definition() && s.address() != 0)
            .filter_map(|s| {
                Some(Symbol {
                    addr: s.address(),
                    size: s.size(),
                    name: s.name().ok()?.to_owned(),
                })
            })
            .collect()
    };
    let mut syms = functions(obj.symbols());
    if syms.is_empty() {
        syms = functions(obj.dynamic_symbols());
    }
    let section = |name: &str| {
        let s = obj.section_by_name(name)?;
        Some((s.data().ok()?.to_vec(), s.address()))
    };
    let cfi = match (section(".eh_frame_hdr"), section(".eh_frame")) {
        (Some((hdr, hdr_addr)), Some((eh, eh_addr))) => Some(Cfi {
            hdr,
            hdr_addr,
            eh,
            eh_addr,
            text_addr: obj.section_by_name(".text").map_or(0, |s| s.address()),
            address_size: if obj.is_64() { 8 } else { 4 },
        }),
        _ => None,
    };
    let loader = addr2line::Loader::new(path).map_err(|e| e.to_string())?;
    Ok(Binary {
        loader,
        segments,
        symbols: Symbols::new(syms),
        cfi,
    })
}

/// `name` demangled if it is a Rust (legacy or v0; shown without the
/// hash) or C++ symbol, else as it is.
pub(crate) fn demangle(name: &str) -> String {
    if let Ok(d) = rustc_demangle::try_demangle(name) {
        let short = format!("{d:#}");
        // A legacy Rust symbol and a C++ one both start with _ZN; the
        // hash (which the alternate form leaves out) tells Rust's apart.
        if name.starts_with("_R") || format!("{d}") != short {
            return short;
        }
    }
    if name.starts_with("_Z") {
        if let Ok(sym) = cpp_demangle::Symbol::new(name) {
            if let Ok(s) = sym.demangle(&cpp_demangle::DemangleOptions::default()) {
                return s;
            }
        }
    }
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demangles_rust_and_cpp() {
        assert_eq!(
            demangle("_ZN4core3fmt5write17h0123456789abcdefE"),
            "core::fmt::write"
        );
        assert_eq!(
            demangle("_RNvCs1234_7profapp15alloc_site_rust"),
            "profapp::alloc_site_rust"
        );
        assert_eq!(demangle("_ZN3foo3barEv"), "foo::bar()");
        assert_eq!(demangle("_Znwm"), "operator new(unsigned long)");
        assert_eq!(demangle("alloc_site_alpha"), "alloc_site_alpha");
        assert_eq!(demangle("_Zgarbage"), "_Zgarbage");
    }

    #[test]
    fn offsets_to_vaddrs() {
        let segs = [
            Segment {
                offset: 0,
                file_size: 0x1000,
                vaddr: 0,
            },
            Segment {
                offset: 0x1000,
                file_size: 0x2345,
                vaddr: 0x401000,
            },
        ];
        assert_eq!(vaddr_of_offset(&segs, 0x10), Some(0x10));
        assert_eq!(vaddr_of_offset(&segs, 0x1010), Some(0x401010));
        assert_eq!(vaddr_of_offset(&segs, 0x3344), Some(0x403344));
        assert_eq!(vaddr_of_offset(&segs, 0x3345), None);
        assert_eq!(offset_of_vaddr(&segs, 0x401010), Some(0x1010));
        assert_eq!(offset_of_vaddr(&segs, 0x10), Some(0x10));
        assert_eq!(offset_of_vaddr(&segs, 0x403345), None);
        let at = MappedAt {
            path: "x",
            memory_start: 0x7f00_0000_1000,
            file_offset: 0x1000,
        };
        assert_eq!(at.file_offset_of(0x7f00_0000_1234), 0x1234);
    }

    #[test]
    fn a_symbol_names_only_the_addresses_it_spans() {
        let sym = |addr, size, name: &str| Symbol {
            addr,
            size,
            name: name.to_owned(),
        };
        let s = Symbols::new(vec![
            sym(0x2000, 0x10, "exported_after"),
            // .dynsym of a stripped library: a 1-byte function, then a
            // static one the table does not have.
            sym(0x1000, 0x1, "tiny"),
            sym(0x3000, 0, "label"),
            sym(0x4000, 0x20, "versioned"),
            sym(0x4000, 0x20, "versioned_twin"),
            sym(0x5000, 0, "alias"),
            sym(0x5000, 0x8, "sized"),
        ]);
        assert_eq!(s.find(0xfff), None);
        assert_eq!(s.find(0x1000), Some("tiny"));
        assert_eq!(s.find(0x1001), None);
        assert_eq!(s.find(0x1800), None);
        assert_eq!(s.find(0x200f), Some("exported_after"));
        assert_eq!(s.find(0x2010), None);
        // Unknown size: to the next symbol.
        assert_eq!(s.find(0x3fff), Some("label"));
        assert!(matches!(
            s.find(0x401f),
            Some("versioned" | "versioned_twin")
        ));
        assert_eq!(s.find(0x4020), None);
        assert_eq!(s.find(0x5004), Some("sized"));
        assert_eq!(s.find(0x5008), Some("alias"));
        assert_eq!(Symbols::default().find(0x1000), None);
    }

    #[test]
    fn missing_binary_warns_once() {
        let mut s = Symbolizer::default();
        let at = MappedAt {
            path: "/nonexistent/libfoo.so",
            memory_start: 0x1000,
            file_offset: 0,
        };
        assert!(s.frames(at, 0x1234).is_empty());
        assert!(s.frames(at, 0x1238).is_empty());
        assert_eq!(s.warnings.len(), 1);
        let vdso = MappedAt {
            path: "[vdso]",
            ..at
        };
        assert!(s.frames(vdso, 0x1234).is_empty());
        assert_eq!(s.warnings.len(), 1);
    }
}
