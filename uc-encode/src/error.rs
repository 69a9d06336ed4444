//! The encoder's error: every variant says whose fault it is (the options, the source model, the
//! file system, the pack writer, the model's numerics, verification) and names the file, tensor or
//! option it is about. Library messages name option *fields* ([`CompressError::Options`]); the CLI
//! shows them as its flags.
//!
//! [`CompressError::keeps_journal`] decides what an interrupted `uc compress` leaves for its rerun:
//! an error that the same command would meet again (a NaN weight, an impossible budget, an
//! unsupported architecture) discards the journal; one that may pass (I/O, a full disk, a failed
//! numeric step, another process holding the work directory) keeps it.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a command failed. The CLI decides the exit codes (`uc-cli`: 1 for a failed verification,
/// 2 for everything else).
#[derive(Debug)]
pub enum CompressError {
    /// An option's value is not allowed: `option` is the option field (`"bpw"`, `"calibration.ctx"`).
    Options {
        /// The option field.
        option: &'static str,
        /// What is wrong with its value.
        msg: String,
    },
    /// A usage error of the command line itself (the CLI's own messages, which name its flags).
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
    /// The output path may not be written (it exists, overlaps an input, or is not this command's).
    Output(uc_pack::fs::OutputError),
    /// The work directory holds an unfinished run with other inputs or options.
    OtherJob {
        /// The work directory.
        work: PathBuf,
    },
    /// Another process holds the work directory.
    Busy {
        /// The work directory.
        work: PathBuf,
        /// Who holds it (as written in its lock file).
        holder: String,
    },
    /// A journal file exists but is not of this version's schema.
    Journal {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The pack writer refused an input (a name, a record, a value).
    PackWrite(uc_pack::PackWriteError),
    /// The written pack did not verify.
    Verification(String),
    /// The model cannot be run: an unsupported architecture, a weight missing or of the wrong
    /// shape for the architecture in config.json, a tokenizer problem.
    Model {
        /// The model directory or pack.
        path: PathBuf,
        /// What failed.
        msg: String,
    },
    /// A numeric step failed while running the model (a forward or backward pass, an allocation
    /// inside it); a rerun may pass, so the journal is kept.
    Numerics {
        /// The model directory.
        path: PathBuf,
        /// What failed.
        msg: String,
    },
    /// A signing key or certificate could not be read or used, or the signature could not be made.
    Sign {
        /// The key, certificate or pack concerned.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A bug: an invariant of the encoder did not hold.
    Internal {
        /// What.
        msg: String,
    },
}

impl CompressError {
    /// Whether the journal stays valid after this error, so that rerunning the same command resumes
    /// (I/O, numerics, a busy or inconsistent work directory, a failed verification, a bug) rather
    /// than failing the same way again (the source or the options must change).
    pub fn keeps_journal(&self) -> bool {
        match self {
            CompressError::Io { .. }
            | CompressError::Numerics { .. }
            | CompressError::Busy { .. }
            | CompressError::OtherJob { .. }
            | CompressError::Journal { .. }
            | CompressError::Verification(_)
            | CompressError::Internal { .. } => true,
            CompressError::PackWrite(e) => matches!(e, uc_pack::PackWriteError::Io { .. }),
            CompressError::Options { .. }
            | CompressError::Sign { .. }
            | CompressError::Usage(_)
            | CompressError::BadSource { .. }
            | CompressError::UnsupportedDtype { .. }
            | CompressError::NonFinite { .. }
            | CompressError::ShapeMismatch { .. }
            | CompressError::Budget(_)
            | CompressError::Encode { .. }
            | CompressError::Output(_)
            | CompressError::Model { .. } => false,
        }
    }

    /// The message with option fields shown through `flag` (the CLI passes its field → flag map).
    pub fn display_with(&self, flag: &dyn Fn(&'static str) -> String) -> String {
        match self {
            CompressError::Options { option, msg } => format!("{}: {msg}", flag(option)),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for CompressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompressError::Options { option, msg } => write!(f, "option {option}: {msg}"),
            CompressError::Usage(m) => write!(f, "{m}"),
            CompressError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            CompressError::BadSource { path, msg } => write!(f, "{}: {msg}", path.display()),
            CompressError::UnsupportedDtype { tensor, dtype } => {
                write!(
                    f,
                    "tensor {tensor}: dtype {dtype} cannot be quantized (F32, F16 or BF16 only); keep it verbatim with a skip pattern"
                )
            }
            CompressError::NonFinite { tensor, index } => {
                write!(f, "tensor {tensor}: weight {index} is NaN or infinite")
            }
            CompressError::ShapeMismatch { tensor, msg } => write!(f, "tensor {tensor}: {msg}"),
            CompressError::Budget(e) => write!(f, "{e}"),
            CompressError::Encode { tensor, err } => write!(f, "tensor {tensor}: {err}"),
            CompressError::Output(e) => write!(f, "{e}"),
            CompressError::OtherJob { work } => write!(
                f,
                "{} holds an unfinished run with other inputs or options",
                work.display()
            ),
            CompressError::Busy { work, holder } => write!(
                f,
                "{} is in use by another run ({}); wait for it to finish",
                work.display(),
                if holder.is_empty() { "unknown process" } else { holder }
            ),
            CompressError::Journal { path, msg } => write!(
                f,
                "{}: {msg}; the work directory is from another version or was altered",
                path.display()
            ),
            CompressError::PackWrite(e) => write!(f, "writing the pack: {e}"),
            CompressError::Verification(m) => write!(f, "verification failed: {m}"),
            CompressError::Model { path, msg } => write!(f, "{}: {msg}", path.display()),
            CompressError::Numerics { path, msg } => write!(f, "{}: {msg}", path.display()),
            CompressError::Sign { path, msg } => write!(f, "{}: {msg}", path.display()),
            CompressError::Internal { msg } => write!(f, "internal error (please report): {msg}"),
        }
    }
}

impl std::error::Error for CompressError {}

impl From<uc_pack::fs::FsError> for CompressError {
    fn from(e: uc_pack::fs::FsError) -> Self {
        CompressError::Io {
            path: e.path,
            source: std::io::Error::new(e.source.kind(), format!("{}: {}", e.op, e.source)),
        }
    }
}

impl From<uc_pack::fs::OutputError> for CompressError {
    fn from(e: uc_pack::fs::OutputError) -> Self {
        CompressError::Output(e)
    }
}

impl From<uc_pack::fs::ReadError> for CompressError {
    fn from(e: uc_pack::fs::ReadError) -> Self {
        match e {
            uc_pack::fs::ReadError::Io(e) => e.into(),
            uc_pack::fs::ReadError::NotRegular(path) => CompressError::BadSource {
                path,
                msg: "not a regular file".into(),
            },
            uc_pack::fs::ReadError::TooLarge { path, size, cap } => CompressError::BadSource {
                path,
                msg: format!("{size} bytes, more than the {cap} accepted"),
            },
        }
    }
}

/// [`CompressError::Io`] for `path`.
pub fn io(path: &Path, e: std::io::Error) -> CompressError {
    CompressError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// [`CompressError::BadSource`] for `path`.
pub fn bad(path: &Path, msg: impl Into<String>) -> CompressError {
    CompressError::BadSource {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// [`CompressError::Options`] for the option field `option`.
pub fn opt(option: &'static str, msg: impl Into<String>) -> CompressError {
    CompressError::Options {
        option,
        msg: msg.into(),
    }
}
