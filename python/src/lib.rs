//! `ucpack._ucpack`, the native module of the `ucpack` Python package: the project's Rust core
//! (strict safetensors reader, `uc-decode`, `uc-verify`, `uc-encode`) behind a small API that the
//! Python side (`python/ucpack/`) shapes like `safetensors`'.
//!
//! Every entry point that does real work (decoding, verification, compression) releases the GIL.
//! Errors are raised as the classes of `ucpack.errors` (`FormatError`, `PackError`) or as the
//! `OSError` subclass the errno selects, never as a panic: hostile input is refused by the same
//! validation as every other tool of the project (spec .x).

use pyo3::exceptions::{PyKeyError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList};
use std::path::{Path, PathBuf};
use uc_decode::Record;
use uc_pack::safetensors::{Dtype, Header, HeaderError, TensorInfo};

/// An I/O error as the `OSError` subclass its errno selects (`FileNotFoundError`, ...), with the
/// path as `filename`.
fn os_error(path: &Path, e: std::io::Error) -> PyErr {
    let file = path.display().to_string();
    match e.raw_os_error() {
        Some(code) => PyOSError::new_err((code, e.to_string(), file)),
        None => {
            let err = PyErr::from(e);
            let msg = format!("{file}: {err}");
            Python::attach(|py| PyErr::from_type(err.get_type(py), msg))
        }
    }
}

/// `ucpack.errors.<class>(*args)` as a `PyErr`.
fn raise(class: &str, args: impl FnOnce(Python<'_>) -> PyResult<Bound<'_, pyo3::types::PyTuple>>) -> PyErr {
    Python::attach(|py| {
        let made = py
            .import("ucpack.errors")
            .and_then(|m| m.getattr(class))
            .and_then(|c| c.call1(args(py)?));
        match made {
            Ok(v) => PyErr::from_value(v),
            Err(e) => e,
        }
    })
}

/// `FormatError` for an invalid record: class, clause, offset in the record and in the file.
fn record_error(path: &Path, file_offset: u64, tensor: &str, e: uc_format::Error) -> PyErr {
    let at = file_offset.saturating_add(e.offset);
    let args = (
        format!("{}: tensor {tensor:?}: {e} (file offset {at})", path.display()),
        e.kind.name(),
        e.clause(),
        e.offset,
        at,
        path.display().to_string(),
        Some(tensor.to_string()),
    );
    raise("FormatError", |py| args.into_pyobject(py))
}

/// `FormatError` for a safetensors header the strict reader refuses.
fn header_error(path: &Path, e: &HeaderError) -> PyErr {
    let args = (
        format!("{}: {e}", path.display()),
        e.kind.name(),
        "R-3.1",
        e.offset,
        e.offset,
        path.display().to_string(),
        e.tensor.clone(),
    );
    raise("FormatError", |py| args.into_pyobject(py))
}

/// `PackError(message, path)`: a pack-level problem (manifest, digests, verification).
fn pack_error(path: &Path, msg: String) -> PyErr {
    let args = (format!("{}: {msg}", path.display()), Some(path.display().to_string()));
    raise("PackError", |py| args.into_pyobject(py))
}

/// A safetensors file of a pack (or any safetensors file), memory-mapped, its header checked.
#[pyclass(module = "ucpack._ucpack", frozen)]
struct File {
    path: PathBuf,
    map: memmap2::Mmap,
    header: Header,
}

impl File {
    fn tensor_info(&self, name: &str) -> PyResult<&TensorInfo> {
        self.header
            .tensor(name)
            .filter(|t| !t.is_padding())
            .ok_or_else(|| PyKeyError::new_err(format!("{}: no tensor {name:?}", self.path.display())))
    }

    /// The tensor's bytes (in bounds: the strict header check compared every extent with the
    /// file length).
    fn bytes(&self, t: &TensorInfo) -> &[u8] {
        let start = self.header.file_offset(t) as usize;
        &self.map[start..start + t.len() as usize]
    }

    fn is_record_bytes(t: &TensorInfo, bytes: &[u8]) -> bool {
        t.dtype == Dtype::U8 && bytes.starts_with(&uc_format::MAGIC)
    }

    fn parse_record<'a>(&self, t: &TensorInfo, bytes: &'a [u8]) -> PyResult<Record<'a>> {
        Record::parse(bytes).map_err(|e| record_error(&self.path, self.header.file_offset(t), &t.name, e))
    }
}

/// Decodes into `buf` (f32 little-endian bytes), through an f32 view when the buffer is aligned.
fn decode_to_bytes(rec: &Record<'_>, merge: bool, buf: &mut [u8]) -> Result<(), uc_decode::DecodeError> {
    use zerocopy::FromBytes;
    let run = |v: &mut [f32]| {
        rec.decode_into(v)?;
        if merge {
            rec.merge_overlay_into(v)?;
        }
        Ok(())
    };
    match <[f32]>::mut_from_bytes(buf) {
        Ok(v) if cfg!(target_endian = "little") => run(v),
        _ => {
            let mut v = vec![0f32; buf.len() / 4];
            run(&mut v)?;
            for (c, x) in buf.chunks_exact_mut(4).zip(&v) {
                c.copy_from_slice(&x.to_le_bytes());
            }
            Ok(())
        }
    }
}

#[pymethods]
impl File {
    #[new]
    fn open(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let f = std::fs::File::open(&path).map_err(|e| os_error(&path, e))?;
        let meta = f.metadata().map_err(|e| os_error(&path, e))?;
        if !meta.is_file() {
            return Err(PyOSError::new_err((
                21,
                "not a regular file",
                path.display().to_string(),
            )));
        }
        // SAFETY: a memory map is only as stable as the file under it: the file must not be
        // truncated or rewritten while it is open (the same contract as `safetensors.safe_open`).
        // Packs are written atomically (a new file renamed into place), so a pack being rewritten
        // by `uc compress` replaces the file instead of changing the mapped one. Every read below
        // is bounds-checked against the header, which was checked against the file length.
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| os_error(&path, e))?;
        let header = py
            .detach(|| uc_pack::safetensors::parse_header(&map, map.len() as u64))
            .map_err(|e| header_error(&path, &e))?;
        Ok(File { path, map, header })
    }

    /// Tensor names in file order (padding tensors left out).
    fn keys(&self) -> Vec<String> {
        self.header
            .tensors
            .iter()
            .filter(|t| !t.is_padding())
            .map(|t| t.name.clone())
            .collect()
    }

    /// The `__metadata__` strings.
    fn metadata(&self) -> std::collections::BTreeMap<String, String> {
        self.header.metadata.clone()
    }

    /// True when the tensor's bytes are a uc record (a U8 tensor that starts with the magic);
    /// nothing is validated yet.
    fn is_record(&self, name: &str) -> PyResult<bool> {
        let t = self.tensor_info(name)?;
        Ok(File::is_record_bytes(t, self.bytes(t)))
    }

    /// `(kind, dtype, shape)`: kind is "record" or "tensor"; a record's dtype is "F32" (what it
    /// decodes to) and its shape the record's; a verbatim tensor's are as stored.
    fn info(&self, name: &str) -> PyResult<(&'static str, String, Vec<u64>)> {
        let t = self.tensor_info(name)?;
        let bytes = self.bytes(t);
        if File::is_record_bytes(t, bytes) {
            let rec = self.parse_record(t, bytes)?;
            Ok(("record", "F32".into(), rec.shape().to_vec()))
        } else {
            Ok(("tensor", t.dtype.name().to_string(), t.shape.clone()))
        }
    }

    /// `(data, dtype, shape)`: a record decoded to f32 (the overlay merged as defines when
    /// `merge_overlay`), or a verbatim tensor's bytes, in a new `bytearray` (little-endian).
    #[pyo3(signature = (name, merge_overlay = true))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        merge_overlay: bool,
    ) -> PyResult<(Bound<'py, PyByteArray>, String, Vec<u64>)> {
        let t = self.tensor_info(name)?;
        let bytes = self.bytes(t);
        if !File::is_record_bytes(t, bytes) {
            let data = PyByteArray::new(py, bytes);
            return Ok((data, t.dtype.name().to_string(), t.shape.clone()));
        }
        let rec = self.parse_record(t, bytes)?;
        let n = rec
            .len()
            .checked_mul(4)
            .and_then(|b| usize::try_from(b).ok())
            .ok_or_else(|| PyValueError::new_err(format!("{}: tensor {name:?} is too large", self.path.display())))?;
        let mut failure = None;
        let data = PyByteArray::new_with(py, n, |buf| {
            // The bytearray is not yet visible to Python code: decoding without the GIL is safe.
            failure = py.detach(|| decode_to_bytes(&rec, merge_overlay, buf).err());
            Ok(())
        })?;
        if let Some(e) = failure {
            return Err(PyValueError::new_err(format!(
                "{}: tensor {name:?}: {e}",
                self.path.display()
            )));
        }
        Ok((data, "F32".into(), rec.shape().to_vec()))
    }

    /// A record's header fields and raw sections, without decoding its weights.
    fn record<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
        let t = self.tensor_info(name)?;
        let bytes = self.bytes(t);
        if !File::is_record_bytes(t, bytes) {
            return Err(PyValueError::new_err(format!(
                "{}: tensor {name:?} is a verbatim {} tensor, not a uc record",
                self.path.display(),
                t.dtype.name()
            )));
        }
        let rec = self.parse_record(t, bytes)?;
        let l = rec.layout();
        let d = PyDict::new(py);
        d.set_item("version_minor", l.version_minor)?;
        d.set_item("flags", l.flags)?;
        d.set_item("bits", rec.bits())?;
        d.set_item("shape", rec.shape().to_vec())?;
        d.set_item("block_size", l.block_size)?;
        d.set_item("sub_block", l.params.sub_block)?;
        d.set_item("sub_bits", l.params.sub_bits)?;
        d.set_item("overlay_rank", rec.overlay_rank())?;
        d.set_item("overlay_dtype", format!("{:?}", rec.overlay_dtype()).to_lowercase())?;
        d.set_item("header_len", l.params.header_len)?;
        d.set_item("record_len", l.record_len)?;
        d.set_item("crc32", l.crc32)?;
        d.set_item("file_offset", self.header.file_offset(t))?;
        let sections = PyList::empty(py);
        for s in &l.sections {
            sections.append((s.offset, s.len))?;
        }
        d.set_item("sections", sections)?;
        let grid: Vec<u8> = rec.grid()[..1usize << rec.bits()]
            .iter()
            .flat_map(|g| g.to_le_bytes())
            .collect();
        d.set_item("grid", PyBytes::new(py, &grid))?;
        d.set_item("scales", PyBytes::new(py, rec.scales_bytes()))?;
        d.set_item("codes", PyBytes::new(py, rec.codes_bytes()))?;
        d.set_item("sub_scales", PyBytes::new(py, rec.subscales_bytes()))?;
        d.set_item("overlay", PyBytes::new(py, rec.overlay_bytes()))?;
        let rank = rec.overlay_rank() as usize;
        if rank > 0 {
            let mut u = vec![0f32; rec.rows() as usize * rank];
            let mut v = vec![0f32; rank * rec.cols() as usize];
            rec.overlay_u_into(&mut u)
                .and_then(|_| rec.overlay_v_into(&mut v))
                .map_err(|e| PyValueError::new_err(format!("{}: tensor {name:?}: {e}", self.path.display())))?;
            let to_bytes = |x: &[f32]| x.iter().flat_map(|g| g.to_le_bytes()).collect::<Vec<u8>>();
            d.set_item("overlay_u", PyBytes::new(py, &to_bytes(&u)))?;
            d.set_item("overlay_v", PyBytes::new(py, &to_bytes(&v)))?;
        }
        Ok(d)
    }

    /// The file's path.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }
}

/// Verifies a pack with `uc-verify` (every check of `uc-verify PACK`) and returns its JSON receipt
/// as a string. A pack that fails checks is not an error: the receipt says which; an error is
/// raised only when the pack cannot be read at all.
#[pyfunction]
#[pyo3(signature = (pack, against = None))]
fn verify(py: Python<'_>, pack: PathBuf, against: Option<PathBuf>) -> PyResult<String> {
    let with_against = against.is_some();
    let opts = uc_verify::PackOptions {
        against,
        ..Default::default()
    };
    let report = py.detach(|| uc_verify::verify_pack(&pack, &opts));
    let report = match report {
        Ok(r) => r,
        Err(uc_verify::PackError::Io { path, op: _, error }) => return Err(os_error(&path, error)),
        Err(e) => return Err(pack_error(&pack, e.to_string())),
    };
    let name = pack
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .unwrap_or_default();
    let receipt = report.receipt(&name, &uc_pack::time::now_rfc3339_utc(), with_against);
    Ok(serde_json::to_string(&receipt).unwrap_or_default())
}

/// Compression options from Python (keyword arguments of `ucpack.compress`); `None` means the
/// CLI's default.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct CompressArgs {
    bpw: Option<f64>,
    bits: Option<u8>,
    rank: Option<u32>,
    sub_block: Option<u32>,
    sub_bits: Option<u8>,
    embed_bits: Option<u8>,
    threads: Option<usize>,
    seed: Option<u64>,
    skip: Option<Vec<String>>,
    license: Option<String>,
    fresh: Option<bool>,
    exact_analysis: Option<bool>,
    importance: Option<String>,
    calibration: Option<PathBuf>,
    calib_tokens: Option<usize>,
    calib_ctx: Option<usize>,
    distill_steps: Option<usize>,
    rounding: Option<String>,
    distill_lr: Option<f64>,
    method_version: Option<String>,
    sign_key: Option<PathBuf>,
    sign_certificate_chain: Option<Vec<PathBuf>>,
}

fn compress_error(e: uc_encode::error::CompressError) -> PyErr {
    use uc_encode::error::CompressError as E;
    match e {
        E::Io { path, source } => os_error(&path, source),
        E::Options { .. } | E::Usage(_) => PyValueError::new_err(e.to_string()),
        e => {
            let args = (e.to_string(), None::<String>);
            raise("PackError", |py| args.into_pyobject(py))
        }
    }
}

/// Runs the encoder (`uc compress SOURCE --output-dir OUTPUT` with the given options) and returns
/// its summary as JSON.
#[pyfunction]
fn compress(py: Python<'_>, source: PathBuf, output_dir: PathBuf, args: CompressArgs) -> PyResult<String> {
    use uc_encode::calibrate::CalibOptions;
    use uc_encode::policy::{Importance, ImportanceError};
    let importance = Importance::resolve(args.importance.as_deref().unwrap_or("auto"), args.calibration.is_some())
        .map_err(|e| {
            PyValueError::new_err(match e {
                ImportanceError::NeedsCalibration => {
                    "importance=\"activations\" needs calibration= (the activations are measured on its text)".into()
                }
                ImportanceError::DataFreeOnly => {
                    "importance=\"norms\" is for data-free runs: with calibration= use \"activations\" or \"none\""
                        .into()
                }
                ImportanceError::Unknown(n) => {
                    format!("importance: expected \"auto\", \"activations\", \"norms\" or \"none\", got {n:?}")
                }
            })
        })?;
    let gptq = match args.rounding.as_deref().unwrap_or("nearest") {
        "nearest" => false,
        "gptq" => true,
        r => {
            return Err(PyValueError::new_err(format!(
                "rounding: expected \"nearest\" or \"gptq\", got {r:?}"
            )));
        }
    };
    let sub_block = args.sub_block.unwrap_or(uc_encode::SubScales::DEFAULT.block);
    if ![0, 16, 32].contains(&sub_block) {
        return Err(PyValueError::new_err(format!(
            "sub_block: expected 0, 16 or 32, got {sub_block}"
        )));
    }
    let embed_bits = args.embed_bits.unwrap_or(uc_encode::policy::DEFAULT_OUTER_BITS);
    let sign = match &args.sign_key {
        Some(k) => Some(
            uc_encode::sign::SignSpec::load(k, args.sign_certificate_chain.as_deref().unwrap_or_default())
                .map_err(compress_error)?,
        ),
        None => None,
    };
    let bpw = args.bpw.unwrap_or(uc_encode::policy::DEFAULT_BPW);
    let opts = uc_encode::compress::CompressOptions {
        source,
        output_dir,
        bpw,
        bits: args.bits,
        rank: args.rank,
        outer_bits: (embed_bits != 0).then_some(embed_bits),
        subscales: (sub_block != 0).then_some(uc_encode::SubScales {
            block: sub_block,
            bits: args.sub_bits.unwrap_or(uc_encode::SubScales::DEFAULT.bits),
        }),
        norm_importance: importance == Importance::Norms,
        analysis: if args.exact_analysis.unwrap_or(false) {
            uc_encode::compress::Analysis::Exact
        } else {
            uc_encode::compress::Analysis::Sampled
        },
        seed: args.seed.unwrap_or(0),
        method_version: args
            .method_version
            .unwrap_or_else(|| uc_encode::policy::DEFAULT_METHOD_VERSION.into()),
        license: args.license,
        skip: args.skip.unwrap_or_default(),
        fresh: args.fresh.unwrap_or(false),
        created_at: None,
        progress: None,
        calibration: args.calibration.map(|text| {
            let d = CalibOptions::defaults(text);
            std::sync::Arc::new(uc_models::calib::CandleCalibrator::new(CalibOptions {
                tokens: args.calib_tokens.unwrap_or(d.tokens),
                ctx: args.calib_ctx.unwrap_or(d.ctx),
                steps: args.distill_steps.unwrap_or(d.steps),
                lr: args.distill_lr.unwrap_or(d.lr),
                gptq,
                importance: importance == Importance::Activations,
                ..d
            })) as std::sync::Arc<dyn uc_encode::calibrate::Calibrator>
        }),
        sign,
        engine: None,
    };
    let threads = args.threads;
    let summary = py.detach(|| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.unwrap_or(0))
            .build();
        match pool {
            Ok(p) => p.install(|| uc_encode::compress::compress(&opts)),
            Err(e) => Err(uc_encode::error::CompressError::Usage(format!("threads: {e}"))),
        }
    });
    let s = summary.map_err(compress_error)?;
    let j = serde_json::json!({
        "output_dir": s.output_dir.display().to_string(),
        "bpw": s.bpw,
        "bpw_records": s.bpw_records,
        "bytes_in": s.bytes_in,
        "bytes_out": s.bytes_out,
        "quantized_params": s.quantized_params,
        "total_params": s.total_params,
        "mean_rel_l2": s.mean_rel_l2,
        "worst_rel_l2": s.worst_rel_l2.as_ref().map(|(t, r)| serde_json::json!({"tensor": t, "rel_l2": r})),
        "resumed_steps": s.resumed,
        "seconds": s.seconds,
        "peak_rss_bytes": s.peak_rss,
        "verification_checks_passed": s.checks_passed,
        "calibration": s.calibration,
        "tensors": s.tensors,
    });
    Ok(j.to_string())
}

/// The native module.
#[pymodule]
fn _ucpack(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<File>()?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(compress, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
