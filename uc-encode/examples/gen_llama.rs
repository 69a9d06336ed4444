//! Writes a Llama-shaped Hugging Face model directory with deterministic random weights, streamed
//! one tensor at a time (memory holds one tensor), for encoder memory and throughput benchmarks.
//!
//! cargo run --release -p uc-encode --example gen_llama -- --out DIR [--layers 14] [--hidden 4096]
//!     [--intermediate 11008] [--vocab 32000] [--dtype f16|bf16|f32] [--shard-gb 2]
//!
//! Defaults give about 3.1 B parameters: 6.2 GB in f16, sharded with an index file.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use uc_format::num::{f32_to_bf16_bits, f32_to_f16_bits};

struct Rng(u64);
impl Rng {
    fn unit(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }
}

fn main() -> ExitCode {
    let mut out: Option<PathBuf> = None;
    let (mut layers, mut hidden, mut inter, mut vocab, mut shard_gb) = (14u64, 4096u64, 11008u64, 32000u64, 2.0f64);
    let mut dtype = "f16".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let Some(v) = args.next() else {
            eprintln!("gen_llama: {a} needs a value");
            return ExitCode::from(2);
        };
        let ok = match a.as_str() {
            "--out" => {
                out = Some(v.clone().into());
                true
            }
            "--layers" => v.parse().map(|x| layers = x).is_ok(),
            "--hidden" => v.parse().map(|x| hidden = x).is_ok(),
            "--intermediate" => v.parse().map(|x| inter = x).is_ok(),
            "--vocab" => v.parse().map(|x| vocab = x).is_ok(),
            "--shard-gb" => v.parse().map(|x| shard_gb = x).is_ok(),
            "--dtype" => {
                dtype = v.clone();
                matches!(dtype.as_str(), "f16" | "bf16" | "f32")
            }
            _ => false,
        };
        if !ok {
            eprintln!("gen_llama: bad argument {a} {v}");
            return ExitCode::from(2);
        }
    }
    let Some(out) = out else {
        eprintln!(
            "usage: gen_llama --out DIR [--layers L] [--hidden H] [--intermediate I] [--vocab V] [--dtype f16|bf16|f32] [--shard-gb G]"
        );
        return ExitCode::from(2);
    };
    if out.exists() {
        eprintln!("gen_llama: {} exists", out.display());
        return ExitCode::from(2);
    }
    let esize: u64 = if dtype == "f32" { 4 } else { 2 };
    let st_dtype = match dtype.as_str() {
        "f16" => "F16",
        "bf16" => "BF16",
        _ => "F32",
    };
    let mut tensors: Vec<(String, Vec<u64>)> = vec![
        ("model.embed_tokens.weight".into(), vec![vocab, hidden]),
        ("model.norm.weight".into(), vec![hidden]),
        ("lm_head.weight".into(), vec![vocab, hidden]),
    ];
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        for (n, s) in [
            ("self_attn.q_proj.weight", vec![hidden, hidden]),
            ("self_attn.k_proj.weight", vec![hidden, hidden]),
            ("self_attn.v_proj.weight", vec![hidden, hidden]),
            ("self_attn.o_proj.weight", vec![hidden, hidden]),
            ("mlp.gate_proj.weight", vec![inter, hidden]),
            ("mlp.up_proj.weight", vec![inter, hidden]),
            ("mlp.down_proj.weight", vec![hidden, inter]),
            ("input_layernorm.weight", vec![hidden]),
            ("post_attention_layernorm.weight", vec![hidden]),
        ] {
            tensors.push((format!("{p}.{n}"), s));
        }
    }
    tensors.sort();
    // Shards by size, in name order.
    let limit = (shard_gb * 1e9) as u64;
    let mut shards: Vec<Vec<usize>> = vec![Vec::new()];
    let mut size = 0u64;
    for (i, (_, s)) in tensors.iter().enumerate() {
        let b = s.iter().product::<u64>() * esize;
        if size + b > limit && !shards.last().is_some_and(|v| v.is_empty()) {
            shards.push(Vec::new());
            size = 0;
        }
        shards.last_mut().unwrap_or_else(|| unreachable!()).push(i);
        size += b;
    }
    let tmp = out.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    let run = || -> std::io::Result<u64> {
        std::fs::create_dir_all(&tmp)?;
        let n = shards.len();
        let mut weight_map = serde_json::Map::new();
        let mut total = 0u64;
        let mut params = 0u64;
        for (si, shard) in shards.iter().enumerate() {
            let fname = format!("model-{:05}-of-{:05}.safetensors", si + 1, n);
            let mut header = serde_json::Map::new();
            let mut pos = 0u64;
            for &i in shard {
                let (name, shape) = &tensors[i];
                let len = shape.iter().product::<u64>() * esize;
                header.insert(
                    name.clone(),
                    serde_json::json!({"dtype": st_dtype, "shape": shape, "data_offsets": [pos, pos + len]}),
                );
                weight_map.insert(name.clone(), serde_json::json!(fname));
                pos += len;
            }
            total += pos;
            let mut text = serde_json::Value::Object(header).to_string();
            while !text.len().is_multiple_of(8) {
                text.push(' ');
            }
            let mut w = BufWriter::with_capacity(1 << 22, std::fs::File::create(tmp.join(&fname))?);
            w.write_all(&(text.len() as u64).to_le_bytes())?;
            w.write_all(text.as_bytes())?;
            for &i in shard {
                let (name, shape) = &tensors[i];
                let count = shape.iter().product::<u64>() as usize;
                params += count as u64;
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
                let norm = shape.len() == 1;
                let mut buf = Vec::with_capacity(count * esize as usize);
                for _ in 0..count {
                    // Sum of 4 uniforms: roughly Gaussian, std 0.02; norms around 1.
                    let g = (rng.unit() + rng.unit() + rng.unit() + rng.unit() - 2.0) * 0.0346;
                    let x = if norm { 1.0 + g } else { g };
                    match esize {
                        4 => buf.extend_from_slice(&x.to_le_bytes()),
                        _ if st_dtype == "BF16" => buf.extend_from_slice(&f32_to_bf16_bits(x).to_le_bytes()),
                        _ => buf.extend_from_slice(&f32_to_f16_bits(x).to_le_bytes()),
                    }
                }
                w.write_all(&buf)?;
                eprintln!("gen_llama: {name} {shape:?}");
            }
            w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        let index = serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
        std::fs::write(
            tmp.join("model.safetensors.index.json"),
            serde_json::to_string_pretty(&index).unwrap_or_default(),
        )?;
        let config = serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
            "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": hidden / 128,
            "num_key_value_heads": hidden / 128, "vocab_size": vocab, "torch_dtype": match st_dtype { "F16" => "float16", "BF16" => "bfloat16", _ => "float32" },
        });
        std::fs::write(
            tmp.join("config.json"),
            serde_json::to_string_pretty(&config).unwrap_or_default(),
        )?;
        std::fs::rename(&tmp, &out)?;
        Ok(params)
    };
    match run() {
        Ok(p) => {
            println!("wrote {} ({} parameters, {} shards)", out.display(), p, shards.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen_llama: {e}");
            let _ = std::fs::remove_dir_all(&tmp);
            ExitCode::from(2)
        }
    }
}
