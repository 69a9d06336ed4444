//! The pack-level prose of the spec, checked against what the project's pack writer and checker do:
//! an independent transcription of R-3.5 (data order, header text, header length), R-3.6 (padding
//! tensors and their numbering across files) and R-12.9 (the shard split and the index text) must
//! reproduce the committed pack vectors byte for byte; the worked example of R-12.10 holds; and the
//! manifest checker treats integers and version strings as section 12 says.

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

/// Reads a safetensors file's header with serde_json (not with uc-pack's parser).
fn header(path: &Path) -> (Vec<u8>, Vec<T>, u64) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    let v: Value = serde_json::from_slice(&bytes[8..8 + n as usize]).unwrap();
    let mut ts = Vec::new();
    for (name, e) in v.as_object().unwrap() {
        if name == "__metadata__" {
            assert_eq!(
                e,
                &serde_json::json!({"format": "pt", "uc.format": "0.3"}),
                "R-3.5 metadata"
            );
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
    (bytes[..8 + n as usize].to_vec(), ts, data_len)
}

/// A tensor to lay out: name, dtype, shape, data length.
type Planned = (String, String, Vec<u64>, u64);

/// R-3.5 and R-3.6: lays out `tensors` (no padding) of one file, padding numbered from `*pad`.
/// Returns the file's first `8 + N` bytes and the data-area length.
fn layout(mut tensors: Vec<Planned>, pad: &mut u64) -> (Vec<u8>, u64) {
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
        "{\"format\":\"pt\",\"uc.format\":\"0.3\"}".to_string(),
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

#[test]
fn the_tiny_pack_is_laid_out_as_r_3_5_and_r_3_6_say() {
    let dir = pack_dir(conformance::packs::TINY);
    assert_eq!(shard_files(&dir), ["model.safetensors"]);
    let (head, ts, data_len) = header(&dir.join("model.safetensors"));
    let plain: Vec<_> = ts
        .iter()
        .filter(|t| !t.name.starts_with("__uc_pad_"))
        .map(|t| (t.name.clone(), t.dtype.clone(), t.shape.clone(), t.end - t.begin))
        .collect();
    let mut pad = 0;
    let (want, want_len) = layout(plain, &mut pad);
    assert!(pad > 0, "the tiny pack is meant to hold padding tensors");
    assert_eq!(String::from_utf8_lossy(&head), String::from_utf8_lossy(&want));
    assert_eq!(data_len, want_len, "no bytes after the last tensor");
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
        let (head, ts, data_len) = header(&dir.join(f));
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
        let (want, want_len) = layout(s, &mut pad);
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
    let spec = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/uc-pack-v0.3.md")).unwrap();
    let config = b"{}\n";
    let mut st = 56u64.to_le_bytes().to_vec();
    st.extend_from_slice(b"{}");
    st.resize(64, b' ');
    let (hc, hs) = (sha256_hex(config), sha256_hex(&st));
    let fp = sha256_hex(format!("config.json:{hc}\nmodel.safetensors:{hs}\n").as_bytes());
    for h in [&hc, &hs, &fp] {
        assert!(spec.contains(h.as_str()), "the spec's example lacks {h}");
    }
    assert_eq!(fp, "fb3fe9895c84b483eda56528a013ad0e0abe2d933aaf327b1e4efcf2b537182a");
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
