//! Hostile inputs to `uc import-gguf`, `uc inspect` and `uc unpack` (issue #14): each gets a typed
//! error (exit 2 for a bad source, 1 for a pack uc-verify rejects) within a time and peak-memory
//! bound measured with GNU time, writes nothing, and leaves the user's files as they were.

mod common;
use common::*;
use std::path::{Path, PathBuf};

const SECS: f64 = 60.0;
/// A hostile 1 kB GGUF must not cost more than a small process.
const RSS_MB: u64 = 256;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---------------------------------------------------------------------------------------------
// GGUF files written byte by byte (v3).

fn gs(x: &str) -> Vec<u8> {
    let mut v = (x.len() as u64).to_le_bytes().to_vec();
    v.extend(x.as_bytes());
    v
}

fn kv_u32(k: &str, x: u32) -> Vec<u8> {
    let mut v = gs(k);
    v.extend(4u32.to_le_bytes());
    v.extend(x.to_le_bytes());
    v
}

fn kv_f32(k: &str, x: f32) -> Vec<u8> {
    let mut v = gs(k);
    v.extend(6u32.to_le_bytes());
    v.extend(x.to_le_bytes());
    v
}

fn kv_str(k: &str, x: &str) -> Vec<u8> {
    let mut v = gs(k);
    v.extend(8u32.to_le_bytes());
    v.extend(gs(x));
    v
}

/// An F32 tensor info with GGUF dims (innermost first) at data offset `off`.
fn tensor_info(name: &str, dims: &[u64], off: u64) -> Vec<u8> {
    let mut v = gs(name);
    v.extend((dims.len() as u32).to_le_bytes());
    for d in dims {
        v.extend(d.to_le_bytes());
    }
    v.extend(0u32.to_le_bytes());
    v.extend(off.to_le_bytes());
    v
}

fn gguf(kvs: &[Vec<u8>], tensors: &[Vec<u8>], data_len: usize) -> Vec<u8> {
    let mut v = b"GGUF".to_vec();
    v.extend(3u32.to_le_bytes());
    v.extend((tensors.len() as u64).to_le_bytes());
    v.extend((kvs.len() as u64).to_le_bytes());
    for kv in kvs {
        v.extend(kv);
    }
    for t in tensors {
        v.extend(t);
    }
    while !v.len().is_multiple_of(32) {
        v.push(0);
    }
    v.extend(vec![0u8; data_len]);
    v
}

/// The metadata of a tiny Llama with `layers` blocks.
fn llama_kvs(layers: u32) -> Vec<Vec<u8>> {
    vec![
        kv_str("general.architecture", "llama"),
        kv_u32("llama.block_count", layers),
        kv_u32("llama.embedding_length", 4),
        kv_u32("llama.feed_forward_length", 8),
        kv_u32("llama.attention.head_count", 2),
        kv_u32("llama.context_length", 16),
        kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5),
    ]
}

/// Runs `uc import-gguf` on `bytes`; asserts exit 2, the bounds, `needle` in the message, and that
/// nothing was created and the source is unchanged.
fn refused_gguf(tag: &str, bytes: &[u8], needle: &str) {
    let sc = Scratch::new(tag);
    let src = sc.join("in.gguf");
    std::fs::write(&src, bytes).unwrap();
    let out = sc.join("out");
    let e = measured(&uc_cmd(&["import-gguf", s(&src), "--output-dir", s(&out)])).expect(2, SECS, RSS_MB);
    assert!(e.contains("uc: error: ") && e.contains(needle), "{tag}: {e}");
    assert_eq!(std::fs::read(&src).unwrap(), bytes, "{tag}: the source changed");
    assert_eq!(names_in(&sc.0), ["in.gguf"], "{tag}: something was written");
}

#[test]
fn hostile_gguf_headers_are_refused_cheaply() {
    // llama.block_count = 2^24 in a file with one tensor (it used to take 2.3 GB).
    let embd = tensor_info("token_embd.weight", &[4, 8], 0);
    refused_gguf(
        "blocks",
        &gguf(&llama_kvs(1 << 24), std::slice::from_ref(&embd), 128),
        "llama.block_count is 16777216 but the file has only 1 tensors",
    );
    // A 10^8-element metadata array declared in a 1 kB file (it used to take 3 GB).
    let mut arr = gs("tokenizer.ggml.scores");
    arr.extend(9u32.to_le_bytes());
    arr.extend(6u32.to_le_bytes());
    arr.extend(100_000_000u64.to_le_bytes());
    let mut kvs = llama_kvs(1);
    kvs.push(arr);
    refused_gguf(
        "array",
        &gguf(&kvs, std::slice::from_ref(&embd), 128),
        "array of 100000000 elements",
    );
    // general.alignment = 0 (a division by zero inside candle's reader).
    let mut kvs = llama_kvs(1);
    kvs.push(kv_u32("general.alignment", 0));
    refused_gguf("align", &gguf(&kvs, std::slice::from_ref(&embd), 128), "power of two");
    // Duplicate tensor names (the last used to win; llama.cpp refuses such files).
    let twice = [embd.clone(), tensor_info("token_embd.weight", &[4, 8], 128)];
    refused_gguf("dup", &gguf(&llama_kvs(1), &twice, 256), "appears twice");
    // Not a GGUF file, and a truncated one.
    refused_gguf("magic", b"GGML\x03\0\0\0", "not a GGUF file");
    let whole = gguf(&llama_kvs(1), &[embd], 128);
    refused_gguf(
        "cut",
        &whole[..whole.len() / 3],
        "not a valid GGUF file: at byte offset",
    );
}

// ---------------------------------------------------------------------------------------------
// Packs uc-verify rejects: inspect and unpack refuse them too (exit 1).

fn pack_of(sc: &Scratch) -> PathBuf {
    let src = sc.join("src");
    tiny_model(&src);
    let pack = sc.join("pack");
    measured(&uc_cmd(&[
        "compress",
        s(&src),
        "--output-dir",
        s(&pack),
        "--bits",
        "4",
        "--rank",
        "0",
    ]))
    .expect(0, SECS, 512);
    pack
}

/// `uc inspect` and `uc unpack` on `pack` exit 1 naming uc-verify, write nothing, change nothing.
fn refused_pack(sc: &Scratch, pack: &Path, what: &str) {
    let before = snapshot(&sc.0);
    for args in [
        vec!["inspect", s(pack)],
        vec!["inspect", s(pack), "--json"],
        vec!["unpack", s(pack), "--output-dir", s(&sc.join("out"))],
    ] {
        let e = measured(&uc_cmd(&args)).expect(1, SECS, RSS_MB);
        assert!(
            e.contains("not a valid uc pack") && e.contains("uc-verify"),
            "{what}: {args:?}: {e}"
        );
        assert_eq!(snapshot(&sc.0), before, "{what}: {args:?} changed files");
    }
}

fn copy_pack(from: &Path, to: &Path) {
    for (name, bytes) in dir_files(from) {
        let p = to.join(&name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

#[test]
fn packs_that_uc_verify_rejects_are_refused_by_every_reader() {
    let sc = Scratch::new("bad-packs");
    let good = pack_of(&sc);
    let st = "model.safetensors";

    // uc.format "9.0" (a version this tool does not implement), same length.
    let p = sc.join("format9");
    copy_pack(&good, &p);
    let mut b = std::fs::read(p.join(st)).unwrap();
    let text = String::from_utf8_lossy(&b[8..8 + u64::from_le_bytes(b[..8].try_into().unwrap()) as usize]).into_owned();
    let at = 8 + text.find("\"0.4\"").expect("uc.format in the header") + 1;
    b[at..at + 3].copy_from_slice(b"9.0");
    std::fs::write(p.join(st), b).unwrap();
    refused_pack(&sc, &p, "uc.format 9.0");

    // uc.format "0.3" over records with two-level scales (spec ).
    let p = sc.join("format03");
    copy_pack(&good, &p);
    let mut b = std::fs::read(p.join(st)).unwrap();
    b[at..at + 3].copy_from_slice(b"0.3");
    std::fs::write(p.join(st), b).unwrap();
    refused_pack(&sc, &p, "uc.format 0.3 over v0.4 records");

    // A manifest that is a JSON array (no digest would be checked).
    let p = sc.join("array");
    copy_pack(&good, &p);
    std::fs::write(p.join("ultracompress.json"), b"[]").unwrap();
    refused_pack(&sc, &p, "manifest array");

    // format_version "9.0" in the manifest.
    let p = sc.join("fv9");
    copy_pack(&good, &p);
    let m = std::fs::read_to_string(p.join("ultracompress.json")).unwrap();
    std::fs::write(
        p.join("ultracompress.json"),
        m.replacen("\"format_version\":\"0.4\"", "\"format_version\":\"9.0\"", 1)
            .replacen("\"format_version\": \"0.4\"", "\"format_version\": \"9.0\"", 1),
    )
    .unwrap();
    refused_pack(&sc, &p, "format_version 9.0");

    // A file whose digest no longer matches (one byte of a record's codes flipped).
    let p = sc.join("digest");
    copy_pack(&good, &p);
    let mut b = std::fs::read(p.join(st)).unwrap();
    let n = b.len();
    b[n - 1] ^= 1;
    std::fs::write(p.join(st), b).unwrap();
    refused_pack(&sc, &p, "digest");

    // The tensor file replaced by a link to a copy outside the pack.
    let p = sc.join("link");
    copy_pack(&good, &p);
    let outside = sc.join("outside.safetensors");
    std::fs::rename(p.join(st), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, p.join(st)).unwrap();
    refused_pack(&sc, &p, "symlinked shard");

    // A record tensor longer than its record (64 bytes more, the last tensor of the file), with the
    // manifest's digests rewritten so that only the record's length is wrong.
    let src = sc.join("src-z");
    let mut t = tiny_tensors();
    let mut r = Rng(99);
    t.push(matrix(&mut r, "zz.proj.weight", uc_pack::Dtype::F32, 128, 128));
    write_model(&src, &t, 128);
    let p = sc.join("longer");
    measured(&uc_cmd(&[
        "compress",
        s(&src),
        "--output-dir",
        s(&p),
        "--bits",
        "4",
        "--rank",
        "0",
    ]))
    .expect(0, SECS, 512);
    std::fs::remove_dir_all(&src).unwrap();
    let mut b = std::fs::read(p.join(st)).unwrap();
    let hlen = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&b[8..8 + hlen]).unwrap();
    let last = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .max_by_key(|(_, v)| v["data_offsets"][1].as_u64().unwrap())
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    assert_eq!(
        last.1["dtype"], "U8",
        "the last tensor of the tiny pack is a record: {last:?}"
    );
    let (b0, e0) = (
        last.1["data_offsets"][0].as_u64().unwrap(),
        last.1["data_offsets"][1].as_u64().unwrap(),
    );
    let text = String::from_utf8(b[8..8 + hlen].to_vec()).unwrap();
    let old = format!("\"{}\":{}", last.0, serde_json::to_string(&last.1).unwrap());
    let mut entry = last.1.clone();
    entry["data_offsets"] = serde_json::json!([b0, e0 + 64]);
    entry["shape"] = serde_json::json!([e0 + 64 - b0]);
    let new = format!("\"{}\":{}", last.0, serde_json::to_string(&entry).unwrap());
    assert!(text.contains(&old), "{old} not in the header");
    let mut text = text.replacen(&old, &new, 1);
    while text.len() > hlen && text.ends_with(' ') {
        text.pop();
    }
    assert_eq!(
        text.len(),
        hlen,
        "the header must keep its length (padding absorbs the digits)"
    );
    b.splice(8..8 + hlen, text.into_bytes());
    b.extend_from_slice(&[0u8; 64]);
    std::fs::write(p.join(st), &b).unwrap();
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.join("ultracompress.json")).unwrap()).unwrap();
    use sha2::Digest;
    m["files"][st]["sha256"] = serde_json::json!(uc_pack::hex(&sha2::Sha256::digest(&b)));
    m["files"][st]["size_bytes"] = serde_json::json!(b.len());
    let total: u64 = m["files"]
        .as_object()
        .unwrap()
        .values()
        .map(|f| f["size_bytes"].as_u64().unwrap())
        .sum();
    m["size_bytes"] = serde_json::json!(total);
    std::fs::write(p.join("ultracompress.json"), serde_json::to_string_pretty(&m).unwrap()).unwrap();
    refused_pack(&sc, &p, "record tensor longer than its record");

    // The manifest as a FIFO: refused without blocking.
    let p = sc.join("fifo");
    copy_pack(&good, &p);
    std::fs::remove_file(p.join("ultracompress.json")).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(p.join("ultracompress.json"))
            .status()
            .unwrap()
            .success()
    );
    refused_pack(&sc, &p, "manifest FIFO");

    // The manifest linked to /dev/zero (it used to grow to 8 GiB): refused, in little memory.
    let p = sc.join("zero");
    copy_pack(&good, &p);
    std::fs::remove_file(p.join("ultracompress.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", p.join("ultracompress.json")).unwrap();
    refused_pack(&sc, &p, "manifest linked to /dev/zero");

    // And the good pack still reads.
    measured(&uc_cmd(&["inspect", s(&good)])).expect(0, SECS, RSS_MB);
}
