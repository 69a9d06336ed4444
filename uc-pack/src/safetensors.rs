//! The safetensors container, as a uc pack uses it (spec R-3.1, R-3.5, R-3.6).
//!
//! A safetensors file is an 8-byte little-endian header length `N`, an `N`-byte UTF-8 JSON header,
//! and the data area. The JSON object maps each tensor name to `{"dtype", "shape", "data_offsets"}`
//! (offsets relative to the data area) and may hold a `"__metadata__"` object of strings.
//! [`parse_header`] applies the rules of the reference reader (header length cap of 100 MB, the data
//! area covered exactly by the tensors, contiguous, without holes or overlaps, every tensor's length
//! equal to its shape times its dtype size) plus the checks of this verifier (no duplicate keys, no
//! unknown members). Every failure is a typed [`HeaderError`] with the byte offset in the file.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Seek, SeekFrom};

/// Largest JSON header accepted, as in the reference reader: 100 MB.
pub const MAX_HEADER_LEN: u64 = 100_000_000;
/// Every tensor's data starts at a file offset that is a multiple of this (R-3.5).
pub const DATA_ALIGN: u64 = 64;
/// Name prefix reserved for the zero padding tensors that align the next tensor (R-3.6).
pub const PAD_PREFIX: &str = "__uc_pad_";
/// Key of the metadata object inside the header.
pub const METADATA_KEY: &str = "__metadata__";

/// Element types of safetensors tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dtype {
    /// Boolean, one byte.
    Bool,
    /// Unsigned 8-bit integer (the dtype of a uc record).
    U8,
    /// Signed 8-bit integer.
    I8,
    /// 8-bit float, E5M2.
    F8E5M2,
    /// 8-bit float, E4M3.
    F8E4M3,
    /// Signed 16-bit integer.
    I16,
    /// Unsigned 16-bit integer.
    U16,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    Bf16,
    /// Signed 32-bit integer.
    I32,
    /// Unsigned 32-bit integer.
    U32,
    /// IEEE binary32.
    F32,
    /// IEEE binary64.
    F64,
    /// Signed 64-bit integer.
    I64,
    /// Unsigned 64-bit integer.
    U64,
}

impl Dtype {
    /// Every dtype, in declaration order.
    pub const ALL: [Dtype; 15] = [
        Dtype::Bool,
        Dtype::U8,
        Dtype::I8,
        Dtype::F8E5M2,
        Dtype::F8E4M3,
        Dtype::I16,
        Dtype::U16,
        Dtype::F16,
        Dtype::Bf16,
        Dtype::I32,
        Dtype::U32,
        Dtype::F32,
        Dtype::F64,
        Dtype::I64,
        Dtype::U64,
    ];

    /// The name used in safetensors headers.
    pub const fn name(self) -> &'static str {
        match self {
            Dtype::Bool => "BOOL",
            Dtype::U8 => "U8",
            Dtype::I8 => "I8",
            Dtype::F8E5M2 => "F8_E5M2",
            Dtype::F8E4M3 => "F8_E4M3",
            Dtype::I16 => "I16",
            Dtype::U16 => "U16",
            Dtype::F16 => "F16",
            Dtype::Bf16 => "BF16",
            Dtype::I32 => "I32",
            Dtype::U32 => "U32",
            Dtype::F32 => "F32",
            Dtype::F64 => "F64",
            Dtype::I64 => "I64",
            Dtype::U64 => "U64",
        }
    }

    /// Looks a dtype up by its header name.
    pub fn from_name(name: &str) -> Option<Dtype> {
        Dtype::ALL.iter().copied().find(|d| d.name() == name)
    }

    /// Bytes per element.
    pub const fn size(self) -> u64 {
        match self {
            Dtype::Bool | Dtype::U8 | Dtype::I8 | Dtype::F8E5M2 | Dtype::F8E4M3 => 1,
            Dtype::I16 | Dtype::U16 | Dtype::F16 | Dtype::Bf16 => 2,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 4,
            Dtype::F64 | Dtype::I64 | Dtype::U64 => 8,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Number of bytes of a tensor of `shape` and `dtype`, or `None` on overflow.
pub fn tensor_nbytes(dtype: Dtype, shape: &[u64]) -> Option<u64> {
    shape.iter().try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
}

/// One tensor entry of a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name (the JSON key).
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Shape, outermost first.
    pub shape: Vec<u64>,
    /// First byte, relative to the data area.
    pub begin: u64,
    /// One past the last byte, relative to the data area.
    pub end: u64,
}

impl TensorInfo {
    /// Length of the tensor's data in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.begin
    }

    /// True for a tensor without data (a dimension is 0).
    pub fn is_empty(&self) -> bool {
        self.end == self.begin
    }

    /// True for a padding tensor (R-3.6), recognised by its reserved name prefix.
    pub fn is_padding(&self) -> bool {
        self.name.starts_with(PAD_PREFIX)
    }
}

/// A parsed and checked safetensors header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `N`, the length of the JSON header in bytes.
    pub header_len: u64,
    /// File offset of the data area: `8 + N`.
    pub data_start: u64,
    /// Total file length the header was checked against.
    pub file_len: u64,
    /// The `__metadata__` strings (empty when absent).
    pub metadata: BTreeMap<String, String>,
    /// Tensors in data order (increasing `begin`; equal `begin` only for empty tensors).
    pub tensors: Vec<TensorInfo>,
}

impl Header {
    /// File offset of a tensor's first byte.
    pub fn file_offset(&self, t: &TensorInfo) -> u64 {
        self.data_start + t.begin
    }

    /// Looks a tensor up by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// Classes of header failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderErrorKind {
    /// The file ends before the 8-byte length or before the end of the header.
    Truncated,
    /// The header length exceeds [`MAX_HEADER_LEN`].
    HeaderTooLarge,
    /// The header is not UTF-8.
    NotUtf8,
    /// The header does not start with `{`.
    BadStart,
    /// The header is not valid JSON (or nests deeper than 128 levels).
    Json,
    /// The JSON is not an object.
    NotObject,
    /// A key appears twice in one object.
    DuplicateKey,
    /// `__metadata__` is not an object of strings.
    BadMetadata,
    /// A tensor entry is not `{"dtype": string, "shape": [integers], "data_offsets": [begin, end]}`.
    BadEntry,
    /// The dtype name is not one of [`Dtype::ALL`].
    UnknownDtype,
    /// Shape times dtype size overflows 64 bits.
    SizeOverflow,
    /// `end - begin` differs from shape times dtype size.
    SizeMismatch,
    /// A tensor ends after the end of the file.
    OutOfBounds,
    /// A tensor starts before the previous one ends.
    Overlap,
    /// Bytes between two tensors (or before the first) belong to no tensor.
    Gap,
    /// Bytes after the last tensor belong to no tensor.
    TrailingBytes,
}

impl HeaderErrorKind {
    /// Stable snake_case name (receipts).
    pub const fn name(self) -> &'static str {
        match self {
            HeaderErrorKind::Truncated => "truncated",
            HeaderErrorKind::HeaderTooLarge => "header_too_large",
            HeaderErrorKind::NotUtf8 => "header_not_utf8",
            HeaderErrorKind::BadStart => "header_bad_start",
            HeaderErrorKind::Json => "header_json",
            HeaderErrorKind::NotObject => "header_not_object",
            HeaderErrorKind::DuplicateKey => "duplicate_key",
            HeaderErrorKind::BadMetadata => "bad_metadata",
            HeaderErrorKind::BadEntry => "bad_tensor_entry",
            HeaderErrorKind::UnknownDtype => "unknown_dtype",
            HeaderErrorKind::SizeOverflow => "size_overflow",
            HeaderErrorKind::SizeMismatch => "size_mismatch",
            HeaderErrorKind::OutOfBounds => "out_of_bounds",
            HeaderErrorKind::Overlap => "overlap",
            HeaderErrorKind::Gap => "gap",
            HeaderErrorKind::TrailingBytes => "trailing_bytes",
        }
    }
}

/// A header failure: class, file offset of the offending bytes, tensor (when one is concerned) and detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderError {
    /// What is wrong.
    pub kind: HeaderErrorKind,
    /// Byte offset in the file.
    pub offset: u64,
    /// The tensor concerned, if any.
    pub tensor: Option<String>,
    /// Human-readable detail.
    pub detail: String,
}

impl HeaderError {
    fn new(kind: HeaderErrorKind, offset: u64, detail: impl Into<String>) -> Self {
        HeaderError {
            kind,
            offset,
            tensor: None,
            detail: detail.into(),
        }
    }

    fn at(kind: HeaderErrorKind, offset: u64, tensor: &str, detail: impl Into<String>) -> Self {
        HeaderError {
            kind,
            offset,
            tensor: Some(tensor.to_string()),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "safetensors {}", self.kind.name())?;
        if let Some(t) = &self.tensor {
            write!(f, " (tensor {t:?})")?;
        }
        write!(f, " at byte offset {}: {}", self.offset, self.detail)
    }
}

impl std::error::Error for HeaderError {}

/// Reads the 8-byte header length and checks it against the cap and the file length (R-3.1).
pub fn parse_header_len(first8: &[u8], file_len: u64) -> Result<u64, HeaderError> {
    if first8.len() < 8 || file_len < 8 {
        return Err(HeaderError::new(
            HeaderErrorKind::Truncated,
            file_len.min(first8.len() as u64),
            "file is shorter than the 8-byte header length",
        ));
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&first8[..8]);
    let n = u64::from_le_bytes(a);
    if n > MAX_HEADER_LEN {
        return Err(HeaderError::new(
            HeaderErrorKind::HeaderTooLarge,
            0,
            format!("header length {n} exceeds {MAX_HEADER_LEN}"),
        ));
    }
    if 8 + n > file_len {
        return Err(HeaderError::new(
            HeaderErrorKind::Truncated,
            file_len,
            format!("header length {n} runs past the end of the {file_len}-byte file"),
        ));
    }
    Ok(n)
}

/// Parses and checks a whole header. `bytes` must hold at least the first `8 + N` bytes of the file
/// (more is fine); `file_len` is the length of the whole file.
pub fn parse_header(bytes: &[u8], file_len: u64) -> Result<Header, HeaderError> {
    let n = parse_header_len(bytes, file_len)?;
    let end = 8 + n as usize; // n <= 100 MB
    let json = bytes.get(8..end).ok_or_else(|| {
        HeaderError::new(
            HeaderErrorKind::Truncated,
            bytes.len() as u64,
            "the buffer ends inside the header",
        )
    })?;
    parse_header_json(json, file_len)
}

/// Reads and checks the header of an open file. I/O errors are returned as the outer error.
pub fn read_header<R: Read + Seek>(r: &mut R, file_len: u64) -> std::io::Result<Result<Header, HeaderError>> {
    r.seek(SeekFrom::Start(0))?;
    let mut first8 = [0u8; 8];
    let got = read_full(r, &mut first8)?;
    let n = match parse_header_len(&first8[..got], file_len) {
        Ok(n) => n,
        Err(e) => return Ok(Err(e)),
    };
    // n <= MAX_HEADER_LEN and 8 + n <= file_len: the allocation is capped.
    let mut json = vec![0u8; n as usize];
    r.read_exact(&mut json)?;
    Ok(parse_header_json(&json, file_len))
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Checks the JSON header bytes (without the 8-byte length) of a file of `file_len` bytes.
pub fn parse_header_json(json: &[u8], file_len: u64) -> Result<Header, HeaderError> {
    const BASE: u64 = 8;
    let n = json.len() as u64;
    let text = std::str::from_utf8(json).map_err(|e| {
        HeaderError::new(
            HeaderErrorKind::NotUtf8,
            BASE + e.valid_up_to() as u64,
            "header is not valid UTF-8",
        )
    })?;
    if !text.starts_with('{') {
        return Err(HeaderError::new(
            HeaderErrorKind::BadStart,
            BASE,
            "header does not start with '{'",
        ));
    }
    // The top level as (name → the entry's text), each entry checked one at a time below: memory
    // is about the names plus one entry, not a Value tree of the whole header. Keys come out
    // sorted, as a Value object's would; duplicates are found by the scan that follows.
    let top: Result<BTreeMap<String, &serde_json::value::RawValue>, _> = serde_json::from_str(text);
    let top = match top {
        Ok(t) => t,
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            return Err(HeaderError::new(
                HeaderErrorKind::NotObject,
                BASE,
                "header is not a JSON object",
            ));
        }
        Err(e) => {
            return Err(HeaderError::new(
                HeaderErrorKind::Json,
                BASE + crate::jsonscan::line_col_to_offset(text, e.line(), e.column()),
                format!("header is not valid JSON: {e}"),
            ));
        }
    };
    let keys = crate::jsonscan::scan(text).map_err(|d| {
        HeaderError::new(
            HeaderErrorKind::DuplicateKey,
            BASE + d.offset as u64,
            format!("key {:?} appears twice in one object", d.key),
        )
    })?;
    let key_offset = |name: &str| BASE + keys.get(name).copied().unwrap_or(0) as u64;
    let data_start = BASE + n;
    let data_len = file_len
        .checked_sub(data_start)
        .ok_or_else(|| HeaderError::new(HeaderErrorKind::Truncated, file_len, "file ends inside the header"))?;
    let mut metadata = BTreeMap::new();
    let mut tensors = Vec::with_capacity(top.len().min(1 << 16));
    for (name, raw) in &top {
        let at = key_offset(name);
        // One entry as a Value at a time (it is valid JSON: the parse above checked it).
        let entry: Value = serde_json::from_str(raw.get())
            .map_err(|e| HeaderError::new(HeaderErrorKind::Json, at, format!("header is not valid JSON: {e}")))?;
        let entry = &entry;
        if name == METADATA_KEY {
            let m = entry
                .as_object()
                .ok_or_else(|| HeaderError::new(HeaderErrorKind::BadMetadata, at, "__metadata__ is not an object"))?;
            for (k, v) in m {
                let s = v.as_str().ok_or_else(|| {
                    HeaderError::new(
                        HeaderErrorKind::BadMetadata,
                        at,
                        format!("__metadata__ value of {k:?} is not a string"),
                    )
                })?;
                metadata.insert(k.clone(), s.to_string());
            }
            continue;
        }
        tensors.push(parse_entry(name, entry, at)?);
    }
    // Data order: by begin, then end (empty tensors first at a shared offset).
    tensors.sort_by(|a, b| (a.begin, a.end, &a.name).cmp(&(b.begin, b.end, &b.name)));
    let mut pos = 0u64;
    for t in &tensors {
        let at = key_offset(&t.name);
        if t.end > data_len {
            return Err(HeaderError::at(
                HeaderErrorKind::OutOfBounds,
                at,
                &t.name,
                format!(
                    "data_offsets [{}, {}] end past the {data_len}-byte data area",
                    t.begin, t.end
                ),
            ));
        }
        if t.begin < pos {
            return Err(HeaderError::at(
                HeaderErrorKind::Overlap,
                at,
                &t.name,
                format!("data starts at {} but the previous tensor ends at {pos}", t.begin),
            ));
        }
        if t.begin > pos {
            return Err(HeaderError::at(
                HeaderErrorKind::Gap,
                data_start + pos,
                &t.name,
                format!("bytes {pos}..{} of the data area belong to no tensor", t.begin),
            ));
        }
        pos = t.end;
    }
    if pos != data_len {
        return Err(HeaderError::new(
            HeaderErrorKind::TrailingBytes,
            data_start + pos,
            format!("bytes {pos}..{data_len} of the data area belong to no tensor"),
        ));
    }
    Ok(Header {
        header_len: n,
        data_start,
        file_len,
        metadata,
        tensors,
    })
}

fn parse_entry(name: &str, entry: &Value, at: u64) -> Result<TensorInfo, HeaderError> {
    let bad = |detail: &str| HeaderError::at(HeaderErrorKind::BadEntry, at, name, detail);
    let obj = entry.as_object().ok_or_else(|| bad("entry is not an object"))?;
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "dtype" | "shape" | "data_offsets"))
    {
        return Err(bad(&format!("unknown member {k:?}")));
    }
    let dtype_name = obj
        .get("dtype")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("dtype is missing or not a string"))?;
    let dtype = Dtype::from_name(dtype_name).ok_or_else(|| {
        HeaderError::at(
            HeaderErrorKind::UnknownDtype,
            at,
            name,
            format!("unknown dtype {dtype_name:?}"),
        )
    })?;
    let shape_v = obj
        .get("shape")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("shape is missing or not an array"))?;
    let shape = shape_v
        .iter()
        .map(Value::as_u64)
        .collect::<Option<Vec<u64>>>()
        .ok_or_else(|| bad("shape holds a value that is not a non-negative integer"))?;
    let offs = obj
        .get("data_offsets")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("data_offsets is missing or not an array"))?;
    let (begin, end) = match offs.as_slice() {
        [b, e] => match (b.as_u64(), e.as_u64()) {
            (Some(b), Some(e)) => (b, e),
            _ => return Err(bad("data_offsets are not non-negative integers")),
        },
        _ => return Err(bad("data_offsets does not hold exactly two values")),
    };
    if end < begin {
        return Err(bad("data_offsets end before they begin"));
    }
    let nbytes = tensor_nbytes(dtype, &shape).ok_or_else(|| {
        HeaderError::at(
            HeaderErrorKind::SizeOverflow,
            at,
            name,
            "shape times dtype size overflows 64 bits",
        )
    })?;
    if nbytes != end - begin {
        return Err(HeaderError::at(
            HeaderErrorKind::SizeMismatch,
            at,
            name,
            format!(
                "shape {shape:?} of {dtype} needs {nbytes} bytes but data_offsets span {}",
                end - begin
            ),
        ));
    }
    Ok(TensorInfo {
        name: name.to_string(),
        dtype,
        shape,
        begin,
        end,
    })
}

/// One tensor to write: its name, dtype, shape and data length (the data itself is streamed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTensor {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Shape.
    pub shape: Vec<u64>,
    /// Data length in bytes (must equal shape times dtype size).
    pub len: u64,
}

/// The byte layout of a safetensors file as encoders of this spec write it (R-3.5, R-3.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    /// The complete header: 8-byte length then the JSON, padded with spaces so that the data area
    /// starts at a multiple of 64.
    pub header: Vec<u8>,
    /// Entries in data order: `(Some(index into the input), begin, end)` for a tensor, `(None, begin,
    /// end)` for a padding tensor (zero bytes).
    pub order: Vec<(Option<usize>, u64, u64)>,
    /// Total file length.
    pub file_len: u64,
}

/// Lays out a safetensors file: tensors in the given order (the caller sorts them by name), each
/// starting at a data offset that is a multiple of 64; where the previous tensor ends unaligned, a
/// padding tensor `__uc_pad_<k>` (dtype U8, shape `[p]`, `1 <= p <= 63`, zero bytes) fills the gap,
/// `k` counting from `first_pad_index`. Returns the plan and the number of padding tensors used.
/// The JSON keys are written in sorted order, without whitespace; `metadata` goes in `__metadata__`.
pub fn plan_file(
    tensors: &[PlannedTensor],
    metadata: &BTreeMap<String, String>,
    first_pad_index: u64,
) -> (PlannedFile, u64) {
    let mut order = Vec::with_capacity(tensors.len() * 2);
    let mut entries: BTreeMap<String, Value> = BTreeMap::new();
    let mut pos = 0u64;
    let mut pads = 0u64;
    let entry = |dtype: Dtype, shape: &[u64], b: u64, e: u64| {
        let mut m = serde_json::Map::new();
        m.insert("data_offsets".into(), serde_json::json!([b, e]));
        m.insert("dtype".into(), Value::String(dtype.name().into()));
        m.insert("shape".into(), serde_json::json!(shape));
        Value::Object(m)
    };
    for (i, t) in tensors.iter().enumerate() {
        let p = (DATA_ALIGN - pos % DATA_ALIGN) % DATA_ALIGN;
        if p > 0 {
            let name = format!("{PAD_PREFIX}{}", first_pad_index + pads);
            entries.insert(name, entry(Dtype::U8, &[p], pos, pos + p));
            order.push((None, pos, pos + p));
            pos += p;
            pads += 1;
        }
        entries.insert(t.name.clone(), entry(t.dtype, &t.shape, pos, pos + t.len));
        order.push((Some(i), pos, pos + t.len));
        pos += t.len;
    }
    // Keys in sorted order, whatever serde_json's map type preserves.
    let mut json = String::from("{");
    let mut first = true;
    let mut push = |json: &mut String, k: &str, v: &Value| {
        if !first {
            json.push(',');
        }
        first = false;
        json.push_str(&Value::String(k.to_string()).to_string());
        json.push(':');
        json.push_str(&v.to_string());
    };
    let mut all: BTreeMap<String, Value> = entries;
    if !metadata.is_empty() {
        let mut m = serde_json::Map::new();
        for (k, v) in metadata {
            m.insert(k.clone(), Value::String(v.clone()));
        }
        all.insert(METADATA_KEY.into(), Value::Object(m));
    }
    for (k, v) in &all {
        push(&mut json, k, v);
    }
    json.push('}');
    let mut header_len = json.len() as u64;
    header_len += (DATA_ALIGN - (8 + header_len) % DATA_ALIGN) % DATA_ALIGN;
    let mut header = Vec::with_capacity(8 + header_len as usize);
    header.extend_from_slice(&header_len.to_le_bytes());
    header.extend_from_slice(json.as_bytes());
    header.resize(8 + header_len as usize, b' ');
    let file_len = 8 + header_len + pos;
    (
        PlannedFile {
            header,
            order,
            file_len,
        },
        pads,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(json: &str, data_len: usize) -> Vec<u8> {
        let mut b = (json.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(json.as_bytes());
        b.resize(b.len() + data_len, 0);
        b
    }

    fn kind(bytes: &[u8]) -> HeaderErrorKind {
        parse_header(bytes, bytes.len() as u64).unwrap_err().kind
    }

    #[test]
    fn accepts_a_standard_file_and_reports_data_order() {
        let j = r#"{"__metadata__":{"uc.format":"0.3"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"U8","shape":[3],"data_offsets":[8,11]}}"#;
        let f = file(j, 11);
        let h = parse_header(&f, f.len() as u64).unwrap();
        assert_eq!(
            h.tensors.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert_eq!(h.metadata["uc.format"], "0.3");
        assert_eq!(h.data_start, 8 + j.len() as u64);
        assert_eq!(h.file_offset(&h.tensors[1]), h.data_start + 8);
    }

    #[test]
    fn hostile_headers_give_typed_errors() {
        // Huge declared length: refused before any allocation.
        let mut f = u64::MAX.to_le_bytes().to_vec();
        f.extend_from_slice(b"{}");
        assert_eq!(kind(&f), HeaderErrorKind::HeaderTooLarge);
        let mut f = (MAX_HEADER_LEN + 1).to_le_bytes().to_vec();
        f.extend_from_slice(b"{}");
        assert_eq!(kind(&f), HeaderErrorKind::HeaderTooLarge);
        // Length past the end of the file, and files shorter than 8 bytes.
        let mut f = 1000u64.to_le_bytes().to_vec();
        f.extend_from_slice(b"{}");
        assert_eq!(kind(&f), HeaderErrorKind::Truncated);
        assert_eq!(kind(&[1, 2, 3]), HeaderErrorKind::Truncated);
        // Overlapping offsets.
        let j = r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#;
        assert_eq!(kind(&file(j, 6)), HeaderErrorKind::Overlap);
        // A hole between tensors, before the first one, and bytes after the last one.
        let j = r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[5,9]}}"#;
        assert_eq!(kind(&file(j, 9)), HeaderErrorKind::Gap);
        let j = r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[1,5]}}"#;
        assert_eq!(kind(&file(j, 5)), HeaderErrorKind::Gap);
        let j = r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#;
        assert_eq!(kind(&file(j, 5)), HeaderErrorKind::TrailingBytes);
        // Offsets past the end of the file.
        assert_eq!(kind(&file(j, 3)), HeaderErrorKind::OutOfBounds);
        let j = r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[18446744073709551611,18446744073709551615]}}"#;
        assert_eq!(kind(&file(j, 4)), HeaderErrorKind::OutOfBounds);
        // Unknown dtype, size mismatch, size overflow, malformed entries.
        let j = r#"{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}"#;
        assert_eq!(kind(&file(j, 16)), HeaderErrorKind::UnknownDtype);
        let j = r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
        assert_eq!(kind(&file(j, 8)), HeaderErrorKind::SizeMismatch);
        let j = r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#;
        assert_eq!(kind(&file(j, 8)), HeaderErrorKind::SizeOverflow);
        for j in [
            r#"{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}"#,
            r#"{"a":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}}"#,
            r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0]}}"#,
            r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,0]}}"#,
            r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}}"#,
            r#"{"a":{"shape":[1],"data_offsets":[0,1]}}"#,
            r#"{"a":[]}"#,
        ] {
            assert_eq!(kind(&file(j, 1)), HeaderErrorKind::BadEntry, "{j}");
        }
        // Duplicate keys (a reader keeping the first or the last would see different files).
        let j = r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#;
        assert_eq!(kind(&file(j, 1)), HeaderErrorKind::DuplicateKey);
        // Not JSON, not UTF-8, not starting with '{', not an object, bad metadata.
        assert_eq!(kind(&file("{\"a\":", 0)), HeaderErrorKind::Json);
        assert_eq!(kind(&file("{\u{0}\u{0}", 0)), HeaderErrorKind::Json);
        let mut f = file("{}", 0);
        f[9] = 0xff;
        assert_eq!(kind(&f), HeaderErrorKind::NotUtf8);
        assert_eq!(kind(&file(" {}", 0)), HeaderErrorKind::BadStart);
        assert_eq!(kind(&file("[]", 0)), HeaderErrorKind::BadStart);
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(1000), "]".repeat(1000));
        assert_eq!(kind(&file(&deep, 0)), HeaderErrorKind::Json);
        assert_eq!(
            kind(&file(r#"{"__metadata__":{"k":1}}"#, 0)),
            HeaderErrorKind::BadMetadata
        );
        assert_eq!(kind(&file(r#"{"__metadata__":[]}"#, 0)), HeaderErrorKind::BadMetadata);
    }

    #[test]
    fn error_offsets_point_into_the_file() {
        let j = r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[5,9]}}"#;
        let f = file(j, 9);
        let e = parse_header(&f, f.len() as u64).unwrap_err();
        // The hole starts at data offset 4.
        assert_eq!(e.offset, 8 + j.len() as u64 + 4);
        assert_eq!(e.tensor.as_deref(), Some("b"));
        let j = r#"{"a":{"dtype":"F99","shape":[4],"data_offsets":[0,4]}}"#;
        let e = parse_header(&file(j, 4), (8 + j.len() + 4) as u64).unwrap_err();
        assert_eq!(e.offset, 8 + 1, "offset of the key \"a\"");
    }

    #[test]
    fn planned_files_align_every_tensor_and_parse_back() {
        let tensors = vec![
            PlannedTensor {
                name: "a".into(),
                dtype: Dtype::U8,
                shape: vec![65],
                len: 65,
            },
            PlannedTensor {
                name: "b".into(),
                dtype: Dtype::F16,
                shape: vec![3],
                len: 6,
            },
            PlannedTensor {
                name: "c".into(),
                dtype: Dtype::F32,
                shape: vec![2, 2],
                len: 16,
            },
        ];
        let meta = BTreeMap::from([("uc.format".to_string(), "0.3".to_string())]);
        let (plan, pads) = plan_file(&tensors, &meta, 7);
        assert_eq!(pads, 2);
        assert_eq!(plan.header.len() % 64, 0);
        let mut bytes = plan.header.clone();
        bytes.resize(plan.file_len as usize, 0);
        let h = parse_header(&bytes, plan.file_len).unwrap();
        for t in &h.tensors {
            if t.is_padding() {
                assert!((1..64).contains(&t.len()));
            } else {
                assert_eq!(h.file_offset(t) % 64, 0, "{}", t.name);
            }
        }
        assert!(h.tensor("__uc_pad_7").is_some() && h.tensor("__uc_pad_8").is_some());
    }
}
