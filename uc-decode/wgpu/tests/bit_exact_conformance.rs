//! GPU decoding is bit-identical to the CPU decoder (uc_decode), sign of zero included: every
//! positive conformance vector (W_base, overlay factors, row ranges), every bit width 1..=8 on
//! random records (codes straddling 32-bit words, partial last blocks, 2-D dispatches), and one
//! tensor larger than one dispatch dimension; records with two-level scales (v0.4, spec section 13)
//! for both sub-block sizes and every bit width, against the CPU's scalar reference path. Also the
//! matrix-vector kernel within its documented bound (v0.3 and v0.4 records), and the typed errors.
//!
//! Without a GPU adapter every test prints `SKIPPED: no GPU adapter (...)` to stderr and passes,
//! unless the environment sets `UC_REQUIRE_GPU=1` (CI installs Mesa's lavapipe and sets it): then a
//! missing adapter fails the test.

use uc_decode::{Path, Record};
use uc_decode_wgpu::{Error, GpuDecoder, GpuRecord, matvec_error_bound};
use uc_format::{OverlayDtype, RecordParams, write_record, write_record_with_subscales};

fn gpu() -> Option<GpuDecoder> {
    match GpuDecoder::new_default() {
        Ok(g) => {
            if let Some(info) = g.adapter_info() {
                eprintln!("adapter: {} ({:?}, {:?})", info.name, info.backend, info.device_type);
            }
            Some(g)
        }
        Err(Error::NoAdapter(why)) => {
            if std::env::var("UC_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("UC_REQUIRE_GPU=1 but there is no GPU adapter: {why}");
            }
            eprintln!("SKIPPED: no GPU adapter ({why})");
            None
        }
        Err(e) => panic!("creating the GPU decoder failed: {e}"),
    }
}

fn bits_of(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Compares bit patterns and names the first difference.
fn assert_same_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!(
            "{what}: element {i} differs: GPU {:#010x} ({:e}), CPU {:#010x} ({:e}) ({} of {} differ)",
            got[i].to_bits(),
            got[i],
            want[i].to_bits(),
            want[i],
            bits_of(got)
                .iter()
                .zip(bits_of(want))
                .filter(|(a, b)| **a != *b)
                .count(),
            got.len()
        );
    }
}

fn cpu_decode(rec: &Record<'_>) -> Vec<f32> {
    let mut w = vec![0f32; rec.len() as usize];
    rec.decode_into(&mut w).unwrap();
    w
}

fn cpu_overlay(rec: &Record<'_>) -> Vec<f32> {
    let r = u64::from(rec.overlay_rank());
    let mut u = vec![0f32; (rec.rows() * r) as usize];
    let mut v = vec![0f32; (r * rec.cols()) as usize];
    rec.overlay_u_into(&mut u).unwrap();
    rec.overlay_v_into(&mut v).unwrap();
    u.extend(v);
    u
}

fn row_ranges(rows: u64) -> Vec<std::ops::Range<u64>> {
    let mut v = vec![
        0..rows,
        0..1,
        rows - 1..rows,
        rows / 3..(2 * rows).div_ceil(3),
        rows / 2..rows / 2,
    ];
    v.dedup();
    v
}

/// Checks W_base, row ranges and overlay factors of one record against the CPU decoder.
fn check_record(gpu: &GpuDecoder, what: &str, rec: &Record<'_>) {
    let want = cpu_decode(rec);
    let g = gpu.upload(rec).unwrap();
    let got = gpu.read_f32(&gpu.decode(&g).unwrap(), g.len()).unwrap();
    assert_same_bits(&format!("{what}: W_base"), &got, &want);
    assert_same_bits(
        &format!("{what}: decode_to_vec"),
        &gpu.decode_to_vec(rec).unwrap(),
        &want,
    );
    let cols = rec.cols();
    for rows in row_ranges(rec.rows()) {
        let buf = gpu.decode_rows(&g, rows.clone()).unwrap();
        let got = gpu.read_f32(&buf, (rows.end - rows.start) * cols).unwrap();
        let want = &want[(rows.start * cols) as usize..(rows.end * cols) as usize];
        assert_same_bits(&format!("{what}: rows {rows:?}"), &got, want);
    }
    // An element range that starts and ends inside blocks.
    if rec.len() > 70 {
        let (s, c) = (3u64, rec.len() - 70);
        let got = gpu.read_f32(&gpu.decode_range(&g, s, c).unwrap(), c).unwrap();
        assert_same_bits(&format!("{what}: range"), &got, &want[s as usize..(s + c) as usize]);
    }
    let got = gpu.overlay_to_vec(&g).unwrap();
    assert_same_bits(&format!("{what}: overlay"), &got, &cpu_overlay(rec));
    assert_eq!(gpu.overlay(&g).unwrap().is_none(), rec.overlay_rank() == 0);
}

#[test]
fn every_positive_conformance_vector_is_bit_exact() {
    let Some(gpu) = gpu() else { return };
    let vectors = conformance::files::load(&conformance::default_vectors_dir()).unwrap();
    let mut checked = 0;
    let mut widths = std::collections::BTreeSet::new();
    for v in &vectors {
        let conformance::Expect::Valid { w_base, overlay, .. } = &v.expect else {
            continue;
        };
        let rec = Record::parse(&v.record).unwrap();
        check_record(&gpu, &v.name, &rec);
        // And against the vector's own expected values (computed independently of uc_decode).
        let g = gpu.upload(&rec).unwrap();
        assert_same_bits(
            &v.name,
            &gpu.read_f32(&gpu.decode(&g).unwrap(), g.len()).unwrap(),
            w_base,
        );
        assert_same_bits(
            &format!("{}: overlay", v.name),
            &gpu.overlay_to_vec(&g).unwrap(),
            overlay,
        );
        widths.insert(rec.bits());
        checked += 1;
    }
    eprintln!("bit-exact on {checked} positive conformance vectors, bit widths {widths:?}");
    assert!(checked >= 20, "only {checked} positive vectors found");
    assert_eq!(widths.len(), 8);
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A valid grid value: mostly moderate normals, sometimes ±0 or the extremes ±2^-64, ±2^64.
fn grid_value(rng: &mut Rng) -> f32 {
    let sign = if rng.below(2) == 0 { 1.0 } else { -1.0 };
    match rng.below(16) {
        0 => sign * 0.0,
        1 => sign * f32::powi(2.0, -64),
        2 => sign * f32::powi(2.0, 64),
        3 => {
            // Any bit pattern in the valid exponent range [63, 190].
            let e = 63 + rng.below(128) as u32;
            f32::from_bits(((sign < 0.0) as u32) << 31 | e << 23 | (rng.next() as u32 & 0x7f_ffff))
        }
        _ => sign * (rng.below(1 << 20) as f32 + 1.0) / (1 << 19) as f32,
    }
}

/// A valid scale (binary16, sign clear, finite): zeros, subnormals, normals up to 65504.
fn scale_bits(rng: &mut Rng) -> u16 {
    match rng.below(8) {
        0 => 0,
        1 => 1 + rng.below(0x3ff) as u16,
        2 => 0x7bff,
        _ => 0x0400 + rng.below(0x7c00 - 0x0400) as u16,
    }
}

/// A valid overlay value: any finite 16-bit pattern of the dtype (subnormals and -0 included).
fn overlay_bits(rng: &mut Rng, dtype: OverlayDtype) -> u16 {
    loop {
        let h = rng.next() as u16;
        let finite = match dtype {
            OverlayDtype::Bf16 => (h >> 7) & 0xff != 0xff,
            _ => (h >> 10) & 0x1f != 0x1f,
        };
        if finite {
            return h;
        }
    }
}

fn random_record(rng: &mut Rng, bits: u8, dims: &[u64], rank: u32, dtype: OverlayDtype) -> Vec<u8> {
    random_record_with(rng, bits, dims, rank, dtype, false)
}

/// With `moderate`, overlay values have magnitudes below 2^8 (so that products with x stay far
/// from overflow in matvec tests); otherwise any finite pattern.
fn random_record_with(
    rng: &mut Rng,
    bits: u8,
    dims: &[u64],
    rank: u32,
    dtype: OverlayDtype,
    moderate: bool,
) -> Vec<u8> {
    let params = RecordParams::new(bits, dims, rank, dtype).unwrap();
    let layout = params.layout().unwrap();
    let n = layout.n as usize;
    let grid: Vec<f32> = (0..1usize << bits).map(|_| grid_value(rng)).collect();
    let scales: Vec<u16> = (0..layout.n_blocks).map(|_| scale_bits(rng)).collect();
    let codes: Vec<u8> = (0..n).map(|_| rng.below(1 << bits) as u8).collect();
    let r = u64::from(rank);
    let factor = |rng: &mut Rng| loop {
        let h = overlay_bits(rng, dtype);
        let small = match dtype {
            OverlayDtype::Bf16 => f32::from_bits(u32::from(h) << 16).abs() < 256.0,
            _ => (h >> 10) & 0x1f < 15 + 8,
        };
        if !moderate || small {
            return h;
        }
    };
    let u: Vec<u16> = (0..layout.rows * r).map(|_| factor(rng)).collect();
    let v: Vec<u16> = (0..r * layout.cols).map(|_| factor(rng)).collect();
    let mut buf = vec![0u8; layout.record_len as usize];
    write_record(&params, &grid, &scales, &codes, &u, &v, &mut buf).unwrap();
    buf
}

#[test]
fn every_bit_width_on_random_records_is_bit_exact() {
    let Some(gpu) = gpu() else { return };
    // A decoder that spreads dispatches over a 2-D grid of workgroups from 3 workgroups on.
    let Some(gpu_2d) = self::gpu() else { return };
    let gpu_2d = gpu_2d.with_max_workgroups_per_dimension(3);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let shapes: [&[u64]; 6] = [&[1], &[63], &[65], &[37, 91], &[3, 5, 7, 11], &[130, 64]];
    for bits in 1..=8u8 {
        for (i, dims) in shapes.iter().enumerate() {
            let (rank, dtype) = match (dims.len(), i % 2) {
                (1, _) => (0, OverlayDtype::None),
                (_, 0) => (2, OverlayDtype::F16),
                _ => (3, OverlayDtype::Bf16),
            };
            let bytes = random_record(&mut rng, bits, dims, rank, dtype);
            let rec = Record::parse(&bytes).unwrap();
            let what = format!("bits {bits} dims {dims:?}");
            check_record(&gpu, &what, &rec);
            let g = gpu_2d.upload(&rec).unwrap();
            let got = gpu_2d.read_f32(&gpu_2d.decode(&g).unwrap(), g.len()).unwrap();
            assert_same_bits(&format!("{what} (2-D dispatch)"), &got, &cpu_decode(&rec));
            let got = gpu_2d.overlay_to_vec(&g).unwrap();
            assert_same_bits(&format!("{what} (2-D dispatch): overlay"), &got, &cpu_overlay(&rec));
        }
    }
    // With 64 codes per block, codes i*b start at every bit offset (i*b) mod 32 that the width can
    // produce, so for b = 3, 5, 6, 7 the whole blocks above hold codes straddling two u32 words;
    // [1], [63], [65], [37, 91] and [3, 5, 7, 11] end in partial blocks.
    eprintln!("bit-exact for bit widths 1..=8 on {} random records", 8 * shapes.len());
}

#[test]
fn a_tensor_larger_than_one_dispatch_dimension_is_bit_exact() {
    let Some(gpu) = gpu() else { return };
    let per_dim = u64::from(gpu.limits().max_compute_workgroups_per_dimension) * 256;
    // Just over one dispatch dimension (16.8M elements with the usual limit of 65535), so that
    // the decode needs a 2-D grid of workgroups.
    let n = per_dim + 777;
    let mut rng = Rng(42);
    let bytes = random_record(&mut rng, 5, &[n], 0, OverlayDtype::None);
    let rec = Record::parse(&bytes).unwrap();
    let want = cpu_decode(&rec);
    let t = std::time::Instant::now();
    let got = gpu.decode_to_vec(&rec).unwrap();
    eprintln!("{n} elements decoded on the GPU in {:?}", t.elapsed());
    assert_same_bits(&format!("{n} elements"), &got, &want);
}

/// A `q`-bit sub-scale: often the extremes 0 and `2^q - 1` (and 1), otherwise any value.
fn subscale(rng: &mut Rng, q: u8) -> u8 {
    let max = ((1u32 << q) - 1) as u8;
    match rng.below(8) {
        0 => 0,
        1 => max,
        2 => 1,
        _ => rng.next() as u8 & max,
    }
}

/// A random record with two-level scales of sub-block `sub` (16 or 32) and `q`-bit sub-scales:
/// scales include 0, subnormals and 65504, sub-scales include 0 and `2^q - 1`. With `moderate`,
/// overlay values and scales are small (matvec tests).
#[allow(clippy::too_many_arguments)]
fn random_subscaled_record(
    rng: &mut Rng,
    bits: u8,
    dims: &[u64],
    rank: u32,
    dtype: OverlayDtype,
    sub: u32,
    q: u8,
    moderate: bool,
) -> Vec<u8> {
    let params = RecordParams::with_subscales_bits(bits, dims, rank, dtype, sub, q).unwrap();
    let layout = params.layout().unwrap();
    assert_eq!((layout.block_size, layout.n_scales), (256, layout.n.div_ceil(256)));
    assert_eq!(layout.n_subscales, layout.n.div_ceil(u64::from(sub)));
    let n = layout.n as usize;
    let grid: Vec<f32> = (0..1usize << bits).map(|_| grid_value(rng)).collect();
    let scales: Vec<u16> = (0..layout.n_scales)
        .map(|_| {
            let h = scale_bits(rng);
            // Moderate: below 2^4 (so that W x stays far from overflow).
            if moderate { h.min(0x4bff) } else { h }
        })
        .collect();
    let subs: Vec<u8> = (0..layout.n_subscales).map(|_| subscale(rng, q)).collect();
    let codes: Vec<u8> = (0..n).map(|_| rng.below(1 << bits) as u8).collect();
    let r = u64::from(rank);
    let factor = |rng: &mut Rng| loop {
        let h = overlay_bits(rng, dtype);
        let small = match dtype {
            OverlayDtype::Bf16 => f32::from_bits(u32::from(h) << 16).abs() < 256.0,
            _ => (h >> 10) & 0x1f < 15 + 8,
        };
        if !moderate || small {
            return h;
        }
    };
    let u: Vec<u16> = (0..layout.rows * r).map(|_| factor(rng)).collect();
    let v: Vec<u16> = (0..r * layout.cols).map(|_| factor(rng)).collect();
    let mut buf = vec![0u8; layout.record_len as usize];
    write_record_with_subscales(&params, &grid, &scales, &subs, &codes, &u, &v, &mut buf).unwrap();
    buf
}

#[test]
fn two_level_scales_on_random_records_are_bit_exact() {
    let Some(gpu) = gpu() else { return };
    let Some(gpu_2d) = self::gpu() else { return };
    let gpu_2d = gpu_2d.with_max_workgroups_per_dimension(3);
    let mut rng = Rng(0x5eed_0004_0000_0001);
    // n = 1, 17, 255, 257, 1000, 3367, 1155, 8320 (= 130·64: a multiple of 64, not of 256); none
    // but the last a multiple of 64, none a multiple of 256, none but 8320 a multiple of 16 or 32.
    let shapes: [&[u64]; 8] = [
        &[1],
        &[17],
        &[255],
        &[257],
        &[1000],
        &[37, 91],
        &[3, 5, 7, 11],
        &[130, 64],
    ];
    let mut checked = 0;
    // Every (S, q) pair meets every shape and every code width (b = 1 + (i + q) mod 8), so every
    // (S, b) pair meets every q too; q in 3, 5, 6, 7 makes sub-scales straddle 32-bit words.
    for sub in [16u32, 32] {
        for q in 1..=8u8 {
            for (i, dims) in shapes.iter().enumerate() {
                let bits = 1 + (i as u8 + q) % 8;
                let (rank, dtype) = match (dims.len(), i % 2) {
                    (1, _) => (0, OverlayDtype::None),
                    (_, 0) => (2, OverlayDtype::F16),
                    _ => (3, OverlayDtype::Bf16),
                };
                let bytes = random_subscaled_record(&mut rng, bits, dims, rank, dtype, sub, q, false);
                let rec = Record::parse(&bytes).unwrap();
                assert_eq!((rec.block_size(), rec.sub_block()), (256, Some(sub)));
                let n_sub = rec.len().div_ceil(u64::from(sub));
                assert_eq!(rec.subscales_bytes().len() as u64, (n_sub * u64::from(q)).div_ceil(8));
                let what = format!("S {sub} q {q} bits {bits} dims {dims:?}");
                // Against the CPU's scalar reference path explicitly.
                let mut want = vec![0f32; rec.len() as usize];
                rec.decode_with(Path::Scalar, &mut want).unwrap();
                let g = gpu.upload(&rec).unwrap();
                assert_eq!(
                    (g.block_size(), g.sub_block(), g.sub_bits()),
                    (256, Some(sub), Some(u32::from(q)))
                );
                let got = gpu.read_f32(&gpu.decode(&g).unwrap(), g.len()).unwrap();
                assert_same_bits(&format!("{what}: W_base vs scalar"), &got, &want);
                // Ranges starting and ending inside sub-blocks, code groups and blocks.
                let n = rec.len();
                for (s, c) in [
                    (1u64, n - 1),
                    (n / 2, n - n / 2),
                    (13, n.saturating_sub(13 + 7)),
                    (255, 40),
                ] {
                    if s + c > n || c == 0 {
                        continue;
                    }
                    let got = gpu.read_f32(&gpu.decode_range(&g, s, c).unwrap(), c).unwrap();
                    assert_same_bits(
                        &format!("{what}: range {s}+{c}"),
                        &got,
                        &want[s as usize..(s + c) as usize],
                    );
                }
                check_record(&gpu, &what, &rec);
                let g2 = gpu_2d.upload(&rec).unwrap();
                let got = gpu_2d.read_f32(&gpu_2d.decode(&g2).unwrap(), g2.len()).unwrap();
                assert_same_bits(&format!("{what} (2-D dispatch)"), &got, &want);
                checked += 1;
            }
        }
    }
    eprintln!("bit-exact on {checked} random records with two-level scales");
}

#[test]
fn v03_records_report_no_subscales() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng(11);
    let bytes = random_record(&mut rng, 3, &[100], 0, OverlayDtype::None);
    let g = gpu.upload(&Record::parse(&bytes).unwrap()).unwrap();
    assert_eq!(
        (g.block_size(), g.sub_block(), g.sub_bits(), g.subscales_word_offset()),
        (64, None, None, 0)
    );
    // 100 elements: 2 scales, 4 bytes, the buffer as before (no sub-scales appended).
    assert_eq!(g.scales_buffer().size(), 4);
}

/// `y = W_base x (+ U (V x))` in f64 from the CPU's exact values, with the bound's M_i and F_i.
fn matvec_reference(rec: &Record<'_>, x: &[f32], merge: bool) -> Vec<(f64, f64, f64)> {
    let w = cpu_decode(rec);
    let (rows, cols) = (rec.rows() as usize, rec.cols() as usize);
    let r = if merge { rec.overlay_rank() as usize } else { 0 };
    let f = cpu_overlay(rec);
    let (u, v) = f.split_at(rows * rec.overlay_rank() as usize);
    let t: Vec<f64> = (0..r)
        .map(|k| (0..cols).map(|j| f64::from(v[k * cols + j]) * f64::from(x[j])).sum())
        .collect();
    let t_abs: Vec<f64> = (0..r)
        .map(|k| {
            (0..cols)
                .map(|j| (f64::from(v[k * cols + j]) * f64::from(x[j])).abs())
                .sum()
        })
        .collect();
    let vx_abs: Vec<f64> = (0..r)
        .map(|k| {
            (0..cols)
                .map(|j| f64::from(v[k * cols + j]).abs() + f64::from(x[j]).abs())
                .sum()
        })
        .collect();
    (0..rows)
        .map(|i| {
            let row = &w[i * cols..(i + 1) * cols];
            let mut y: f64 = row.iter().zip(x).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
            let mut m: f64 = row
                .iter()
                .zip(x)
                .map(|(a, b)| (f64::from(*a) * f64::from(*b)).abs())
                .sum();
            let mut fl = 4.0 * (cols + r + 4) as f64
                + row
                    .iter()
                    .zip(x)
                    .map(|(a, b)| f64::from(*a).abs() + f64::from(*b).abs())
                    .sum::<f64>();
            for k in 0..r {
                let uik = f64::from(u[i * r + k]);
                y += uik * t[k];
                m += uik.abs() * t_abs[k];
                fl += uik.abs() * (1.0 + vx_abs[k]) + t[k].abs();
            }
            (y, m, fl)
        })
        .collect()
}

fn check_matvec(gpu: &GpuDecoder, what: &str, rec: &Record<'_>, g: &GpuRecord, x: &[f32]) {
    for merge in [false, true] {
        let got = gpu.matvec(g, x, merge).unwrap();
        let want = matvec_reference(rec, x, merge);
        assert_eq!(got.len(), want.len());
        let rank = if merge { rec.overlay_rank() } else { 0 };
        for (i, (&y, &(exact, m, fl))) in got.iter().zip(&want).enumerate() {
            let bound = matvec_error_bound(rec.cols(), rank, m, fl);
            let err = (f64::from(y) - exact).abs();
            assert!(
                err <= bound,
                "{what}: merge {merge}: y[{i}] = {y:e}, exact {exact:e}, error {err:e} > bound {bound:e}"
            );
        }
    }
}

#[test]
fn matvec_is_within_the_documented_bound() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng(7);
    let x_for = |rng: &mut Rng, cols: u64| -> Vec<f32> {
        (0..cols)
            .map(|_| (rng.below(1 << 16) as f32 - 32768.0) / 4096.0 + 1.0 / 1024.0)
            .collect()
    };
    // Random records: overlays in both dtypes, columns past one workgroup, ranks past 256 threads.
    let cases: [(u8, &[u64], u32, OverlayDtype); 6] = [
        (4, &[33, 700], 5, OverlayDtype::F16),
        (5, &[17, 3, 100], 3, OverlayDtype::Bf16),
        (1, &[9, 1000], 0, OverlayDtype::None),
        (8, &[300, 300], 260, OverlayDtype::Bf16),
        (3, &[100], 0, OverlayDtype::None),
        (6, &[5, 4097], 2, OverlayDtype::F16),
    ];
    for (bits, dims, rank, dtype) in cases {
        let bytes = random_record_with(&mut rng, bits, dims, rank, dtype, true);
        let rec = Record::parse(&bytes).unwrap();
        let g = gpu.upload(&rec).unwrap();
        let x = x_for(&mut rng, rec.cols());
        check_matvec(&gpu, &format!("bits {bits} dims {dims:?} rank {rank}"), &rec, &g, &x);
    }
    // Records with two-level scales.
    // (bits, dims, rank, overlay dtype, S, q)
    type Case = (u8, &'static [u64], u32, OverlayDtype, u32, u8);
    let cases: [Case; 6] = [
        (4, &[33, 700], 5, OverlayDtype::F16, 16, 6),
        (3, &[17, 3, 100], 3, OverlayDtype::Bf16, 32, 3),
        (8, &[300, 300], 260, OverlayDtype::Bf16, 16, 8),
        (2, &[5, 4097], 0, OverlayDtype::None, 32, 1),
        (4, &[40, 1000], 0, OverlayDtype::None, 16, 5),
        (5, &[7, 999], 2, OverlayDtype::F16, 32, 7),
    ];
    for (bits, dims, rank, dtype, sub, q) in cases {
        let bytes = random_subscaled_record(&mut rng, bits, dims, rank, dtype, sub, q, true);
        let rec = Record::parse(&bytes).unwrap();
        let g = gpu.upload(&rec).unwrap();
        let x = x_for(&mut rng, rec.cols());
        check_matvec(
            &gpu,
            &format!("S {sub} q {q} bits {bits} dims {dims:?} rank {rank}"),
            &rec,
            &g,
            &x,
        );
    }
    // Every positive conformance vector.
    for v in conformance::files::load(&conformance::default_vectors_dir()).unwrap() {
        if !matches!(v.expect, conformance::Expect::Valid { .. }) {
            continue;
        }
        let rec = Record::parse(&v.record).unwrap();
        let g = gpu.upload(&rec).unwrap();
        let x = x_for(&mut rng, rec.cols());
        check_matvec(&gpu, &v.name, &rec, &g, &x);
    }
}

#[test]
fn requests_outside_the_tensor_and_device_limits_are_typed_errors() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng(3);
    let bytes = random_record(&mut rng, 4, &[10, 20], 0, OverlayDtype::None);
    let rec = Record::parse(&bytes).unwrap();
    let g = gpu.upload(&rec).unwrap();
    assert!(matches!(gpu.decode_rows(&g, 5..11), Err(Error::Request(_))));
    assert!(matches!(gpu.decode_range(&g, 150, 51), Err(Error::Request(_))));
    assert!(matches!(
        gpu.matvec(&g, &[0.0; 19], false),
        Err(Error::InputLength { expected: 20, got: 19 })
    ));
    assert!(matches!(gpu.decode_to_vec_bytes(&bytes[..100]), Err(Error::Record(_))));
    let empty = gpu.decode_rows(&g, 4..4).unwrap();
    assert_eq!(gpu.read_f32(&empty, 0).unwrap(), Vec::<f32>::new());

    // A device created by the caller with small limits: tensors that do not fit are refused with
    // the sizes, not a panic.
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&Default::default())).unwrap();
    let limits = wgpu::Limits {
        max_storage_buffer_binding_size: 4096,
        ..wgpu::Limits::default()
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_limits: limits,
        ..Default::default()
    }))
    .unwrap();
    let small = GpuDecoder::new(device, queue).unwrap();
    assert!(small.matvec(&small.upload(&rec).unwrap(), &[0.5; 20], true).is_ok());
    assert!(small.adapter_info().is_none());
    // 2000 elements: 8000 bytes of f32 output, over 4096; 1000 bytes of codes fit.
    let bytes = random_record(&mut rng, 4, &[2000], 0, OverlayDtype::None);
    let rec = Record::parse(&bytes).unwrap();
    let g = small.upload(&rec).unwrap();
    match small.decode(&g) {
        Err(
            e @ Error::TooLarge {
                size: 8000,
                limit: 4096,
                ..
            },
        ) => {
            let msg = e.to_string();
            assert!(msg.contains("8000") && msg.contains("4096") && msg.contains("max_storage_buffer_binding_size"));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // The first 1000 elements do fit.
    let got = small.read_f32(&small.decode_range(&g, 0, 1000).unwrap(), 1000).unwrap();
    assert_same_bits("small device", &got, &cpu_decode(&rec)[..1000]);
    // 9000 elements of 8 bits: 9024 bytes of codes, over 4096.
    let bytes = random_record(&mut rng, 8, &[9000], 0, OverlayDtype::None);
    let rec = Record::parse(&bytes).unwrap();
    assert!(matches!(
        small.upload(&rec),
        Err(Error::TooLarge {
            what: "codes section",
            size: 9024,
            limit: 4096,
            ..
        })
    ));

    // A downlevel device (4 storage buffers per stage): decoding works, the matrix-vector kernel
    // (7 storage buffers) is refused with a typed error.
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_limits: wgpu::Limits::downlevel_defaults(),
        ..Default::default()
    }))
    .unwrap();
    let low = GpuDecoder::new(device, queue).unwrap();
    let g = low.upload(&rec).unwrap();
    assert_same_bits(
        "downlevel device",
        &low.read_f32(&low.decode(&g).unwrap(), 9000).unwrap(),
        &cpu_decode(&rec),
    );
    assert!(matches!(low.matvec(&g, &[1.0], false), Err(Error::Unsupported(_))));
}
