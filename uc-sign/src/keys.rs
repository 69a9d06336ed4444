//! Keys: ECDSA P-256 (SHA-256, RFC 6979 deterministic nonces) and Ed25519, read from PEM.
//!
//! Private keys: PKCS#8 (`PRIVATE KEY`) for both algorithms, SEC1 (`EC PRIVATE KEY`) for P-256.
//! Public keys: SubjectPublicKeyInfo (`PUBLIC KEY`). The key id is OMS's public-key hint: the
//! SHA-256, in hex, of the public key's SPKI PEM text with LF line endings.

use crate::SignError;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};
use p256::pkcs8::LineEnding;
use sha2::{Digest, Sha256};
use spki::ObjectIdentifier;
use spki::der::Decode as _;
use std::fmt;

/// id-ecPublicKey (RFC 5480).
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// prime256v1 / secp256r1.
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// id-Ed25519 (RFC 8410).
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// The signature algorithms this crate signs and verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA over NIST P-256 with SHA-256; signatures DER-encoded (as OMS and Sigstore write them).
    EcdsaP256Sha256,
    /// Ed25519 (RFC 8032); 64-byte signatures.
    Ed25519,
}

impl Algorithm {
    /// Stable name, used in receipts.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            Algorithm::Ed25519 => "ed25519",
        }
    }
}

/// A private signing key. Its `Debug` shows the algorithm and the key id, never key material.
pub enum PrivateKey {
    /// P-256.
    P256(p256::ecdsa::SigningKey),
    /// Ed25519.
    Ed25519(ed25519_dalek::SigningKey),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PrivateKey({}, key id {})",
            self.algorithm().name(),
            self.public().key_id()
        )
    }
}

/// A public verification key.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// P-256.
    P256(p256::ecdsa::VerifyingKey),
    /// Ed25519.
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({}, key id {})", self.algorithm().name(), self.key_id())
    }
}

fn pem_label(text: &str) -> Result<&str, SignError> {
    der::pem::decode_label(text.trim_start().as_bytes()).map_err(|e| SignError::Key(format!("not a PEM file ({e})")))
}

/// The algorithm and, for EC keys, the curve of a SubjectPublicKeyInfo or a PKCS#8 key.
fn describe_alg(oid: ObjectIdentifier, param: Option<ObjectIdentifier>) -> String {
    match (oid, param) {
        (OID_EC_PUBLIC_KEY, Some(c)) => format!("an EC key on curve {c}"),
        (o, _) => format!("a key of algorithm {o}"),
    }
}

impl PrivateKey {
    /// Reads a PEM private key. Encrypted keys are refused with a hint (decrypt them first).
    pub fn from_pem(text: &str) -> Result<Self, SignError> {
        let text = text.trim_start();
        match pem_label(text)? {
            "PRIVATE KEY" => {
                // A SecretDocument wipes its bytes when dropped.
                let doc = der::SecretDocument::from_pem(text)
                    .map_err(|e| SignError::Key(format!("malformed PKCS#8 PEM ({e})")))?
                    .1;
                let info = p256::pkcs8::PrivateKeyInfo::from_der(doc.as_bytes())
                    .map_err(|e| SignError::Key(format!("malformed PKCS#8 key ({e})")))?;
                let param = info.algorithm.parameters_oid().ok();
                match (info.algorithm.oid, param) {
                    (OID_EC_PUBLIC_KEY, Some(OID_P256)) => {
                        use p256::pkcs8::DecodePrivateKey as _;
                        p256::ecdsa::SigningKey::from_pkcs8_der(doc.as_bytes())
                            .map(PrivateKey::P256)
                            .map_err(|e| SignError::Key(format!("malformed P-256 key ({e})")))
                    }
                    (OID_ED25519, _) => ed25519_dalek::SigningKey::from_pkcs8_der(doc.as_bytes())
                        .map(PrivateKey::Ed25519)
                        .map_err(|e| SignError::Key(format!("malformed Ed25519 key ({e})"))),
                    (oid, param) => Err(SignError::Key(format!(
                        "{} is not supported: keys are ECDSA P-256 or Ed25519",
                        describe_alg(oid, param)
                    ))),
                }
            }
            "EC PRIVATE KEY" => {
                let sk = p256::SecretKey::from_sec1_pem(text).map_err(|e| {
                    SignError::Key(format!("not a P-256 SEC1 key ({e}); keys are ECDSA P-256 or Ed25519"))
                })?;
                Ok(PrivateKey::P256(sk.into()))
            }
            "ENCRYPTED PRIVATE KEY" => Err(SignError::Key(
                "the key is encrypted; decrypt it first (`openssl pkcs8 -in KEY -out PLAIN.pem`)".into(),
            )),
            "PUBLIC KEY" => Err(SignError::Key(
                "this is a public key; signing needs the private key".into(),
            )),
            other => Err(SignError::Key(format!(
                "a PEM \"{other}\" block is not a private key (PRIVATE KEY or EC PRIVATE KEY)"
            ))),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            PrivateKey::P256(_) => Algorithm::EcdsaP256Sha256,
            PrivateKey::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        match self {
            PrivateKey::P256(k) => PublicKey::P256(*k.verifying_key()),
            PrivateKey::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
        }
    }

    /// Signs `msg`. Deterministic for both algorithms (RFC 6979 nonces for ECDSA).
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer as _;
        match self {
            PrivateKey::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(msg);
                sig.to_der().as_bytes().to_vec()
            }
            PrivateKey::Ed25519(k) => k.sign(msg).to_bytes().to_vec(),
        }
    }
}

impl PublicKey {
    /// Reads a PEM public key (SubjectPublicKeyInfo).
    pub fn from_pem(text: &str) -> Result<Self, SignError> {
        let text = text.trim_start();
        match pem_label(text)? {
            "PUBLIC KEY" => {
                let doc = der::Document::from_pem(text)
                    .map_err(|e| SignError::Key(format!("malformed public key PEM ({e})")))?
                    .1;
                Self::from_spki_der(doc.as_bytes())
            }
            "PRIVATE KEY" | "EC PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => Err(SignError::Key(
                "this is a private key; verification takes the public key (`openssl pkey -pubout`)".into(),
            )),
            other => Err(SignError::Key(format!(
                "a PEM \"{other}\" block is not a public key (PUBLIC KEY)"
            ))),
        }
    }

    /// Reads a DER SubjectPublicKeyInfo (as in a certificate).
    pub fn from_spki_der(der: &[u8]) -> Result<Self, SignError> {
        let spki = spki::SubjectPublicKeyInfoRef::from_der(der)
            .map_err(|e| SignError::Key(format!("malformed SubjectPublicKeyInfo ({e})")))?;
        let param = spki.algorithm.parameters_oid().ok();
        match (spki.algorithm.oid, param) {
            (OID_EC_PUBLIC_KEY, Some(OID_P256)) => {
                use p256::pkcs8::DecodePublicKey as _;
                p256::ecdsa::VerifyingKey::from_public_key_der(der)
                    .map(PublicKey::P256)
                    .map_err(|e| SignError::Key(format!("malformed P-256 public key ({e})")))
            }
            (OID_ED25519, _) => ed25519_dalek::VerifyingKey::from_public_key_der(der)
                .map(PublicKey::Ed25519)
                .map_err(|e| SignError::Key(format!("malformed Ed25519 public key ({e})"))),
            (oid, param) => Err(SignError::Key(format!(
                "{} is not supported: keys are ECDSA P-256 or Ed25519",
                describe_alg(oid, param)
            ))),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            PublicKey::P256(_) => Algorithm::EcdsaP256Sha256,
            PublicKey::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// The SubjectPublicKeyInfo in PEM, LF line endings (the text the key id hashes).
    pub fn spki_pem(&self) -> String {
        use p256::pkcs8::EncodePublicKey as _;
        let r = match self {
            PublicKey::P256(k) => k.to_public_key_pem(LineEnding::LF),
            PublicKey::Ed25519(k) => k.to_public_key_pem(LineEnding::LF),
        };
        // Encoding a valid in-memory key cannot fail (fixed-size DER); the message says so if it did.
        r.expect("encoding a valid public key as SPKI PEM")
    }

    /// OMS's public-key hint: hex SHA-256 of [`PublicKey::spki_pem`].
    pub fn key_id(&self) -> String {
        crate::hex(&Sha256::digest(self.spki_pem().as_bytes()))
    }

    /// Verifies `sig` over `msg`. ECDSA signatures are strict DER; Ed25519 uses strict verification
    /// (no small-order keys, canonical `S`).
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), SignError> {
        let bad = |why: String| SignError::Signature(why);
        match self {
            PublicKey::P256(k) => {
                use p256::ecdsa::signature::Verifier as _;
                let s = p256::ecdsa::Signature::from_der(sig)
                    .map_err(|_| bad("the ECDSA signature is not a valid DER signature".into()))?;
                k.verify(msg, &s)
                    .map_err(|_| bad("the signature does not verify with the key".into()))
            }
            PublicKey::Ed25519(k) => {
                let s = ed25519_dalek::Signature::from_slice(sig)
                    .map_err(|_| bad(format!("an Ed25519 signature is 64 bytes, this one {}", sig.len())))?;
                k.verify_strict(msg, &s)
                    .map_err(|_| bad("the signature does not verify with the key".into()))
            }
        }
    }
}
