//! Signing and verification: both methods, both algorithms, tampering and hostile bundles.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::str::FromStr as _;
use std::time::Duration;
use uc_sign::{
    Certificate, FileMismatch, Method, PrivateKey, PublicKey, Resource, SignError, Trust, compare_files, pae, sign,
    verify,
};
use x509_cert::builder::{Builder as _, CertificateBuilder, Profile};
use x509_cert::der::Encode as _;
use x509_cert::der::asn1::UtcTime;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::{Time, Validity};

fn p256_key(seed: u8) -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap()
}

fn p256_private(seed: u8) -> PrivateKey {
    let pem = p256_key(seed).to_pkcs8_pem(LineEnding::LF).unwrap();
    PrivateKey::from_pem(&pem).unwrap()
}

fn ed_private(seed: u8) -> PrivateKey {
    let k = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let pem = ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_pem(&k, LineEnding::LF).unwrap();
    PrivateKey::from_pem(&pem).unwrap()
}

fn files() -> Vec<Resource> {
    let f = |name: &str, body: &[u8]| Resource {
        name: name.into(),
        sha256: Sha256::digest(body).into(),
    };
    vec![
        f("ultracompress.json", b"{}"),
        f("model.safetensors", b"weights"),
        f("sub/tokenizer.json", b"t"),
    ]
}

fn actual() -> BTreeMap<String, [u8; 32]> {
    files().into_iter().map(|r| (r.name, r.sha256)).collect()
}

const DAY: u64 = 86_400;
const T0: u64 = 1_790_000_000; // 2026-09

fn validity(from: u64, to: u64) -> Validity {
    let t = |s| Time::UtcTime(UtcTime::from_unix_duration(Duration::from_secs(s)).unwrap());
    Validity {
        not_before: t(from),
        not_after: t(to),
    }
}

fn spki(k: &p256::ecdsa::SigningKey) -> SubjectPublicKeyInfoOwned {
    SubjectPublicKeyInfoOwned::from_key(*k.verifying_key()).unwrap()
}

fn der(c: x509_cert::Certificate) -> Certificate {
    Certificate::from_der(&c.to_der().unwrap()).unwrap()
}

/// A root, an intermediate and a leaf; the intermediate valid over `inter`.
fn pki(inter: (u64, u64)) -> (Certificate, Certificate, Certificate, PrivateKey) {
    let (rk, ik, lk) = (p256_key(11), p256_key(12), p256_key(13));
    let rn = Name::from_str("CN=uc test root,O=UltraCompress tests").unwrap();
    let inn = Name::from_str("CN=uc test intermediate,O=UltraCompress tests").unwrap();
    let ln = Name::from_str("CN=uc test signer,O=UltraCompress tests").unwrap();
    let root = CertificateBuilder::new(
        Profile::Root,
        SerialNumber::from(1u32),
        validity(T0 - 100 * DAY, T0 + 3650 * DAY),
        rn.clone(),
        spki(&rk),
        &rk,
    )
    .unwrap()
    .build::<p256::ecdsa::DerSignature>()
    .unwrap();
    let inter = CertificateBuilder::new(
        Profile::SubCA {
            issuer: rn,
            path_len_constraint: Some(0),
        },
        SerialNumber::from(2u32),
        validity(inter.0, inter.1),
        inn.clone(),
        spki(&ik),
        &rk,
    )
    .unwrap()
    .build::<p256::ecdsa::DerSignature>()
    .unwrap();
    let leaf = CertificateBuilder::new(
        Profile::Leaf {
            issuer: inn,
            enable_key_agreement: false,
            enable_key_encipherment: false,
        },
        SerialNumber::from(3u32),
        validity(T0, T0 + 365 * DAY),
        ln,
        spki(&lk),
        &ik,
    )
    .unwrap()
    .build::<p256::ecdsa::DerSignature>()
    .unwrap();
    (der(root), der(inter), der(leaf), p256_private(13))
}

#[test]
fn key_method_round_trip_both_algorithms_deterministic() {
    for key in [p256_private(1), ed_private(2)] {
        let b = sign("pack", &files(), &key, &[]).unwrap();
        assert_eq!(
            b,
            sign("pack", &files(), &key, &[]).unwrap(),
            "signing is deterministic"
        );
        let v = verify(&b, &Trust::PublicKey(key.public())).unwrap();
        assert_eq!(v.method, Method::Key);
        assert_eq!(v.key_id, key.public().key_id());
        assert_eq!(v.resources.len(), 3);
        assert!(
            v.resources.windows(2).all(|w| w[0].name < w[1].name),
            "sorted as OMS sorts"
        );
        assert!(compare_files(&v, &actual()).is_empty());
    }
}

#[test]
fn public_key_pem_round_trip_and_key_id_is_the_hint_of_the_pem_text() {
    let k = p256_key(5);
    let pem = k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
    let pk = PublicKey::from_pem(&pem).unwrap();
    assert_eq!(pk.spki_pem(), pem);
    assert_eq!(pk.key_id(), format!("{:x}", Sha256::digest(pem.as_bytes())));
    let e = PublicKey::from_pem(&k.to_pkcs8_pem(LineEnding::LF).unwrap()).unwrap_err();
    assert!(e.to_string().contains("private key"), "{e}");
    let e = PrivateKey::from_pem(&pem).unwrap_err();
    assert!(e.to_string().contains("public key"), "{e}");
    assert!(PrivateKey::from_pem("not pem").is_err());
    // Debug never prints key material.
    let dbg = format!("{:?}", p256_private(5));
    assert!(dbg.contains("key id") && !dbg.contains("0505"), "{dbg}");
}

#[test]
fn sec1_private_keys_are_read() {
    let sk = p256::SecretKey::from_slice(&[3u8; 32]).unwrap();
    let pem = sk.to_sec1_pem(LineEnding::LF).unwrap();
    let k = PrivateKey::from_pem(&pem).unwrap();
    assert_eq!(k.public(), p256_private(3).public());
}

#[test]
fn another_key_is_rejected() {
    let b = sign("pack", &files(), &p256_private(1), &[]).unwrap();
    let e = verify(&b, &Trust::PublicKey(p256_private(2).public())).unwrap_err();
    assert!(matches!(e, SignError::Signature(_)), "{e}");
    assert!(e.to_string().contains("names key"), "{e}");
    let e = verify(&b, &Trust::PublicKey(ed_private(2).public())).unwrap_err();
    assert!(matches!(e, SignError::Signature(_)), "{e}");
}

#[test]
fn certificate_method_round_trip_and_chain_failures() {
    let (root, inter, leaf, key) = pki((T0 - 10 * DAY, T0 + 1000 * DAY));
    let b = sign("pack", &files(), &key, &[leaf.clone(), inter.clone()]).unwrap();
    let v = verify(&b, &Trust::Roots(vec![root.clone()])).unwrap();
    match &v.method {
        Method::Certificate { subject, root } => {
            assert!(subject.contains("uc test signer"), "{subject}");
            assert!(root.contains("uc test root"), "{root}");
        }
        m => panic!("{m:?}"),
    }
    // Another root.
    let (other_root, ..) = {
        let k = p256_key(99);
        let n = Name::from_str("CN=uc test root,O=UltraCompress tests").unwrap();
        let c = CertificateBuilder::new(
            Profile::Root,
            SerialNumber::from(9u32),
            validity(T0 - DAY, T0 + DAY),
            n,
            spki(&k),
            &k,
        )
        .unwrap()
        .build::<p256::ecdsa::DerSignature>()
        .unwrap();
        (der(c), ())
    };
    let e = verify(&b, &Trust::Roots(vec![other_root])).unwrap_err();
    assert!(e.to_string().contains("does not lead to a trusted root"), "{e}");
    // A chain without its intermediate.
    let b2 = sign("pack", &files(), &key, std::slice::from_ref(&leaf)).unwrap();
    let e = verify(&b2, &Trust::Roots(vec![root.clone()])).unwrap_err();
    assert!(e.to_string().contains("does not lead to a trusted root"), "{e}");
    // The leaf's key is not the signing key.
    let e = sign("pack", &files(), &p256_private(1), &[leaf.clone(), inter.clone()]).unwrap_err();
    assert!(e.to_string().contains("not the signing key"), "{e}");
    // A key-method bundle verified with roots, and the reverse.
    let kb = sign("pack", &files(), &key, &[]).unwrap();
    assert!(
        verify(&kb, &Trust::Roots(vec![root.clone()]))
            .unwrap_err()
            .to_string()
            .contains("key method")
    );
    assert!(
        verify(&b, &Trust::PublicKey(key.public()))
            .unwrap_err()
            .to_string()
            .contains("certificate method")
    );
    // A CA certificate (no digitalSignature) as the signing certificate.
    let e = sign("pack", &files(), &p256_private(12), std::slice::from_ref(&inter))
        .and_then(|b| verify(&b, &Trust::Roots(vec![root])));
    assert!(e.unwrap_err().to_string().contains("cannot be used for signing"));
}

#[test]
fn an_expired_chain_certificate_is_rejected() {
    // The intermediate expired before the signing certificate was issued.
    let (root, inter, leaf, key) = pki((T0 - 100 * DAY, T0 - DAY));
    let b = sign("pack", &files(), &key, &[leaf, inter]).unwrap();
    let e = verify(&b, &Trust::Roots(vec![root])).unwrap_err();
    assert!(e.to_string().contains("expired"), "{e}");
}

#[test]
fn changed_missing_and_unsigned_files_are_named() {
    let key = p256_private(1);
    let v = verify(
        &sign("pack", &files(), &key, &[]).unwrap(),
        &Trust::PublicKey(key.public()),
    )
    .unwrap();
    let mut a = actual();
    a.get_mut("model.safetensors").unwrap()[0] ^= 1;
    a.remove("sub/tokenizer.json");
    a.insert("extra.bin".into(), [0; 32]);
    let m = compare_files(&v, &a);
    assert_eq!(m.len(), 3, "{m:?}");
    assert!(matches!(&m[0], FileMismatch::Unsigned(n) if n == "extra.bin"));
    assert!(matches!(&m[1], FileMismatch::Changed { name, .. } if name == "model.safetensors"));
    assert!(matches!(&m[2], FileMismatch::Missing(n) if n == "sub/tokenizer.json"));
}

/// A bundle around an arbitrary payload, validly signed: for statements `sign` refuses to make.
fn bundle_with_payload(payload: &[u8], key: &PrivateKey) -> Vec<u8> {
    let sig = key.sign(&pae(payload));
    serde_json::to_vec(&serde_json::json!({
        "mediaType": uc_sign::BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key.public().key_id()}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": B64.encode(payload),
            "payloadType": uc_sign::PAYLOAD_TYPE,
            "signatures": [{"sig": B64.encode(sig), "keyid": ""}]
        }
    }))
    .unwrap()
}

fn statement(resources: serde_json::Value, subject_digest: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "_type": uc_sign::STATEMENT_TYPE,
        "subject": [{"name": "pack", "digest": {"sha256": subject_digest}}],
        "predicateType": uc_sign::PREDICATE_TYPE,
        "predicate": {
            "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": false},
            "resources": resources
        }
    }))
    .unwrap()
}

fn root_of(digests: &[[u8; 32]]) -> String {
    let mut h = Sha256::new();
    for d in digests {
        h.update(d);
    }
    format!("{:x}", h.finalize())
}

#[test]
fn hostile_statements_are_clear_errors() {
    let key = p256_private(1);
    let t = Trust::PublicKey(key.public());
    let d: [u8; 32] = Sha256::digest(b"x").into();
    let hexd = format!("{:x}", Sha256::digest(b"x"));
    let res = |names: &[&str]| {
        serde_json::Value::Array(
            names
                .iter()
                .map(|n| serde_json::json!({"name": n, "algorithm": "sha256", "digest": hexd}))
                .collect(),
        )
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (statement(res(&["a", "a"]), &root_of(&[d, d])), "listed twice"),
        (statement(res(&["../etc/passwd"]), &root_of(&[d])), "path traversal"),
        (statement(res(&["/abs"]), &root_of(&[d])), "absolute"),
        (statement(res(&["a//b"]), &root_of(&[d])), "component"),
        (statement(res(&["a\\b"]), &root_of(&[d])), "backslash"),
        (
            statement(res(&["a"]), &root_of(&[d, d])),
            "not the digest of the listed resources",
        ),
        (b"[1,2,3]".to_vec(), "not an in-toto statement"),
        (b"\xff\xfe".to_vec(), "not an in-toto statement"),
    ];
    for (payload, want) in cases {
        let e = verify(&bundle_with_payload(&payload, &key), &t).unwrap_err();
        assert!(e.to_string().contains(want), "want {want:?}, got {e}");
    }
    let shards = serde_json::to_vec(&serde_json::json!({
        "_type": uc_sign::STATEMENT_TYPE,
        "subject": [{"name": "pack", "digest": {"sha256": root_of(&[])}}],
        "predicateType": uc_sign::PREDICATE_TYPE,
        "predicate": {"serialization": {"method": "shards", "hash_type": "sha256", "allow_symlinks": false, "shard_size": 1}, "resources": []}
    }))
    .unwrap();
    let e = verify(&bundle_with_payload(&shards, &key), &t).unwrap_err();
    assert!(matches!(e, SignError::Unsupported(_)), "{e}");
}

#[test]
fn hostile_bundles_are_clear_errors() {
    let key = p256_private(1);
    let t = Trust::PublicKey(key.public());
    let good = sign("pack", &files(), &key, &[]).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut x = v.clone();
        f(&mut x);
        serde_json::to_vec(&x).unwrap()
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{".to_vec(), "malformed signature bundle"),
        (b"".to_vec(), "malformed signature bundle"),
        (edit(&|x| x["mediaType"] = "application/json".into()), "mediaType"),
        (
            edit(&|x| x["dsseEnvelope"]["payloadType"] = "text/plain".into()),
            "payloadType",
        ),
        (edit(&|x| x["extra"] = 1.into()), "unknown field"),
        (
            edit(&|x| x["verificationMaterial"]["tlogEntries"] = serde_json::json!([{}])),
            "transparency-log",
        ),
        (
            edit(&|x| {
                let s = x["dsseEnvelope"]["signatures"][0].clone();
                x["dsseEnvelope"]["signatures"] = serde_json::json!([s.clone(), s]);
            }),
            "exactly one",
        ),
        (
            edit(&|x| x["dsseEnvelope"]["signatures"] = serde_json::json!([])),
            "exactly one",
        ),
        (edit(&|x| x["dsseEnvelope"]["payload"] = "!!!".into()), "base64"),
        (
            edit(&|x| x["dsseEnvelope"]["signatures"][0]["keyid"] = "someone".into()),
            "keyid",
        ),
        (
            edit(&|x| x["verificationMaterial"] = serde_json::json!({"tlogEntries": []})),
            "neither a public key nor a certificate chain",
        ),
        (
            edit(&|x| x["verificationMaterial"]["x509CertificateChain"] = serde_json::json!({"certificates": []})),
            "both",
        ),
        // A huge base64 payload: decoded (bounded by the file cap), then refused by the signature.
        (
            edit(&|x| x["dsseEnvelope"]["payload"] = B64.encode(vec![b'{'; 3 << 20]).into()),
            "does not verify",
        ),
        (vec![b' '; (uc_sign::MAX_BUNDLE_LEN + 1) as usize], "more than"),
    ];
    for (b, want) in cases {
        let e = verify(&b, &t).unwrap_err();
        assert!(e.to_string().contains(want), "want {want:?}, got {e}");
    }
    // Non-canonical base64: the same bytes with a changed unused trailing bit.
    let sig = v["dsseEnvelope"]["signatures"][0]["sig"].as_str().unwrap().to_string();
    if sig.ends_with('=') {
        let body = sig.trim_end_matches('=');
        let last = body.chars().last().unwrap();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let i = alphabet.find(last).unwrap();
        let j = i ^ 1;
        let mut s2 = body[..body.len() - 1].to_string();
        s2.push(alphabet.as_bytes()[j] as char);
        s2.push_str(&sig[body.len()..]);
        let b = edit(&|x| x["dsseEnvelope"]["signatures"][0]["sig"] = s2.clone().into());
        assert!(verify(&b, &t).is_err());
    }
    // A certificate that is not DER.
    let b = edit(&|x| {
        x["verificationMaterial"] =
            serde_json::json!({"x509CertificateChain": {"certificates": [{"rawBytes": "AAAA"}]}, "tlogEntries": []})
    });
    let e = verify(&b, &Trust::Roots(vec![])).unwrap_err();
    assert!(e.to_string().contains("certificate 0"), "{e}");
}

#[test]
fn every_single_bit_flip_of_a_bundle_is_rejected() {
    for key in [p256_private(1), ed_private(2)] {
        let t = Trust::PublicKey(key.public());
        let good = sign("p", &files()[..1], &key, &[]).unwrap();
        let mut accepted = Vec::new();
        let mut b = good.clone();
        for i in 0..b.len() {
            for bit in 0..8 {
                b[i] ^= 1 << bit;
                if verify(&b, &t).is_ok() {
                    accepted.push((i, bit));
                }
                b[i] ^= 1 << bit;
            }
        }
        assert!(
            accepted.is_empty(),
            "{} flips accepted: {:?}",
            accepted.len(),
            &accepted[..accepted.len().min(10)]
        );
    }
}

// ---- The certificate method against crafted chains (review findings) ----

/// `builder` for a certificate issued by `issuer_key` under `issuer`.
fn issue(
    profile: Profile,
    serial: u32,
    subject: &str,
    subject_key: &p256::ecdsa::SigningKey,
    issuer_key: &p256::ecdsa::SigningKey,
    extra: Option<x509_cert::ext::pkix::ExtendedKeyUsage>,
) -> Certificate {
    let mut b = CertificateBuilder::new(
        profile,
        SerialNumber::from(serial),
        validity(T0 - 50 * DAY, T0 + 1000 * DAY),
        Name::from_str(subject).unwrap(),
        spki(subject_key),
        issuer_key,
    )
    .unwrap();
    if let Some(e) = extra {
        b.add_extension(&e).unwrap();
    }
    der(b.build::<p256::ecdsa::DerSignature>().unwrap())
}

fn inter_name() -> Name {
    Name::from_str("CN=uc test intermediate,O=UltraCompress tests").unwrap()
}

#[test]
fn a_chain_that_carries_its_root_verifies_and_every_flip_of_it_is_refused() {
    let (root, inter, leaf, key) = pki((T0 - 10 * DAY, T0 + 1000 * DAY));
    let roots = Trust::Roots(vec![root.clone()]);
    let b = sign("p", &files()[..1], &key, &[leaf, inter, root]).unwrap();
    verify(&b, &roots).unwrap();
    let mut accepted = 0;
    let mut x = b.clone();
    for i in 0..x.len() {
        for bit in 0..8 {
            x[i] ^= 1 << bit;
            accepted += usize::from(verify(&x, &roots).is_ok());
            x[i] ^= 1 << bit;
        }
    }
    assert_eq!(accepted, 0, "of {} flips", 8 * x.len());
}

#[test]
fn a_certificate_off_the_path_is_refused_by_signer_and_verifier() {
    let (root, inter, leaf, key) = pki((T0 - 10 * DAY, T0 + 1000 * DAY));
    let stranger = issue(Profile::Root, 77, "CN=stranger", &p256_key(77), &p256_key(77), None);
    let e = sign("p", &files(), &key, &[leaf.clone(), inter.clone(), stranger.clone()]).unwrap_err();
    assert!(e.to_string().contains("does not issue"), "{e}");
    // The same bundle assembled by hand (a signer that does not check).
    let good = sign("p", &files(), &key, &[leaf, inter]).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    v["verificationMaterial"]["x509CertificateChain"]["certificates"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"rawBytes": B64.encode(stranger.der())}));
    let e = verify(&serde_json::to_vec(&v).unwrap(), &Trust::Roots(vec![root])).unwrap_err();
    assert!(e.to_string().contains("not on the path"), "{e}");
}

#[test]
fn path_length_constraints_are_enforced() {
    // pki's intermediate has pathLenConstraint 0: it may not issue another CA on the path.
    let (root, inter, _, _) = pki((T0 - 10 * DAY, T0 + 1000 * DAY));
    let (k2, kl) = (p256_key(21), p256_key(22));
    let inter2 = issue(
        Profile::SubCA {
            issuer: inter_name(),
            path_len_constraint: None,
        },
        21,
        "CN=uc second intermediate",
        &k2,
        &p256_key(12),
        None,
    );
    let leaf = issue(
        Profile::Leaf {
            issuer: Name::from_str("CN=uc second intermediate").unwrap(),
            enable_key_agreement: false,
            enable_key_encipherment: false,
        },
        22,
        "CN=uc deep signer",
        &kl,
        &k2,
        None,
    );
    let key = p256_private(22);
    let b = sign("p", &files(), &key, &[leaf, inter2, inter]).unwrap();
    let e = verify(&b, &Trust::Roots(vec![root])).unwrap_err();
    assert!(e.to_string().contains("pathLenConstraint"), "{e}");
}

#[test]
fn a_signing_certificate_must_allow_code_signing_where_it_says() {
    let (root, inter, _, key) = pki((T0 - 10 * DAY, T0 + 1000 * DAY));
    let server_only = x509_cert::ext::pkix::ExtendedKeyUsage(vec![x509_cert::der::oid::ObjectIdentifier::new_unwrap(
        "1.3.6.1.5.5.7.3.1",
    )]);
    let leaf = issue(
        Profile::Leaf {
            issuer: inter_name(),
            enable_key_agreement: false,
            enable_key_encipherment: false,
        },
        31,
        "CN=uc web server",
        &p256_key(13),
        &p256_key(12),
        Some(server_only),
    );
    let b = sign("p", &files(), &key, &[leaf, inter]).unwrap();
    let e = verify(&b, &Trust::Roots(vec![root])).unwrap_err();
    assert!(e.to_string().contains("lacks codeSigning"), "{e}");
}

/// The index of `needle` in `hay`, searching from the end.
fn rfind(hay: &[u8], needle: &[u8]) -> usize {
    (0..=hay.len() - needle.len())
        .rev()
        .find(|&i| &hay[i..i + needle.len()] == needle)
        .unwrap()
}

#[test]
fn certificates_that_are_not_canonical_der_or_carry_algorithm_parameters_are_refused() {
    // A subject with two attributes in one RDN: DER sorts the SET; swapping them keeps every
    // length and the signature would still verify over the re-encoded (sorted) bytes.
    let k = p256_key(41);
    let c = issue(Profile::Root, 41, "CN=leaf+O=x", &k, &k, None);
    let d = c.der().to_vec();
    let cn: &[u8] = &[
        0x30, 0x0b, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x04, b'l', b'e', b'a', b'f',
    ];
    let o: &[u8] = &[0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x01, b'x'];
    let pair: Vec<u8> = [o, cn].concat();
    let at = rfind(&d, &pair); // the subject (the issuer is the same name: take the last)
    let mut swapped = d.clone();
    swapped[at..at + pair.len()].copy_from_slice(&[cn, o].concat());
    assert_ne!(swapped, d);
    let e = Certificate::from_der(&swapped).unwrap_err();
    assert!(e.contains("canonical DER"), "{e}");
    // NULL parameters appended to the signing certificate's outer signatureAlgorithm (not covered
    // by the signature): it still parses and re-encodes identically, so the chain check refuses it.
    let (root, inter, leaf, key) = pki((T0 - 10 * DAY, T0 + 1000 * DAY));
    let d = leaf.der().to_vec();
    let alg: &[u8] = &[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    let at = rfind(&d, alg);
    let mut p = d[..at].to_vec();
    p.extend_from_slice(&[
        0x30, 0x0c, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02, 0x05, 0x00,
    ]);
    p.extend_from_slice(&d[at + alg.len()..]);
    assert_eq!(p[1], 0x82, "a certificate of 256..65535 bytes");
    let len = u16::from_be_bytes([p[2], p[3]]) + 2;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    Certificate::from_der(&p).unwrap();
    // uc's signer refuses the chain; a bundle assembled by hand is refused by the verifier.
    assert!(
        sign(
            "p",
            &files(),
            &key,
            &[Certificate::from_der(&p).unwrap(), inter.clone()]
        )
        .is_err()
    );
    let good = sign("p", &files(), &key, &[leaf, inter]).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    v["verificationMaterial"]["x509CertificateChain"]["certificates"][0]["rawBytes"] = B64.encode(&p).into();
    let e = verify(&serde_json::to_vec(&v).unwrap(), &Trust::Roots(vec![root])).unwrap_err();
    assert!(
        e.to_string().contains("differs inside and outside") || e.to_string().contains("parameters"),
        "{e}"
    );
}

#[test]
fn a_resource_named_like_the_signature_is_refused() {
    let key = p256_private(1);
    let d: [u8; 32] = Sha256::digest(b"x").into();
    let hexd = format!("{:x}", Sha256::digest(b"x"));
    let st = statement(
        serde_json::json!([{"name": "model.sig", "algorithm": "sha256", "digest": hexd}]),
        &root_of(&[d]),
    );
    let e = verify(&bundle_with_payload(&st, &key), &Trust::PublicKey(key.public())).unwrap_err();
    assert!(e.to_string().contains("signature file itself"), "{e}");
    let e = sign(
        "p",
        &[Resource {
            name: "model.sig".into(),
            sha256: d,
        }],
        &key,
        &[],
    )
    .unwrap_err();
    assert!(e.to_string().contains("cannot sign itself"), "{e}");
}
