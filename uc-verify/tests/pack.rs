//! Pack verification end to end: packs written by uc-pack's `PackWriter` verify; every single-bit
//! corruption, deleted, added or truncated file, and corrupted manifest is detected; the CLI's exit
//! codes and receipt.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use uc_format::num::{f16_to_f32, f32_to_f16_bits};
use uc_format::{OverlayDtype, RecordParams, write_record};
use uc_pack::ErrorStats;
use uc_pack::{Dtype, PackWriter, WriterOptions};
use uc_verify::{PackOptions, PackReport, verify_pack};

const BIN: &str = env!("CARGO_BIN_EXE_uc-verify");

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "uc-verify-test-{}-{tag}-{}",
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

fn weights(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
        })
        .collect()
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| f32_to_f16_bits(*x).to_le_bytes()).collect()
}

fn bf16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter()
        .flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes())
        .collect()
}

/// The overlay record: 2-bit codes, shape [3, 8] (one partial block), rank-2 f16 overlay.
fn overlay_record() -> Vec<u8> {
    let params = RecordParams::new(2, &[3, 8], 2, OverlayDtype::F16).unwrap();
    let mut buf = vec![0u8; params.layout().unwrap().record_len as usize];
    let codes: Vec<u8> = (0..24).map(|i| (i * 7 % 4) as u8).collect();
    let u: Vec<u16> = (0..6).map(|i| f32_to_f16_bits(0.01 * (i as f32 - 2.5))).collect();
    let v: Vec<u16> = (0..16).map(|i| f32_to_f16_bits(0.02 * (i as f32 - 7.0))).collect();
    write_record(&params, &[-0.1, -0.03, 0.03, 0.1], &[0x3c00], &codes, &u, &v, &mut buf).unwrap();
    buf
}

/// Source weights (as stored in the source model, in its dtype) of the three quantized tensors.
struct Source {
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
}

fn source() -> Source {
    let round_f16 = |v: Vec<f32>| v.into_iter().map(|x| f16_to_f32(f32_to_f16_bits(x))).collect();
    let round_bf16 = |v: Vec<f32>| {
        v.into_iter()
            .map(|x| f32::from_bits(x.to_bits() & 0xffff_0000))
            .collect()
    };
    Source {
        a: weights(256, 1),
        b: round_bf16(weights(65, 2)),
        c: round_f16(weights(24, 3)),
    }
}

fn measured_rel_l2(record: &[u8], reference: &[f32]) -> f64 {
    let rec = uc_decode::Record::parse(record).unwrap();
    let mut st = ErrorStats::default();
    uc_pack::for_each_reconstructed(&rec, |start, vals| {
        for (i, w) in vals.iter().enumerate() {
            st.push(reference[start as usize + i], *w);
        }
        true
    })
    .unwrap();
    st.rel_l2().unwrap()
}

/// Writes the source model (verbatim tensors) used by `--against`.
fn write_source(root: &Path) -> PathBuf {
    let s = source();
    let dir = root.join("source");
    let mut w = PackWriter::new(&dir).unwrap();
    w.add_verbatim("layers.0.attn.q.weight", Dtype::F32, &[4, 64], &le_bytes(&s.a))
        .unwrap();
    w.add_verbatim("layers.0.mlp.up.weight", Dtype::Bf16, &[5, 13], &bf16_bytes(&s.b))
        .unwrap();
    w.add_verbatim("layers.0.mlp.down.weight", Dtype::F16, &[3, 8], &f16_bytes(&s.c))
        .unwrap();
    w.set_created_at("2024-05-06T07:08:09Z").unwrap();
    w.finish().unwrap();
    dir
}

struct PackSpec {
    shard_size: Option<u64>,
    claim_rel_l2: bool,
}

/// Writes a small pack: three records (4-bit [4,64]; 3-bit [5,13] with a partial last block;
/// 2-bit [3,8] with a rank-2 f16 overlay), three verbatim tensors (F32, F16, BF16), config.json and
/// tokenizer/tokenizer.json.
fn write_pack(root: &Path, name: &str, spec: &PackSpec) -> PathBuf {
    let s = source();
    let files = root.join(format!("{name}-src"));
    std::fs::create_dir_all(files.join("tok")).unwrap();
    std::fs::write(files.join("config.json"), b"{\"model_type\": \"test\"}\n").unwrap();
    std::fs::write(files.join("tok/tokenizer.json"), b"{\"vocab\": {}}\n").unwrap();
    let dir = root.join(name);
    let opts = WriterOptions {
        shard_size: spec.shard_size.unwrap_or(uc_pack::writer::DEFAULT_SHARD_SIZE),
        ..WriterOptions::default()
    };
    let mut w = PackWriter::with_options(&dir, opts).unwrap();
    let qa = uc_pack::testkit::record(&s.a, &[4, 64], 4);
    let qb = uc_pack::testkit::record(&s.b, &[5, 13], 3);
    let qc = overlay_record();
    let claim = |rec: &[u8], r: &[f32]| spec.claim_rel_l2.then(|| measured_rel_l2(rec, r));
    w.add_record("layers.0.attn.q.weight", &qa, claim(&qa, &s.a)).unwrap();
    w.add_record("layers.0.mlp.up.weight", &qb, claim(&qb, &s.b)).unwrap();
    w.add_record("layers.0.mlp.down.weight", &qc, claim(&qc, &s.c)).unwrap();
    w.add_verbatim(
        "layers.0.norm.weight",
        Dtype::F32,
        &[5],
        &le_bytes(&[1.0, 0.5, 0.25, 2.0, -1.0]),
    )
    .unwrap();
    w.add_verbatim("layers.0.bias", Dtype::F16, &[3], &f16_bytes(&[0.5, -0.5, 1.0]))
        .unwrap();
    w.add_verbatim("embed.weight", Dtype::Bf16, &[2, 2], &bf16_bytes(&[1.0, 2.0, 3.0, 4.0]))
        .unwrap();
    w.copy_file("config.json", files.join("config.json")).unwrap();
    w.copy_file("tokenizer/tokenizer.json", files.join("tok/tokenizer.json"))
        .unwrap();
    let info = w.info_mut();
    info.model_id = "test/tiny-uc".into();
    info.base_model = Some("test/tiny".into());
    info.license = Some("apache-2.0".into());
    info.notes = "built by the uc-verify tests".into();
    info.provenance.seed = Some(42);
    w.set_created_at("2024-05-06T07:08:09Z").unwrap();
    w.finish().unwrap();
    std::fs::remove_dir_all(&files).unwrap();
    dir
}

fn small_pack(root: &Path) -> PathBuf {
    write_pack(
        root,
        "pack",
        &PackSpec {
            shard_size: None,
            claim_rel_l2: false,
        },
    )
}

fn verify(dir: &Path) -> PackReport {
    verify_pack(dir, &PackOptions::default()).unwrap()
}

fn failed(r: &PackReport) -> Vec<String> {
    r.failures().map(|c| c.to_string()).collect()
}

fn run(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(BIN).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn files_of(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    out.sort();
    out
}

#[test]
fn a_written_pack_verifies_with_exit_0_and_a_receipt() {
    let tmp = Scratch::new("ok");
    let pack = small_pack(&tmp.0);
    let r = verify(&pack);
    assert!(r.verified, "{:#?}", failed(&r));
    assert_eq!(r.tensors.len(), 3);
    assert!(r.tensors.iter().any(|t| t.rank == 2 && t.overlay_dtype == "f16"));
    assert!(r.checks.iter().any(|c| c.name == "safetensors.layout" && c.ok));
    // Every tensor (padding excluded) starts at a multiple of 64 in the file; the overlay record's
    // length (428) is not a multiple of 64, so padding tensors exist.
    let bytes = std::fs::read(pack.join("model.safetensors")).unwrap();
    let h = uc_pack::safetensors::parse_header(&bytes, bytes.len() as u64).unwrap();
    assert!(h.tensors.iter().any(|t| t.is_padding()));
    for t in h.tensors.iter().filter(|t| !t.is_padding()) {
        assert_eq!(h.file_offset(t) % 64, 0, "{}", t.name);
    }
    let receipt = tmp.0.join("receipt.json");
    let (code, stdout, stderr) = run(&[pack.to_str().unwrap(), "--json", receipt.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("VERIFIED"), "{stdout}");
    let v: Value = serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["tool"], "uc-verify");
    assert!(uc_pack::time::parse_rfc3339_utc(v["time"].as_str().unwrap()).is_some());
    assert!(v["host"]["cpus"].as_u64().unwrap() >= 1 && v["host"]["os"].is_string());
    let files = v["pack"]["files"].as_array().unwrap();
    let names: Vec<&str> = files.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["config.json", "model.safetensors", "tokenizer/tokenizer.json"]);
    // the fingerprint covers every file, the manifest included (it sorts last here).
    let mut fp = Sha256::new();
    for f in files {
        let (n, d) = (f["name"].as_str().unwrap(), f["sha256"].as_str().unwrap());
        assert_eq!(d, uc_pack::hex(&Sha256::digest(std::fs::read(pack.join(n)).unwrap())));
        fp.update(format!("{n}:{d}\n"));
    }
    let md = uc_pack::hex(&Sha256::digest(std::fs::read(pack.join("ultracompress.json")).unwrap()));
    assert_eq!(v["pack"]["manifest_sha256"], md.as_str());
    fp.update(format!("ultracompress.json:{md}\n"));
    assert_eq!(v["pack"]["fingerprint"], uc_pack::hex(&fp.finalize()));
    assert!(v["checks"].as_array().unwrap().iter().all(|c| c["ok"] == true));
    assert_eq!(v["tensors"].as_array().unwrap().len(), 3);
    // The receipt on standard output parses too (the report then goes to standard error).
    let (code, stdout, stderr) = run(&[pack.to_str().unwrap(), "--json", "-", "--quiet"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["verified"], true);
    assert!(stderr.contains("VERIFIED"));
    // No temporary file is left beside the receipt.
    let left: Vec<_> = std::fs::read_dir(&tmp.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.iter().all(|n| !n.to_string_lossy().contains(".tmp-")), "{left:?}");
}

#[test]
fn the_manifest_records_what_the_pack_holds() {
    let tmp = Scratch::new("manifest");
    let pack = small_pack(&tmp.0);
    let v: Value = serde_json::from_slice(&std::fs::read(pack.join("ultracompress.json")).unwrap()).unwrap();
    assert_eq!(v["schema_version"], "1.1");
    assert_eq!(v["format_version"], "0.3");
    assert_eq!(v["created_at"], "2024-05-06T07:08:09Z");
    let t = &v["tensors"]["layers.0.mlp.up.weight"];
    assert_eq!(t["shape"], serde_json::json!([5, 13]));
    assert_eq!(t["bits"], 3);
    assert_eq!(t["file"], "model.safetensors");
    assert_eq!(v["tensors"]["layers.0.mlp.down.weight"]["overlay_dtype"], "f16");
    assert!(
        v["tensors"].get("layers.0.norm.weight").is_none(),
        "verbatim tensors are not in tensors"
    );
    // bpw is honest: all four sections of every record over all quantized weights.
    let a = &v["bpw_accounting"];
    assert_eq!(a["quantized_params"], 256 + 65 + 24);
    // 4-bit [4,64]: 4 blocks; 3-bit [5,13]: 2 blocks; 2-bit [3,8]: 1 block.
    let code_bits = 8 * (4 * 8 * 4 + 3 * 8 * 2 + 2 * 8);
    let scale_bits = 16 * (4 + 2 + 1);
    let grid_bits = 32 * (16 + 8 + 4);
    let overlay_bits = 16 * 2 * (3 + 8);
    assert_eq!(a["code_bits"], code_bits);
    assert_eq!(a["scale_bits"], scale_bits);
    assert_eq!(a["grid_bits"], grid_bits);
    assert_eq!(a["overlay_bits"], overlay_bits);
    let bpw = (code_bits + scale_bits + grid_bits + overlay_bits) as f64 / 345.0;
    assert_eq!(v["bpw"].as_f64().unwrap(), bpw);
    let size: u64 = v["files"]
        .as_object()
        .unwrap()
        .values()
        .map(|f| f["size_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(v["size_bytes"], size);
    assert_eq!(v["provenance"]["seed"], 42);
    assert!(v["provenance"]["environment"]["os"].is_string());
    // Deterministic: the same inputs give the same bytes, manifest included (same machine).
    let again = write_pack(
        &tmp.0,
        "again",
        &PackSpec {
            shard_size: None,
            claim_rel_l2: false,
        },
    );
    for f in files_of(&pack) {
        let rel = f.strip_prefix(&pack).unwrap();
        assert_eq!(
            std::fs::read(&f).unwrap(),
            std::fs::read(again.join(rel)).unwrap(),
            "{rel:?}"
        );
    }
}

/// Manifest members whose value no check of binds to the pack's files, so that a change to
/// them can verify: the descriptive members, `provenance`, the versions while they
/// stay acceptable, `bpw` within its tolerance and a tensor's optional `rel_l2`
/// (R-12.6; checked only with `--against`). Any other member a flip may create is unknown and
/// ignored.
const UNBOUND_MEMBERS: [&str; 12] = [
    "model_id",
    "base_model",
    "method",
    "method_version",
    "license",
    "tooling_version",
    "notes",
    "created_at",
    "provenance",
    "schema_version",
    "format_version",
    "bpw",
];

/// The paths (`/`-joined member names) at which two JSON values differ.
fn json_diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                let p = format!("{path}/{k}");
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => json_diff(u, v, &p, out),
                    _ => out.push(p),
                }
            }
        }
        _ if a != b => out.push(path.to_string()),
        _ => {}
    }
}

/// Flips every bit of every file of the pack, one at a time (issue: no single-bit flip may yield
/// a silent wrong reconstruction). A flip in a safetensors file must always fail verification (the
/// file digests). A flip in the manifest, which no digest covers, must fail verification
/// unless it only changes members that no check binds to the files (`UNBOUND_MEMBERS`, or a member
/// name the spec does not define); and then every tensor's `recon_sha256` is still the original's.
#[test]
fn every_single_bit_flip_in_every_file_is_detected_or_changes_no_bound_member() {
    let tmp = Scratch::new("flip");
    let pack = small_pack(&tmp.0);
    let files = files_of(&pack);
    assert_eq!(files.len(), 4);
    let original = verify(&pack);
    assert!(original.verified);
    let recon = |r: &PackReport| -> Vec<(String, String)> {
        r.tensors
            .iter()
            .map(|t| (t.name.clone(), t.recon_sha256.clone()))
            .collect()
    };
    let manifest_path = pack.join("ultracompress.json");
    let manifest: Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let (mut flips, mut rejected) = (0usize, 0usize);
    let mut accepted: std::collections::BTreeMap<String, usize> = Default::default();
    for f in &files {
        let orig = std::fs::read(f).unwrap();
        let mut bytes = orig.clone();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                bytes[i] ^= 1 << bit;
                std::fs::write(f, &bytes).unwrap();
                let r = verify(&pack);
                flips += 1;
                if !r.verified {
                    rejected += 1;
                } else {
                    assert_eq!(
                        f, &manifest_path,
                        "flipping bit {bit} of byte {i} of {f:?} went undetected"
                    );
                    let v: Value = serde_json::from_slice(&bytes).unwrap();
                    let mut changed = Vec::new();
                    json_diff(&manifest, &v, "", &mut changed);
                    assert!(
                        !changed.is_empty(),
                        "byte {i} bit {bit}: a verified flip that changes nothing"
                    );
                    for p in &changed {
                        let top = p.split('/').nth(1).unwrap();
                        let unbound = UNBOUND_MEMBERS.contains(&top) || (top == "tensors" && p.ends_with("/rel_l2"));
                        // A member name the flip created is one the spec does not define.
                        let unknown = manifest.pointer(p).is_none();
                        assert!(
                            unbound || unknown,
                            "byte {i} bit {bit} changed the bound member {p} and still verified"
                        );
                        *accepted.entry(format!("/{top}")).or_default() += 1;
                    }
                    assert_eq!(
                        recon(&r),
                        recon(&original),
                        "byte {i} bit {bit}: reconstruction changed"
                    );
                }
                bytes[i] ^= 1 << bit;
            }
        }
        std::fs::write(f, &orig).unwrap();
    }
    assert!(verify(&pack).verified);
    eprintln!("{flips} single-bit flips, {rejected} rejected; accepted (all in unbound members): {accepted:?}");
    assert!(flips > 24_000, "{flips}");
    // Most manifest bits are bound: the accepted flips are a small minority.
    assert!(rejected * 10 > flips * 9, "{rejected} of {flips}");
}

fn rewrite_digest(pack: &Path, name: &str) {
    let mpath = pack.join("ultracompress.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    let bytes = std::fs::read(pack.join(name)).unwrap();
    v["files"][name]["sha256"] = Value::String(uc_pack::hex(&Sha256::digest(&bytes)));
    v["files"][name]["size_bytes"] = Value::from(bytes.len() as u64);
    std::fs::write(&mpath, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// The second line of defence: the file digests are rewritten to match the corrupted file (as a
/// careless tool would), and a flipped bit (xor 0x01) in any record, any padding tensor or anywhere in
/// the safetensors header is still detected by the record, header and manifest checks. Excluded, as
/// nothing but the file digest covers them: the bytes of verbatim tensors, their names, and the
/// `"format":"pt"` metadata entry.
#[test]
fn corruption_is_detected_beyond_the_file_digests() {
    let tmp = Scratch::new("deep");
    let pack = small_pack(&tmp.0);
    let st = pack.join("model.safetensors");
    let orig = std::fs::read(&st).unwrap();
    let morig = std::fs::read(pack.join("ultracompress.json")).unwrap();
    let h = uc_pack::safetensors::parse_header(&orig, orig.len() as u64).unwrap();
    let json = String::from_utf8(orig[8..h.data_start as usize].to_vec()).unwrap();
    let mut excluded = vec![false; orig.len()];
    let mut ranges = Vec::new();
    let text_range = |needle: &str| {
        let at = json.find(needle).unwrap_or_else(|| panic!("{needle} not in header"));
        8 + at..8 + at + needle.len()
    };
    ranges.push(text_range("\"format\":\"pt\""));
    for t in h.tensors.iter().filter(|t| t.dtype != Dtype::U8) {
        ranges.push(text_range(&format!("\"{}\"", t.name)));
        ranges.push((h.data_start + t.begin) as usize..(h.data_start + t.end) as usize);
    }
    for r in ranges {
        for e in &mut excluded[r] {
            *e = true;
        }
    }
    let mut checked = 0;
    let mut bytes = orig.clone();
    for i in 0..orig.len() {
        if excluded[i] {
            continue;
        }
        bytes[i] ^= 0x01;
        std::fs::write(&st, &bytes).unwrap();
        rewrite_digest(&pack, "model.safetensors");
        let r = verify(&pack);
        let deep: Vec<_> = r.failures().filter(|c| c.name != "file.digest").collect();
        assert!(
            !deep.is_empty(),
            "flip of byte {i} of model.safetensors went undetected: {:#?}",
            failed(&r)
        );
        bytes[i] ^= 0x01;
        checked += 1;
    }
    std::fs::write(&st, &orig).unwrap();
    std::fs::write(pack.join("ultracompress.json"), &morig).unwrap();
    assert!(verify(&pack).verified);
    assert!(checked > 1500, "{checked}");
}

#[test]
fn record_corruption_names_file_tensor_check_and_offset() {
    let tmp = Scratch::new("offset");
    let pack = small_pack(&tmp.0);
    let st = pack.join("model.safetensors");
    let mut bytes = std::fs::read(&st).unwrap();
    let h = uc_pack::safetensors::parse_header(&bytes, bytes.len() as u64).unwrap();
    let t = h.tensor("layers.0.mlp.up.weight").unwrap();
    let at = (h.file_offset(t) + 200) as usize; // inside the grid section
    bytes[at] ^= 0x10;
    std::fs::write(&st, &bytes).unwrap();
    rewrite_digest(&pack, "model.safetensors");
    let r = verify(&pack);
    let c = r.failures().find(|c| c.name == "tensor.record").unwrap();
    assert_eq!(c.file.as_deref(), Some("model.safetensors"));
    assert_eq!(c.tensor.as_deref(), Some("layers.0.mlp.up.weight"));
    assert!(c.message.contains("crc_mismatch"), "{c}");
    assert_eq!(c.offset, Some(h.file_offset(t) + 24), "the CRC field of the record");
    // The CLI prints the same, with exit code 1.
    let (code, stdout, _) = run(&[pack.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("FAIL tensor.record file model.safetensors tensor layers.0.mlp.up.weight at byte offset"),
        "{stdout}"
    );
}

#[test]
fn deleted_added_truncated_and_odd_files_are_detected() {
    let tmp = Scratch::new("files");
    let pack = small_pack(&tmp.0);
    let expect = |what: &str, check: &str, needle: &str| {
        let r = verify(&pack);
        assert!(
            r.failures().any(|c| c.name == check && c.to_string().contains(needle)),
            "{what}: {:#?}",
            failed(&r)
        );
    };
    // Deleted.
    let cfg = std::fs::read(pack.join("config.json")).unwrap();
    std::fs::remove_file(pack.join("config.json")).unwrap();
    expect("deleted", "file.digest", "missing");
    std::fs::write(pack.join("config.json"), &cfg).unwrap();
    // Added: a file at the top, a file in a sub-directory, an empty directory.
    std::fs::write(pack.join("extra.txt"), b"x").unwrap();
    expect("added", "file.unlisted", "extra.txt");
    std::fs::remove_file(pack.join("extra.txt")).unwrap();
    std::fs::write(pack.join("tokenizer/merges.txt"), b"").unwrap();
    expect("added in a sub-directory", "file.unlisted", "tokenizer/merges.txt");
    std::fs::remove_file(pack.join("tokenizer/merges.txt")).unwrap();
    std::fs::create_dir(pack.join("empty")).unwrap();
    expect("empty directory", "file.unlisted", "empty");
    std::fs::remove_dir(pack.join("empty")).unwrap();
    // A stray safetensors file breaks the layout too.
    std::fs::write(pack.join("adapter.safetensors"), b"").unwrap();
    expect("stray safetensors", "pack.layout", "adapter.safetensors");
    std::fs::remove_file(pack.join("adapter.safetensors")).unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/etc/hostname", pack.join("link")).unwrap();
        expect("symlink", "file.unlisted", "symbolic link");
        std::fs::remove_file(pack.join("link")).unwrap();
    }
    // Truncated: the size and digest differ, and the header no longer covers the data.
    let st = pack.join("model.safetensors");
    let orig = std::fs::read(&st).unwrap();
    std::fs::write(&st, &orig[..orig.len() - 1]).unwrap();
    expect("truncated", "file.digest", "size is");
    expect("truncated", "safetensors.header", "out_of_bounds");
    std::fs::write(&st, &orig[..5]).unwrap();
    expect("truncated to 5 bytes", "safetensors.header", "truncated");
    std::fs::write(&st, &orig).unwrap();
    assert!(verify(&pack).verified);
}

#[test]
fn corrupted_manifests_exit_1_with_a_clear_message() {
    let tmp = Scratch::new("manifest-bad");
    let pack = small_pack(&tmp.0);
    let mpath = pack.join("ultracompress.json");
    let orig = std::fs::read_to_string(&mpath).unwrap();
    let p = pack.to_str().unwrap();
    let check = |text: &str, needle: &str| {
        std::fs::write(&mpath, text).unwrap();
        let (code, stdout, stderr) = run(&[p]);
        assert_eq!(code, 1, "{needle}: {stdout}{stderr}");
        assert!(stdout.contains(needle), "{needle}: {stdout}");
    };
    check(
        &orig[..orig.len() / 2],
        "FAIL manifest.json file ultracompress.json at byte offset",
    );
    check("{\"a\": 1, \"a\": 2}", "appears twice");
    let v: Value = serde_json::from_str(&orig).unwrap();
    let mut m = v.clone();
    m.as_object_mut().unwrap().remove("tensors");
    check(
        &m.to_string(),
        "FAIL manifest.schema file ultracompress.json: /tensors: required member is missing",
    );
    let mut m = v.clone();
    m["bpw"] = Value::String("4.5".into());
    check(&m.to_string(), "/bpw: must be a non-negative number");
    let mut m = v.clone();
    m["files"]["config.json"]["size_bytes"] = Value::String("24".into());
    check(&m.to_string(), "/files/config.json/size_bytes: must be an integer");
    let mut m = v.clone();
    m["tensors"]["layers.0.attn.q.weight"]["recon_sha256"] = Value::String("0".repeat(64));
    check(&m.to_string(), "recon_sha256: manifest 0000");
    let mut m = v.clone();
    m["bpw"] = Value::from(v["bpw"].as_f64().unwrap() * (1.0 + 1e-6));
    check(&m.to_string(), "FAIL bpw");
    let mut m = v.clone();
    m["size_bytes"] = Value::from(1u64);
    check(&m.to_string(), "FAIL manifest.size_bytes");
    let mut m = v.clone();
    m["tensors"]["ghost.weight"] = v["tensors"]["layers.0.attn.q.weight"].clone();
    check(
        &m.to_string(),
        "tensor ghost.weight: tensor is listed in the manifest but is in no safetensors file",
    );
    let mut m = v.clone();
    m["tensors"]["layers.0.norm.weight"] = v["tensors"]["layers.0.attn.q.weight"].clone();
    check(&m.to_string(), "is in the pack but is not a uc record");
    // Unknown members are ignored (forward compatibility).
    let mut m = v.clone();
    m["from_the_future"] = serde_json::json!({"x": 1});
    std::fs::write(&mpath, m.to_string()).unwrap();
    assert_eq!(run(&[p]).0, 0);
    std::fs::remove_file(&mpath).unwrap();
    let (code, stdout, _) = run(&[p]);
    assert_eq!(code, 1);
    assert!(stdout.contains("ultracompress.json is missing"), "{stdout}");
    std::fs::write(&mpath, &orig).unwrap();
    assert_eq!(run(&[p]).0, 0);
}

#[test]
fn usage_and_io_errors_exit_2() {
    let tmp = Scratch::new("usage");
    let missing = tmp.0.join("no-such-pack");
    let (code, _, stderr) = run(&[missing.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no-such-pack"), "{stderr}");
    assert_eq!(run(&[]).0, 2);
    assert_eq!(run(&["--no-such-option", tmp.0.to_str().unwrap()]).0, 2);
    std::fs::write(tmp.0.join("r.ucr"), overlay_record()).unwrap();
    let r = tmp.0.join("r.ucr");
    assert_eq!(run(&[r.to_str().unwrap(), "--against", tmp.0.to_str().unwrap()]).0, 2);
    // Two pack directories at once.
    let pack = small_pack(&tmp.0);
    assert_eq!(run(&[pack.to_str().unwrap(), pack.to_str().unwrap()]).0, 2);
    // A receipt that cannot be written.
    let bad = tmp.0.join("no-dir/receipt.json");
    assert_eq!(run(&[pack.to_str().unwrap(), "--json", bad.to_str().unwrap()]).0, 2);
    // The source of --against does not exist.
    assert_eq!(
        run(&[pack.to_str().unwrap(), "--against", missing.to_str().unwrap()]).0,
        2
    );
    // A file of the pack instead of its directory: a usage error, not a failed verification.
    for f in ["model.safetensors", "ultracompress.json"] {
        let (code, _, err) = run(&[pack.join(f).to_str().unwrap()]);
        assert_eq!(code, 2, "{f}: {err}");
        assert!(err.contains("give the pack directory"), "{err}");
    }
    // A FIFO given as a record file is refused without blocking.
    let fifo = tmp.0.join("fifo.ucr");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let start = std::time::Instant::now();
    let (code, _, err) = run(&[fifo.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("not a regular file") && start.elapsed().as_secs() < 30,
        "{err}"
    );
}

#[test]
fn record_file_mode_still_works() {
    let tmp = Scratch::new("records");
    let ok = tmp.0.join("ok.ucr");
    std::fs::write(&ok, overlay_record()).unwrap();
    let mut bad = overlay_record();
    bad[300] ^= 1;
    let badp = tmp.0.join("bad.ucr");
    std::fs::write(&badp, bad).unwrap();
    let (code, stdout, _) = run(&[ok.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("OK "), "{stdout}");
    let (code, stdout, _) = run(&[ok.to_str().unwrap(), badp.to_str().unwrap(), "--json", "-"]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["verified"], false);
    assert_eq!(v["records"][1]["error"], "crc_mismatch");
}

#[test]
fn against_measures_reconstruction_error_per_tensor() {
    let tmp = Scratch::new("against");
    let src = write_source(&tmp.0);
    let pack = write_pack(
        &tmp.0,
        "claimed",
        &PackSpec {
            shard_size: None,
            claim_rel_l2: true,
        },
    );
    let s = source();
    let opts = PackOptions {
        against: Some(src.clone()),
        ..PackOptions::default()
    };
    let r = verify_pack(&pack, &opts).unwrap();
    assert!(r.verified, "{:#?}", failed(&r));
    for (name, reference) in [
        ("layers.0.attn.q.weight", &s.a),
        ("layers.0.mlp.up.weight", &s.b),
        ("layers.0.mlp.down.weight", &s.c),
    ] {
        let t = r.tensors.iter().find(|t| t.name == name).unwrap();
        let a = t.against.as_ref().unwrap();
        // The same quantity, computed independently here from a whole-tensor decode.
        let rec_bytes = {
            let f = std::fs::read(pack.join("model.safetensors")).unwrap();
            f[t.file_offset as usize..(t.file_offset + t.bytes) as usize].to_vec()
        };
        let rec = uc_decode::Record::parse(&rec_bytes).unwrap();
        let mut w = vec![0f32; rec.len() as usize];
        rec.decode_into(&mut w).unwrap();
        rec.merge_overlay_into(&mut w).unwrap();
        let num: f64 = w
            .iter()
            .zip(reference.iter())
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
            .sum();
        let den: f64 = reference.iter().map(|y| f64::from(*y).powi(2)).sum();
        let max = w
            .iter()
            .zip(reference.iter())
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs())
            .fold(0.0, f64::max);
        assert!((a.rel_l2.unwrap() - (num / den).sqrt()).abs() < 1e-12, "{name}");
        assert_eq!(a.max_abs, max, "{name}");
        assert!(a.rel_l2.unwrap() > 0.0, "{name}: {:?}", a.rel_l2);
        // The GSQ records approximate their source; the overlay record is synthetic.
        if name != "layers.0.mlp.down.weight" {
            assert!(a.rel_l2.unwrap() < 0.2, "{name}: {:?}", a.rel_l2);
        }
    }
    let (code, stdout, _) = run(&[pack.to_str().unwrap(), "--against", src.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("rel_l2") && stdout.contains("layers.0.mlp.up.weight"),
        "{stdout}"
    );
    // A manifest claim that does not match the measurement fails.
    let mpath = pack.join("ultracompress.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    v["tensors"]["layers.0.mlp.up.weight"]["rel_l2"] = Value::from(0.001);
    std::fs::write(&mpath, v.to_string()).unwrap();
    let r = verify_pack(&pack, &opts).unwrap();
    let f: Vec<_> = r.failures().collect();
    assert_eq!(f.len(), 1, "{:#?}", failed(&r));
    assert_eq!(
        (f[0].name.name(), f[0].tensor.as_deref()),
        ("against", Some("layers.0.mlp.up.weight"))
    );
    // Against a source that lacks a tensor, or has another shape.
    let other = tmp.0.join("other-source");
    let mut w = PackWriter::new(&other).unwrap();
    w.add_verbatim("layers.0.attn.q.weight", Dtype::F32, &[256], &le_bytes(&s.a))
        .unwrap();
    w.finish().unwrap();
    let r = verify_pack(
        &pack,
        &PackOptions {
            against: Some(other),
            ..PackOptions::default()
        },
    )
    .unwrap();
    let msgs = failed(&r).join("\n");
    assert!(msgs.contains("source shape [256] differs"), "{msgs}");
    assert!(msgs.contains("the source model has no tensor of this name"), "{msgs}");
}

#[test]
fn sharded_packs_verify_and_their_index_is_checked() {
    let tmp = Scratch::new("shards");
    let pack = write_pack(
        &tmp.0,
        "sharded",
        &PackSpec {
            shard_size: Some(700),
            claim_rel_l2: false,
        },
    );
    let r = verify(&pack);
    assert!(r.verified, "{:#?}", failed(&r));
    let shards: Vec<_> = r.files.iter().filter(|f| f.name.ends_with(".safetensors")).collect();
    assert!(shards.len() >= 3, "{shards:?}");
    assert!(
        shards
            .iter()
            .all(|f| f.name.starts_with("model-0000") && f.name.contains("-of-0000"))
    );
    assert!(!pack.join("model.safetensors").exists());
    let ipath = pack.join("model.safetensors.index.json");
    let orig = std::fs::read(&ipath).unwrap();
    let v: Value = serde_json::from_slice(&orig).unwrap();
    assert!(v["metadata"]["total_size"].as_u64().unwrap() > 0);
    // A wrong weight map or total size fails even with the digest rewritten.
    let mut m = v.clone();
    m["weight_map"]["layers.0.bias"] = Value::String("model-00002-of-00009.safetensors".into());
    std::fs::write(&ipath, m.to_string()).unwrap();
    rewrite_digest(&pack, "model.safetensors.index.json");
    assert!(failed(&verify(&pack)).iter().any(|f| f.contains("FAIL index")));
    let mut m = v.clone();
    m["metadata"]["total_size"] = Value::from(1u64);
    std::fs::write(&ipath, m.to_string()).unwrap();
    rewrite_digest(&pack, "model.safetensors.index.json");
    assert!(failed(&verify(&pack)).iter().any(|f| f.contains("total_size")));
    // A missing shard breaks the layout.
    std::fs::write(&ipath, &orig).unwrap();
    rewrite_digest(&pack, "model.safetensors.index.json");
    assert!(verify(&pack).verified);
    let last = shards.last().unwrap().name.clone();
    std::fs::remove_file(pack.join(&last)).unwrap();
    assert!(failed(&verify(&pack)).iter().any(|f| f.contains("missing shards")));
}

#[test]
fn the_writer_refuses_to_replace_a_pack_unless_asked_and_leaves_no_partial_directory() {
    let tmp = Scratch::new("overwrite");
    let pack = small_pack(&tmp.0);
    let before = std::fs::read(pack.join("ultracompress.json")).unwrap();
    assert!(matches!(
        PackWriter::new(&pack),
        Err(uc_pack::PackWriteError::Exists(_))
    ));
    // Overwriting replaces the old pack only once the new one is complete.
    let opts = WriterOptions {
        overwrite: true,
        ..WriterOptions::default()
    };
    let mut w = PackWriter::with_options(&pack, opts).unwrap();
    w.add_verbatim("x", Dtype::F32, &[1], &1f32.to_le_bytes()).unwrap();
    w.set_created_at("2030-01-01T00:00:00Z").unwrap();
    assert_eq!(std::fs::read(pack.join("ultracompress.json")).unwrap(), before);
    w.finish().unwrap();
    let r = verify(&pack);
    assert!(r.verified, "{:#?}", failed(&r));
    assert_eq!(r.tensors.len(), 0);
    assert!(!pack.join("config.json").exists());
    // An abandoned writer leaves nothing behind.
    let gone = tmp.0.join("abandoned");
    let mut w = PackWriter::new(&gone).unwrap();
    w.add_verbatim("x", Dtype::F32, &[1], &1f32.to_le_bytes()).unwrap();
    drop(w);
    assert!(!gone.exists());
    let names: Vec<String> = std::fs::read_dir(&tmp.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

#[test]
fn progress_is_reported_and_cancellation_stops_verification() {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;
    use uc_verify::{PackError, Progress};
    let tmp = Scratch::new("progress");
    let pack = small_pack(&tmp.0);
    let events = Mutex::new(Vec::new());
    let sink = |p: Progress| events.lock().unwrap().push(p);
    let opts = PackOptions {
        progress: Some(&sink),
        ..PackOptions::default()
    };
    assert!(verify_pack(&pack, &opts).unwrap().verified);
    let ev = events.into_inner().unwrap();
    // Each stage announces its total and the advances add up to it.
    let mut stages = Vec::new();
    for p in &ev {
        match *p {
            Progress::Stage { name, total } => stages.push((name, total, 0u64)),
            Progress::Advance(k) => stages.last_mut().unwrap().2 += k,
        }
    }
    assert_eq!(stages.len(), 2, "{stages:?}");
    for (name, total, done) in &stages {
        assert_eq!(total, done, "{name}");
    }
    assert_eq!(stages[1].1, 3, "three records");
    let cancel = AtomicBool::new(true);
    let opts = PackOptions {
        cancel: Some(&cancel),
        ..PackOptions::default()
    };
    assert!(matches!(verify_pack(&pack, &opts), Err(PackError::Interrupted)));
    // A tiny memory budget still verifies (records then go one at a time).
    let opts = PackOptions {
        memory_budget: 1,
        ..PackOptions::default()
    };
    assert!(verify_pack(&pack, &opts).unwrap().verified);
}

#[test]
fn crafted_names_are_escaped_and_a_killed_receipt_write_keeps_the_old_receipt() {
    let tmp = Scratch::new("forge");
    let dir = small_pack(&tmp.0);
    // A file whose name would erase the FAIL line and print a fake verdict on a terminal.
    let evil = "x\u{1b}[2K\r\u{1b}[1AVERIFIED: 99 checks passed\u{9b}2J";
    std::fs::write(dir.join(evil), b"").unwrap();
    let start = std::time::Instant::now();
    let (code, out, err) = run(&[dir.to_str().unwrap()]);
    assert!(start.elapsed().as_secs() < 60);
    assert_eq!(code, 1, "{out}{err}");
    for s in [&out, &err] {
        assert!(
            !s.contains('\u{1b}') && !s.contains('\u{9b}') && !s.contains('\r'),
            "{s:?}"
        );
    }
    assert!(
        out.contains("FAIL file.unlisted") && out.contains("\\u{1b}[2K"),
        "{out}"
    );
    assert!(out.lines().last().unwrap().starts_with("FAILED"), "{out}");
    // The receipt on stdout is JSON with the same name escaped for the terminal, and decodes back.
    let (code, json_out, _) = run(&[dir.to_str().unwrap(), "--quiet", "--json", "-"]);
    assert_eq!(code, 1);
    assert!(
        !json_out.contains('\u{1b}') && !json_out.contains('\u{9b}'),
        "{json_out:?}"
    );
    let v: Value = serde_json::from_str(&json_out).unwrap();
    assert!(v.to_string().contains("\\u001b[2K"), "{v}");
    std::fs::remove_file(dir.join(evil)).unwrap();

    // A receipt write killed after its temporary file is synced, before the rename: the previous
    // receipt is whole (the hook aborts the process as kill -9 would).
    let receipt = tmp.0.join("receipt.json");
    std::fs::write(&receipt, b"{\"old\": true}\n").unwrap();
    let o = Command::new(BIN)
        .args([dir.to_str().unwrap(), "--quiet", "--json", receipt.to_str().unwrap()])
        .env("UC_TEST_FS_ABORT", "file")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert_eq!(std::fs::read(&receipt).unwrap(), b"{\"old\": true}\n");
    // A receipt inside the pack would be an unlisted file: refused, the pack untouched.
    let (code, _, err) = run(&[
        dir.to_str().unwrap(),
        "--quiet",
        "--json",
        dir.join("r.json").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(!dir.join("r.json").exists());
    // The normal write replaces it atomically.
    let (code, _, _) = run(&[dir.to_str().unwrap(), "--quiet", "--json", receipt.to_str().unwrap()]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    assert_eq!(v["verified"], true);
}

/// Issue #14: the index check was quadratic (a valid pack of 240 000 tensors in 2 shards took
/// 98 s in a release build; `examples/many_tensors.rs` measures it). 60 000 tensors in 2 shards,
/// verified in a debug build within a bound that the quadratic check would exceed many times.
#[test]
fn a_pack_of_60_000_tensors_verifies_in_linear_time() {
    let tmp = Scratch::new("many");
    let dir = tmp.0.join("p");
    let opts = WriterOptions {
        shard_size: 2_000_000,
        ..WriterOptions::default()
    };
    let mut w = PackWriter::with_options(&dir, opts).unwrap();
    let data: Vec<u8> = (0..16).flat_map(|i| (i as f32).to_le_bytes()).collect();
    for i in 0..60_000 {
        w.add_verbatim(&format!("t.{i:06}.weight"), Dtype::F32, &[16], &data)
            .unwrap();
    }
    w.set_created_at("2024-01-01T00:00:00Z").unwrap();
    let s = w.finish().unwrap();
    assert_eq!(s.safetensors_files.len(), 2);
    let start = std::time::Instant::now();
    let r = verify(&dir);
    let secs = start.elapsed().as_secs_f64();
    assert!(r.verified, "{:?}", failed(&r));
    assert!(secs < 20.0, "verifying 60 000 tensors took {secs:.1} s");
}

/// Issue #14: a record-magic tensor was read whole before its header was checked, so a sparse
/// tensor whose first bytes are already invalid cost its whole size in memory (20 GB aborted). The
/// first 24 bytes are now validated first: a 512 MiB sparse tensor fails in far less memory than
/// its size (peak RSS measured with GNU time). The time is the file digest's (R-12.10 hashes every
/// file), which stays.
#[test]
fn a_huge_record_tensor_with_a_bad_header_is_refused_without_reading_it() {
    let tmp = Scratch::new("sparse");
    let dir = tmp.0.join("p");
    std::fs::create_dir_all(&dir).unwrap();
    let len: u64 = 512 << 20;
    let header = format!(
        "{{\"__metadata__\":{{\"uc.format\":\"0.3\"}},\"w\":{{\"dtype\":\"U8\",\"shape\":[{len}],\"data_offsets\":[0,{len}]}}}}"
    );
    let mut h = header.into_bytes();
    while (8 + h.len()) % 64 != 0 {
        h.push(b' ');
    }
    let mut head = (h.len() as u64).to_le_bytes().to_vec();
    head.extend_from_slice(&h);
    head.extend_from_slice(&uc_format::MAGIC);
    head.extend_from_slice(&[0xff, 0xff]); // version_major 65535: unsupported (step 4)
    let path = dir.join("model.safetensors");
    std::fs::write(&path, &head).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(8 + h.len() as u64 + len).unwrap(); // sparse: nothing of the tensor is written
    drop(f);
    let start = std::time::Instant::now();
    let o = Command::new("/usr/bin/time")
        .args(["-f", "UC_MAXRSS_KB=%M", BIN])
        .arg(&dir)
        .output()
        .expect("GNU time (Debian package `time`, installed by .ci/run)");
    let secs = start.elapsed().as_secs_f64();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    let rss: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("UC_MAXRSS_KB="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak-RSS line: {err}"));
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(
        out.contains("FAIL tensor.record") && out.contains("unsupported_version"),
        "{out}"
    );
    assert!(rss < 200 * 1024, "peak RSS {rss} kB");
    assert!(secs < 60.0, "{secs:.1} s");
}
