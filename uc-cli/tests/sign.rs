//! `uc sign` and `uc compress --sign-key` (OMS v1.0, R-12.13), checked by `uc-verify`'s library:
//! both methods, both algorithms, deterministic signatures, a pack that does not verify is not
//! signed, a bad key fails before any work, and a failed signing leaves the previous signature.

use std::path::Path;

mod common;
use common::*;

fn write_p256(dir: &Path, seed: u8) -> (std::path::PathBuf, std::path::PathBuf) {
    use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
    let k = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
    let (sk, pk) = (dir.join(format!("k{seed}.pem")), dir.join(format!("k{seed}.pub.pem")));
    std::fs::write(&sk, k.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
    std::fs::write(&pk, k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap()).unwrap();
    (sk, pk)
}

fn write_ed25519(dir: &Path, seed: u8) -> (std::path::PathBuf, std::path::PathBuf) {
    use ed25519_dalek::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _};
    use p256::pkcs8::LineEnding;
    let k = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let (sk, pk) = (dir.join(format!("e{seed}.pem")), dir.join(format!("e{seed}.pub.pem")));
    std::fs::write(&sk, k.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
    std::fs::write(&pk, k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap()).unwrap();
    (sk, pk)
}

fn verify_with(pack: &Path, pubkey: &Path) -> uc_verify::PackReport {
    let pem = std::fs::read_to_string(pubkey).unwrap();
    let so = uc_verify::SignatureOptions {
        path: pack.join("model.sig"),
        trust: uc_sign::Trust::PublicKey(uc_sign::PublicKey::from_pem(&pem).unwrap()),
    };
    uc_verify::verify_pack(
        pack,
        &uc_verify::PackOptions {
            signature: Some(&so),
            ..uc_verify::PackOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn uc_sign_signs_a_pack_deterministically_with_either_algorithm() {
    let s = Scratch::new("sign");
    let src = s.join("tiny");
    tiny_model(&src);
    let pack = s.join("pack");
    ok(uc(&["compress", p(&src), "--output-dir", p(&pack), "--bits", "4"]));
    for (sk, pk) in [write_p256(&s.0, 1), write_ed25519(&s.0, 2)] {
        let v = json_of(&ok(uc(&["sign", p(&pack), "--key", p(&sk), "--json"])));
        assert_eq!(v["method"], "key");
        let first = std::fs::read(pack.join("model.sig")).unwrap();
        ok(uc(&["sign", p(&pack), "--key", p(&sk)]));
        assert_eq!(std::fs::read(pack.join("model.sig")).unwrap(), first, "deterministic");
        let r = verify_with(&pack, &pk);
        assert!(r.verified, "{:?}", r.failures().collect::<Vec<_>>());
        assert_eq!(r.signature.as_ref().unwrap().key_id.as_deref(), v["key_id"].as_str());
        assert_eq!(r.fingerprint, v["fingerprint"].as_str().unwrap());
    }
    // Inside the pack, only PACK/model.sig: another name there would be an unlisted file.
    let (sk0, _) = write_p256(&s.0, 6);
    let o = uc(&[
        "sign",
        p(&pack),
        "--key",
        p(&sk0),
        "--output",
        p(&pack.join("other.sig")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("must be"), "{}", stderr(&o));
    assert!(!pack.join("other.sig").exists());
    // Written elsewhere with --output; a second run replaces that signature.
    let (sk, pk) = write_p256(&s.0, 3);
    let out = s.join("pack.sig");
    ok(uc(&["sign", p(&pack), "--key", p(&sk0), "--output", p(&out)]));
    ok(uc(&["sign", p(&pack), "--key", p(&sk), "--output", p(&out)]));
    // Nothing the command did not write is replaced: a file that is not a signature, the key
    // itself, a link.
    let notes = s.join("notes.txt");
    std::fs::write(&notes, b"my notes\n").unwrap();
    let key_bytes = std::fs::read(&sk).unwrap();
    let link = s.join("link.sig");
    std::os::unix::fs::symlink(&out, &link).unwrap();
    for (target, want) in [(&notes, "never replaced"), (&sk, "overlap"), (&link, "symbolic link")] {
        let o = uc(&["sign", p(&pack), "--key", p(&sk), "--output", p(target)]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains(want), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read(&notes).unwrap(), b"my notes\n");
    assert_eq!(std::fs::read(&sk).unwrap(), key_bytes);
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    let pem = std::fs::read_to_string(&pk).unwrap();
    let so = uc_verify::SignatureOptions {
        path: out.clone(),
        trust: uc_sign::Trust::PublicKey(uc_sign::PublicKey::from_pem(&pem).unwrap()),
    };
    let r = uc_verify::verify_pack(
        &pack,
        &uc_verify::PackOptions {
            signature: Some(&so),
            ..uc_verify::PackOptions::default()
        },
    )
    .unwrap();
    assert!(r.verified);
}

#[test]
fn a_pack_that_does_not_verify_is_not_signed_and_bad_keys_fail_first() {
    let s = Scratch::new("sign-bad");
    let src = s.join("tiny");
    tiny_model(&src);
    let pack = s.join("pack");
    ok(uc(&["compress", p(&src), "--output-dir", p(&pack), "--bits", "4"]));
    let (sk, pk) = write_p256(&s.0, 4);
    ok(uc(&["sign", p(&pack), "--key", p(&sk)]));
    let good = std::fs::read(pack.join("model.sig")).unwrap();
    // A tampered pack: exit 1, and the previous signature is left as it was.
    std::fs::write(pack.join("config.json"), b"{\"tampered\": true}\n").unwrap();
    let o = uc(&["sign", p(&pack), "--key", p(&sk)]);
    assert_eq!(o.status.code(), Some(1), "a pack that fails verification: exit 1");
    assert!(stderr(&o).contains("refusing to sign"), "{}", stderr(&o));
    assert_eq!(std::fs::read(pack.join("model.sig")).unwrap(), good);
    // Keys: a public key, a missing file, garbage, an encrypted key: exit 2, naming the file.
    for (bad, want) in [
        (pk.clone(), "public key"),
        (s.join("missing.pem"), "missing.pem"),
        (pack.join("config.json"), "PEM"),
    ] {
        let o = uc(&["sign", p(&pack), "--key", p(&bad)]);
        assert_eq!(o.status.code(), Some(2));
        let e = stderr(&o);
        assert!(e.contains(want), "{e}");
    }
    let enc = s.join("enc.pem");
    std::fs::write(
        &enc,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBAA==\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let o = uc(&["sign", p(&pack), "--key", p(&enc)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("encrypted"), "{}", stderr(&o));
    // compress --sign-key with a bad key fails before writing anything.
    let out2 = s.join("pack2");
    let o = uc(&[
        "compress",
        p(&src),
        "--output-dir",
        p(&out2),
        "--bits",
        "4",
        "--sign-key",
        p(&pk),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!out2.exists());
}

#[test]
fn compress_sign_key_installs_a_signed_pack() {
    let s = Scratch::new("compress-sign");
    let src = s.join("tiny");
    tiny_model(&src);
    // A source's own model.sig is not copied into the pack.
    std::fs::write(src.join("model.sig"), b"{}").unwrap();
    let (sk, pk) = write_p256(&s.0, 5);
    // model_id is the output directory's name: the unsigned twin below has the same name.
    let pack = s.join("a/pack");
    let v = json_of(&ok(uc(&[
        "compress",
        p(&src),
        "--output-dir",
        p(&pack),
        "--bits",
        "4",
        "--sign-key",
        p(&sk),
        "--json",
    ])));
    assert_eq!(v["signature"]["method"], "key");
    let r = verify_with(&pack, &pk);
    assert!(r.verified, "{:?}", r.failures().collect::<Vec<_>>());
    // The same command without signing gives the same pack files and fingerprint.
    let plain = s.join("b/pack");
    ok(uc(&["compress", p(&src), "--output-dir", p(&plain), "--bits", "4"]));
    assert!(!plain.join("model.sig").exists());
    let rp = uc_verify::verify_pack(&plain, &uc_verify::PackOptions::default()).unwrap();
    assert_eq!(rp.fingerprint, r.fingerprint);
}
