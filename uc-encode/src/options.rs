//! The options and the result of [`crate::compress()`].

use std::path::PathBuf;

/// Options of [`crate::compress()`].
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
    /// Code width of the embeddings and the output head ([`crate::policy::OUTER`]), quantized
    /// outside the bpw budget; `None` keeps them verbatim.
    pub outer_bits: Option<u8>,
    /// Two-level scales for every quantized tensor (spec section 13; v0.4 records), or `None`
    /// for v0.3 records (one binary16 scale per 64 weights).
    pub subscales: Option<crate::gsq::SubScales>,
    /// How phase 1 estimates the error of every (bits, rank) candidate.
    pub analysis: Analysis,
    /// Data-free importance weights: weigh each weight's error by the square of its input
    /// feature's scale in the normalisation layer that feeds the linear map, where the model has
    /// one ([`crate::policy::input_norm_of`]); see [`crate::gsq::Importance`]. Calibrated
    /// encoding measures the inputs instead ([`crate::calibrate::CalibOptions::importance`]).
    pub norm_importance: bool,
    /// Seed (randomized SVD, row sample of the sampled analysis).
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
    /// Calibrated encoding (e.g. uc-models' activation-aware overlay and per-layer distillation),
    /// see [`crate::calibrate`].
    pub calibration: Option<std::sync::Arc<dyn crate::calibrate::Calibrator>>,
    /// Sign the pack (OMS v1.0 `model.sig`) before it is installed (`--sign-key`).
    pub sign: Option<crate::sign::SignSpec>,
    /// Where GSQ runs (`--device`); `None` is the CPU. The pack's bytes are the same on every
    /// engine, so the engine is not part of the resume fingerprint.
    pub engine: Option<std::sync::Arc<dyn crate::gsq::GsqEngine>>,
}

/// How the analysis phase of [`crate::compress()`] estimates each candidate's error (the cost of
/// every candidate is exact either way, from its record layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Analysis {
    /// One GSQ of the whole tensor and one SVD of its residual per allowed bit width
    /// ([`crate::tensor::candidates`]).
    Exact,
    /// One GSQ and one SVD of the whole tensor at the width nearest the budget, and one GSQ of a
    /// seeded row sample per width ([`crate::tensor::sampled_candidates`]).
    #[default]
    Sampled,
}

/// Per-tensor result (serialised as the CLI's `--json` summary entry).
#[derive(Debug, Clone, serde::Serialize)]
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
    /// Where GSQ ran ([`crate::gsq::GsqEngine::device`]).
    pub device: String,
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
    pub calibration: Option<crate::calibrate::CalibReport>,
    /// The signature written, with `sign`.
    pub signature: Option<crate::sign::SignSummary>,
}
