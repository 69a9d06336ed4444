//! What `uc-verify` reads from a pack, from untrusted bytes.
//!
//! Input format: a 4-byte little-endian length `L`, then `L` bytes of a safetensors file
//! (`model.safetensors`), then the manifest text (`ultracompress.json`); `L` is clamped to what is
//! there (`fuzz/seed-corpus.sh` builds seeds in this format from `conformance/vectors/packs/tiny`).
//!
//! * safetensors: `parse_header` and `read_header` agree; an error names an offset inside the file;
//!   an accepted header describes tensors that tile the data area exactly (sorted, contiguous,
//!   inside the file, each `shape × dtype size` long); every U8 tensor that starts with the record
//!   magic is checked as in `record_parse`, `verify_record` agrees with `Record::parse` and its
//!   `recon_sha256` is the SHA-256 of the decoded bits; `for_each_reconstructed` equals decode +
//!   `merge_overlay_into`.
//! * differential: every header the strict parser accepts, the `safetensors` crate accepts too and
//!   lists with the same names, dtypes, shapes, offsets and metadata.
//! * manifest: when the text is JSON, `check_manifest` never panics and, when it reports no issue,
//!   has extracted every member; an accepted `created_at` round-trips through `rfc3339_utc`.
//! * the whole pack (inputs up to 64 KiB): written to a temporary directory, `verify_pack` returns
//!   a report (never an error: the files are readable) whose `verified` means "no failed check";
//!   the shared pack reader (`uc_encode::unpack::inspect`) accepts it exactly when it is verified.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use std::io::Cursor;
use std::path::PathBuf;
use uc_fuzz::{MAX_DECODE, assert_same_bits, check};
use uc_pack::manifest::{check_file_name, check_manifest};
use uc_pack::safetensors::{Dtype, parse_header, read_header, tensor_nbytes};
use uc_pack::{for_each_reconstructed, hex};
use uc_verify::{PackOptions, verify_pack, verify_record};

fn split(data: &[u8]) -> (&[u8], &[u8]) {
    if data.len() < 4 {
        return (data, &[]);
    }
    let n = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let rest = &data[4..];
    rest.split_at(n.min(rest.len()))
}

fn record(bytes: &[u8]) {
    let parsed = check::validate_checked(bytes);
    let verified = verify_record(bytes);
    match (&parsed, &verified) {
        (Err(a), Err(b)) => assert_eq!(a, b),
        (Ok(rec), Ok(report)) => {
            assert_eq!(report.shape, rec.shape());
            assert_eq!(
                (report.bits, report.overlay_rank, report.n),
                (rec.bits(), rec.overlay_rank(), rec.len())
            );
            assert_eq!(
                (report.record_len, report.crc32),
                (rec.layout().record_len, rec.layout().crc32)
            );
            if let Some(w) = check::exercise(rec, bytes.len() as u64) {
                let le: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
                assert_eq!(report.recon_sha256, hex(&Sha256::digest(&le)));
                let r = u64::from(rec.overlay_rank());
                if rec.len().saturating_mul(r) <= 1 << 22 && r * (rec.rows() + rec.cols()) <= MAX_DECODE {
                    let mut merged = w.clone();
                    rec.merge_overlay_into(&mut merged).unwrap();
                    let mut streamed = Vec::with_capacity(w.len());
                    for_each_reconstructed(rec, |first, vals| {
                        assert_eq!(first, streamed.len() as u64);
                        streamed.extend_from_slice(vals);
                        true
                    })
                    .unwrap();
                    assert_same_bits("for_each_reconstructed vs merge_overlay_into", &merged, &streamed);
                }
            }
        }
        _ => panic!("verify_record and Record::parse disagree"),
    }
}

fn safetensors(st: &[u8]) {
    let len = st.len() as u64;
    let parsed = parse_header(st, len);
    let read = read_header(&mut Cursor::new(st), len).expect("reading from memory cannot fail");
    assert_eq!(parsed, read, "parse_header and read_header disagree");
    let h = match parsed {
        Ok(h) => h,
        Err(e) => {
            assert!(e.offset <= len, "{e}: offset outside the {len}-byte file");
            let _ = e.to_string();
            return;
        }
    };
    assert_eq!(h.data_start, 8 + h.header_len);
    assert!(h.data_start <= len && h.file_len == len);
    let mut pos = 0u64;
    for t in &h.tensors {
        assert_eq!(t.begin, pos, "tensors do not tile the data area");
        assert_eq!(tensor_nbytes(t.dtype, &t.shape), Some(t.end - t.begin));
        pos = t.end;
    }
    assert_eq!(h.data_start + pos, len, "tensors do not cover the data area");
    differential(st, &h);
    for t in &h.tensors {
        let a = (h.data_start + t.begin) as usize;
        let bytes = st.get(a..a + t.len() as usize).expect("tensor outside the file");
        if t.dtype == Dtype::U8 && bytes.starts_with(&uc_format::MAGIC) {
            record(bytes);
        }
    }
}

/// Differential check against the `safetensors` crate (Hugging Face's reference reader): whatever
/// the strict parser accepts, it accepts too and lists with the same names, dtypes, shapes and
/// offsets, and nothing more (the strict parser is allowed to reject more, never to accept more or
/// read differently).
fn differential(st: &[u8], h: &uc_pack::safetensors::Header) {
    let (n, meta) = match safetensors::SafeTensors::read_metadata(st) {
        Ok(m) => m,
        Err(e) => panic!("the strict parser accepted a header the safetensors crate rejects: {e:?}"),
    };
    assert_eq!(n as u64, h.header_len, "header length");
    let theirs = meta.tensors();
    assert_eq!(theirs.len(), h.tensors.len(), "tensor count");
    for t in &h.tensors {
        let o = theirs
            .get(&t.name)
            .unwrap_or_else(|| panic!("tensor {:?} not listed by the safetensors crate", t.name));
        assert_eq!(format!("{:?}", o.dtype), t.dtype.name(), "{}: dtype", t.name);
        let shape: Vec<u64> = o.shape.iter().map(|&d| d as u64).collect();
        assert_eq!(shape, t.shape, "{}: shape", t.name);
        assert_eq!(
            (o.data_offsets.0 as u64, o.data_offsets.1 as u64),
            (t.begin, t.end),
            "{}: offsets",
            t.name
        );
    }
    let theirs_meta: std::collections::BTreeMap<String, String> = meta
        .metadata()
        .clone()
        .map(|m| m.into_iter().collect())
        .unwrap_or_default();
    assert_eq!(theirs_meta, h.metadata, "__metadata__");
}

fn manifest(text: &[u8]) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(text) else {
        return;
    };
    let c = check_manifest(&v);
    for i in &c.issues {
        assert!(!i.message.is_empty());
    }
    if c.issues.is_empty() {
        assert!(c.files.is_some() && c.tensors.is_some() && c.bpw.is_some());
        assert!(c.size_bytes.is_some() && c.bpw_accounting.is_some());
        assert!(c.malformed_files.is_empty());
        for name in c.files.as_ref().unwrap().keys() {
            assert!(check_file_name(name).is_ok());
        }
    }
    if let Some(t) = v
        .get("created_at")
        .and_then(|s| s.as_str())
        .and_then(uc_pack::time::parse_rfc3339_utc)
    {
        // 9999-12-31T23:59:60Z is one second past what rfc3339_utc can print.
        if t <= 253_402_300_799 {
            let back = uc_pack::time::rfc3339_utc(t);
            assert_eq!(uc_pack::time::parse_rfc3339_utc(&back), Some(t), "{t} -> {back:?}");
        }
    }
}

fn whole_pack(st: &[u8], manifest: &[u8]) {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("uc-fuzz-pack-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    });
    std::fs::write(dir.join("model.safetensors"), st).unwrap();
    std::fs::write(dir.join("ultracompress.json"), manifest).unwrap();
    let report = verify_pack(dir, &PackOptions::default()).expect("verify_pack: no I/O error on a readable pack");
    assert_eq!(report.verified, report.failures().next().is_none());
    assert!(!report.checks.is_empty());
    // The shared pack reader of `uc inspect`, `uc unpack` and `uc eval`: it reads exactly the
    // packs uc-verify accepts, and refuses the others as a verification failure.
    match uc_encode::unpack::inspect(dir) {
        Ok((rows, _)) => {
            assert!(report.verified, "the pack reader accepted a pack uc-verify rejects");
            assert_eq!(rows.iter().filter(|r| r.bits.is_some()).count(), report.tensors.len());
        }
        Err(e) => {
            assert!(!report.verified, "the pack reader refused a verified pack: {e}");
            assert!(matches!(e, uc_encode::CompressError::Verification(_)), "{e}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    uc_fuzz::single_threaded();
    let (st, m) = split(data);
    safetensors(st);
    manifest(m);
    if data.len() <= 64 << 10 {
        whole_pack(st, m);
    }
});
