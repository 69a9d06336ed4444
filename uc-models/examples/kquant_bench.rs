//! The peer of `uc-decode`'s `decode_bench`: single-threaded dequantization of llama.cpp's k-quant
//! blocks to f32 by candle's implementation (`candle_core::quantized::k_quants`, a Rust port of
//! ggml's `dequantize_row_*`), against a same-sized f32 memcpy in the same run, printed as the same
//! JSON line, so that `scripts/bench-decode-peer.sh` can put uc and the peer side by side.
//!
//! cargo run --release -p uc-models --example kquant_bench -- --type q4k --n 4194304 [--runs R]
//!
//! Types: q3k, q4k, q5k, q6k, q8_0. The weights are Gaussian-like test data quantized once with the
//! same implementation (the quantization is not timed).

use candle_core::quantized::k_quants::{BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8_0, GgmlType};
use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

fn best_secs(runs: usize, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Dequantization time of `xs` as blocks of `T`, best of `runs`.
fn time_type<T: GgmlType>(xs: &[f32], runs: usize) -> Result<f64, String> {
    if !xs.len().is_multiple_of(T::BLCK_SIZE) {
        return Err(format!("--n must be a multiple of {}", T::BLCK_SIZE));
    }
    let mut blocks = vec![T::zeros(); xs.len() / T::BLCK_SIZE];
    T::from_float(xs, &mut blocks);
    let mut out = vec![0f32; xs.len()];
    T::to_float(&blocks, &mut out); // first touch
    Ok(best_secs(runs, || {
        T::to_float(black_box(&blocks), black_box(&mut out));
        black_box(&out);
    }))
}

fn main() -> ExitCode {
    let (mut ty, mut n, mut runs) = ("q4k".to_string(), 1usize << 22, 9usize);
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next();
        match (k.as_str(), v) {
            ("--type", Some(v)) => ty = v,
            ("--n", Some(v)) => match v.parse() {
                Ok(x) if x > 0 => n = x,
                _ => return fail("--n must be a positive integer"),
            },
            ("--runs", Some(v)) => match v.parse() {
                Ok(x) if x > 0 => runs = x,
                _ => return fail("--runs must be a positive integer"),
            },
            _ => return fail("usage: kquant_bench --type q3k|q4k|q5k|q6k|q8_0 [--n N] [--runs R]"),
        }
    }
    // Deterministic Gaussian-like data (sum of uniforms), sigma about 0.02.
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut unit = || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        (s.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32
    };
    let xs: Vec<f32> = (0..n).map(|_| (unit() + unit() + unit() - 1.5) * 0.04).collect();
    let t = match ty.as_str() {
        "q3k" => time_type::<BlockQ3K>(&xs, runs),
        "q4k" => time_type::<BlockQ4K>(&xs, runs),
        "q5k" => time_type::<BlockQ5K>(&xs, runs),
        "q6k" => time_type::<BlockQ6K>(&xs, runs),
        "q8_0" => time_type::<BlockQ8_0>(&xs, runs),
        other => Err(format!("unknown --type {other:?} (q3k|q4k|q5k|q6k|q8_0)")),
    };
    let t = match t {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    let src: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let mut dst = vec![0f32; n];
    dst.copy_from_slice(&src);
    let t_cpy = best_secs(runs, || {
        black_box(&mut dst).copy_from_slice(black_box(&src));
        black_box(&dst);
    });
    let bytes = (n * 4) as f64;
    let (dec, cpy) = (bytes / t / 1e9, bytes / t_cpy / 1e9);
    println!(
        "{{\"type\":\"{ty}\",\"n\":{n},\"impl\":\"candle-core 0.11 k_quants\",\"decode_gbps\":{dec:.3},\"memcpy_gbps\":{cpy:.3},\"ratio\":{:.3}}}",
        dec / cpy
    );
    ExitCode::SUCCESS
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("kquant_bench: {msg}");
    ExitCode::from(2)
}
