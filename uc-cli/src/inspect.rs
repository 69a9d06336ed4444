//! `uc inspect`: a pack's manifest summary and tensors.

use crate::outln;
use serde_json::json;
use std::path::PathBuf;
use uc_encode::error::CompressError;
use uc_encode::unpack::inspect;

/// Options of `uc inspect`.
#[derive(clap::Args)]
pub struct Opts {
    /// Pack directory.
    pub pack: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `uc inspect`.
pub fn run(opts: Opts, out: &mut String) -> Result<(), CompressError> {
    let Opts { pack, json } = opts;
    let (rows, man) = inspect(&pack)?;
    if json {
        let v = json!({
            "tensors": rows.iter().map(|r| json!({"name": r.name, "file": r.file, "dtype": r.dtype, "shape": r.shape,
                "bits": r.bits, "rank": r.rank, "bytes": r.bytes, "rel_l2": r.rel_l2})).collect::<Vec<_>>(),
            "manifest": man,
        });
        outln!(out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    if let Some(m) = &man {
        for k in [
            "model_id",
            "base_model",
            "method",
            "method_version",
            "format_version",
            "bpw",
            "size_bytes",
            "license",
            "created_at",
            "tooling_version",
        ] {
            if let Some(v) = m.get(k).filter(|v| !v.is_null()) {
                outln!(
                    out,
                    "{k:<16} {}",
                    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
                );
            }
        }
        outln!(out, "");
    } else {
        outln!(out, "(no ultracompress.json manifest)\n");
    }
    outln!(
        out,
        "{:<56} {:>6} {:>14} {:>4} {:>4} {:>11} {:>9}",
        "tensor",
        "dtype",
        "shape",
        "bits",
        "rank",
        "bytes",
        "rel_l2"
    );
    for r in &rows {
        outln!(
            out,
            "{:<56} {:>6} {:>14} {:>4} {:>4} {:>11} {:>9}",
            r.name,
            r.dtype,
            format!("{:?}", r.shape),
            r.bits.map(|b| b.to_string()).unwrap_or_else(|| "-".into()),
            r.rank,
            r.bytes,
            r.rel_l2.map(|v| format!("{v:.5}")).unwrap_or_else(|| "-".into())
        );
    }
    Ok(())
}
