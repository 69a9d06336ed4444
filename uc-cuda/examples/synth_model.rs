//! Writes a Llama-shaped model of seeded pseudo-random weights (bf16 or f32 safetensors, a
//! config.json) for `scripts/gpu-check.sh`: the tensors are made on the machine that compresses
//! them, not copied to it.
//! `synth_model OUT_DIR [--shape tiny|7b] [--layers N] [--dtype bf16|f32]`
use std::io::Write;

struct Shape {
    hidden: u64,
    inter: u64,
    layers: u64,
    vocab: u64,
    kv: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(out) = args.first().filter(|a| !a.starts_with("--")) else {
        eprintln!("usage: synth_model OUT_DIR [--shape tiny|7b] [--layers N] [--dtype bf16|f32]");
        std::process::exit(2);
    };
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let mut s = match flag("--shape").as_deref().unwrap_or("tiny") {
        "7b" => Shape {
            hidden: 4096,
            inter: 11008,
            layers: 32,
            vocab: 32000,
            kv: 4096,
        },
        "tiny" => Shape {
            hidden: 256,
            inter: 704,
            layers: 2,
            vocab: 1000,
            kv: 128,
        },
        other => {
            eprintln!("error: unknown --shape {other} (tiny or 7b)");
            std::process::exit(2);
        }
    };
    if let Some(l) = flag("--layers") {
        s.layers = l.parse().unwrap_or_else(|_| {
            eprintln!("error: --layers {l}: not a number");
            std::process::exit(2)
        });
    }
    let bf16 = match flag("--dtype").as_deref().unwrap_or("bf16") {
        "bf16" => true,
        "f32" => false,
        other => {
            eprintln!("error: unknown --dtype {other} (bf16 or f32)");
            std::process::exit(2);
        }
    };
    let mut tensors: Vec<(String, Vec<u64>)> = vec![("model.embed_tokens.weight".into(), vec![s.vocab, s.hidden])];
    for l in 0..s.layers {
        let p = format!("model.layers.{l}");
        tensors.push((format!("{p}.input_layernorm.weight"), vec![s.hidden]));
        for (n, r) in [
            ("q_proj", s.hidden),
            ("k_proj", s.kv),
            ("v_proj", s.kv),
            ("o_proj", s.hidden),
        ] {
            tensors.push((format!("{p}.self_attn.{n}.weight"), vec![r, s.hidden]));
        }
        tensors.push((format!("{p}.post_attention_layernorm.weight"), vec![s.hidden]));
        tensors.push((format!("{p}.mlp.gate_proj.weight"), vec![s.inter, s.hidden]));
        tensors.push((format!("{p}.mlp.up_proj.weight"), vec![s.inter, s.hidden]));
        tensors.push((format!("{p}.mlp.down_proj.weight"), vec![s.hidden, s.inter]));
    }
    tensors.push(("model.norm.weight".into(), vec![s.hidden]));
    tensors.push(("lm_head.weight".into(), vec![s.vocab, s.hidden]));
    let width = if bf16 { 2 } else { 4 };
    let mut header = serde_json::Map::new();
    let mut off = 0u64;
    for (name, shape) in &tensors {
        let bytes = shape.iter().product::<u64>() * width;
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": if bf16 { "BF16" } else { "F32" }, "shape": shape, "data_offsets": [off, off + bytes]}),
        );
        off += bytes;
    }
    let mut h = serde_json::to_vec(&header).expect("header");
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    std::fs::create_dir_all(out).unwrap_or_else(|e| panic!("{out}: {e}"));
    let path = std::path::Path::new(out).join("model.safetensors");
    let mut f = std::io::BufWriter::with_capacity(1 << 22, std::fs::File::create(&path).expect("create"));
    f.write_all(&(h.len() as u64).to_le_bytes()).expect("write");
    f.write_all(&h).expect("write");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut buf = Vec::with_capacity(1 << 20);
    for (name, shape) in &tensors {
        let n: u64 = shape.iter().product();
        let norm = name.contains("norm");
        for i in 0..n {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // A sum of four 16-bit uniforms: roughly Gaussian, with a heavier row now and then.
            let u = (0..4)
                .map(|k| ((state >> (16 * k)) & 0xffff) as f32 / 65535.0)
                .sum::<f32>()
                - 2.0;
            let w = if norm {
                1.0 + 0.1 * u
            } else {
                0.02 * u
                    * if (i / shape[shape.len() - 1]) % 61 == 0 {
                        4.0
                    } else {
                        1.0
                    }
            };
            if bf16 {
                let b = w.to_bits();
                let r = (b + 0x7fff + ((b >> 16) & 1)) >> 16; // round to nearest even
                buf.extend_from_slice(&(r as u16).to_le_bytes());
            } else {
                buf.extend_from_slice(&w.to_le_bytes());
            }
            if buf.len() >= 1 << 20 {
                f.write_all(&buf).expect("write");
                buf.clear();
            }
        }
    }
    f.write_all(&buf).expect("write");
    f.flush().expect("flush");
    let cfg = serde_json::json!({
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": s.hidden,
        "intermediate_size": s.inter, "num_hidden_layers": s.layers, "num_attention_heads": s.hidden / 128,
        "num_key_value_heads": s.kv / 128, "vocab_size": s.vocab, "rms_norm_eps": 1e-5,
        "max_position_embeddings": 4096, "tie_word_embeddings": false
    });
    std::fs::write(
        std::path::Path::new(out).join("config.json"),
        serde_json::to_vec_pretty(&cfg).expect("config"),
    )
    .expect("config.json");
    let params: u64 = tensors.iter().map(|t| t.1.iter().product::<u64>()).sum();
    println!(
        "{} parameters in {} tensors, {} bytes",
        params,
        tensors.len(),
        off + 8 + h.len() as u64
    );
}
