//! X.509 certificates for the certificate method: reading (DER, PEM), and verifying a bundle's chain
//! up to a trust anchor the verifier is given.
//!
//! The rules follow OMS's reference verifier (an OpenSSL store): the chain is checked at the
//! signing certificate's `notBefore` (a bundle carries no trusted timestamp, so that is the latest
//! time the signature is known to have been made); every certificate on the path MUST be within its
//! validity period then; each link's signature MUST verify with the issuer's key, and the issuer
//! MUST be a CA (basicConstraints `cA`, and `keyCertSign` when it has a key usage); the path MUST
//! end at a certificate of the trust file; the signing certificate MUST allow digital signatures
//! (key usage `digitalSignature`, or extended key usage `codeSigning`); an unknown critical
//! extension is refused. Signatures: ECDSA P-256 with SHA-256, Ed25519.

use crate::SignError;
use crate::keys::PublicKey;
use der::{Decode as _, Encode as _};
use spki::ObjectIdentifier;
use std::fmt;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage};

/// Longest chain a bundle may carry, and longest path built.
pub const MAX_CHAIN: usize = 8;
/// Largest certificate accepted.
pub const MAX_CERT_LEN: usize = 64 << 10;

const OID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const OID_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
const OID_EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const OID_SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
const OID_CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
const OID_ANY_EKU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37.0");
/// Critical extensions this verifier understands (others make a certificate unusable, RFC 5280).
const KNOWN_CRITICAL: [ObjectIdentifier; 4] = [
    OID_BASIC_CONSTRAINTS,
    OID_KEY_USAGE,
    OID_EXT_KEY_USAGE,
    OID_SUBJECT_ALT_NAME,
];

/// One parsed certificate and its DER bytes.
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
    cert: x509_cert::Certificate,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Certificate({})", self.subject())
    }
}

impl PartialEq for Certificate {
    fn eq(&self, o: &Self) -> bool {
        self.der == o.der
    }
}

impl Certificate {
    /// Parses one DER certificate (strict DER).
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        if der.len() > MAX_CERT_LEN {
            return Err(format!("{} bytes, at most {MAX_CERT_LEN}", der.len()));
        }
        let cert = x509_cert::Certificate::from_der(der).map_err(|e| format!("malformed DER ({e})"))?;
        // The signature is checked over the re-encoded signed part: refuse any encoding that does
        // not re-encode to the same bytes (explicit DEFAULT values, unsorted SET OF), so that the
        // bytes checked are the bytes received.
        match cert.to_der() {
            Ok(again) if again == der => {}
            _ => return Err("not in canonical DER (it does not re-encode to the same bytes)".into()),
        }
        Ok(Certificate {
            der: der.to_vec(),
            cert,
        })
    }

    /// The DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The subject, RFC 4514.
    pub fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    /// The subject's public key.
    pub fn public_key(&self) -> Result<PublicKey, SignError> {
        let spki = self
            .cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| SignError::Certificate(format!("{}: public key ({e})", self.subject())))?;
        PublicKey::from_spki_der(&spki).map_err(|e| SignError::Certificate(format!("{}: {e}", self.subject())))
    }

    fn validity(&self) -> (u64, u64) {
        let v = &self.cert.tbs_certificate.validity;
        (
            v.not_before.to_unix_duration().as_secs(),
            v.not_after.to_unix_duration().as_secs(),
        )
    }

    fn ext<T: for<'a> der::Decode<'a>>(&self, oid: ObjectIdentifier) -> Result<Option<T>, SignError> {
        let Some(exts) = &self.cert.tbs_certificate.extensions else {
            return Ok(None);
        };
        let mut found = exts.iter().filter(|e| e.extn_id == oid);
        let Some(e) = found.next() else { return Ok(None) };
        if found.next().is_some() {
            return Err(SignError::Certificate(format!(
                "{}: extension {oid} appears twice",
                self.subject()
            )));
        }
        T::from_der(e.extn_value.as_bytes())
            .map(Some)
            .map_err(|err| SignError::Certificate(format!("{}: malformed extension {oid} ({err})", self.subject())))
    }

    fn check_critical(&self) -> Result<(), SignError> {
        for e in self.cert.tbs_certificate.extensions.iter().flatten() {
            if e.critical && !KNOWN_CRITICAL.contains(&e.extn_id) {
                return Err(SignError::Certificate(format!(
                    "{}: unknown critical extension {}",
                    self.subject(),
                    e.extn_id
                )));
            }
        }
        Ok(())
    }

    /// Does `issuer` sign this certificate? (Name match and signature.)
    fn signed_by(&self, issuer: &Certificate) -> Result<bool, SignError> {
        if self.cert.tbs_certificate.issuer != issuer.cert.tbs_certificate.subject {
            return Ok(false);
        }
        let tbs = self
            .cert
            .tbs_certificate
            .to_der()
            .map_err(|e| SignError::Certificate(format!("{}: {e}", self.subject())))?;
        let alg = self.cert.signature_algorithm.oid;
        if self.cert.signature_algorithm != self.cert.tbs_certificate.signature {
            return Err(SignError::Certificate(format!(
                "{}: the signature algorithm differs inside and outside the signed part",
                self.subject()
            )));
        }
        if self.cert.signature_algorithm.parameters.is_some() {
            return Err(SignError::Certificate(format!(
                "{}: the signature algorithm has parameters (ECDSA with SHA-256 and Ed25519 have none, RFC 5758, RFC 8410)",
                self.subject()
            )));
        }
        let sig = self
            .cert
            .signature
            .as_bytes()
            .ok_or_else(|| SignError::Certificate(format!("{}: the signature has unused bits", self.subject())))?;
        let key = issuer.public_key()?;
        let ok = match (alg, &key) {
            (OID_ECDSA_SHA256, PublicKey::P256(_)) | (OID_ED25519, PublicKey::Ed25519(_)) => {
                key.verify(&tbs, sig).is_ok()
            }
            (OID_ECDSA_SHA256 | OID_ED25519, _) => false,
            (other, _) => {
                return Err(SignError::Certificate(format!(
                    "{}: signature algorithm {other} is not supported (ECDSA P-256 SHA-256, Ed25519)",
                    self.subject()
                )));
            }
        };
        Ok(ok)
    }

    /// `below`: intermediate CA certificates between this issuer and the signing certificate.
    fn check_ca(&self, below: usize) -> Result<(), SignError> {
        let bc: Option<BasicConstraints> = self.ext(OID_BASIC_CONSTRAINTS)?;
        let Some(bc) = bc.filter(|b| b.ca) else {
            return Err(SignError::Certificate(format!(
                "{} issues a certificate of the chain but is not a CA (basicConstraints)",
                self.subject()
            )));
        };
        if let Some(p) = bc.path_len_constraint {
            if below > usize::from(p) {
                return Err(SignError::Certificate(format!(
                    "{} allows {p} intermediate certificate(s) below it (pathLenConstraint), the path has {below}",
                    self.subject()
                )));
            }
        }
        if let Some(ku) = self.ext::<KeyUsage>(OID_KEY_USAGE)? {
            if !ku.key_cert_sign() {
                return Err(SignError::Certificate(format!(
                    "{} issues a certificate but its key usage lacks keyCertSign",
                    self.subject()
                )));
            }
        }
        Ok(())
    }

    /// RFC 5280 4.2.1.12: each of the two extensions, where present, must allow the use: key usage
    /// `digitalSignature`, extended key usage `codeSigning` (or `anyExtendedKeyUsage`); at least one
    /// of them must be present (OMS's reference refuses a certificate with neither).
    fn check_signing_use(&self) -> Result<(), SignError> {
        let ku = self.ext::<KeyUsage>(OID_KEY_USAGE)?;
        let eku = self.ext::<ExtendedKeyUsage>(OID_EXT_KEY_USAGE)?;
        let cannot = |why: &str| {
            Err(SignError::Certificate(format!(
                "{} cannot be used for signing: {why}",
                self.subject()
            )))
        };
        if ku.is_none() && eku.is_none() {
            return cannot("it has neither a key usage nor an extended key usage");
        }
        if ku.is_some_and(|k| !k.digital_signature()) {
            return cannot("its key usage lacks digitalSignature");
        }
        if eku.is_some_and(|e| !e.0.iter().any(|o| *o == OID_CODE_SIGNING || *o == OID_ANY_EKU)) {
            return cannot("its extended key usage lacks codeSigning");
        }
        Ok(())
    }

    fn check_time(&self, t: u64, at: &str, what: &str) -> Result<(), SignError> {
        let (nb, na) = self.validity();
        if t < nb || t > na {
            return Err(SignError::Certificate(format!(
                "{} ({what}) is not valid at the signing time {at} (the signing certificate's notBefore): \
                 valid from {} to {}{}",
                self.subject(),
                self.cert.tbs_certificate.validity.not_before,
                self.cert.tbs_certificate.validity.not_after,
                if t > na { " (expired)" } else { " (not yet valid)" }
            )));
        }
        Ok(())
    }
}

/// Reads every certificate of a PEM text (one or more `CERTIFICATE` blocks).
pub fn load_certificates(pem: &[u8]) -> Result<Vec<Certificate>, SignError> {
    let certs = x509_cert::Certificate::load_pem_chain(pem)
        .map_err(|e| SignError::Certificate(format!("not a PEM certificate file ({e})")))?;
    if certs.is_empty() {
        return Err(SignError::Certificate("no certificate in the file".into()));
    }
    certs
        .into_iter()
        .map(|c| {
            let der = c.to_der().map_err(|e| SignError::Certificate(e.to_string()))?;
            Ok(Certificate { der, cert: c })
        })
        .collect()
}

/// Verifies `chain` (signing certificate first, then the certificates the bundle carries) against
/// `roots`; returns the signing key and the subject of the root reached. Every certificate of
/// `chain` must be on the path (one may be the trusted root itself, byte for byte), so that no byte
/// of a bundle's chain goes unchecked.
pub(crate) fn verify_chain(chain: &[Certificate], roots: &[Certificate]) -> Result<(PublicKey, String), SignError> {
    let Some(leaf) = chain.first() else {
        return Err(SignError::Certificate("the chain holds no certificate".into()));
    };
    let time = leaf.validity().0;
    let at = leaf.cert.tbs_certificate.validity.not_before.to_string();
    leaf.check_critical()?;
    leaf.check_signing_use()?;
    let key = leaf.public_key()?;
    // used[i]: chain[i] is on the path.
    let mut used = vec![false; chain.len()];
    used[0] = true;
    let mut cur = leaf;
    let mut reached: Option<&Certificate> = None;
    for depth in 0..MAX_CHAIN {
        let what = if depth == 0 {
            "the signing certificate"
        } else {
            "a chain certificate"
        };
        cur.check_time(time, &at, what)?;
        if let Some(root) = roots.iter().find(|r| *r == cur) {
            reached = Some(root);
            break;
        }
        // A root that signs `cur` ends the path.
        let mut next = None;
        for r in roots {
            if cur.signed_by(r)? {
                next = Some((r, None));
                break;
            }
        }
        if next.is_none() {
            for (i, c) in chain.iter().enumerate().skip(1) {
                if !used[i] && cur.signed_by(c)? {
                    next = Some((c, Some(i)));
                    break;
                }
            }
        }
        let Some((issuer, at_index)) = next else {
            return Err(SignError::Certificate(format!(
                "the chain does not lead to a trusted root: nothing given or in the bundle signs {} (issuer {})",
                cur.subject(),
                cur.cert.tbs_certificate.issuer
            )));
        };
        issuer.check_critical()?;
        // `depth` intermediate CA certificates lie between this issuer and the signing
        // certificate (RFC 5280's pathLenConstraint counts them).
        issuer.check_ca(depth)?;
        match at_index {
            None => {
                issuer.check_time(time, &at, "the trusted root")?;
                reached = Some(issuer);
                break;
            }
            Some(i) => {
                used[i] = true;
                cur = issuer;
            }
        }
    }
    let Some(root) = reached else {
        return Err(SignError::Certificate(format!(
            "no trusted root within {MAX_CHAIN} certificates of {}",
            leaf.subject()
        )));
    };
    for (i, c) in chain.iter().enumerate() {
        if !used[i] && c != root {
            return Err(SignError::Certificate(format!(
                "certificate {i} of the bundle ({}) is not on the path to the trusted root",
                c.subject()
            )));
        }
    }
    Ok((key, root.subject()))
}

/// Checks that `chain` is a path, each certificate issued by the next: a signer's check, since
/// [`verify_chain`] refuses a bundle that carries a certificate off the path.
pub(crate) fn check_path(chain: &[Certificate]) -> Result<(), SignError> {
    for (i, w) in chain.windows(2).enumerate() {
        if !w[0].signed_by(&w[1])? {
            return Err(SignError::Certificate(format!(
                "certificate {} ({}) does not issue certificate {i} ({}): give the signing certificate first, then its issuers in order",
                i + 1,
                w[1].subject(),
                w[0].subject()
            )));
        }
    }
    Ok(())
}
