//! Signed uc packs: OpenSSF Model Signing (OMS) v1.0 bundles.
//!
//! A signature is a Sigstore bundle (`application/vnd.dev.sigstore.bundle.v0.3+json`) holding a DSSE
//! envelope whose payload is an in-toto v1 statement with the OMS predicate
//! `https://model_signing/signature/v1.0`: the SHA-256 of every file of the model directory, by
//! relative path, and one subject whose digest is the SHA-256 over those digests in listed order.
//! The DSSE signature covers the pre-authentication encoding (PAE) of the payload. Two methods, as
//! the `model-signing` package (sigstore/model-transparency) implements them: **key** (the bundle
//! names the public key by its hint, the hex SHA-256 of its SPKI PEM) and **certificate** (the bundle
//! carries the signing certificate and its chain; the verifier is given the trusted roots).
//! Sigstore keyless bundles (transparency log, Fulcio) are not supported and are refused clearly.
//!
//! Parsing is strict where the bytes are not covered by the signature (the bundle's JSON): unknown
//! members, a second signature, a non-empty transparency log, non-canonical base64, certificates
//! that are not canonical DER or not on the path, and a key hint that names another key are errors,
//! so that no decoded value of a signature file can change without the verification failing, and
//! every single-bit flip of one is refused (the tests flip every bit). What stays free is what JSON
//! and ECDSA leave free without changing a value: whitespace, escapes in strings, a member given as
//! `null` or left out where it is optional (`keyid`, `hint`, `tlogEntries`), and an ECDSA signature's
//! `s` replaced by `n − s` (both verify; OMS's and OpenSSL's signers make either). The signed
//! statement is read as OMS says (unknown predicate members are ignored), but its resource names
//! are checked as paths (no `..`, no absolute path, no duplicates, not the signature file).
//! Cryptography is RustCrypto's (`p256`, `ed25519-dalek`, `x509-cert`); nothing here implements a
//! primitive.

#![forbid(unsafe_code)]

pub mod cert;
pub mod keys;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
pub use cert::{Certificate, load_certificates};
pub use keys::{Algorithm, PrivateKey, PublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The bundle media type OMS writes.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The DSSE payload type.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The OMS v1.0 predicate type.
pub const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";
/// The signature file's default name, at the root of the model directory.
pub const SIGNATURE_NAME: &str = "model.sig";
/// Largest signature file read (a bundle lists about 150 bytes per file).
pub const MAX_BUNDLE_LEN: u64 = 64 << 20;
/// Most resources one statement may list.
pub const MAX_RESOURCES: usize = 1 << 20;
/// Longest resource name.
pub const MAX_NAME_LEN: usize = 4096;

/// Why a signature could not be made or does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignError {
    /// A key could not be read or is of an unsupported kind.
    Key(String),
    /// The signature file is not a well-formed bundle (JSON, members, base64, media type).
    Bundle(String),
    /// The signed payload is not an OMS v1.0 statement.
    Statement(String),
    /// The signature does not verify, or the bundle names another key.
    Signature(String),
    /// A certificate is malformed, or the chain does not lead to a trusted root.
    Certificate(String),
    /// The bundle uses a feature of OMS or Sigstore this verifier does not implement.
    Unsupported(String),
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignError::Key(m) => write!(f, "key: {m}"),
            SignError::Bundle(m) => write!(f, "malformed signature bundle: {m}"),
            SignError::Statement(m) => write!(f, "signed statement: {m}"),
            SignError::Signature(m) => write!(f, "signature: {m}"),
            SignError::Certificate(m) => write!(f, "certificate: {m}"),
            SignError::Unsupported(m) => write!(f, "unsupported: {m}"),
        }
    }
}

impl std::error::Error for SignError {}

pub(crate) fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    b.iter().fold(String::with_capacity(b.len() * 2), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// Parses 64 lowercase hex digits (a SHA-256 as OMS and uc manifests write it).
pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// DSSE v1 pre-authentication encoding of an in-toto payload.
pub fn pae(payload: &[u8]) -> Vec<u8> {
    let mut v = format!("DSSEv1 {} {} {} ", PAYLOAD_TYPE.len(), PAYLOAD_TYPE, payload.len()).into_bytes();
    v.extend_from_slice(payload);
    v
}

// ---- Bundle JSON (not covered by the signature: parsed strictly) ----

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Bundle {
    media_type: String,
    verification_material: VerificationMaterial,
    dsse_envelope: Envelope,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct VerificationMaterial {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_key: Option<KeyHint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x509_certificate_chain: Option<CertChain>,
    #[serde(default)]
    tlog_entries: Vec<TlogEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyHint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CertChain {
    certificates: Vec<RawCert>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCert {
    raw_bytes: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Envelope {
    payload: String,
    payload_type: String,
    signatures: Vec<EnvSig>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvSig {
    sig: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keyid: Option<String>,
}

/// A transparency-log entry, skipped without building a tree (any entry is refused after parsing).
struct TlogEntry;

impl<'de> Deserialize<'de> for TlogEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| TlogEntry)
    }
}

impl Serialize for TlogEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Never written: a bundle made here has no transparency-log entry.
        s.serialize_unit()
    }
}

// ---- Statement (covered by the signature: read as OMS says) ----

#[derive(Serialize, Deserialize)]
struct Statement {
    #[serde(rename = "_type")]
    type_: String,
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    predicate: Predicate,
}

#[derive(Serialize, Deserialize)]
struct Subject {
    name: String,
    digest: SubjectDigest,
}

#[derive(Serialize, Deserialize)]
struct SubjectDigest {
    sha256: String,
}

#[derive(Serialize, Deserialize)]
struct Predicate {
    serialization: Serialization,
    resources: Vec<ResourceJson>,
}

#[derive(Serialize, Deserialize)]
struct Serialization {
    method: String,
    hash_type: String,
    allow_symlinks: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ignore_paths: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct ResourceJson {
    algorithm: String,
    digest: String,
    name: String,
}

/// One signed file: its path relative to the model directory (`/`-separated) and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Relative path.
    pub name: String,
    /// SHA-256 of the file's bytes.
    pub sha256: [u8; 32],
}

/// How a verified bundle was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// The key method: a bare public key.
    Key,
    /// The certificate method: a signing certificate chained to a trusted root.
    Certificate {
        /// The signing certificate's subject (RFC 4514).
        subject: String,
        /// The subject of the trusted root the chain ends at.
        root: String,
    },
}

/// What a valid bundle says.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Method and, for certificates, who.
    pub method: Method,
    /// Algorithm of the signing key.
    pub algorithm: Algorithm,
    /// The signing key's id (OMS hint).
    pub key_id: String,
    /// The statement's subject name (the model directory's name when signed; informative only).
    pub model_name: String,
    /// The subject digest: SHA-256 over the listed digests.
    pub root_digest: [u8; 32],
    /// Every signed file, in listed order.
    pub resources: Vec<Resource>,
    /// The statement's `ignore_paths` (informative: a uc pack has no unsigned file but the signature).
    pub ignore_paths: Vec<String>,
}

/// What the verifier trusts.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The key method: this public key.
    PublicKey(PublicKey),
    /// The certificate method: these trust anchors.
    Roots(Vec<Certificate>),
}

/// Checks a resource name: a relative `/`-separated path without empty, `.` or `..` components,
/// backslashes or control characters.
pub fn check_resource_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an empty resource name".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "a resource name of {} bytes (at most {MAX_NAME_LEN})",
            name.len()
        ));
    }
    if name.starts_with('/') {
        return Err(format!("resource name {name:?} is an absolute path"));
    }
    if name.chars().any(|c| c == '\\' || c.is_control()) {
        return Err(format!(
            "resource name {name:?} holds a backslash or a control character"
        ));
    }
    for c in name.split('/') {
        if c.is_empty() || c == "." || c == ".." {
            return Err(format!(
                "resource name {name:?} has a {:?} component (path traversal)",
                c
            ));
        }
    }
    Ok(())
}

fn root_digest<'a>(digests: impl Iterator<Item = &'a [u8; 32]>) -> [u8; 32] {
    let mut h = Sha256::new();
    for d in digests {
        h.update(d);
    }
    h.finalize().into()
}

/// Builds the bundle for `files` (relative paths with their SHA-256; sorted here, as OMS sorts)
/// signed with `key`. `chain` empty: the key method; otherwise the certificate method with
/// `chain[0]` the signing certificate (its key must be `key`'s public half) and the rest its chain.
/// Deterministic: the same files, key and chain give the same bytes.
pub fn sign(
    model_name: &str,
    files: &[Resource],
    key: &PrivateKey,
    chain: &[Certificate],
) -> Result<Vec<u8>, SignError> {
    let mut sorted: Vec<&Resource> = files.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut seen = BTreeSet::new();
    for r in &sorted {
        check_resource_name(&r.name).map_err(SignError::Statement)?;
        if r.name == SIGNATURE_NAME {
            return Err(SignError::Statement(format!("{SIGNATURE_NAME} cannot sign itself")));
        }
        if !seen.insert(r.name.as_str()) {
            return Err(SignError::Statement(format!("file {:?} listed twice", r.name)));
        }
    }
    let statement = Statement {
        type_: STATEMENT_TYPE.into(),
        subject: vec![Subject {
            name: model_name.into(),
            digest: SubjectDigest {
                sha256: hex(&root_digest(sorted.iter().map(|r| &r.sha256))),
            },
        }],
        predicate_type: PREDICATE_TYPE.into(),
        predicate: Predicate {
            serialization: Serialization {
                method: "files".into(),
                hash_type: "sha256".into(),
                allow_symlinks: false,
                ignore_paths: vec![SIGNATURE_NAME.into()],
            },
            resources: sorted
                .iter()
                .map(|r| ResourceJson {
                    algorithm: "sha256".into(),
                    digest: hex(&r.sha256),
                    name: r.name.clone(),
                })
                .collect(),
        },
    };
    let payload = serde_json::to_vec_pretty(&statement).map_err(|e| SignError::Statement(e.to_string()))?;
    let public = key.public();
    let verification_material = if chain.is_empty() {
        VerificationMaterial {
            public_key: Some(KeyHint {
                hint: Some(public.key_id()),
            }),
            x509_certificate_chain: None,
            tlog_entries: Vec::new(),
        }
    } else {
        cert::check_path(chain)?;
        let leaf_key = chain[0].public_key()?;
        if leaf_key != public {
            return Err(SignError::Certificate(format!(
                "the signing certificate ({}) holds key {}, not the signing key {}",
                chain[0].subject(),
                leaf_key.key_id(),
                public.key_id()
            )));
        }
        VerificationMaterial {
            public_key: None,
            x509_certificate_chain: Some(CertChain {
                certificates: chain
                    .iter()
                    .map(|c| RawCert {
                        raw_bytes: B64.encode(c.der()),
                    })
                    .collect(),
            }),
            tlog_entries: Vec::new(),
        }
    };
    let sig = key.sign(&pae(&payload));
    let bundle = Bundle {
        media_type: BUNDLE_MEDIA_TYPE.into(),
        verification_material,
        dsse_envelope: Envelope {
            payload: B64.encode(&payload),
            payload_type: PAYLOAD_TYPE.into(),
            signatures: vec![EnvSig {
                sig: B64.encode(&sig),
                keyid: Some(String::new()),
            }],
        },
    };
    serde_json::to_vec(&bundle).map_err(|e| SignError::Bundle(e.to_string()))
}

fn b64(field: &str, s: &str) -> Result<Vec<u8>, SignError> {
    // The standard engine refuses non-canonical trailing bits and missing padding, so that two
    // different texts never decode to the same bytes.
    B64.decode(s)
        .map_err(|e| SignError::Bundle(format!("{field} is not canonical base64 ({e})")))
}

/// Verifies a bundle's bytes against `trust`: the bundle's structure, the certificate chain (the
/// certificate method), the DSSE signature over the payload's PAE, and the OMS statement (types,
/// serialization, resource names, the subject digest). The files themselves are compared by
/// [`compare_files`].
pub fn verify(bytes: &[u8], trust: &Trust) -> Result<Verified, SignError> {
    if bytes.len() as u64 > MAX_BUNDLE_LEN {
        return Err(SignError::Bundle(format!(
            "{} bytes, more than {MAX_BUNDLE_LEN}",
            bytes.len()
        )));
    }
    let bundle: Bundle = serde_json::from_slice(bytes).map_err(|e| SignError::Bundle(format!("{e}")))?;
    if bundle.media_type != BUNDLE_MEDIA_TYPE {
        return Err(SignError::Bundle(format!(
            "mediaType is {:?}, expected {BUNDLE_MEDIA_TYPE:?}",
            bundle.media_type
        )));
    }
    let vm = &bundle.verification_material;
    if !vm.tlog_entries.is_empty() {
        return Err(SignError::Unsupported(
            "transparency-log entries (Sigstore keyless signing); only the key and certificate methods are verified"
                .into(),
        ));
    }
    let env = &bundle.dsse_envelope;
    if env.payload_type != PAYLOAD_TYPE {
        return Err(SignError::Bundle(format!(
            "payloadType is {:?}, expected {PAYLOAD_TYPE:?}",
            env.payload_type
        )));
    }
    if env.signatures.len() != 1 {
        return Err(SignError::Bundle(format!(
            "the envelope holds {} signatures, expected exactly one",
            env.signatures.len()
        )));
    }
    // Who signed: the key, or the certificate chain's leaf.
    let (key, method) = match (&vm.public_key, &vm.x509_certificate_chain, trust) {
        (Some(hint), None, Trust::PublicKey(pk)) => {
            if let Some(h) = &hint.hint {
                let id = pk.key_id();
                if *h != id {
                    return Err(SignError::Signature(format!(
                        "the bundle names key {h:?}, the given public key is {id}"
                    )));
                }
            }
            (pk.clone(), Method::Key)
        }
        (None, Some(chain), Trust::Roots(roots)) => {
            if chain.certificates.is_empty() {
                return Err(SignError::Bundle("x509CertificateChain holds no certificate".into()));
            }
            if chain.certificates.len() > cert::MAX_CHAIN {
                return Err(SignError::Bundle(format!(
                    "x509CertificateChain holds {} certificates, at most {}",
                    chain.certificates.len(),
                    cert::MAX_CHAIN
                )));
            }
            let certs = chain
                .certificates
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    Certificate::from_der(&b64(&format!("certificate {i}"), &c.raw_bytes)?)
                        .map_err(|e| SignError::Certificate(format!("certificate {i} of the bundle: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let (leaf_key, root) = cert::verify_chain(&certs, roots)?;
            (
                leaf_key,
                Method::Certificate {
                    subject: certs[0].subject(),
                    root,
                },
            )
        }
        (Some(_), None, Trust::Roots(_)) => {
            return Err(SignError::Signature(
                "the bundle was signed with the key method; verify it with a public key, not a certificate chain"
                    .into(),
            ));
        }
        (None, Some(_), Trust::PublicKey(_)) => {
            return Err(SignError::Signature(
                "the bundle was signed with the certificate method; verify it with the root certificate, not a public key"
                    .into(),
            ));
        }
        (Some(_), Some(_), _) => {
            return Err(SignError::Bundle(
                "verificationMaterial holds both publicKey and x509CertificateChain".into(),
            ));
        }
        (None, None, _) => {
            return Err(SignError::Bundle(
                "verificationMaterial names neither a public key nor a certificate chain".into(),
            ));
        }
    };
    let es = &env.signatures[0];
    if let Some(k) = &es.keyid {
        if !k.is_empty() && *k != key.key_id() {
            return Err(SignError::Signature(format!(
                "the signature's keyid {k:?} is not the signing key's id {}",
                key.key_id()
            )));
        }
    }
    let payload = b64("dsseEnvelope.payload", &env.payload)?;
    let sig = b64("dsseEnvelope.signatures[0].sig", &es.sig)?;
    key.verify(&pae(&payload), &sig)?;

    // The signed statement.
    let st: Statement = serde_json::from_slice(&payload)
        .map_err(|e| SignError::Statement(format!("not an in-toto statement of the OMS predicate: {e}")))?;
    if st.type_ != STATEMENT_TYPE {
        return Err(SignError::Statement(format!(
            "_type is {:?}, expected {STATEMENT_TYPE:?}",
            st.type_
        )));
    }
    if st.predicate_type != PREDICATE_TYPE {
        return Err(SignError::Unsupported(format!(
            "predicateType {:?}; OMS v1.0 ({PREDICATE_TYPE:?}) is verified",
            st.predicate_type
        )));
    }
    if st.subject.len() != 1 {
        return Err(SignError::Statement(format!(
            "{} subjects, expected exactly one",
            st.subject.len()
        )));
    }
    let ser = &st.predicate.serialization;
    if ser.method != "files" {
        return Err(SignError::Unsupported(format!(
            "serialization method {:?}; the \"files\" method is verified",
            ser.method
        )));
    }
    if ser.hash_type != "sha256" {
        return Err(SignError::Unsupported(format!(
            "hash type {:?}; sha256 is verified",
            ser.hash_type
        )));
    }
    if st.predicate.resources.len() > MAX_RESOURCES {
        return Err(SignError::Statement(format!(
            "{} resources, at most {MAX_RESOURCES}",
            st.predicate.resources.len()
        )));
    }
    let mut resources = Vec::with_capacity(st.predicate.resources.len());
    let mut seen = BTreeSet::new();
    for (i, r) in st.predicate.resources.iter().enumerate() {
        check_resource_name(&r.name).map_err(|m| SignError::Statement(format!("resource {i}: {m}")))?;
        if r.name == SIGNATURE_NAME {
            return Err(SignError::Statement(format!(
                "resource {i} is {SIGNATURE_NAME}, the signature file itself (it cannot be signed)"
            )));
        }
        if r.algorithm != "sha256" {
            return Err(SignError::Unsupported(format!(
                "resource {:?} hashed with {:?}; sha256 is verified",
                r.name, r.algorithm
            )));
        }
        let d = parse_hex32(&r.digest).ok_or_else(|| {
            SignError::Statement(format!("resource {:?}: digest is not 64 lowercase hex digits", r.name))
        })?;
        if !seen.insert(r.name.as_str()) {
            return Err(SignError::Statement(format!("resource {:?} is listed twice", r.name)));
        }
        resources.push(Resource {
            name: r.name.clone(),
            sha256: d,
        });
    }
    let want = parse_hex32(&st.subject[0].digest.sha256)
        .ok_or_else(|| SignError::Statement("the subject's sha256 is not 64 lowercase hex digits".into()))?;
    let got = root_digest(resources.iter().map(|r| &r.sha256));
    if got != want {
        return Err(SignError::Statement(format!(
            "the subject digest {} is not the digest of the listed resources ({})",
            hex(&want),
            hex(&got)
        )));
    }
    Ok(Verified {
        method,
        algorithm: key.algorithm(),
        key_id: key.key_id(),
        model_name: st.subject[0].name.clone(),
        root_digest: want,
        resources,
        ignore_paths: ser.ignore_paths.clone(),
    })
}

/// A difference between the signed files and the files present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileMismatch {
    /// A signed file is missing.
    Missing(String),
    /// A file's bytes differ from what was signed.
    Changed {
        /// The file.
        name: String,
        /// Signed SHA-256 (hex).
        signed: String,
        /// Present SHA-256 (hex).
        actual: String,
    },
    /// A file present is not covered by the signature.
    Unsigned(String),
}

impl FileMismatch {
    /// The file concerned.
    pub fn file(&self) -> &str {
        match self {
            FileMismatch::Missing(n) | FileMismatch::Unsigned(n) | FileMismatch::Changed { name: n, .. } => n,
        }
    }
}

impl fmt::Display for FileMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileMismatch::Missing(_) => write!(f, "signed file is missing"),
            FileMismatch::Changed { signed, actual, .. } => {
                write!(f, "SHA-256 is {actual}, the signature says {signed}")
            }
            FileMismatch::Unsigned(_) => write!(f, "file is not covered by the signature"),
        }
    }
}

/// Compares the signed resources with the files present (relative path → SHA-256), which must be
/// every file of the directory but the signature file: a file changed, missing or unsigned is a
/// mismatch. In path order.
pub fn compare_files(v: &Verified, actual: &BTreeMap<String, [u8; 32]>) -> Vec<FileMismatch> {
    let signed: BTreeMap<&str, &[u8; 32]> = v.resources.iter().map(|r| (r.name.as_str(), &r.sha256)).collect();
    let mut out = Vec::new();
    for (name, d) in &signed {
        match actual.get(*name) {
            None => out.push(FileMismatch::Missing(name.to_string())),
            Some(a) if a != *d => out.push(FileMismatch::Changed {
                name: name.to_string(),
                signed: hex(*d),
                actual: hex(a),
            }),
            Some(_) => {}
        }
    }
    for name in actual.keys() {
        if !signed.contains_key(name.as_str()) {
            out.push(FileMismatch::Unsigned(name.clone()));
        }
    }
    out.sort_by(|a, b| a.file().cmp(b.file()));
    out
}
