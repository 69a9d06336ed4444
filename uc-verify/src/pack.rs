//! Verification of a pack directory (spec sections 2, 3 and 12).
//!
//! [`verify_pack`] runs every check and returns a [`PackReport`] listing each as a named [`Check`]
//! (deterministic order), the files with their digests, and the tensors with their reconstruction
//! digests. It fails with [`PackError`] only for usage and I/O problems (the pack could not be
//! read) or an interruption; everything wrong with the pack's content is a failed check.
//!
//! Memory: files are hashed in 1 MiB chunks; each record is read whole (its length is bounded by
//! the file's real size, checked before reading) and decoded block by block; the records being
//! verified at any moment share a byte budget ([`PackOptions::memory_budget`]), so peak memory is
//! about the larger of the budget and the largest record, whatever the pack size.

use crate::checks::CheckName;
use rayon::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use uc_decode::Record;
use uc_format::{MAGIC, OverlayDtype};
use uc_pack::layout::{INDEX_NAME, SINGLE_NAME, shard_index, shard_name};
use uc_pack::manifest::{self, BpwAccounting, FileEntry, MANIFEST_NAME, ManifestCheck, TensorEntry};
use uc_pack::safetensors::{self, DATA_ALIGN, Dtype, Header, PAD_PREFIX, TensorInfo};
use uc_pack::text::esc;
use uc_pack::{ErrorStats, hex};

/// Default byte budget for records held in memory at once: 1 GiB.
pub const DEFAULT_MEMORY_BUDGET: u64 = 1 << 30;
/// Relative tolerance of the `bpw` comparison.
pub const BPW_TOLERANCE: f64 = 1e-9;
/// Relative tolerance between a manifest's `rel_l2` and the one measured with `--against`.
pub const REL_L2_TOLERANCE: f64 = 1e-6;
const HASH_CHUNK: usize = 1 << 20;

/// Progress events, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A stage starts; `total` units (bytes or tensors) will be reported.
    Stage {
        /// What the stage does.
        name: &'static str,
        /// Units of work in the stage.
        total: u64,
    },
    /// Units of work done.
    Advance(u64),
}

/// Options of [`verify_pack`].
pub struct PackOptions<'a> {
    /// Source model directory for the reconstruction-error measurement (`--against`).
    pub against: Option<PathBuf>,
    /// When set to true (e.g. by a Ctrl-C handler), verification stops with [`PackError::Interrupted`].
    pub cancel: Option<&'a AtomicBool>,
    /// Receives progress events, from any thread.
    pub progress: Option<&'a (dyn Fn(Progress) + Sync)>,
    /// Bytes of records held in memory at once (a record larger than this is verified alone).
    pub memory_budget: u64,
    /// Decodes `W_base` for the `recon_sha256` check instead of the CPU decoder (e.g. on a GPU:
    /// `uc-verify --device wgpu`); `None`: the CPU decoder. A decoder error is an I/O-class error
    /// (exit code 2), not a verification failure.
    pub decode: Option<&'a crate::DecodeFn<'a>>,
    /// Verify an OMS signature of the pack too (`--signature`).
    pub signature: Option<&'a SignatureOptions>,
}

/// The signature to verify, and what to trust.
#[derive(Debug, Clone)]
pub struct SignatureOptions {
    /// The signature file (an OMS bundle; usually `<pack>/model.sig`).
    pub path: PathBuf,
    /// The public key or the trusted root certificates.
    pub trust: uc_sign::Trust,
}

/// The outcome of the signature check, for the receipt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignatureReport {
    /// The signature file as named on the command line's last component (inside the pack: its
    /// relative name).
    pub file: String,
    /// SHA-256 of the signature file.
    pub sha256: Option<String>,
    /// `key` or `certificate` (None when the bundle could not be read).
    pub method: Option<&'static str>,
    /// `ecdsa-p256-sha256` or `ed25519`.
    pub algorithm: Option<&'static str>,
    /// The signing key's id (OMS public-key hint: hex SHA-256 of its SPKI PEM).
    pub key_id: Option<String>,
    /// The signing certificate's subject (certificate method).
    pub subject: Option<String>,
    /// The trusted root the chain ends at (certificate method).
    pub root: Option<String>,
    /// Number of files the signature lists.
    pub files_signed: usize,
    /// `valid` (the bundle verifies and every file matches), or `invalid`.
    pub verdict: &'static str,
}

impl Default for PackOptions<'_> {
    fn default() -> Self {
        PackOptions {
            against: None,
            cancel: None,
            progress: None,
            memory_budget: DEFAULT_MEMORY_BUDGET,
            decode: None,
            signature: None,
        }
    }
}

/// One named check and its result.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// The check; its stable name, e.g. `file.digest` or `tensor.record`, is
    /// [`CheckName::name`].
    #[serde(rename = "check")]
    pub name: CheckName,
    /// Passed?
    pub ok: bool,
    /// The pack file concerned, if any.
    pub file: Option<String>,
    /// The tensor concerned, if any.
    pub tensor: Option<String>,
    /// Byte offset in `file`, where one applies.
    pub offset: Option<u64>,
    /// What was found.
    pub message: String,
}

impl Check {
    fn pass(name: CheckName, message: impl Into<String>) -> Self {
        Check {
            name,
            ok: true,
            file: None,
            tensor: None,
            offset: None,
            message: message.into(),
        }
    }

    fn fail(name: CheckName, message: impl Into<String>) -> Self {
        Check {
            ok: false,
            ..Check::pass(name, message)
        }
    }

    fn file(mut self, f: &str) -> Self {
        self.file = Some(f.to_string());
        self
    }

    fn tensor(mut self, t: &str) -> Self {
        self.tensor = Some(t.to_string());
        self
    }

    fn offset(mut self, o: u64) -> Self {
        self.offset = Some(o);
        self
    }

    /// JSON form for receipts.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", if self.ok { "OK  " } else { "FAIL" }, self.name)?;
        // File and tensor names and messages quote the pack: escaped, so that a crafted name cannot
        // rewrite the terminal (uc_pack::text).
        if let Some(file) = &self.file {
            write!(f, " file {}", esc(file))?;
        }
        if let Some(t) = &self.tensor {
            write!(f, " tensor {}", esc(t))?;
        }
        if let Some(o) = self.offset {
            write!(f, " at byte offset {o}")?;
        }
        write!(f, ": {}", esc(&self.message))
    }
}

/// A file of the pack as found on disk.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileReport {
    /// Relative name (`/`-separated).
    pub name: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

/// Reconstruction error of one tensor against the source model (`--against`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AgainstReport {
    /// Source safetensors file (relative to the source directory).
    pub source_file: String,
    /// Source dtype.
    pub source_dtype: String,
    /// Relative L2 error (None when undefined).
    pub rel_l2: Option<f64>,
    /// Largest absolute error.
    pub max_abs: f64,
}

/// A record found in the pack and verified.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TensorReport {
    /// Tensor name.
    pub name: String,
    /// Safetensors file holding it.
    pub file: String,
    /// File offset of the record's first byte.
    pub file_offset: u64,
    /// Logical shape.
    pub shape: Vec<u64>,
    /// Code width.
    pub bits: u8,
    /// Overlay rank.
    pub rank: u32,
    /// `none`, `f16` or `bf16`.
    pub overlay_dtype: &'static str,
    /// Record length.
    pub bytes: u64,
    /// CRC-32, 8 lowercase hex digits.
    pub crc32: String,
    /// SHA-256 of the decoded `W_base`.
    pub recon_sha256: String,
    /// Error against the source, with `--against`.
    pub against: Option<AgainstReport>,
}

impl TensorReport {
    /// JSON form for receipts.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Everything [`verify_pack`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct PackReport {
    /// Every check, in a deterministic order.
    pub checks: Vec<Check>,
    /// Every regular file of the pack except the manifest, sorted by name, with its actual digest.
    pub files: Vec<FileReport>,
    /// Every valid record, sorted by tensor name.
    pub tensors: Vec<TensorReport>,
    /// SHA-256 of the manifest, when it is a regular file.
    pub manifest_sha256: Option<String>,
    /// SHA-256 over the sorted lines `name:sha256\n` of every file of the pack, the manifest
    /// included and the signature file excluded.
    pub fingerprint: String,
    /// The signature check, when one was asked for.
    pub signature: Option<SignatureReport>,
    /// Bit accounting recomputed from the valid records.
    pub accounting: BpwAccounting,
    /// True when every check passed.
    pub verified: bool,
}

impl PackReport {
    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }

    /// The JSON receipt: tool, time, host, pack fingerprint, files, checks, tensors,
    /// verified. `pack_name` should be the directory's last component (no full path: it may name
    /// a user).
    pub fn receipt(&self, pack_name: &str, time: &str, against: bool) -> Value {
        #[derive(serde::Serialize)]
        struct Receipt<'a> {
            tool: &'static str,
            tool_version: &'static str,
            format_version: &'static str,
            mode: &'static str,
            time: &'a str,
            host: Value,
            pack: PackPart<'a>,
            bpw: f64,
            bpw_accounting: Value,
            against: bool,
            checks: &'a [Check],
            tensors: &'a [TensorReport],
            #[serde(skip_serializing_if = "Option::is_none")]
            signature: Option<&'a SignatureReport>,
            verified: bool,
        }
        #[derive(serde::Serialize)]
        struct PackPart<'a> {
            name: &'a str,
            fingerprint: &'a str,
            manifest_sha256: Option<&'a str>,
            size_bytes: u64,
            files: &'a [FileReport],
        }
        serde_json::to_value(Receipt {
            tool: "uc-verify",
            tool_version: env!("CARGO_PKG_VERSION"),
            format_version: manifest::FORMAT_VERSION,
            mode: "pack",
            time,
            host: uc_pack::env::host_fingerprint(),
            pack: PackPart {
                name: pack_name,
                fingerprint: &self.fingerprint,
                manifest_sha256: self.manifest_sha256.as_deref(),
                size_bytes: self.files.iter().fold(0u64, |a, f| a.saturating_add(f.size_bytes)),
                files: &self.files,
            },
            bpw: self.accounting.bpw(),
            bpw_accounting: self.accounting.to_json(),
            against,
            checks: &self.checks,
            tensors: &self.tensors,
            signature: self.signature.as_ref(),
            verified: self.verified,
        })
        .unwrap_or(Value::Null)
    }
}

/// Why a pack could not be verified at all.
#[derive(Debug)]
pub enum PackError {
    /// Reading failed (exit code 2).
    Io {
        /// What was being read.
        path: PathBuf,
        /// The operation.
        op: &'static str,
        /// The error.
        error: io::Error,
    },
    /// The path is not a directory (exit code 2).
    NotADirectory(PathBuf),
    /// The cancel flag was raised (exit code 130).
    Interrupted,
}

impl fmt::Display for PackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackError::Io { path, op, error } => write!(f, "{}: {op}: {error}", path.display()),
            PackError::NotADirectory(p) => write!(f, "{}: not a directory", p.display()),
            PackError::Interrupted => f.write_str("interrupted"),
        }
    }
}

impl std::error::Error for PackError {}

fn io_err(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> PackError + use<> {
    let path = path.to_path_buf();
    move |error| PackError::Io { path, op, error }
}

/// What the walk found at a relative path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    File(u64),
    Dir,
    Other(&'static str),
}

struct Found {
    entries: BTreeMap<String, Kind>,
    bad_names: Vec<String>,
}

/// Lists every entry under `dir` (without following symbolic links), iteratively.
fn walk(dir: &Path) -> Result<Found, PackError> {
    let mut entries = BTreeMap::new();
    let mut bad_names = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((abs, rel)) = stack.pop() {
        let rd = fs::read_dir(&abs).map_err(io_err(&abs, "list directory"))?;
        for e in rd {
            let e = e.map_err(io_err(&abs, "list directory"))?;
            let name = match e.file_name().into_string() {
                Ok(n) => n,
                Err(os) => {
                    bad_names.push(format!("{rel}{}", os.to_string_lossy()));
                    continue;
                }
            };
            let r = format!("{rel}{name}");
            let ft = e.file_type().map_err(io_err(&e.path(), "stat"))?;
            let kind = if ft.is_symlink() {
                Kind::Other("a symbolic link")
            } else if ft.is_dir() {
                stack.push((e.path(), format!("{r}/")));
                Kind::Dir
            } else if ft.is_file() {
                let md = fs::symlink_metadata(e.path()).map_err(io_err(&e.path(), "stat"))?;
                Kind::File(md.len())
            } else {
                Kind::Other("not a regular file or directory")
            };
            entries.insert(r, kind);
        }
    }
    Ok(Found { entries, bad_names })
}

fn path_of(dir: &Path, rel: &str) -> PathBuf {
    let mut p = dir.to_path_buf();
    for c in rel.split('/') {
        p.push(c);
    }
    p
}

struct Ctx<'a> {
    dir: &'a Path,
    opts: &'a PackOptions<'a>,
}

impl Ctx<'_> {
    fn cancelled(&self) -> bool {
        self.opts.cancel.is_some_and(|c| c.load(Ordering::Relaxed))
    }

    fn check_cancel(&self) -> Result<(), PackError> {
        if self.cancelled() {
            Err(PackError::Interrupted)
        } else {
            Ok(())
        }
    }

    fn progress(&self, p: Progress) {
        if let Some(f) = self.opts.progress {
            f(p);
        }
    }
}

fn hash_file(cx: &Ctx<'_>, rel: &str) -> Result<FileReport, PackError> {
    let path = path_of(cx.dir, rel);
    let mut f = File::open(&path).map_err(io_err(&path, "open"))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; HASH_CHUNK];
    let mut size = 0u64;
    loop {
        cx.check_cancel()?;
        let k = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(&path, "read")(e)),
        };
        h.update(&buf[..k]);
        size += k as u64;
        cx.progress(Progress::Advance(k as u64));
    }
    Ok(FileReport {
        name: rel.to_string(),
        size_bytes: size,
        sha256: hex(&h.finalize()),
    })
}

/// Reads a small JSON file (manifest, index) with a length cap; returns the value or a failure message.
fn read_json(path: &Path, cap: u64) -> Result<Result<Value, (String, Option<u64>)>, PackError> {
    let md = fs::symlink_metadata(path).map_err(io_err(path, "stat"))?;
    if md.len() > cap {
        return Ok(Err((format!("{} bytes exceed the {cap}-byte limit", md.len()), None)));
    }
    let mut bytes = Vec::new();
    File::open(path)
        .map_err(io_err(path, "open"))?
        .take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path, "read"))?;
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(e) => {
            return Ok(Err(("is not valid UTF-8".to_string(), Some(e.valid_up_to() as u64))));
        }
    };
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let at = uc_pack::jsonscan::line_col_to_offset(text, e.line(), e.column());
            return Ok(Err((format!("is not valid JSON: {e}"), Some(at))));
        }
    };
    if let Err(d) = uc_pack::jsonscan::scan(text) {
        return Ok(Err((
            format!("key {:?} appears twice in one object", d.key),
            Some(d.offset as u64),
        )));
    }
    Ok(Ok(v))
}

fn check_layout(found: &Found, checks: &mut Vec<Check>) -> Vec<String> {
    let top: Vec<&String> = found
        .entries
        .iter()
        .filter(|(k, v)| !k.contains('/') && matches!(v, Kind::File(_)))
        .map(|(k, _)| k)
        .collect();
    let st: Vec<String> = top
        .iter()
        .filter(|k| k.ends_with(".safetensors"))
        .map(|k| k.to_string())
        .collect();
    let has_index = top.iter().any(|k| *k == INDEX_NAME);
    let shards: Vec<(u32, u32)> = st.iter().filter_map(|k| shard_index(k)).collect();
    let mut problems = Vec::new();
    if !found.entries.contains_key(MANIFEST_NAME) {
        problems.push(format!("{MANIFEST_NAME} is missing"));
    }
    let others: Vec<&String> = st
        .iter()
        .filter(|k| *k != SINGLE_NAME && shard_index(k).is_none())
        .collect();
    if !others.is_empty() {
        problems.push(format!(
            "safetensors files that are neither {SINGLE_NAME} nor model-XXXXX-of-YYYYY.safetensors: {others:?}"
        ));
    }
    let single = st.iter().any(|k| k == SINGLE_NAME);
    let what;
    if single && !shards.is_empty() {
        problems.push(format!("both {SINGLE_NAME} and shards are present"));
        what = "mixed";
    } else if single {
        if has_index {
            problems.push(format!("{INDEX_NAME} is present beside a single {SINGLE_NAME}"));
        }
        what = "single file";
    } else if !shards.is_empty() {
        let n = shards[0].1;
        if shards.iter().any(|s| s.1 != n) {
            problems.push("shards disagree on the shard count".to_string());
        } else {
            let have: BTreeSet<u32> = shards.iter().map(|s| s.0).collect();
            let missing: Vec<String> = (1..=n)
                .filter(|i| !have.contains(i))
                .map(|i| shard_name(i, n))
                .collect();
            if !missing.is_empty() {
                problems.push(format!("missing shards: {missing:?}"));
            }
        }
        if !has_index {
            problems.push(format!("{INDEX_NAME} is missing"));
        }
        what = "sharded";
    } else {
        problems.push(format!("no {SINGLE_NAME} and no shards"));
        what = "empty";
    }
    if problems.is_empty() {
        checks.push(Check::pass(
            CheckName::PackLayout,
            format!("{what}: {} safetensors file(s) and {MANIFEST_NAME}", st.len()),
        ));
    } else {
        for p in problems {
            checks.push(Check::fail(CheckName::PackLayout, p));
        }
    }
    st
}

struct Budget {
    limit: u64,
    used: Mutex<u64>,
    cv: Condvar,
}

struct BudgetGuard<'a> {
    b: &'a Budget,
    n: u64,
}

impl Budget {
    fn acquire(&self, want: u64) -> BudgetGuard<'_> {
        let n = want.min(self.limit).max(1);
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        while used.saturating_add(n) > self.limit {
            used = self.cv.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += n;
        BudgetGuard { b: self, n }
    }
}

impl Drop for BudgetGuard<'_> {
    fn drop(&mut self) {
        let mut used = self.b.used.lock().unwrap_or_else(|e| e.into_inner());
        *used -= self.n;
        self.b.cv.notify_all();
    }
}

/// A source tensor for `--against`.
struct SourceTensor {
    file: String,
    path: PathBuf,
    data_start: u64,
    info: TensorInfo,
}

fn index_source(dir: &Path, checks: &mut Vec<Check>) -> Result<BTreeMap<String, SourceTensor>, PackError> {
    let mut names: Vec<String> = Vec::new();
    for e in fs::read_dir(dir).map_err(io_err(dir, "list directory"))? {
        let e = e.map_err(io_err(dir, "list directory"))?;
        if let Ok(n) = e.file_name().into_string() {
            if n.ends_with(".safetensors") && e.file_type().map_err(io_err(&e.path(), "stat"))?.is_file() {
                names.push(n);
            }
        }
    }
    names.sort();
    if names.is_empty() {
        checks.push(Check::fail(
            CheckName::AgainstSource,
            "the source directory holds no .safetensors file",
        ));
    }
    let mut map = BTreeMap::new();
    for n in names {
        let path = dir.join(&n);
        let mut f = File::open(&path).map_err(io_err(&path, "open"))?;
        let len = f.metadata().map_err(io_err(&path, "stat"))?.len();
        match safetensors::read_header(&mut f, len).map_err(io_err(&path, "read"))? {
            Err(e) => checks.push(
                Check::fail(CheckName::AgainstSource, format!("source header: {e}"))
                    .file(&n)
                    .offset(e.offset),
            ),
            Ok(h) => {
                for t in h.tensors {
                    map.entry(t.name.clone()).or_insert(SourceTensor {
                        file: n.clone(),
                        path: path.clone(),
                        data_start: h.data_start,
                        info: t,
                    });
                }
            }
        }
    }
    Ok(map)
}

/// A record to verify.
struct Job {
    file: String,
    path: PathBuf,
    data_start: u64,
    info: TensorInfo,
}

struct JobOut {
    checks: Vec<Check>,
    report: Option<TensorReport>,
    layout: Option<uc_format::Layout>,
}

fn overlay_name(d: OverlayDtype) -> &'static str {
    match d {
        OverlayDtype::None => "none",
        OverlayDtype::F16 => "f16",
        OverlayDtype::Bf16 => "bf16",
    }
}

fn verify_job(
    cx: &Ctx<'_>,
    budget: &Budget,
    job: &Job,
    entry: Option<&TensorEntry>,
    source: Option<&BTreeMap<String, SourceTensor>>,
) -> Result<JobOut, PackError> {
    cx.check_cancel()?;
    let t = &job.info;
    let file_offset = job.data_start + t.begin;
    let mut out = JobOut {
        checks: Vec::new(),
        report: None,
        layout: None,
    };
    let fail = |msg: String| {
        Check::fail(CheckName::TensorRecord, msg)
            .file(&job.file)
            .tensor(&t.name)
    };
    if t.shape.len() != 1 {
        out.checks.push(
            fail(format!(
                "a U8 tensor that begins with the record magic must have shape [record_len] (R-3.3), not {:?}",
                t.shape
            ))
            .offset(file_offset),
        );
        return Ok(out);
    }
    let len = t.len();
    let invalid = |e: uc_format::Error| {
        fail(format!(
            "invalid record: {} at byte offset {} of the record (spec {})",
            e.kind.name(),
            e.offset,
            e.clause()
        ))
        .offset(file_offset + e.offset)
    };
    // Steps 1 to 7 of need only the first 24 bytes: run them before the record is read (and
    // memory reserved for it), so that a huge tensor with a bad header costs 24 bytes, not its
    // size. Their errors are exactly those the whole record would give.
    {
        let mut head = [0u8; 24];
        let k = len.min(24) as usize;
        let mut f = File::open(&job.path).map_err(io_err(&job.path, "open"))?;
        f.seek(SeekFrom::Start(file_offset))
            .map_err(io_err(&job.path, "seek"))?;
        f.read_exact(&mut head[..k]).map_err(io_err(&job.path, "read"))?;
        match uc_format::validate(&head[..k]) {
            Err(e) if e.kind != uc_format::ErrorKind::Truncated => {
                out.checks.push(invalid(e));
                return Ok(out);
            }
            _ if k == 24 && u64::from_le_bytes(head[16..24].try_into().unwrap_or_default()) > len => {
                // Step 7 on the whole tensor: the record is longer than the tensor.
                out.checks
                    .push(invalid(uc_format::Error::new(uc_format::ErrorKind::Truncated, len)));
                return Ok(out);
            }
            _ => {}
        }
    }
    let _guard = budget.acquire(len);
    let n = usize::try_from(len).map_err(|_| PackError::Io {
        path: job.path.clone(),
        op: "read record",
        error: io::Error::new(io::ErrorKind::OutOfMemory, "record does not fit in the address space"),
    })?;
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(n).map_err(|_| PackError::Io {
        path: job.path.clone(),
        op: "read record",
        error: io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("cannot allocate {n} bytes for tensor {:?}", t.name),
        ),
    })?;
    bytes.resize(n, 0);
    let mut f = File::open(&job.path).map_err(io_err(&job.path, "open"))?;
    f.seek(SeekFrom::Start(file_offset))
        .map_err(io_err(&job.path, "seek"))?;
    f.read_exact(&mut bytes).map_err(io_err(&job.path, "read"))?;
    let rec = match Record::parse(&bytes) {
        Ok(r) => r,
        Err(e) => {
            out.checks.push(invalid(e));
            return Ok(out);
        }
    };
    let l = *rec.layout();
    if l.record_len != len {
        out.checks.push(
            fail(format!(
                "the tensor holds {len} bytes but its record is {} bytes long (R-3.3)",
                l.record_len
            ))
            .offset(file_offset + l.record_len),
        );
        return Ok(out);
    }
    // recon_sha256, streaming, interruptible; or from the caller's decoder (a GPU).
    let digest: [u8; 32] = if let Some(decode) = cx.opts.decode {
        let v = decode(&rec).map_err(|e| PackError::Io {
            path: job.path.clone(),
            op: "decode",
            error: io::Error::other(format!("tensor {:?}: {e}", t.name)),
        })?;
        cx.check_cancel()?;
        uc_pack::recon_sha256_of(&v)
    } else {
        let mut h = Sha256::new();
        let mut le = [0u8; 4 * uc_decode::BLOCK];
        for (i, block) in rec.blocks().enumerate() {
            if i % 4096 == 0 {
                cx.check_cancel()?;
            }
            for (c, v) in le.chunks_exact_mut(4).zip(block.as_slice()) {
                c.copy_from_slice(&v.to_le_bytes());
            }
            h.update(&le[..4 * block.len]);
        }
        h.finalize().into()
    };
    let report = TensorReport {
        name: t.name.clone(),
        file: job.file.clone(),
        file_offset,
        shape: rec.shape().to_vec(),
        bits: rec.bits(),
        rank: rec.overlay_rank(),
        overlay_dtype: overlay_name(rec.overlay_dtype()),
        bytes: l.record_len,
        crc32: format!("{:08x}", l.crc32),
        recon_sha256: hex(&digest),
        against: None,
    };
    out.checks.push(
        Check::pass(
            CheckName::TensorRecord,
            format!(
                "valid record: shape {:?}, {} bits, overlay rank {}, recon_sha256 {}",
                report.shape, report.bits, report.rank, report.recon_sha256
            ),
        )
        .file(&job.file)
        .tensor(&t.name)
        .offset(file_offset),
    );
    match entry {
        None => out.checks.push(
            Check::fail(
                CheckName::TensorManifest,
                "record is not listed in the manifest's tensors (R-12.6)",
            )
            .file(&job.file)
            .tensor(&t.name),
        ),
        Some(e) => {
            let mut diffs = Vec::new();
            let mut cmp = |what: &str, manifest: String, found: String| {
                if manifest != found {
                    diffs.push(format!("{what}: manifest {manifest}, pack {found}"));
                }
            };
            cmp("file", e.file.clone(), report.file.clone());
            cmp("shape", format!("{:?}", e.shape), format!("{:?}", report.shape));
            cmp("bits", e.bits.to_string(), report.bits.to_string());
            cmp("rank", e.rank.to_string(), report.rank.to_string());
            cmp(
                "overlay_dtype",
                e.overlay_dtype.clone(),
                report.overlay_dtype.to_string(),
            );
            cmp("bytes", e.bytes.to_string(), report.bytes.to_string());
            cmp("crc32", e.crc32.clone(), report.crc32.clone());
            cmp("recon_sha256", e.recon_sha256.clone(), report.recon_sha256.clone());
            out.checks.push(if diffs.is_empty() {
                Check::pass(CheckName::TensorManifest, "matches the manifest entry")
                    .file(&job.file)
                    .tensor(&t.name)
            } else {
                Check::fail(CheckName::TensorManifest, diffs.join("; "))
                    .file(&job.file)
                    .tensor(&t.name)
                    .offset(file_offset)
            });
        }
    }
    let mut report = report;
    if let Some(src) = source {
        let (check, against) = measure_against(cx, &rec, &t.name, src, entry)?;
        out.checks.push(check.file(&job.file).tensor(&t.name));
        report.against = against;
    }
    out.layout = Some(l);
    out.report = Some(report);
    Ok(out)
}

fn measure_against(
    cx: &Ctx<'_>,
    rec: &Record<'_>,
    name: &str,
    src: &BTreeMap<String, SourceTensor>,
    entry: Option<&TensorEntry>,
) -> Result<(Check, Option<AgainstReport>), PackError> {
    let Some(s) = src.get(name) else {
        return Ok((
            Check::fail(CheckName::Against, "the source model has no tensor of this name"),
            None,
        ));
    };
    if s.info.shape != rec.shape() {
        return Ok((
            Check::fail(
                CheckName::Against,
                format!(
                    "source shape {:?} differs from the record's {:?}",
                    s.info.shape,
                    rec.shape()
                ),
            ),
            None,
        ));
    }
    let conv: fn(&[u8]) -> f32 = match s.info.dtype {
        Dtype::F32 => |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        Dtype::F16 => |b| uc_format::num::f16_to_f32(u16::from_le_bytes([b[0], b[1]])),
        Dtype::Bf16 => |b| uc_format::num::bf16_to_f32(u16::from_le_bytes([b[0], b[1]])),
        d => {
            return Ok((
                Check::fail(CheckName::Against, format!("source dtype {d} is not F32, F16 or BF16")),
                None,
            ));
        }
    };
    let size = s.info.dtype.size() as usize;
    let mut f = File::open(&s.path).map_err(io_err(&s.path, "open"))?;
    f.seek(SeekFrom::Start(s.data_start + s.info.begin))
        .map_err(io_err(&s.path, "seek"))?;
    let mut r = BufReader::with_capacity(1 << 16, f);
    let mut stats = ErrorStats::default();
    let mut buf = [0u8; 8 * uc_decode::BLOCK];
    let mut io_error = None;
    let mut chunks = 0u64;
    let mut interrupted = false;
    uc_pack::for_each_reconstructed(rec, |_, vals| {
        chunks += 1;
        if chunks % 4096 == 0 && cx.cancelled() {
            interrupted = true;
            return false;
        }
        let b = &mut buf[..vals.len() * size];
        if let Err(e) = r.read_exact(b) {
            io_error = Some(e);
            return false;
        }
        for (c, &w) in b.chunks_exact(size).zip(vals) {
            stats.push(conv(c), w);
        }
        true
    })
    .map_err(|m| PackError::Io {
        path: s.path.clone(),
        op: "decode overlay",
        error: io::Error::new(io::ErrorKind::OutOfMemory, m),
    })?;
    if interrupted {
        return Err(PackError::Interrupted);
    }
    if let Some(e) = io_error {
        return Err(io_err(&s.path, "read")(e));
    }
    let report = AgainstReport {
        source_file: s.file.clone(),
        source_dtype: s.info.dtype.name().to_string(),
        rel_l2: stats.rel_l2(),
        max_abs: stats.max_abs,
    };
    let fmt_rel = report.rel_l2.map_or("undefined".to_string(), |x| format!("{x:.6e}"));
    let mut check = Check::pass(
        CheckName::Against,
        format!("rel_l2 {fmt_rel}, max_abs {:.6e} (source {})", report.max_abs, s.file),
    );
    if let Some(claimed) = entry.and_then(|e| e.rel_l2) {
        let ok = match report.rel_l2 {
            Some(m) => (claimed - m).abs() <= REL_L2_TOLERANCE * claimed.abs().max(m.abs()) + 1e-12,
            None => false,
        };
        if !ok {
            check = Check::fail(
                CheckName::Against,
                format!("measured rel_l2 {fmt_rel} differs from the manifest's {claimed:e} (R-12.6)"),
            );
        }
    }
    Ok((check, Some(report)))
}

fn check_index(cx: &Ctx<'_>, headers: &BTreeMap<String, Header>, checks: &mut Vec<Check>) -> Result<(), PackError> {
    let path = path_of(cx.dir, INDEX_NAME);
    let v = match read_json(&path, safetensors::MAX_HEADER_LEN)? {
        Ok(v) => v,
        Err((m, off)) => {
            let mut c = Check::fail(CheckName::Index, format!("{INDEX_NAME} {m}")).file(INDEX_NAME);
            c.offset = off;
            checks.push(c);
            return Ok(());
        }
    };
    let mut problems = Vec::new();
    let wm = v.get("weight_map").and_then(Value::as_object);
    let total = v
        .get("metadata")
        .and_then(Value::as_object)
        .and_then(|m| m.get("total_size"))
        .and_then(Value::as_u64);
    if wm.is_none() {
        problems.push("weight_map is missing or not an object".to_string());
    }
    if total.is_none() {
        problems.push("metadata.total_size is missing or not a non-negative integer".to_string());
    }
    if let Some(wm) = wm {
        for (file, h) in headers {
            for t in &h.tensors {
                match wm.get(&t.name).and_then(Value::as_str) {
                    Some(f) if f == file => {}
                    Some(f) => problems.push(format!("weight_map maps {:?} to {f:?}, but it is in {file:?}", t.name)),
                    None => problems.push(format!("weight_map lacks {:?} (in {file:?})", t.name)),
                }
            }
        }
        // One set of (file, tensor) built once: a lookup per entry, not a scan of the shard.
        let present: std::collections::HashSet<(&str, &str)> = headers
            .iter()
            .flat_map(|(file, h)| h.tensors.iter().map(move |t| (file.as_str(), t.name.as_str())))
            .collect();
        for (name, f) in wm {
            let ok = f.as_str().is_some_and(|f| present.contains(&(f, name.as_str())));
            if !ok {
                problems.push(format!(
                    "weight_map entry {name:?} -> {f} names no tensor of that shard"
                ));
            }
        }
    }
    if let Some(total) = total {
        let actual = headers
            .values()
            .fold(0u64, |a, h| a.saturating_add(h.file_len - h.data_start));
        if total != actual {
            problems.push(format!(
                "metadata.total_size is {total}, the shards' data areas hold {actual} bytes"
            ));
        }
    }
    if problems.is_empty() {
        checks.push(Check::pass(CheckName::Index, "weight_map and total_size match the shards").file(INDEX_NAME));
    } else {
        let more = problems.len().saturating_sub(5);
        let mut m = problems.into_iter().take(5).collect::<Vec<_>>().join("; ");
        if more > 0 {
            m.push_str(&format!("; and {more} more"));
        }
        checks.push(Check::fail(CheckName::Index, m).file(INDEX_NAME));
    }
    Ok(())
}

/// Verifies a pack directory. See the module documentation.
pub fn verify_pack(dir: &Path, opts: &PackOptions<'_>) -> Result<PackReport, PackError> {
    let md = fs::metadata(dir).map_err(io_err(dir, "open"))?;
    if !md.is_dir() {
        return Err(PackError::NotADirectory(dir.to_path_buf()));
    }
    let cx = Ctx { dir, opts };
    let mut checks = Vec::new();
    let mut found = walk(dir)?;
    cx.check_cancel()?;
    // The signature file is not part of the pack's content: `model.sig` at the
    // root, when it is a regular file. Any other file, a signature given with `--signature`
    // included, is content and must be listed.
    let root_sig = matches!(found.entries.get(uc_sign::SIGNATURE_NAME), Some(Kind::File(_)));
    if root_sig {
        found.entries.remove(uc_sign::SIGNATURE_NAME);
    }
    // Entries that are not regular files (links, devices, names that are not UTF-8): content that
    // no signature can list, reported by the signature check too.
    let unsignable: Vec<String> = found
        .entries
        .iter()
        .filter(|(_, k)| matches!(k, Kind::Other(_)))
        .map(|(n, _)| n.clone())
        .chain(found.bad_names.iter().cloned())
        .collect();

    // Layout and manifest.
    let st_files = check_layout(&found, &mut checks);
    // The declared versions, checked against the records' features once they are read.
    let mut manifest_format: Option<String> = None;
    let mut file_formats: BTreeMap<String, String> = BTreeMap::new();
    let mc: ManifestCheck = match found.entries.get(MANIFEST_NAME) {
        Some(Kind::File(_)) => match read_json(&path_of(dir, MANIFEST_NAME), manifest::MAX_MANIFEST_LEN)? {
            Ok(v) => {
                checks.push(Check::pass(CheckName::ManifestJson, "parses as JSON").file(MANIFEST_NAME));
                manifest_format = v.get("format_version").and_then(|x| x.as_str()).map(String::from);
                let mc = manifest::check_manifest(&v);
                if mc.issues.is_empty() {
                    checks.push(Check::pass(CheckName::ManifestSchema, "conforms to schema 1.1").file(MANIFEST_NAME));
                }
                for i in &mc.issues {
                    let at = if i.path.is_empty() { "manifest" } else { &i.path };
                    checks.push(
                        Check::fail(CheckName::ManifestSchema, format!("{at}: {}", i.message)).file(MANIFEST_NAME),
                    );
                }
                mc
            }
            Err((m, off)) => {
                let mut c = Check::fail(CheckName::ManifestJson, format!("{MANIFEST_NAME} {m}")).file(MANIFEST_NAME);
                c.offset = off;
                checks.push(c);
                ManifestCheck::default()
            }
        },
        Some(_) => {
            checks.push(
                Check::fail(
                    CheckName::ManifestJson,
                    format!("{MANIFEST_NAME} is not a regular file"),
                )
                .file(MANIFEST_NAME),
            );
            ManifestCheck::default()
        }
        None => {
            checks
                .push(Check::fail(CheckName::ManifestJson, format!("{MANIFEST_NAME} is missing")).file(MANIFEST_NAME));
            ManifestCheck::default()
        }
    };

    // Files: hash everything, compare with the manifest.
    let regular: Vec<(&String, u64)> = found
        .entries
        .iter()
        .filter_map(|(k, v)| match v {
            Kind::File(s) => Some((k, *s)),
            _ => None,
        })
        .collect();
    cx.progress(Progress::Stage {
        name: "hashing files",
        total: regular.iter().map(|r| r.1).sum(),
    });
    let mut files: Vec<FileReport> = regular
        .par_iter()
        .map(|(k, _)| hash_file(&cx, k))
        .collect::<Result<_, _>>()?;
    files.sort_by(|a, b| a.name.cmp(&b.name));
    // The manifest is hashed with the others (the fingerprint and the signature cover it) but
    // reported apart from `files`.
    let manifest_report = files
        .iter()
        .position(|f| f.name == MANIFEST_NAME)
        .map(|i| files.remove(i));
    let actual: BTreeMap<&str, &FileReport> = files.iter().map(|f| (f.name.as_str(), f)).collect();
    let signature = opts.signature.map(|so| {
        check_signature(
            dir,
            so,
            &files,
            manifest_report.as_ref(),
            &unsignable,
            root_sig,
            &mut checks,
        )
    });
    for b in &found.bad_names {
        checks.push(Check::fail(CheckName::FileUnlisted, "file name is not valid UTF-8").file(b));
    }
    let mut listed_dirs = BTreeSet::new();
    match &mc.files {
        None => checks.push(Check::fail(
            CheckName::FileDigest,
            "cannot compare files: the manifest has no valid files member",
        )),
        Some(listed) => {
            for (name, e) in listed {
                let mut p = name.as_str();
                while let Some((parent, _)) = p.rsplit_once('/') {
                    listed_dirs.insert(parent.to_string());
                    p = parent;
                }
                checks.push(file_check(name, e, found.entries.get(name), actual.get(name.as_str())));
            }
            if let Some(total) = mc.size_bytes {
                let sum = listed.values().fold(0u64, |a, f| a.saturating_add(f.size_bytes));
                checks.push(if sum == total {
                    Check::pass(
                        CheckName::ManifestSizeBytes,
                        format!("{total} bytes in {} files", listed.len()),
                    )
                } else {
                    Check::fail(
                        CheckName::ManifestSizeBytes,
                        format!("size_bytes is {total} but the files listed add up to {sum}"),
                    )
                });
            }
            let malformed: std::collections::HashSet<&str> = mc.malformed_files.iter().map(String::as_str).collect();
            let mut unlisted = 0;
            for (name, kind) in &found.entries {
                if name == MANIFEST_NAME || listed.contains_key(name) || malformed.contains(name.as_str()) {
                    continue;
                }
                let msg = match kind {
                    Kind::File(_) => "file is not listed in the manifest (R-12.4)".to_string(),
                    Kind::Dir if listed_dirs.contains(name) => continue,
                    Kind::Dir => "directory holds no listed file (R-12.4)".to_string(),
                    Kind::Other(what) => format!("{what}: a pack holds only regular files and directories (R-12.4)"),
                };
                unlisted += 1;
                checks.push(Check::fail(CheckName::FileUnlisted, msg).file(name));
            }
            if unlisted == 0 && found.bad_names.is_empty() {
                checks.push(Check::pass(
                    CheckName::FileUnlisted,
                    "every file is listed in the manifest",
                ));
            }
        }
    }

    // Safetensors headers.
    let mut headers: BTreeMap<String, Header> = BTreeMap::new();
    for name in &st_files {
        let path = path_of(dir, name);
        let mut f = File::open(&path).map_err(io_err(&path, "open"))?;
        let len = f.metadata().map_err(io_err(&path, "stat"))?.len();
        match safetensors::read_header(&mut f, len).map_err(io_err(&path, "read"))? {
            Ok(h) => {
                checks.push(
                    Check::pass(
                        CheckName::SafetensorsHeader,
                        format!(
                            "{} tensors, data area of {} bytes",
                            h.tensors.len(),
                            h.file_len - h.data_start
                        ),
                    )
                    .file(name),
                );
                headers.insert(name.clone(), h);
            }
            Err(e) => {
                let mut c = Check::fail(CheckName::SafetensorsHeader, e.to_string())
                    .file(name)
                    .offset(e.offset);
                c.tensor = e.tensor.clone();
                checks.push(c);
            }
        }
    }
    if found
        .entries
        .get(INDEX_NAME)
        .is_some_and(|k| matches!(k, Kind::File(_)))
    {
        check_index(&cx, &headers, &mut checks)?;
    }

    // Tensors: alignment, padding, record detection.
    let mut jobs = Vec::new();
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    let mut records_in: BTreeSet<&str> = BTreeSet::new();
    let mut non_records: BTreeSet<&str> = BTreeSet::new();
    let mut pad_count = 0u64;
    for (file, h) in &headers {
        let path = path_of(dir, file);
        let mut f = File::open(&path).map_err(io_err(&path, "open"))?;
        let mut layout_ok = true;
        for (i, t) in h.tensors.iter().enumerate() {
            let off = h.file_offset(t);
            if let Some(prev) = seen.insert(&t.name, file) {
                checks.push(
                    Check::fail(CheckName::SafetensorsLayout, format!("tensor name also used in {prev}"))
                        .file(file)
                        .tensor(&t.name),
                );
                layout_ok = false;
            }
            if t.is_padding() {
                let mut problem = check_padding_shape(h, i, t, pad_count);
                pad_count += 1;
                if problem.is_none() {
                    let mut b = [0u8; 64];
                    let b = &mut b[..t.len() as usize];
                    f.seek(SeekFrom::Start(off)).map_err(io_err(&path, "seek"))?;
                    f.read_exact(b).map_err(io_err(&path, "read"))?;
                    if let Some(j) = b.iter().position(|&x| x != 0) {
                        problem = Some((off + j as u64, "padding byte is not zero".to_string()));
                    }
                }
                if let Some((at, m)) = problem {
                    checks.push(
                        Check::fail(CheckName::SafetensorsLayout, format!("{m} (R-3.6)"))
                            .file(file)
                            .tensor(&t.name)
                            .offset(at),
                    );
                    layout_ok = false;
                }
                continue;
            }
            if off % DATA_ALIGN != 0 {
                checks.push(
                    Check::fail(
                        CheckName::SafetensorsLayout,
                        "tensor data does not start at a multiple of 64 (R-3.5)",
                    )
                    .file(file)
                    .tensor(&t.name)
                    .offset(off),
                );
                layout_ok = false;
            }
            let mut is_record = false;
            if t.dtype == Dtype::U8 && t.len() >= 8 {
                let mut m = [0u8; 8];
                f.seek(SeekFrom::Start(off)).map_err(io_err(&path, "seek"))?;
                f.read_exact(&mut m).map_err(io_err(&path, "read"))?;
                is_record = m == MAGIC;
            }
            if is_record {
                records_in.insert(file);
                jobs.push(Job {
                    file: file.clone(),
                    path: path.clone(),
                    data_start: h.data_start,
                    info: t.clone(),
                });
            } else {
                non_records.insert(&t.name);
            }
        }
        if layout_ok {
            checks.push(
                Check::pass(
                    CheckName::SafetensorsLayout,
                    "every tensor starts at a multiple of 64; padding is valid",
                )
                .file(file),
            );
        }
        // Metadata.
        let key = uc_format::SAFETENSORS_METADATA_KEY;
        if let Some(v) = h.metadata.get(key) {
            file_formats.insert(file.clone(), v.clone());
        }
        match h.metadata.get(key) {
            Some(v) if manifest::version_at_least(v, 0, 3) => {
                checks.push(Check::pass(CheckName::SafetensorsMetadata, format!("{key} = {v:?}")).file(file))
            }
            Some(v) => checks.push(
                Check::fail(
                    CheckName::SafetensorsMetadata,
                    format!("{key} = {v:?} names a version this tool does not implement (R-10.4)"),
                )
                .file(file),
            ),
            None if records_in.contains(file.as_str()) => checks.push(
                Check::fail(
                    CheckName::SafetensorsMetadata,
                    format!("the file holds records but its __metadata__ lacks {key:?} (R-3.2)"),
                )
                .file(file),
            ),
            None => {
                checks.push(Check::pass(CheckName::SafetensorsMetadata, "no records, no uc.format needed").file(file))
            }
        }
    }

    // Records, in parallel.
    let source = match &opts.against {
        Some(src) => Some(index_source(src, &mut checks)?),
        None => None,
    };
    cx.progress(Progress::Stage {
        name: "verifying tensors",
        total: jobs.len() as u64,
    });
    let budget = Budget {
        limit: opts.memory_budget.max(1),
        used: Mutex::new(0),
        cv: Condvar::new(),
    };
    let tensors_m = mc.tensors.as_ref();
    let mut outs: Vec<(String, JobOut)> = jobs
        .par_iter()
        .map(|j| {
            let entry = tensors_m.and_then(|m| m.get(&j.info.name));
            let r = verify_job(&cx, &budget, j, entry, source.as_ref());
            cx.progress(Progress::Advance(1));
            r.map(|o| (j.info.name.clone(), o))
        })
        .collect::<Result<_, _>>()?;
    outs.sort_by(|a, b| a.0.cmp(&b.0));
    // Files and the manifest must declare 0.4 where a record has two-level scales.
    let file_of: BTreeMap<&str, &str> = jobs.iter().map(|j| (j.info.name.as_str(), j.file.as_str())).collect();
    let v04_files: BTreeSet<&str> = outs
        .iter()
        .filter(|(_, o)| o.layout.is_some_and(|l| l.has_subscales()))
        .filter_map(|(n, _)| file_of.get(n.as_str()).copied())
        .collect();
    for f in &v04_files {
        match file_formats.get(*f) {
            Some(v) if manifest::version_at_least(v, 0, 4) => {}
            v => checks.push(
                Check::fail(
                    CheckName::SafetensorsMetadata,
                    format!(
                        "the file holds records with two-level scales but declares uc.format {v:?}, not 0.4 (R-13.6)"
                    ),
                )
                .file(f),
            ),
        }
    }
    let manifest_below_04 = manifest_format
        .as_deref()
        .is_some_and(|v| !manifest::version_at_least(v, 0, 4));
    if !v04_files.is_empty() && manifest_below_04 {
        let v = manifest_format.as_deref().unwrap_or_default();
        checks.push(
            Check::fail(
                CheckName::ManifestSchema,
                format!("format_version is {v:?} but the pack holds records with two-level scales (0.4, R-13.6)"),
            )
            .file(MANIFEST_NAME),
        );
    }
    let mut accounting = BpwAccounting::default();
    let mut reports = Vec::new();
    let mut valid_records = BTreeSet::new();
    let mut invalid = 0usize;
    for (name, o) in outs {
        checks.extend(o.checks);
        match o.layout {
            Some(l) => {
                accounting.add(&l);
                valid_records.insert(name);
            }
            None => invalid += 1,
        }
        reports.extend(o.report);
    }
    let record_names: BTreeSet<&str> = jobs.iter().map(|j| j.info.name.as_str()).collect();
    if let Some(m) = tensors_m {
        for (name, e) in m {
            if record_names.contains(name.as_str()) {
                continue;
            }
            let why = if non_records.contains(name.as_str()) {
                "is in the pack but is not a uc record"
            } else {
                "is listed in the manifest but is in no safetensors file of the pack"
            };
            checks.push(
                Check::fail(CheckName::TensorManifest, format!("tensor {why} (R-12.6)"))
                    .file(&e.file)
                    .tensor(name),
            );
        }
    }

    // Bit accounting.
    match (mc.bpw_accounting, mc.bpw) {
        (Some(a), Some(bpw)) => {
            let mut problems = Vec::new();
            if a != accounting {
                problems.push(format!(
                    "bpw_accounting is {}, the records give {}",
                    a.to_json(),
                    accounting.to_json()
                ));
            }
            let want = accounting.bpw();
            if (bpw - want).abs() > BPW_TOLERANCE * want.abs().max(bpw.abs()) {
                problems.push(format!("bpw is {bpw}, the records give {want}"));
            }
            if invalid > 0 {
                problems.push(format!("{invalid} invalid record(s) are not counted"));
            }
            checks.push(if problems.is_empty() {
                Check::pass(
                    CheckName::Bpw,
                    format!(
                        "{want:.6} bits per quantized weight over {} records",
                        valid_records.len()
                    ),
                )
            } else {
                Check::fail(CheckName::Bpw, problems.join("; "))
            });
        }
        _ => checks.push(Check::fail(
            CheckName::Bpw,
            "cannot check: bpw or bpw_accounting is missing or malformed",
        )),
    }

    let mut all: Vec<&FileReport> = files.iter().chain(manifest_report.as_ref()).collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    let mut fp = Sha256::new();
    for f in all {
        fp.update(format!("{}:{}\n", f.name, f.sha256).as_bytes());
    }
    let verified = checks.iter().all(|c| c.ok);
    Ok(PackReport {
        checks,
        files,
        tensors: reports,
        manifest_sha256: manifest_report.map(|m| m.sha256),
        fingerprint: hex(&fp.finalize()),
        signature,
        accounting,
        verified,
    })
}

/// `path` relative to `dir` (`/`-separated) when it names a file inside `dir`.
fn relative_inside(dir: &Path, path: &Path) -> Option<String> {
    let d = fs::canonicalize(dir).ok()?;
    let p = fs::canonicalize(path).ok()?;
    let rel = p.strip_prefix(&d).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    let parts = parts?;
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// The `signature` and `signature.files` checks: the bundle against the trust given, then
/// every signed file against the digests just computed (hashing is shared with `file.digest`).
/// `unsignable`: entries of the pack that are not regular files; `root_sig`: the pack holds a
/// `model.sig` at its root.
fn check_signature(
    dir: &Path,
    so: &SignatureOptions,
    files: &[FileReport],
    manifest: Option<&FileReport>,
    unsignable: &[String],
    root_sig: bool,
    checks: &mut Vec<Check>,
) -> SignatureReport {
    let inside = relative_inside(dir, &so.path);
    let shown = inside.clone().unwrap_or_else(|| {
        so.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| so.path.display().to_string())
    });
    let mut report = SignatureReport {
        file: shown.clone(),
        sha256: None,
        method: None,
        algorithm: None,
        key_id: None,
        subject: None,
        root: None,
        files_signed: 0,
        verdict: "invalid",
    };
    let bytes = match uc_pack::fs::read_capped(&so.path, uc_sign::MAX_BUNDLE_LEN) {
        Ok(b) => b,
        // A signature that is missing or unreadable leaves the pack unverified as signed: a failed
        // check (exit 1), not a usage error, so that removing `model.sig` cannot pass.
        Err(e) => {
            checks.push(Check::fail(CheckName::Signature, format!("cannot read the signature: {e}")).file(&shown));
            return report;
        }
    };
    report.sha256 = Some(hex(&Sha256::digest(&bytes)));
    let v = match uc_sign::verify(&bytes, &so.trust) {
        Ok(v) => v,
        Err(e) => {
            checks.push(Check::fail(CheckName::Signature, e.to_string()).file(&shown));
            return report;
        }
    };
    report.algorithm = Some(v.algorithm.name());
    report.key_id = Some(v.key_id.clone());
    report.files_signed = v.resources.len();
    let who = match &v.method {
        uc_sign::Method::Key => {
            report.method = Some("key");
            format!("key {}", v.key_id)
        }
        uc_sign::Method::Certificate { subject, root } => {
            report.method = Some("certificate");
            report.subject = Some(subject.clone());
            report.root = Some(root.clone());
            format!("certificate {} (key {}) chained to {}", subject, v.key_id, root)
        }
    };
    // A model.sig at the root that is not the signature verified is reported (it is not content,
    // and nothing checked it).
    let other = if root_sig && inside.as_deref() != Some(uc_sign::SIGNATURE_NAME) {
        format!("; the pack's own {} was not verified", uc_sign::SIGNATURE_NAME)
    } else {
        String::new()
    };
    checks.push(
        Check::pass(
            CheckName::Signature,
            format!(
                "OMS v1.0 bundle, {} signature by {who}, over {} files{other}",
                v.algorithm.name(),
                v.resources.len()
            ),
        )
        .file(&shown),
    );
    let mut actual = BTreeMap::new();
    for f in files.iter().chain(manifest) {
        // Digests computed here are always 64 hex digits.
        if let Some(d) = uc_sign::parse_hex32(&f.sha256) {
            actual.insert(f.name.clone(), d);
        }
    }
    let mismatches = uc_sign::compare_files(&v, &actual);
    if mismatches.is_empty() && unsignable.is_empty() {
        report.verdict = "valid";
        checks.push(Check::pass(
            CheckName::SignatureFiles,
            format!("every file of the pack is signed and matches ({} files)", actual.len()),
        ));
    }
    for m in mismatches {
        checks.push(Check::fail(CheckName::SignatureFiles, m.to_string()).file(m.file()));
    }
    for n in unsignable {
        checks.push(
            Check::fail(
                CheckName::SignatureFiles,
                "not a regular file (or its name is not UTF-8): not covered by the signature",
            )
            .file(n),
        );
    }
    report
}

fn file_check(name: &str, e: &FileEntry, kind: Option<&Kind>, actual: Option<&&FileReport>) -> Check {
    let c = match (kind, actual) {
        (None, _) => Check::fail(CheckName::FileDigest, "listed in the manifest but missing"),
        (Some(Kind::Dir), _) => Check::fail(CheckName::FileDigest, "listed as a file but is a directory"),
        (Some(Kind::Other(what)), _) => Check::fail(CheckName::FileDigest, format!("listed file is {what}")),
        (Some(Kind::File(_)), None) => Check::fail(CheckName::FileDigest, "listed file could not be hashed"),
        (Some(Kind::File(_)), Some(a)) => {
            if a.size_bytes != e.size_bytes {
                Check::fail(
                    CheckName::FileDigest,
                    format!("size is {} bytes, the manifest says {}", a.size_bytes, e.size_bytes),
                )
            } else if a.sha256 != e.sha256 {
                Check::fail(
                    CheckName::FileDigest,
                    format!("SHA-256 is {}, the manifest says {}", a.sha256, e.sha256),
                )
            } else {
                Check::pass(
                    CheckName::FileDigest,
                    format!("{} bytes, sha256 {}", a.size_bytes, a.sha256),
                )
            }
        }
    };
    c.file(name)
}

/// A padding tensor must be named `__uc_pad_<k>` (`k` counting the pack's padding tensors from 0 in
/// data order, through the files in name order), be U8 `[p]` with `1 <= p <= 63`, start at an
/// unaligned file offset, end at an aligned one, and be followed by another tensor. Returns
/// the offending offset and why.
fn check_padding_shape(h: &Header, i: usize, t: &TensorInfo, k: u64) -> Option<(u64, String)> {
    let off = h.file_offset(t);
    let want = format!("{PAD_PREFIX}{k}");
    if t.name != want {
        return Some((
            off,
            format!("padding tensor number {k} of the pack must be named {want}"),
        ));
    }
    if t.dtype != Dtype::U8 || t.shape.len() != 1 || !(1..DATA_ALIGN).contains(&t.len()) {
        return Some((
            off,
            "padding tensor is not U8 of shape [p] with 1 <= p <= 63".to_string(),
        ));
    }
    if off % DATA_ALIGN == 0 || (off + t.len()) % DATA_ALIGN != 0 {
        return Some((
            off,
            "padding tensor does not end at the next multiple of 64".to_string(),
        ));
    }
    if i + 1 >= h.tensors.len() {
        return Some((off, "padding tensor is the last tensor of the file".to_string()));
    }
    None
}
