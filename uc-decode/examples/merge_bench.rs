//! Overlay merge speed (spec order): `Record::merge_overlay_into` on a bf16 overlay of rank R
//! over a ROWS x COLS tensor, against a plain f32 copy of the tensor measured in the same run.
//!
//! cargo run --release -p uc-decode --example merge_bench -- [ROWS] [COLS] [R]
use std::time::Instant;
use uc_decode::Record;
use uc_format::{OverlayDtype, RecordParams, write_record};

fn main() {
    let a: Vec<u64> = std::env::args().skip(1).filter_map(|s| s.parse().ok()).collect();
    let (rows, cols, r) = (
        a.first().copied().unwrap_or(1024),
        a.get(1).copied().unwrap_or(4096),
        a.get(2).copied().unwrap_or(64),
    );
    let n = rows * cols;
    let params = RecordParams::new(4, &[rows, cols], r as u32, OverlayDtype::Bf16).expect("params");
    let mut buf = vec![0u8; params.layout().expect("layout").record_len as usize];
    let grid: Vec<f32> = (0..16).map(|k| k as f32 / 8.0 - 1.0).collect();
    let scales = vec![0x3c00u16; n.div_ceil(64) as usize];
    let codes: Vec<u8> = (0..n).map(|i| (i * 7 % 16) as u8).collect();
    let bf = |x: f32| (x.to_bits() >> 16) as u16;
    let u: Vec<u16> = (0..rows * r).map(|i| bf(((i % 13) as f32 - 6.0) / 64.0)).collect();
    let v: Vec<u16> = (0..r * cols).map(|i| bf(((i % 11) as f32 - 5.0) / 64.0)).collect();
    write_record(&params, &grid, &scales, &codes, &u, &v, &mut buf).expect("write");
    let rec = Record::parse(&buf).expect("parse");
    let mut w = vec![0f32; n as usize];
    rec.decode_into(&mut w).expect("decode");
    let base = w.clone();
    let t = Instant::now();
    rec.merge_overlay_into(&mut w).expect("merge");
    let merge_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let copy = base.clone();
    let copy_s = t.elapsed().as_secs_f64().max(1e-9);
    std::hint::black_box(&copy);
    let macs = (n * r) as f64;
    println!(
        "{{\"rows\":{rows},\"cols\":{cols},\"rank\":{r},\"merge_s\":{merge_s:.4},\"gmac_per_s\":{:.3},\"f32_copy_gbps\":{:.2},\"checksum\":{}}}",
        macs / merge_s / 1e9,
        (4 * n) as f64 / copy_s / 1e9,
        w.iter().map(|x| f64::from(*x)).sum::<f64>()
    );
}
