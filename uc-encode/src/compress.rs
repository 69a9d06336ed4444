//! `uc compress`: the streaming, resumable, deterministic encoder pipeline: **analyse** (the exact
//! size and the measured or sampled error of every allowed (bits, rank) candidate per tensor,
//! [`crate::tensor::candidates`], [`crate::tensor::sampled_candidates`]),
//! **allocate** within the bpw budget ([`crate::plan::allocate`]), **encode** (data-free with
//! [`crate::tensor::encode_tensor`], or through a [`crate::calibrate::Calibrator`]), **write** the
//! pack into the work directory, **verify** it with the uc-verify library, **install** it at the
//! final path. One tensor is in memory at a time; every result is journaled ([`crate::journal`]) so
//! that a killed run resumes byte-identically. The protocol (work directory, journal, install,
//! which errors keep the journal) is described in `docs/compress-pipeline.md`.

use crate::calibrate::{CalibJob, CalibReport};
use crate::error::{CompressError, io, opt};
use crate::gsq::Importance;
use crate::journal::{
    CandidatesEntry, Encoded, InstallEntry, JobEntry, WorkLock, journal_record, journaled_record, read_json, write_json,
};
pub use crate::options::{Analysis, CompressOptions, CompressSummary, TensorSummary};
use crate::plan::{TensorCandidates, allocate};
use crate::policy::{DEFAULT_BITS, DEFAULT_RANKS, is_quantized};
use crate::source::{SourceModel, SourceTensor};
use crate::tensor::{Candidate, TensorOptions, candidates_on, encode_tensor_on, sampled_candidates_on};
use serde_json::json;
use sha2::{Digest, Sha256};

/// The floor of the data-free importance weights, relative to their mean (see
/// [`Importance::from_second_moments`]): a normalisation weight near zero does not make its
/// feature's weights free to get wrong, since `x̂` has outlier features of its own.
pub const NORM_IMPORTANCE_FLOOR: f64 = 0.1;
use std::path::{Path, PathBuf};
use std::time::Instant;
use uc_pack::fs::{OutputKind, check_output};

/// The seed of one tensor: FNV-1a of its name mixed with the job's seed, independent of order and
/// thread count.
pub fn seed_for(seed: u64, name: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// The work directory beside the output: `.<name>.uc-work`.
pub(crate) fn work_dir(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "pack".into());
    output.with_file_name(format!(".{name}.uc-work"))
}

/// Peak resident memory of this process (Linux VmHWM), bytes.
pub fn peak_rss() -> Option<u64> {
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
            opt(
                "created_at",
                format!("SOURCE_DATE_EPOCH={s:?} is not an integer number of seconds"),
            )
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
    /// Where GSQ runs ([`CompressOptions::engine`]).
    fn engine(&self) -> &dyn crate::gsq::GsqEngine {
        self.opts.engine.as_deref().unwrap_or(&crate::gsq::CpuEngine)
    }

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
        if let Some(c) = read_json::<CandidatesEntry>(&path)? {
            *resumed += 1;
            return Ok(TensorCandidates {
                n: c.n,
                norm2: f64::from_bits(c.norm2_bits),
                candidates: c
                    .candidates
                    .iter()
                    .map(|&(bits, rank, cost_bits, err2)| Candidate {
                        bits,
                        rank,
                        cost_bits,
                        err2: f64::from_bits(err2),
                    })
                    .collect(),
            });
        }
        let data = self.src.read_f32(t)?;
        let (bits, ranks) = self.allowed();
        let seed = seed_for(self.opts.seed, &t.name);
        let cands = match self.opts.analysis {
            Analysis::Exact => candidates_on(self.engine(), &data, &t.shape, &bits, &ranks, seed, self.opts.subscales),
            Analysis::Sampled => sampled_candidates_on(
                self.engine(),
                &data,
                &t.shape,
                &bits,
                &ranks,
                seed,
                self.opts.subscales,
                self.opts.bpw,
            ),
        }
        .map_err(|err| CompressError::Encode {
            tensor: t.name.clone(),
            err,
        })?;
        let tc = TensorCandidates {
            n: t.numel(),
            norm2: crate::tensor::sum_sq(&data),
            candidates: cands,
        };
        let entry = CandidatesEntry {
            n: tc.n,
            norm2_bits: tc.norm2.to_bits(),
            candidates: tc
                .candidates
                .iter()
                .map(|c| (c.bits, c.rank, c.cost_bits, c.err2.to_bits()))
                .collect(),
        };
        write_json(&path, &entry)?;
        Ok(tc)
    }

    /// The data-free importance weights of `t` ([`CompressOptions::norm_importance`]): the
    /// squares of its input normalisation's weights, when that option is on, the source has that
    /// tensor, and it has one entry per input feature of `t`; otherwise none.
    fn norm_importance(&self, t: &SourceTensor) -> Result<Option<Importance>, CompressError> {
        if !self.opts.norm_importance || t.shape.len() != 2 {
            return Ok(None);
        }
        let Some(norm) =
            crate::policy::input_norm_of(&t.name).and_then(|n| self.src.tensors.iter().find(|x| x.name == n))
        else {
            return Ok(None);
        };
        if norm.shape.len() != 1 || norm.shape[0] != t.shape[1] {
            return Ok(None);
        }
        let g = self.src.read_f32(norm)?;
        let diag: Vec<f64> = g.iter().map(|&v| f64::from(v) * f64::from(v)).collect();
        Ok(Importance::from_second_moments(&diag, NORM_IMPORTANCE_FLOOR))
    }

    /// Phase 3 for one tensor, from the journal when present. The record stays in the work
    /// directory (memory holds one tensor).
    fn encode(
        &self,
        idx: usize,
        t: &SourceTensor,
        c: &Candidate,
        resumed: &mut usize,
    ) -> Result<Encoded, CompressError> {
        if let Some(e) = journaled_record(&self.work, idx, c)? {
            *resumed += 1;
            return Ok(e);
        }
        let data = self.src.read_f32(t)?;
        let topts = TensorOptions {
            bits: c.bits,
            rank: c.rank,
            seed: seed_for(self.opts.seed, &t.name),
            subscales: self.opts.subscales,
        };
        let imp = self.norm_importance(t)?;
        let enc = encode_tensor_on(self.engine(), &data, &t.shape, &topts, imp.as_ref()).map_err(|err| {
            CompressError::Encode {
                tensor: t.name.clone(),
                err,
            }
        })?;
        drop(data);
        journal_record(&self.work, idx, &t.name, c, &enc)
    }
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
        "subscales": opts.subscales,
        "outer_bits": opts.outer_bits,
        // The journal's candidate files hold this analysis's estimates: a journal written by the
        // other analysis (or by a tool from before the choice existed) is another job.
        "analysis": opts.analysis,
        "norm_importance": opts.norm_importance,
        "seed": opts.seed,
        "skip": opts.skip,
        "method_version": opts.method_version,
        "license": opts.license,
        "created_at": created_at,
        "calibration": opts.calibration.as_ref().map(|c| c.options()).map(|c| json!({
            "text_sha256": calib_sha, "tokens": c.tokens, "ctx": c.ctx, "steps": c.steps, "lr_bits": c.lr.to_bits(), "gptq": c.gptq, "importance": c.importance,
        })),
    });
    uc_pack::hex(&Sha256::digest(v.to_string().as_bytes()))
}

/// What phases 1 to 4 produced.
struct JobOutput {
    records: Vec<(usize, Encoded)>,
    rels: Vec<(String, f64)>,
    written: crate::write::Written,
    resumed: usize,
    calibration: Option<CalibReport>,
}

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

    // Phases 1-2: choose (bits, rank) per tensor: the outer tensors (embeddings, head) at their
    // fixed width, the others within the budget.
    let fixed = |bits: u8, rank: u32| Candidate {
        bits,
        rank,
        cost_bits: 0,
        err2: 0.0,
    };
    // The fixed choice of an outer tensor, when outer tensors are quantized.
    let outer = |i: usize| {
        opts.outer_bits
            .filter(|_| crate::policy::is_outer(&src.tensors[i].name))
            .map(|b| fixed(b, 0))
    };
    let budgeted: Vec<usize> = quantized.iter().copied().filter(|&i| outer(i).is_none()).collect();
    let picked: Vec<Candidate> = if let (Some(b), Some(r)) = (opts.bits, opts.rank) {
        budgeted.iter().map(|_| fixed(b, r)).collect()
    } else {
        let mut tcs = Vec::with_capacity(budgeted.len());
        for (k, &i) in budgeted.iter().enumerate() {
            job.progress("analyse", k, budgeted.len(), &src.tensors[i].name);
            tcs.push(job.analyse(i, &src.tensors[i], &mut resumed)?);
        }
        let pick = allocate(&tcs, opts.bpw).map_err(CompressError::Budget)?;
        tcs.iter().zip(pick).map(|(t, p)| t.candidates[p]).collect()
    };
    // `picked` follows `budgeted`, which keeps `quantized`'s order.
    let mut picked = picked.into_iter();
    let mut choices: Vec<Candidate> = Vec::with_capacity(quantized.len());
    for &i in quantized {
        let c = outer(i).or_else(|| picked.next());
        choices.push(c.ok_or_else(|| CompressError::Internal {
            msg: "the allocation has fewer choices than tensors".into(),
        })?);
    }

    // Phase 3: encode (data-free, or layer by layer against calibration data).
    let mut records: Vec<(usize, Encoded)> = Vec::with_capacity(quantized.len());
    let mut calibration = None;
    if let Some(cal) = &opts.calibration {
        let plan: Vec<(usize, Candidate)> = quantized.iter().copied().zip(choices.iter().copied()).collect();
        let progress = |done: usize, total: usize, name: &str| job.progress("calibrate", done, total, name);
        let free = |i: usize, c: &Candidate, resumed: &mut usize| job.encode(i, &src.tensors[i], c, resumed);
        let (recs, rep) = cal.encode(CalibJob {
            src,
            work: &job.work,
            plan: &plan,
            seed: opts.seed,
            subscales: opts.subscales,
            resumed: &mut resumed,
            progress: &progress,
            encode_free: &free,
        })?;
        if recs.len() != plan.len() || recs.iter().zip(&plan).any(|((a, _), (b, _))| a != b) {
            return Err(CompressError::Internal {
                msg: "the calibrator did not return one record per planned tensor, in order".into(),
            });
        }
        records = recs;
        calibration = Some(rep);
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
    let written = crate::write::write_pack(
        opts,
        &staged,
        src,
        &records,
        &rels,
        digests,
        created,
        calibration.as_ref(),
    )?;
    write_json(
        &job.work.join("install.json"),
        &InstallEntry {
            fingerprint: fp.to_string(),
        },
    )?;
    uc_pack::fs::install_dir(&staged, &opts.output_dir)?;
    Ok(JobOutput {
        records,
        rels,
        written,
        resumed,
        calibration,
    })
}

/// Checks the options' values.
fn check_options(opts: &CompressOptions) -> Result<(), CompressError> {
    if !(opts.bpw.is_finite() && opts.bpw > 0.0) {
        return Err(opt("bpw", format!("must be a positive number, got {}", opts.bpw)));
    }
    if let Some(b) = opts.bits
        && !(1..=8).contains(&b)
    {
        return Err(opt("bits", format!("must be in 1..=8, got {b}")));
    }
    if let Some(s) = opts.subscales {
        if !uc_format::SUB_BLOCKS.contains(&s.block) {
            return Err(opt("sub_block", format!("must be 16 or 32, got {}", s.block)));
        }
        if !(1..=8).contains(&s.bits) {
            return Err(opt("sub_bits", format!("must be in 1..=8, got {}", s.bits)));
        }
    }
    if let Some(b) = opts.outer_bits
        && !(1..=8).contains(&b)
    {
        return Err(opt("outer_bits", format!("must be in 1..=8, got {b}")));
    }
    if let Some(r) = opts.rank
        && r > uc_format::MAX_OVERLAY_RANK
    {
        return Err(opt(
            "rank",
            format!("must be at most {}, got {r}", uc_format::MAX_OVERLAY_RANK),
        ));
    }
    if let (Some(e), Some(_)) = (&opts.engine, &opts.calibration)
        && e.device() != "cpu"
    {
        return Err(opt(
            "device",
            format!(
                "calibrated encoding runs on the CPU only in this version; {} takes data-free compression",
                e.device()
            ),
        ));
    }
    if let Some(c) = &opts.calibration {
        let c = c.options();
        if c.tokens == 0 {
            return Err(opt("calibration.tokens", "must be positive"));
        }
        if c.ctx < 4 {
            return Err(opt("calibration.ctx", format!("must be at least 4, got {}", c.ctx)));
        }
        if !(c.lr.is_finite() && c.lr >= 0.0) {
            return Err(opt(
                "calibration.lr",
                format!("must be a non-negative number, got {}", c.lr),
            ));
        }
    }
    Ok(())
}

/// Refuses, before any work, a source the pack could not hold: tensor names reserved by the format
/// (padding tensors, `__metadata__`) and verbatim U8 tensors that begin with the record magic
/// (a reader would take them for records).
fn check_source_names(src: &SourceModel, quantized: &[usize]) -> Result<(), CompressError> {
    for (i, t) in src.tensors.iter().enumerate() {
        if t.name.starts_with(uc_pack::safetensors::PAD_PREFIX) || t.name == uc_pack::safetensors::METADATA_KEY {
            return Err(CompressError::BadSource {
                path: src.files[t.file].path.clone(),
                msg: format!(
                    "tensor {:?}: the name is reserved by the pack format (R-3.5, R-3.6)",
                    t.name
                ),
            });
        }
        if t.dtype == uc_pack::Dtype::U8 && t.len >= 8 && !quantized.contains(&i) {
            let head = src.read_prefix(t, 8)?;
            if head == uc_format::MAGIC {
                return Err(CompressError::BadSource {
                    path: src.files[t.file].path.clone(),
                    msg: format!(
                        "tensor {:?} at byte offset {}: a U8 tensor that begins with the record magic cannot be stored verbatim (R-3.3)",
                        t.name, t.offset
                    ),
                });
            }
        }
    }
    Ok(())
}

/// A full disk during a run keeps the journal (it is an I/O error); the message says so and how much
/// space the journal holds, since that space is what the user must free or give up.
fn full_disk_note(e: CompressError, work: &Path) -> CompressError {
    match e {
        CompressError::Io { path, source } if source.kind() == std::io::ErrorKind::StorageFull => {
            fn size(p: &Path) -> u64 {
                std::fs::read_dir(p).map_or(0, |rd| {
                    rd.flatten()
                        .map(|e| match e.file_type() {
                            Ok(t) if t.is_dir() => size(&e.path()),
                            _ => e.metadata().map_or(0, |m| m.len()),
                        })
                        .sum()
                })
            }
            CompressError::Io {
                path,
                source: std::io::Error::new(
                    source.kind(),
                    format!(
                        "{source}; the unfinished run's journal in {} is kept for the resume and holds {} bytes: free space and rerun the same command, or delete that directory",
                        work.display(),
                        size(work)
                    ),
                ),
            }
        }
        e => e,
    }
}

/// Removes everything in the work directory but its lock (the caller holds it).
fn clear_work(work: &Path) -> Result<(), CompressError> {
    for e in std::fs::read_dir(work).map_err(|e| io(work, e))? {
        let e = e.map_err(|e| io(work, e))?;
        if e.file_name() == "lock" {
            continue;
        }
        let p = e.path();
        let r = if e.file_type().map_err(|err| io(&p, err))?.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.map_err(|err| io(&p, err))?;
    }
    Ok(())
}

/// Runs `uc compress`.
pub fn compress(opts: &CompressOptions) -> Result<CompressSummary, CompressError> {
    let start = Instant::now();
    check_options(opts)?;
    // The output may replace only an earlier pack (never the source, an ancestor, `.` or a
    // directory this command did not write); whether it may be replaced now is decided below.
    let output_exists = check_output(&opts.output_dir, OutputKind::Pack, &[&opts.source], true)?;
    if opts.output_dir.file_name().is_none() {
        return Err(opt(
            "output_dir",
            format!("{}: needs a final directory name", opts.output_dir.display()),
        ));
    }
    // A crash while an earlier run replaced the output (fallback path) is repaired first.
    uc_pack::fs::recover_install(&opts.output_dir)?;
    let src = SourceModel::open(&opts.source)?;
    let work = work_dir(&opts.output_dir);
    let quantized: Vec<usize> = (0..src.tensors.len())
        .filter(|&i| is_quantized(&src.tensors[i], &opts.skip, opts.outer_bits.is_some()))
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
    check_source_names(&src, &quantized)?;
    let exists_error = || CompressError::Output(uc_pack::fs::OutputError::Exists(opts.output_dir.clone()));
    let install_path = work.join("install.json");
    if output_exists && !opts.fresh && !install_path.exists() {
        return Err(exists_error());
    }
    // Everything calibration needs is checked now, not after the analysis phase.
    let calib_sha = match &opts.calibration {
        Some(c) => Some(c.precheck(&src)?),
        None => None,
    };

    // From here on the work directory is ours alone.
    let lock = WorkLock::acquire(&work)?;
    let digests = src.file_digests()?;
    if opts.fresh {
        clear_work(&work)?;
    }
    let job_path = work.join("job.json");
    let previous: Option<JobEntry> = read_json(&job_path)?;
    let created = match previous.as_ref().map(|p| p.created_at.as_str()) {
        // A resumed run keeps the first run's time stamp unless one is given explicitly.
        Some(c) if opts.created_at.is_none() && std::env::var_os("SOURCE_DATE_EPOCH").is_none() => c.to_string(),
        _ => created_at(opts)?,
    };
    let mut digests_fp = digests.clone();
    if let Some(c) = &opts.calibration {
        // Calibration also depends on the architecture settings and the tokenizer.
        for (name, path) in &src.extra_files {
            if c.depends_on().contains(&name.as_str()) {
                let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
                digests_fp.insert(name.clone(), uc_pack::hex(&Sha256::digest(&bytes)));
            }
        }
    }
    let fp = fingerprint(opts, &digests_fp, &created, calib_sha.as_deref());
    match previous {
        Some(p) if p.fingerprint == fp => {}
        Some(_) if output_exists && !opts.fresh => return Err(exists_error()),
        Some(_) => return Err(CompressError::OtherJob { work: work.clone() }),
        None if output_exists && !opts.fresh => return Err(exists_error()),
        None => {
            write_json(
                &job_path,
                &JobEntry {
                    fingerprint: fp.clone(),
                    created_at: created.clone(),
                },
            )?;
        }
    }
    if output_exists && !opts.fresh {
        // The journal says this job was installing its pack: the output is this job's (same bytes).
        let marker: Option<InstallEntry> = read_json(&install_path)?;
        if marker.as_ref().map(|m| m.fingerprint.as_str()) != Some(fp.as_str()) {
            return Err(exists_error());
        }
    }
    let job = Job {
        opts,
        src: &src,
        work: work.clone(),
    };
    let result = run_job(&job, &quantized, &digests, &created, &fp).map_err(|e| full_disk_note(e, &work));
    match &result {
        Err(e) if e.keeps_journal() => {}
        _ => {
            let _ = std::fs::remove_dir_all(&work);
        }
    }
    drop(lock);
    let out = result?;

    let mut tensors = Vec::new();
    for (k, t) in src.tensors.iter().enumerate() {
        let summary = match out.records.iter().find(|(i, _)| *i == k) {
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
    let rels = &out.rels;
    let worst = rels.iter().cloned().max_by(|a, b| a.1.total_cmp(&b.1));
    let mean = rels.iter().map(|r| r.1).sum::<f64>() / rels.len().max(1) as f64;
    let quantized_params: u64 = quantized.iter().map(|&i| src.tensors[i].numel()).sum();
    let record_bytes: u64 = out.records.iter().map(|(_, e)| e.layout.record_len).sum();
    Ok(CompressSummary {
        output_dir: opts.output_dir.clone(),
        device: opts.engine.as_ref().map_or_else(|| "cpu".into(), |e| e.device()),
        tensors,
        quantized_params,
        total_params: src.tensors.iter().map(|t| t.numel()).sum(),
        bytes_in: src.files.iter().map(|f| f.size).sum(),
        bytes_out: out.written.bytes_out,
        bpw: out.written.bpw,
        bpw_records: record_bytes as f64 * 8.0 / quantized_params as f64,
        mean_rel_l2: mean,
        worst_rel_l2: worst,
        resumed: out.resumed,
        seconds: start.elapsed().as_secs_f64(),
        peak_rss: peak_rss(),
        checks_passed: out.written.checks_passed,
        calibration: out.calibration,
        signature: out.written.signature,
    })
}
