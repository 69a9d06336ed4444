//! The pack-level prose of the spec, checked against what the project's pack writer and checker do:
//! an independent transcription of R-3.5 (data order, header text, header length), R-3.6 (padding
//! tensors and their numbering across files) and R-12.9 (the shard split and the index text) must
//! reproduce the committed pack vectors byte for byte; the worked example of R-12.10 holds; the
//! v0.4 pack declares 0.4 where R-13.6 says and a copy that says 0.3 fails; and the manifest
//! checker treats integers and version strings as section 12 says.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

fn sha256_hex(b: &[u8]) -> String {
    conformance::sha256_hex(b)
}

/// A JSON string as R-3.5 writes it.
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn dtype_size(d: &str) -> u64 {
    match d {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        _ => 8,
    }
}

/// A tensor of a file as its header lists it.
#[derive(Debug, Clone, PartialEq)]
struct T {
    name: String,
    dtype: String,
    shape: Vec<u64>,
    begin: u64,
    end: u64,
}

/// Reads a safetensors file's header with serde_json (not with uc-pack's parser); the last value is
/// its `uc.format` (R-3.5 metadata: exactly `format` `pt` and `uc.format`).
fn header(path: &Path) -> (Vec<u8>, Vec<T>, u64, String) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    let v: Value = serde_json::from_slice(&bytes[8..8 + n as usize]).unwrap();
    let mut ts = Vec::new();
    let mut uc_format = None;
    for (name, e) in v.as_object().unwrap() {
        if name == "__metadata__" {
            let f = e["uc.format"].as_str().unwrap_or_default().to_string();
            assert_eq!(
                e,
                &serde_json::json!({"format": "pt", "uc.format": f}),
                "R-3.5 metadata"
            );
            uc_format = Some(f);
            continue;
        }
        let off = e["data_offsets"].as_array().unwrap();
        ts.push(T {
            name: name.clone(),
            dtype: e["dtype"].as_str().unwrap().to_string(),
            shape: e["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect(),
            begin: off[0].as_u64().unwrap(),
            end: off[1].as_u64().unwrap(),
        });
    }
    let data_len = bytes.len() as u64 - 8 - n;
    (
        bytes[..8 + n as usize].to_vec(),
        ts,
        data_len,
        uc_format.expect("__metadata__"),
    )
}

/// The records of a safetensors file (U8 tensors starting with the magic) as
/// `(name, version_minor, flags)`, read from the bytes (R-4.1, R-4.2, R-4.3).
fn records(path: &Path) -> Vec<(String, u16, u32)> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let (_, ts, _, _) = header(path);
    ts.iter()
        .filter(|t| t.dtype == "U8")
        .map(|t| (t, &bytes[8 + n + t.begin as usize..8 + n + t.end as usize]))
        .filter(|(_, b)| b.starts_with(&[0x89, 0x55, 0x43, 0x52, 0x0d, 0x0a, 0x1a, 0x0a]))
        .map(|(t, b)| {
            let minor = u16::from_le_bytes([b[10], b[11]]);
            (t.name.clone(), minor, u32::from_le_bytes(b[28..32].try_into().unwrap()))
        })
        .collect()
}

/// A tensor to lay out: name, dtype, shape, data length.
type Planned = (String, String, Vec<u64>, u64);

/// R-3.5 and R-3.6: lays out `tensors` (no padding) of one file, padding numbered from `*pad`, with
/// metadata `uc.format` = `uc_format`. Returns the file's first `8 + N` bytes and the data-area length.
fn layout(mut tensors: Vec<Planned>, pad: &mut u64, uc_format: &str) -> (Vec<u8>, u64) {
    tensors.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut members: BTreeMap<Vec<u8>, String> = BTreeMap::new();
    let entry = |dtype: &str, shape: &[u64], b: u64, e: u64| {
        let shape: Vec<String> = shape.iter().map(u64::to_string).collect();
        format!(
            "{{\"data_offsets\":[{b},{e}],\"dtype\":{},\"shape\":[{}]}}",
            json_string(dtype),
            shape.join(",")
        )
    };
    let mut pos = 0u64;
    for (name, dtype, shape, len) in &tensors {
        if pos % 64 != 0 {
            let p = 64 - pos % 64;
            let pname = format!("__uc_pad_{pad}");
            *pad += 1;
            members.insert(pname.into_bytes(), entry("U8", &[p], pos, pos + p));
            pos += p;
        }
        members.insert(name.as_bytes().to_vec(), entry(dtype, shape, pos, pos + len));
        pos += len;
    }
    members.insert(
        b"__metadata__".to_vec(),
        format!("{{\"format\":\"pt\",\"uc.format\":{}}}", json_string(uc_format)),
    );
    let body: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("{}:{v}", json_string(std::str::from_utf8(k).unwrap())))
        .collect();
    let mut text = format!("{{{}}}", body.join(","));
    while (8 + text.len()) % 64 != 0 {
        text.push(' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    (out, pos)
}

fn pack_dir(name: &str) -> std::path::PathBuf {
    conformance::default_vectors_dir().join("packs").join(name)
}

fn shard_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".safetensors"))
        .collect();
    v.sort();
    v
}

/// Checks the single file of pack `name` against R-3.5 and R-3.6 with metadata `uc_format`.
fn single_file_layout(name: &str, uc_format: &str) {
    let dir = pack_dir(name);
    assert_eq!(shard_files(&dir), ["model.safetensors"]);
    let (head, ts, data_len, got_format) = header(&dir.join("model.safetensors"));
    assert_eq!(got_format, uc_format, "{name}: uc.format");
    let plain: Vec<_> = ts
        .iter()
        .filter(|t| !t.name.starts_with("__uc_pad_"))
        .map(|t| (t.name.clone(), t.dtype.clone(), t.shape.clone(), t.end - t.begin))
        .collect();
    let mut pad = 0;
    let (want, want_len) = layout(plain, &mut pad, uc_format);
    assert!(pad > 0, "the {name} pack is meant to hold padding tensors");
    assert_eq!(String::from_utf8_lossy(&head), String::from_utf8_lossy(&want));
    assert_eq!(data_len, want_len, "no bytes after the last tensor");
}

#[test]
fn the_tiny_pack_is_laid_out_as_r_3_5_and_r_3_6_say() {
    single_file_layout(conformance::packs::TINY, "0.3");
}

/// R-13.6: the file with records with two-level scales declares `"uc.format": "0.4"` and the
/// manifest `format_version` `"0.4"`; the v0.3 packs declare 0.3 and hold no such record. A copy of
/// the v0.4 pack that says 0.3 in the file (or the manifest) fails `safetensors.metadata` (or
/// `manifest.schema`) in uc-verify.
#[test]
fn the_two_level_pack_declares_0_4_as_r_13_6_says() {
    single_file_layout(conformance::packs::TWO_LEVEL, "0.4");
    let dir = pack_dir(conformance::packs::TWO_LEVEL);
    let recs = records(&dir.join("model.safetensors"));
    let two_level: Vec<_> = recs.iter().filter(|r| r.2 & 1 != 0).collect();
    assert!(two_level.len() >= 2, "{recs:?}");
    assert!(
        two_level.iter().all(|r| r.1 >= 4),
        "R-13.1: minor 4 with flag bit 0: {recs:?}"
    );
    assert!(recs.iter().any(|r| r.2 & 1 == 0), "a v0.3 record beside them: {recs:?}");
    let manifest =
        |d: &Path| -> Value { serde_json::from_slice(&std::fs::read(d.join("ultracompress.json")).unwrap()).unwrap() };
    assert_eq!(manifest(&dir)["format_version"], "0.4");
    for name in [conformance::packs::TINY, conformance::packs::SHARDED] {
        let d = pack_dir(name);
        assert_eq!(manifest(&d)["format_version"], "0.3", "{name}");
        for f in shard_files(&d) {
            assert_eq!(header(&d.join(&f)).3, "0.3", "{name}/{f}");
            assert!(records(&d.join(&f)).iter().all(|r| r.2 & 1 == 0), "{name}/{f}");
        }
    }

    // Copies that say 0.3: same length, so every offset stays.
    let fails = |file: &str, from: &str, to: &str, check: &str| {
        let tmp = std::env::temp_dir().join(format!("uc-pack-vector-r13-6-{check}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, tmp.join(p.file_name().unwrap())).unwrap();
        }
        let bytes = std::fs::read(tmp.join(file)).unwrap();
        let at = bytes.windows(from.len()).position(|w| w == from.as_bytes()).unwrap();
        let mut edited = bytes.clone();
        edited[at..at + to.len()].copy_from_slice(to.as_bytes());
        std::fs::write(tmp.join(file), edited).unwrap();
        let report = uc_verify::verify_pack(&tmp, &uc_verify::PackOptions::default()).unwrap();
        let _ = std::fs::remove_dir_all(&tmp);
        let failures: Vec<String> = report
            .failures()
            .map(|c| format!("{}: {}", c.name, c.message))
            .collect();
        assert!(!report.verified, "{file} with {to}");
        assert!(
            failures.iter().any(|f| f.starts_with(check) && f.contains("R-13.6")),
            "{file} with {to}: {failures:?}"
        );
    };
    fails(
        "model.safetensors",
        "\"uc.format\":\"0.4\"",
        "\"uc.format\":\"0.3\"",
        "safetensors.metadata",
    );
    fails(
        "ultracompress.json",
        "\"format_version\": \"0.4\"",
        "\"format_version\": \"0.3\"",
        "manifest.schema",
    );
}

#[test]
fn the_sharded_pack_is_split_and_indexed_as_r_12_9_says() {
    let dir = pack_dir(conformance::packs::SHARDED);
    let meta = conformance::packs::meta(&conformance::default_vectors_dir(), conformance::packs::SHARDED).unwrap();
    let shard_size = meta["shard_size"].as_u64().unwrap();
    let files = shard_files(&dir);
    let m = files.len();
    assert!(m >= 3, "{files:?}");
    let names: Vec<String> = (1..=m).map(|i| format!("model-{i:05}-of-{m:05}.safetensors")).collect();
    assert_eq!(files, names);
    // Every tensor of the pack (no padding) with its length, in byte order of the names.
    let mut all: Vec<Planned> = Vec::new();
    let mut headers = Vec::new();
    for f in &files {
        let (head, ts, data_len, uc_format) = header(&dir.join(f));
        assert_eq!(uc_format, "0.3", "{f}");
        for t in &ts {
            assert_eq!(t.end - t.begin, t.shape.iter().product::<u64>() * dtype_size(&t.dtype));
            if !t.name.starts_with("__uc_pad_") {
                all.push((t.name.clone(), t.dtype.clone(), t.shape.clone(), t.end - t.begin));
            }
        }
        headers.push((head, ts, data_len));
    }
    all.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    // The split rule of R-12.9.
    let mut shards: Vec<Vec<Planned>> = vec![Vec::new()];
    let mut pos = 0u64;
    for t in all {
        let p = (64 - pos % 64) % 64;
        if !shards.last().unwrap().is_empty() && pos + p + t.3 > shard_size {
            shards.push(Vec::new());
            pos = 0;
        }
        pos += (64 - pos % 64) % 64 + t.3;
        shards.last_mut().unwrap().push(t);
    }
    assert_eq!(shards.len(), m);
    assert!(
        shards.iter().any(|s| s.len() == 1 && s[0].3 > shard_size),
        "a tensor larger than the shard size has a shard of its own"
    );
    // Each shard laid out by R-3.5, padding numbered across shards by R-3.6.
    let mut pad = 0;
    let mut pads_per_shard = Vec::new();
    let mut total = 0;
    let mut weight_map: BTreeMap<Vec<u8>, String> = BTreeMap::new();
    for ((s, (head, ts, data_len)), f) in shards.into_iter().zip(&headers).zip(&files) {
        let before = pad;
        let (want, want_len) = layout(s, &mut pad, "0.3");
        assert_eq!(String::from_utf8_lossy(head), String::from_utf8_lossy(&want), "{f}");
        assert_eq!(*data_len, want_len, "{f}");
        pads_per_shard.push(pad - before);
        total += data_len;
        for t in ts {
            weight_map.insert(t.name.as_bytes().to_vec(), f.clone());
        }
    }
    assert!(
        pads_per_shard.iter().filter(|&&p| p > 0).count() >= 2,
        "padding in more than one shard, so that its numbering crosses shards: {pads_per_shard:?}"
    );
    // The index text of R-12.9.
    let wm: Vec<String> = weight_map
        .iter()
        .map(|(k, v)| {
            format!(
                "    {}: {}",
                json_string(std::str::from_utf8(k).unwrap()),
                json_string(v)
            )
        })
        .collect();
    let want = format!(
        "{{\n  \"metadata\": {{\n    \"total_size\": {total}\n  }},\n  \"weight_map\": {{\n{}\n  }}\n}}\n",
        wm.join(",\n")
    );
    let got = std::fs::read_to_string(dir.join("model.safetensors.index.json")).unwrap();
    assert_eq!(got, want);
}

#[test]
fn the_fingerprint_example_of_r_12_10_holds() {
    let spec = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/uc-pack-v0.4.md")).unwrap();
    let config = b"{}\n";
    let mut st = 56u64.to_le_bytes().to_vec();
    st.extend_from_slice(b"{}");
    st.resize(64, b' ');
    let (hc, hs) = (sha256_hex(config), sha256_hex(&st));
    // The example's stand-in manifest holds the same bytes as its config.json.
    let fp = sha256_hex(format!("config.json:{hc}\nmodel.safetensors:{hs}\nultracompress.json:{hc}\n").as_bytes());
    for h in [&hc, &hs, &fp] {
        assert!(spec.contains(h.as_str()), "the spec's example lacks {h}");
    }
    assert_eq!(fp, "0c39417317b7f4cdfdf4ec74865b736bd49fc389e36aa3062043bbf4c8ac2606");
    // And the pack reader agrees that the example's model.safetensors is a valid file without tensors.
    let h = uc_pack::safetensors::parse_header(&st, 64).unwrap();
    assert!(h.tensors.is_empty());
}

fn tiny_manifest() -> Value {
    let p = pack_dir(conformance::packs::TINY).join("ultracompress.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Section 12: an integer is written without fraction, exponent or sign; the schema cannot say so
/// (7202.0 is an integer for JSON Schema 2020-12), the prose and the reference checker do.
#[test]
fn manifest_integers_are_written_as_integers() {
    let m = tiny_manifest();
    assert!(uc_pack::manifest::check_manifest(&m).issues.is_empty());
    let size = m["size_bytes"].as_u64().unwrap();
    let text = serde_json::to_string(&m).unwrap();
    let key = format!("\"size_bytes\":{size}");
    assert_eq!(
        text.matches(&key).count(),
        1,
        "the top-level size_bytes must be unique in the text"
    );
    for spelled in [
        format!("{size}.0"),
        format!("{size}e0"),
        format!("{}.{}E1", size / 10, size % 10),
    ] {
        let bad: Value = serde_json::from_str(&text.replace(&key, &format!("\"size_bytes\":{spelled}"))).unwrap();
        assert_eq!(
            bad["size_bytes"].as_f64(),
            Some(size as f64),
            "{spelled} has the same value"
        );
        let issues = uc_pack::manifest::check_manifest(&bad).issues;
        assert!(
            issues.iter().any(|i| i.path == "/size_bytes"),
            "{spelled} must not count as an integer: {issues:?}"
        );
    }
    let mut bad = m.clone();
    bad["provenance"]["seed"] = serde_json::from_str("-0").unwrap();
    assert!(
        !uc_pack::manifest::check_manifest(&bad).issues.is_empty(),
        "-0 is not an integer"
    );
}

/// R-12.2: versions are two numbers of 1 to 9 digits without leading zeros.
#[test]
fn manifest_versions_are_checked_as_r_12_2_says() {
    let m = tiny_manifest();
    let check = |key: &str, v: &str| {
        let mut x = m.clone();
        x[key] = Value::String(v.to_string());
        uc_pack::manifest::check_manifest(&x).issues.is_empty()
    };
    for ok in ["1.1", "1.2", "1.10", "1.999999999"] {
        assert!(check("schema_version", ok), "{ok}");
    }
    for bad in [
        "1.0",
        "1.01",
        "01.1",
        "1.1.0",
        "1.1234567890",
        "2.1",
        "1.",
        "1.1 ",
        "+1.1",
        "1",
    ] {
        assert!(!check("schema_version", bad), "{bad}");
    }
    for ok in ["0.3", "0.9", "0.10", "0.999999999"] {
        assert!(check("format_version", ok), "{ok}");
    }
    for bad in ["0.2", "0.03", "1.3", "0.3.0", "0.1234567890", "00.3"] {
        assert!(!check("format_version", bad), "{bad}");
    }
}

/// R-12.4: a control character is one of Unicode category Cc (C0, DEL and C1); other characters,
/// U+2028 included, are allowed in file names.
#[test]
fn file_names_refuse_exactly_the_control_characters() {
    for c in (0u32..0x20).chain(0x7f..0xa0) {
        let name = format!("a{}b", char::from_u32(c).unwrap());
        assert!(uc_pack::manifest::check_file_name(&name).is_err(), "U+{c:04X}");
    }
    for c in [0x20u32, 0xa0, 0x2028, 0x2029, 0xfeff] {
        let name = format!("a{}b", char::from_u32(c).unwrap());
        assert!(uc_pack::manifest::check_file_name(&name).is_ok(), "U+{c:04X}");
    }
    assert!(uc_pack::manifest::check_file_name("ultracompress.json").is_err());
}
