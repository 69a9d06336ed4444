//! Builds a record from a tensor and decodes it again: the smallest end-to-end use of the format.
//!
//! cargo run --release -p uc-encode --example roundtrip -- [--rows R] [--cols C] [--out DIR]
//!
//! For every code width 2..=8 it quantizes a deterministic heavy-tailed test matrix with GSQ,
//! validates and decodes the record with uc-decode (scalar reference and fast path, which must agree
//! bit for bit) and prints record size, bits per weight and relative L2 error. With `--out DIR` it
//! also writes each record as `DIR/roundtrip-b<bits>.ucr`.

use std::process::ExitCode;
use uc_decode::{Path, Record};
use uc_encode::{GsqOptions, quantize};

fn main() -> ExitCode {
    let mut rows = 256u64;
    let mut cols = 1024u64;
    let mut out_dir: Option<std::path::PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next();
        let parsed = match (a.as_str(), v) {
            ("--rows", Some(v)) => v.parse().map(|x| rows = x).map_err(|e| e.to_string()),
            ("--cols", Some(v)) => v.parse().map(|x| cols = x).map_err(|e| e.to_string()),
            ("--out", Some(v)) => {
                out_dir = Some(v.into());
                Ok(())
            }
            _ => Err(format!(
                "usage: roundtrip [--rows R] [--cols C] [--out DIR] (got {a:?})"
            )),
        };
        if let Err(e) = parsed {
            eprintln!("roundtrip: {e}");
            return ExitCode::from(2);
        }
    }
    let n = (rows * cols) as usize;
    // Deterministic heavy-tailed weights (Student-t-like: normal / sqrt of a chi-square-ish term).
    let mut s = 0x853c_49e6_748f_ea9bu64;
    let mut u = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let w: Vec<f32> = (0..n)
        .map(|_| {
            let z = (-2.0 * u().ln()).sqrt() * (2.0 * std::f64::consts::PI * u()).cos();
            let v = (0..4).map(|_| -u().ln()).sum::<f64>() / 4.0;
            (0.02 * z / v.sqrt()) as f32
        })
        .collect();
    println!("tensor [{rows}, {cols}] = {n} weights, f32 {} bytes", n * 4);
    println!("{:>4} {:>12} {:>8} {:>10}", "bits", "record B", "bpw", "rel_l2");
    for bits in 2..=8u8 {
        let q = match quantize(&w, &[rows, cols], &GsqOptions::new(bits)) {
            Ok(q) => q,
            Err(e) => {
                eprintln!("roundtrip: encode failed: {e}");
                return ExitCode::from(1);
            }
        };
        let rec = match Record::parse(&q.record) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("roundtrip: the encoder wrote an invalid record: {e}");
                return ExitCode::from(1);
            }
        };
        let mut fast = vec![0f32; n];
        let mut reference = vec![0f32; n];
        rec.decode_into(&mut fast).expect("output sized from the record");
        rec.decode_with(Path::Scalar, &mut reference)
            .expect("output sized from the record");
        if fast.iter().zip(&reference).any(|(a, b)| a.to_bits() != b.to_bits()) {
            eprintln!("roundtrip: fast and reference decode disagree at {bits} bits");
            return ExitCode::from(1);
        }
        let (num, den) = w.iter().zip(&fast).fold((0f64, 0f64), |(n, d), (a, b)| {
            (n + (f64::from(*a) - f64::from(*b)).powi(2), d + f64::from(*a).powi(2))
        });
        let bpw = q.record.len() as f64 * 8.0 / n as f64;
        println!(
            "{bits:>4} {:>12} {bpw:>8.3} {:>10.5}",
            q.record.len(),
            (num / den).sqrt()
        );
        if let Some(dir) = &out_dir {
            // Write under a temporary name, then rename: no partial file at the final path.
            let path = dir.join(format!("roundtrip-b{bits}.ucr"));
            let tmp = dir.join(format!(".roundtrip-b{bits}.ucr.tmp"));
            let written = std::fs::create_dir_all(dir)
                .and_then(|_| std::fs::write(&tmp, &q.record))
                .and_then(|_| std::fs::rename(&tmp, &path));
            if let Err(e) = written {
                eprintln!("roundtrip: cannot write {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::SUCCESS
}
