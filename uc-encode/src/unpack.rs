//! `uc unpack` and `uc inspect`: read a pack back.
//!
//! `unpack` writes a standard Hugging Face safetensors model: every record decoded (optionally with
//! its overlay merged, spec) to f32, f16 or bf16, every other tensor copied verbatim, the other
//! files copied; one tensor in memory at a time; the output directory appears atomically. While it
//! decodes, it recomputes each record's `recon_sha256` and compares it with the manifest.

use crate::error::{CompressError, bad, io};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use uc_decode::Record;
use uc_format::num::{f32_to_bf16_bits, f32_to_f16_bits};
use uc_pack::fs::{OutputKind, StagedDir, check_output};
use uc_pack::safetensors::{Dtype, Header, read_header};

/// Output dtype of decoded tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutDtype {
    /// binary32.
    F32,
    /// binary16 (round to nearest even).
    F16,
    /// bfloat16 (round to nearest even).
    Bf16,
}

impl OutDtype {
    fn safetensors(self) -> Dtype {
        match self {
            OutDtype::F32 => Dtype::F32,
            OutDtype::F16 => Dtype::F16,
            OutDtype::Bf16 => Dtype::Bf16,
        }
    }
    fn size(self) -> u64 {
        if self == OutDtype::F32 { 4 } else { 2 }
    }
    /// The name used by `--dtype`.
    pub fn name(self) -> &'static str {
        match self {
            OutDtype::F32 => "f32",
            OutDtype::F16 => "f16",
            OutDtype::Bf16 => "bf16",
        }
    }
}

/// The one gate of every pack reader (`uc unpack`, `uc inspect`, loading a pack for `uc eval`):
/// the pack must pass every check of uc-verify (layout, manifest schema, file digests, strict
/// headers, records valid and decoding to their `recon_sha256`, bit accounting) before anything is
/// read from it, so that no command accepts what the verifier rejects. A pack that fails is a
/// [`CompressError::Verification`] (exit code 1) naming the failed checks; one that cannot be read,
/// an I/O error.
pub fn verify_before_reading(pack: &Path) -> Result<uc_verify::PackReport, CompressError> {
    use uc_verify::PackError;
    let report = uc_verify::verify_pack(pack, &uc_verify::PackOptions::default()).map_err(|e| match e {
        PackError::Io { path, op, error } => CompressError::Io {
            path,
            source: std::io::Error::new(error.kind(), format!("{op}: {error}")),
        },
        PackError::NotADirectory(p) => bad(&p, "not a directory (expected a uc pack)"),
        PackError::Interrupted => CompressError::Internal {
            msg: "verification was interrupted".into(),
        },
    })?;
    if !report.verified {
        let failed: Vec<String> = report.failures().take(5).map(|c| c.to_string()).collect();
        let n = report.failures().count();
        return Err(CompressError::Verification(format!(
            "{}: not a valid uc pack ({n} of {} uc-verify checks failed; run uc-verify for all): {}",
            pack.display(),
            report.checks.len(),
            failed.join("; ")
        )));
    }
    Ok(report)
}

/// The safetensors files of a pack (or of a Hugging Face directory: the same layout), in name order.
pub fn pack_files(pack: &Path) -> Result<Vec<String>, CompressError> {
    let index = pack.join("model.safetensors.index.json");
    if index.exists() {
        let v: Value = serde_json::from_slice(&std::fs::read(&index).map_err(|e| io(&index, e))?)
            .map_err(|e| bad(&index, format!("invalid JSON: {e}")))?;
        let mut names: Vec<String> = v["weight_map"]
            .as_object()
            .ok_or_else(|| bad(&index, "no weight_map"))?
            .values()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect();
        names.sort();
        names.dedup();
        if names
            .iter()
            .any(|n| n.contains('/') || n.contains('\\') || n.starts_with('.'))
        {
            return Err(bad(&index, "a shard name is not a plain file name"));
        }
        Ok(names)
    } else if pack.join("model.safetensors").exists() {
        Ok(vec!["model.safetensors".into()])
    } else {
        Err(bad(
            pack,
            "not a uc pack: no model.safetensors and no model.safetensors.index.json",
        ))
    }
}

/// Opens a safetensors file and parses its header (typed errors naming the file).
pub fn open_header(path: &Path) -> Result<(File, Header), CompressError> {
    let mut f = File::open(path).map_err(|e| io(path, e))?;
    let len = f.metadata().map_err(|e| io(path, e))?.len();
    let h = read_header(&mut f, len)
        .map_err(|e| io(path, e))?
        .map_err(|e| bad(path, e.to_string()))?;
    Ok((f, h))
}

fn read_at(f: &mut File, path: &Path, off: u64, len: u64) -> Result<Vec<u8>, CompressError> {
    let len = usize::try_from(len).map_err(|_| bad(path, "tensor too large for this machine"))?;
    f.seek(SeekFrom::Start(off)).map_err(|e| io(path, e))?;
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).map_err(|e| io(path, e))?;
    Ok(buf)
}

/// Whether a tensor's bytes are a uc record (a U8 tensor that starts with the record magic).
pub fn is_record(dtype: Dtype, first: &[u8]) -> bool {
    dtype == Dtype::U8 && first.starts_with(&uc_format::MAGIC)
}

/// The manifest, if the pack has one.
fn manifest(pack: &Path) -> Result<Option<Value>, CompressError> {
    let p = pack.join("ultracompress.json");
    match std::fs::read(&p) {
        Ok(b) => Ok(Some(
            serde_json::from_slice(&b).map_err(|e| bad(&p, format!("invalid JSON: {e}")))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&p, e)),
    }
}

/// Options of [`unpack`].
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// Pack directory.
    pub pack: PathBuf,
    /// Output directory (must not exist unless `overwrite`).
    pub output_dir: PathBuf,
    /// Dtype of decoded tensors.
    pub dtype: OutDtype,
    /// Add `U·V` to `W_base`.
    pub merge_overlay: bool,
    /// Replace an existing output directory.
    pub overwrite: bool,
    /// Where records are decoded.
    pub device: DecodeDevice,
}

/// Where [`unpack`] decodes records. Either way the decoded bits are the same (spec ), and
/// each record's `recon_sha256` is checked against the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecodeDevice {
    /// The CPU decoder (uc_decode).
    #[default]
    Cpu,
    /// A GPU through wgpu (uc-decode-wgpu); needs the cargo feature `wgpu`.
    Wgpu,
}

impl DecodeDevice {
    /// Parses `--device`: `cpu`, or `wgpu` when this build has the `wgpu` feature.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(DecodeDevice::Cpu),
            "wgpu" if cfg!(feature = "wgpu") => Ok(DecodeDevice::Wgpu),
            "wgpu" => Err("--device wgpu: this build has no GPU decoder; rebuild with \
                 `cargo build --release -p uc-encode --features wgpu`"
                .into()),
            other => Err(format!("--device {other}: unknown decoder device (cpu or wgpu)")),
        }
    }
}

/// Decodes a record's `W_base` on the chosen device.
enum Decoder {
    Cpu,
    #[cfg(feature = "wgpu")]
    Wgpu(Box<uc_decode_wgpu::GpuDecoder>),
}

impl Decoder {
    fn new(device: DecodeDevice) -> Result<Self, CompressError> {
        match device {
            DecodeDevice::Cpu => Ok(Decoder::Cpu),
            #[cfg(feature = "wgpu")]
            DecodeDevice::Wgpu => uc_decode_wgpu::GpuDecoder::new_default()
                .map(|g| Decoder::Wgpu(Box::new(g)))
                .map_err(|e| crate::error::opt("device", format!("wgpu: {e}"))),
            #[cfg(not(feature = "wgpu"))]
            DecodeDevice::Wgpu => Err(crate::error::opt(
                "device",
                "wgpu: this build has no GPU decoder (build with the cargo feature `wgpu`)",
            )),
        }
    }

    /// Decodes `W_base` and hands it to `each(first_index, values)` in order, chunk by chunk
    /// (the whole tensor at once from a GPU); returns its `recon_sha256` (lowercase hex), computed
    /// before `each` sees (and may change) the values.
    fn decode_each(&self, rec: &Record<'_>, each: &mut ChunkSink<'_>) -> Result<String, String> {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut bytes = Vec::with_capacity(4 * CHUNK);
        let mut hash = |v: &[f32]| {
            bytes.clear();
            bytes.extend(v.iter().flat_map(|x| x.to_le_bytes()));
            h.update(&bytes);
        };
        match self {
            Decoder::Cpu => {
                let mut buf = vec![0f32; CHUNK];
                let n = rec.len();
                let mut start = 0u64;
                while start < n {
                    let k = (n - start).min(CHUNK as u64) as usize;
                    rec.decode_range_into(start, &mut buf[..k]).map_err(|e| e.to_string())?;
                    hash(&buf[..k]);
                    each(start, &mut buf[..k])?;
                    start += k as u64;
                }
            }
            #[cfg(feature = "wgpu")]
            Decoder::Wgpu(gpu) => {
                let mut v = gpu.decode_to_vec(rec).map_err(|e| format!("GPU decode: {e}"))?;
                for (c, chunk) in v.chunks_mut(CHUNK).enumerate() {
                    hash(chunk);
                    each((c * CHUNK) as u64, chunk)?;
                }
            }
        }
        Ok(uc_pack::hex(&h.finalize()))
    }
}

/// Receives decoded values: (index of the first, values it may change).
type ChunkSink<'a> = dyn FnMut(u64, &mut [f32]) -> Result<(), String> + 'a;

/// Values decoded, hashed and written at a time by [`unpack`].
const CHUNK: usize = 1 << 16;

/// What [`unpack`] did.
#[derive(Debug, Clone, Default)]
pub struct UnpackSummary {
    /// Records decoded.
    pub decoded: usize,
    /// Tensors copied verbatim.
    pub copied: usize,
    /// Records whose recon_sha256 was checked against the manifest.
    pub digests_checked: usize,
    /// Bytes written.
    pub bytes_out: u64,
}

/// Decodes a pack into a standard safetensors model.
pub fn unpack(opts: &UnpackOptions) -> Result<UnpackSummary, CompressError> {
    // The output may replace only an earlier unpack (never the pack, an ancestor, `.` or a
    // directory this command did not write), and only when asked.
    check_output(&opts.output_dir, OutputKind::Unpacked, &[&opts.pack], opts.overwrite)?;
    if opts.output_dir.file_name().is_none() {
        return Err(crate::error::opt("output_dir", "needs a final directory name"));
    }
    let decoder = Decoder::new(opts.device)?;
    let report = verify_before_reading(&opts.pack)?;
    let files = pack_files(&opts.pack)?;
    let man = manifest(&opts.pack)?;
    uc_pack::fs::remove_stale_temps(&opts.output_dir);
    // Removed when dropped: no temporary directory outlives a failed run.
    let staged = StagedDir::new(&opts.output_dir)?;
    let tmp = staged.path().to_path_buf();
    let result = (|| {
        let mut sum = UnpackSummary::default();
        let mut weight_map = BTreeMap::new();
        let mut total = 0u64;
        for fname in &files {
            let path = opts.pack.join(fname);
            let (mut f, h) = open_header(&path)?;
            // Plan: (name, dtype, shape, len, source tensor index, is record).
            let mut plan = Vec::new();
            for t in &h.tensors {
                if t.is_padding() {
                    continue;
                }
                let first = read_at(&mut f, &path, h.file_offset(t), t.len().min(8))?;
                if is_record(t.dtype, &first) {
                    let rec_bytes = read_at(&mut f, &path, h.file_offset(t), t.len())?;
                    let layout =
                        uc_format::validate(&rec_bytes).map_err(|e| bad(&path, format!("tensor {}: {e}", t.name)))?;
                    let shape = layout.params.shape().to_vec();
                    plan.push((
                        t.name.clone(),
                        opts.dtype.safetensors(),
                        shape,
                        layout.n * opts.dtype.size(),
                        t.clone(),
                        true,
                    ));
                } else {
                    plan.push((t.name.clone(), t.dtype, t.shape.clone(), t.len(), t.clone(), false));
                }
            }
            plan.sort_by(|a, b| a.0.cmp(&b.0));
            let mut header = serde_json::Map::new();
            let mut pos = 0u64;
            for (n, d, shape, len, _, _) in &plan {
                header.insert(
                    n.clone(),
                    json!({"dtype": d.name(), "shape": shape, "data_offsets": [pos, pos + len]}),
                );
                pos += len;
                weight_map.insert(n.clone(), fname.clone());
            }
            total += pos;
            let mut text = Value::Object(header).to_string();
            while !(8 + text.len()).is_multiple_of(8) {
                text.push(' ');
            }
            let out_path = tmp.join(fname);
            let mut w = BufWriter::new(File::create(&out_path).map_err(|e| io(&out_path, e))?);
            w.write_all(&(text.len() as u64).to_le_bytes())
                .map_err(|e| io(&out_path, e))?;
            w.write_all(text.as_bytes()).map_err(|e| io(&out_path, e))?;
            for (n, _, _, _, t, record) in &plan {
                let bytes = read_at(&mut f, &path, h.file_offset(t), t.len())?;
                if !record {
                    w.write_all(&bytes).map_err(|e| io(&out_path, e))?;
                    sum.copied += 1;
                    continue;
                }
                let rec = Record::parse(&bytes).map_err(|e| bad(&path, format!("tensor {n}: {e}")))?;
                let want = man
                    .as_ref()
                    .and_then(|m| m["tensors"][n.as_str()]["recon_sha256"].as_str())
                    .map(str::to_string);
                // W_base is hashed (recon_sha256) before the overlay is merged; then converted
                // and written. On the CPU this streams in chunks: memory holds one chunk, not
                // the tensor.
                let digest = decoder
                    .decode_each(&rec, &mut |start, chunk| {
                        if opts.merge_overlay {
                            rec.merge_overlay_range_into(start, chunk).map_err(|e| e.to_string())?;
                        }
                        let mut out = Vec::with_capacity(4 * chunk.len());
                        match opts.dtype {
                            OutDtype::F32 => out.extend(chunk.iter().flat_map(|x| x.to_le_bytes())),
                            OutDtype::F16 => out.extend(chunk.iter().flat_map(|x| f32_to_f16_bits(*x).to_le_bytes())),
                            OutDtype::Bf16 => out.extend(chunk.iter().flat_map(|x| f32_to_bf16_bits(*x).to_le_bytes())),
                        }
                        w.write_all(&out).map_err(|e| format!("{}: {e}", out_path.display()))
                    })
                    .map_err(|e| bad(&path, format!("tensor {n}: {e}")))?;
                if let Some(want) = want {
                    if want != digest {
                        return Err(CompressError::Verification(format!(
                            "{}: tensor {n}: decoded weights have SHA-256 {digest}, the manifest says {want}",
                            path.display()
                        )));
                    }
                    sum.digests_checked += 1;
                }
                sum.decoded += 1;
            }
            let file = w.into_inner().map_err(|e| io(&out_path, e.into_error()))?;
            file.sync_all().map_err(|e| io(&out_path, e))?;
            sum.bytes_out += file.metadata().map_err(|e| io(&out_path, e))?.len();
        }
        if files.len() > 1 {
            let idx = json!({"metadata": {"total_size": total}, "weight_map": weight_map});
            let p = tmp.join("model.safetensors.index.json");
            std::fs::write(&p, serde_json::to_string_pretty(&idx).unwrap_or_default()).map_err(|e| io(&p, e))?;
        }
        // Every other file the manifest lists (verified above), at any depth: tokenizer, configs,
        // sentence-transformers modules such as 1_Pooling/config.json.
        for f in &report.files {
            let n = f.name.as_str();
            let top = !n.contains('/');
            if top && (n.ends_with(".safetensors") || n == "model.safetensors.index.json" || n == "ultracompress.json")
            {
                continue;
            }
            let src = n.split('/').fold(opts.pack.clone(), |p, c| p.join(c));
            let dst = n.split('/').fold(tmp.clone(), |p, c| p.join(c));
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
            }
            std::fs::copy(&src, &dst).map_err(|err| io(&src, err))?;
        }
        Ok(sum)
    })();
    let sum = result?;
    let marker = json!({
        "tool": format!("uc {}", env!("CARGO_PKG_VERSION")),
        "pack": opts.pack.file_name().map(|n| n.to_string_lossy().into_owned()),
        "dtype": opts.dtype.name(),
        "merge_overlay": opts.merge_overlay,
    });
    let mpath = tmp.join(uc_pack::fs::UNPACK_MARKER);
    uc_pack::fs::write_atomic(&mpath, format!("{marker:#}\n").as_bytes())?;
    // The previous output is kept until this one is in place.
    staged.install()?;
    Ok(sum)
}

/// One row of `uc inspect`.
#[derive(Debug, Clone)]
pub struct InspectRow {
    /// Tensor name.
    pub name: String,
    /// File.
    pub file: String,
    /// dtype as stored ("U8" for records).
    pub dtype: String,
    /// Logical shape.
    pub shape: Vec<u64>,
    /// Bits (records only).
    pub bits: Option<u8>,
    /// Overlay rank (records only).
    pub rank: u32,
    /// Bytes stored.
    pub bytes: u64,
    /// rel_l2 from the manifest, when recorded.
    pub rel_l2: Option<f64>,
}

/// Lists a pack's tensors (records validated) and returns them with the manifest.
pub fn inspect(pack: &Path) -> Result<(Vec<InspectRow>, Option<Value>), CompressError> {
    verify_before_reading(pack)?;
    let files = pack_files(pack)?;
    let man = manifest(pack)?;
    let mut rows = Vec::new();
    for fname in &files {
        let path = pack.join(fname);
        let (mut f, h) = open_header(&path)?;
        for t in h.tensors.iter().filter(|t| !t.is_padding()) {
            let first = read_at(&mut f, &path, h.file_offset(t), t.len().min(8))?;
            let rel = man
                .as_ref()
                .and_then(|m| m["tensors"][t.name.as_str()]["rel_l2"].as_f64());
            if is_record(t.dtype, &first) {
                let bytes = read_at(&mut f, &path, h.file_offset(t), t.len())?;
                let l = uc_format::validate(&bytes).map_err(|e| bad(&path, format!("tensor {}: {e}", t.name)))?;
                rows.push(InspectRow {
                    name: t.name.clone(),
                    file: fname.clone(),
                    dtype: "uc".into(),
                    shape: l.params.shape().to_vec(),
                    bits: Some(l.params.bits),
                    rank: l.params.overlay_rank,
                    bytes: t.len(),
                    rel_l2: rel,
                });
            } else {
                rows.push(InspectRow {
                    name: t.name.clone(),
                    file: fname.clone(),
                    dtype: t.dtype.name().to_string(),
                    shape: t.shape.clone(),
                    bits: None,
                    rank: 0,
                    bytes: t.len(),
                    rel_l2: rel,
                });
            }
        }
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((rows, man))
}

/// Reads every tensor of a pack as f32, one at a time, in file then name order: records decoded
/// with their overlay merged (spec) after their `recon_sha256` was checked against the
/// manifest; verbatim F32/F16/BF16 tensors converted exactly; other dtypes (integer buffers such as
/// `position_ids`) and padding tensors skipped. `visit(name, shape, values)` receives each tensor.
/// Returns the number of records decoded.
pub fn read_pack_f32(
    pack: &Path,
    mut visit: impl FnMut(&str, &[u64], Vec<f32>) -> Result<(), CompressError>,
) -> Result<usize, CompressError> {
    verify_before_reading(pack)?;
    let files = pack_files(pack)?;
    let man = manifest(pack)?;
    let mut decoded = 0usize;
    for fname in &files {
        let path = pack.join(fname);
        let (mut f, h) = open_header(&path)?;
        for t in &h.tensors {
            if t.is_padding() {
                continue;
            }
            let bytes = read_at(&mut f, &path, h.file_offset(t), t.len())?;
            if is_record(t.dtype, &bytes) {
                let rec = Record::parse(&bytes).map_err(|e| bad(&path, format!("tensor {}: {e}", t.name)))?;
                let count =
                    usize::try_from(rec.len()).map_err(|_| bad(&path, format!("tensor {} too large", t.name)))?;
                let mut v = vec![0f32; count];
                rec.decode_into(&mut v)
                    .map_err(|e| bad(&path, format!("tensor {}: {e}", t.name)))?;
                let digest = uc_pack::hex(&uc_pack::recon_sha256_of(&v));
                if let Some(want) = man
                    .as_ref()
                    .and_then(|m| m["tensors"][t.name.as_str()]["recon_sha256"].as_str())
                    && want != digest
                {
                    return Err(CompressError::Verification(format!(
                        "{}: tensor {}: decoded weights have SHA-256 {digest}, the manifest says {want}",
                        path.display(),
                        t.name
                    )));
                }
                rec.merge_overlay_into(&mut v)
                    .map_err(|e| bad(&path, format!("tensor {}: {e}", t.name)))?;
                let shape = rec.shape().to_vec();
                visit(&t.name, &shape, v)?;
                decoded += 1;
                continue;
            }
            let Some(v) = crate::source::float_values(t.dtype, &bytes) else {
                continue;
            };
            visit(&t.name, &t.shape, v)?;
        }
    }
    Ok(decoded)
}
