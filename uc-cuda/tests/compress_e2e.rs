//! `uc_encode::compress` with GSQ on the kernels' host build writes the bytes of the CPU engine:
//! every file of the pack, for a small Llama-shaped model, data-free with the allocator, with
//! v0.3 and two-level scales and with the norms' importance weights.

use std::path::Path;
use std::sync::Arc;
use uc_encode::compress::{Analysis, CompressOptions};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let u = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        (u * 2.0 - 1.0) as f32
    }
}

/// A safetensors file of f32 tensors (name, shape), values from a seeded generator.
fn write_model(dir: &Path, tensors: &[(&str, Vec<u64>)]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let (mut header, mut data) = (serde_json::Map::new(), Vec::<u8>::new());
    for (name, shape) in tensors {
        let n: u64 = shape.iter().product();
        let start = data.len();
        for i in 0..n {
            let norm = name.contains("norm");
            let w = if norm {
                1.0 + 0.5 * rng.next()
            } else {
                0.02 * rng.next() * if i % 97 == 0 { 8.0 } else { 1.0 }
            };
            data.extend_from_slice(&w.to_le_bytes());
        }
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut h = serde_json::to_vec(&header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut file = (h.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&h);
    file.extend_from_slice(&data);
    std::fs::write(dir.join("model.safetensors"), file).unwrap();
    let cfg = serde_json::json!({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 1});
    std::fs::write(dir.join("config.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
}

fn options(src: &Path, out: &Path, subscales: Option<uc_encode::SubScales>, norms: bool) -> CompressOptions {
    CompressOptions {
        source: src.into(),
        output_dir: out.into(),
        bpw: 3.7,
        bits: None,
        rank: None,
        outer_bits: Some(6),
        subscales,
        analysis: Analysis::Sampled,
        norm_importance: norms,
        seed: 7,
        method_version: "gsq-1".into(),
        license: None,
        skip: Vec::new(),
        fresh: true,
        created_at: Some("2026-01-01T00:00:00Z".into()),
        progress: None,
        calibration: None,
        sign: None,
        engine: None,
    }
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn compress_through_the_host_kernels_writes_the_cpu_bytes() {
    let root = std::env::temp_dir().join(format!("uc-cuda-e2e-{}", std::process::id()));
    let src = root.join("src");
    write_model(
        &src,
        &[
            ("model.embed_tokens.weight", vec![300, 64]),
            ("model.layers.0.input_layernorm.weight", vec![64]),
            ("model.layers.0.self_attn.q_proj.weight", vec![64, 64]),
            ("model.layers.0.self_attn.k_proj.weight", vec![32, 64]),
            ("model.layers.0.post_attention_layernorm.weight", vec![64]),
            ("model.layers.0.mlp.up_proj.weight", vec![200, 64]),
            ("model.layers.0.mlp.down_proj.weight", vec![64, 200]),
            ("model.norm.weight", vec![64]),
        ],
    );
    for (k, (sub, norms)) in [
        (None, false),
        (Some(uc_encode::SubScales::DEFAULT), false),
        (Some(uc_encode::SubScales::DEFAULT), true),
    ]
    .into_iter()
    .enumerate()
    {
        // The same directory name: the manifest records it as the model id.
        let (a, b) = (root.join(format!("cpu-{k}/pack")), root.join(format!("host-{k}/pack")));
        uc_encode::compress(&options(&src, &a, sub, norms)).expect("CPU compress");
        let mut o = options(&src, &b, sub, norms);
        o.engine = Some(Arc::new(uc_cuda::host::HostEngine));
        uc_encode::compress(&o).expect("host-kernel compress");
        let (fa, fb) = (files(&a), files(&b));
        assert!(
            fa.iter().any(|(n, _)| n.ends_with(".safetensors")),
            "{:?}",
            fa.iter().map(|f| &f.0).collect::<Vec<_>>()
        );
        assert_eq!(fa.len(), fb.len());
        for ((na, da), (nb, db)) in fa.iter().zip(&fb) {
            assert_eq!(na, nb);
            assert!(da == db, "case {k}: {na} differs");
        }
    }
    std::fs::remove_dir_all(&root).ok();
}
