//! The pack manifest `ultracompress.json` (spec section 12, schema `spec/ultracompress.schema.json`).
//!
//! [`Manifest`] is the typed form that encoders fill in and serialise with [`Manifest::to_json_string`]
//! (keys sorted, deterministic); [`check_manifest`] applies the schema's rules to any JSON value and
//! extracts what the pack checks need, member by member, so that one bad member does not hide the
//! others. Unknown members are accepted and ignored.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Schema version written by this implementation.
pub const SCHEMA_VERSION: &str = "1.1";
/// Pack format version written for a pack whose records are all v0.3 records.
pub const FORMAT_VERSION: &str = "0.3";
/// Pack format version written for a pack holding a record with two-level scales.
pub const FORMAT_VERSION_V04: &str = "0.4";

/// The format version a file or pack holding records of these layouts declares:
/// `"0.4"` when one has two-level scales, else `"0.3"`.
pub fn format_version_of<'a>(layouts: impl IntoIterator<Item = &'a uc_format::Layout>) -> &'static str {
    if layouts.into_iter().any(|l| l.has_subscales()) {
        FORMAT_VERSION_V04
    } else {
        FORMAT_VERSION
    }
}
/// File name of the manifest inside a pack.
pub const MANIFEST_NAME: &str = "ultracompress.json";
/// The reserved name of a pack's OMS signature file at its root: never listed in
/// `files`, never part of the fingerprint.
pub const SIGNATURE_NAME: &str = "model.sig";
/// Largest manifest accepted, in bytes.
pub const MAX_MANIFEST_LEN: u64 = 256 << 20;

/// One entry of `files`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size_bytes: u64,
}

/// One entry of `tensors`: a quantized tensor stored as a record.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorEntry {
    /// Safetensors file that holds the record (a key of `files`).
    pub file: String,
    /// Logical shape (the record's dims).
    pub shape: Vec<u64>,
    /// Code width.
    pub bits: u8,
    /// Overlay rank (0 = none).
    pub rank: u32,
    /// `"none"`, `"f16"` or `"bf16"`.
    pub overlay_dtype: String,
    /// Record length in bytes.
    pub bytes: u64,
    /// The record's CRC-32, 8 lowercase hex digits.
    pub crc32: String,
    /// SHA-256 of the decoded `W_base` as little-endian f32, lowercase hex.
    pub recon_sha256: String,
    /// Relative L2 error of the reconstruction against the source weights, when the encoder measured it.
    pub rel_l2: Option<f64>,
}

/// The bit accounting from which `bpw` follows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BpwAccounting {
    /// Number of quantized weights (sum of the records' element counts).
    pub quantized_params: u64,
    /// Bits of the codes sections (8 × their lengths, padding of partial blocks included).
    pub code_bits: u64,
    /// Bits of the scales sections.
    pub scale_bits: u64,
    /// Bits of the grid sections.
    pub grid_bits: u64,
    /// Bits of the overlay sections.
    pub overlay_bits: u64,
    /// Sum of the record lengths in bytes (headers and alignment padding included).
    pub record_bytes: u64,
}

impl BpwAccounting {
    /// Adds one record.
    pub fn add(&mut self, layout: &uc_format::Layout) {
        use uc_format::{SECTION_CODES, SECTION_GRID, SECTION_OVERLAY, SECTION_SCALES, SECTION_SUBSCALES};
        let bits = |k: usize| layout.sections[k].len.saturating_mul(8);
        self.quantized_params = self.quantized_params.saturating_add(layout.n);
        self.code_bits = self.code_bits.saturating_add(bits(SECTION_CODES));
        // Two-level scales' sub-scales are scales too.
        self.scale_bits = self
            .scale_bits
            .saturating_add(bits(SECTION_SCALES))
            .saturating_add(bits(SECTION_SUBSCALES));
        self.grid_bits = self.grid_bits.saturating_add(bits(SECTION_GRID));
        self.overlay_bits = self.overlay_bits.saturating_add(bits(SECTION_OVERLAY));
        self.record_bytes = self.record_bytes.saturating_add(layout.record_len);
    }

    /// Bits per quantized weight: `(code + scale + grid + overlay bits) / quantized_params`, 0 when
    /// there is no quantized weight.
    pub fn bpw(&self) -> f64 {
        if self.quantized_params == 0 {
            return 0.0;
        }
        let total = u128::from(self.code_bits)
            + u128::from(self.scale_bits)
            + u128::from(self.grid_bits)
            + u128::from(self.overlay_bits);
        total as f64 / self.quantized_params as f64
    }

    /// JSON form.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(ser::Accounting::of(self)).unwrap_or(Value::Null)
    }
}

/// Where the pack came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Provenance {
    /// SHA-256 of each source file, by file name relative to the source model directory.
    pub source_files: BTreeMap<String, String>,
    /// Seed of the encoder's random choices, if any.
    pub seed: Option<u64>,
    /// The encoder options that influence the output.
    pub options: Map<String, Value>,
    /// SHA-256 of the calibration data, or `None` when none was used.
    pub calibration_sha256: Option<String>,
    /// Environment fingerprint: operating system, architecture, CPU features, tool version; never
    /// user names, host names or paths.
    pub environment: Map<String, Value>,
}

impl Default for Provenance {
    fn default() -> Self {
        Provenance {
            source_files: BTreeMap::new(),
            seed: None,
            options: Map::new(),
            calibration_sha256: None,
            environment: crate::env::environment("unknown"),
        }
    }
}

/// A complete manifest, as an encoder writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Identifier of the compressed model (e.g. a hub name).
    pub model_id: String,
    /// Identifier of the source model, if known.
    pub base_model: Option<String>,
    /// Compression method, e.g. `"gsq"`.
    pub method: String,
    /// Version of the method.
    pub method_version: String,
    /// Every file of the pack except the manifest.
    pub files: BTreeMap<String, FileEntry>,
    /// License identifier (SPDX where possible), if known.
    pub license: Option<String>,
    /// RFC 3339 UTC time of creation.
    pub created_at: String,
    /// Name and version of the tool that wrote the pack.
    pub tooling_version: String,
    /// Free text.
    pub notes: String,
    /// Every quantized tensor.
    pub tensors: BTreeMap<String, TensorEntry>,
    /// Bit accounting over all quantized tensors.
    pub bpw_accounting: BpwAccounting,
    /// Where the pack came from.
    pub provenance: Provenance,
    /// `format_version`: see [`format_version_of`].
    pub format_version: &'static str,
}

/// The serialised manifest (see `Manifest::serialized`); field order is key order.
mod ser {
    use serde::Serialize;
    use serde_json::Value;
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    pub(super) struct Manifest<'a> {
        pub base_model: &'a Option<String>,
        pub bpw: f64,
        pub bpw_accounting: Accounting,
        pub created_at: &'a str,
        pub files: BTreeMap<&'a str, File<'a>>,
        pub format_version: &'static str,
        pub license: &'a Option<String>,
        pub method: &'a str,
        pub method_version: &'a str,
        pub model_id: &'a str,
        pub notes: &'a str,
        pub provenance: Provenance<'a>,
        pub schema_version: &'static str,
        pub size_bytes: u64,
        pub tensors: BTreeMap<&'a str, Tensor<'a>>,
        pub tooling_version: &'a str,
    }

    #[derive(Serialize)]
    pub(super) struct File<'a> {
        pub sha256: &'a str,
        pub size_bytes: u64,
    }

    #[derive(Serialize)]
    pub(super) struct Provenance<'a> {
        pub calibration_sha256: &'a Option<String>,
        pub environment: Value,
        pub options: Value,
        pub seed: Option<u64>,
        pub source_files: &'a BTreeMap<String, String>,
    }

    #[derive(Serialize)]
    pub(super) struct Tensor<'a> {
        pub bits: u8,
        pub bytes: u64,
        pub crc32: &'a str,
        pub file: &'a str,
        pub overlay_dtype: &'a str,
        pub rank: u32,
        pub recon_sha256: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub rel_l2: Option<f64>,
        pub shape: &'a [u64],
    }

    impl<'a> Tensor<'a> {
        pub fn of(t: &'a super::TensorEntry) -> Self {
            Tensor {
                bits: t.bits,
                bytes: t.bytes,
                crc32: &t.crc32,
                file: &t.file,
                overlay_dtype: &t.overlay_dtype,
                rank: t.rank,
                recon_sha256: &t.recon_sha256,
                rel_l2: t.rel_l2,
                shape: &t.shape,
            }
        }
    }

    #[derive(Serialize)]
    pub(super) struct Accounting {
        pub code_bits: u64,
        pub grid_bits: u64,
        pub overlay_bits: u64,
        pub quantized_params: u64,
        pub record_bytes: u64,
        pub scale_bits: u64,
    }

    impl Accounting {
        pub fn of(a: &super::BpwAccounting) -> Self {
            Accounting {
                code_bits: a.code_bits,
                grid_bits: a.grid_bits,
                overlay_bits: a.overlay_bits,
                quantized_params: a.quantized_params,
                record_bytes: a.record_bytes,
                scale_bits: a.scale_bits,
            }
        }
    }
}

fn sorted(m: &Map<String, Value>) -> Value {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    let mut out = Map::new();
    for k in keys {
        let v = &m[k];
        out.insert(
            k.clone(),
            match v {
                Value::Object(inner) => sorted(inner),
                other => other.clone(),
            },
        );
    }
    Value::Object(out)
}

impl TensorEntry {
    /// JSON form.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(ser::Tensor::of(self)).unwrap_or(Value::Null)
    }
}

impl Manifest {
    /// `size_bytes`: the sum of the sizes of all files in `files`.
    pub fn size_bytes(&self) -> u64 {
        self.files.values().fold(0u64, |a, f| a.saturating_add(f.size_bytes))
    }

    /// The JSON value, with `schema_version`, `format_version`, `bpw` and `size_bytes` derived.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.serialized()).unwrap_or(Value::Null)
    }

    /// The serialised form (serde derive: this is data the project writes and trusts; the reading
    /// side stays the hand-written [`check_manifest`], which reports every issue with its place).
    /// Members are declared in sorted order so that the text is the same whether or not
    /// `serde_json` preserves insertion order; free-form objects are sorted recursively.
    fn serialized(&self) -> ser::Manifest<'_> {
        let p = &self.provenance;
        ser::Manifest {
            base_model: &self.base_model,
            bpw: self.bpw_accounting.bpw(),
            bpw_accounting: ser::Accounting::of(&self.bpw_accounting),
            created_at: &self.created_at,
            files: self
                .files
                .iter()
                .map(|(k, f)| {
                    (
                        k.as_str(),
                        ser::File {
                            sha256: &f.sha256,
                            size_bytes: f.size_bytes,
                        },
                    )
                })
                .collect(),
            format_version: self.format_version,
            license: &self.license,
            method: &self.method,
            method_version: &self.method_version,
            model_id: &self.model_id,
            notes: &self.notes,
            provenance: ser::Provenance {
                calibration_sha256: &p.calibration_sha256,
                environment: sorted(&p.environment),
                options: sorted(&p.options),
                seed: p.seed,
                source_files: &p.source_files,
            },
            schema_version: SCHEMA_VERSION,
            size_bytes: self.size_bytes(),
            tensors: self
                .tensors
                .iter()
                .map(|(k, t)| (k.as_str(), ser::Tensor::of(t)))
                .collect(),
            tooling_version: &self.tooling_version,
        }
    }

    /// The manifest's text: pretty-printed JSON with sorted keys and a final newline.
    pub fn to_json_string(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.serialized()).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// One way in which a manifest breaks the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// JSON pointer of the offending member (`""` for the whole document).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// What [`check_manifest`] found: the schema issues and every member that could be extracted.
#[derive(Debug, Clone, Default)]
pub struct ManifestCheck {
    /// Schema violations, in document order of the rules (empty when the manifest conforms).
    pub issues: Vec<Issue>,
    /// `files`, with every well-formed entry (malformed entries are issues and left out).
    pub files: Option<BTreeMap<String, FileEntry>>,
    /// `tensors`, with every well-formed entry.
    pub tensors: Option<BTreeMap<String, TensorEntry>>,
    /// Names in `files` or `tensors` whose entries were malformed (so they are not reported twice).
    pub malformed_files: Vec<String>,
    /// `bpw`.
    pub bpw: Option<f64>,
    /// `size_bytes`.
    pub size_bytes: Option<u64>,
    /// `bpw_accounting`.
    pub bpw_accounting: Option<BpwAccounting>,
}

/// True for 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_hex8(s: &str) -> bool {
    s.len() == 8 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks a pack-relative file name: `/`-separated components, none empty, `.` or `..`,
/// no backslash, no control character, not absolute, and neither the manifest itself nor the
/// signature file.
pub fn check_file_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("file name is empty".into());
    }
    if name == MANIFEST_NAME {
        return Err("the manifest does not list itself".into());
    }
    if name == SIGNATURE_NAME {
        return Err(
            "model.sig is the pack's signature (R-12.13): it signs the manifest, so the manifest cannot list it".into(),
        );
    }
    if name.chars().any(|c| c == '\\' || c.is_control()) {
        return Err("file name holds a backslash or a control character".into());
    }
    if name.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err("file name is absolute or has an empty, '.' or '..' component".into());
    }
    Ok(())
}

/// True when `v` is `"M.m"` with the given major and a minor of at least `min_minor`.
pub fn version_at_least(v: &str, major: u64, min_minor: u64) -> bool {
    let mut it = v.split('.');
    let (Some(a), Some(b), None) = (it.next(), it.next(), it.next()) else {
        return false;
    };
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || s.len() > 9 || !s.bytes().all(|c| c.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
        {
            None
        } else {
            s.parse().ok()
        }
    };
    matches!((num(a), num(b)), (Some(x), Some(y)) if x == major && y >= min_minor)
}

struct Ctx {
    issues: Vec<Issue>,
}

impl Ctx {
    fn issue(&mut self, path: &str, message: impl Into<String>) {
        self.issues.push(Issue {
            path: path.to_string(),
            message: message.into(),
        });
    }
}

fn ptr(parent: &str, key: &str) -> String {
    format!("{parent}/{}", key.replace('~', "~0").replace('/', "~1"))
}

fn get_str<'v>(cx: &mut Ctx, o: &'v Map<String, Value>, parent: &str, key: &str) -> Option<&'v str> {
    match o.get(key) {
        None => {
            cx.issue(&ptr(parent, key), "required member is missing");
            None
        }
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            cx.issue(&ptr(parent, key), "must be a string");
            None
        }
    }
}

fn get_opt_str<'v>(cx: &mut Ctx, o: &'v Map<String, Value>, parent: &str, key: &str) -> Option<Option<&'v str>> {
    match o.get(key) {
        None => {
            cx.issue(&ptr(parent, key), "required member is missing");
            None
        }
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s)),
        Some(_) => {
            cx.issue(&ptr(parent, key), "must be a string or null");
            None
        }
    }
}

fn get_u64(cx: &mut Ctx, o: &Map<String, Value>, parent: &str, key: &str) -> Option<u64> {
    match o.get(key) {
        None => {
            cx.issue(&ptr(parent, key), "required member is missing");
            None
        }
        Some(v) => match v.as_u64() {
            Some(x) => Some(x),
            None => {
                cx.issue(&ptr(parent, key), "must be an integer in 0..2^64");
                None
            }
        },
    }
}

fn get_obj<'v>(cx: &mut Ctx, o: &'v Map<String, Value>, parent: &str, key: &str) -> Option<&'v Map<String, Value>> {
    match o.get(key) {
        None => {
            cx.issue(&ptr(parent, key), "required member is missing");
            None
        }
        Some(Value::Object(m)) => Some(m),
        Some(_) => {
            cx.issue(&ptr(parent, key), "must be an object");
            None
        }
    }
}

/// Checks a manifest against the schema and extracts its members.
pub fn check_manifest(v: &Value) -> ManifestCheck {
    let mut cx = Ctx { issues: Vec::new() };
    let mut out = ManifestCheck::default();
    let Some(root) = v.as_object() else {
        cx.issue("", "the manifest is not a JSON object");
        out.issues = cx.issues;
        return out;
    };
    if let Some(s) = get_str(&mut cx, root, "", "schema_version") {
        if !version_at_least(s, 1, 1) {
            cx.issue(
                "/schema_version",
                format!("{s:?} is not a schema version 1.y with y >= 1"),
            );
        }
    }
    if let Some(s) = get_str(&mut cx, root, "", "format_version") {
        if !version_at_least(s, 0, 3) {
            cx.issue(
                "/format_version",
                format!("{s:?} is not a pack format version 0.y with y >= 3"),
            );
        }
    }
    for key in ["model_id", "method_version", "tooling_version", "notes"] {
        get_str(&mut cx, root, "", key);
    }
    if let Some(s) = get_str(&mut cx, root, "", "method") {
        if s.is_empty() {
            cx.issue("/method", "must not be empty");
        }
    }
    get_opt_str(&mut cx, root, "", "base_model");
    get_opt_str(&mut cx, root, "", "license");
    if let Some(s) = get_str(&mut cx, root, "", "created_at") {
        if crate::time::parse_rfc3339_utc(s).is_none() {
            cx.issue(
                "/created_at",
                format!("{s:?} is not an RFC 3339 UTC time (YYYY-MM-DDTHH:MM:SS[.f]Z)"),
            );
        }
    }
    match root.get("bpw") {
        None => cx.issue("/bpw", "required member is missing"),
        Some(b) => match b.as_f64() {
            Some(x) if x.is_finite() && x >= 0.0 && b.is_number() => out.bpw = Some(x),
            _ => cx.issue("/bpw", "must be a non-negative number"),
        },
    }
    out.size_bytes = get_u64(&mut cx, root, "", "size_bytes");
    if let Some(files) = get_obj(&mut cx, root, "", "files") {
        let mut map = BTreeMap::new();
        for (name, e) in files {
            let p = ptr("/files", name);
            if let Err(m) = check_file_name(name) {
                cx.issue(&p, m);
                out.malformed_files.push(name.clone());
                continue;
            }
            let Some(eo) = e.as_object() else {
                cx.issue(&p, "must be an object");
                out.malformed_files.push(name.clone());
                continue;
            };
            let sha = get_str(&mut cx, eo, &p, "sha256");
            let size = get_u64(&mut cx, eo, &p, "size_bytes");
            let sha_ok = match sha {
                Some(s) if is_sha256_hex(s) => true,
                Some(_) => {
                    cx.issue(&ptr(&p, "sha256"), "must be 64 lowercase hex digits");
                    false
                }
                None => false,
            };
            match (sha, size) {
                (Some(s), Some(z)) if sha_ok => {
                    map.insert(
                        name.clone(),
                        FileEntry {
                            sha256: s.to_string(),
                            size_bytes: z,
                        },
                    );
                }
                _ => out.malformed_files.push(name.clone()),
            }
        }
        out.files = Some(map);
    }
    if let Some(tensors) = get_obj(&mut cx, root, "", "tensors") {
        let mut map = BTreeMap::new();
        for (name, e) in tensors {
            let p = ptr("/tensors", name);
            if name.is_empty() || name.starts_with(crate::safetensors::PAD_PREFIX) {
                cx.issue(&p, "tensor name is empty or uses the reserved padding prefix");
                continue;
            }
            if let Some(t) = check_tensor(&mut cx, e, &p) {
                if let Some(files) = &out.files {
                    if !files.contains_key(&t.file) && !out.malformed_files.contains(&t.file) {
                        cx.issue(&ptr(&p, "file"), format!("{:?} is not listed in /files", t.file));
                    }
                }
                map.insert(name.clone(), t);
            }
        }
        out.tensors = Some(map);
    }
    if let Some(a) = get_obj(&mut cx, root, "", "bpw_accounting") {
        let p = "/bpw_accounting";
        let vals = [
            "quantized_params",
            "code_bits",
            "scale_bits",
            "grid_bits",
            "overlay_bits",
            "record_bytes",
        ]
        .map(|k| get_u64(&mut cx, a, p, k));
        if let [Some(q), Some(c), Some(s), Some(g), Some(o), Some(r)] = vals {
            out.bpw_accounting = Some(BpwAccounting {
                quantized_params: q,
                code_bits: c,
                scale_bits: s,
                grid_bits: g,
                overlay_bits: o,
                record_bytes: r,
            });
        }
    }
    if let Some(p) = get_obj(&mut cx, root, "", "provenance") {
        check_provenance(&mut cx, p);
    }
    out.issues = cx.issues;
    out
}

fn check_tensor(cx: &mut Ctx, e: &Value, p: &str) -> Option<TensorEntry> {
    let Some(o) = e.as_object() else {
        cx.issue(p, "must be an object");
        return None;
    };
    let n0 = cx.issues.len();
    let file = get_str(cx, o, p, "file").map(str::to_string);
    let shape = match o.get("shape") {
        None => {
            cx.issue(&ptr(p, "shape"), "required member is missing");
            None
        }
        Some(Value::Array(a)) => {
            let dims: Option<Vec<u64>> = a.iter().map(Value::as_u64).collect();
            match dims {
                Some(d) if (1..=uc_format::MAX_NDIM).contains(&d.len()) && d.iter().all(|&x| x >= 1) => Some(d),
                _ => {
                    cx.issue(&ptr(p, "shape"), "must be 1 to 8 integers, each at least 1");
                    None
                }
            }
        }
        Some(_) => {
            cx.issue(&ptr(p, "shape"), "must be an array");
            None
        }
    };
    let bits = get_u64(cx, o, p, "bits").and_then(|b| {
        if (1..=8).contains(&b) {
            Some(b as u8)
        } else {
            cx.issue(&ptr(p, "bits"), "must be in 1..=8");
            None
        }
    });
    let rank = get_u64(cx, o, p, "rank").and_then(|r| {
        if r <= u64::from(uc_format::MAX_OVERLAY_RANK) {
            Some(r as u32)
        } else {
            cx.issue(&ptr(p, "rank"), "must be in 0..=4096");
            None
        }
    });
    let overlay = get_str(cx, o, p, "overlay_dtype").and_then(|s| {
        if matches!(s, "none" | "f16" | "bf16") {
            Some(s.to_string())
        } else {
            cx.issue(&ptr(p, "overlay_dtype"), "must be \"none\", \"f16\" or \"bf16\"");
            None
        }
    });
    if let (Some(r), Some(od)) = (rank, &overlay) {
        if (r == 0) != (od == "none") {
            cx.issue(&ptr(p, "rank"), "rank is 0 exactly when overlay_dtype is \"none\"");
        }
    }
    let bytes = get_u64(cx, o, p, "bytes");
    let crc = get_str(cx, o, p, "crc32").and_then(|s| {
        if is_hex8(s) {
            Some(s.to_string())
        } else {
            cx.issue(&ptr(p, "crc32"), "must be 8 lowercase hex digits");
            None
        }
    });
    let recon = get_str(cx, o, p, "recon_sha256").and_then(|s| {
        if is_sha256_hex(s) {
            Some(s.to_string())
        } else {
            cx.issue(&ptr(p, "recon_sha256"), "must be 64 lowercase hex digits");
            None
        }
    });
    let rel_l2 = match o.get("rel_l2") {
        None => None,
        Some(v) => match v.as_f64() {
            Some(x) if x.is_finite() && x >= 0.0 => Some(x),
            _ => {
                cx.issue(&ptr(p, "rel_l2"), "must be a non-negative number");
                None
            }
        },
    };
    if cx.issues.len() != n0 {
        return None;
    }
    Some(TensorEntry {
        file: file?,
        shape: shape?,
        bits: bits?,
        rank: rank?,
        overlay_dtype: overlay?,
        bytes: bytes?,
        crc32: crc?,
        recon_sha256: recon?,
        rel_l2,
    })
}

fn check_provenance(cx: &mut Ctx, p: &Map<String, Value>) {
    let base = "/provenance";
    if let Some(src) = get_obj(cx, p, base, "source_files") {
        for (k, v) in src {
            if !v.as_str().is_some_and(is_sha256_hex) {
                cx.issue(&ptr(&ptr(base, "source_files"), k), "must be 64 lowercase hex digits");
            }
        }
    }
    match p.get("seed") {
        None => cx.issue(&ptr(base, "seed"), "required member is missing"),
        Some(Value::Null) => {}
        Some(v) if v.as_u64().is_some() => {}
        Some(_) => cx.issue(&ptr(base, "seed"), "must be an integer in 0..2^64 or null"),
    }
    get_obj(cx, p, base, "options");
    if let Some(Some(s)) = get_opt_str(cx, p, base, "calibration_sha256") {
        if !is_sha256_hex(s) {
            cx.issue(
                &ptr(base, "calibration_sha256"),
                "must be 64 lowercase hex digits or null",
            );
        }
    }
    if let Some(env) = get_obj(cx, p, base, "environment") {
        let eb = ptr(base, "environment");
        get_str(cx, env, &eb, "os");
        get_str(cx, env, &eb, "arch");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Manifest {
        let mut files = BTreeMap::new();
        files.insert(
            "model.safetensors".to_string(),
            FileEntry {
                sha256: "a".repeat(64),
                size_bytes: 1000,
            },
        );
        files.insert(
            "config.json".to_string(),
            FileEntry {
                sha256: "b".repeat(64),
                size_bytes: 24,
            },
        );
        let mut tensors = BTreeMap::new();
        tensors.insert(
            "w".to_string(),
            TensorEntry {
                file: "model.safetensors".into(),
                shape: vec![4, 64],
                bits: 4,
                rank: 0,
                overlay_dtype: "none".into(),
                bytes: 576,
                crc32: "0123abcd".into(),
                recon_sha256: "c".repeat(64),
                rel_l2: Some(0.05),
            },
        );
        let mut acc = BpwAccounting::default();
        let layout = uc_format::RecordParams::new(4, &[4, 64], 0, uc_format::OverlayDtype::None)
            .unwrap()
            .layout()
            .unwrap();
        acc.add(&layout);
        Manifest {
            model_id: "test/model".into(),
            base_model: None,
            method: "gsq".into(),
            method_version: "1".into(),
            files,
            license: Some("apache-2.0".into()),
            created_at: "2024-01-02T03:04:05Z".into(),
            tooling_version: "uc-encode 0.3.0".into(),
            notes: String::new(),
            tensors,
            bpw_accounting: acc,
            provenance: Provenance::default(),
            format_version: FORMAT_VERSION,
        }
    }

    #[test]
    fn written_manifests_conform_and_round_trip() {
        let m = sample();
        let text = m.to_json_string();
        let v: Value = serde_json::from_str(&text).unwrap();
        let c = check_manifest(&v);
        assert!(c.issues.is_empty(), "{:?}", c.issues);
        assert_eq!(c.files.unwrap(), m.files);
        assert_eq!(c.tensors.unwrap(), m.tensors);
        assert_eq!(c.bpw_accounting.unwrap(), m.bpw_accounting);
        assert_eq!(c.size_bytes, Some(1024));
        // 4 bits of code + 16 bits of scale per 64 + 16 grid values of 32 bits over 256 weights.
        assert_eq!(c.bpw, Some(4.0 + 16.0 / 64.0 + 512.0 / 256.0));
        // Keys are sorted, so the text is deterministic.
        assert!(text.find("\"base_model\"").unwrap() < text.find("\"bpw\"").unwrap());
        assert_eq!(text, sample().to_json_string());
    }

    #[test]
    fn schema_violations_are_named_by_pointer() {
        let base: Value = serde_json::from_str(&sample().to_json_string()).unwrap();
        let cases: Vec<(&str, Value, &str)> = vec![
            ("/schema_version", json!("2.0"), "schema version"),
            ("/schema_version", json!(1.1), "must be a string"),
            ("/format_version", json!("0.2"), "pack format"),
            ("/created_at", json!("yesterday"), "RFC 3339"),
            ("/bpw", json!("4"), "non-negative number"),
            ("/bpw", json!(-1.0), "non-negative number"),
            ("/size_bytes", json!(-5), "integer"),
            ("/files", json!([]), "must be an object"),
            ("/license", json!(7), "string or null"),
            ("/provenance", json!({}), "missing"),
        ];
        for (member, val, msg) in cases {
            let mut v = base.clone();
            v[&member[1..]] = val;
            let c = check_manifest(&v);
            assert!(
                c.issues
                    .iter()
                    .any(|i| i.path.starts_with(member) && i.message.contains(msg)),
                "{member}: {:?}",
                c.issues
            );
        }
        for member in ["model_id", "tensors", "files", "bpw_accounting", "method"] {
            let mut v = base.clone();
            v.as_object_mut().unwrap().remove(member);
            let c = check_manifest(&v);
            assert_eq!(c.issues[0].path, format!("/{member}"));
            assert!(c.issues[0].message.contains("missing"));
        }
        let mut v = base.clone();
        v["tensors"]["w"]["crc32"] = json!("0123ABCD");
        v["tensors"]["w"]["bits"] = json!(9);
        v["files"]["../x"] = json!({"sha256": "a".repeat(64), "size_bytes": 1});
        v["files"]["config.json"]["sha256"] = json!("zz");
        let c = check_manifest(&v);
        let paths: Vec<&str> = c.issues.iter().map(|i| i.path.as_str()).collect();
        assert!(
            paths.contains(&"/tensors/w/crc32") && paths.contains(&"/tensors/w/bits"),
            "{paths:?}"
        );
        assert!(paths.contains(&"/files/..~1x") && paths.contains(&"/files/config.json/sha256"));
        assert!(c.tensors.unwrap().is_empty());
        assert_eq!(c.files.unwrap().len(), 1);
        // Unknown members are kept by readers and ignored by the checks.
        let mut v = base.clone();
        v["future_member"] = json!({"x": [1, 2]});
        v["tensors"]["w"]["future"] = json!(true);
        assert!(check_manifest(&v).issues.is_empty());
        assert!(!check_manifest(&json!([1])).issues.is_empty());
    }

    #[test]
    fn file_names_and_versions() {
        // A model.sig below the root is an ordinary file; only the root's is the signature.
        for ok in [
            "model.safetensors",
            "tokenizer/tokenizer.json",
            "a b.txt",
            "sub/model.sig",
        ] {
            assert!(check_file_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "a//b",
            "../x",
            "a/./b",
            "a\\b",
            "x\n",
            MANIFEST_NAME,
            SIGNATURE_NAME,
            "a/",
        ] {
            assert!(check_file_name(bad).is_err(), "{bad}");
        }
        assert!(version_at_least("1.1", 1, 1) && version_at_least("1.12", 1, 1));
        assert!(!version_at_least("1.0", 1, 1) && !version_at_least("2.1", 1, 1));
        assert!(!version_at_least("1.01", 1, 1) && !version_at_least("1.1.0", 1, 1));
        assert!(version_at_least("0.3", 0, 3) && !version_at_least("0.2", 0, 3));
    }
}
