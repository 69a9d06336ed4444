//! Encoder round trip: a small arbitrary finite f32 tensor (at most 4096 elements, 1-D or 2-D) and
//! options (bits 1..=8, rank 0..=4, v0.3 scales or two-level scales with `S` 16 or 32 and `q`
//! 1..=8) go through `uc_encode::encode_tensor`; the record must validate, say what was asked,
//! decode (every path) to `f32(scale[block]) * grid[code[i]]` (v0.3) or
//! `(f32(scale[i / 256]) * f32(sub[i / S])) * grid[code[i]]` bit for bit, and its codes
//! must be nearest grid values for the effective scale (the bound is explained at `nearest`). The
//! reported error (`err2`, `norm2`) must be the error of the record. The same input encodes to the same bytes on a
//! 2-thread pool (DESIGN §6). NaN or infinite weights give `EncodeError::NonFinite` at the first
//! such index; invalid bits, a zero dimension or invalid sub-scales (`S` not 16/32, `q` not 1..=8)
//! give `EncodeError::Format`, never a panic.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use uc_decode::Record;
use uc_encode::gsq::EncodeError;
use uc_encode::{SubScales, TensorOptions, encode_tensor};
use uc_format::ErrorKind;
use uc_fuzz::check;

#[derive(Arbitrary, Debug)]
struct Input {
    bits: u8,
    rank: u8,
    sub: u8,
    rows: u8,
    two_d: bool,
    mode: u8,
    exp: i8,
    seed: u64,
    bad: Option<(u16, u8)>,
    zero_dim: bool,
    values: Vec<u32>,
}

fn finite(v: u32) -> f32 {
    let f = f32::from_bits(v);
    if f.is_finite() {
        f
    } else {
        f32::from_bits(v & !0x4000_0000)
    }
}

fn value(mode: u8, exp: i8, v: u32) -> f32 {
    match mode % 4 {
        0 => finite(v),
        1 => f32::from(v as i8) * 2f32.powi(i32::from(exp % 40)),
        2 => f32::from(v as i16) / 1000.0,
        _ if v.is_multiple_of(3) => 0.0,
        _ => finite(v.rotate_left(7) & 0xbfff_ffff),
    }
}

/// The code of every element is a nearest grid value, up to the rounding of the decision rule.
///
/// The encoder (DESIGN §6) sorts the grid and gives weight `w` of a block (a sub-block with
/// two-level scales) with effective scale `s` (R-13.4: exact, +0 or in `[2^-24, 2^24)`) the
/// smallest `k` with `w <= t_k`, `t_k = fl(s * fl(0.5*g_k + 0.5*g_{k+1}))`, else the last index.
/// With exact thresholds `m_k = s * (g_k + g_{k+1}) / 2` this is exactly "nearest, ties to the lower
/// index". Each rounding is relative 2^-24 (halving a valid grid value is exact; by R-7.3/R-7.2 the
/// operands are zero or >= 2^-64 and 2^-24 and the results stay far above the binary32 subnormals,
/// but we add 2^-149 for any underflow), so `|t_k - m_k| <= D = 2^-22 * s * max|g| + 2^-149`. The
/// thresholds are sorted, so the chosen code is the exact nearest code of some `x` with
/// `|x - w| <= D`, hence for every `j`: `|w - s*g_c| <= |x - s*g_c| + D <= |x - s*g_j| + D
/// <= |w - s*g_j| + 2D`. Products `s*g_j` are exact in f64 (24 + 11 significant bits) and the f64
/// differences add a relative 2^-52 at most, covered by the factor below. A correct encoder cannot
/// violate this, whatever its scales and grid (absmax or refined); a wrong code choice (not
/// nearest, wrong tie rule by more than one rounding, unsorted grid) does.
fn nearest(rec: &Record<'_>, data: &[f32]) {
    let g: Vec<f64> = rec.grid().iter().map(|&v| f64::from(v)).collect();
    let gmax = g.iter().fold(0f64, |m, v| m.max(v.abs()));
    for (i, &w) in data.iter().enumerate() {
        let s = f64::from(rec.effective_scale(i as u64).unwrap());
        let c = usize::from(rec.code(i as u64).unwrap());
        let w = f64::from(w);
        let err = |j: usize| (w - s * g[j]).abs();
        let best = (0..g.len()).map(err).fold(f64::INFINITY, f64::min);
        let d = 2f64.powi(-22) * s * gmax + 2f64.powi(-149);
        assert!(
            err(c) <= (best + 2.0 * d) * (1.0 + 2f64.powi(-40)),
            "element {i} (w = {w:e}, s = {s:e}): code {c} is off by {:e}, best {best:e}, slack {:e}",
            err(c),
            2.0 * d
        );
    }
}

fn pool2() -> &'static rayon::ThreadPool {
    static P: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    P.get_or_init(|| rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap())
}

fuzz_target!(|inp: Input| {
    uc_fuzz::single_threaded();
    let n = inp.values.len().min(4096);
    let mut data: Vec<f32> = inp.values[..n].iter().map(|&v| value(inp.mode, inp.exp, v)).collect();
    let rows = 1 + usize::from(inp.rows) % 64;
    let dims: Vec<u64> = if n == 0 {
        if !inp.zero_dim {
            return;
        }
        if inp.two_d { vec![rows as u64, 0] } else { vec![0] }
    } else if inp.two_d && n >= rows {
        let cols = n / rows;
        data.truncate(rows * cols);
        vec![rows as u64, cols as u64]
    } else {
        vec![n as u64]
    };
    let bits_ok = inp.bits < 248;
    let bits = if bits_ok {
        1 + inp.bits % 8
    } else {
        [0, 9, 16, 63, 64, 65, 128, 255][usize::from(inp.bits - 248)]
    };
    // Sub-scales: None (v0.3) for 3/8 of the inputs, valid two-level scales for 9/16, invalid for
    // 1/16 (`S` = 0 included: it must be refused, not read as "no two-level scales").
    let (subscales, sub_ok) = match inp.sub {
        0..=95 => (None, true),
        96..=239 => {
            let block = if inp.sub & 1 == 0 { 16 } else { 32 };
            (
                Some(SubScales {
                    block,
                    bits: 1 + (inp.sub >> 1) % 8,
                }),
                true,
            )
        }
        _ => {
            let (block, bits) = [
                (16, 0),
                (32, 9),
                (16, 255),
                (8, 4),
                (64, 6),
                (256, 1),
                (48, 8),
                (u32::MAX, 3),
                (0, 6),
            ][usize::from(inp.sub - 240) % 9];
            (Some(SubScales { block, bits }), false)
        }
    };
    let opts = TensorOptions {
        bits,
        rank: u32::from(inp.rank % 5),
        seed: inp.seed,
        subscales,
    };
    if let (Some((at, kind)), false, true, true) = (inp.bad, data.is_empty(), bits_ok, sub_ok) {
        let at = usize::from(at) % data.len();
        data[at] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][usize::from(kind % 3)];
        match encode_tensor(&data, &dims, &opts) {
            Err(EncodeError::NonFinite { index }) => assert_eq!(index, at),
            other => panic!("non-finite weight at {at}: {other:?}"),
        }
        return;
    }
    let enc = encode_tensor(&data, &dims, &opts);
    if data.is_empty() || !bits_ok || !sub_ok {
        match enc {
            Err(EncodeError::Format(e)) => assert!(
                matches!(e.kind, ErrorKind::BadDim | ErrorKind::BadBits | ErrorKind::BadSubBlock),
                "{e:?}"
            ),
            other => panic!("bits {bits}, dims {dims:?}, {subscales:?}: {other:?}"),
        }
        return;
    }
    let enc = enc.unwrap_or_else(|e| panic!("a finite tensor {dims:?} failed to encode: {e:?}"));
    let rec = check::validate_checked(&enc.record).unwrap_or_else(|e| panic!("invalid record: {e:?}"));
    assert_eq!(rec.shape(), &dims[..]);
    assert_eq!((rec.bits(), enc.bits), (bits, bits));
    assert_eq!(rec.sub_block(), subscales.map(|s| s.block));
    assert_eq!(rec.block_size(), if subscales.is_some() { 256 } else { 64 });
    if let Some(s) = subscales {
        assert_eq!(rec.layout().params.sub_bits, s.bits);
    }
    let want_rank = if dims.len() == 2 {
        opts.rank.min(dims[0] as u32).min(dims[1] as u32)
    } else {
        0
    };
    assert_eq!((rec.overlay_rank(), enc.rank), (want_rank, want_rank));
    let w = check::exercise(&rec, inp.seed).unwrap();
    let sub_at = |t: usize, q: u8| -> u8 {
        // sub[t] is bits [t*q, t*q + q) of the little-endian stream of section 4.
        let b = rec.subscales_bytes();
        (0..usize::from(q)).fold(0u8, |acc, u| {
            acc | (((b[(t * usize::from(q) + u) / 8] >> ((t * usize::from(q) + u) % 8)) & 1) << u)
        })
    };
    for (i, v) in w.iter().enumerate() {
        let g = rec.grid()[usize::from(rec.code(i as u64).unwrap())];
        let want = match subscales {
            None => rec.scale(i as u64 / 64).unwrap() * g,
            Some(s) => {
                let sub = sub_at(i / s.block as usize, s.bits);
                let e = rec.scale(i as u64 / 256).unwrap() * f32::from(sub);
                assert_eq!(rec.effective_scale(i as u64), Some(e), "element {i}: effective scale");
                e * g
            }
        };
        assert_eq!(v.to_bits(), want.to_bits(), "element {i}");
    }
    nearest(&rec, &data);

    // The reported error is the error of the record.
    let norm2: f64 = data.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    assert!(
        (enc.norm2 - norm2).abs() <= 1e-12 * norm2,
        "norm2 {} vs {norm2}",
        enc.norm2
    );
    assert!(enc.err2.is_finite() && enc.err2 >= 0.0, "err2 {}", enc.err2);
    let mut merged = w.clone();
    rec.merge_overlay_into(&mut merged).unwrap();
    let e2: f64 = data
        .iter()
        .zip(&merged)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum();
    // merged differs from W_base + U·V computed exactly by the f32 roundings of R-8.5 (the
    // conformance tolerance), and the encoder rounds the residual w - W_base to f32 once: the
    // square roots of the two errors differ by at most the norm of those roundings.
    let r = rec.overlay_rank() as usize;
    let cols = rec.cols() as usize;
    let (mut u, mut v) = (vec![0f32; rec.rows() as usize * r], vec![0f32; r * cols]);
    rec.overlay_u_into(&mut u).unwrap();
    rec.overlay_v_into(&mut v).unwrap();
    let mut tol2 = 0f64;
    for (idx, (&x, &b)) in data.iter().zip(&w).enumerate() {
        let (i, j) = (idx / cols, idx % cols);
        let uv: f64 = (0..r)
            .map(|k| (f64::from(u[i * r + k]) * f64::from(v[k * cols + j])).abs())
            .sum();
        let t = (r as f64 + 2.0) * 2f64.powi(-24) * (f64::from(b).abs() + uv)
            + r as f64 * 2f64.powi(-126)
            + 2f64.powi(-24) * (f64::from(x) - f64::from(b)).abs();
        tol2 += t * t;
    }
    let diff = (e2.sqrt() - enc.err2.sqrt()).abs();
    let bound = 2.0 * tol2.sqrt() + 1e-9 * (e2.sqrt() + enc.err2.sqrt()) + 1e-300;
    assert!(
        diff <= bound,
        "err2 {} vs the record's {e2} (difference of roots {diff:e} > {bound:e})",
        enc.err2
    );

    // Deterministic whatever the thread count.
    let again = pool2().install(|| encode_tensor(&data, &dims, &opts)).unwrap();
    assert!(again.record == enc.record, "2 threads gave different bytes");
});
