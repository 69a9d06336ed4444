//! Decode throughput benchmark (single thread), against a same-sized f32 memcpy in the same run.
//!
//! cargo run --release -p uc-decode --example decode_bench -- --bits 4 --n 16777216 [--json]
//!     [--path auto|scalar|portable|avx2] [--runs R] [--sub-block 16|32] [--sub-bits Q] [--dot COLS]
//!
//! `--sub-block S` benchmarks a v0.4 record with two-level scales (spec section 13: one binary16
//! scale per 256 weights times one Q-bit sub-scale per S weights, Q = 6 by default) instead of a v0.3
//! record.
//!
//! decode_gbps = f32 output bytes per second of the best of R runs; memcpy_gbps = bytes copied
//! per second by the best of R copies of an equally sized f32 buffer; ratio = decode / memcpy.
//!
//! `--dot COLS` benchmarks `Record::dot_rows` instead (a matrix-vector product of the record as a
//! `[n / COLS, COLS]` matrix, what a linear layer runs for one token) against the same product over
//! the decoded f32 matrix in the same run (`f32_gws`: a plain 8-lane f32 matrix-vector loop over
//! `n` f32 weights read from memory, what a runtime over the unpacked model does) and against
//! decoding the whole matrix first (`decode_then_dot_gws`). Figures are weights per second.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;
use uc_decode::{Path, Record};
use uc_format::num::f32_to_f16_bits;
use uc_format::{OverlayDtype, RecordParams, write_record_with_subscales};

struct Args {
    bits: u8,
    n: u64,
    json: bool,
    path: Path,
    runs: usize,
    /// 0: a v0.3 record; 16 or 32: a v0.4 record with two-level scales.
    sub_block: u32,
    sub_bits: u8,
    /// Non-zero: benchmark `dot_rows` with rows of this many columns.
    dot: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        bits: 4,
        n: 1 << 24,
        json: false,
        path: Path::Auto,
        runs: 7,
        sub_block: 0,
        sub_bits: 6,
        dot: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match k.as_str() {
            "--bits" => a.bits = val("--bits")?.parse().map_err(|e| format!("--bits: {e}"))?,
            "--n" => a.n = val("--n")?.parse().map_err(|e| format!("--n: {e}"))?,
            "--runs" => a.runs = val("--runs")?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--sub-block" => a.sub_block = val("--sub-block")?.parse().map_err(|e| format!("--sub-block: {e}"))?,
            "--sub-bits" => a.sub_bits = val("--sub-bits")?.parse().map_err(|e| format!("--sub-bits: {e}"))?,
            "--path" => {
                a.path = match val("--path")?.as_str() {
                    "auto" => Path::Auto,
                    "scalar" => Path::Scalar,
                    "portable" => Path::Portable,
                    "avx2" => Path::Avx2,
                    p => return Err(format!("--path: unknown path {p:?} (auto|scalar|portable|avx2)")),
                }
            }
            "--dot" => a.dot = val("--dot")?.parse().map_err(|e| format!("--dot: {e}"))?,
            "--json" => a.json = true,
            "-h" | "--help" => {
                println!(
                    "decode_bench: single-threaded uc record decode throughput vs memcpy\n\n\
                     Options:\n  --bits B     code width 1..=8 (default 4)\n  --n N        weights (default 16777216)\n  \
                     --path P     auto|scalar|portable|avx2 (default auto)\n  --runs R     repetitions, best is kept (default 7)\n  \
                     --sub-block S  16|32: a v0.4 record with two-level scales (default: v0.3)\n  \
                     --sub-bits Q   1..=8: its sub-scale width (default 6)\n  \
                     --dot COLS   benchmark dot_rows over [n/COLS, COLS] against an f32 matrix-vector product\n  \
                     --json       one JSON line"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    if !(1..=8).contains(&a.bits) {
        return Err("--bits must be in 1..=8".into());
    }
    if ![0, 16, 32].contains(&a.sub_block) {
        return Err("--sub-block must be 16 or 32".into());
    }
    if a.n == 0 || a.runs == 0 {
        return Err("--n and --runs must be positive".into());
    }
    if a.dot != 0 && a.n % a.dot != 0 {
        return Err("--n must be a multiple of --dot".into());
    }
    Ok(a)
}

/// xorshift64*: deterministic test data without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn best_secs(runs: usize, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("decode_bench: {e}");
            return ExitCode::from(2);
        }
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(a.bits));
    let dims = match a.n.checked_div(a.dot) {
        Some(rows) => vec![rows, a.dot],
        None => vec![a.n],
    };
    let params = match a.sub_block {
        0 => RecordParams::new(a.bits, &dims, 0, OverlayDtype::None),
        s => RecordParams::with_subscales_bits(a.bits, &dims, 0, OverlayDtype::None, s, a.sub_bits),
    };
    let params = match params {
        Ok(p) => p,
        Err(e) => {
            eprintln!("decode_bench: {e}");
            return ExitCode::from(2);
        }
    };
    let layout = params.layout().expect("validated by RecordParams::new");
    let k = 1usize << a.bits;
    let grid: Vec<f32> = (0..k).map(|i| (i as f32 + 0.5) / k as f32 * 2.0 - 1.0).collect();
    let scales: Vec<u16> = (0..layout.n_scales)
        .map(|_| f32_to_f16_bits(0.001 + rng.unit() * 0.1))
        .collect();
    let q = layout.params.sub_bits;
    let subscales: Vec<u8> = (0..layout.n_subscales)
        .map(|_| ((rng.next() >> 56) as u16 & ((1u16 << q) - 1)) as u8)
        .collect();
    let codes: Vec<u8> = (0..a.n)
        .map(|_| (rng.next() >> 56) as u8 & (k as u8).wrapping_sub(1))
        .collect();
    let mut buf = vec![0u8; layout.record_len as usize];
    write_record_with_subscales(&params, &grid, &scales, &subscales, &codes, &[], &[], &mut buf)
        .expect("bench record is valid");
    drop(codes);
    let rec = Record::parse(&buf).expect("bench record parses");

    let n = a.n as usize;
    if a.dot != 0 {
        return dot_bench(&a, &rec, &mut rng);
    }
    let mut out = vec![0f32; n];
    let src: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let mut dst = vec![0f32; n];
    // Touch every page once so that neither measurement pays for first-touch faults.
    rec.decode_with(a.path, &mut out).expect("sizes match");
    dst.copy_from_slice(&src);

    let t_dec = best_secs(a.runs, || {
        rec.decode_with(a.path, black_box(&mut out)).expect("sizes match");
        black_box(&out);
    });
    let t_cpy = best_secs(a.runs, || {
        black_box(&mut dst).copy_from_slice(black_box(&src));
        black_box(&dst);
    });
    let bytes = (n * 4) as f64;
    let decode_gbps = bytes / t_dec / 1e9;
    let memcpy_gbps = bytes / t_cpy / 1e9;
    let ratio = decode_gbps / memcpy_gbps;
    let path = a.path.resolve(a.bits).name();
    if a.json {
        println!(
            "{{\"bits\":{},\"n\":{},\"sub_block\":{},\"sub_bits\":{},\"path\":\"{}\",\"decode_gbps\":{:.3},\"memcpy_gbps\":{:.3},\"ratio\":{:.3}}}",
            a.bits,
            a.n,
            a.sub_block,
            if a.sub_block == 0 { 0 } else { a.sub_bits },
            path,
            decode_gbps,
            memcpy_gbps,
            ratio
        );
    } else {
        println!(
            "bits {}  n {}  {}  path {:<8}  decode {:7.3} GB/s ({:.3} Gweights/s)  memcpy {:7.3} GB/s  ratio {:.3}",
            a.bits,
            a.n,
            match a.sub_block {
                0 => "v0.3     ".to_string(),
                s => format!("v0.4 S={s:<2}"),
            },
            path,
            decode_gbps,
            decode_gbps / 4.0,
            memcpy_gbps,
            ratio
        );
    }
    ExitCode::SUCCESS
}

/// A plain f32 matrix-vector product in 8 lanes per row (what the compiler vectorises): the
/// unpacked model's reference.
fn f32_matvec(w: &[f32], x: &[f32], y: &mut [f32]) {
    for (row, o) in w.chunks_exact(x.len()).zip(y.iter_mut()) {
        let mut lanes = [0f32; 8];
        for (wc, xc) in row.chunks_exact(8).zip(x.chunks_exact(8)) {
            for j in 0..8 {
                lanes[j] += wc[j] * xc[j];
            }
        }
        *o = lanes.iter().sum();
    }
}

fn dot_bench(a: &Args, rec: &Record<'_>, rng: &mut Rng) -> ExitCode {
    let (rows, cols) = ((a.n / a.dot) as usize, a.dot as usize);
    let x: Vec<f32> = (0..cols).map(|_| rng.unit() - 0.5).collect();
    let mut y = vec![0f32; rows];
    let mut w = vec![0f32; a.n as usize];
    rec.decode_with(a.path, &mut w).expect("sizes match");
    let t_dot = best_secs(a.runs, || {
        rec.dot_rows_with(a.path, 0..rows as u64, black_box(&x), black_box(&mut y))
            .expect("sizes match");
        black_box(&y);
    });
    let t_f32 = best_secs(a.runs, || {
        f32_matvec(black_box(&w), black_box(&x), black_box(&mut y));
        black_box(&y);
    });
    let t_dec = best_secs(a.runs, || {
        rec.decode_with(a.path, black_box(&mut w)).expect("sizes match");
        f32_matvec(black_box(&w), black_box(&x), black_box(&mut y));
        black_box(&y);
    });
    let n = a.n as f64;
    let (dot, f32, dec) = (n / t_dot / 1e9, n / t_f32 / 1e9, n / t_dec / 1e9);
    let path = a.path.resolve(a.bits).name();
    if a.json {
        println!(
            "{{\"bits\":{},\"rows\":{rows},\"cols\":{cols},\"sub_block\":{},\"path\":\"{path}\",\"dot_gws\":{dot:.3},\"f32_gws\":{f32:.3},\"decode_then_dot_gws\":{dec:.3},\"ratio_to_f32\":{:.3}}}",
            a.bits,
            a.sub_block,
            dot / f32
        );
    } else {
        println!(
            "bits {}  {rows}x{cols}  sub-block {}  path {path:<8}  dot_rows {dot:6.3} Gweights/s  f32 matvec {f32:6.3}  decode then matvec {dec:6.3}  ratio to f32 {:.3}",
            a.bits,
            a.sub_block,
            dot / f32
        );
    }
    ExitCode::SUCCESS
}
