//! Test support (feature `testkit`): a small, plain quantizer that writes valid records through
//! `uc_format::write_record`, so that the pack reader, writer and verifier can be tested on real
//! records without the encoder (which would make the auditable side depend on it).
//!
//! This is not the GSQ method: the grid is uniform on `[-1, 1]`, the scale of each 64-weight block
//! is its absolute maximum rounded to binary16, and each code is the nearest grid value.

use uc_format::num::{f16_to_f32, f32_to_f16_bits};
use uc_format::{BLOCK_SIZE, OverlayDtype, RecordParams, write_record};

/// A valid record of `w` with shape `dims` and `bits`-bit codes, with a bf16 overlay of rank
/// `overlay.0` whose factors are `overlay.1` (U, `rows × r`) and `overlay.2` (V, `r × cols`) as bf16
/// bit patterns; `None` for no overlay.
///
/// # Panics
/// When the inputs do not make a valid record (a test's mistake).
pub fn record_with(w: &[f32], dims: &[u64], bits: u8, overlay: Option<(u32, &[u16], &[u16])>) -> Vec<u8> {
    let (rank, dtype, u, v) = match overlay {
        Some((r, u, v)) => (r, OverlayDtype::Bf16, u, v),
        None => (0, OverlayDtype::None, &[][..], &[][..]),
    };
    let params = RecordParams::new(bits, dims, rank, dtype).expect("record parameters");
    let levels = 1usize << bits;
    let grid: Vec<f32> = (0..levels)
        .map(|k| {
            if levels == 1 {
                0.0
            } else {
                -1.0 + 2.0 * k as f32 / (levels - 1) as f32
            }
        })
        .collect();
    let mut scales = Vec::new();
    let mut codes = Vec::with_capacity(w.len());
    for block in w.chunks(BLOCK_SIZE as usize) {
        let amax = block.iter().fold(0f32, |m, x| m.max(x.abs()));
        let s = f32_to_f16_bits(amax);
        scales.push(s);
        let s = f16_to_f32(s);
        for &x in block {
            let t = if s > 0.0 { x / s } else { 0.0 };
            let (mut best, mut err) = (0u8, f32::INFINITY);
            for (k, g) in grid.iter().enumerate() {
                if (g - t).abs() < err {
                    (best, err) = (k as u8, (g - t).abs());
                }
            }
            codes.push(best);
        }
    }
    let len = params.layout().expect("layout").record_len as usize;
    let mut out = vec![0u8; len];
    write_record(&params, &grid, &scales, &codes, u, v, &mut out).expect("valid record");
    out
}

/// [`record_with`] without an overlay.
pub fn record(w: &[f32], dims: &[u64], bits: u8) -> Vec<u8> {
    record_with(w, dims, bits, None)
}

/// Deterministic test weights: `n` values in about `[-1, 1]`.
pub fn weights(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f32 + 1.0) * (0.37 + seed as f32 * 0.011)).sin() * (1.0 + (i % 7) as f32 * 0.1))
        .collect()
}
