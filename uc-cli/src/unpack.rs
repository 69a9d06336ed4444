//! `uc unpack`: a pack decoded into a standard safetensors model.

use crate::outln;
use crate::output::human;
use clap::ValueEnum;
use serde_json::json;
use std::path::PathBuf;
use uc_encode::error::CompressError;
use uc_encode::unpack::{DecodeDevice, OutDtype, UnpackOptions, unpack};

/// dtype of decoded tensors.
#[derive(Clone, Copy, ValueEnum)]
pub enum DtypeArg {
    /// binary32.
    F32,
    /// binary16.
    F16,
    /// bfloat16.
    Bf16,
}

/// Where records are decoded.
#[derive(Clone, Copy, ValueEnum)]
pub enum DeviceArg {
    /// The CPU decoder (uc-decode).
    Cpu,
    /// A GPU through wgpu (needs a build with the cargo feature `wgpu`).
    Wgpu,
}

/// Options of `uc unpack`.
#[derive(clap::Args)]
pub struct Opts {
    /// Pack directory.
    pub pack: PathBuf,
    /// Output directory.
    #[arg(long)]
    pub output_dir: PathBuf,
    /// dtype of decoded tensors.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: DtypeArg,
    /// Add the low-rank overlay U·V to the decoded weights (reference order of spec ).
    #[arg(long)]
    pub merge_overlay: bool,
    /// Decoder device: cpu, or wgpu (a GPU; needs a build with `--features wgpu`).
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceArg,
    /// Replace an existing output directory.
    #[arg(long)]
    pub fresh: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `uc unpack`.
pub fn run(opts: Opts, out: &mut String) -> Result<(), CompressError> {
    let Opts {
        pack,
        output_dir,
        dtype,
        merge_overlay,
        device,
        fresh,
        json,
    } = opts;
    let device = match device {
        DeviceArg::Cpu => DecodeDevice::Cpu,
        DeviceArg::Wgpu => DecodeDevice::Wgpu,
    };
    let dtype = match dtype {
        DtypeArg::F32 => OutDtype::F32,
        DtypeArg::F16 => OutDtype::F16,
        DtypeArg::Bf16 => OutDtype::Bf16,
    };
    let s = unpack(&UnpackOptions {
        pack,
        output_dir: output_dir.clone(),
        dtype,
        merge_overlay,
        overwrite: fresh,
        device,
    })?;
    if json {
        let v = json!({"output_dir": output_dir.display().to_string(), "decoded": s.decoded, "copied": s.copied,
                "digests_checked": s.digests_checked, "bytes_out": s.bytes_out});
        outln!(out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        outln!(
            out,
            "unpacked {} records ({} recon_sha256 checked) and copied {} tensors into {} ({})",
            s.decoded,
            s.digests_checked,
            s.copied,
            output_dir.display(),
            human(s.bytes_out)
        );
    }
    Ok(())
}
