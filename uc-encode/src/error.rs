//! Errors of `uc compress`, `uc unpack` and `uc inspect`: each names the file and tensor it is about.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a command failed. Every variant maps to exit code 2 (usage or input/output problem), except
/// [`CompressError::Verification`], which maps to 1.
#[derive(Debug)]
pub enum CompressError {
    /// Bad command-line use.
    Usage(String),
    /// An I/O error on a path.
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The source model is missing something or is malformed.
    BadSource {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A tensor to quantize has a dtype that is not F32, F16 or BF16.
    UnsupportedDtype {
        /// Tensor name.
        tensor: String,
        /// Its dtype.
        dtype: String,
    },
    /// A weight is NaN or infinite.
    NonFinite {
        /// Tensor name.
        tensor: String,
        /// Flat index of the first such weight.
        index: u64,
    },
    /// A tensor's shape disagrees with config.json.
    ShapeMismatch {
        /// Tensor name.
        tensor: String,
        /// What disagrees.
        msg: String,
    },
    /// The bits-per-weight budget cannot be met.
    Budget(crate::plan::BudgetError),
    /// Encoding a tensor failed.
    Encode {
        /// Tensor name.
        tensor: String,
        /// The error.
        err: crate::gsq::EncodeError,
    },
    /// The output exists and `--fresh` was not given, or a partial run used other options.
    Exists(String),
    /// The written pack did not verify.
    Verification(String),
    /// A model forward pass or evaluation failed (a weight missing or of the wrong shape for the
    /// architecture in config.json, or an unsupported architecture).
    Model {
        /// The model directory or pack.
        path: PathBuf,
        /// What failed.
        msg: String,
    },
}

impl CompressError {
    /// Process exit code: 1 for a failed verification, 2 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CompressError::Verification(_) => 1,
            _ => 2,
        }
    }
}

impl fmt::Display for CompressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompressError::Usage(m) => write!(f, "{m}"),
            CompressError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            CompressError::BadSource { path, msg } => write!(f, "{}: {msg}", path.display()),
            CompressError::UnsupportedDtype { tensor, dtype } => {
                write!(
                    f,
                    "tensor {tensor}: dtype {dtype} cannot be quantized (F32, F16 or BF16 only); keep it verbatim with --skip"
                )
            }
            CompressError::NonFinite { tensor, index } => {
                write!(f, "tensor {tensor}: weight {index} is NaN or infinite")
            }
            CompressError::ShapeMismatch { tensor, msg } => write!(f, "tensor {tensor}: {msg}"),
            CompressError::Budget(e) => write!(f, "{e}"),
            CompressError::Encode { tensor, err } => write!(f, "tensor {tensor}: {err}"),
            CompressError::Exists(m) => write!(f, "{m}"),
            CompressError::Verification(m) => write!(f, "verification failed: {m}"),
            CompressError::Model { path, msg } => write!(f, "{}: {msg}", path.display()),
        }
    }
}

impl std::error::Error for CompressError {}

/// [`CompressError::Io`] for `path`.
pub(crate) fn io(path: &Path, e: std::io::Error) -> CompressError {
    CompressError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// [`CompressError::BadSource`] for `path`.
pub(crate) fn bad(path: &Path, msg: impl Into<String>) -> CompressError {
    CompressError::BadSource {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}
