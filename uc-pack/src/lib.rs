//! # uc-pack: the pack directory, read and written
//!
//! Everything about a uc pack that is not a single record (records are `uc-format` and
//! `uc-decode`): the strict safetensors reader and the aligned planner, the manifest types and the
//! hostile-input manifest check, the names of a pack's files, the digests of reconstructions, the
//! pack writer, and the one file-system layer every command writes through. The verifier
//! (`uc-verify`), the encoder (`uc-encode`) and the conformance suite build on it; it has no
//! encoder code.
//!
//! ## Reading
//! - [`safetensors`]: strict header parser ([`safetensors::parse_header`], every issue with its byte
//!   offset) and the 64-byte aligned layout planner of.
//! - [`manifest`]: [`manifest::Manifest`] (typed, serialised deterministically) and
//!   [`manifest::check_manifest`] (the schema's rules on untrusted JSON, member by member).
//! - [`layout`]: file names of single-file and sharded packs.
//! - [`digest`]: `recon_sha256`, the streaming reconstruction with the overlay merged, `rel_l2`.
//!
//! ## Writing
//! - [`writer::PackWriter`]: records and verbatim tensors in, a complete pack out, atomically.
//! - [`fs`]: atomic files, staged directories, the rule of what an output may replace.
//!
//! ## Support
//! [`env`] (the environment recorded in provenance), [`time`] (RFC 3339 UTC), [`jsonscan`]
//! (duplicate-key detection for untrusted JSON).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod digest;
pub mod env;
pub mod fs;
pub mod jsonscan;
pub mod layout;
pub mod manifest;
pub mod safetensors;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod text;
pub mod time;
pub mod writer;

pub use digest::{ErrorStats, for_each_reconstructed, hex, recon_sha256, recon_sha256_of};
pub use safetensors::Dtype;
pub use writer::{PackSummary, PackWriteError, PackWriter, WriterOptions};
