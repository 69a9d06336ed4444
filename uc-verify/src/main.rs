//! `uc-verify`: validates and fully decodes uc records, printing a receipt.
//!
//! Exit codes: 0 every input verified, 1 verification failed, 2 usage or I/O error.

use clap::Parser;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

/// Verify uc pack v0.3 records: structure and CRC (spec ), a full decode of every element, and
/// the SHA-256 of the reconstruction (recon_sha256).
///
/// This version verifies standalone record files (`.ucr`, the raw bytes of one record). Verifying a
/// whole pack directory (safetensors files, manifest and file digests) is not implemented yet and
/// is reported as a usage error.
#[derive(Parser, Debug)]
#[command(name = "uc-verify", version, about, long_about)]
struct Cli {
    /// Record files to verify.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print one JSON receipt on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut results = Vec::new();
    let mut failed = false;
    for path in &cli.files {
        if path.is_dir() {
            eprintln!(
                "uc-verify: {}: is a directory; verifying pack directories is not implemented yet (pass .ucr record files)",
                path.display()
            );
            return ExitCode::from(2);
        }
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("uc-verify: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        match uc_verify::verify_record(&bytes) {
            Ok(r) => results.push(json!({
                "file": path.display().to_string(),
                "ok": true,
                "shape": r.shape,
                "bits": r.bits,
                "overlay_rank": r.overlay_rank,
                "elements": r.n,
                "record_len": r.record_len,
                "crc32": format!("{:08x}", r.crc32),
                "recon_sha256": r.recon_sha256,
            })),
            Err(e) => {
                failed = true;
                results.push(json!({
                    "file": path.display().to_string(),
                    "ok": false,
                    "error": e.kind.name(),
                    "clause": e.clause(),
                    "offset": e.offset,
                    "message": e.to_string(),
                }));
            }
        }
    }
    if cli.json {
        let receipt = json!({
            "tool": "uc-verify",
            "tool_version": env!("CARGO_PKG_VERSION"),
            "format_version": "0.3",
            "verified": !failed,
            "records": results,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&receipt).expect("JSON values serialise")
        );
    } else {
        for r in &results {
            if r["ok"] == true {
                println!(
                    "OK    {}  shape {}  bits {}  rank {}  recon_sha256 {}",
                    r["file"].as_str().unwrap_or(""),
                    r["shape"],
                    r["bits"],
                    r["overlay_rank"],
                    r["recon_sha256"].as_str().unwrap_or("")
                );
            } else {
                println!(
                    "FAIL  {}  {} at byte offset {} (spec {})",
                    r["file"].as_str().unwrap_or(""),
                    r["error"].as_str().unwrap_or(""),
                    r["offset"],
                    r["clause"].as_str().unwrap_or("")
                );
            }
        }
    }
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}
