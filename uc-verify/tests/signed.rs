//! Signed packs: `uc-verify --signature` with the key and certificate methods; a changed,
//! added or removed file and a swapped signature are rejected and named; every single-bit flip in
//! every file of a signed pack, the signature included, is rejected; the receipt records the
//! signature and the fingerprint covers the manifest.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use uc_pack::{Dtype, PackWriter};
use uc_sign::{PrivateKey, Resource, Trust};
use uc_verify::{CheckName, PackOptions, PackReport, SignatureOptions, verify_pack};

const BIN: &str = env!("CARGO_BIN_EXE_uc-verify");

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "uc-verify-signed-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A small pack: one record, one verbatim tensor, a copied config in a sub-directory.
fn pack(root: &Path) -> PathBuf {
    let src = root.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("config.json"), b"{\"model_type\": \"test\"}\n").unwrap();
    let dir = root.join("pack");
    let mut w = PackWriter::new(&dir).unwrap();
    let rec = uc_pack::testkit::record(&uc_pack::testkit::weights(128, 3), &[2, 64], 4);
    w.add_record("layers.0.q.weight", &rec, None).unwrap();
    w.add_verbatim("layers.0.norm.weight", Dtype::F32, &[2], &[0, 0, 128, 63, 0, 0, 0, 64])
        .unwrap();
    w.copy_file("cfg/config.json", src.join("config.json")).unwrap();
    w.info_mut().model_id = "test/signed".into();
    w.set_created_at("2024-05-06T07:08:09Z").unwrap();
    w.finish().unwrap();
    dir
}

fn key() -> PrivateKey {
    use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
    let k = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
    PrivateKey::from_pem(&k.to_pkcs8_pem(LineEnding::LF).unwrap()).unwrap()
}

fn unhex(s: &str) -> [u8; 32] {
    let mut o = [0u8; 32];
    for i in 0..32 {
        o[i] = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    o
}

/// Signs `dir` as `uc sign` does: the digests of a verification, manifest included.
fn sign(dir: &Path, key: &PrivateKey) {
    let r = verify_pack(dir, &PackOptions::default()).unwrap();
    assert!(r.verified);
    let mut files: Vec<Resource> = r
        .files
        .iter()
        .map(|f| Resource {
            name: f.name.clone(),
            sha256: unhex(&f.sha256),
        })
        .collect();
    files.push(Resource {
        name: "ultracompress.json".into(),
        sha256: unhex(r.manifest_sha256.as_deref().unwrap()),
    });
    let b = uc_sign::sign("pack", &files, key, &[]).unwrap();
    std::fs::write(dir.join("model.sig"), b).unwrap();
}

fn verify_signed(dir: &Path, trust: &Trust) -> PackReport {
    let so = SignatureOptions {
        path: dir.join("model.sig"),
        trust: trust.clone(),
    };
    verify_pack(
        dir,
        &PackOptions {
            signature: Some(&so),
            ..PackOptions::default()
        },
    )
    .unwrap()
}

fn failures(r: &PackReport) -> Vec<(CheckName, Option<String>)> {
    r.failures().map(|c| (c.name, c.file.clone())).collect()
}

fn run(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(BIN).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_signed_pack_verifies_and_tampering_is_named() {
    let tmp = Scratch::new("tamper");
    let dir = pack(&tmp.0);
    let k = key();
    let trust = Trust::PublicKey(k.public());
    let unsigned_fp = verify_pack(&dir, &PackOptions::default()).unwrap().fingerprint;
    sign(&dir, &k);
    let r = verify_signed(&dir, &trust);
    assert!(r.verified, "{:?}", failures(&r));
    let s = r.signature.as_ref().unwrap();
    assert_eq!((s.verdict, s.method, s.files_signed), ("valid", Some("key"), 3));
    // Signing does not change the fingerprint; a model.sig at the root is not an unlisted file.
    assert_eq!(r.fingerprint, unsigned_fp);
    assert!(verify_pack(&dir, &PackOptions::default()).unwrap().verified);

    // A changed byte in the manifest's notes (no other check binds it): only the signature fails.
    let m = dir.join("ultracompress.json");
    let orig = std::fs::read(&m).unwrap();
    let text = String::from_utf8(orig.clone())
        .unwrap()
        .replacen("\"notes\": \"", "\"notes\": \"x", 1);
    std::fs::write(&m, text).unwrap();
    assert!(verify_pack(&dir, &PackOptions::default()).unwrap().verified);
    let r = verify_signed(&dir, &trust);
    assert_eq!(
        failures(&r),
        vec![(CheckName::SignatureFiles, Some("ultracompress.json".into()))]
    );
    // And the fingerprint changed with it (R-12.10 covers the manifest).
    assert_ne!(r.fingerprint, unsigned_fp);
    std::fs::write(&m, &orig).unwrap();

    // An added file: unlisted for the manifest and unsigned for the signature.
    std::fs::write(dir.join("extra.txt"), b"x").unwrap();
    let f = failures(&verify_signed(&dir, &trust));
    assert!(
        f.contains(&(CheckName::SignatureFiles, Some("extra.txt".into()))),
        "{f:?}"
    );
    std::fs::remove_file(dir.join("extra.txt")).unwrap();

    // A removed file.
    let cfg = dir.join("cfg/config.json");
    let cfg_bytes = std::fs::read(&cfg).unwrap();
    std::fs::remove_file(&cfg).unwrap();
    let f = failures(&verify_signed(&dir, &trust));
    assert!(
        f.contains(&(CheckName::SignatureFiles, Some("cfg/config.json".into()))),
        "{f:?}"
    );
    std::fs::write(&cfg, cfg_bytes).unwrap();
    assert!(verify_signed(&dir, &trust).verified);

    // A signature swapped for one of another pack (same key), and a missing signature.
    let other = Scratch::new("other");
    let od = pack(&other.0);
    std::fs::write(od.join("cfg/config.json"), b"{\"model_type\": \"other\"}\n").unwrap();
    // Re-write the other pack's manifest digest for the edited file so that it verifies.
    let mut mv: Value = serde_json::from_slice(&std::fs::read(od.join("ultracompress.json")).unwrap()).unwrap();
    let body = std::fs::read(od.join("cfg/config.json")).unwrap();
    mv["files"]["cfg/config.json"]["sha256"] = format!("{:x}", Sha256::digest(&body)).into();
    mv["files"]["cfg/config.json"]["size_bytes"] = body.len().into();
    let total: u64 = mv["files"]
        .as_object()
        .unwrap()
        .values()
        .map(|f| f["size_bytes"].as_u64().unwrap())
        .sum();
    mv["size_bytes"] = total.into();
    std::fs::write(od.join("ultracompress.json"), serde_json::to_vec_pretty(&mv).unwrap()).unwrap();
    sign(&od, &k);
    let mine = std::fs::read(dir.join("model.sig")).unwrap();
    std::fs::copy(od.join("model.sig"), dir.join("model.sig")).unwrap();
    let f = failures(&verify_signed(&dir, &trust));
    assert!(
        f.iter().all(|(c, _)| *c == CheckName::SignatureFiles) && !f.is_empty(),
        "{f:?}"
    );
    std::fs::remove_file(dir.join("model.sig")).unwrap();
    let f = failures(&verify_signed(&dir, &trust));
    assert_eq!(f, vec![(CheckName::Signature, Some("model.sig".into()))]);
    std::fs::write(dir.join("model.sig"), mine).unwrap();

    // Another key.
    let other_key = PrivateKey::from_pem(&{
        use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
        p256::ecdsa::SigningKey::from_slice(&[8u8; 32])
            .unwrap()
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap()
    })
    .unwrap();
    let f = failures(&verify_signed(&dir, &Trust::PublicKey(other_key.public())));
    assert_eq!(f, vec![(CheckName::Signature, Some("model.sig".into()))]);

    // A symbolic link added: the signature check reports it too, not only file.unlisted.
    std::os::unix::fs::symlink("cfg/config.json", dir.join("link.json")).unwrap();
    let r = verify_signed(&dir, &trust);
    let f = failures(&r);
    assert!(
        f.contains(&(CheckName::SignatureFiles, Some("link.json".into()))),
        "{f:?}"
    );
    assert_eq!(r.signature.as_ref().unwrap().verdict, "invalid");
    std::fs::remove_file(dir.join("link.json")).unwrap();
    assert!(verify_signed(&dir, &trust).verified);
}

#[test]
fn every_single_bit_flip_in_every_file_of_a_signed_pack_is_rejected() {
    let tmp = Scratch::new("flip");
    let dir = pack(&tmp.0);
    let k = key();
    sign(&dir, &k);
    let trust = Trust::PublicKey(k.public());
    assert!(verify_signed(&dir, &trust).verified);
    let mut files = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() { stack.push(p) } else { files.push(p) }
        }
    }
    files.sort();
    assert_eq!(files.len(), 4, "{files:?}");
    let (mut flips, mut accepted) = (0usize, Vec::new());
    for f in &files {
        let orig = std::fs::read(f).unwrap();
        let mut bytes = orig.clone();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                bytes[i] ^= 1 << bit;
                std::fs::write(f, &bytes).unwrap();
                flips += 1;
                if verify_signed(&dir, &trust).verified {
                    accepted.push(format!("{}: byte {i} bit {bit}", f.display()));
                }
                bytes[i] ^= 1 << bit;
            }
        }
        std::fs::write(f, &orig).unwrap();
    }
    assert!(verify_signed(&dir, &trust).verified);
    eprintln!(
        "{flips} single-bit flips over {} files of a signed pack, {} accepted",
        files.len(),
        accepted.len()
    );
    assert!(flips > 20_000, "{flips}");
    assert!(
        accepted.is_empty(),
        "{} accepted: {:?}",
        accepted.len(),
        &accepted[..accepted.len().min(10)]
    );
}

#[test]
fn the_cli_verifies_signatures_and_the_receipt_records_them() {
    use p256::pkcs8::{EncodePublicKey as _, LineEnding};
    let tmp = Scratch::new("cli");
    let dir = pack(&tmp.0);
    let k = key();
    sign(&dir, &k);
    let pubkey = tmp.0.join("pub.pem");
    let vk = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
    std::fs::write(&pubkey, vk.verifying_key().to_public_key_pem(LineEnding::LF).unwrap()).unwrap();
    let receipt = tmp.0.join("receipt.json");
    let (code, out, err) = run(&[
        dir.to_str().unwrap(),
        "--public-key",
        pubkey.to_str().unwrap(),
        "--json",
        receipt.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("signature valid"), "{out}");
    let v: Value = serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    assert_eq!(v["signature"]["verdict"], "valid");
    assert_eq!(v["signature"]["method"], "key");
    assert_eq!(v["signature"]["key_id"], k.public().key_id());
    assert!(v["pack"]["manifest_sha256"].as_str().unwrap().len() == 64);
    let text = std::fs::read_to_string(&receipt).unwrap();
    assert!(!text.contains("PRIVATE"), "no key material in receipts");
    // Tampered: exit 1, the file named.
    std::fs::write(dir.join("cfg/config.json"), b"{\"model_type\": \"evil\"}\n").unwrap();
    let (code, out, _) = run(&[dir.to_str().unwrap(), "--public-key", pubkey.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("signature.files") && out.contains("cfg/config.json"),
        "{out}"
    );
    // Usage errors: exit 2.
    let (code, _, err) = run(&[
        dir.to_str().unwrap(),
        "--signature",
        dir.join("model.sig").to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("--public-key"), "{err}");
    let (code, _, err) = run(&[
        dir.to_str().unwrap(),
        "--public-key",
        dir.join("model.sig").to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("PEM"), "{err}");
    // A signature file elsewhere, named with --signature.
    std::fs::write(dir.join("cfg/config.json"), b"{\"model_type\": \"test\"}\n").unwrap();
    let elsewhere = tmp.0.join("pack.sig");
    std::fs::rename(dir.join("model.sig"), &elsewhere).unwrap();
    let (code, out, err) = run(&[
        dir.to_str().unwrap(),
        "--public-key",
        pubkey.to_str().unwrap(),
        "--signature",
        elsewhere.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
}
