//! One generated token's weight products of a Llama-family pack, side by side in one run: uc's
//! records read in place (`Weight::matvec`, what `uc run` does per token), candle's quantized
//! matmul (`QMatMul`, ggml's `vec_dot_q4_K_q8_K` ported: activations quantized to Q8_K) of the
//! same weights quantized to a k-quant type, and the decoded weights as f32 (`dot_f32`, the
//! unpacked model's path). Every linear map of every layer and the output head, one input vector
//! each; the best of `--runs` passes. Rows that are not whole 256-weight super-blocks take
//! llama.cpp's fallback type (Q4_K → Q5_0, as a GGUF of the model holds them). Attention, norms and sampling are left out: this is the
//! matrix part of a generated token, which is most of its time.
//!
//! RAYON_NUM_THREADS=T cargo run --release -p uc-models --example matvec_peer -- PACK [--type q4k] [--runs 5]
//!
//! candle sizes its own thread pool once from RAYON_NUM_THREADS, so run once per thread count.
//! Prints one JSON line: tokens/s of the matrix part (1 / seconds per pass) for each path, the
//! stored bytes of each, and the peer's bits per weight.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use uc_models::run::{Files, Weight};

fn fail(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

fn best_secs(runs: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up: first touch of every page
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> ExitCode {
    let (mut pack, mut ty, mut runs) = (None::<PathBuf>, "q4k".to_string(), 5usize);
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--type" => match it.next() {
                Some(v) => ty = v,
                None => return fail("--type needs a value"),
            },
            "--runs" => match it.next().and_then(|v| v.parse().ok()) {
                Some(x) if x > 0 => runs = x,
                _ => return fail("--runs must be a positive integer"),
            },
            _ if pack.is_none() && !k.starts_with('-') => pack = Some(PathBuf::from(k)),
            _ => return fail("usage: matvec_peer PACK [--type q4k|q5k|q6k|q8_0] [--runs R]"),
        }
    }
    let Some(pack) = pack else {
        return fail("usage: matvec_peer PACK [--type q4k|q5k|q6k|q8_0] [--runs R]");
    };
    let dtype = match ty.as_str() {
        "q4k" => GgmlDType::Q4K,
        "q5k" => GgmlDType::Q5K,
        "q6k" => GgmlDType::Q6K,
        "q8_0" => GgmlDType::Q8_0,
        _ => return fail("--type: q4k, q5k, q6k or q8_0"),
    };
    match run(&pack, dtype, &ty, runs) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(pack: &std::path::Path, dtype: GgmlDType, ty: &str, runs: usize) -> Result<String, String> {
    let files = Files::open(pack).map_err(|e| e.to_string())?;
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pack.join("config.json")).map_err(|e| format!("config.json: {e}"))?)
            .map_err(|e| format!("config.json: {e}"))?;
    let layers = cfg["num_hidden_layers"]
        .as_u64()
        .ok_or("config.json: no num_hidden_layers")? as usize;
    let mut names = Vec::new();
    for i in 0..layers {
        for m in [
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.v_proj",
            "self_attn.o_proj",
        ] {
            names.push(format!("model.layers.{i}.{m}.weight"));
        }
        for m in ["mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"] {
            names.push(format!("model.layers.{i}.{m}.weight"));
        }
    }
    names.push(if files.has("lm_head.weight") {
        "lm_head.weight".into()
    } else {
        "model.embed_tokens.weight".into()
    });
    let (mut packed, mut dense, mut peer) = (Vec::new(), Vec::new(), Vec::new());
    let (mut weights, mut packed_bytes, mut peer_bytes, mut fallbacks) = (0usize, 0usize, 0usize, 0usize);
    // The matrices the peer holds in the K type itself (rows of whole super-blocks).
    let mut k_subset = Vec::new();
    for name in &names {
        let w = files.weight(name).map_err(|e| e.to_string())?;
        let (rows, cols) = (w.rows(), w.cols());
        if let Weight::Packed { rec, .. } = &w {
            packed_bytes += rec.layout().record_len as usize;
        } else {
            return Err(format!("{name} is not a uc record: pass a pack"));
        }
        let mut f = vec![0f32; rows * cols];
        for (i, row) in f.chunks_exact_mut(cols).enumerate() {
            w.row(i, row);
        }
        let t = Tensor::from_vec(f.clone(), (rows, cols), &Device::Cpu).map_err(|e| e.to_string())?;
        // llama.cpp's rule for rows that are not whole 256-weight super-blocks (576 in SmolLM2):
        // the K type falls back to a legacy 32-weight type (llama_tensor_get_type: Q4_K → Q5_0,
        // Q5_K → Q5_1, Q6_K → Q8_0), which is what a GGUF of this model holds and runs.
        let ty = if cols % dtype.block_size() == 0 {
            k_subset.push(packed.len());
            dtype
        } else {
            fallbacks += 1;
            match dtype {
                GgmlDType::Q4K => GgmlDType::Q5_0,
                GgmlDType::Q5K => GgmlDType::Q5_1,
                _ => GgmlDType::Q8_0,
            }
        };
        let q = QTensor::quantize(&t, ty).map_err(|e| format!("{name}: {e}"))?;
        peer_bytes += q.storage_size_in_bytes();
        peer.push((QMatMul::from_qtensor(q).map_err(|e| e.to_string())?, cols));
        dense.push(Weight::Dense { w: f, rows, cols });
        packed.push(w);
        weights += rows * cols;
    }
    // One input per width, deterministic, unit-scale.
    let input = |n: usize| -> Vec<f32> { (0..n).map(|i| ((i * 7919 % 1009) as f32 - 504.0) / 504.0).collect() };
    let buffers = |ws: &[Weight<'_>]| -> Vec<(Vec<f32>, Vec<f32>)> {
        ws.iter().map(|w| (input(w.cols()), vec![0f32; w.rows()])).collect()
    };
    let (mut px, pw) = (buffers(&packed), &packed);
    let t_packed = best_secs(runs, || {
        for (w, (x, y)) in pw.iter().zip(px.iter_mut()) {
            w.matvec(black_box(x), y).expect("a CPU product");
        }
        black_box(&px);
    });
    let (mut dx, dw) = (buffers(&dense), &dense);
    let t_dense = best_secs(runs, || {
        for (w, (x, y)) in dw.iter().zip(dx.iter_mut()) {
            w.matvec(black_box(x), y).expect("a CPU product");
        }
        black_box(&dx);
    });
    let qx: Vec<Tensor> = peer
        .iter()
        .map(|(_, cols)| Tensor::from_vec(input(*cols), (1, *cols), &Device::Cpu))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let mut err = None;
    let t_peer = best_secs(runs, || {
        for ((m, _), x) in peer.iter().zip(&qx) {
            match m.forward(black_box(x)) {
                Ok(y) => drop(black_box(y)),
                Err(e) => err = Some(e.to_string()),
            }
        }
    });
    if let Some(e) = err {
        return Err(format!("candle QMatMul: {e}"));
    }
    // The same on the matrices the peer holds in the K type itself: its own kernel against uc's.
    let k_weights: usize = k_subset.iter().map(|&i| packed[i].rows() * packed[i].cols()).sum();
    let t_packed_k = best_secs(runs, || {
        for &i in &k_subset {
            let (x, y) = &mut px[i];
            pw[i].matvec(black_box(x), y).expect("a CPU product");
        }
        black_box(&px);
    });
    let t_peer_k = best_secs(runs, || {
        for &i in &k_subset {
            match peer[i].0.forward(black_box(&qx[i])) {
                Ok(y) => drop(black_box(y)),
                Err(e) => err = Some(e.to_string()),
            }
        }
    });
    if let Some(e) = err {
        return Err(format!("candle QMatMul: {e}"));
    }
    let threads = rayon::current_num_threads();
    Ok(serde_json::json!({
        "pack": pack.display().to_string(),
        "threads": threads,
        "matrices": names.len(),
        "weights": weights,
        "uc_bytes": packed_bytes,
        "uc_bpw": packed_bytes as f64 * 8.0 / weights as f64,
        "peer": format!("candle {ty} QMatMul"),
        "peer_bytes": peer_bytes,
        "peer_fallback_matrices": fallbacks,
        "peer_bpw": peer_bytes as f64 * 8.0 / weights as f64,
        "uc_tokens_per_second": 1.0 / t_packed,
        "peer_tokens_per_second": 1.0 / t_peer,
        "f32_tokens_per_second": 1.0 / t_dense,
        "uc_weights_per_second": weights as f64 / t_packed,
        "peer_weights_per_second": weights as f64 / t_peer,
        "f32_weights_per_second": weights as f64 / t_dense,
        "uc_over_peer": t_peer / t_packed,
        "uc_over_f32": t_dense / t_packed,
        "k_type_matrices": k_subset.len(),
        "k_type_weights": k_weights,
        "uc_k_type_weights_per_second": k_weights as f64 / t_packed_k,
        "peer_k_type_weights_per_second": k_weights as f64 / t_peer_k,
    })
    .to_string())
}
