//! `uc-verify`: verifies a uc pack directory, or standalone record files, and writes a receipt.
//!
//! Exit codes: 0 verified, 1 verification failed, 2 usage or I/O error, 130 interrupted.

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use uc_pack::text::esc;
use uc_verify::{PackError, PackOptions, Progress};

/// Verify a uc pack v0.3 directory: the manifest (ultracompress.json) against its schema, the size
/// and SHA-256 of every file and the absence of unlisted files, every safetensors header, every
/// record (structure, CRC, full decode, recon_sha256 against the manifest) and the bit accounting.
///
/// Given record files (.ucr, the raw bytes of one record) instead of a directory, validates and
/// fully decodes each and prints its recon_sha256.
///
/// Exit codes: 0 verified, 1 verification failed, 2 usage or I/O error, 130 interrupted.
#[derive(Parser, Debug)]
#[command(name = "uc-verify", version, about, long_about)]
struct Cli {
    /// A pack directory, or one or more record files.
    #[arg(required = true, value_name = "PACK_DIR | FILE.ucr...")]
    paths: Vec<PathBuf>,
    /// Write a JSON receipt to FILE (replaced atomically), or to standard output with "-" (the
    /// human-readable report then goes to standard error).
    #[arg(long, value_name = "FILE|-")]
    json: Option<PathBuf>,
    /// Source model directory (safetensors, F32/F16/BF16): report each quantized tensor's relative
    /// L2 and largest absolute reconstruction error against it (pack mode only).
    #[arg(long, value_name = "SOURCE_DIR")]
    against: Option<PathBuf>,
    /// Print only failures and the verdict, and no progress bar.
    #[arg(short, long)]
    quiet: bool,
    /// Decoder of the recon_sha256 checks: cpu, or wgpu (a GPU; needs a build with
    /// `--features wgpu`). With wgpu, record files are decoded on both and must agree.
    #[arg(long, default_value = "cpu", value_name = "cpu|wgpu")]
    device: String,
    /// Also verify the pack's OMS signature (OpenSSF Model Signing v1.0, as written by `uc sign` or
    /// `model_signing sign`): the bundle, its signature, and that every file of the pack, manifest
    /// included, is signed with its SHA-256 and none is missing or added. Default with
    /// --public-key or --certificate-chain: PACK/model.sig.
    #[arg(long, value_name = "FILE")]
    signature: Option<PathBuf>,
    /// The signer's public key (PEM SubjectPublicKeyInfo; ECDSA P-256 or Ed25519): the key method.
    #[arg(long, value_name = "PUB.pem", conflicts_with = "certificate_chain")]
    public_key: Option<PathBuf>,
    /// Trusted root (and intermediate) certificates, PEM, one or more files: the certificate method.
    /// The bundle's chain must lead to one of them, valid at the signing certificate's notBefore.
    #[arg(long, value_name = "ROOT.pem", num_args = 1..)]
    certificate_chain: Vec<PathBuf>,
}

/// The signature options from the command line, or a usage error.
fn signature_options(cli: &Cli, dir: &Path) -> Result<Option<uc_verify::SignatureOptions>, String> {
    let read =
        |p: &Path| -> Result<Vec<u8>, String> { uc_pack::fs::read_capped(p, 1 << 20).map_err(|e| e.to_string()) };
    let trust = if let Some(k) = &cli.public_key {
        let text = read(k)?;
        let text = std::str::from_utf8(&text).map_err(|_| format!("{}: not a PEM text file", k.display()))?;
        Some(uc_sign::Trust::PublicKey(
            uc_sign::PublicKey::from_pem(text).map_err(|e| format!("{}: {e}", k.display()))?,
        ))
    } else if !cli.certificate_chain.is_empty() {
        let mut roots = Vec::new();
        for c in &cli.certificate_chain {
            roots.extend(uc_sign::load_certificates(&read(c)?).map_err(|e| format!("{}: {e}", c.display()))?);
        }
        Some(uc_sign::Trust::Roots(roots))
    } else {
        None
    };
    match (trust, &cli.signature) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err("--signature needs --public-key PUB.pem or --certificate-chain ROOT.pem".into()),
        (Some(trust), sig) => Ok(Some(uc_verify::SignatureOptions {
            path: sig.clone().unwrap_or_else(|| dir.join(uc_sign::SIGNATURE_NAME)),
            trust,
        })),
    }
}

/// The `--device` decoder: `None` for the CPU.
struct Device(Option<Box<uc_verify::DecodeFn<'static>>>);

impl Device {
    fn new(name: &str) -> Result<Self, String> {
        match name {
            "cpu" => Ok(Device(None)),
            #[cfg(feature = "wgpu")]
            "wgpu" => {
                let gpu = uc_decode_wgpu::GpuDecoder::new_default().map_err(|e| format!("--device wgpu: {e}"))?;
                Ok(Device(Some(Box::new(move |rec: &uc_decode::Record<'_>| {
                    gpu.decode_to_vec(rec).map_err(|e| format!("GPU decode: {e}"))
                }))))
            }
            #[cfg(not(feature = "wgpu"))]
            "wgpu" => Err("--device wgpu: this build has no GPU decoder; rebuild with \
                 `cargo build --release -p uc-verify --features wgpu`"
                .into()),
            other => Err(format!("--device {other}: unknown decoder device (cpu or wgpu)")),
        }
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn usage(msg: &str) -> ExitCode {
    eprintln!("uc-verify: {}", esc(msg));
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // First Ctrl-C: stop cleanly (exit 130, no receipt written); a second one exits at once.
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    let device = match Device::new(&cli.device) {
        Ok(d) => d,
        Err(e) => return usage(&e),
    };
    let dirs = cli.paths.iter().filter(|p| p.is_dir()).count();
    if dirs > 0 {
        if cli.paths.len() != 1 {
            return usage("give one pack directory, or record files, not both or several directories");
        }
        pack_mode(&cli, &cli.paths[0], &device)
    } else {
        if cli.against.is_some() {
            return usage("--against needs a pack directory");
        }
        if cli.signature.is_some() || cli.public_key.is_some() || !cli.certificate_chain.is_empty() {
            return usage("--signature, --public-key and --certificate-chain need a pack directory");
        }
        record_mode(&cli, &device)
    }
}

/// Where human-readable output goes: stdout, or stderr when the receipt takes stdout.
fn out(cli: &Cli) -> Box<dyn Write> {
    if cli.json.as_deref() == Some(Path::new("-")) {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    }
}

/// Writes the receipt: to stdout for "-", else atomically through uc-pack's file-system layer
/// (temporary sibling, sync, rename), so that no partial receipt ever sits at the final path. The
/// receipt may replace a regular file only, never a directory, and never lies inside the pack
/// (`inputs`), where it would be an unlisted file.
fn write_receipt(target: &Path, receipt: &Value, inputs: &[&Path]) -> Result<(), String> {
    let mut text = serde_json::to_string_pretty(receipt).map_err(|e| e.to_string())?;
    text.push('\n');
    if target == Path::new("-") {
        let mut o = std::io::stdout().lock();
        return o
            .write_all(uc_pack::text::json_safe(&text).as_bytes())
            .and_then(|_| o.flush())
            .map_err(|e| e.to_string());
    }
    if target.file_name().is_none() {
        return Err(format!("{}: not a file name", target.display()));
    }
    uc_pack::fs::check_output(target, uc_pack::fs::OutputKind::File, inputs, true).map_err(|e| e.to_string())?;
    uc_pack::fs::write_atomic(target, text.as_bytes()).map_err(|e| e.to_string())
}

fn pack_mode(cli: &Cli, dir: &Path, device: &Device) -> ExitCode {
    let bar = if !cli.quiet && std::io::stderr().is_terminal() {
        let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{msg:>18} [{bar:40}] {percent:>3}% {elapsed_precise}") {
            b.set_style(style.progress_chars("=> "));
        }
        Some(b)
    } else {
        None
    };
    let on_progress = |p: Progress| {
        if let Some(b) = &bar {
            match p {
                Progress::Stage { name, total } => {
                    b.set_message(name);
                    b.set_length(total);
                    b.set_position(0);
                }
                Progress::Advance(k) => b.inc(k),
            }
        }
    };
    let sig = match signature_options(cli, dir) {
        Ok(s) => s,
        Err(e) => return usage(&e),
    };
    let opts = PackOptions {
        signature: sig.as_ref(),
        against: cli.against.clone(),
        cancel: Some(&INTERRUPTED),
        progress: Some(&on_progress),
        decode: device.0.as_deref(),
        ..PackOptions::default()
    };
    let result = uc_verify::verify_pack(dir, &opts);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let report = match result {
        Ok(r) => r,
        Err(PackError::Interrupted) => {
            eprintln!("uc-verify: interrupted");
            return ExitCode::from(130);
        }
        Err(e) => return usage(&e.to_string()),
    };
    if INTERRUPTED.load(Ordering::SeqCst) {
        eprintln!("uc-verify: interrupted");
        return ExitCode::from(130);
    }
    let mut o = out(cli);
    let pack_name = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let _ = writeln!(o, "pack {}: fingerprint {}", esc(&pack_name), report.fingerprint);
    for c in &report.checks {
        if !cli.quiet || !c.ok {
            let _ = writeln!(o, "{c}");
        }
    }
    if cli.against.is_some() && !cli.quiet {
        let w = report.tensors.iter().map(|t| t.name.len()).max().unwrap_or(6).max(6);
        let _ = writeln!(o, "\n{:<w$}  {:>12}  {:>12}  source", "tensor", "rel_l2", "max_abs");
        for t in &report.tensors {
            if let Some(a) = &t.against {
                let rel = a.rel_l2.map_or("undefined".to_string(), |x| format!("{x:.6e}"));
                let _ = writeln!(
                    o,
                    "{:<w$}  {rel:>12}  {:>12.6e}  {} ({})",
                    esc(&t.name),
                    a.max_abs,
                    esc(&a.source_file),
                    a.source_dtype
                );
            }
        }
    }
    let failed = report.failures().count();
    if report.verified {
        let signed = match &report.signature {
            Some(s) => format!(
                ", signature valid ({} {})",
                s.method.unwrap_or(""),
                s.algorithm.unwrap_or("")
            ),
            None => String::new(),
        };
        let _ = writeln!(
            o,
            "VERIFIED: {} checks passed, {} records, {:.4} bits per quantized weight{signed}",
            report.checks.len(),
            report.tensors.len(),
            report.accounting.bpw()
        );
    } else {
        let _ = writeln!(o, "FAILED: {failed} of {} checks failed", report.checks.len());
    }
    if let Some(target) = &cli.json {
        let receipt = report.receipt(&pack_name, &uc_pack::time::now_rfc3339_utc(), cli.against.is_some());
        if let Err(e) = write_receipt(target, &receipt, &[dir]) {
            return usage(&format!("cannot write the receipt: {e}"));
        }
    }
    if report.verified {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn record_mode(cli: &Cli, device: &Device) -> ExitCode {
    let mut results = Vec::new();
    let mut failed = false;
    for path in &cli.paths {
        if INTERRUPTED.load(Ordering::SeqCst) {
            eprintln!("uc-verify: interrupted");
            return ExitCode::from(130);
        }
        // A pack's own files given instead of its directory is a usage mistake (exit 2), not a
        // record that failed to verify.
        if matches!(path.extension().and_then(|e| e.to_str()), Some("safetensors" | "json")) {
            return usage(&format!(
                "{}: a file of a pack, not a record; give the pack directory (uc-verify DIR) or record files (.ucr)",
                path.display()
            ));
        }
        // Only a regular file, read to its size (a FIFO would block, /dev/zero never end).
        let bytes = match uc_pack::fs::read_capped(path, u64::MAX) {
            Ok(b) => b,
            Err(e) => return usage(&e.to_string()),
        };
        let report = uc_verify::verify_record(&bytes);
        // With --device wgpu, the GPU's decode must have the CPU's digest.
        if let (Ok(r), Some(decode)) = (&report, &device.0) {
            let gpu = uc_decode::Record::parse(&bytes)
                .map_err(|e| e.to_string())
                .and_then(|rec| decode(&rec))
                .map(|v| uc_pack::hex(&uc_pack::recon_sha256_of(&v)));
            match gpu {
                Ok(d) if d == r.recon_sha256 => {}
                Ok(d) => {
                    failed = true;
                    results.push(json!({
                        "file": path.display().to_string(),
                        "ok": false,
                        "error": "device_mismatch",
                        "clause": "R-7.1",
                        "offset": 0,
                        "message": format!("the {} decoder gives recon_sha256 {d}, the CPU {}", cli.device, r.recon_sha256),
                    }));
                    continue;
                }
                Err(e) => return usage(&format!("{}: {e}", path.display())),
            }
        }
        match report {
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
    let mut o = out(cli);
    for r in &results {
        let file = esc(r["file"].as_str().unwrap_or(""));
        if r["ok"] == true {
            if !cli.quiet {
                let _ = writeln!(
                    o,
                    "OK    {file}  shape {}  bits {}  rank {}  recon_sha256 {}",
                    r["shape"],
                    r["bits"],
                    r["overlay_rank"],
                    r["recon_sha256"].as_str().unwrap_or("")
                );
            }
        } else if r["error"] == "device_mismatch" {
            let _ = writeln!(o, "FAIL  {file}  {}", esc(r["message"].as_str().unwrap_or("")));
        } else {
            let _ = writeln!(
                o,
                "FAIL  {file}  {} at byte offset {} (spec {})",
                r["error"].as_str().unwrap_or(""),
                r["offset"],
                r["clause"].as_str().unwrap_or("")
            );
        }
    }
    if let Some(target) = &cli.json {
        let receipt = json!({
            "tool": "uc-verify",
            "tool_version": env!("CARGO_PKG_VERSION"),
            "format_version": "0.3",
            "mode": "records",
            "time": uc_pack::time::now_rfc3339_utc(),
            "host": uc_pack::env::host_fingerprint(),
            "verified": !failed,
            "records": results,
        });
        if let Err(e) = write_receipt(target, &receipt, &[]) {
            return usage(&format!("cannot write the receipt: {e}"));
        }
    }
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}
