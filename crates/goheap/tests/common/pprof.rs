//! A reader for the heap profiles goheap writes, for the tests: gzip of
//! stored deflate blocks (what goheap writes), pprof's `profile.proto`,
//! and the symbol table of the test executable to tell which function a
//! frame address lies in. Shared by goheap's and goheap-gc's tests
//! (`#[path]`: one copy).
#![allow(dead_code)]

/// What the tests read of a profile.
#[derive(Debug, Default)]
pub(crate) struct Profile {
    pub(crate) sample_type: Vec<(i64, i64)>,
    pub(crate) samples: Vec<Sample>,
    pub(crate) mappings: Vec<Mapping>,
    pub(crate) locations: Vec<Location>,
    pub(crate) strings: Vec<String>,
    pub(crate) drop_frames: i64,
    pub(crate) period_type: (i64, i64),
    pub(crate) period: i64,
}

#[derive(Debug, Default)]
pub(crate) struct Sample {
    pub(crate) location_ids: Vec<u64>,
    pub(crate) values: Vec<i64>,
    pub(crate) bytes_label: Option<i64>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Mapping {
    pub(crate) id: u64,
    pub(crate) start: u64,
    pub(crate) limit: u64,
    pub(crate) offset: u64,
    pub(crate) filename: i64,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Location {
    pub(crate) id: u64,
    pub(crate) mapping_id: u64,
    pub(crate) address: u64,
}

/// Sums of the four sample values.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Totals {
    pub(crate) alloc_objects: i64,
    pub(crate) alloc_space: i64,
    pub(crate) inuse_objects: i64,
    pub(crate) inuse_space: i64,
}

impl Profile {
    pub(crate) fn string(&self, i: i64) -> &str {
        &self.strings[i as usize]
    }

    pub(crate) fn sample_types(&self) -> Vec<String> {
        self.sample_type
            .iter()
            .map(|&(t, u)| format!("{}/{}", self.string(t), self.string(u)))
            .collect()
    }

    pub(crate) fn period_type(&self) -> String {
        format!(
            "{}/{}",
            self.string(self.period_type.0),
            self.string(self.period_type.1)
        )
    }

    pub(crate) fn mapping_of(&self, addr: u64) -> Option<&Mapping> {
        self.mappings
            .iter()
            .find(|m| m.start <= addr && addr < m.limit)
    }

    fn address(&self, id: u64) -> u64 {
        self.locations
            .iter()
            .find(|l| l.id == id)
            .expect("location id")
            .address
    }

    /// The frame addresses of sample `s`, innermost first.
    pub(crate) fn frames(&self, s: &Sample) -> Vec<u64> {
        s.location_ids.iter().map(|&id| self.address(id)).collect()
    }

    /// The totals of the samples with a frame for which `at` holds.
    pub(crate) fn totals_at(&self, at: impl Fn(u64) -> bool) -> Totals {
        let mut t = Totals::default();
        for s in &self.samples {
            if s.location_ids.iter().any(|&id| at(self.address(id))) {
                t.alloc_objects += s.values[0];
                t.alloc_space += s.values[1];
                t.inuse_objects += s.values[2];
                t.inuse_space += s.values[3];
            }
        }
        t
    }
}

/// Inflates a gzip stream of stored deflate blocks.
pub(crate) fn gunzip(b: &[u8]) -> Result<Vec<u8>, String> {
    if b.len() < 18 || b[0] != 0x1f || b[1] != 0x8b || b[2] != 8 {
        return Err("not a gzip stream".into());
    }
    if b[3] != 0 {
        return Err(format!("gzip flags {:#x}: not written by goheap", b[3]));
    }
    let mut i = 10;
    let mut out = Vec::new();
    loop {
        let head = *b.get(i).ok_or("truncated block header")?;
        if head >> 1 != 0 {
            return Err(format!(
                "block type {} at {i}: not a stored block",
                head >> 1
            ));
        }
        let len = u16::from_le_bytes([b[i + 1], b[i + 2]]) as usize;
        let nlen = u16::from_le_bytes([b[i + 3], b[i + 4]]) as usize;
        if len != !nlen & 0xffff {
            return Err(format!("stored block at {i}: LEN and NLEN disagree"));
        }
        out.extend_from_slice(b.get(i + 5..i + 5 + len).ok_or("truncated block")?);
        i += 5 + len;
        if head & 1 == 1 {
            break;
        }
    }
    let tail = b.get(i..i + 8).ok_or("truncated trailer")?;
    let size = u32::from_le_bytes(tail[4..8].try_into().unwrap());
    if size as usize != out.len() {
        return Err(format!("ISIZE {size} but {} bytes inflated", out.len()));
    }
    if u32::from_le_bytes(tail[..4].try_into().unwrap()) != crc32(&out) {
        return Err("CRC mismatch".into());
    }
    Ok(out)
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                0xedb8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.i).ok_or("truncated varint")?;
            self.i += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn next(&mut self) -> Result<Option<(u64, Value<'a>)>, String> {
        if self.i == self.b.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let v = match key & 7 {
            0 => Value::Varint(self.varint()?),
            2 => {
                let n = self.varint()? as usize;
                let s = self.b.get(self.i..self.i + n).ok_or("truncated field")?;
                self.i += n;
                Value::Bytes(s)
            }
            w => return Err(format!("wire type {w} at {}", self.i)),
        };
        Ok(Some((key >> 3, v)))
    }
}

fn fields(b: &[u8], mut f: impl FnMut(u64, Value<'_>) -> Result<(), String>) -> Result<(), String> {
    let mut r = Reader { b, i: 0 };
    while let Some((n, v)) = r.next()? {
        f(n, v)?;
    }
    Ok(())
}

/// A repeated scalar, packed or not.
fn push_ints(out: &mut Vec<u64>, v: Value<'_>) -> Result<(), String> {
    match v {
        Value::Varint(x) => out.push(x),
        Value::Bytes(b) => {
            let mut r = Reader { b, i: 0 };
            while r.i < b.len() {
                out.push(r.varint()?);
            }
        }
    }
    Ok(())
}

fn int(v: Value<'_>) -> Result<u64, String> {
    match v {
        Value::Varint(x) => Ok(x),
        Value::Bytes(_) => Err("expected a varint".into()),
    }
}

fn bytes(v: Value<'_>) -> Result<&[u8], String> {
    match v {
        Value::Bytes(b) => Ok(b),
        Value::Varint(_) => Err("expected bytes".into()),
    }
}

fn value_type(b: &[u8]) -> Result<(i64, i64), String> {
    let mut t = (0, 0);
    fields(b, |n, v| {
        match n {
            1 => t.0 = int(v)? as i64,
            2 => t.1 = int(v)? as i64,
            _ => {}
        }
        Ok(())
    })?;
    Ok(t)
}

/// Decodes a (gzipped) profile.
pub(crate) fn decode(file: &[u8]) -> Result<Profile, String> {
    let raw = gunzip(file)?;
    let mut p = Profile::default();
    fields(&raw, |n, v| {
        match n {
            1 => p.sample_type.push(value_type(bytes(v)?)?),
            2 => {
                let mut s = Sample::default();
                fields(bytes(v)?, |n, v| {
                    match n {
                        1 => push_ints(&mut s.location_ids, v)?,
                        2 => {
                            let mut vals = Vec::new();
                            push_ints(&mut vals, v)?;
                            s.values.extend(vals.into_iter().map(|x| x as i64));
                        }
                        3 => {
                            let (mut key, mut num) = (0, 0);
                            fields(bytes(v)?, |n, v| {
                                match n {
                                    1 => key = int(v)?,
                                    3 => num = int(v)? as i64,
                                    _ => {}
                                }
                                Ok(())
                            })?;
                            if key != 0 {
                                s.bytes_label = Some(num);
                            }
                        }
                        _ => {}
                    }
                    Ok(())
                })?;
                p.samples.push(s);
            }
            3 => {
                let mut m = Mapping::default();
                fields(bytes(v)?, |n, v| {
                    match n {
                        1 => m.id = int(v)?,
                        2 => m.start = int(v)?,
                        3 => m.limit = int(v)?,
                        4 => m.offset = int(v)?,
                        5 => m.filename = int(v)? as i64,
                        _ => {}
                    }
                    Ok(())
                })?;
                p.mappings.push(m);
            }
            4 => {
                let mut l = Location::default();
                fields(bytes(v)?, |n, v| {
                    match n {
                        1 => l.id = int(v)?,
                        2 => l.mapping_id = int(v)?,
                        3 => l.address = int(v)?,
                        _ => {}
                    }
                    Ok(())
                })?;
                p.locations.push(l);
            }
            6 => p
                .strings
                .push(String::from_utf8_lossy(bytes(v)?).into_owned()),
            7 => p.drop_frames = int(v)? as i64,
            11 => p.period_type = value_type(bytes(v)?)?,
            12 => p.period = int(v)? as i64,
            _ => {}
        }
        Ok(())
    })?;
    if p.strings.first().map(String::as_str) != Some("") {
        return Err("string_table[0] is not empty".into());
    }
    Ok(p)
}

/// Address ranges of named functions of the running test executable,
/// from its ELF symbol table.
pub(crate) struct Symbols {
    ranges: Vec<(String, u64, u64)>,
}

impl Symbols {
    /// `wanted`: (a name the mangled symbol contains, the function's
    /// run-time address).
    pub(crate) fn of_this_executable(wanted: &[(&str, usize)]) -> Symbols {
        let mut ranges = Vec::new();
        Self::for_each_function(|name, _, size| {
            for &(want, runtime) in wanted {
                if name.contains(want) {
                    let runtime = runtime as u64;
                    ranges.push((want.to_string(), runtime, runtime + size));
                }
            }
        });
        for &(want, _) in wanted {
            assert!(
                ranges.iter().any(|r| r.0 == want),
                "{want} not in the symbol table"
            );
        }
        Symbols { ranges }
    }

    /// Every function of the running test executable (its mangled name
    /// and run-time range), placed by `anchor`: a function's run-time
    /// address and a name its mangled symbol contains.
    pub(crate) fn all_functions(anchor: (&str, usize)) -> Symbols {
        let placed = Symbols::of_this_executable(&[anchor]);
        let bias = placed.ranges[0].1.wrapping_sub(Self::link_value(anchor.0));
        let mut ranges = Vec::new();
        Self::for_each_function(|name, value, size| {
            ranges.push((
                name.to_string(),
                value.wrapping_add(bias),
                value.wrapping_add(bias) + size,
            ))
        });
        Symbols { ranges }
    }

    /// The link-time address of the first function whose name contains
    /// `want`.
    fn link_value(want: &str) -> u64 {
        let mut found = None;
        Self::for_each_function(|name, value, _| {
            if found.is_none() && name.contains(want) {
                found = Some(value);
            }
        });
        found.expect("the anchor is in the symbol table")
    }

    /// Calls `f` with each function symbol's name, value and size.
    fn for_each_function(mut f: impl FnMut(&str, u64, u64)) {
        let elf = std::fs::read("/proc/self/exe").unwrap();
        let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
        let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) as usize;
        let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
        assert_eq!(&elf[..4], b"\x7fELF");
        let shoff = u64_at(0x28) as usize;
        let shentsize = u16_at(0x3a);
        let shnum = u16_at(0x3c);
        let sh = |i: usize| shoff + i * shentsize;
        for i in 0..shnum {
            if u32_at(sh(i) + 4) != 2 {
                continue; // SHT_SYMTAB only
            }
            let off = u64_at(sh(i) + 0x18) as usize;
            let size = u64_at(sh(i) + 0x20) as usize;
            let strtab = u64_at(sh(u32_at(sh(i) + 0x28)) + 0x18) as usize;
            for s in (off..off + size).step_by(24) {
                if elf[s + 4] & 0xf != 2 {
                    continue; // STT_FUNC only
                }
                let name_off = u32_at(s);
                let end = elf[strtab + name_off..]
                    .iter()
                    .position(|&c| c == 0)
                    .unwrap();
                let name = std::str::from_utf8(&elf[strtab + name_off..strtab + name_off + end])
                    .unwrap_or("");
                f(name, u64_at(s + 8), u64_at(s + 16));
            }
        }
    }

    /// The (mangled) name of the function holding `addr`, if any.
    pub(crate) fn name_at(&self, addr: u64) -> Option<&str> {
        self.ranges
            .iter()
            .find(|(_, lo, hi)| (*lo..*hi).contains(&addr))
            .map(|(n, _, _)| n.as_str())
    }

    pub(crate) fn is_in(&self, name: &str, addr: u64) -> bool {
        self.ranges
            .iter()
            .any(|(n, lo, hi)| n == name && (*lo..*hi).contains(&addr))
    }
}
