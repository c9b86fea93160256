//! Reads a heap profile in pprof's format: `profile.proto` of
//! github.com/google/pprof (package `perftools.profiles`), gzipped (the
//! file starts with 1f 8b) or plain, decoded by the small protobuf reader
//! below into plain structs. Nothing here panics on bad input: every
//! problem is a [`ProfileError`] naming the field and the byte offset.
//!
//! # The subset of profile.proto that goheap relies on
//!
//! A writer (goheap's own sampler, Go's runtime/pprof, ...) must emit:
//!
//! | message     | field (number)                  | used for                                 |
//! |-------------|---------------------------------|------------------------------------------|
//! | Profile     | sample_type (1), ValueType      | the column names (type) and units        |
//! | Profile     | sample (2)                      | the stacks and their values              |
//! | Profile     | mapping (3)                     | symbolizing bare addresses               |
//! | Profile     | location (4)                    | the frames of the stacks                 |
//! | Profile     | function (5)                    | names of pre-symbolized frames           |
//! | Profile     | string_table (6)                | every string; entry 0 must be ""         |
//! | Profile     | default_sample_type (14)        | the sample type shown without --sample   |
//! | ValueType   | type (1), unit (2)              | string indices; unit "bytes" is printed as B/KiB/MiB/GiB |
//! | Sample      | location_id (1), value (2)      | leaf first; one value per sample_type    |
//! | Mapping     | id (1), memory_start (2), memory_limit (3), file_offset (4), filename (5) | runtime address to file offset |
//! | Location    | id (1), mapping_id (2), address (3), line (4) | a frame, or inlined frames |
//! | Line        | function_id (1), line (2)       | innermost (inlined) first                |
//! | Function    | id (1), name (2), filename (4)  | the frame's name and source file         |
//!
//! Also decoded and kept, but not needed: Mapping.build_id (6),
//! has_functions (7), has_filenames (8), has_line_numbers (9),
//! has_inline_frames (10); Location.is_folded (5); Function.system_name
//! (3), start_line (5); Profile.time_nanos (9), duration_nanos (10),
//! period_type (11), period (12). Skipped whatever their content (any
//! valid wire type): Sample.label (3), Line.column (3), Profile.drop_frames
//! (7), keep_frames (8), comment (13), doc_url (15), and unknown fields.
//!
//! Rules a writer must follow:
//! - ids (mapping, location, function) are non-zero and unique; a
//!   `mapping_id` or `function_id` of 0 means "none";
//! - every string index is within `string_table`;
//! - every `Sample.value` has one value per `sample_type`;
//! - repeated scalars (`location_id`, `value`) may be packed (one
//!   length-delimited field, as proto3 writes them) or not (one varint
//!   field per element); both are accepted, even mixed;
//! - a Location with no `line` is symbolized from its mapping's file (see
//!   [`crate::symbolize`]): `address` is the runtime address of the call
//!   site (return address − 1), and the mapping is one line of the
//!   process's /proc/self/maps (start, end, offset, path);
//! - a Location with `line`s is used as it is (`has_functions` is not
//!   consulted: lines present means symbolized).

use std::collections::HashMap;
use std::fmt;
use std::io::Read;

/// One (type, unit) pair of `Profile.sample_type`, as string indices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ValueType {
    /// The type's name, e.g. `inuse_space`.
    pub(crate) ty: i64,
    /// Its unit, e.g. `bytes` or `count`.
    pub(crate) unit: i64,
}

/// A stack and its values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Sample {
    /// Location ids, leaf first.
    pub(crate) location_id: Vec<u64>,
    /// One value per `Profile.sample_type`.
    pub(crate) value: Vec<i64>,
}

/// A mapped file of the profiled process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Mapping {
    /// Non-zero id, referred to by `Location.mapping_id`.
    pub(crate) id: u64,
    /// Its first runtime address.
    pub(crate) memory_start: u64,
    /// Its end (exclusive).
    pub(crate) memory_limit: u64,
    /// The file offset mapped at `memory_start`.
    pub(crate) file_offset: u64,
    /// The file's path (string index).
    pub(crate) filename: i64,
    /// Its build id (string index).
    pub(crate) build_id: i64,
    /// The writer symbolized its functions.
    pub(crate) has_functions: bool,
    /// The writer gave file names.
    pub(crate) has_filenames: bool,
    /// The writer gave line numbers.
    pub(crate) has_line_numbers: bool,
    /// The writer gave inlined frames.
    pub(crate) has_inline_frames: bool,
}

/// A source line of a location.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Line {
    /// The function (0: none).
    pub(crate) function_id: u64,
    /// The line number (0: unknown).
    pub(crate) line: i64,
}

/// A frame: an address, and when symbolized its lines (inlined frames).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Location {
    /// Non-zero id, referred to by `Sample.location_id`.
    pub(crate) id: u64,
    /// Its mapping (0: none).
    pub(crate) mapping_id: u64,
    /// The runtime address of the call site.
    pub(crate) address: u64,
    /// Innermost (inlined callee) first; empty when not symbolized.
    pub(crate) line: Vec<Line>,
    /// The writer merged several addresses into this location.
    pub(crate) is_folded: bool,
}

/// A function of a pre-symbolized profile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Function {
    /// Non-zero id, referred to by `Line.function_id`.
    pub(crate) id: u64,
    /// Its name, demangled by the writer (string index).
    pub(crate) name: i64,
    /// Its symbol name (string index).
    pub(crate) system_name: i64,
    /// Its source file (string index).
    pub(crate) filename: i64,
    /// Its first line.
    pub(crate) start_line: i64,
}

/// A decoded profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Profile {
    /// What each of a sample's values is.
    pub(crate) sample_type: Vec<ValueType>,
    /// The stacks and their values.
    pub(crate) sample: Vec<Sample>,
    /// The process's mapped files.
    pub(crate) mapping: Vec<Mapping>,
    /// The frames.
    pub(crate) location: Vec<Location>,
    /// The functions of pre-symbolized frames.
    pub(crate) function: Vec<Function>,
    /// Every string; entry 0 is "".
    pub(crate) string_table: Vec<String>,
    /// When the profile was taken (Unix nanoseconds; 0: unknown).
    pub(crate) time_nanos: i64,
    /// Over how long (0: unknown).
    pub(crate) duration_nanos: i64,
    /// What `period` counts.
    pub(crate) period_type: Option<ValueType>,
    /// The sampling period.
    pub(crate) period: i64,
    /// The sample type to show by default (string index; 0: none).
    pub(crate) default_sample_type: i64,
}

/// Why a file is not a profile goheap can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProfileError {
    /// The field being read, e.g. `Profile.sample[3].value`.
    pub(crate) field: String,
    /// Byte offset in the (decompressed) protobuf data, where known.
    pub(crate) offset: Option<usize>,
    /// What is wrong.
    pub(crate) what: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.what)?;
        if let Some(o) = self.offset {
            write!(f, " (at byte offset {o})")?;
        }
        Ok(())
    }
}

impl ProfileError {
    fn new(field: &str, offset: Option<usize>, what: impl Into<String>) -> Self {
        ProfileError {
            field: field.to_owned(),
            offset,
            what: what.into(),
        }
    }

    /// The same error seen from the enclosing message: `prefix.field`, or
    /// `prefix` for an error in the message's own framing (field "").
    fn within(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}

/// A protobuf wire type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    /// 0: a varint.
    Varint,
    /// 1: eight bytes.
    Fixed64,
    /// 2: a varint length, then that many bytes.
    Len,
    /// 5: four bytes.
    Fixed32,
}

/// Reads protobuf wire format from a byte slice, remembering where the
/// slice starts in the whole input so that errors give absolute offsets.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    /// A reader of all of `data`.
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Reader {
            data,
            pos: 0,
            base: 0,
        }
    }

    /// Whether everything was read.
    pub(crate) fn done(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The absolute offset of the next byte.
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// A varint (up to 10 bytes, 64 bits). Errors are (offset, what).
    pub(crate) fn varint(&mut self) -> Result<u64, (usize, String)> {
        let start = self.offset();
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.data.get(self.pos) else {
                return Err((start, "truncated varint (input ends inside it)".into()));
            };
            self.pos += 1;
            // The tenth byte holds only bit 63: anything more (a higher
            // bit, or a continuation to an eleventh byte) overflows.
            if i == 9 && b > 1 {
                return Err((start, "varint overflows 64 bits (over 10 bytes)".into()));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        // Not reached: the tenth byte returns or fails above.
        Err((start, "varint overflows 64 bits (over 10 bytes)".into()))
    }

    /// A field's key: its number and wire type.
    pub(crate) fn key(&mut self) -> Result<(u64, Wire), (usize, String)> {
        let at = self.offset();
        let k = self.varint()?;
        let field = k >> 3;
        if field == 0 {
            return Err((at, "field number 0 (not protobuf data?)".into()));
        }
        let wire = match k & 7 {
            0 => Wire::Varint,
            1 => Wire::Fixed64,
            2 => Wire::Len,
            5 => Wire::Fixed32,
            w => {
                return Err((
                    at,
                    format!("field {field} has wire type {w}, which profile.proto never uses"),
                ))
            }
        };
        Ok((field, wire))
    }

    /// The bytes of a length-delimited field, as a reader of their own.
    pub(crate) fn len_delimited(&mut self) -> Result<Reader<'a>, (usize, String)> {
        let at = self.offset();
        let n = self.varint()?;
        let left = self.data.len() - self.pos;
        if n > left as u64 {
            return Err((
                at,
                format!("length {n} runs past the end of its message ({left} bytes left)"),
            ));
        }
        let n = n as usize;
        let sub = Reader {
            data: &self.data[self.pos..self.pos + n],
            pos: 0,
            base: self.offset(),
        };
        self.pos += n;
        Ok(sub)
    }

    /// Skips a field's value of wire type `wire`.
    pub(crate) fn skip(&mut self, wire: Wire) -> Result<(), (usize, String)> {
        let at = self.offset();
        let n = match wire {
            Wire::Varint => return self.varint().map(drop),
            Wire::Len => return self.len_delimited().map(drop),
            Wire::Fixed64 => 8,
            Wire::Fixed32 => 4,
        };
        if self.data.len() - self.pos < n {
            return Err((at, format!("truncated {n}-byte fixed field")));
        }
        self.pos += n;
        Ok(())
    }
}

/// The error for a failure while reading `field`.
fn at(field: &str) -> impl Fn((usize, String)) -> ProfileError + '_ {
    move |(o, what)| ProfileError::new(field, Some(o), what)
}

/// A scalar (int64, uint64, bool): a varint, nothing else.
fn scalar(r: &mut Reader<'_>, wire: Wire, field: &str) -> Result<u64, ProfileError> {
    if wire != Wire::Varint {
        return Err(ProfileError::new(
            field,
            Some(r.offset()),
            format!("wrong wire type {wire:?} (expected a varint)"),
        ));
    }
    r.varint().map_err(at(field))
}

/// One element (a varint) or a packed run of them (length-delimited) of a
/// repeated scalar field, appended to `out`.
pub(crate) fn repeated(
    r: &mut Reader<'_>,
    wire: Wire,
    field: &str,
    out: &mut Vec<u64>,
) -> Result<(), ProfileError> {
    match wire {
        Wire::Varint => out.push(r.varint().map_err(at(field))?),
        Wire::Len => {
            let mut packed = r.len_delimited().map_err(at(field))?;
            while !packed.done() {
                out.push(packed.varint().map_err(at(field))?);
            }
        }
        _ => {
            return Err(ProfileError::new(
                field,
                Some(r.offset()),
                format!("wrong wire type {wire:?} (expected a varint or packed varints)"),
            ))
        }
    }
    Ok(())
}

/// An embedded message or a string: its bytes.
fn message<'a>(r: &mut Reader<'a>, wire: Wire, field: &str) -> Result<Reader<'a>, ProfileError> {
    if wire != Wire::Len {
        return Err(ProfileError::new(
            field,
            Some(r.offset()),
            format!("wrong wire type {wire:?} (expected length-delimited)"),
        ));
    }
    r.len_delimited().map_err(at(field))
}

/// Reads every field of a message, calling `each(reader, field, wire)`
/// (which returns false for a field it does not know, to be skipped).
/// Errors name fields relative to the message; the caller prefixes them.
fn fields<'a>(
    mut r: Reader<'a>,
    mut each: impl FnMut(&mut Reader<'a>, u64, Wire) -> Result<bool, ProfileError>,
) -> Result<(), ProfileError> {
    while !r.done() {
        let (field, wire) = r.key().map_err(at(""))?;
        if !each(&mut r, field, wire)? {
            r.skip(wire).map_err(at(""))?;
        }
    }
    Ok(())
}

fn value_type(r: Reader<'_>) -> Result<ValueType, ProfileError> {
    let mut v = ValueType::default();
    fields(r, |r, f, w| {
        match f {
            1 => v.ty = scalar(r, w, "type")? as i64,
            2 => v.unit = scalar(r, w, "unit")? as i64,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(v)
}

fn sample(r: Reader<'_>) -> Result<Sample, ProfileError> {
    let mut s = Sample::default();
    let mut values = Vec::new();
    fields(r, |r, f, w| {
        match f {
            1 => repeated(r, w, "location_id", &mut s.location_id)?,
            2 => repeated(r, w, "value", &mut values)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    // int64 is written as the two's complement varint (not zigzag).
    s.value = values.into_iter().map(|v| v as i64).collect();
    Ok(s)
}

fn mapping(r: Reader<'_>) -> Result<Mapping, ProfileError> {
    let mut m = Mapping::default();
    fields(r, |r, f, w| {
        match f {
            1 => m.id = scalar(r, w, "id")?,
            2 => m.memory_start = scalar(r, w, "memory_start")?,
            3 => m.memory_limit = scalar(r, w, "memory_limit")?,
            4 => m.file_offset = scalar(r, w, "file_offset")?,
            5 => m.filename = scalar(r, w, "filename")? as i64,
            6 => m.build_id = scalar(r, w, "build_id")? as i64,
            7 => m.has_functions = scalar(r, w, "has_functions")? != 0,
            8 => m.has_filenames = scalar(r, w, "has_filenames")? != 0,
            9 => m.has_line_numbers = scalar(r, w, "has_line_numbers")? != 0,
            10 => m.has_inline_frames = scalar(r, w, "has_inline_frames")? != 0,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(m)
}

fn line(r: Reader<'_>) -> Result<Line, ProfileError> {
    let mut l = Line::default();
    fields(r, |r, f, w| {
        match f {
            1 => l.function_id = scalar(r, w, "function_id")?,
            2 => l.line = scalar(r, w, "line")? as i64,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(l)
}

fn location(r: Reader<'_>) -> Result<Location, ProfileError> {
    let mut l = Location::default();
    fields(r, |r, f, w| {
        match f {
            1 => l.id = scalar(r, w, "id")?,
            2 => l.mapping_id = scalar(r, w, "mapping_id")?,
            3 => l.address = scalar(r, w, "address")?,
            4 => {
                let n = l.line.len();
                let m = message(r, w, "line")?;
                l.line
                    .push(line(m).map_err(|e| e.within(&format!("line[{n}]")))?);
            }
            5 => l.is_folded = scalar(r, w, "is_folded")? != 0,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(l)
}

fn function(r: Reader<'_>) -> Result<Function, ProfileError> {
    let mut fun = Function::default();
    fields(r, |r, f, w| {
        match f {
            1 => fun.id = scalar(r, w, "id")?,
            2 => fun.name = scalar(r, w, "name")? as i64,
            3 => fun.system_name = scalar(r, w, "system_name")? as i64,
            4 => fun.filename = scalar(r, w, "filename")? as i64,
            5 => fun.start_line = scalar(r, w, "start_line")? as i64,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(fun)
}

/// Decodes `data`, protobuf bytes of a `Profile` message (not gzipped),
/// and checks that its references hold together ([`Profile::check`]).
pub(crate) fn decode(data: &[u8]) -> Result<Profile, ProfileError> {
    let mut p = Profile::default();
    // Nested messages' errors name the element: Profile.sample[3].value.
    fn nested<T>(
        r: &mut Reader<'_>,
        w: Wire,
        name: &str,
        index: usize,
        decode: impl FnOnce(Reader<'_>) -> Result<T, ProfileError>,
    ) -> Result<T, ProfileError> {
        let m = message(r, w, name)?;
        decode(m).map_err(|e| e.within(&format!("{name}[{index}]")))
    }
    fields(Reader::new(data), |r, f, w| {
        match f {
            1 => {
                let v = nested(r, w, "sample_type", p.sample_type.len(), value_type)?;
                p.sample_type.push(v);
            }
            2 => {
                let s = nested(r, w, "sample", p.sample.len(), sample)?;
                p.sample.push(s);
            }
            3 => {
                let m = nested(r, w, "mapping", p.mapping.len(), mapping)?;
                p.mapping.push(m);
            }
            4 => {
                let l = nested(r, w, "location", p.location.len(), location)?;
                p.location.push(l);
            }
            5 => {
                let fun = nested(r, w, "function", p.function.len(), function)?;
                p.function.push(fun);
            }
            6 => {
                let s = message(r, w, "string_table")?;
                // Invalid UTF-8 in a name is shown, not fatal.
                p.string_table
                    .push(String::from_utf8_lossy(&s.data[s.pos..]).into_owned());
            }
            9 => p.time_nanos = scalar(r, w, "time_nanos")? as i64,
            10 => p.duration_nanos = scalar(r, w, "duration_nanos")? as i64,
            11 => {
                let m = message(r, w, "period_type")?;
                p.period_type = Some(value_type(m).map_err(|e| e.within("period_type"))?);
            }
            12 => p.period = scalar(r, w, "period")? as i64,
            14 => p.default_sample_type = scalar(r, w, "default_sample_type")? as i64,
            _ => return Ok(false),
        }
        Ok(true)
    })
    .map_err(|e| e.within("Profile"))?;
    p.check()?;
    Ok(p)
}

/// Whether `data` is gzip-compressed (its magic number, 1f 8b).
pub(crate) fn is_gzip(data: &[u8]) -> bool {
    data.starts_with(&[0x1f, 0x8b])
}

/// Decodes a profile file's contents: gunzips it if it is gzipped, then
/// [`decode`]s it. Errors are one line for the user.
pub(crate) fn parse(file_data: &[u8]) -> Result<Profile, String> {
    let unzipped;
    let data = if is_gzip(file_data) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(file_data)
            .read_to_end(&mut out)
            .map_err(|e| format!("bad gzip data: {e}"))?;
        unzipped = out;
        &unzipped[..]
    } else {
        file_data
    };
    if data.is_empty() {
        return Err("empty profile (no data)".into());
    }
    // Go's old text format is not protobuf; say so rather than give a
    // protobuf error at byte 0.
    if data.starts_with(b"heap profile:") || data.starts_with(b"--- heap") {
        return Err(
            "a legacy text heap profile, not pprof's protobuf format (write it with \
             runtime/pprof's WriteHeapProfile, or `go tool pprof -proto`)"
                .into(),
        );
    }
    let p = decode(data).map_err(|e| {
        if is_gzip(file_data) {
            format!("gzipped, but what it holds is not a valid pprof profile: {e}")
        } else {
            format!("not a valid pprof profile (neither gzip nor profile.proto protobuf): {e}")
        }
    })?;
    if p.sample_type.is_empty() {
        return Err(
            "not a pprof profile: it decodes as protobuf but has no sample_type \
             (a profile names the values of its samples)"
                .into(),
        );
    }
    Ok(p)
}

impl Profile {
    /// String `i` of the string table ("" if out of range, which
    /// [`Profile::check`] rules out).
    pub(crate) fn str(&self, i: i64) -> &str {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.string_table.get(i))
            .map_or("", String::as_str)
    }

    /// Checks the references between the messages: string indices, ids,
    /// the number of values per sample.
    pub(crate) fn check(&self) -> Result<(), ProfileError> {
        let n = self.string_table.len();
        let string = |field: String, i: i64| -> Result<(), ProfileError> {
            if i != 0 && !(0..n as i64).contains(&i) {
                return Err(ProfileError {
                    field,
                    offset: None,
                    what: format!("string index {i} out of range (string_table has {n} entries)"),
                });
            }
            Ok(())
        };
        if self.string_table.first().is_some_and(|s| !s.is_empty()) {
            return Err(ProfileError::new(
                "Profile.string_table[0]",
                None,
                "must be the empty string",
            ));
        }
        for (i, t) in self.sample_type.iter().enumerate() {
            string(format!("Profile.sample_type[{i}].type"), t.ty)?;
            string(format!("Profile.sample_type[{i}].unit"), t.unit)?;
        }
        string(
            "Profile.default_sample_type".into(),
            self.default_sample_type,
        )?;
        for (i, m) in self.mapping.iter().enumerate() {
            string(format!("Profile.mapping[{i}].filename"), m.filename)?;
            string(format!("Profile.mapping[{i}].build_id"), m.build_id)?;
        }
        for (i, f) in self.function.iter().enumerate() {
            string(format!("Profile.function[{i}].name"), f.name)?;
            string(format!("Profile.function[{i}].system_name"), f.system_name)?;
            string(format!("Profile.function[{i}].filename"), f.filename)?;
        }
        let mappings = ids("mapping", self.mapping.iter().map(|m| m.id))?;
        let functions = ids("function", self.function.iter().map(|f| f.id))?;
        let locations = ids("location", self.location.iter().map(|l| l.id))?;
        for (i, l) in self.location.iter().enumerate() {
            if l.mapping_id != 0 && !mappings.contains_key(&l.mapping_id) {
                return Err(ProfileError::new(
                    &format!("Profile.location[{i}].mapping_id"),
                    None,
                    format!("no mapping has id {}", l.mapping_id),
                ));
            }
            for (j, line) in l.line.iter().enumerate() {
                if line.function_id != 0 && !functions.contains_key(&line.function_id) {
                    return Err(ProfileError::new(
                        &format!("Profile.location[{i}].line[{j}].function_id"),
                        None,
                        format!("no function has id {}", line.function_id),
                    ));
                }
            }
        }
        for (i, s) in self.sample.iter().enumerate() {
            if s.value.len() != self.sample_type.len() {
                return Err(ProfileError::new(
                    &format!("Profile.sample[{i}].value"),
                    None,
                    format!(
                        "{} values, but the profile has {} sample types",
                        s.value.len(),
                        self.sample_type.len()
                    ),
                ));
            }
            if let Some(id) = s.location_id.iter().find(|id| !locations.contains_key(id)) {
                return Err(ProfileError::new(
                    &format!("Profile.sample[{i}].location_id"),
                    None,
                    format!("no location has id {id}"),
                ));
            }
        }
        Ok(())
    }

    /// The index of every function, by id.
    pub(crate) fn function_index(&self) -> HashMap<u64, usize> {
        index(self.function.iter().map(|f| f.id))
    }

    /// The index of every mapping, by id.
    pub(crate) fn mapping_index(&self) -> HashMap<u64, usize> {
        index(self.mapping.iter().map(|m| m.id))
    }
}

fn index(ids: impl Iterator<Item = u64>) -> HashMap<u64, usize> {
    ids.enumerate().map(|(i, id)| (id, i)).collect()
}

/// The ids of the messages of field `what`, checked non-zero and unique.
fn ids(what: &str, ids: impl Iterator<Item = u64>) -> Result<HashMap<u64, usize>, ProfileError> {
    let mut seen = HashMap::new();
    for (i, id) in ids.enumerate() {
        let field = || format!("Profile.{what}[{i}].id");
        if id == 0 {
            return Err(ProfileError::new(
                &field(),
                None,
                "id 0 (ids must be non-zero)",
            ));
        }
        if let Some(j) = seen.insert(id, i) {
            return Err(ProfileError::new(
                &field(),
                None,
                format!("id {id} already used by {what}[{j}]"),
            ));
        }
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A varint's encoding.
    fn varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
        out
    }

    fn key(field: u64, wire: u64) -> Vec<u8> {
        varint(field << 3 | wire)
    }

    fn len_field(field: u64, body: &[u8]) -> Vec<u8> {
        let mut out = key(field, 2);
        out.extend(varint(body.len() as u64));
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn varints() {
        for v in [0, 1, 127, 128, 300, 1 << 35, u64::MAX - 1, u64::MAX] {
            let enc = varint(v);
            let mut r = Reader::new(&enc);
            assert_eq!(r.varint(), Ok(v), "{v}");
            assert!(r.done());
        }
        assert_eq!(varint(300), [0xac, 0x02]);
        assert_eq!(varint(u64::MAX).len(), 10);
        // -1 as int64: ten bytes, two's complement.
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(r.varint().map(|v| v as i64), Ok(-1));
    }

    #[test]
    fn bad_varints() {
        let mut r = Reader::new(&[0x80, 0x80]);
        let (off, what) = r.varint().unwrap_err();
        assert_eq!(off, 0);
        assert!(what.contains("truncated"), "{what}");
        let mut r = Reader::new(&[0xff; 11]);
        assert!(r.varint().unwrap_err().1.contains("overflows"));
        // An eleventh byte: the tenth has its continuation bit set.
        let mut r = Reader::new(&[
            0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
        ]);
        assert!(r.varint().unwrap_err().1.contains("overflows"));
        let mut r = Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02]);
        assert!(r.varint().unwrap_err().1.contains("overflows"));
    }

    #[test]
    fn packed_and_unpacked_repeated() {
        // Sample: location_id 1, 2 unpacked; then 3, 4 packed; value
        // packed 10, 20 then unpacked 30 (mixing is legal).
        let mut body = Vec::new();
        body.extend(key(1, 0));
        body.extend(varint(1));
        body.extend(key(1, 0));
        body.extend(varint(2));
        body.extend(len_field(1, &[3, 4]));
        body.extend(len_field(2, &[10, 20]));
        body.extend(key(2, 0));
        body.extend(varint(30));
        let s = sample(Reader::new(&body)).unwrap();
        assert_eq!(s.location_id, [1, 2, 3, 4]);
        assert_eq!(s.value, [10, 20, 30]);
        // An empty packed field is no elements.
        let s = sample(Reader::new(&len_field(2, &[]))).unwrap();
        assert!(s.value.is_empty());
    }

    #[test]
    fn unknown_fields_are_skipped() {
        let mut body = Vec::new();
        body.extend(key(1, 0));
        body.extend(varint(7));
        body.extend(key(9, 1));
        body.extend([0; 8]);
        body.extend(key(10, 5));
        body.extend([0; 4]);
        body.extend(len_field(11, b"xyz"));
        body.extend(key(2, 0));
        body.extend(varint(8));
        assert_eq!(
            value_type(Reader::new(&body)).unwrap(),
            ValueType { ty: 7, unit: 8 }
        );
    }

    #[test]
    fn errors_name_the_field_and_offset() {
        // Profile.sample[0].value with wire type fixed32.
        let mut s = key(2, 5);
        s.extend([1, 2, 3, 4]);
        let mut data = len_field(6, b"");
        data.extend(len_field(2, &s));
        let e = decode(&data).unwrap_err();
        assert_eq!(e.field, "Profile.sample[0].value");
        assert_eq!(e.offset, Some(5));
        assert!(e.what.contains("wrong wire type"), "{e}");
        // A length past the end.
        let mut data = key(6, 2);
        data.extend(varint(50));
        data.extend(b"abc");
        let e = decode(&data).unwrap_err();
        assert_eq!(e.field, "Profile.string_table");
        assert!(e.to_string().contains("runs past the end"), "{e}");
        // A scalar sent as length-delimited.
        let e = decode(&len_field(9, b"12")).unwrap_err();
        assert_eq!(e.field, "Profile.time_nanos");
        // Wire types 3 and 4 (groups) are not profile.proto.
        let e = decode(&key(2, 3)).unwrap_err();
        assert!(e.what.contains("wire type 3"), "{e}");
    }

    #[test]
    fn references_are_checked() {
        let mut data = len_field(6, b"");
        data.extend(len_field(6, b"inuse_space"));
        data.extend(len_field(1, &[0x08, 1, 0x10, 5]));
        let e = decode(&data).unwrap_err();
        assert_eq!(e.field, "Profile.sample_type[0].unit");
        assert!(e.what.contains("string index 5"), "{e}");
        let mut data = len_field(6, b"");
        data.extend(len_field(1, &[]));
        // A sample with one value and a location that does not exist.
        data.extend(len_field(2, &[0x08, 9, 0x10, 1]));
        let e = decode(&data).unwrap_err();
        assert_eq!(e.field, "Profile.sample[0].location_id");
        let mut data = len_field(4, &[0x08, 1]);
        data.extend(len_field(4, &[0x08, 1]));
        assert!(decode(&data).unwrap_err().what.contains("already used"));
    }

    /// A small valid profile: two sample types, a mapping, a function, two
    /// locations, two samples (one packed, one not).
    fn small_profile() -> Vec<u8> {
        let mut d = Vec::new();
        for s in ["", "inuse_space", "bytes", "main", "/bin/x"] {
            d.extend(len_field(6, s.as_bytes()));
        }
        d.extend(len_field(1, &[0x08, 1, 0x10, 2]));
        d.extend(len_field(
            3,
            &[0x08, 1, 0x10, 0x80, 0x20, 0x18, 0x80, 0x40, 0x28, 4],
        ));
        d.extend(len_field(5, &[0x08, 1, 0x10, 3]));
        d.extend(len_field(4, &[0x08, 1, 0x10, 1, 0x18, 0x90, 0x20]));
        d.extend(len_field(4, &[0x08, 2, 0x22, 0x04, 0x08, 1, 0x10, 7]));
        d.extend(len_field(2, &[0x0a, 2, 1, 2, 0x12, 1, 9]));
        d.extend(len_field(2, &[0x08, 2, 0x10, 5]));
        d
    }

    #[test]
    fn a_small_profile() {
        let p = decode(&small_profile()).unwrap();
        assert_eq!(p.sample.len(), 2);
        assert_eq!(p.sample[0].location_id, [1, 2]);
        assert_eq!(p.sample[1].value, [5]);
        assert_eq!(p.mapping[0].memory_start, 0x1000);
        assert_eq!(p.mapping[0].memory_limit, 0x2000);
        assert_eq!(p.str(p.mapping[0].filename), "/bin/x");
        assert_eq!(
            p.location[1].line,
            [Line {
                function_id: 1,
                line: 7
            }]
        );
        assert_eq!(p.str(p.function[0].name), "main");
    }

    #[test]
    fn damaged_profiles_never_panic() {
        // Every prefix and many single-byte changes: an error or a
        // profile, never a panic.
        // What decodes is also reported on, which must not panic either.
        let report = |data: &[u8]| {
            if let Ok(p) = parse(data) {
                use crate::profile::*;
                let ty = choose_sample_type(&p, None).unwrap();
                let stacks = resolve(&p, &mut Default::default(), true);
                let a = analyze(&p, &stacks, ty, false);
                let _ = top_table(&p, "f", ty, &a, 20);
                let _ = crate::flame::svg(&a.tree, "t", &|v| v.to_string());
            }
        };
        let good = small_profile();
        for n in 0..good.len() {
            report(&good[..n]);
        }
        for i in 0..good.len() {
            for x in [0x01, 0x07, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] ^= x;
                report(&bad);
            }
        }
    }

    #[test]
    fn parse_rejects_what_is_not_a_profile() {
        assert!(parse(b"").unwrap_err().contains("empty"));
        assert!(parse(b"heap profile: 1: 2 [3: 4] @ heap/1048576\n")
            .unwrap_err()
            .contains("legacy text"));
        assert!(parse(b"\x1f\x8b\x08\x00garbage")
            .unwrap_err()
            .contains("gzip"));
        // Decodes as protobuf (time_nanos 1), but is no profile.
        assert!(parse(&[0x48, 0x01]).unwrap_err().contains("no sample_type"));
    }
}
