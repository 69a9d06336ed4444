//! Decoder tests: bit packing, reconstruction arithmetic checked against an
//! independent computation, bit-identical decode paths, sub-range and block APIs, the overlay
//! caller errors, unaligned input and writer determinism; v0.4 records with
//! two-level scales on every path and range API against an independent computation.

use std::ops::Range;

use uc_decode::{BLOCK, DecodeError, Path, Record};
use uc_format::{OverlayDtype, RecordParams, write_record, write_record_with_subscales};

const PATHS: [Path; 4] = [Path::Scalar, Path::Portable, Path::Avx2, Path::Auto];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// xorshift64* (Vigna), fixed seeds only.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

/// A random grid value allowed by: ±0, the bounds ±2^-64 and ±2^64, or any binary32 with
/// biased exponent in [63, 190].
fn rand_grid(rng: &mut Rng) -> f32 {
    let sign = (rng.below(2) as u32) << 31;
    let bits = match rng.below(16) {
        0 => 0,
        1 => 0x1f80_0000, // 2^-64
        2 => 0x5f80_0000, // 2^64
        _ => ((rng.range(63, 190) as u32) << 23) | (rng.next_u64() as u32 & 0x7f_ffff),
    };
    f32::from_bits(sign | bits)
}

/// A random scale allowed by: non-negative finite binary16, with zero, subnormals and the
/// largest value over-represented.
fn rand_scale(rng: &mut Rng) -> u16 {
    match rng.below(8) {
        0 => 0,
        1 => rng.range(1, 0x3ff) as u16,
        2 => 0x7bff,
        _ => loop {
            let h = rng.next_u64() as u16 & 0x7fff;
            if h & 0x7c00 != 0x7c00 {
                break h;
            }
        },
    }
}

/// Exact value of binary16 bits, computed in f64 independently of the library.
fn f16_value(h: u16) -> f64 {
    let exp = i32::from((h >> 10) & 0x1f);
    let mant = f64::from(h & 0x3ff);
    assert!(exp != 31, "not finite");
    let v = if exp == 0 {
        mant * 2f64.powi(-24)
    } else {
        (1024.0 + mant) * 2f64.powi(exp - 25)
    };
    if h & 0x8000 != 0 { -v } else { v }
}

/// binary16 bits to f32 via the f64 value (exact: every binary16 value is a binary32 value).
fn f16_to_f32_ref(h: u16) -> f32 {
    let v = f16_value(h) as f32;
    assert_eq!(f64::from(v), f16_value(h));
    v
}

fn bf16_to_f32_ref(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// A record together with the inputs it was written from.
struct Rec {
    buf: Vec<u8>,
    grid: Vec<f32>,
    scales: Vec<u16>,
    codes: Vec<u8>,
    u: Vec<u16>,
    v: Vec<u16>,
    rows: usize,
    cols: usize,
}

impl Rec {
    fn write(
        bits: u8,
        dims: &[u64],
        r: u32,
        dt: OverlayDtype,
        grid: Vec<f32>,
        scales: Vec<u16>,
        codes: Vec<u8>,
    ) -> Rec {
        Rec::write_overlay(bits, dims, r, dt, grid, scales, codes, Vec::new(), Vec::new())
    }

    #[allow(clippy::too_many_arguments)]
    fn write_overlay(
        bits: u8,
        dims: &[u64],
        r: u32,
        dt: OverlayDtype,
        grid: Vec<f32>,
        scales: Vec<u16>,
        codes: Vec<u8>,
        u: Vec<u16>,
        v: Vec<u16>,
    ) -> Rec {
        let params = RecordParams::new(bits, dims, r, dt).expect("params");
        let layout = params.layout().expect("layout");
        let mut buf = vec![0u8; layout.record_len as usize];
        write_record(&params, &grid, &scales, &codes, &u, &v, &mut buf).expect("write_record");
        Rec {
            buf,
            grid,
            scales,
            codes,
            u,
            v,
            rows: layout.rows as usize,
            cols: layout.cols as usize,
        }
    }

    /// Random valid grid, scales and codes (no overlay).
    fn random(bits: u8, dims: &[u64], rng: &mut Rng) -> Rec {
        let n: u64 = dims.iter().product();
        let grid = (0..1u32 << bits).map(|_| rand_grid(rng)).collect();
        let scales = (0..n.div_ceil(64)).map(|_| rand_scale(rng)).collect();
        let codes = (0..n).map(|_| rng.below(1 << bits) as u8).collect();
        Rec::write(bits, dims, 0, OverlayDtype::None, grid, scales, codes)
    }

    fn parse(&self) -> Record<'_> {
        Record::parse(&self.buf).expect("parse")
    }

    /// `W_base` computed in the test: f32(scale) * grid[code] with the scale converted via f64.
    fn expected(&self) -> Vec<u32> {
        self.codes
            .iter()
            .enumerate()
            .map(|(i, &c)| (f16_to_f32_ref(self.scales[i / 64]) * self.grid[usize::from(c)]).to_bits())
            .collect()
    }
}

/// Every `(start, len)` of `ranges` decoded by every path equals `want` (bits) there.
fn assert_ranges(r: &Record<'_>, want: &[u32], ranges: &[(u64, u64)], what: &str) {
    for &(s, l) in ranges {
        for path in PATHS {
            let mut out = vec![f32::NAN; l as usize];
            r.decode_range_with(path, s, &mut out).unwrap();
            assert_eq!(
                to_bits(&out),
                want[s as usize..(s + l) as usize],
                "{what}: {path:?} {s}+{l}"
            );
        }
    }
}

fn to_bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn decode(rec: &Record<'_>, path: Path) -> Vec<u32> {
    let mut out = vec![f32::NAN; rec.len() as usize];
    rec.decode_with(path, &mut out).expect("decode");
    to_bits(&out)
}

/// Independent bit-by-bit packer: code i occupies stream bits [i*b, i*b+b); stream bit k is bit
/// k % 8 of byte k / 8. Returns `nbytes` bytes (zero past the last code).
fn pack_ref(codes: &[u8], b: usize, nbytes: usize) -> Vec<u8> {
    let mut out = vec![0u8; nbytes];
    for (i, &c) in codes.iter().enumerate() {
        for t in 0..b {
            if (c >> t) & 1 == 1 {
                let k = i * b + t;
                out[k / 8] |= 1 << (k % 8);
            }
        }
    }
    out
}

/// The bytes of section `k` of a record.
fn section(buf: &[u8], k: usize) -> &[u8] {
    let s = uc_format::validate(buf).unwrap().sections[k];
    &buf[s.offset as usize..s.end() as usize]
}

// ---------------------------------------------------------------------------------------------
// Bit packing
// ---------------------------------------------------------------------------------------------

#[test]
fn bit_packing_round_trip() {
    let mut rng = Rng::new(0x5eed_0001);
    for bits in 1u8..=8 {
        for n in [1u64, 2, 7, 8, 63, 64, 65, 127, 128, 129, 4097] {
            let rec = {
                let grid = (0..1u32 << bits).map(|j| j as f32 + 1.0).collect();
                let scales = vec![0x3c00; n.div_ceil(64) as usize];
                let codes = (0..n).map(|_| rng.below(1 << bits) as u8).collect();
                Rec::write(bits, &[n], 0, OverlayDtype::None, grid, scales, codes)
            };
            let r = rec.parse();
            for (i, &c) in rec.codes.iter().enumerate() {
                assert_eq!(r.code(i as u64), Some(c), "bits {bits}, n {n}, code {i}");
            }
            assert_eq!(r.code(n), None);
            assert_eq!(r.code(u64::MAX), None);
            // The codes section is n_blocks * 8 * b bytes: the reference packing, zero-padded.
            let b = usize::from(bits);
            let nbytes = n.div_ceil(64) as usize * 8 * b;
            let want = pack_ref(&rec.codes, b, nbytes);
            assert_eq!(
                section(&rec.buf, uc_format::SECTION_CODES),
                &want[..],
                "bits {bits}, n {n}"
            );
            // pack_codes agrees and reports ceil(n*b/8) bytes.
            let mut packed = vec![0xffu8; nbytes];
            let used = uc_format::pack_codes(&rec.codes, bits, &mut packed).unwrap();
            assert_eq!(used, (n as usize * b).div_ceil(8));
            assert_eq!(packed, want);
            // Grid value j is j + 1 and the scale is 1: the decoded values are the codes plus one.
            let mut out = vec![0f32; n as usize];
            r.decode_into(&mut out).unwrap();
            assert!(out.iter().zip(&rec.codes).all(|(&w, &c)| w == f32::from(c) + 1.0));
        }
    }
}

#[test]
fn worked_example_bits3() {
    // bits = 3, codes [5, 3, 7, 0, 1, 6, 2, 4]: one partial block of 8 elements.
    // Code i occupies stream bits [3i, 3i+3), least significant bit first:
    //   stream bit:  0 1 2 | 3 4 5 | 6 7 8 | 9 10 11 | 12 13 14 | 15 16 17 | 18 19 20 | 21 22 23
    //   code:        5     | 3     | 7     | 0       | 1        | 6        | 2        | 4
    //   bits (lsb→): 1 0 1 | 1 1 0 | 1 1 1 | 0  0  0 | 1  0  0  | 0  1  1  | 0  1  0  | 0  0  1
    // byte 0 = stream bits 0..7  = 1,0,1,1,1,0,1,1 (bit 0 first) = 0b1101_1101 = 0xdd
    // byte 1 = stream bits 8..15 = 1,0,0,0,1,0,0,0               = 0b0001_0001 = 0x11
    // byte 2 = stream bits 16..23 = 1,1,0,1,0,0,0,1              = 0b1000_1011 = 0x8b
    // (as one integer: 5 | 3<<3 | 7<<6 | 0<<9 | 1<<12 | 6<<15 | 2<<18 | 4<<21 = 0x8b11dd.)
    // A block always takes 8*b = 24 bytes: the remaining 21 bytes are zero.
    let codes = vec![5u8, 3, 7, 0, 1, 6, 2, 4];
    let grid: Vec<f32> = (0..8).map(|j| j as f32 - 4.0).collect();
    let rec = Rec::write(3, &[8], 0, OverlayDtype::None, grid, vec![0x3c00], codes.clone());
    let mut want = [0u8; 24];
    want[..3].copy_from_slice(&[0xdd, 0x11, 0x8b]);
    assert_eq!(section(&rec.buf, uc_format::SECTION_CODES), &want[..]);
    assert_eq!(
        5 | (3 << 3) | (7 << 6) | (1 << 12) | (6 << 15) | (2 << 18) | (4 << 21),
        0x8b11dd
    );
    let r = rec.parse();
    for path in PATHS {
        assert_eq!(
            decode(&r, path),
            to_bits(&[1.0, -1.0, 3.0, -4.0, -3.0, 2.0, -2.0, 0.0]),
            "{path:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Reconstruction: paths agree with each other and with an independent computation
// ---------------------------------------------------------------------------------------------

const SHAPES: [&[u64]; 9] = [
    &[1],
    &[63],
    &[64],
    &[5, 13],
    &[17, 241],
    &[2, 3, 11],
    &[3, 5, 7, 11],
    &[4, 4, 4, 4],
    &[129, 1],
];

#[test]
fn every_path_is_bit_identical_and_matches_the_reference() {
    let mut rng = Rng::new(0x5eed_0002);
    for bits in 1u8..=8 {
        for dims in SHAPES {
            for _ in 0..2 {
                let rec = Rec::random(bits, dims, &mut rng);
                let r = rec.parse();
                let want = rec.expected();
                // Independent check of the reference: the f64 product of two binary32 values with
                // 24- and 11-bit significands is exact, so rounding it once to f32 is the
                // correctly rounded binary32 product (normal by, so no double rounding).
                for (i, &c) in rec.codes.iter().enumerate() {
                    let p = f16_value(rec.scales[i / 64]) * f64::from(rec.grid[usize::from(c)]);
                    let w = f32::from_bits(want[i]);
                    assert_eq!((p as f32).to_bits(), want[i]);
                    assert!(w == 0.0 || w.is_normal(), "product {w:e} is not zero or normal");
                }
                for path in PATHS {
                    assert_eq!(decode(&r, path), want, "bits {bits}, dims {dims:?}, {path:?}");
                }
                let mut out = vec![0f32; want.len()];
                r.decode_into(&mut out).unwrap();
                assert_eq!(to_bits(&out), want);
            }
        }
    }
}

#[test]
fn sub_ranges_rows_and_blocks_match_the_whole() {
    let mut rng = Rng::new(0x5eed_0003);
    for bits in 1u8..=8 {
        for dims in SHAPES {
            let rec = Rec::random(bits, dims, &mut rng);
            let r = rec.parse();
            let want = rec.expected();
            let n = want.len() as u64;
            // Random ranges (mostly not 64-aligned) plus edge cases.
            let mut ranges: Vec<(u64, u64)> = vec![(0, n), (0, 0), (n, 0), (n - 1, 1), (0, 1)];
            for (s, l) in [(63, 2), (64, 64), (1, 64), (65, 127), (64, 1)] {
                if s + l <= n {
                    ranges.push((s, l));
                }
            }
            for _ in 0..40 {
                let s = rng.below(n + 1);
                ranges.push((s, rng.below(n - s + 1)));
            }
            for &(s, l) in &ranges {
                for path in PATHS {
                    let mut out = vec![f32::NAN; l as usize];
                    r.decode_range_with(path, s, &mut out).unwrap();
                    assert_eq!(to_bits(&out), want[s as usize..(s + l) as usize], "{path:?} {s}+{l}");
                }
                let mut out = vec![f32::NAN; l as usize];
                r.decode_range_into(s, &mut out).unwrap();
                assert_eq!(to_bits(&out), want[s as usize..(s + l) as usize]);
            }
            // Row ranges.
            let (rows, cols) = (rec.rows as u64, rec.cols as u64);
            assert_eq!((r.rows(), r.cols()), (rows, cols));
            let mut row_ranges = vec![0..rows, 0..0, rows..rows, rows - 1..rows];
            for _ in 0..10 {
                let a = rng.below(rows + 1);
                row_ranges.push(a..rng.range(a, rows));
            }
            for rr in row_ranges {
                let mut out = vec![f32::NAN; ((rr.end - rr.start) * cols) as usize];
                r.decode_rows_into(rr.clone(), &mut out).unwrap();
                assert_eq!(
                    to_bits(&out),
                    want[(rr.start * cols) as usize..(rr.end * cols) as usize]
                );
            }
            // Block stream.
            let blocks = r.blocks();
            let nb = n.div_ceil(64) as usize;
            assert_eq!(blocks.size_hint(), (nb, Some(nb)));
            let mut cat = Vec::new();
            for (j, b) in r.blocks().enumerate() {
                assert_eq!(b.index, j as u64);
                assert_eq!(b.len, (n - 64 * j as u64).min(64) as usize);
                assert_eq!(b.values.len(), BLOCK);
                assert!(b.values[b.len..].iter().all(|v| v.to_bits() == 0));
                assert_eq!(b.as_slice().len(), b.len);
                cat.extend_from_slice(b.as_slice());
            }
            assert_eq!(r.blocks().count(), nb);
            assert_eq!(to_bits(&cat), want);
        }
    }
}

#[test]
fn scale_and_grid_accessors() {
    let mut rng = Rng::new(0x5eed_0004);
    let rec = Rec::random(5, &[3, 100], &mut rng);
    let r = rec.parse();
    assert_eq!(to_bits(r.grid()), to_bits(&rec.grid));
    for (j, &h) in rec.scales.iter().enumerate() {
        assert_eq!(r.scale(j as u64).map(f32::to_bits), Some(f16_to_f32_ref(h).to_bits()));
    }
    assert_eq!(r.scale(rec.scales.len() as u64), None);
    assert_eq!(r.shape(), &[3, 100]);
    assert_eq!((r.len(), r.is_empty(), r.bits(), r.overlay_rank()), (300, false, 5, 0));
    assert_eq!(r.overlay_dtype(), OverlayDtype::None);
}

#[test]
fn sign_of_zero() {
    // Block 0 has scale +0, block 1 scale 1.0, block 2 scale +0.
    let grid = vec![-1.0f32, 1.0, -0.0, 0.5];
    let scales = vec![0x0000u16, 0x3c00, 0x0000];
    let mut codes = vec![0u8; 160];
    for (i, c) in codes.iter_mut().enumerate() {
        *c = (i % 4) as u8;
    }
    let rec = Rec::write(2, &[160], 0, OverlayDtype::None, grid, scales, codes);
    let r = rec.parse();
    let want: Vec<u32> = (0..160)
        .map(|i| match (i / 64, i % 4) {
            (1, 0) => (-1.0f32).to_bits(),
            (1, 1) => 1.0f32.to_bits(),
            (1, 2) => 0x8000_0000, // 1.0 * -0.0 = -0.0
            (1, _) => 0.5f32.to_bits(),
            (_, 0) => 0x8000_0000, // +0 * -1.0 = -0.0
            (_, 1) => 0x0000_0000, // +0 * 1.0 = +0.0
            (_, 2) => 0x8000_0000, // +0 * -0.0 = -0.0
            (_, _) => 0x0000_0000, // +0 * 0.5 = +0.0
        })
        .collect();
    assert_eq!(rec.expected(), want);
    for path in PATHS {
        assert_eq!(decode(&r, path), want, "{path:?}");
    }
}

#[test]
fn subnormal_f16_scales_are_exact() {
    let grid = vec![1.0f32, -3.0, 2f32.powi(-64), -(2f32.powi(64))];
    let scales = vec![0x0001u16, 0x03ff];
    let codes: Vec<u8> = (0..128).map(|i| (i % 4) as u8).collect();
    let rec = Rec::write(2, &[128], 0, OverlayDtype::None, grid.clone(), scales, codes);
    let r = rec.parse();
    let s0 = 2f64.powi(-24);
    let s1 = 1023.0 * 2f64.powi(-24);
    assert_eq!(f64::from(r.scale(0).unwrap()), s0);
    assert_eq!(f64::from(r.scale(1).unwrap()), s1);
    assert!(r.scale(0).unwrap().is_normal() && r.scale(1).unwrap().is_normal());
    for path in PATHS {
        let mut out = vec![0f32; 128];
        r.decode_with(path, &mut out).unwrap();
        for (i, &w) in out.iter().enumerate() {
            let s = if i < 64 { s0 } else { s1 };
            let exact = s * f64::from(grid[i % 4]);
            assert_eq!(f64::from(w), exact, "{path:?} element {i}");
            assert!(w.is_normal());
        }
    }
}

#[test]
fn grid_bounds_with_extreme_scales() {
    let grid = vec![2f32.powi(-64), -(2f32.powi(-64)), 2f32.powi(64), -(2f32.powi(64))];
    // Largest finite scale (65504), smallest subnormal (2^-24), largest subnormal, smallest normal.
    let scales = vec![0x7bffu16, 0x0001, 0x03ff, 0x0400];
    let codes: Vec<u8> = (0..256).map(|i| ((i * 7 + i / 64) % 4) as u8).collect();
    let rec = Rec::write(
        2,
        &[16, 16],
        0,
        OverlayDtype::None,
        grid.clone(),
        scales.clone(),
        codes.clone(),
    );
    let r = rec.parse();
    let want = rec.expected();
    for (i, &c) in codes.iter().enumerate() {
        let exact = f16_value(scales[i / 64]) * f64::from(grid[usize::from(c)]);
        let w = f32::from_bits(want[i]);
        assert_eq!(f64::from(w), exact, "product must be exact");
        assert!(w.is_normal());
    }
    for path in PATHS {
        assert_eq!(decode(&r, path), want, "{path:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Overlay
// ---------------------------------------------------------------------------------------------

/// Random finite overlay factor bits. `wide`: any finite pattern (subnormals, extremes);
/// otherwise magnitudes that keep the merge sums far from overflow.
fn rand_factor(rng: &mut Rng, dt: OverlayDtype, wide: bool) -> u16 {
    let sign = (rng.below(2) as u16) << 15;
    match (dt, wide) {
        (OverlayDtype::F16, true) => match rng.below(8) {
            0 => sign | rng.below(0x400) as u16,
            1 => sign | 0x7bff,
            _ => sign | (rng.range(0, 30) as u16) << 10 | rng.below(0x400) as u16,
        },
        (OverlayDtype::F16, false) => sign | (rng.range(0, 20) as u16) << 10 | rng.below(0x400) as u16,
        (_, true) => match rng.below(8) {
            0 => sign | rng.below(0x80) as u16,
            1 => sign | 0x7f7f,
            _ => sign | (rng.range(0, 254) as u16) << 7 | rng.below(0x80) as u16,
        },
        (_, false) => sign | (rng.range(100, 140) as u16) << 7 | rng.below(0x80) as u16,
    }
}

fn overlay_rec(dt: OverlayDtype, r: u32, wide: bool, rng: &mut Rng) -> Rec {
    overlay_rec_shaped(dt, r, wide, (40, 70), rng)
}

fn overlay_rec_shaped(dt: OverlayDtype, r: u32, wide: bool, (rows, cols): (u64, u64), rng: &mut Rng) -> Rec {
    let bits = 4;
    let grid = (0..16).map(|_| rand_grid(rng)).collect();
    let n = rows * cols;
    // Moderate scales so that W_base + U·V is meaningful.
    let scales = (0..n.div_ceil(64)).map(|_| 0x2000 | rng.below(0x1000) as u16).collect();
    let codes = (0..n).map(|_| rng.below(16) as u8).collect();
    let grid: Vec<f32> = if wide {
        grid
    } else {
        (0..16).map(|j| j as f32 / 8.0 - 1.0).collect()
    };
    let u = (0..rows * u64::from(r)).map(|_| rand_factor(rng, dt, wide)).collect();
    let v = (0..u64::from(r) * cols).map(|_| rand_factor(rng, dt, wide)).collect();
    Rec::write_overlay(bits, &[rows, cols], r, dt, grid, scales, codes, u, v)
}

#[test]
fn overlay_factors_are_exact() {
    let mut rng = Rng::new(0x5eed_0005);
    for dt in [OverlayDtype::F16, OverlayDtype::Bf16] {
        for r in [1u32, 32] {
            let rec = overlay_rec(dt, r, true, &mut rng);
            let rd = rec.parse();
            assert_eq!((rd.overlay_rank(), rd.overlay_dtype()), (r, dt));
            let conv = |h: u16| {
                if dt == OverlayDtype::F16 {
                    f16_to_f32_ref(h)
                } else {
                    bf16_to_f32_ref(h)
                }
            };
            let mut u = vec![0f32; rec.rows * r as usize];
            let mut v = vec![0f32; r as usize * rec.cols];
            rd.overlay_u_into(&mut u).unwrap();
            rd.overlay_v_into(&mut v).unwrap();
            assert_eq!(
                to_bits(&u),
                rec.u.iter().map(|&h| conv(h).to_bits()).collect::<Vec<_>>(),
                "{dt:?} r {r}"
            );
            assert_eq!(
                to_bits(&v),
                rec.v.iter().map(|&h| conv(h).to_bits()).collect::<Vec<_>>(),
                "{dt:?} r {r}"
            );
            // The base decode ignores the overlay.
            assert_eq!(decode(&rd, Path::Scalar), rec.expected());
        }
    }
}

#[test]
fn merge_overlay_matches_the_reference_order() {
    let mut rng = Rng::new(0x5eed_0006);
    // 40 x 70: blocks cross row ends; 40 x 600 and 41 x 300: rows longer than one accumulation
    // segment, and a row count that is not a multiple of the rows merged together.
    for (dt, shape) in [
        (OverlayDtype::F16, (40, 70)),
        (OverlayDtype::Bf16, (40, 70)),
        (OverlayDtype::Bf16, (40, 600)),
        (OverlayDtype::F16, (41, 300)),
    ] {
        for r in [1u32, 32] {
            let rec = overlay_rec_shaped(dt, r, false, shape, &mut rng);
            let rd = rec.parse();
            let conv = |h: u16| {
                if dt == OverlayDtype::F16 {
                    f16_to_f32_ref(h)
                } else {
                    bf16_to_f32_ref(h)
                }
            };
            let u: Vec<f32> = rec.u.iter().map(|&h| conv(h)).collect();
            let v: Vec<f32> = rec.v.iter().map(|&h| conv(h)).collect();
            let (rows, cols, r) = (rec.rows, rec.cols, r as usize);
            let mut want: Vec<f32> = rec.expected().into_iter().map(f32::from_bits).collect();
            for i in 0..rows {
                for j in 0..cols {
                    let mut acc = 0f32;
                    for k in 0..r {
                        acc += u[i * r + k] * v[k * cols + j];
                    }
                    want[i * cols + j] += acc;
                }
            }
            assert!(want.iter().all(|w| w.is_finite()));
            let mut got = vec![0f32; rows * cols];
            rd.decode_into(&mut got).unwrap();
            rd.merge_overlay_into(&mut got).unwrap();
            assert_eq!(to_bits(&got), to_bits(&want), "{dt:?} r {r}");
            // The streaming form and the per-element term give the same bits.
            let streamed: Vec<f32> = rd.merged_blocks().flat_map(|b| b.as_slice().to_vec()).collect();
            assert_eq!(to_bits(&streamed), to_bits(&want), "merged_blocks {dt:?} r {r}");
            let base: Vec<f32> = rec.expected().into_iter().map(f32::from_bits).collect();
            for idx in [0usize, 1, cols - 1, cols, rows * cols - 1] {
                assert_eq!(
                    (base[idx] + rd.overlay_term(idx as u64)).to_bits(),
                    want[idx].to_bits(),
                    "overlay_term {idx}"
                );
            }
        }
    }
    // Rank 0: W = W_base exactly: nothing is added, so a −0 stays −0. A grid with −0
    // makes sure some element is −0.
    let mut rec = Rec::random(3, &[8, 8], &mut rng);
    rec.grid[0] = -0.0;
    rec.codes[5] = 0;
    let rec = Rec::write(
        3,
        &[8, 8],
        0,
        OverlayDtype::None,
        rec.grid.clone(),
        rec.scales.clone(),
        rec.codes.clone(),
    );
    let rd = rec.parse();
    let mut got = vec![0f32; 64];
    rd.decode_into(&mut got).unwrap();
    assert_eq!(got[5].to_bits(), 0x8000_0000, "W_base holds a -0");
    rd.merge_overlay_into(&mut got).unwrap();
    let want = rec.expected();
    assert_eq!(to_bits(&got), want);
    assert_eq!(got[5].to_bits(), 0x8000_0000, "-0 stays -0");
    let streamed: Vec<f32> = rd.merged_blocks().flat_map(|b| b.as_slice().to_vec()).collect();
    assert_eq!(to_bits(&streamed), want);
    let (mut u, mut v) = (Vec::<f32>::new(), Vec::<f32>::new());
    rd.overlay_u_into(&mut u).unwrap();
    rd.overlay_v_into(&mut v).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Caller errors: Err, never a panic
// ---------------------------------------------------------------------------------------------

#[test]
fn decode_errors() {
    let mut rng = Rng::new(0x5eed_0007);
    let rec = overlay_rec(OverlayDtype::F16, 2, false, &mut rng); // [40, 70], n = 2800
    let r = rec.parse();
    let n = 2800u64;
    // Whole-tensor decode with a wrong output length.
    for len in [0usize, 1, 2799, 2801, 5000] {
        let mut out = vec![0f32; len];
        assert_eq!(
            r.decode_into(&mut out),
            Err(DecodeError::OutputLength { expected: n, got: len }),
            "len {len}"
        );
        for path in PATHS {
            assert_eq!(
                r.decode_with(path, &mut out),
                Err(DecodeError::OutputLength { expected: n, got: len })
            );
        }
        assert_eq!(
            r.merge_overlay_into(&mut out),
            Err(DecodeError::OutputLength { expected: n, got: len })
        );
    }
    // Element ranges outside the tensor.
    for (start, len) in [
        (n, 1usize),
        (n + 1, 0),
        (n - 1, 2),
        (0, 2801),
        (u64::MAX, 1),
        (u64::MAX, 0),
        (u64::MAX - 1, 5),
    ] {
        let mut out = vec![0f32; len];
        for path in PATHS {
            let e = r.decode_range_with(path, start, &mut out);
            assert!(
                matches!(e, Err(DecodeError::OutOfRange { .. })),
                "{start}+{len} {path:?}: {e:?}"
            );
        }
        assert!(matches!(
            r.decode_range_into(start, &mut out),
            Err(DecodeError::OutOfRange { .. })
        ));
    }
    assert_eq!(
        r.decode_range_into(n - 1, &mut [0f32; 2]),
        Err(DecodeError::OutOfRange {
            start: n - 1,
            end: n + 1,
            len: n
        })
    );
    // Row ranges: end past the rows, start after end, wrong output length.
    let bad_rows: [(Range<u64>, usize); 4] = [
        (Range { start: 0, end: 41 }, 41 * 70),
        (Range { start: 40, end: 41 }, 70),
        (Range { start: 3, end: 2 }, 0),
        (
            Range {
                start: u64::MAX,
                end: u64::MAX,
            },
            0,
        ),
    ];
    for (rows, len) in bad_rows {
        let mut out = vec![0f32; len];
        let e = r.decode_rows_into(rows.clone(), &mut out);
        assert!(matches!(e, Err(DecodeError::OutOfRange { .. })), "{rows:?}: {e:?}");
    }
    for len in [0usize, 69, 71, 140] {
        let mut out = vec![0f32; len];
        assert_eq!(
            r.decode_rows_into(5..6, &mut out),
            Err(DecodeError::OutputLength { expected: 70, got: len })
        );
    }
    // Overlay factors with the wrong length (U is 40 x 2, V is 2 x 70).
    for len in [0usize, 79, 81] {
        assert_eq!(
            r.overlay_u_into(&mut vec![0f32; len]),
            Err(DecodeError::OutputLength { expected: 80, got: len })
        );
    }
    for len in [0usize, 139, 141] {
        assert_eq!(
            r.overlay_v_into(&mut vec![0f32; len]),
            Err(DecodeError::OutputLength {
                expected: 140,
                got: len
            })
        );
    }
    // Accessors past the end return None.
    let nb = n.div_ceil(64);
    for i in [n, n + 1, u64::MAX / 2, u64::MAX / 2 + 1, u64::MAX] {
        assert_eq!(r.code(i), None, "code({i})");
    }
    for j in [nb, nb + 1, u64::MAX / 2, u64::MAX / 2 + 1, u64::MAX] {
        assert_eq!(r.scale(j), None, "scale({j})");
    }
    // Errors display.
    let e = DecodeError::OutputLength { expected: 3, got: 2 };
    assert_eq!(e.to_string(), "output buffer holds 2 values, the request needs 3");
    let e = DecodeError::OutOfRange {
        start: 1,
        end: 5,
        len: 4,
    };
    assert_eq!(e.to_string(), "range 1..5 is outside 0..4");
}

// ---------------------------------------------------------------------------------------------
// Input handling and writer determinism
// ---------------------------------------------------------------------------------------------

#[test]
fn unaligned_input_and_trailing_bytes() {
    let mut rng = Rng::new(0x5eed_0008);
    for bits in [1u8, 3, 4, 5, 8] {
        let rec = Rec::random(bits, &[7, 37], &mut rng);
        let want = rec.expected();
        let len = rec.buf.len();
        let mut store = vec![0u8; len + 128];
        let base = store.as_ptr() as usize;
        for mis in [1usize, 3, 7] {
            // Start at an address that is `mis` past a multiple of 64.
            let start = (64 - base % 64) % 64 + mis;
            store.fill(0);
            store[start..start + len].copy_from_slice(&rec.buf);
            let slice = &store[start..start + len];
            assert_eq!(slice.as_ptr() as usize % 64, mis);
            let r = Record::parse(slice).expect("parse misaligned");
            for path in PATHS {
                assert_eq!(decode(&r, path), want, "bits {bits}, misalignment {mis}, {path:?}");
            }
        }
        // Trailing bytes after record_len are not part of the record.
        let mut long = rec.buf.clone();
        long.extend_from_slice(&[0xab; 100]);
        let r = Record::parse(&long).expect("trailing bytes are ignored");
        assert_eq!(r.layout().record_len as usize, len);
        for path in PATHS {
            assert_eq!(decode(&r, path), want);
        }
    }
}

#[test]
fn writing_is_deterministic() {
    let mut rng = Rng::new(0x5eed_0009);
    let rec = overlay_rec(OverlayDtype::Bf16, 3, true, &mut rng);
    let params = RecordParams::new(4, &[40, 70], 3, OverlayDtype::Bf16).unwrap();
    let len = rec.buf.len();
    for fill in [0x00u8, 0xff, 0x5a] {
        // The output buffer's prior content (and any extra room) must not leak into the record.
        let mut out = vec![fill; len + 10];
        let n = write_record(&params, &rec.grid, &rec.scales, &rec.codes, &rec.u, &rec.v, &mut out).unwrap();
        assert_eq!(n, len);
        assert_eq!(&out[..len], &rec.buf[..]);
        assert!(out[len..].iter().all(|&b| b == fill));
    }
}

// ---------------------------------------------------------------------------------------------
// Two-level scales (v0.4, spec section 13)
// ---------------------------------------------------------------------------------------------

/// A sub-scale: the extremes 0, 1 and 255 over-represented, otherwise any `u8`.
fn rand_sub(rng: &mut Rng) -> u8 {
    match rng.below(8) {
        0 => 0,
        1 => 255,
        2 => 1,
        _ => rng.next_u64() as u8,
    }
}

/// A v0.4 record together with the parts it was written from.
struct Rec04 {
    buf: Vec<u8>,
    grid: Vec<f32>,
    scales: Vec<u16>,
    subs: Vec<u8>,
    codes: Vec<u8>,
    sub: usize,
    rows: u64,
    cols: u64,
}

impl Rec04 {
    /// Random valid parts; an overlay of rank `r` (moderate f16 values) when `r > 0`.
    fn random(bits: u8, dims: &[u64], sub: u32, r: u32, rng: &mut Rng) -> Rec04 {
        Self::random_q(bits, dims, sub, 8, r, rng)
    }

    /// As [`Rec04::random`] with `q`-bit sub-scales.
    fn random_q(bits: u8, dims: &[u64], sub: u32, q: u8, r: u32, rng: &mut Rng) -> Rec04 {
        let dt = if r > 0 { OverlayDtype::F16 } else { OverlayDtype::None };
        let params = RecordParams::with_subscales_bits(bits, dims, r, dt, sub, q).expect("params");
        let layout = params.layout().expect("layout");
        let n = layout.n;
        assert_eq!(layout.block_size, 256);
        assert_eq!(layout.n_scales, n.div_ceil(256));
        assert_eq!(layout.n_subscales, n.div_ceil(u64::from(sub)));
        assert_eq!(layout.n_blocks, n.div_ceil(64));
        let grid: Vec<f32> = (0..1u32 << bits).map(|_| rand_grid(rng)).collect();
        let scales: Vec<u16> = (0..layout.n_scales).map(|_| rand_scale(rng)).collect();
        let qmask = ((1u16 << q) - 1) as u8;
        let subs: Vec<u8> = (0..layout.n_subscales).map(|_| rand_sub(rng) & qmask).collect();
        let codes: Vec<u8> = (0..n).map(|_| rng.below(1 << bits) as u8).collect();
        let u: Vec<u16> = (0..layout.rows * u64::from(r))
            .map(|_| 0x3000 | rng.below(0x1000) as u16)
            .collect();
        let v: Vec<u16> = (0..u64::from(r) * layout.cols)
            .map(|_| 0xb000 | rng.below(0x1000) as u16)
            .collect();
        let mut buf = vec![0u8; layout.record_len as usize];
        write_record_with_subscales(&params, &grid, &scales, &subs, &codes, &u, &v, &mut buf)
            .expect("write_record_with_subscales");
        Rec04 {
            buf,
            grid,
            scales,
            subs,
            codes,
            sub: sub as usize,
            rows: layout.rows,
            cols: layout.cols,
        }
    }

    /// The effective scale of element `i` computed in f64: exact (at most 19 significant bits).
    fn effective(&self, i: usize) -> f64 {
        f16_value(self.scales[i / 256]) * f64::from(self.subs[i / self.sub])
    }

    /// `W_base` by, computed in the test: `((f16 value · sub) as f32) · grid[code]`.
    fn expected(&self) -> Vec<u32> {
        self.codes
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let e = self.effective(i) as f32;
                assert_eq!(f64::from(e), self.effective(i), "effective scale {i} is not exact");
                let w = e * self.grid[usize::from(c)];
                // The single rounding: the f64 product of the exact effective scale (19 bits) and
                // the grid value (24 bits) is exact, so rounding it once to f32 is the same value.
                assert_eq!(
                    ((self.effective(i) * f64::from(self.grid[usize::from(c)])) as f32).to_bits(),
                    w.to_bits()
                );
                assert!(w == 0.0 || w.is_normal(), "product {w:e} is not zero or normal");
                w.to_bits()
            })
            .collect()
    }
}

/// Shapes for two-level scales: n = 1, 7, 17, 100, 255, 257, 512, 1000, 1155, 3367, 4000; most
/// are not multiples of 8, S, 64 or 256; 512 is whole blocks.
const SHAPES_04: [&[u64]; 11] = [
    &[1],
    &[7],
    &[17],
    &[100],
    &[255],
    &[257],
    &[2, 256],
    &[1000],
    &[3, 5, 7, 11],
    &[37, 91],
    &[4, 1000],
];

#[test]
fn two_level_scales_every_path_and_range_match_an_independent_computation() {
    let mut rng = Rng::new(0x5eed_0004);
    let starts = [
        0u64, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 255, 256, 257, 300, 511, 513,
    ];
    let lens = [1u64, 2, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 200, 256, 257, 513];
    let mut checked = 0;
    for sub in [16u32, 32] {
        for bits in 1u8..=8 {
            for (k, dims) in SHAPES_04.iter().enumerate() {
                let rank = if dims.len() > 1 && k % 2 == 0 {
                    3.min(dims[0] as u32)
                } else {
                    0
                };
                let rec = Rec04::random(bits, dims, sub, rank, &mut rng);
                let r = Record::parse(&rec.buf).expect("parse");
                let want = rec.expected();
                let n = want.len() as u64;
                let what = format!("S {sub} bits {bits} dims {dims:?}");
                assert_eq!((r.block_size(), r.sub_block()), (256, Some(sub)), "{what}");
                assert_eq!(r.subscales_bytes(), &rec.subs[..], "{what}");
                for i in 0..n {
                    assert_eq!(r.effective_scale(i).map(f64::from), Some(rec.effective(i as usize)));
                }
                assert_eq!(r.effective_scale(n), None);
                for (j, &h) in rec.scales.iter().enumerate() {
                    assert_eq!(r.scale(j as u64).map(f64::from), Some(f16_value(h)));
                }
                assert_eq!(r.scale(rec.scales.len() as u64), None);
                // Whole tensor, every path.
                for path in PATHS {
                    assert_eq!(decode(&r, path), want, "{what}: {path:?}");
                }
                // Ranges crossing 8-, S-, 64- and 256-element boundaries, and random ones.
                let mut ranges: Vec<(u64, u64)> = vec![(0, n), (0, 0), (n, 0), (n - 1, 1)];
                for s in starts {
                    for l in lens {
                        if s + l <= n {
                            ranges.push((s, l));
                        }
                    }
                }
                for _ in 0..20 {
                    let s = rng.below(n + 1);
                    ranges.push((s, rng.below(n - s + 1)));
                }
                assert_ranges(&r, &want, &ranges, &what);
                // Row ranges.
                let (rows, cols) = (rec.rows, rec.cols);
                let mut row_ranges = vec![0..rows, 0..0, rows - 1..rows, rows / 2..rows];
                for _ in 0..5 {
                    let a = rng.below(rows + 1);
                    row_ranges.push(a..rng.range(a, rows));
                }
                for rr in row_ranges {
                    let mut out = vec![f32::NAN; ((rr.end - rr.start) * cols) as usize];
                    r.decode_rows_into(rr.clone(), &mut out).unwrap();
                    assert_eq!(
                        to_bits(&out),
                        want[(rr.start * cols) as usize..(rr.end * cols) as usize],
                        "{what}: rows {rr:?}"
                    );
                }
                // Block streams: 64-element code groups.
                let nb = n.div_ceil(64) as usize;
                assert_eq!(r.blocks().size_hint(), (nb, Some(nb)));
                let mut cat = Vec::new();
                for (j, b) in r.blocks().enumerate() {
                    assert_eq!(b.index, j as u64);
                    assert_eq!(b.len, (n - 64 * j as u64).min(64) as usize);
                    assert!(b.values[b.len..].iter().all(|v| v.to_bits() == 0));
                    cat.extend_from_slice(b.as_slice());
                }
                assert_eq!(to_bits(&cat), want, "{what}: blocks");
                let mut merged: Vec<f32> = want.iter().map(|&w| f32::from_bits(w)).collect();
                r.merge_overlay_into(&mut merged).unwrap();
                let streamed: Vec<f32> = r.merged_blocks().flat_map(|b| b.as_slice().to_vec()).collect();
                assert_eq!(to_bits(&streamed), to_bits(&merged), "{what}: merged_blocks");
                if rank == 0 {
                    assert_eq!(to_bits(&streamed), want, "{what}: merged_blocks without overlay");
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 2 * 8 * SHAPES_04.len());
}

/// Every sub-scale width q = 1..=8 with both sub-blocks and every code width, on shapes with many
/// whole 256-element blocks (the AVX2 kernel's block-at-a-time path) and partial ones at both ends:
/// whole tensors and ranges starting and ending off the 8-, S-, 64- and 256-element boundaries.
#[test]
fn two_level_scales_every_sub_bits_width_and_range() {
    let mut rng = Rng::new(0x5eed_0413);
    let shapes: [&[u64]; 5] = [&[255], &[2, 256], &[4, 1000], &[3, 1027], &[4096]];
    let starts = [0u64, 1, 5, 8, 17, 63, 64, 200, 255, 256, 257, 511, 700, 1023];
    let lens = [1u64, 9, 63, 255, 256, 257, 511, 512, 769, 1300, 2049];
    for sub in [16u32, 32] {
        for bits in 1u8..=8 {
            for q in 1u8..=8 {
                for dims in shapes {
                    let rec = Rec04::random_q(bits, dims, sub, q, 0, &mut rng);
                    let r = Record::parse(&rec.buf).expect("parse");
                    let want = rec.expected();
                    let n = want.len() as u64;
                    let what = format!("S {sub} bits {bits} q {q} dims {dims:?}");
                    for path in PATHS {
                        assert_eq!(decode(&r, path), want, "{what}: {path:?}");
                    }
                    let mut ranges: Vec<(u64, u64)> = vec![(n - 1, 1)];
                    for s in starts {
                        for l in lens {
                            if s + l <= n {
                                ranges.push((s, l));
                            }
                        }
                        if s < n {
                            ranges.push((s, n - s));
                        }
                    }
                    for _ in 0..8 {
                        let s = rng.below(n + 1);
                        ranges.push((s, rng.below(n - s + 1)));
                    }
                    assert_ranges(&r, &want, &ranges, &what);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Row dot products (uc_decode::dot)
// ---------------------------------------------------------------------------------------------

/// The dot product of the module documentation of `uc_decode::dot`, computed here from the
/// test's own `W_base` bits: 32 lanes, `lane[c % 32] += w·x` in order, then the halving fold.
fn dot_ref(w: &[u32], x: &[f32]) -> f32 {
    let mut lanes = [0f32; 32];
    for (c, (&wb, &xv)) in w.iter().zip(x).enumerate() {
        let p = f32::from_bits(wb) * xv;
        lanes[c % 32] += p;
    }
    for h in [16, 8, 4, 2, 1] {
        for j in 0..h {
            lanes[j] += lanes[j + h];
        }
    }
    lanes[0]
}

/// Checks every path's `dot_rows` on every row range of `ranges` against [`dot_ref`] (bits) and
/// against the f64 sum within the documented bound.
fn check_dot(r: &Record<'_>, want: &[u32], x: &[f32], ranges: &[Range<u64>], what: &str) -> usize {
    let cols = r.cols() as usize;
    let mut checked = 0;
    for rows in ranges {
        let expect: Vec<f32> = rows
            .clone()
            .map(|row| dot_ref(&want[row as usize * cols..(row as usize + 1) * cols], x))
            .collect();
        for (k, row) in rows.clone().enumerate() {
            let w = &want[row as usize * cols..(row as usize + 1) * cols];
            let exact: f64 = w
                .iter()
                .zip(x)
                .map(|(&b, &v)| f64::from(f32::from_bits(b)) * f64::from(v))
                .sum();
            let mag: f64 = w
                .iter()
                .zip(x)
                .map(|(&b, &v)| (f64::from(f32::from_bits(b)) * f64::from(v)).abs())
                .sum();
            let bound = (cols as f64 / 32.0 + 6.0) * 2f64.powi(-24) * mag;
            let wf: Vec<f32> = w.iter().map(|&b| f32::from_bits(b)).collect();
            assert_eq!(
                uc_decode::dot::dot_f32(&wf, x).to_bits(),
                expect[k].to_bits(),
                "{what}: dot_f32, row {row}"
            );
            let err = (f64::from(expect[k]) - exact).abs();
            assert!(
                err <= bound,
                "{what}: row {row}: |{} - {exact}| = {err} > {bound}",
                expect[k]
            );
        }
        for path in PATHS {
            let mut y = vec![f32::NAN; (rows.end - rows.start) as usize];
            r.dot_rows_with(path, rows.clone(), x, &mut y).expect("dot_rows");
            let got: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
            let exp: Vec<u32> = expect.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, exp, "{what}: rows {rows:?}, path {path:?}");
            checked += 1;
        }
    }
    checked
}

fn rand_x(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| (rng.below(1 << 20) as f32 / (1 << 19) as f32 - 1.0) * 3.0)
        .collect()
}

/// Row lengths off and on every 8/16/32/64/256 boundary, and a Llama hidden size (576 = 9 × 64).
const DOT_SHAPES: [[u64; 2]; 12] = [
    [3, 1],
    [2, 7],
    [5, 31],
    [4, 32],
    [3, 33],
    [9, 64],
    [2, 100],
    [3, 255],
    [4, 256],
    [3, 257],
    [5, 576],
    [2, 1000],
];

#[test]
fn dot_rows_every_path_matches_the_defined_order_on_v03_and_v04_records() {
    let mut rng = Rng::new(0xd07_0001);
    let mut checked = 0;
    for bits in 1u8..=8 {
        for dims in DOT_SHAPES {
            let rows = dims[0];
            let ranges = [0..rows, 0..1, rows - 1..rows, 1..rows, 0..0];
            let x = rand_x(&mut rng, dims[1] as usize);
            let rec = Rec::random(bits, &dims, &mut rng);
            checked += check_dot(
                &rec.parse(),
                &rec.expected(),
                &x,
                &ranges,
                &format!("v0.3 b{bits} {dims:?}"),
            );
            for sub in [16u32, 32] {
                let rec = Rec04::random_q(bits, &dims, sub, 1 + (bits % 8), 0, &mut rng);
                let r = Record::parse(&rec.buf).expect("parse");
                let what = format!("v0.4 b{bits} S{sub} {dims:?}");
                checked += check_dot(&r, &rec.expected(), &x, &ranges, &what);
            }
        }
    }
    assert_eq!(checked, 8 * DOT_SHAPES.len() * 3 * 5 * PATHS.len());
}

#[test]
fn dot_rows_ignores_the_overlay_and_refuses_bad_requests() {
    let mut rng = Rng::new(0xd07_0002);
    let rec = Rec04::random(4, &[6, 40], 16, 2, &mut rng);
    let r = Record::parse(&rec.buf).expect("parse");
    assert_eq!(r.overlay_rank(), 2);
    let x = rand_x(&mut rng, 40);
    checked_is_base(&r, &rec.expected(), &x);
    let mut y = [0f32; 6];
    assert_eq!(
        r.dot_rows(0..6, &x[..39], &mut y),
        Err(DecodeError::OutputLength { expected: 40, got: 39 })
    );
    assert_eq!(
        r.dot_rows(0..6, &x, &mut y[..5]),
        Err(DecodeError::OutputLength { expected: 6, got: 5 })
    );
    assert_eq!(
        r.dot_rows(2..7, &x, &mut y[..5]),
        Err(DecodeError::OutOfRange {
            start: 2,
            end: 7,
            len: 6
        })
    );
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = 4..2;
    assert_eq!(
        r.dot_rows(backwards, &x, &mut y[..0]),
        Err(DecodeError::OutOfRange {
            start: 4,
            end: 2,
            len: 6
        })
    );
}

/// The dot products of a record with an overlay are those of `W_base` alone.
fn checked_is_base(r: &Record<'_>, want: &[u32], x: &[f32]) {
    let all = [0..r.rows(), 0..r.rows()];
    assert_eq!(check_dot(r, want, x, &all, "overlay record"), 2 * PATHS.len());
}
