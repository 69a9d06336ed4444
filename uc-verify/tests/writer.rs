//! The pack writer (uc-pack's `PackWriter`) against the verifier: typed errors for bad input, a
//! writer that stays usable after a refused call, and sharding.

use std::fs;
use std::path::PathBuf;
use uc_pack::layout::INDEX_NAME;
use uc_pack::{Dtype, PackWriteError, PackWriter, WriterOptions};
use uc_verify::{PackOptions, verify_pack};

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("uc-encode-pack-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn record(n: u64) -> Vec<u8> {
    let w: Vec<f32> = (0..n).map(|i| (i as f32 * 0.7).sin()).collect();
    uc_pack::testkit::record(&w, &[n], 3)
}

#[test]
fn bad_input_gets_typed_errors_naming_the_tensor_or_file() {
    let tmp = Scratch::new("errors");
    let mut w = PackWriter::new(tmp.0.join("p")).unwrap();
    for name in ["", "__metadata__", "__uc_pad_0"] {
        assert!(matches!(
            w.add_verbatim(name, Dtype::F32, &[1], &[0; 4]),
            Err(PackWriteError::InvalidName { .. })
        ));
    }
    w.add_verbatim("a", Dtype::F32, &[1], &[0; 4]).unwrap();
    assert!(matches!(w.add_verbatim("a", Dtype::F32, &[1], &[0; 4]), Err(PackWriteError::Duplicate(n)) if n == "a"));
    assert!(matches!(
        w.add_record("a", &record(70), None),
        Err(PackWriteError::Duplicate(_))
    ));
    assert!(matches!(
        w.add_verbatim("b", Dtype::F16, &[3], &[0; 5]),
        Err(PackWriteError::DataLength {
            expected: Some(6),
            got: 5,
            ..
        })
    ));
    assert!(matches!(
        w.add_verbatim("b", Dtype::F32, &[1 << 32, 1 << 32], &[0; 4]),
        Err(PackWriteError::DataLength { expected: None, .. })
    ));
    let rec = record(70);
    assert!(matches!(
        w.add_verbatim("b", Dtype::U8, &[rec.len() as u64], &rec),
        Err(PackWriteError::LooksLikeRecord(_))
    ));
    let mut bad = rec.clone();
    bad[250] ^= 4;
    match w.add_record("b", &bad, None) {
        Err(PackWriteError::InvalidRecord { tensor, error }) => {
            assert_eq!(tensor, "b");
            assert_eq!(error.kind, uc_format::ErrorKind::CrcMismatch);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        w.add_record("b", &rec, Some(f64::NAN)),
        Err(PackWriteError::InvalidValue { what: "rel_l2", .. })
    ));
    let src = tmp.0.join("cfg.json");
    fs::write(&src, b"{}").unwrap();
    for name in [
        "../x",
        "/abs",
        "model.safetensors",
        "model-00001-of-00002.safetensors",
        "model.safetensors.index.json",
        "ultracompress.json",
    ] {
        assert!(
            matches!(w.copy_file(name, &src), Err(PackWriteError::InvalidName { .. })),
            "{name}"
        );
    }
    w.copy_file("config.json", &src).unwrap();
    assert!(matches!(
        w.copy_file("config.json", &src),
        Err(PackWriteError::Duplicate(_))
    ));
    assert!(matches!(
        w.copy_file("config.json/x", &src),
        Err(PackWriteError::Io { .. }) | Err(PackWriteError::Duplicate(_))
    ));
    match w.copy_file("missing.json", tmp.0.join("nope.json")) {
        Err(e @ PackWriteError::Io { .. }) => assert!(e.to_string().contains("nope.json"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        w.set_created_at("2024-01-01 00:00:00"),
        Err(PackWriteError::InvalidValue { .. })
    ));
    assert!(matches!(PackWriter::new("/"), Err(PackWriteError::BadPath(_))));
    let opts = WriterOptions {
        shard_size: 0,
        ..WriterOptions::default()
    };
    assert!(matches!(
        PackWriter::with_options(tmp.0.join("q"), opts),
        Err(PackWriteError::InvalidValue { .. })
    ));
    // The failed calls left the writer usable: it still writes a valid pack.
    w.add_record("b", &rec, Some(0.01)).unwrap();
    w.set_created_at("2024-01-01T00:00:00Z").unwrap();
    let s = w.finish().unwrap();
    assert_eq!(s.safetensors_files, ["model.safetensors"]);
    let r = verify_pack(&tmp.0.join("p"), &PackOptions::default()).unwrap();
    assert!(r.verified, "{:?}", r.failures().collect::<Vec<_>>());
    assert_eq!(s.manifest.tensors["b"].rel_l2, Some(0.01));
}

#[test]
fn a_tensor_larger_than_the_shard_size_gets_a_shard_of_its_own() {
    let tmp = Scratch::new("shards");
    let dir = tmp.0.join("p");
    let opts = WriterOptions {
        shard_size: 100,
        ..WriterOptions::default()
    };
    let mut w = PackWriter::with_options(&dir, opts).unwrap();
    w.add_record("r1", &record(200), None).unwrap();
    w.add_record("r2", &record(65), None).unwrap();
    w.add_verbatim("v1", Dtype::F32, &[3], &[0; 12]).unwrap();
    w.add_verbatim("v2", Dtype::I64, &[2], &[0; 16]).unwrap();
    let s = w.finish().unwrap();
    // r1 and r2 exceed 100 bytes: each alone; v1 and v2 share the last shard.
    assert_eq!(s.safetensors_files.len(), 3);
    assert_eq!(s.safetensors_files[0], "model-00001-of-00003.safetensors");
    assert_eq!(s.manifest.tensors["r2"].file, "model-00002-of-00003.safetensors");
    let r = verify_pack(&dir, &PackOptions::default()).unwrap();
    assert!(r.verified, "{:?}", r.failures().collect::<Vec<_>>());
    assert!(dir.join(INDEX_NAME).exists());
}
