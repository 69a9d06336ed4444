//! The pack-directory vector: a small multi-tensor pack (safetensors + manifest) with uc records
//! beside verbatim tensors of several dtypes, for pack readers and verifiers (`uc-verify`).

use crate::vectors::{Rng, assemble, random_spec};
use serde_json::{Map, Value, json};
use std::path::Path;
use uc_pack::{Dtype, PackWriter};

/// Name of the pack directory under `vectors/packs/`.
pub const TINY: &str = "tiny";

/// Spec clauses the pack vector exercises (it must verify).
pub const CLAUSES: &[&str] = &[
    "R-2.1", "R-2.3", "R-3.1", "R-3.2", "R-3.3", "R-3.4", "R-3.5", "R-3.6", "R-12.1", "R-12.2", "R-12.3", "R-12.4",
    "R-12.5", "R-12.6", "R-12.7", "R-12.8", "R-12.10", "R-12.11",
];

/// Writes `parent/tiny/` (the pack) and `parent/tiny.json` (what it is and what it cites).
pub fn write_tiny(parent: &Path) -> Result<(), String> {
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let dir = parent.join(TINY);
    let mut w = PackWriter::new(&dir).map_err(|e| e.to_string())?;
    let info = w.info_mut();
    info.model_id = "uc-conformance-tiny".into();
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

    let extra = parent.join(".tiny-extra");
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
    w.finish().map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&extra);

    let meta = json!({
        "name": TINY,
        "description": "a pack directory: model.safetensors with 3 uc records (4-bit; 3-bit with a partial block; \
                        2-bit with a rank-2 f16 overlay) beside F32, F16, BF16 and I64 verbatim tensors, padding \
                        tensors for alignment, copied config/tokenizer/LICENSE files and the manifest. \
                        `uc-verify packs/tiny` must report it verified (exit 0).",
        "clauses": CLAUSES,
        "expect": "verified",
    });
    let text = serde_json::to_string_pretty(&meta).map_err(|e| e.to_string())? + "\n";
    let p = parent.join(format!("{TINY}.json"));
    std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))
}

/// Clauses cited by the pack vectors in `dir` (reads `packs/*.json`).
pub fn cited(dir: &Path) -> Result<Vec<String>, String> {
    let p = dir.join("packs").join(format!("{TINY}.json"));
    let v: Value = serde_json::from_slice(&std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?)
        .map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(v["clauses"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_string)).collect())
        .unwrap_or_default())
}
