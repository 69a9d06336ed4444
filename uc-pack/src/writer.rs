//! Writing a pack directory (spec sections 2, 3 and 12).
//!
//! ```no_run
//! use uc_pack::{Dtype, PackWriter};
//! # fn encode(_: &[f32]) -> Vec<u8> { unimplemented!() }
//! # fn main() -> Result<(), uc_pack::PackWriteError> {
//! let w: Vec<f32> = (0..4096).map(|i| (i as f32 * 0.37).sin()).collect();
//! let record: Vec<u8> = encode(&w); // a uc record, e.g. from uc_encode::quantize
//! let mut pack = PackWriter::new("model-uc4")?;
//! pack.add_record("layers.0.mlp.weight", &record, None)?;
//! pack.add_verbatim("layers.0.norm.weight", Dtype::F32, &[2], &[0, 0, 128, 63, 0, 0, 128, 63])?;
//! pack.copy_file("config.json", "source-model/config.json")?;
//! pack.info_mut().model_id = "example/model-uc4".into();
//! let summary = pack.finish()?;
//! println!("{} bits per weight", summary.manifest.bpw_accounting.bpw());
//! # Ok(()) }
//! ```
//!
//! Tensor data is spooled to a temporary file next to the final directory as it is added, so memory
//! does not grow with the model. [`PackWriter::finish`] writes the safetensors file(s) (tensors sorted
//! by name, each starting at a file offset that is a multiple of 64, gaps filled by padding tensors),
//! the shard index when there are several shards, and `ultracompress.json`, all into a temporary
//! sibling directory `.<name>.tmp-<pid>`; it syncs every file and the directory, then renames the
//! directory to the final path. The final path therefore never holds a partial pack. Everything is
//! deterministic except `created_at` and `provenance.environment` in the manifest, which no content
//! digest covers.

use crate::layout::{INDEX_NAME, SINGLE_NAME, shard_name};
use crate::manifest::{BpwAccounting, FileEntry, MANIFEST_NAME, Manifest, Provenance, TensorEntry, check_file_name};
pub use crate::safetensors::Dtype;
use crate::safetensors::{METADATA_KEY, PAD_PREFIX, PlannedTensor, plan_file, tensor_nbytes};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use uc_decode::Record;
use uc_format::{MAGIC, OverlayDtype};

/// Default largest shard: 4 GiB of tensor data.
pub const DEFAULT_SHARD_SIZE: u64 = 4 << 30;

/// Why a pack could not be written. Every variant names the file or tensor concerned.
#[derive(Debug)]
pub enum PackWriteError {
    /// An I/O operation failed.
    Io {
        /// The path concerned.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The error.
        error: io::Error,
    },
    /// The final directory exists and overwriting was not requested.
    Exists(PathBuf),
    /// The final path has no usable directory name.
    BadPath(PathBuf),
    /// A tensor or file name is not allowed.
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A tensor or file of this name was already added.
    Duplicate(String),
    /// The bytes given for a quantized tensor are not a valid record.
    InvalidRecord {
        /// Tensor name.
        tensor: String,
        /// Validation error (class, clause and byte offset within the record).
        error: uc_format::Error,
    },
    /// A verbatim tensor's byte length is not its shape times its dtype size.
    DataLength {
        /// Tensor name.
        tensor: String,
        /// Required length (None when the shape overflows).
        expected: Option<u64>,
        /// Length given.
        got: u64,
    },
    /// A verbatim U8 tensor begins with the record magic, so readers would take it for a record (R-3.4).
    LooksLikeRecord(String),
    /// A value passed to the writer (time stamp, rel_l2, `SOURCE_DATE_EPOCH`) is invalid.
    InvalidValue {
        /// Which value.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for PackWriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackWriteError::Io { path, op, error } => write!(f, "{}: {op}: {error}", path.display()),
            PackWriteError::Exists(p) => write!(
                f,
                "{}: already exists (choose another path or allow overwriting)",
                p.display()
            ),
            PackWriteError::BadPath(p) => write!(f, "{}: not a usable pack directory path", p.display()),
            PackWriteError::InvalidName { name, reason } => write!(f, "name {name:?}: {reason}"),
            PackWriteError::Duplicate(n) => write!(f, "{n:?} was already added"),
            PackWriteError::InvalidRecord { tensor, error } => write!(f, "tensor {tensor:?}: {error}"),
            PackWriteError::DataLength { tensor, expected, got } => match expected {
                Some(e) => write!(f, "tensor {tensor:?}: {got} bytes given, its shape and dtype need {e}"),
                None => write!(f, "tensor {tensor:?}: shape times dtype size overflows 64 bits"),
            },
            PackWriteError::LooksLikeRecord(n) => write!(
                f,
                "tensor {n:?}: a verbatim U8 tensor must not begin with the record magic (R-3.4)"
            ),
            PackWriteError::InvalidValue { what, reason } => write!(f, "{what}: {reason}"),
        }
    }
}

impl std::error::Error for PackWriteError {}

fn io_err(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> PackWriteError + use<> {
    let path = path.to_path_buf();
    move |error| PackWriteError::Io { path, op, error }
}

/// Options of [`PackWriter::with_options`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterOptions {
    /// Replace an existing final directory (only after the new pack is complete).
    pub overwrite: bool,
    /// Largest amount of tensor data per safetensors file before the pack is sharded. A tensor larger
    /// than this gets a shard of its own.
    pub shard_size: u64,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            overwrite: false,
            shard_size: DEFAULT_SHARD_SIZE,
        }
    }
}

/// The manifest members a caller chooses (the rest are computed by [`PackWriter::finish`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestInfo {
    /// `model_id`.
    pub model_id: String,
    /// `base_model`.
    pub base_model: Option<String>,
    /// `method` (default `"gsq"`).
    pub method: String,
    /// `method_version` (default: this crate's version).
    pub method_version: String,
    /// `license`.
    pub license: Option<String>,
    /// `notes`.
    pub notes: String,
    /// `tooling_version` (default `"uc-encode <version>"`).
    pub tooling_version: String,
    /// `provenance` (the environment defaults to this machine's fingerprint).
    pub provenance: Provenance,
}

impl Default for ManifestInfo {
    fn default() -> Self {
        let tool = format!("uc-encode {}", env!("CARGO_PKG_VERSION"));
        ManifestInfo {
            model_id: String::new(),
            base_model: None,
            method: "gsq".into(),
            method_version: env!("CARGO_PKG_VERSION").into(),
            license: None,
            notes: String::new(),
            tooling_version: tool.clone(),
            provenance: Provenance {
                environment: crate::env::environment(&tool),
                ..Provenance::default()
            },
        }
    }
}

struct Pending {
    dtype: Dtype,
    shape: Vec<u64>,
    spool_offset: u64,
    len: u64,
    record: Option<(TensorEntry, uc_format::Layout)>,
}

/// What [`PackWriter::finish`] wrote.
#[derive(Debug, Clone)]
pub struct PackSummary {
    /// The final directory.
    pub dir: PathBuf,
    /// The manifest as written.
    pub manifest: Manifest,
    /// Names of the safetensors files, in order.
    pub safetensors_files: Vec<String>,
}

/// Builds a pack directory. See the module documentation.
pub struct PackWriter {
    final_dir: PathBuf,
    tmp_dir: PathBuf,
    spool_path: PathBuf,
    spool: Option<BufWriter<File>>,
    spool_len: u64,
    tensors: BTreeMap<String, Pending>,
    files: BTreeMap<String, FileEntry>,
    info: ManifestInfo,
    options: WriterOptions,
    created_at: Option<String>,
}

fn sibling(parent: &Path, name: &std::ffi::OsStr, tag: &str) -> PathBuf {
    let mut s = OsString::from(".");
    s.push(name);
    s.push(format!(".{tag}-{}", std::process::id()));
    parent.join(s)
}

/// Writes through to an inner writer and hashes what passes.
struct HashingWriter<W: Write> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.hash.update(&buf[..k]);
        self.len += k as u64;
        Ok(k)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Creates `path`, lets `body` write it through a hashing writer, flushes and syncs it.
fn write_file(
    path: &Path,
    body: impl FnOnce(&mut dyn Write) -> Result<(), PackWriteError>,
) -> Result<FileEntry, PackWriteError> {
    let f = File::create(path).map_err(io_err(path, "create"))?;
    let mut w = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, f),
        hash: Sha256::new(),
        len: 0,
    };
    body(&mut w)?;
    w.flush().map_err(io_err(path, "write"))?;
    let HashingWriter { inner, hash, len } = w;
    let f = inner.into_inner().map_err(|e| io_err(path, "write")(e.into_error()))?;
    f.sync_all().map_err(io_err(path, "sync"))?;
    Ok(FileEntry {
        sha256: crate::hex(&hash.finalize()),
        size_bytes: len,
    })
}

fn sync_dir(dir: &Path) -> Result<(), PackWriteError> {
    crate::fs::sync_dir(dir).map_err(fs_err)
}

fn fs_err(e: crate::fs::FsError) -> PackWriteError {
    PackWriteError::Io {
        path: e.path,
        op: e.op,
        error: e.source,
    }
}

impl PackWriter {
    /// Starts a pack that will appear at `final_dir`, with default options (no overwrite, 4 GiB shards).
    pub fn new(final_dir: impl AsRef<Path>) -> Result<Self, PackWriteError> {
        Self::with_options(final_dir, WriterOptions::default())
    }

    /// Starts a pack with explicit options. Fails at once when `final_dir` exists and
    /// `options.overwrite` is false.
    pub fn with_options(final_dir: impl AsRef<Path>, options: WriterOptions) -> Result<Self, PackWriteError> {
        let final_dir = final_dir.as_ref().to_path_buf();
        let name = final_dir
            .file_name()
            .ok_or_else(|| PackWriteError::BadPath(final_dir.clone()))?
            .to_os_string();
        if options.shard_size == 0 {
            return Err(PackWriteError::InvalidValue {
                what: "shard_size",
                reason: "must be at least 1 byte".into(),
            });
        }
        crate::fs::recover_install(&final_dir).map_err(fs_err)?;
        if final_dir.symlink_metadata().is_ok() && !options.overwrite {
            return Err(PackWriteError::Exists(final_dir));
        }
        let parent = match final_dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp_dir = sibling(&parent, &name, "tmp");
        let spool_path = sibling(&parent, &name, "spool");
        // A leftover of an earlier process that had our process id: it cannot be in use.
        if tmp_dir.symlink_metadata().is_ok() {
            fs::remove_dir_all(&tmp_dir).map_err(io_err(&tmp_dir, "remove stale temporary directory"))?;
        }
        fs::create_dir(&tmp_dir).map_err(io_err(&tmp_dir, "create directory"))?;
        let spool = File::create(&spool_path).map_err(io_err(&spool_path, "create"))?;
        Ok(PackWriter {
            final_dir,
            tmp_dir,
            spool_path,
            spool: Some(BufWriter::with_capacity(1 << 20, spool)),
            spool_len: 0,
            tensors: BTreeMap::new(),
            files: BTreeMap::new(),
            info: ManifestInfo::default(),
            options,
            created_at: None,
        })
    }

    /// The caller-chosen manifest members.
    pub fn info_mut(&mut self) -> &mut ManifestInfo {
        &mut self.info
    }

    /// Sets `created_at` (RFC 3339 UTC, `YYYY-MM-DDTHH:MM:SS[.f]Z`). It takes precedence over
    /// `SOURCE_DATE_EPOCH`; without either, the current time is used.
    pub fn set_created_at(&mut self, t: &str) -> Result<(), PackWriteError> {
        if crate::time::parse_rfc3339_utc(t).is_none() {
            return Err(PackWriteError::InvalidValue {
                what: "created_at",
                reason: format!("{t:?} is not an RFC 3339 UTC time"),
            });
        }
        self.created_at = Some(t.to_string());
        Ok(())
    }

    fn check_tensor_name(&self, name: &str) -> Result<(), PackWriteError> {
        let bad = |reason: &str| {
            Err(PackWriteError::InvalidName {
                name: name.to_string(),
                reason: reason.to_string(),
            })
        };
        if name.is_empty() {
            return bad("tensor names must not be empty");
        }
        if name == METADATA_KEY || name.starts_with(PAD_PREFIX) {
            return bad("the name is reserved by the safetensors layout (R-3.6)");
        }
        if self.tensors.contains_key(name) {
            return Err(PackWriteError::Duplicate(name.to_string()));
        }
        Ok(())
    }

    fn spool(&mut self, bytes: &[u8]) -> Result<u64, PackWriteError> {
        let off = self.spool_len;
        let w = self.spool.as_mut().ok_or_else(|| PackWriteError::Io {
            path: self.spool_path.clone(),
            op: "write",
            error: io::Error::other("spool already closed"),
        })?;
        w.write_all(bytes).map_err(io_err(&self.spool_path, "write"))?;
        self.spool_len += bytes.len() as u64;
        Ok(off)
    }

    /// Adds a quantized tensor: `record` must be a valid uc record (it is validated and decoded here
    /// to compute `crc32` and `recon_sha256`; bytes after its `record_len` are ignored). `rel_l2` is
    /// the reconstruction error the caller measured against the source (R-12.6), if any.
    pub fn add_record(&mut self, name: &str, record: &[u8], rel_l2: Option<f64>) -> Result<(), PackWriteError> {
        self.check_tensor_name(name)?;
        if let Some(e) = rel_l2.filter(|e| !(e.is_finite() && *e >= 0.0)) {
            return Err(PackWriteError::InvalidValue {
                what: "rel_l2",
                reason: format!("tensor {name:?}: {e} is not a finite non-negative number"),
            });
        }
        let rec = Record::parse(record).map_err(|error| PackWriteError::InvalidRecord {
            tensor: name.to_string(),
            error,
        })?;
        let l = *rec.layout();
        let entry = TensorEntry {
            file: String::new(),
            shape: rec.shape().to_vec(),
            bits: rec.bits(),
            rank: rec.overlay_rank(),
            overlay_dtype: match rec.overlay_dtype() {
                OverlayDtype::None => "none",
                OverlayDtype::F16 => "f16",
                OverlayDtype::Bf16 => "bf16",
            }
            .to_string(),
            bytes: l.record_len,
            crc32: format!("{:08x}", l.crc32),
            recon_sha256: crate::hex(&crate::recon_sha256(&rec)),
            rel_l2,
        };
        // Validation succeeded, so record_len <= record.len().
        let bytes = &record[..l.record_len as usize];
        let off = self.spool(bytes)?;
        self.tensors.insert(
            name.to_string(),
            Pending {
                dtype: Dtype::U8,
                shape: vec![l.record_len],
                spool_offset: off,
                len: l.record_len,
                record: Some((entry, l)),
            },
        );
        Ok(())
    }

    /// Adds a tensor stored verbatim: `data` is its raw little-endian bytes in row-major order.
    pub fn add_verbatim(&mut self, name: &str, dtype: Dtype, shape: &[u64], data: &[u8]) -> Result<(), PackWriteError> {
        self.check_tensor_name(name)?;
        let expected = tensor_nbytes(dtype, shape);
        if expected != Some(data.len() as u64) {
            return Err(PackWriteError::DataLength {
                tensor: name.to_string(),
                expected,
                got: data.len() as u64,
            });
        }
        if dtype == Dtype::U8 && data.starts_with(&MAGIC) {
            return Err(PackWriteError::LooksLikeRecord(name.to_string()));
        }
        let off = self.spool(data)?;
        self.tensors.insert(
            name.to_string(),
            Pending {
                dtype,
                shape: shape.to_vec(),
                spool_offset: off,
                len: data.len() as u64,
                record: None,
            },
        );
        Ok(())
    }

    /// Copies a file of the source model (config, tokenizer, LICENSE) into the pack as `name`
    /// (relative, `/`-separated; sub-directories are created).
    pub fn copy_file(&mut self, name: &str, source: impl AsRef<Path>) -> Result<(), PackWriteError> {
        let source = source.as_ref();
        check_file_name(name).map_err(|reason| PackWriteError::InvalidName {
            name: name.to_string(),
            reason,
        })?;
        if (!name.contains('/') && name.ends_with(".safetensors")) || name == INDEX_NAME {
            return Err(PackWriteError::InvalidName {
                name: name.to_string(),
                reason: "the name is reserved for the pack's own tensor files (R-2.1)".into(),
            });
        }
        if self.files.contains_key(name) || self.files.keys().any(|k| k.starts_with(&format!("{name}/"))) {
            return Err(PackWriteError::Duplicate(name.to_string()));
        }
        let mut dest = self.tmp_dir.clone();
        for c in name.split('/') {
            dest.push(c);
        }
        if dest.symlink_metadata().is_ok() {
            return Err(PackWriteError::Duplicate(name.to_string()));
        }
        if let Some(p) = dest.parent() {
            fs::create_dir_all(p).map_err(io_err(p, "create directory"))?;
        }
        // Only a regular file (a link is followed to one): a FIFO or device would block or never end.
        let (mut src, _) = crate::fs::open_regular(source).map_err(|e| match e {
            crate::fs::ReadError::Io(e) => fs_err(e),
            other => PackWriteError::Io {
                path: source.to_path_buf(),
                op: "open",
                error: io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
            },
        })?;
        let entry = write_file(&dest, |w| {
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let k = match src.read(&mut buf) {
                    Ok(0) => break,
                    Ok(k) => k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io_err(source, "read")(e)),
                };
                w.write_all(&buf[..k]).map_err(io_err(&dest, "write"))?;
            }
            Ok(())
        })?;
        self.files.insert(name.to_string(), entry);
        Ok(())
    }

    /// `created_at`: the value given to [`PackWriter::set_created_at`]; else `SOURCE_DATE_EPOCH`
    /// when set; else the current time.
    fn created_at(&self) -> Result<String, PackWriteError> {
        if let Some(t) = &self.created_at {
            return Ok(t.clone());
        }
        if let Some(v) = std::env::var_os("SOURCE_DATE_EPOCH") {
            let s = v.to_string_lossy();
            let secs: i64 = s.trim().parse().map_err(|_| PackWriteError::InvalidValue {
                what: "SOURCE_DATE_EPOCH",
                reason: format!("{s:?} is not an integer number of seconds"),
            })?;
            return Ok(crate::time::rfc3339_utc(secs));
        }
        Ok(crate::time::now_rfc3339_utc())
    }

    /// Writes everything and moves the pack to its final path. See the module documentation.
    pub fn finish(mut self) -> Result<PackSummary, PackWriteError> {
        let created_at = self.created_at()?;
        if let Some(w) = self.spool.take() {
            let f = w
                .into_inner()
                .map_err(|e| io_err(&self.spool_path, "write")(e.into_error()))?;
            drop(f);
        }
        let mut spool = File::open(&self.spool_path).map_err(io_err(&self.spool_path, "open"))?;

        // Shards: tensors in name order, a new shard when the next tensor would overflow this one.
        let names: Vec<&String> = self.tensors.keys().collect();
        let mut shards: Vec<Vec<usize>> = vec![Vec::new()];
        let mut pos = 0u64;
        for (i, n) in names.iter().enumerate() {
            let len = self.tensors[*n].len;
            let pad = (64 - pos % 64) % 64;
            let cur = shards.last_mut().map_or(0, |s| s.len());
            if cur > 0 && pos + pad + len > self.options.shard_size {
                shards.push(Vec::new());
                pos = 0;
            }
            let pad = (64 - pos % 64) % 64;
            pos += pad + len;
            if let Some(s) = shards.last_mut() {
                s.push(i);
            }
        }
        let n_shards = shards.len() as u32;
        let shard_names: Vec<String> = if n_shards == 1 {
            vec![SINGLE_NAME.to_string()]
        } else {
            (1..=n_shards).map(|i| shard_name(i, n_shards)).collect()
        };
        // Each file declares the version its records need (R-13.6).
        let metadata_for = |members: &[usize]| {
            let layouts = members
                .iter()
                .filter_map(|&i| self.tensors[names[i]].record.as_ref().map(|r| &r.1));
            BTreeMap::from([
                ("format".to_string(), "pt".to_string()),
                (
                    uc_format::SAFETENSORS_METADATA_KEY.to_string(),
                    crate::manifest::format_version_of(layouts).to_string(),
                ),
            ])
        };
        let mut files = self.files.clone();
        let mut weight_map: BTreeMap<String, String> = BTreeMap::new();
        let mut total_size = 0u64;
        let mut pad_index = 0u64;
        let mut tensor_files: BTreeMap<String, String> = BTreeMap::new();
        for (members, sname) in shards.iter().zip(&shard_names) {
            let planned: Vec<PlannedTensor> = members
                .iter()
                .map(|&i| {
                    let p = &self.tensors[names[i]];
                    PlannedTensor {
                        name: names[i].clone(),
                        dtype: p.dtype,
                        shape: p.shape.clone(),
                        len: p.len,
                    }
                })
                .collect();
            let (plan, pads) = plan_file(&planned, &metadata_for(members), pad_index);
            let path = self.tmp_dir.join(sname);
            let spool_path = self.spool_path.clone();
            let entry = write_file(&path, |w| {
                w.write_all(&plan.header).map_err(io_err(&path, "write"))?;
                for &(which, b, e) in &plan.order {
                    match which {
                        None => w
                            .write_all(&[0u8; 64][..(e - b) as usize])
                            .map_err(io_err(&path, "write"))?,
                        Some(k) => {
                            let p = &self.tensors[names[members[k]]];
                            spool
                                .seek(SeekFrom::Start(p.spool_offset))
                                .map_err(io_err(&spool_path, "seek"))?;
                            let copied = io::copy(&mut (&mut spool).take(p.len), w).map_err(io_err(&path, "write"))?;
                            if copied != p.len {
                                return Err(io_err(&spool_path, "read")(io::ErrorKind::UnexpectedEof.into()));
                            }
                        }
                    }
                }
                Ok(())
            })?;
            if entry.size_bytes != plan.file_len {
                return Err(io_err(&path, "write")(io::Error::other(format!(
                    "wrote {} bytes, planned {}",
                    entry.size_bytes, plan.file_len
                ))));
            }
            total_size += plan.file_len - plan.header.len() as u64;
            pad_index += pads;
            for &i in members {
                tensor_files.insert(names[i].clone(), sname.clone());
            }
            // Every tensor of the shard, padding included, goes in the weight map.
            let header = crate::safetensors::parse_header(&plan.header, plan.file_len)
                .map_err(|e| io_err(&path, "plan")(io::Error::other(format!("planned header does not parse: {e}"))))?;
            for t in header.tensors {
                weight_map.insert(t.name, sname.clone());
            }
            files.insert(sname.clone(), entry);
        }
        if n_shards > 1 {
            let index = serde_json::json!({
                "metadata": {"total_size": total_size},
                "weight_map": weight_map,
            });
            let mut text = serde_json::to_string_pretty(&index).unwrap_or_default();
            text.push('\n');
            let path = self.tmp_dir.join(INDEX_NAME);
            let entry = write_file(&path, |w| w.write_all(text.as_bytes()).map_err(io_err(&path, "write")))?;
            files.insert(INDEX_NAME.to_string(), entry);
        }
        drop(spool);

        let mut tensors = BTreeMap::new();
        let mut accounting = BpwAccounting::default();
        for (name, p) in &self.tensors {
            if let Some((entry, layout)) = &p.record {
                let mut e = entry.clone();
                e.file = tensor_files.get(name).cloned().unwrap_or_default();
                accounting.add(layout);
                tensors.insert(name.clone(), e);
            }
        }
        let info = self.info.clone();
        let manifest = Manifest {
            model_id: info.model_id,
            base_model: info.base_model,
            method: info.method,
            method_version: info.method_version,
            files,
            license: info.license,
            created_at,
            tooling_version: info.tooling_version,
            notes: info.notes,
            tensors,
            bpw_accounting: accounting,
            provenance: info.provenance,
            format_version: crate::manifest::format_version_of(
                self.tensors.values().filter_map(|p| p.record.as_ref().map(|r| &r.1)),
            ),
        };
        let text = manifest.to_json_string();
        let mpath = self.tmp_dir.join(MANIFEST_NAME);
        write_file(&mpath, |w| {
            w.write_all(text.as_bytes()).map_err(io_err(&mpath, "write"))
        })?;
        fs::remove_file(&self.spool_path).map_err(io_err(&self.spool_path, "remove"))?;
        sync_dir(&self.tmp_dir)?;
        self.install()?;
        Ok(PackSummary {
            dir: self.final_dir.clone(),
            manifest,
            safetensors_files: shard_names,
        })
    }

    /// Moves the complete temporary directory to the final path with [`crate::fs::install_dir`]
    /// (replacing an old pack only when overwriting was requested, and only now that the new one is
    /// complete: the old one is moved aside first and restored if the new one cannot be moved in).
    fn install(&self) -> Result<(), PackWriteError> {
        if self.final_dir.symlink_metadata().is_ok() && !self.options.overwrite {
            return Err(PackWriteError::Exists(self.final_dir.clone()));
        }
        crate::fs::install_dir(&self.tmp_dir, &self.final_dir).map_err(fs_err)
    }
}

impl Drop for PackWriter {
    /// Removes the temporary directory and spool of an unfinished (or failed) pack.
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.tmp_dir);
        let _ = fs::remove_file(&self.spool_path);
    }
}
