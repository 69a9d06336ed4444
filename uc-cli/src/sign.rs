//! `uc sign`: an OpenSSF Model Signing (OMS) v1.0 signature over every file of a pack.

use crate::outln;
use std::path::PathBuf;
use uc_encode::error::CompressError;
use uc_encode::sign::{SignSpec, sign_pack};

/// Options of `uc sign`.
#[derive(clap::Args)]
pub struct Opts {
    /// Pack directory.
    pub pack: PathBuf,
    /// Private key, PEM (PKCS#8 `PRIVATE KEY`, or SEC1 `EC PRIVATE KEY`): ECDSA P-256 or Ed25519.
    /// Encrypted keys are refused (decrypt with `openssl pkcs8`). Never printed or logged.
    #[arg(long, value_name = "KEY.pem")]
    pub key: PathBuf,
    /// The signing certificate (first) and its chain, PEM, one or more files: the certificate
    /// method. Without it: the key method (verified with the public key).
    #[arg(long, value_name = "CERT.pem", num_args = 1..)]
    pub certificate_chain: Vec<PathBuf>,
    /// Where to write the signature, replaced atomically [default: PACK/model.sig, where OMS
    /// tools look for it].
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `uc sign`.
pub fn run(opts: Opts, out: &mut String) -> Result<(), CompressError> {
    let spec = SignSpec::load(&opts.key, &opts.certificate_chain)?;
    let mut inputs: Vec<&std::path::Path> = vec![&opts.key];
    inputs.extend(opts.certificate_chain.iter().map(PathBuf::as_path));
    let s = sign_pack(&opts.pack, opts.output.as_deref(), &spec, &inputs)?;
    if opts.json {
        outln!(out, "{}", serde_json::to_string_pretty(&s).unwrap_or_default());
    } else {
        outln!(out, "signed      {}", s.signature.display());
        outln!(out, "method      {} ({})", s.method, s.algorithm);
        outln!(out, "key id      {}", s.key_id);
        if let Some(subj) = &s.subject {
            outln!(out, "certificate {subj}");
        }
        outln!(
            out,
            "files       {} (every file of the pack, manifest included)",
            s.files
        );
        outln!(out, "fingerprint {}", s.fingerprint);
    }
    Ok(())
}
