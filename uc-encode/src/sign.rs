//! Signing a pack (OMS v1.0, through `uc-sign`): `uc sign`, and `uc compress --sign-key`, which
//! signs the pack in the work directory before installing it so that the signature appears with
//! the pack, atomically.
//!
//! A pack is signed only after it verifies: the digests the signature lists are the ones the
//! verification computed (every file, manifest included), so that hashing is done once.

use crate::error::CompressError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uc_sign::{Certificate, PrivateKey, Resource, SIGNATURE_NAME};
use zeroize::Zeroizing;

/// Largest key or certificate file read.
const MAX_PEM_LEN: u64 = 1 << 20;

/// What to sign with: the key method, or the certificate method when `chain` is not empty.
#[derive(Debug, Clone)]
pub struct SignSpec {
    /// The private key (never logged: its `Debug` prints the key id only).
    pub key: Arc<PrivateKey>,
    /// The signing certificate first, then its chain; empty for the key method.
    pub chain: Vec<Certificate>,
}

/// Reads a PEM file; the buffer is wiped when dropped (it may hold a private key).
fn read_pem(path: &Path) -> Result<Zeroizing<Vec<u8>>, CompressError> {
    uc_pack::fs::read_capped(path, MAX_PEM_LEN)
        .map(Zeroizing::new)
        .map_err(|e| CompressError::Sign {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })
}

impl SignSpec {
    /// Reads the key (PKCS#8 or SEC1 PEM) and the certificate files (PEM, one or more certificates
    /// each; the first certificate is the signing certificate).
    pub fn load(key: &Path, chain: &[PathBuf]) -> Result<Self, CompressError> {
        let text = read_pem(key)?;
        let text = std::str::from_utf8(&text).map_err(|_| CompressError::Sign {
            path: key.to_path_buf(),
            msg: "not a PEM text file".into(),
        })?;
        let k = PrivateKey::from_pem(text).map_err(|e| CompressError::Sign {
            path: key.to_path_buf(),
            msg: e.to_string(),
        })?;
        let mut certs = Vec::new();
        for c in chain {
            certs.extend(
                uc_sign::load_certificates(&read_pem(c)?).map_err(|e| CompressError::Sign {
                    path: c.clone(),
                    msg: e.to_string(),
                })?,
            );
        }
        Ok(SignSpec {
            key: Arc::new(k),
            chain: certs,
        })
    }
}

/// What a signature covers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SignSummary {
    /// The signature file written.
    pub signature: PathBuf,
    /// `key` or `certificate`.
    pub method: &'static str,
    /// `ecdsa-p256-sha256` or `ed25519`.
    pub algorithm: &'static str,
    /// The signing key's id (OMS hint).
    pub key_id: String,
    /// The signing certificate's subject (certificate method).
    pub subject: Option<String>,
    /// Files signed (manifest included).
    pub files: usize,
    /// The pack fingerprint of what was signed.
    pub fingerprint: String,
}

/// The bundle for a pack that verified (`report` from `uc_verify::verify_pack` of `dir`).
pub(crate) fn bundle_for(
    dir: &Path,
    report: &uc_verify::PackReport,
    spec: &SignSpec,
) -> Result<Vec<u8>, CompressError> {
    let internal = |msg: &str| CompressError::Internal { msg: msg.into() };
    let mut files = Vec::with_capacity(report.files.len() + 1);
    for f in &report.files {
        files.push(Resource {
            name: f.name.clone(),
            sha256: uc_sign::parse_hex32(&f.sha256).ok_or_else(|| internal("a file digest is not hex64"))?,
        });
    }
    let m = report
        .manifest_sha256
        .as_deref()
        .ok_or_else(|| internal("a verified pack without a manifest digest"))?;
    files.push(Resource {
        name: uc_pack::manifest::MANIFEST_NAME.into(),
        sha256: uc_sign::parse_hex32(m).ok_or_else(|| internal("the manifest digest is not hex64"))?,
    });
    let name = std::fs::canonicalize(dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "pack".into());
    uc_sign::sign(&name, &files, &spec.key, &spec.chain).map_err(|e| CompressError::Sign {
        path: dir.to_path_buf(),
        msg: e.to_string(),
    })
}

/// The summary of a signature made by [`bundle_for`].
pub(crate) fn summary(path: PathBuf, report: &uc_verify::PackReport, spec: &SignSpec) -> SignSummary {
    let public = spec.key.public();
    SignSummary {
        signature: path,
        method: if spec.chain.is_empty() { "key" } else { "certificate" },
        algorithm: spec.key.algorithm().name(),
        key_id: public.key_id(),
        subject: spec.chain.first().map(Certificate::subject),
        files: report.files.len() + 1,
        fingerprint: report.fingerprint.clone(),
    }
}

/// Verifies the pack at `dir` (every uc-verify check) and, if it verifies, signs it: the bundle is
/// written atomically at `output` (default `dir/model.sig`), replacing an older signature there
/// and nothing else (not a file that is not a Sigstore bundle, not a link, not one of `inputs`:
/// the key and certificate files). A pack that fails verification is not signed
/// ([`CompressError::Verification`], exit 1).
pub fn sign_pack(
    dir: &Path,
    output: Option<&Path>,
    spec: &SignSpec,
    inputs: &[&Path],
) -> Result<SignSummary, CompressError> {
    let out = output
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join(SIGNATURE_NAME));
    if out.is_dir() {
        return Err(CompressError::Usage(format!(
            "{}: is a directory, not a signature file",
            out.display()
        )));
    }
    uc_pack::fs::check_output(&out, uc_pack::fs::OutputKind::Signature, inputs, true)?;
    // Inside the pack, the signature is PACK/model.sig; any other file there would be
    // content that the manifest must list.
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let (Ok(d), Ok(p)) = (std::fs::canonicalize(dir), std::fs::canonicalize(parent)) {
        let is_root_sig = p == d && out.file_name().is_some_and(|n| n == SIGNATURE_NAME);
        if p.starts_with(&d) && !is_root_sig {
            return Err(CompressError::Usage(format!(
                "{}: a signature inside the pack must be {}/{SIGNATURE_NAME} (R-12.4); write it there or outside the pack",
                out.display(),
                dir.display()
            )));
        }
    }
    // An older model.sig being replaced is not part of the pack's content.
    let report = crate::write::verify_or_fail(dir, "refusing to sign a pack that does not verify: ")?;
    let bundle = bundle_for(dir, &report, spec)?;
    uc_pack::fs::write_atomic(&out, &bundle)?;
    Ok(summary(out, &report, spec))
}
