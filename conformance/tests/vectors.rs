//! The committed vectors are exactly what the generator produces, every decode path passes every
//! vector in process, and every MUST clause of the spec is exercised by a vector.

use conformance::{Expect, files, vectors};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use uc_format::ErrorKind;

fn list(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn committed_vectors_match_the_generator() {
    let tmp = std::env::temp_dir().join(format!("uc-vectors-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    files::write_all(&tmp, &vectors::all()).unwrap();
    let generated = list(&tmp);
    let committed = list(&conformance::default_vectors_dir());
    let _ = std::fs::remove_dir_all(&tmp);
    let gen_names: BTreeSet<_> = generated.keys().collect();
    let com_names: BTreeSet<_> = committed.keys().collect();
    assert_eq!(
        gen_names, com_names,
        "file sets differ: run `cargo run -p conformance --bin gen-vectors` and commit the result"
    );
    for (name, bytes) in &generated {
        assert!(
            committed[name] == *bytes,
            "{} differs from the generator's output",
            name.display()
        );
    }
}

#[test]
fn every_decode_path_passes_every_vector_in_process() {
    let set = files::load(&conformance::default_vectors_dir()).unwrap();
    assert!(set.len() > 100);
    for path in [
        uc_decode::Path::Scalar,
        uc_decode::Path::Portable,
        uc_decode::Path::Avx2,
        uc_decode::Path::Auto,
    ] {
        for v in &set {
            if let Err(e) = conformance::runner::check_in_process(v, path) {
                panic!("{} with path {path:?}: {e}", v.name);
            }
        }
    }
}

/// Clauses that say MUST and that no decoder vector can exercise, with where they are tested.
const EXEMPT: &[(&str, &str)] = &[
    (
        "R-7.7",
        "encoders round scales to nearest even: uc-format num tests and uc-encode tests",
    ),
    (
        "R-9.4",
        "API rule on caller buffers: uc-decode tests of DecodeError and the C ABI tests",
    ),
    ("R-11.5", "audit procedure: uc-verify's manifest digest checks"),
];

fn spec_clauses() -> BTreeMap<String, String> {
    let spec = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/uc-pack-v0.4.md")).unwrap();
    let mut clauses = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in spec.lines() {
        if let Some(rest) = line.strip_prefix("**R-") {
            let id: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            let id = format!("R-{id}");
            clauses.insert(id.clone(), line.to_string());
            current = Some(id);
        } else if line.starts_with("## ") {
            current = None;
        } else if let Some(c) = &current {
            let text = clauses.get_mut(c).unwrap();
            text.push('\n');
            text.push_str(line);
        }
    }
    clauses
}

#[test]
fn every_must_clause_is_cited_by_a_vector() {
    let clauses = spec_clauses();
    assert!(clauses.len() > 60, "spec parse found only {} clauses", clauses.len());
    let set = files::load(&conformance::default_vectors_dir()).unwrap();
    let pack_clauses = conformance::packs::cited(&conformance::default_vectors_dir()).unwrap();
    let cited: BTreeSet<&str> = set
        .iter()
        .flat_map(|v| v.clauses.iter().map(String::as_str))
        .chain(pack_clauses.iter().map(String::as_str))
        .collect();
    for c in &cited {
        assert!(
            clauses.contains_key(*c),
            "a vector cites {c}, which the spec does not define"
        );
    }
    let exempt: BTreeMap<&str, &str> = EXEMPT.iter().copied().collect();
    let mut missing = Vec::new();
    for (id, text) in &clauses {
        if text.contains("MUST") && !cited.contains(id.as_str()) && !exempt.contains_key(id.as_str()) {
            missing.push(id.clone());
        }
    }
    assert!(missing.is_empty(), "MUST clauses cited by no vector: {missing:?}");
    for (id, _) in EXEMPT {
        assert!(
            clauses.get(*id).is_some_and(|t| t.contains("MUST")),
            "exemption for {id}, which has no MUST"
        );
        assert!(!cited.contains(id), "{id} is exempt but also cited: drop the exemption");
    }
}

#[test]
fn every_error_class_has_a_negative_vector_and_its_clause_exists() {
    let clauses = spec_clauses();
    let set = files::load(&conformance::default_vectors_dir()).unwrap();
    let mut seen = BTreeSet::new();
    for v in &set {
        match &v.expect {
            Expect::Invalid { error, .. } => {
                seen.insert(error.code());
            }
            Expect::EveryPrefixTruncated => {
                seen.insert(ErrorKind::Truncated.code());
            }
            Expect::Valid { .. } => {}
        }
    }
    for k in ErrorKind::ALL {
        assert!(seen.contains(&k.code()), "no negative vector for {}", k.name());
        assert!(
            clauses.contains_key(k.clause()),
            "{} cites {}, which the spec does not define",
            k.name(),
            k.clause()
        );
    }
}

#[test]
fn the_pack_vectors_verify_with_their_fingerprints_and_a_flipped_byte_does_not() {
    for name in conformance::packs::ALL {
        let dir = conformance::default_vectors_dir().join("packs").join(name);
        let meta = conformance::packs::meta(&conformance::default_vectors_dir(), name).unwrap();
        // The signed pack is verified with its signature.
        let sig = meta["public_key"].as_str().map(|k| {
            let pem = std::fs::read_to_string(conformance::default_vectors_dir().join("packs").join(k)).unwrap();
            uc_verify::SignatureOptions {
                path: dir.join("model.sig"),
                trust: uc_sign::Trust::PublicKey(uc_sign::PublicKey::from_pem(&pem).unwrap()),
            }
        });
        let opts = uc_verify::PackOptions {
            signature: sig.as_ref(),
            ..uc_verify::PackOptions::default()
        };
        let report = uc_verify::verify_pack(&dir, &opts).unwrap();
        let failures: Vec<_> = report
            .failures()
            .map(|c| format!("{}: {}", c.name, c.message))
            .collect();
        assert!(report.verified, "{name}: {failures:?}");
        let records = match *name {
            conformance::packs::TINY | conformance::packs::TWO_LEVEL | conformance::packs::SIGNED => 3,
            _ => 4,
        };
        assert_eq!(report.tensors.len(), records, "{name}");
        // the fingerprint uc-verify reports is the one recorded with the vector, which the
        // generator computed from the files.
        assert_eq!(report.fingerprint, meta["fingerprint"].as_str().unwrap(), "{name}");
        assert_eq!(
            report.fingerprint,
            conformance::packs::fingerprint(&dir).unwrap(),
            "{name}"
        );
        // A copy with one byte of the last record flipped is rejected.
        let tmp = std::env::temp_dir().join(format!("uc-pack-vector-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        let mut last_shard = None;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let f = p.file_name().unwrap().to_string_lossy().into_owned();
            if f.ends_with(".safetensors") && last_shard.as_ref().is_none_or(|l: &String| f > *l) {
                last_shard = Some(f);
            }
            std::fs::copy(&p, tmp.join(p.file_name().unwrap())).unwrap();
        }
        let st = tmp.join(last_shard.unwrap());
        let mut bytes = std::fs::read(&st).unwrap();
        let n = bytes.len();
        bytes[n - 100] ^= 0x04;
        std::fs::write(&st, bytes).unwrap();
        let report = uc_verify::verify_pack(&tmp, &uc_verify::PackOptions::default()).unwrap();
        assert!(!report.verified, "{name}");
        if let Some(s) = &sig {
            assert!(report.signature.is_none());
            // Signed: the flipped record also fails the signature; with the record restored and the
            // manifest's notes changed (a byte no other check covers), only the signature fails.
            let s2 = uc_verify::SignatureOptions {
                path: tmp.join("model.sig"),
                trust: s.trust.clone(),
            };
            let with_sig = uc_verify::PackOptions {
                signature: Some(&s2),
                ..uc_verify::PackOptions::default()
            };
            let r = uc_verify::verify_pack(&tmp, &with_sig).unwrap();
            assert!(
                r.failures().any(|c| c.name == uc_verify::CheckName::SignatureFiles),
                "{name}"
            );
            std::fs::copy(dir.join(st.file_name().unwrap()), &st).unwrap();
            let m = tmp.join("ultracompress.json");
            let text = std::fs::read_to_string(&m)
                .unwrap()
                .replacen("Conformance vector", "Conformance vectoR", 1);
            std::fs::write(&m, text).unwrap();
            assert!(
                uc_verify::verify_pack(&tmp, &uc_verify::PackOptions::default())
                    .unwrap()
                    .verified
            );
            let r = uc_verify::verify_pack(&tmp, &with_sig).unwrap();
            let failed: Vec<_> = r.failures().map(|c| (c.name, c.file.clone())).collect();
            assert_eq!(
                failed,
                vec![(
                    uc_verify::CheckName::SignatureFiles,
                    Some("ultracompress.json".to_string())
                )],
                "{name}"
            );
        }
        let _ = std::fs::remove_dir_all(&tmp);
    }
}

/// ignorable flag bits do not change decoding. The vector with every ignorable bit set
/// decodes exactly like the same record with flags 0 (and its CRC recomputed).
#[test]
fn ignorable_flags_decode_like_flags_zero() {
    let set = files::load(&conformance::default_vectors_dir()).unwrap();
    let v = set.iter().find(|v| v.name == "flags_ignorable_minor3").unwrap();
    assert_eq!(u32::from_le_bytes(v.record[28..32].try_into().unwrap()), 0xffff_0000);
    assert_eq!(u16::from_le_bytes([v.record[10], v.record[11]]), 3);
    let mut plain = v.record.clone();
    plain[28..32].copy_from_slice(&0u32.to_le_bytes());
    conformance::vectors::fix_crc(&mut plain);
    let decode = |b: &[u8]| {
        let rec = uc_decode::Record::parse(b).unwrap();
        let mut w = vec![0f32; rec.len() as usize];
        rec.decode_with(uc_decode::Path::Scalar, &mut w).unwrap();
        rec.merge_overlay_into(&mut w).unwrap();
        w.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    };
    assert_eq!(decode(&v.record), decode(&plain));
    let Expect::Valid { merged, .. } = &v.expect else {
        panic!("not a positive vector")
    };
    assert_eq!(decode(&plain), merged.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
}
