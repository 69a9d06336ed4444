//! Records for the tests of the C ABI, built with `uc_format::write_record` (v0.3) and
//! `uc_format::write_record_with_subscales` (v0.4, two-level scales).
#![allow(dead_code)]

use uc_format::{OverlayDtype, RecordParams, write_record, write_record_with_subscales};

/// Small deterministic generator (64-bit LCG, high bits).
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Lcg(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 32) as u32
    }
}

/// A valid record: `bits`-bit codes, shape `dims`, overlay of rank `r` in `dtype`. The grid
/// contains -0.0 and +0.0, scales include 0 and subnormals, so signs of zero are exercised.
pub fn record(bits: u8, dims: &[u64], r: u32, dtype: OverlayDtype, seed: u64) -> Vec<u8> {
    let params = RecordParams::new(bits, dims, r, dtype).expect("valid params");
    let layout = params.layout().expect("layout");
    let mut g = Lcg::new(seed);
    let k = 1usize << bits;
    let grid: Vec<f32> = (0..k)
        .map(|i| match i {
            0 => -0.0,
            1 if k > 2 => 0.0,
            _ => (2.0 * i as f32 + 1.0 - k as f32) / k as f32 * (1.0 + (g.next() % 1000) as f32 / 997.0),
        })
        .collect();
    // Any f16 with the sign bit clear and a finite exponent: +0, subnormals and normals.
    let scales: Vec<u16> = (0..layout.n_blocks)
        .map(|j| if j % 7 == 3 { 0 } else { (g.next() % 0x7C00) as u16 })
        .collect();
    let codes: Vec<u8> = (0..layout.n).map(|_| (g.next() as usize % k) as u8).collect();
    let finite = |h: u16| match dtype {
        OverlayDtype::Bf16 if (h >> 7) & 0xff == 0xff => h & !0x0080,
        OverlayDtype::F16 if (h >> 10) & 0x1f == 0x1f => h & !0x0400,
        _ => h,
    };
    let nu = (layout.rows * u64::from(r)) as usize;
    let nv = (u64::from(r) * layout.cols) as usize;
    let u: Vec<u16> = (0..nu).map(|_| finite(g.next() as u16)).collect();
    let v: Vec<u16> = (0..nv).map(|_| finite(g.next() as u16)).collect();
    let mut buf = vec![0u8; layout.record_len as usize];
    write_record(&params, &grid, &scales, &codes, &u, &v, &mut buf).expect("write_record");
    buf
}

/// The parts of a v0.4 record with two-level scales of sub-block `sub` (16 or 32), as written:
/// grid, binary16 scales (one per 256 elements, 0, subnormals and 65504 included), sub-scales
/// (0 and 255 included), codes, and the record bytes. No overlay.
pub struct V04 {
    pub grid: Vec<f32>,
    pub scales: Vec<u16>,
    pub subscales: Vec<u8>,
    pub codes: Vec<u8>,
    pub bytes: Vec<u8>,
}

pub fn record_v04(bits: u8, dims: &[u64], r: u32, dtype: OverlayDtype, sub: u32, seed: u64) -> V04 {
    let params = RecordParams::with_subscales(bits, dims, r, dtype, sub).expect("valid params");
    let layout = params.layout().expect("layout");
    let mut g = Lcg::new(seed);
    let k = 1usize << bits;
    let grid: Vec<f32> = (0..k)
        .map(|i| match i {
            0 => -0.0,
            1 if k > 2 => 0.0,
            _ => (2.0 * i as f32 + 1.0 - k as f32) / k as f32 * (1.0 + (g.next() % 1000) as f32 / 997.0),
        })
        .collect();
    let scales: Vec<u16> = (0..layout.n_scales)
        .map(|j| match j % 5 {
            1 => 0,
            2 => 0x7BFF,
            3 => 1 + (g.next() % 0x3FF) as u16,
            _ => (g.next() % 0x7C00) as u16,
        })
        .collect();
    let subscales: Vec<u8> = (0..layout.n_subscales)
        .map(|t| match t % 6 {
            0 => 255,
            1 => 0,
            _ => g.next() as u8,
        })
        .collect();
    let codes: Vec<u8> = (0..layout.n).map(|_| (g.next() as usize % k) as u8).collect();
    let nu = (layout.rows * u64::from(r)) as usize;
    let nv = (u64::from(r) * layout.cols) as usize;
    // Small finite overlay values (f16 0x3C00 = 1, bf16 0x3F80 = 1, with random low bits).
    let base = if dtype == OverlayDtype::Bf16 { 0x3F00 } else { 0x3800 };
    let u: Vec<u16> = (0..nu).map(|_| base | (g.next() as u16 & 0xFF)).collect();
    let v: Vec<u16> = (0..nv).map(|_| base | 0x8000 | (g.next() as u16 & 0xFF)).collect();
    let mut bytes = vec![0u8; layout.record_len as usize];
    write_record_with_subscales(&params, &grid, &scales, &subscales, &codes, &u, &v, &mut bytes)
        .expect("write_record_with_subscales");
    V04 {
        grid,
        scales,
        subscales,
        codes,
        bytes,
    }
}

/// The records the tests run through every interface: bits 1..=8 over full and partial blocks,
/// 1-D to 3-D shapes, overlays in f16 and bf16, and v0.4 records with two-level scales.
pub fn valid_records() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let shapes: [&[u64]; 4] = [&[64], &[3, 37], &[5], &[2, 3, 45]];
    for bits in 1..=8u8 {
        for (i, dims) in shapes.iter().enumerate() {
            let name = format!("b{bits}_{dims:?}");
            out.push((
                name,
                record(bits, dims, 0, OverlayDtype::None, 100 * u64::from(bits) + i as u64),
            ));
        }
    }
    out.push(("overlay_f16".into(), record(4, &[6, 10], 2, OverlayDtype::F16, 7)));
    out.push(("overlay_bf16".into(), record(3, &[4, 5, 3], 3, OverlayDtype::Bf16, 8)));
    out.push((
        "overlay_f16_rank_full".into(),
        record(8, &[7, 3], 3, OverlayDtype::F16, 9),
    ));
    // Two-level scales: n = 300 and 2 * 3 * 45 = 270 (partial blocks of 256, partial sub-blocks).
    out.push((
        "v04_s16_b4".into(),
        record_v04(4, &[300], 0, OverlayDtype::None, 16, 10).bytes,
    ));
    out.push((
        "v04_s32_b7".into(),
        record_v04(7, &[2, 3, 45], 0, OverlayDtype::None, 32, 11).bytes,
    ));
    out.push((
        "v04_s32_b3_overlay_f16".into(),
        record_v04(3, &[9, 70], 2, OverlayDtype::F16, 32, 12).bytes,
    ));
    out
}

/// Invalid records: (name, bytes). The expected error is whatever `uc_decode::Record::parse` says.
pub fn invalid_records() -> Vec<(String, Vec<u8>)> {
    let good = record(4, &[3, 37], 0, OverlayDtype::None, 1);
    let mut out = vec![
        ("empty".to_string(), Vec::new()),
        ("short".to_string(), good[..5].to_vec()),
    ];
    let mut magic = good.clone();
    magic[0] ^= 0xff;
    out.push(("bad_magic".into(), magic));
    out.push(("truncated_header".into(), good[..100].to_vec()));
    out.push(("truncated_body".into(), good[..good.len() - 1].to_vec()));
    let mut crc = good.clone();
    crc[24] ^= 1;
    out.push(("crc_flip".into(), crc));
    let mut body = good.clone();
    let last = body.len() - 1;
    body[last] ^= 0x10;
    out.push(("body_flip".into(), body));
    let mut bits = good.clone();
    bits[32] = 9;
    uc_format::finalize_crc(&mut bits);
    out.push(("bad_bits".into(), bits));
    out
}
