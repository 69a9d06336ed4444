//! The pack-directory vectors, for pack readers and verifiers (`uc-verify`): `tiny`, a small
//! multi-tensor pack (one safetensors file + manifest) with uc records beside verbatim tensors of
//! several dtypes, `sharded`, the same kind of content split over several shards with an index, and
//! `two_level`, a v0.4 pack whose `model.safetensors` holds records with two-level scales (spec
//! section 13) beside a v0.3 record, so that its file declares `"uc.format": "0.4"` and its manifest
//! `format_version` `"0.4"`.
//! Each `packs/<name>.json` names the clauses the pack exercises and its fingerprint,
//! computed here from the files as written.

use crate::sha256_hex;
use crate::vectors::v04::sub_spec_q;
use crate::vectors::{Rng, assemble, random_spec};
use serde_json::{Map, Value, json};
use std::path::Path;
use uc_pack::{Dtype, PackWriter, WriterOptions};

/// Name of the single-file pack directory under `vectors/packs/`.
pub const TINY: &str = "tiny";
/// Name of the sharded pack directory under `vectors/packs/`.
pub const SHARDED: &str = "sharded";
/// Name of the v0.4 pack directory (records with two-level scales) under `vectors/packs/`.
pub const TWO_LEVEL: &str = "two_level";
/// Name of the signed pack directory under `vectors/packs/`: the tiny pack with `model.sig`.
pub const SIGNED: &str = "signed";
/// The signed pack's public key, beside it under `vectors/packs/`.
pub const SIGNED_KEY: &str = "signed.pub.pem";
/// Every pack vector.
pub const ALL: &[&str] = &[TINY, SHARDED, TWO_LEVEL, SIGNED];
/// Shard size of the sharded pack, in bytes of data area: small enough that the pack has
/// several shards, one of them holding a single tensor larger than this.
pub const SHARD_SIZE: u64 = 2048;

/// Spec clauses the pack vector exercises (it must verify).
pub const CLAUSES: &[&str] = &[
    "R-2.1", "R-2.3", "R-3.1", "R-3.2", "R-3.3", "R-3.4", "R-3.5", "R-3.6", "R-12.1", "R-12.2", "R-12.3", "R-12.4",
    "R-12.5", "R-12.6", "R-12.7", "R-12.8", "R-12.10", "R-12.11",
];

/// Clauses the sharded pack exercises beyond those of the tiny one.
pub const SHARDED_CLAUSES: &[&str] = &["R-12.9"];

/// Clauses the two-level pack exercises beyond those of the tiny one.
pub const TWO_LEVEL_CLAUSES: &[&str] = &["R-13.1", "R-13.2", "R-13.3", "R-13.4", "R-13.6"];

/// The fingerprint of of the pack in `dir`, from the files themselves: the SHA-256 of the
/// lines `<name>:<sha256>\n`, in byte order of the names, of every regular file, the manifest
/// included, but the signature file `model.sig` at the root.
pub fn fingerprint(dir: &Path) -> Result<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) -> Result<(), String> {
        for e in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let p = e.map_err(|e| e.to_string())?.path();
            if p.is_dir() {
                walk(root, &p, out)?;
            } else {
                let rel = p.strip_prefix(root).map_err(|e| e.to_string())?;
                let name = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                if name != uc_pack::manifest::SIGNATURE_NAME {
                    let bytes = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                    out.push((name, sha256_hex(&bytes)));
                }
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    files.sort();
    let lines: String = files.iter().map(|(n, h)| format!("{n}:{h}\n")).collect();
    Ok(sha256_hex(lines.as_bytes()))
}

fn writer(dir: &Path, model_id: &str, options: WriterOptions) -> Result<PackWriter, String> {
    let mut w = PackWriter::with_options(dir, options).map_err(|e| e.to_string())?;
    let info = w.info_mut();
    info.model_id = model_id.into();
    info.base_model = None;
    info.method = "gsq".into();
    info.method_version = "conformance".into();
    info.license = Some("CC0-1.0".into());
    info.tooling_version = "conformance gen-vectors".into();
    info.notes = "Conformance vector: records assembled independently of the encoder; random data.".into();
    info.provenance.seed = Some(3);
    let mut env = Map::new();
    // Fixed values: the committed vector must not depend on the machine that generated it.
    env.insert("tool".into(), json!("conformance gen-vectors"));
    env.insert("os".into(), json!("any"));
    env.insert("arch".into(), json!("any"));
    info.provenance.environment = env;
    w.set_created_at("2026-01-01T00:00:00Z").map_err(|e| e.to_string())?;
    Ok(w)
}

/// Copies small config, tokenizer and LICENSE files into the pack.
fn copy_files(w: &mut PackWriter, parent: &Path, tag: &str) -> Result<(), String> {
    let extra = parent.join(format!(".{tag}-extra"));
    let _ = std::fs::remove_dir_all(&extra);
    std::fs::create_dir_all(&extra).map_err(|e| format!("{}: {e}", extra.display()))?;
    let files = [
        (
            "config.json",
            "{\"hidden_size\": 96, \"model_type\": \"uc-conformance\"}\n",
        ),
        (
            "tokenizer.json",
            "{\"version\": \"1.0\", \"model\": {\"type\": \"WordLevel\", \"vocab\": {}}}\n",
        ),
        (
            "LICENSE",
            "CC0-1.0: this conformance vector is random test data, dedicated to the public domain.\n",
        ),
    ];
    for (name, text) in files {
        let p = extra.join(name);
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
        w.copy_file(name, &p).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn finish(w: PackWriter, parent: &Path, tag: &str) -> Result<uc_pack::PackSummary, String> {
    let s = w.finish().map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(parent.join(format!(".{tag}-extra")));
    Ok(s)
}

fn write_meta(parent: &Path, name: &str, mut meta: Value) -> Result<(), String> {
    meta["fingerprint"] = json!(fingerprint(&parent.join(name))?);
    let text = serde_json::to_string_pretty(&meta).map_err(|e| e.to_string())? + "\n";
    let p = parent.join(format!("{name}.json"));
    std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))
}

/// Writes every pack vector under `parent`.
pub fn write_all(parent: &Path) -> Result<(), String> {
    write_tiny(parent)?;
    write_sharded(parent)?;
    write_two_level(parent)?;
    write_signed(parent)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes `parent/signed/` (the files of `parent/tiny/`, which must exist, and `model.sig`),
/// `parent/signed.pub.pem` and `parent/signed.json`. The bundle follows R-12.13's text: the in-toto
/// statement listing every file's SHA-256 in byte order of the names, the subject digest over the
/// concatenated digests, the DSSE PAE signed with ECDSA P-256 SHA-256 (RFC 6979, so the bytes are
/// reproducible) by a fixed key, and the key method's hint.
pub fn write_signed(parent: &Path) -> Result<(), String> {
    use base64::Engine as _;
    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::{EncodePublicKey as _, LineEnding};
    use sha2::{Digest, Sha256};
    let b64 = base64::engine::general_purpose::STANDARD;
    let (src, dir) = (parent.join(TINY), parent.join(SIGNED));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for e in std::fs::read_dir(&src).map_err(|e| format!("{}: {e}", src.display()))? {
        let p = e.map_err(|e| e.to_string())?.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        std::fs::write(dir.join(&name), &bytes).map_err(|e| format!("{name}: {e}"))?;
        files.push((name, Sha256::digest(&bytes)));
    }
    files.sort();
    let mut root = Sha256::new();
    for (_, d) in &files {
        root.update(d);
    }
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": SIGNED, "digest": {"sha256": hex(&root.finalize())}}],
        "predicateType": "https://model_signing/signature/v1.0",
        "predicate": {
            "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": false,
                              "ignore_paths": ["model.sig"]},
            "resources": files.iter().map(|(n, d)| json!({"name": n, "algorithm": "sha256", "digest": hex(d)}))
                .collect::<Vec<_>>()
        }
    });
    let payload = serde_json::to_vec_pretty(&statement).map_err(|e| e.to_string())?;
    let payload_type = "application/vnd.in-toto+json";
    let mut pae = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len()).into_bytes();
    pae.extend_from_slice(&payload);
    let seed = Sha256::digest(b"uc conformance vector signing key: public test key, never trust it");
    let key = p256::ecdsa::SigningKey::from_slice(&seed).map_err(|e| e.to_string())?;
    let sig: p256::ecdsa::Signature = key.sign(&pae);
    let pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| e.to_string())?;
    let bundle = json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": hex(&Sha256::digest(pem.as_bytes()))}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": b64.encode(&payload),
            "payloadType": payload_type,
            "signatures": [{"sig": b64.encode(sig.to_der().as_bytes()), "keyid": ""}]
        }
    });
    let text = serde_json::to_vec(&bundle).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("model.sig"), text).map_err(|e| format!("model.sig: {e}"))?;
    std::fs::write(parent.join(SIGNED_KEY), pem).map_err(|e| format!("{SIGNED_KEY}: {e}"))?;
    let meta = json!({
        "name": SIGNED,
        "description": "the tiny pack signed (R-12.13): model.sig is an OMS v1.0 bundle, key method, ECDSA P-256 \
                        SHA-256, over every file of the pack, manifest included. `uc-verify packs/signed \
                        --public-key packs/signed.pub.pem` must report it verified (exit 0), with the tiny \
                        pack's fingerprint (model.sig is not part of it, R-12.10); any changed byte in any \
                        file, model.sig included, must fail.",
        "clauses": ["R-12.4", "R-12.10", "R-12.13"],
        "public_key": SIGNED_KEY,
        "expect": "verified",
    });
    write_meta(parent, SIGNED, meta)
}

/// Writes `parent/tiny/` (the pack) and `parent/tiny.json` (what it is and what it cites).
pub fn write_tiny(parent: &Path) -> Result<(), String> {
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let dir = parent.join(TINY);
    let mut w = writer(&dir, "uc-conformance-tiny", WriterOptions::default())?;

    let mut rng = Rng(0x5eed_0003_0000_0003);
    let records = [
        (
            "model.layers.0.mlp.down_proj.weight",
            random_spec(&mut rng, 4, &[64, 96], 0, 0),
        ),
        (
            "model.layers.0.self_attn.q_proj.weight",
            random_spec(&mut rng, 3, &[3, 50], 0, 0),
        ),
        (
            "model.layers.0.self_attn.o_proj.weight",
            random_spec(&mut rng, 2, &[40, 70], 1, 2),
        ),
    ];
    for (name, spec) in &records {
        w.add_record(name, &assemble(spec), None).map_err(|e| e.to_string())?;
    }
    let f32s: Vec<u8> = (0..96).flat_map(|i| (1.0f32 + i as f32 / 96.0).to_le_bytes()).collect();
    w.add_verbatim("model.layers.0.input_layernorm.weight", Dtype::F32, &[96], &f32s)
        .map_err(|e| e.to_string())?;
    let f16s: Vec<u8> = (0..128u16).flat_map(|i| (0x3000 + i * 7).to_le_bytes()).collect();
    w.add_verbatim("model.embed_tokens.weight", Dtype::F16, &[16, 8], &f16s)
        .map_err(|e| e.to_string())?;
    let bf16s: Vec<u8> = [0x3f80u16, 0xbf80, 0x4000, 0x0000, 0x8000]
        .iter()
        .flat_map(|h| h.to_le_bytes())
        .collect();
    w.add_verbatim("model.norm.weight", Dtype::Bf16, &[5], &bf16s)
        .map_err(|e| e.to_string())?;
    let i64s: Vec<u8> = [0i64, 1, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
    w.add_verbatim("model.position_ids", Dtype::I64, &[3], &i64s)
        .map_err(|e| e.to_string())?;

    copy_files(&mut w, parent, TINY)?;
    finish(w, parent, TINY)?;

    let meta = json!({
        "name": TINY,
        "description": "a pack directory: model.safetensors with 3 uc records (4-bit; 3-bit with a partial block; \
                        2-bit with a rank-2 f16 overlay) beside F32, F16, BF16 and I64 verbatim tensors, padding \
                        tensors for alignment, copied config/tokenizer/LICENSE files and the manifest. \
                        `uc-verify packs/tiny` must report it verified (exit 0).",
        "clauses": CLAUSES,
        "expect": "verified",
    });
    write_meta(parent, TINY, meta)
}

/// Writes `parent/sharded/` and `parent/sharded.json`: records and verbatim tensors split over
/// several shards by the rule of with a shard size of [`SHARD_SIZE`] bytes, so that one
/// tensor is larger than a shard and has one to itself, padding tensors appear in more than one
/// shard (their numbering continues across shards, R-3.6) and the index maps every tensor,
/// padding included.
pub fn write_sharded(parent: &Path) -> Result<(), String> {
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let dir = parent.join(SHARDED);
    let options = WriterOptions {
        shard_size: SHARD_SIZE,
        ..WriterOptions::default()
    };
    let mut w = writer(&dir, "uc-conformance-sharded", options)?;
    let mut rng = Rng(0x5eed_0003_0000_0004);
    let records = [
        // 2048 elements at 4 bits: a record of 1344 bytes.
        ("lm_head.weight", random_spec(&mut rng, 4, &[32, 64], 0, 0)),
        // Larger than a shard: 4-bit [64, 96], 3520 bytes.
        (
            "model.layers.0.mlp.down_proj.weight",
            random_spec(&mut rng, 4, &[64, 96], 0, 0),
        ),
        // 3 bits with a partial last block.
        (
            "model.layers.0.self_attn.q_proj.weight",
            random_spec(&mut rng, 3, &[3, 50], 0, 0),
        ),
        // 2 bits with a rank-2 bf16 overlay.
        (
            "model.layers.1.self_attn.o_proj.weight",
            random_spec(&mut rng, 2, &[16, 24], 2, 2),
        ),
    ];
    for (name, spec) in &records {
        w.add_record(name, &assemble(spec), None).map_err(|e| e.to_string())?;
    }
    let f32s: Vec<u8> = (0..30).flat_map(|i| (0.5f32 + i as f32 / 64.0).to_le_bytes()).collect();
    w.add_verbatim("model.layers.0.input_layernorm.weight", Dtype::F32, &[30], &f32s)
        .map_err(|e| e.to_string())?;
    let f16s: Vec<u8> = (0..200u16).flat_map(|i| (0x3400 + i * 5).to_le_bytes()).collect();
    w.add_verbatim("model.embed_tokens.weight", Dtype::F16, &[25, 8], &f16s)
        .map_err(|e| e.to_string())?;
    let bf16s: Vec<u8> = (0..7u16).flat_map(|i| (0x3f80 + i).to_le_bytes()).collect();
    w.add_verbatim("model.layers.1.input_layernorm.weight", Dtype::Bf16, &[7], &bf16s)
        .map_err(|e| e.to_string())?;
    let u8s: Vec<u8> = (0..13u8).collect();
    w.add_verbatim("model.layers.1.attn_mask_bias", Dtype::U8, &[13], &u8s)
        .map_err(|e| e.to_string())?;
    let f32s: Vec<u8> = [1.0f32, -1.0, 0.25].iter().flat_map(|x| x.to_le_bytes()).collect();
    w.add_verbatim("model.norm.weight", Dtype::F32, &[3], &f32s)
        .map_err(|e| e.to_string())?;
    copy_files(&mut w, parent, SHARDED)?;
    let summary = finish(w, parent, SHARDED)?;
    let shards = summary.safetensors_files.len();
    let meta = json!({
        "name": SHARDED,
        "description": format!(
            "a sharded pack directory: {shards} shards model-0000k-of-{shards:05}.safetensors written with a shard \
             size of {SHARD_SIZE} bytes (R-12.9; one record larger than that has a shard to itself), their index \
             model.safetensors.index.json (weight_map including the padding tensors, total_size), 4 uc records \
             (4-bit; 4-bit larger than a shard; 3-bit with a partial block; 2-bit with a rank-2 bf16 overlay) beside \
             F32, F16, BF16 and U8 verbatim tensors, padding tensors numbered across shards, copied files and the \
             manifest. `uc-verify packs/sharded` must report it verified (exit 0)."
        ),
        "clauses": CLAUSES.iter().chain(SHARDED_CLAUSES).collect::<Vec<_>>(),
        "shard_size": SHARD_SIZE,
        "expect": "verified",
    });
    write_meta(parent, SHARDED, meta)
}

/// Writes `parent/two_level/` and `parent/two_level.json`: a v0.4 pack with two records
/// with two-level scales (S = 16 with 6-bit sub-scales, the default of `uc compress`, and S = 32
/// with 3-bit sub-scales and a bf16 overlay; partial last 256-block and sub-block) beside a v0.3
/// record and verbatim tensors. Its `model.safetensors` declares `"uc.format": "0.4"` and its
/// manifest `format_version` `"0.4"`, as the pack writer gives a pack with such a record.
pub fn write_two_level(parent: &Path) -> Result<(), String> {
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let dir = parent.join(TWO_LEVEL);
    let mut w = writer(&dir, "uc-conformance-two-level", WriterOptions::default())?;
    let mut rng = Rng(0x5eed_0004_0000_0005);
    let records = [
        // 2400 elements: 9 full 256-blocks and a partial one; 150 sub-blocks of 16.
        (
            "model.layers.0.mlp.down_proj.weight",
            sub_spec_q(&mut rng, 4, &[24, 100], 0, 0, 16, 6),
        ),
        // 595 elements: partial last code group, 256-block and sub-block of 32; rank-2 bf16 overlay.
        (
            "model.layers.0.self_attn.o_proj.weight",
            sub_spec_q(&mut rng, 3, &[5, 119], 2, 2, 32, 3),
        ),
        // A v0.3 record in the same file.
        (
            "model.layers.0.self_attn.q_proj.weight",
            random_spec(&mut rng, 2, &[3, 50], 0, 0),
        ),
    ];
    for (name, spec) in &records {
        w.add_record(name, &assemble(spec), None).map_err(|e| e.to_string())?;
    }
    let f32s: Vec<u8> = (0..100)
        .flat_map(|i| (1.0f32 - i as f32 / 128.0).to_le_bytes())
        .collect();
    w.add_verbatim("model.layers.0.input_layernorm.weight", Dtype::F32, &[100], &f32s)
        .map_err(|e| e.to_string())?;
    let bf16s: Vec<u8> = (0..9u16).flat_map(|i| (0x3f80 + 3 * i).to_le_bytes()).collect();
    w.add_verbatim("model.norm.weight", Dtype::Bf16, &[9], &bf16s)
        .map_err(|e| e.to_string())?;
    copy_files(&mut w, parent, TWO_LEVEL)?;
    finish(w, parent, TWO_LEVEL)?;
    let meta = json!({
        "name": TWO_LEVEL,
        "description": "a v0.4 pack directory (R-13.6): model.safetensors with 3 uc records (4-bit with two-level \
                        scales, S = 16 and 6-bit sub-scales, [24, 100]; 3-bit with two-level scales, S = 32 and \
                        3-bit sub-scales and a rank-2 bf16 overlay, [5, 119]; a v0.3 2-bit record) beside F32 and \
                        BF16 verbatim tensors, padding tensors, copied files and the manifest. The file's \
                        __metadata__ has \"uc.format\": \"0.4\" and the manifest format_version \"0.4\". \
                        `uc-verify packs/two_level` must report it verified (exit 0), and fail a copy that \
                        says \"0.3\" in either place.",
        "clauses": CLAUSES.iter().chain(TWO_LEVEL_CLAUSES).collect::<Vec<_>>(),
        "records": records.len(),
        "expect": "verified",
    });
    write_meta(parent, TWO_LEVEL, meta)
}

/// Clauses cited by the pack vectors in `dir` (reads `packs/<name>.json` of every pack).
pub fn cited(dir: &Path) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for name in ALL {
        let v = meta(dir, name)?;
        out.extend(
            v["clauses"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.as_str().map(str::to_string))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        );
    }
    Ok(out)
}

/// `packs/<name>.json` of the vector directory `dir`.
pub fn meta(dir: &Path, name: &str) -> Result<Value, String> {
    let p = dir.join("packs").join(format!("{name}.json"));
    serde_json::from_slice(&std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?)
        .map_err(|e| format!("{}: {e}", p.display()))
}
