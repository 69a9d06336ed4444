//! Phase 4 of `uc compress`: the pack written through [`uc_pack::writer::PackWriter`] (atomic) at a
//! staging path inside the work directory, then verified there with the uc-verify library (the same
//! checks `uc-verify <pack>` runs); the pipeline then installs it at the final path.

use crate::error::CompressError;
use crate::journal::Encoded;
use crate::options::CompressOptions;
use crate::source::SourceModel;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use uc_pack::writer::{PackWriter, WriterOptions};

/// What the written pack amounts to.
pub(crate) struct Written {
    /// Bytes of every file of the pack, manifest included.
    pub bytes_out: u64,
    /// bpw as the manifest accounts it.
    pub bpw: f64,
    /// Verification checks that passed.
    pub checks_passed: usize,
    /// The signature written into the pack, with `opts.sign`.
    pub signature: Option<crate::sign::SignSummary>,
}

/// Runs every uc-verify check on the pack at `dir`; a pack that fails is
/// [`CompressError::Verification`] naming its first five failures, after `lead`.
pub(crate) fn verify_or_fail(dir: &Path, lead: &str) -> Result<uc_verify::PackReport, CompressError> {
    let report = uc_verify::verify_pack(dir, &uc_verify::PackOptions::default())
        .map_err(|e| CompressError::Verification(format!("{}: {e}", dir.display())))?;
    if !report.verified {
        let msgs: Vec<String> = report
            .failures()
            .take(5)
            .map(|c| {
                format!(
                    "{} {} {}: {}",
                    c.name,
                    c.file.as_deref().unwrap_or(""),
                    c.tensor.as_deref().unwrap_or(""),
                    c.message
                )
            })
            .collect();
        return Err(CompressError::Verification(format!(
            "{}: {lead}{}",
            dir.display(),
            msgs.join("; ")
        )));
    }
    Ok(report)
}

fn werr(e: uc_pack::writer::PackWriteError) -> CompressError {
    match e {
        // I/O (a full disk) is not deterministic: the journal is kept for the rerun.
        uc_pack::writer::PackWriteError::Io { path, op, error } => CompressError::Io {
            path,
            source: std::io::Error::new(error.kind(), format!("writing the pack ({op}): {error}")),
        },
        e => CompressError::PackWrite(e),
    }
}

/// The environment recorded in the provenance: tool version and platform only. Nothing that
/// differs between two machines of the same platform (no CPU features, thread count or device)
/// enters the pack, so data-free packs are byte-identical across machines, thread counts and
/// devices. Calibrated packs are byte-identical across runs and thread counts on one machine; across
/// machines they may differ, since candle's matrix products pick their kernel (AVX2, AVX-512, FMA)
/// and blocking from the CPU, which changes f32 rounding in the forward passes.
fn environment() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("tool".into(), json!(format!("uc {}", env!("CARGO_PKG_VERSION"))));
    m.insert("os".into(), json!(std::env::consts::OS));
    m.insert("arch".into(), json!(std::env::consts::ARCH));
    m
}

/// Writes the pack at `dir` (replacing a stale one from an interrupted run) and verifies it. The
/// manifest's `model_id` is the name of the final directory, `opts.output_dir`.
#[allow(clippy::too_many_arguments)] // everything phase 4 records comes from its caller
pub(crate) fn write_pack(
    opts: &CompressOptions,
    dir: &Path,
    src: &SourceModel,
    records: &[(usize, Encoded)],
    rels: &[(String, f64)],
    digests: &BTreeMap<String, String>,
    created_at: &str,
    calibration: Option<&crate::calibrate::CalibReport>,
) -> Result<Written, CompressError> {
    let calibration_sha256 = calibration.map(|c| c.text_sha256.as_str());
    let mut w = PackWriter::with_options(
        dir,
        WriterOptions {
            overwrite: true,
            ..WriterOptions::default()
        },
    )
    .map_err(werr)?;
    let source_name = src
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let info = w.info_mut();
    info.model_id = opts
        .output_dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    info.base_model = Some(source_name);
    info.method = "gsq".into();
    info.method_version = opts.method_version.clone();
    info.license = opts.license.clone();
    info.tooling_version = format!("uc {}", env!("CARGO_PKG_VERSION"));
    info.notes = if calibration_sha256.is_some() {
        "Track A: grid scalar quantization (per-64-block f16 absmax scales, k-means grid) with a bf16 low-rank \
         overlay where the bpw allocator chose one, initialised from an activation-aware SVD and distilled layer \
         by layer against the source model on the calibration text."
    } else {
        "Track A: grid scalar quantization (per-64-block f16 absmax scales, k-means grid) with a bf16 \
         low-rank overlay where the bpw allocator chose one; no calibration data."
    }
    .into();
    info.provenance.source_files = digests.clone();
    info.provenance.seed = Some(opts.seed);
    let mut o = Map::new();
    o.insert("bpw".into(), json!(opts.bpw));
    o.insert("bits".into(), json!(opts.bits));
    o.insert("rank".into(), json!(opts.rank));
    o.insert("skip".into(), json!(opts.skip));
    o.insert("default_skip".into(), json!(crate::policy::DEFAULT_SKIP));
    o.insert("outer_bits".into(), json!(opts.outer_bits));
    o.insert("norm_importance".into(), json!(opts.norm_importance));
    o.insert(
        "subscales".into(),
        json!(
            opts.subscales
                .map(|s| json!({"sub_block": s.block, "sub_bits": s.bits}))
        ),
    );
    o.insert("allowed_bits".into(), json!(crate::policy::DEFAULT_BITS));
    o.insert("allowed_ranks".into(), json!(crate::policy::DEFAULT_RANKS));
    o.insert("overlay_dtype".into(), json!("bf16"));
    if let Some(c) = opts.calibration.as_ref().map(|c| c.options()) {
        o.insert(
            "calibration".into(),
            json!({"file": c.text.file_name().map(|n| n.to_string_lossy().to_string()),
                "tokens": calibration.map_or(c.tokens, |r| r.tokens), "tokens_requested": c.tokens,
                "ctx": c.ctx, "distill_steps": c.steps, "distill_lr": c.lr,
                "rounding": if c.gptq { "gptq" } else { "nearest" },
                "importance": if c.importance { "activations" } else { "none" }}),
        );
    }
    info.provenance.options = o;
    info.provenance.calibration_sha256 = calibration_sha256.map(str::to_string);
    info.provenance.environment = environment();
    w.set_created_at(created_at).map_err(werr)?;

    for ((i, e), (_, rel)) in records.iter().zip(rels) {
        let t = &src.tensors[*i];
        let rec = std::fs::read(&e.path).map_err(|err| CompressError::Io {
            path: e.path.clone(),
            source: err,
        })?;
        w.add_record(&t.name, &rec, Some(*rel)).map_err(werr)?;
    }
    for (k, t) in src.tensors.iter().enumerate() {
        if records.iter().any(|(i, _)| *i == k) {
            continue;
        }
        let bytes = src.read_raw(t)?;
        w.add_verbatim(&t.name, t.dtype, &t.shape, &bytes).map_err(werr)?;
    }
    for (name, path) in &src.extra_files {
        w.copy_file(name, path).map_err(werr)?;
    }
    let summary = w.finish().map_err(werr)?;

    let report = verify_or_fail(&summary.dir, "")?;
    let manifest_len = std::fs::metadata(summary.dir.join("ultracompress.json"))
        .map(|m| m.len())
        .unwrap_or(0);
    // Signed in the staging directory, from the digests the verification computed: the pack and
    // its signature are installed together.
    let signature = match &opts.sign {
        Some(spec) => {
            let bundle = crate::sign::bundle_for(&summary.dir, &report, spec)?;
            let path = summary.dir.join(uc_sign::SIGNATURE_NAME);
            uc_pack::fs::write_atomic(&path, &bundle)?;
            Some(crate::sign::summary(
                opts.output_dir.join(uc_sign::SIGNATURE_NAME),
                &report,
                spec,
            ))
        }
        None => None,
    };
    Ok(Written {
        signature,
        bytes_out: summary.manifest.size_bytes() + manifest_len,
        bpw: summary.manifest.bpw_accounting.bpw(),
        checks_passed: report.checks.iter().filter(|c| c.ok).count(),
    })
}
