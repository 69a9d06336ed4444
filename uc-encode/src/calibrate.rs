//! The plug-in point of calibrated encoding: [`Calibrator`] replaces phase 3 (encode) of the
//! pipeline with a data-driven one. The encoder itself runs no model; `uc-models` implements the
//! trait with candle forward passes (activation-aware overlay initialisation and per-layer
//! distillation), and the CLI passes it in [`crate::CompressOptions::calibration`].

use crate::error::CompressError;
use crate::journal::Encoded;
use crate::source::SourceModel;
use crate::tensor::Candidate;
use std::fmt;
use std::path::{Path, PathBuf};

/// Options of calibrated encoding; they enter the job fingerprint and the manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibOptions {
    /// Calibration text (`.txt` or `.jsonl`).
    pub text: PathBuf,
    /// Calibration tokens (whole windows of `ctx`).
    pub tokens: usize,
    /// Window length.
    pub ctx: usize,
    /// Distillation steps per layer (0: activation-aware initialisation only).
    pub steps: usize,
    /// Adam step size, relative to each factor's RMS.
    pub lr: f64,
    /// Choose each layer's codes by error-feedback rounding against its input statistics
    /// ([`crate::gptq`]) instead of rounding to the nearest grid value.
    pub gptq: bool,
    /// Weight each weight's squared error in the grid fit and the scale search by its input
    /// feature's mean square on the calibration tokens ([`crate::gsq::Importance`]).
    pub importance: bool,
}

impl CalibOptions {
    /// Calibration tokens by default.
    pub const DEFAULT_TOKENS: usize = 2048;
    /// Window length by default.
    pub const DEFAULT_CTX: usize = 256;
    /// Distillation steps per layer by default.
    pub const DEFAULT_STEPS: usize = 200;
    /// Distillation step size by default.
    pub const DEFAULT_LR: f64 = 0.01;

    /// The defaults of `uc compress --calibration TEXT`: nearest rounding, importance weights.
    pub fn defaults(text: PathBuf) -> Self {
        CalibOptions {
            text,
            tokens: Self::DEFAULT_TOKENS,
            ctx: Self::DEFAULT_CTX,
            steps: Self::DEFAULT_STEPS,
            lr: Self::DEFAULT_LR,
            gptq: false,
            importance: true,
        }
    }
}

/// What calibration did to one layer: losses on the calibration tokens, by [`LayerReport::objective`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LayerReport {
    /// Layer index.
    pub layer: usize,
    /// What the losses measure: [`Objective::Mse`] (the layer output against the teacher's) or, for
    /// the last layer of a causal language model, [`Objective::Kl`] (the next-token distributions).
    pub objective: Objective,
    /// Loss with `W_base` only (no overlay).
    pub loss_base: f64,
    /// Loss with the data-free overlay (plain SVD of the residual), bf16.
    pub loss_svd: f64,
    /// Loss with the activation-aware initial overlay, bf16.
    pub loss_init: f64,
    /// Loss with the overlay written, bf16.
    pub loss_final: f64,
    /// Whether the distilled factors were kept (false: the initial ones were better).
    pub distilled: bool,
}

/// The loss a layer is distilled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Mean squared difference of the layer output and the teacher's.
    Mse,
    /// Mean over tokens of `KL(p_teacher ‖ p_student)` of the next-token distributions, in nats.
    Kl,
}

impl Objective {
    /// The name used in the JSON summary and the journal.
    pub fn name(self) -> &'static str {
        match self {
            Objective::Mse => "mse",
            Objective::Kl => "kl",
        }
    }

    /// The objective of a name written by [`Objective::name`].
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "mse" => Some(Objective::Mse),
            "kl" => Some(Objective::Kl),
            _ => None,
        }
    }
}

/// The calibration summary of a run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CalibReport {
    /// SHA-256 of the calibration file.
    pub text_sha256: String,
    /// Tokens used.
    pub tokens: usize,
    /// Per layer.
    pub layers: Vec<LayerReport>,
}

/// A data-free encoder of one tensor: (tensor index, choice, resumed-step counter) → its
/// journaled record. The pipeline hands it to the calibrator for tensors outside the layers.
pub type EncodeFree<'a> = dyn Fn(usize, &Candidate, &mut usize) -> Result<Encoded, CompressError> + 'a;

/// What a calibrator gets for phase 3.
pub struct CalibJob<'a> {
    /// The source model.
    pub src: &'a SourceModel,
    /// The work directory (journal per layer with [`crate::journal`]).
    pub work: &'a Path,
    /// Quantized tensors: (index into `src.tensors`, chosen bits and rank), by index.
    pub plan: &'a [(usize, Candidate)],
    /// The job's seed.
    pub seed: u64,
    /// Two-level scales of every quantized tensor (`None`: v0.3 scales).
    pub subscales: Option<crate::gsq::SubScales>,
    /// Steps found in the journal (add to it when resuming).
    pub resumed: &'a mut usize,
    /// Progress: (layers done, layers, current layer prefix).
    pub progress: &'a dyn Fn(usize, usize, &str),
    /// The data-free encoder.
    pub encode_free: &'a EncodeFree<'a>,
}

/// Calibrated phase 3 of the pipeline.
pub trait Calibrator: fmt::Debug + Send + Sync {
    /// The options (fingerprint, manifest).
    fn options(&self) -> &CalibOptions;
    /// Checks before any work that calibration can run on `src` (architecture, tokenizer, text,
    /// tensors); returns the calibration text's SHA-256.
    fn precheck(&self, src: &SourceModel) -> Result<String, CompressError>;
    /// Encodes every tensor of `job.plan`, journaling as it goes so that a rerun resumes; returns
    /// the records in `plan`'s order and the report.
    fn encode(&self, job: CalibJob<'_>) -> Result<(Vec<(usize, Encoded)>, CalibReport), CompressError>;
    /// Source files besides the weights whose bytes the result depends on (they enter the job
    /// fingerprint), e.g. `config.json` and `tokenizer.json`.
    fn depends_on(&self) -> &[&str] {
        &["config.json", "tokenizer.json"]
    }
}
