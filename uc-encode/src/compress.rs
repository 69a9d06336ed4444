//! `uc compress`: the streaming, resumable, deterministic encoder pipeline.
//!
//! 1. **Analyse** (only when a choice is left to the budget): for every tensor to quantize, the
//!    error and exact size of every allowed (bits, rank) candidate ([`crate::tensor::candidates`]).
//! 2. **Allocate** one candidate per tensor within `--bpw` ([`crate::plan::allocate`]).
//! 3. **Encode** each tensor with its choice ([`crate::tensor::encode_tensor`]).
//! 4. **Write** the pack into the work directory, **verify** it there with the uc-verify library,
//!    then move it to the final path (an atomic rename).
//!
//! One tensor is in memory at a time. Steps 1 and 3 journal each tensor's result in a work
//! directory beside the output (`.<name>.uc-work/`), written atomically (temporary file + rename), so
//! a run killed at any moment resumes where it stopped when the same command is run again; the
//! journal is keyed by a fingerprint of the source files and options, and results do not depend on
//! the thread count, so the resumed pack is byte-identical to an uninterrupted one.
//!
//! Step 4 writes the pack inside the work directory (`.<name>.uc-work/pack`), verifies it there,
//! journals that it is about to be installed (`install.json`), renames it to the final path and
//! removes the work directory. The final path therefore only ever holds a complete, verified pack,
//! and nothing but the work directory is left beside it by an interrupted run. A run killed after
//! the rename but before the work directory is gone is completed by the same command: the output
//! then exists, but the journal proves it is this job's, so it is rebuilt from the journal (same
//! bytes) instead of being refused.
//!
//! An error that rerunning the same command cannot cure (a NaN weight, an impossible budget, a
//! malformed tensor) removes the work directory, since the source or the options must change and
//! the journal would then not apply; an I/O error keeps it for the resume.
//!
//! # Test hook
//!
//! `UC_TEST_CRASH_AT=<k>` (environment variable, for the crash-resume tests of `tests/cli.rs`):
//! every atomic journal write counts two events, one after its temporary file is written and
//! synced but before the rename, one after the rename; at the `k`-th event of the process, the
//! process calls [`std::process::abort`], which runs no destructor or cleanup, as `kill -9` would.
//! Unset (or not a number), it has no effect.

use crate::error::{CompressError, io};
use crate::plan::{TensorCandidates, allocate};
use crate::source::{SourceModel, SourceTensor};
use crate::tensor::{Candidate, TensorOptions, candidates, encode_tensor};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use uc_pack::safetensors::Dtype;

/// Bit widths the allocator may choose from.
pub const DEFAULT_BITS: [u8; 7] = [2, 3, 4, 5, 6, 7, 8];
/// Overlay ranks the allocator may choose from.
pub const DEFAULT_RANKS: [u32; 5] = [0, 8, 16, 32, 64];
/// Name patterns kept verbatim by default (embeddings, output head, norms): see `--skip`.
pub const DEFAULT_SKIP: [&str; 6] = ["*embed*", "*lm_head*", "*norm*", "*wte*", "*wpe*", "*position*"];
/// Tensors with fewer weights than this stay verbatim (a record's fixed overhead would dominate).
pub const MIN_QUANTIZED_WEIGHTS: u64 = 4096;

/// Options of [`compress`].
#[derive(Debug, Clone)]
pub struct CompressOptions {
    /// Source model directory.
    pub source: PathBuf,
    /// Final pack directory.
    pub output_dir: PathBuf,
    /// Bits-per-weight budget over all quantized weights.
    pub bpw: f64,
    /// Force this bit width for every tensor.
    pub bits: Option<u8>,
    /// Force this overlay rank for every tensor.
    pub rank: Option<u32>,
    /// Seed (randomized SVD).
    pub seed: u64,
    /// Method version recorded in the manifest.
    pub method_version: String,
    /// License id recorded in the manifest.
    pub license: Option<String>,
    /// Extra glob patterns of tensor names to keep verbatim.
    pub skip: Vec<String>,
    /// Replace an existing pack and discard any journal.
    pub fresh: bool,
    /// `created_at` (RFC 3339); when None: `SOURCE_DATE_EPOCH` if set, else the time of the first run.
    pub created_at: Option<String>,
    /// Called after each step of each tensor: (phase, done, total, tensor name).
    pub progress: Option<fn(&str, usize, usize, &str)>,
    /// Calibrated encoding (activation-aware overlay and per-layer distillation), see [`crate::calib`].
    pub calibration: Option<crate::calib::CalibOptions>,
}

/// Per-tensor result.
#[derive(Debug, Clone)]
pub struct TensorSummary {
    /// Name.
    pub name: String,
    /// Shape.
    pub shape: Vec<u64>,
    /// Code width (None for verbatim tensors).
    pub bits: Option<u8>,
    /// Overlay rank.
    pub rank: u32,
    /// Bytes stored.
    pub bytes: u64,
    /// Relative L2 error (None for verbatim tensors).
    pub rel_l2: Option<f64>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct CompressSummary {
    /// The pack.
    pub output_dir: PathBuf,
    /// Every tensor.
    pub tensors: Vec<TensorSummary>,
    /// Weights in quantized tensors.
    pub quantized_params: u64,
    /// All weights.
    pub total_params: u64,
    /// Bytes of the source safetensors files.
    pub bytes_in: u64,
    /// Bytes of the pack's files.
    pub bytes_out: u64,
    /// bpw as the manifest accounts it (codes + scales + grid + overlay over quantized weights).
    pub bpw: f64,
    /// Every stored record bit over quantized weights.
    pub bpw_records: f64,
    /// Mean relative L2 over quantized tensors.
    pub mean_rel_l2: f64,
    /// Worst tensor and its relative L2.
    pub worst_rel_l2: Option<(String, f64)>,
    /// Tensors whose results came from the journal of an earlier run.
    pub resumed: usize,
    /// Wall time.
    pub seconds: f64,
    /// Peak resident memory of the process (VmHWM), bytes, where the OS reports it.
    pub peak_rss: Option<u64>,
    /// Verification checks passed.
    pub checks_passed: usize,
    /// What calibration did, when it was used.
    pub calibration: Option<crate::calib::CalibReport>,
}

/// Matches `*` (any run) and `?` (one char) glob patterns.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn rec(p: &[char], s: &[char]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some('*') => (0..=s.len()).any(|i| rec(&p[1..], &s[i..])),
            Some('?') => !s.is_empty() && rec(&p[1..], &s[1..]),
            Some(c) => s.first() == Some(c) && rec(&p[1..], &s[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = name.chars().collect();
    rec(&p, &s)
}

/// Whether the default policy plus `skip` quantizes this tensor: 2-D F32/F16/BF16 weights with at
/// least [`MIN_QUANTIZED_WEIGHTS`] elements whose names match no skip pattern.
pub fn is_quantized(t: &SourceTensor, skip: &[String]) -> bool {
    t.shape.len() == 2
        && matches!(t.dtype, Dtype::F32 | Dtype::F16 | Dtype::Bf16)
        && t.numel() >= MIN_QUANTIZED_WEIGHTS
        && !DEFAULT_SKIP.iter().any(|p| glob_match(p, &t.name))
        && !skip.iter().any(|p| glob_match(p, &t.name))
}

/// Environment variable of the crash test hook (see the module documentation).
pub const CRASH_AT_VAR: &str = "UC_TEST_CRASH_AT";

/// Counts one journal event and aborts the process at the `UC_TEST_CRASH_AT`-th (test hook).
fn journal_event() {
    static CRASH_AT: OnceLock<Option<u64>> = OnceLock::new();
    static EVENTS: AtomicU64 = AtomicU64::new(0);
    let at = *CRASH_AT.get_or_init(|| std::env::var(CRASH_AT_VAR).ok().and_then(|s| s.trim().parse().ok()));
    if let Some(k) = at
        && EVENTS.fetch_add(1, Ordering::SeqCst) + 1 == k
    {
        eprintln!("uc: {CRASH_AT_VAR}={k}: aborting at journal event {k} (test hook)");
        std::process::abort();
    }
}

/// Writes a journal file atomically: temporary name, fsync, rename. Two events of the crash hook.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CompressError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| io(&tmp, e))?;
    drop(f);
    journal_event();
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    journal_event();
    Ok(())
}

/// Syncs a directory (its entries: renames into it) where the OS supports it.
fn sync_dir(dir: &Path) -> Result<(), CompressError> {
    if cfg!(unix) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(dir, e))?;
    }
    Ok(())
}

/// Moves the verified pack `staged` (inside `work`) to `final_dir`. An existing `final_dir` (replaced
/// with `--fresh`, or the same pack when completing an interrupted install) is first moved into
/// `work`, which the caller then removes; if the second rename fails it is moved back.
fn install(staged: &Path, final_dir: &Path, work: &Path) -> Result<(), CompressError> {
    let parent = match final_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if final_dir.symlink_metadata().is_ok() {
        let old = work.join("old");
        if old.symlink_metadata().is_ok() {
            std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
        }
        std::fs::rename(final_dir, &old).map_err(|e| io(final_dir, e))?;
        if let Err(e) = std::fs::rename(staged, final_dir) {
            let _ = std::fs::rename(&old, final_dir);
            return Err(io(final_dir, e));
        }
    } else {
        std::fs::rename(staged, final_dir).map_err(|e| io(final_dir, e))?;
    }
    sync_dir(&parent)
}

/// Whether rerunning the same command would fail the same way (the input or options must change),
/// so that the journal can be discarded.
fn is_deterministic(e: &CompressError) -> bool {
    matches!(
        e,
        CompressError::BadSource { .. }
            | CompressError::Usage(_)
            | CompressError::Model { .. }
            | CompressError::UnsupportedDtype { .. }
            | CompressError::NonFinite { .. }
            | CompressError::ShapeMismatch { .. }
            | CompressError::Budget(_)
            | CompressError::Encode { .. }
    )
}

pub(crate) fn seed_for(seed: u64, name: &str) -> u64 {
    // FNV-1a of the name, mixed with the seed: independent of order and thread count.
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// The work directory beside the output.
pub fn work_dir(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "pack".into());
    output.with_file_name(format!(".{name}.uc-work"))
}

fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `created_at`: explicit, else SOURCE_DATE_EPOCH, else now.
fn created_at(opts: &CompressOptions) -> Result<String, CompressError> {
    if let Some(c) = &opts.created_at {
        return Ok(c.clone());
    }
    if let Ok(s) = std::env::var("SOURCE_DATE_EPOCH") {
        let secs: i64 = s.trim().parse().map_err(|_| {
            CompressError::Usage(format!("SOURCE_DATE_EPOCH={s:?} is not an integer number of seconds"))
        })?;
        return Ok(uc_pack::time::rfc3339_utc(secs));
    }
    Ok(uc_pack::time::now_rfc3339_utc())
}

struct Job<'a> {
    opts: &'a CompressOptions,
    src: &'a SourceModel,
    work: PathBuf,
}

impl Job<'_> {
    fn progress(&self, phase: &str, done: usize, total: usize, name: &str) {
        if let Some(p) = self.opts.progress {
            p(phase, done, total, name);
        }
    }

    fn allowed(&self) -> (Vec<u8>, Vec<u32>) {
        let bits = self.opts.bits.map(|b| vec![b]).unwrap_or_else(|| DEFAULT_BITS.to_vec());
        let ranks = self
            .opts
            .rank
            .map(|r| vec![r])
            .unwrap_or_else(|| DEFAULT_RANKS.to_vec());
        (bits, ranks)
    }

    /// Phase 1 for one tensor, from the journal when present.
    fn analyse(&self, idx: usize, t: &SourceTensor, resumed: &mut usize) -> Result<TensorCandidates, CompressError> {
        let path = self.work.join(format!("cand-{idx:06}.json"));
        if let Ok(bytes) = std::fs::read(&path)
            && let Some(c) = parse_candidates(&bytes)
        {
            *resumed += 1;
            return Ok(c);
        }
        let data = self.src.read_f32(t)?;
        let (bits, ranks) = self.allowed();
        let cands = candidates(&data, &t.shape, &bits, &ranks, seed_for(self.opts.seed, &t.name)).map_err(|err| {
            CompressError::Encode {
                tensor: t.name.clone(),
                err,
            }
        })?;
        let tc = TensorCandidates {
            n: t.numel(),
            norm2: crate::tensor::sum_sq(&data),
            candidates: cands,
        };
        write_atomic(&path, candidates_json(&tc).to_string().as_bytes())?;
        Ok(tc)
    }

    /// Phase 3 for one tensor, from the journal when present. The record stays in the work
    /// directory (memory holds one tensor); returns its path and (err2, norm2).
    fn encode(
        &self,
        idx: usize,
        t: &SourceTensor,
        c: &Candidate,
        resumed: &mut usize,
    ) -> Result<Encoded, CompressError> {
        if let Some(e) = journaled_record(&self.work, idx, c) {
            *resumed += 1;
            return Ok(e);
        }
        let data = self.src.read_f32(t)?;
        let topts = TensorOptions {
            bits: c.bits,
            rank: c.rank,
            seed: seed_for(self.opts.seed, &t.name),
        };
        let enc = encode_tensor(&data, &t.shape, &topts).map_err(|err| CompressError::Encode {
            tensor: t.name.clone(),
            err,
        })?;
        drop(data);
        journal_record(&self.work, idx, &t.name, c, &enc)
    }
}

/// A record of tensor `idx` journaled by an earlier run for the choice `c`, if its files are whole.
pub(crate) fn journaled_record(work: &Path, idx: usize, c: &Candidate) -> Option<Encoded> {
    let rec_path = work.join(format!("rec-{idx:06}.ucr"));
    let meta_path = work.join(format!("rec-{idx:06}.json"));
    let (rec, meta) = (std::fs::read(&rec_path).ok()?, std::fs::read(&meta_path).ok()?);
    let meta: Value = serde_json::from_slice(&meta).unwrap_or(Value::Null);
    let ok = meta["sha256"].as_str() == Some(&uc_pack::hex(&Sha256::digest(&rec)))
        && meta["bits"].as_u64() == Some(u64::from(c.bits))
        && meta["rank_wanted"].as_u64() == Some(u64::from(c.rank));
    match (
        ok,
        meta["err2_bits"].as_u64(),
        meta["norm2_bits"].as_u64(),
        uc_format::validate(&rec),
    ) {
        (true, Some(e), Some(n), Ok(layout)) => Some(Encoded {
            path: rec_path,
            err2: f64::from_bits(e),
            norm2: f64::from_bits(n),
            layout,
        }),
        _ => None,
    }
}

/// Journals the record of tensor `idx` (validated first) and its metadata, atomically.
pub(crate) fn journal_record(
    work: &Path,
    idx: usize,
    name: &str,
    c: &Candidate,
    enc: &crate::tensor::EncodedTensor,
) -> Result<Encoded, CompressError> {
    let rec_path = work.join(format!("rec-{idx:06}.ucr"));
    let meta_path = work.join(format!("rec-{idx:06}.json"));
    let layout = uc_format::validate(&enc.record)
        .map_err(|e| CompressError::Verification(format!("tensor {name}: the encoder wrote an invalid record: {e}")))?;
    write_atomic(&rec_path, &enc.record)?;
    let meta = json!({
        "sha256": uc_pack::hex(&Sha256::digest(&enc.record)),
        "bits": enc.bits, "rank_wanted": c.rank, "rank": enc.rank,
        "err2_bits": enc.err2.to_bits(), "norm2_bits": enc.norm2.to_bits(),
    });
    write_atomic(&meta_path, meta.to_string().as_bytes())?;
    Ok(Encoded {
        path: rec_path,
        err2: enc.err2,
        norm2: enc.norm2,
        layout,
    })
}

/// A record written to the work directory.
pub(crate) struct Encoded {
    /// Where the record is.
    pub path: PathBuf,
    /// `‖W − Ŵ‖²`.
    pub err2: f64,
    /// `‖W‖²`.
    pub norm2: f64,
    /// Its validated layout.
    pub layout: uc_format::Layout,
}

impl Encoded {
    fn rel_l2(&self) -> f64 {
        if self.norm2 > 0.0 {
            (self.err2 / self.norm2).sqrt()
        } else {
            self.err2.sqrt()
        }
    }
}

fn candidates_json(t: &TensorCandidates) -> Value {
    // f64 values are written with their exact bits so a resumed run sees identical numbers.
    json!({
        "n": t.n,
        "norm2_bits": t.norm2.to_bits(),
        "candidates": t.candidates.iter().map(|c| json!([c.bits, c.rank, c.cost_bits, c.err2.to_bits()])).collect::<Vec<_>>(),
    })
}

fn parse_candidates(bytes: &[u8]) -> Option<TensorCandidates> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let candidates = v["candidates"]
        .as_array()?
        .iter()
        .map(|c| {
            Some(Candidate {
                bits: u8::try_from(c[0].as_u64()?).ok()?,
                rank: u32::try_from(c[1].as_u64()?).ok()?,
                cost_bits: c[2].as_u64()?,
                err2: f64::from_bits(c[3].as_u64()?),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    if candidates.is_empty() {
        return None;
    }
    Some(TensorCandidates {
        n: v["n"].as_u64()?,
        norm2: f64::from_bits(v["norm2_bits"].as_u64()?),
        candidates,
    })
}

/// Fingerprint of what determines the output: tool version, source digests and options.
fn fingerprint(
    opts: &CompressOptions,
    digests: &std::collections::BTreeMap<String, String>,
    created_at: &str,
    calib_sha: Option<&str>,
) -> String {
    let v = json!({
        "tool": env!("CARGO_PKG_VERSION"),
        "source_files": digests,
        "bpw_bits": opts.bpw.to_bits(),
        "bits": opts.bits,
        "rank": opts.rank,
        "seed": opts.seed,
        "skip": opts.skip,
        "method_version": opts.method_version,
        "license": opts.license,
        "created_at": created_at,
        "calibration": opts.calibration.as_ref().map(|c| json!({
            "text_sha256": calib_sha, "tokens": c.tokens, "ctx": c.ctx, "steps": c.steps, "lr_bits": c.lr.to_bits(),
        })),
    });
    uc_pack::hex(&Sha256::digest(v.to_string().as_bytes()))
}

/// What phases 1 to 4 produced: the records, their errors, the written pack, steps resumed.
type JobOutput = (
    Vec<(usize, Encoded)>,
    Vec<(String, f64)>,
    crate::write::Written,
    usize,
    Option<crate::calib::CalibReport>,
);

/// Phases 1 to 4 of a job whose journal is set up: analyse, allocate, encode, write into the work
/// directory, verify, install at the final path.
fn run_job(
    job: &Job<'_>,
    quantized: &[usize],
    digests: &std::collections::BTreeMap<String, String>,
    created: &str,
    fp: &str,
) -> Result<JobOutput, CompressError> {
    let (opts, src) = (job.opts, job.src);
    let mut resumed = 0usize;

    // Phases 1-2: choose (bits, rank) per tensor.
    let choices: Vec<Candidate> = if let (Some(b), Some(r)) = (opts.bits, opts.rank) {
        quantized
            .iter()
            .map(|_| Candidate {
                bits: b,
                rank: r,
                cost_bits: 0,
                err2: 0.0,
            })
            .collect()
    } else {
        let mut tcs = Vec::with_capacity(quantized.len());
        for (k, &i) in quantized.iter().enumerate() {
            job.progress("analyse", k, quantized.len(), &src.tensors[i].name);
            tcs.push(job.analyse(i, &src.tensors[i], &mut resumed)?);
        }
        let pick = allocate(&tcs, opts.bpw).map_err(CompressError::Budget)?;
        tcs.iter().zip(pick).map(|(t, p)| t.candidates[p]).collect()
    };

    // Phase 3: encode (data-free, or layer by layer against calibration data).
    let mut records: Vec<(usize, Encoded)> = Vec::with_capacity(quantized.len());
    let mut calib_report = None;
    if let Some(cal) = &opts.calibration {
        let plan: Vec<(usize, Candidate)> = quantized.iter().copied().zip(choices.iter().copied()).collect();
        let progress = |done: usize, total: usize, name: &str| job.progress("calibrate", done, total, name);
        let free = |i: usize, c: &Candidate, resumed: &mut usize| job.encode(i, &src.tensors[i], c, resumed);
        let (recs, rep) =
            crate::calib::encode_calibrated(src, &job.work, &plan, opts.seed, cal, &mut resumed, &progress, &free)?;
        records = recs;
        calib_report = Some(rep);
    } else {
        for (k, (&i, c)) in quantized.iter().zip(&choices).enumerate() {
            job.progress("encode", k, quantized.len(), &src.tensors[i].name);
            records.push((i, job.encode(i, &src.tensors[i], c, &mut resumed)?));
        }
    }
    job.progress("write", 0, 1, "");

    // Phase 4: write and verify inside the work directory, then install.
    let rels: Vec<(String, f64)> = records
        .iter()
        .map(|(i, e)| (src.tensors[*i].name.clone(), e.rel_l2()))
        .collect();
    let staged = job.work.join("pack");
    let report = crate::write::write_pack(
        opts,
        &staged,
        src,
        &records,
        &rels,
        digests,
        created,
        calib_report.as_ref(),
    )?;
    write_atomic(
        &job.work.join("install.json"),
        json!({ "fingerprint": fp }).to_string().as_bytes(),
    )?;
    install(&staged, &opts.output_dir, &job.work)?;
    Ok((records, rels, report, resumed, calib_report))
}

/// Runs `uc compress`.
pub fn compress(opts: &CompressOptions) -> Result<CompressSummary, CompressError> {
    let start = Instant::now();
    if !(opts.bpw.is_finite() && opts.bpw > 0.0) {
        return Err(CompressError::Usage(format!(
            "--bpw must be a positive number, got {}",
            opts.bpw
        )));
    }
    if let Some(b) = opts.bits
        && !(1..=8).contains(&b)
    {
        return Err(CompressError::Usage(format!("--bits must be in 1..=8, got {b}")));
    }
    if let Some(r) = opts.rank
        && r > uc_format::MAX_OVERLAY_RANK
    {
        return Err(CompressError::Usage(format!(
            "--rank must be at most {}, got {r}",
            uc_format::MAX_OVERLAY_RANK
        )));
    }
    let src = SourceModel::open(&opts.source)?;
    let work = work_dir(&opts.output_dir);
    let install_path = work.join("install.json");
    // An existing output is refused unless --fresh, or unless an interrupted run of this job had
    // already installed it (checked against the job's fingerprint below).
    let output_exists = opts.output_dir.symlink_metadata().is_ok();
    let exists_error = || {
        CompressError::Exists(format!(
            "{} already exists; pass --fresh to replace it (or choose another --output-dir)",
            opts.output_dir.display()
        ))
    };
    if output_exists && !opts.fresh && !install_path.exists() {
        return Err(exists_error());
    }
    let quantized: Vec<usize> = (0..src.tensors.len())
        .filter(|&i| is_quantized(&src.tensors[i], &opts.skip))
        .collect();
    if let Some(h) = src.hidden_size() {
        for &i in &quantized {
            let t = &src.tensors[i];
            if !t.shape.contains(&h) {
                return Err(CompressError::ShapeMismatch {
                    tensor: t.name.clone(),
                    msg: format!(
                        "shape {:?} has no dimension equal to config.json's hidden size {h}",
                        t.shape
                    ),
                });
            }
        }
    }
    if quantized.is_empty() {
        return Err(CompressError::BadSource {
            path: opts.source.clone(),
            msg: "no tensor to quantize (2-D F32/F16/BF16 weights not matching the skip patterns)".into(),
        });
    }

    // Journal: reuse only when it was made for exactly this input and these options.
    let digests = src.file_digests()?;
    if opts.fresh
        && let Err(e) = std::fs::remove_dir_all(&work)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(io(&work, e));
    }
    let job_path = work.join("job.json");
    let previous: Option<Value> = std::fs::read(&job_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let created = match previous.as_ref().and_then(|p| p["created_at"].as_str()) {
        // A resumed run keeps the first run's time stamp unless one is given explicitly.
        Some(c) if opts.created_at.is_none() && std::env::var_os("SOURCE_DATE_EPOCH").is_none() => c.to_string(),
        _ => created_at(opts)?,
    };
    let calib_sha = match &opts.calibration {
        Some(c) => {
            if c.tokens == 0 || c.ctx < 4 || !(c.lr.is_finite() && c.lr >= 0.0) {
                return Err(CompressError::Usage(
                    "--calib-tokens must be positive, --calib-ctx at least 4 and --distill-lr a non-negative number"
                        .into(),
                ));
            }
            // Everything calibration needs is checked now, not after the analysis phase.
            Some(crate::calib::precheck(&src, c)?)
        }
        None => None,
    };
    let mut digests_fp = digests.clone();
    if opts.calibration.is_some() {
        // Calibration also depends on the architecture settings and the tokenizer.
        for (name, path) in &src.extra_files {
            if name == "config.json" || name == "tokenizer.json" {
                let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
                digests_fp.insert(name.clone(), uc_pack::hex(&Sha256::digest(&bytes)));
            }
        }
    }
    let fp = fingerprint(opts, &digests_fp, &created, calib_sha.as_deref());
    match previous {
        Some(p) if p["fingerprint"].as_str() == Some(fp.as_str()) => {}
        Some(_) if output_exists && !opts.fresh => return Err(exists_error()),
        Some(_) => {
            return Err(CompressError::Exists(format!(
                "{} holds an unfinished run with other inputs or options; rerun that command to resume it, or pass --fresh",
                work.display()
            )));
        }
        None if output_exists && !opts.fresh => return Err(exists_error()),
        None => {
            std::fs::create_dir_all(&work).map_err(|e| io(&work, e))?;
            write_atomic(
                &job_path,
                json!({"fingerprint": fp, "created_at": created}).to_string().as_bytes(),
            )?;
        }
    }
    if output_exists && !opts.fresh {
        // The journal says this job was installing its pack: the output is this job's (same bytes).
        let marker: Option<Value> = std::fs::read(&install_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if marker.as_ref().and_then(|m| m["fingerprint"].as_str()) != Some(fp.as_str()) {
            return Err(exists_error());
        }
    }
    let job = Job {
        opts,
        src: &src,
        work: work.clone(),
    };
    let result = run_job(&job, &quantized, &digests, &created, &fp);
    match &result {
        Ok(_) => {
            let _ = std::fs::remove_dir_all(&work);
        }
        Err(e) if is_deterministic(e) => {
            let _ = std::fs::remove_dir_all(&work);
        }
        Err(_) => {}
    }
    let (records, rels, report, resumed, calibration) = result?;

    let mut tensors = Vec::new();
    for (k, t) in src.tensors.iter().enumerate() {
        let summary = match records.iter().find(|(i, _)| *i == k) {
            Some((_, e)) => TensorSummary {
                name: t.name.clone(),
                shape: t.shape.clone(),
                bits: Some(e.layout.params.bits),
                rank: e.layout.params.overlay_rank,
                bytes: e.layout.record_len,
                rel_l2: Some(e.rel_l2()),
            },
            None => TensorSummary {
                name: t.name.clone(),
                shape: t.shape.clone(),
                bits: None,
                rank: 0,
                bytes: t.len,
                rel_l2: None,
            },
        };
        tensors.push(summary);
    }
    let worst = rels.iter().cloned().max_by(|a, b| a.1.total_cmp(&b.1));
    let mean = rels.iter().map(|r| r.1).sum::<f64>() / rels.len().max(1) as f64;
    let quantized_params: u64 = quantized.iter().map(|&i| src.tensors[i].numel()).sum();
    let record_bytes: u64 = records.iter().map(|(_, e)| e.layout.record_len).sum();
    Ok(CompressSummary {
        output_dir: opts.output_dir.clone(),
        tensors,
        quantized_params,
        total_params: src.tensors.iter().map(|t| t.numel()).sum(),
        bytes_in: src.files.iter().map(|f| f.size).sum(),
        bytes_out: report.bytes_out,
        bpw: report.bpw,
        bpw_records: record_bytes as f64 * 8.0 / quantized_params as f64,
        mean_rel_l2: mean,
        worst_rel_l2: worst,
        resumed,
        seconds: start.elapsed().as_secs_f64(),
        peak_rss: peak_rss(),
        checks_passed: report.checks_passed,
        calibration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*embed*", "model.embed_tokens.weight"));
        assert!(glob_match("layer.?.w", "layer.3.w"));
        assert!(!glob_match("layer.?.w", "layer.13.w"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a*b", "ac"));
    }

    #[test]
    fn candidates_round_trip_through_the_journal_exactly() {
        let t = TensorCandidates {
            n: 10,
            norm2: 0.1 + 0.2,
            candidates: vec![Candidate {
                bits: 3,
                rank: 8,
                cost_bits: 12345,
                err2: 1.0 / 3.0,
            }],
        };
        let back = parse_candidates(candidates_json(&t).to_string().as_bytes()).unwrap();
        assert_eq!(back.norm2.to_bits(), t.norm2.to_bits());
        assert_eq!(back.candidates, t.candidates);
    }
}
