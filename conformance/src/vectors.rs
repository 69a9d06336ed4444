//! The conformance vectors, defined in code and written to files by `gen-vectors`.
//!
//! Records are assembled here by an implementation of spec sections 4–6 that is independent of
//! `uc_format::write_record` (own header layout, own bit packer), and expected outputs are computed
//! from the generating codes, scales and grid with an independent binary16 conversion, so that a
//! bug shared by our writer and decoder cannot hide behind a matching vector.

use uc_format::ErrorKind;

pub(crate) mod v04;

/// One vector: a record and what a conforming decoder must do with it.
#[derive(Debug, Clone)]
pub struct Vector {
    /// File stem, unique.
    pub name: String,
    /// What it exercises, in words.
    pub description: String,
    /// Spec clauses it exercises.
    pub clauses: Vec<String>,
    /// The record bytes fed to the decoder.
    pub record: Vec<u8>,
    /// What must happen.
    pub expect: Expect,
}

/// The expected outcome.
#[derive(Debug, Clone)]
pub enum Expect {
    /// The record is valid.
    Valid {
        /// Decoded `W_base`.
        w_base: Vec<f32>,
        /// `U` then `V` as f32 (empty when there is no overlay).
        overlay: Vec<f32>,
        /// `W_base + U·V` in the reference order of R-8.5 (empty when there is no overlay).
        merged: Vec<f32>,
    },
    /// The record is invalid with this class at this offset.
    Invalid {
        /// Error class.
        error: ErrorKind,
        /// Byte offset.
        offset: u64,
    },
    /// Every strict prefix `record[..L]` (L = 0..len) must be rejected as `truncated` at offset L.
    EveryPrefixTruncated,
}

/// xorshift64*: deterministic data without a dependency.
pub(crate) struct Rng(pub(crate) u64);

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

/// Exact value of a binary16 pattern, computed in f64 (independent of uc_format::num).
pub fn f16_value(h: u16) -> f32 {
    let e = i32::from((h >> 10) & 0x1f);
    let m = f64::from(h & 0x3ff);
    let v = if e == 0 {
        m * 2f64.powi(-24)
    } else {
        (1024.0 + m) * 2f64.powi(e - 25)
    };
    let v = v as f32; // exact: every finite binary16 value is a binary32 value
    if h & 0x8000 != 0 { -v } else { v }
}

fn bf16_value(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// Inputs of the independent record assembler.
#[derive(Debug, Clone)]
pub struct RecordSpec {
    pub bits: u8,
    pub dims: Vec<u64>,
    pub minor: u16,
    pub header_len: u32,
    pub flags: u32,
    /// Header bytes `[192, header_len)` (later minor versions only).
    pub header_ext: Vec<u8>,
    pub grid: Vec<f32>,
    pub scales: Vec<u16>,
    pub codes: Vec<u8>,
    /// 0 none, 1 f16, 2 bf16.
    pub overlay_dtype: u8,
    pub rank: u32,
    /// `U` `[rows, r]` then `V` `[r, cols]`, as 16-bit patterns.
    pub overlay: Vec<u16>,
    /// Sub-block size `S` of two-level scales (R-13.3: 16 or 32), or 0 for a record without them.
    /// With `S` > 0 the record gets the v0.4 extension (bytes 192..256: the sub-scales table
    /// entry, `sub_block`, zero `reserved2`), `block_size` 256, one scale per 256 elements and
    /// `header_ext` holds the header bytes `[256, header_len)` instead of `[192, header_len)`.
    /// `flags` and `minor` are written as given (R-13.1 wants bit 0 and minor 4).
    pub sub_block: u32,
    /// One sub-scale per `S` elements (two-level scales only), each `< 2^sub_bits`.
    pub subscales: Vec<u8>,
    /// Width `q` of a sub-scale in bits (R-13.2, 1..=8; two-level scales only). The sub-scales
    /// are bit-packed like codes.
    pub sub_bits: u8,
}

impl RecordSpec {
    /// Reconstruction by from the generating values.
    fn w_base(&self) -> Vec<f32> {
        if self.sub_block != 0 {
            return self.w_base_subscaled();
        }
        self.codes
            .iter()
            .enumerate()
            .map(|(i, &c)| f16_value(self.scales[i / 64]) * self.grid[usize::from(c)])
            .collect()
    }

    /// Reconstruction by: the effective scale `f16 x sub` computed exactly in f64 (and
    /// checked to be a binary32 value), then ONE binary32 multiply by the grid value.
    fn w_base_subscaled(&self) -> Vec<f32> {
        let s = self.sub_block as usize;
        self.codes
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let e = f64::from(f16_value(self.scales[i / 256])) * f64::from(self.subscales[i / s]);
                let e32 = e as f32;
                assert_eq!(f64::from(e32), e, "R-13.4: the effective scale is exact in binary32");
                e32 * self.grid[usize::from(c)]
            })
            .collect()
    }

    fn overlay_f32(&self) -> Vec<f32> {
        let conv = if self.overlay_dtype == 2 { bf16_value } else { f16_value };
        self.overlay.iter().map(|&h| conv(h)).collect()
    }

    /// reference merge.
    fn merged(&self, w: &[f32]) -> Vec<f32> {
        if self.rank == 0 {
            return Vec::new();
        }
        let r = self.rank as usize;
        let rows = self.dims[0] as usize;
        let cols = w.len() / rows;
        let f = self.overlay_f32();
        let (u, v) = f.split_at(rows * r);
        let mut out = w.to_vec();
        for i in 0..rows {
            for j in 0..cols {
                let mut acc = 0f32;
                for k in 0..r {
                    acc += u[i * r + k] * v[k * cols + j];
                }
                out[i * cols + j] = w[i * cols + j] + acc;
            }
        }
        out
    }

    fn expect_valid(&self) -> Expect {
        let w = self.w_base();
        let merged = self.merged(&w);
        Expect::Valid {
            w_base: w,
            overlay: self.overlay_f32(),
            merged,
        }
    }
}

fn align64(x: u64) -> u64 {
    x.div_ceil(64) * 64
}

/// Section placement of spec: (offset, len) of grid, scales, codes, overlay; and
/// record_len, the end of the overlay rounded up to a multiple of 64.
pub fn canonical_sections(bits: u8, dims: &[u64], rank: u32, header_len: u32) -> ([(u64, u64); 4], u64) {
    let (s, _, record_len) = canonical_sections_v04(bits, dims, rank, header_len, 0, 0);
    (s, record_len)
}

/// Section placement of with sub-block size `sub_block` (0: no two-level
/// scales) and `sub_bits`-bit sub-scales: the four sections of [`canonical_sections`] (scales one per 256 elements when
/// `sub_block` > 0), the sub-scales section (`(0, 0)` without two-level scales) and record_len,
/// the end of the last section rounded up to a multiple of 64.
pub fn canonical_sections_v04(
    bits: u8,
    dims: &[u64],
    rank: u32,
    header_len: u32,
    sub_block: u32,
    sub_bits: u8,
) -> ([(u64, u64); 4], (u64, u64), u64) {
    let n: u64 = dims.iter().product();
    let nb = n.div_ceil(64);
    let n_scales = if sub_block == 0 { nb } else { n.div_ceil(256) };
    let rows = dims[0];
    let cols = n / rows;
    let lens = [
        4u64 << bits,
        2 * n_scales,
        8 * u64::from(bits) * nb,
        2 * u64::from(rank) * (rows + cols),
    ];
    let mut out = [(0, 0); 4];
    let mut end = u64::from(header_len);
    for (o, len) in out.iter_mut().zip(lens) {
        let off = align64(end);
        *o = (off, len);
        end = off + len;
    }
    let mut sub = (0, 0);
    if sub_block != 0 {
        let n_sub = n.div_ceil(u64::from(sub_block));
        sub = (align64(end), (n_sub * u64::from(sub_bits)).div_ceil(8));
        end = sub.0 + sub.1;
    }
    (out, sub, align64(end))
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

/// CRC per R-4.6 (the zlib CRC with bytes 24..28 as zero), stored in place.
pub fn fix_crc(rec: &mut [u8]) {
    let mut h = crc32fast::Hasher::new();
    h.update(&rec[..24]);
    h.update(&[0; 4]);
    h.update(&rec[28..]);
    let c = h.finalize();
    rec[24..28].copy_from_slice(&c.to_le_bytes());
}

/// Assembles a record from its parts, byte by byte from the table of.
pub fn assemble(s: &RecordSpec) -> Vec<u8> {
    let (sections, sub, record_len) =
        canonical_sections_v04(s.bits, &s.dims, s.rank, s.header_len, s.sub_block, s.sub_bits);
    let mut b = vec![0u8; record_len as usize];
    put(&mut b, 0, &[0x89, 0x55, 0x43, 0x52, 0x0d, 0x0a, 0x1a, 0x0a]);
    put(&mut b, 8, &0u16.to_le_bytes());
    put(&mut b, 10, &s.minor.to_le_bytes());
    put(&mut b, 12, &s.header_len.to_le_bytes());
    put(&mut b, 16, &record_len.to_le_bytes());
    put(&mut b, 28, &s.flags.to_le_bytes());
    b[32] = s.bits;
    b[33] = s.dims.len() as u8;
    b[34] = 1;
    b[35] = s.overlay_dtype;
    let block_size: u32 = if s.sub_block == 0 { 64 } else { 256 };
    put(&mut b, 36, &block_size.to_le_bytes());
    put(&mut b, 40, &s.rank.to_le_bytes());
    for (i, d) in s.dims.iter().enumerate() {
        put(&mut b, 48 + 8 * i, &d.to_le_bytes());
    }
    for (k, (off, len)) in sections.iter().enumerate() {
        put(&mut b, 112 + 16 * k, &off.to_le_bytes());
        put(&mut b, 120 + 16 * k, &len.to_le_bytes());
    }
    if s.sub_block == 0 {
        put(&mut b, 192, &s.header_ext);
    } else {
        // The v0.4 extension; reserved2 (212..256) stays zero.
        put(&mut b, 192, &sub.0.to_le_bytes());
        put(&mut b, 200, &sub.1.to_le_bytes());
        put(&mut b, 208, &s.sub_block.to_le_bytes());
        b[212] = s.sub_bits;
        put(&mut b, 256, &s.header_ext);
        // Bit packing of the sub-scales, one stream bit at a time (R-13.2, as ).
        let q = usize::from(s.sub_bits);
        for (t, &v) in s.subscales.iter().enumerate() {
            assert!(u32::from(v) < 1 << q, "sub-scale {v} does not fit {q} bits");
            for u in 0..q {
                if (v >> u) & 1 == 1 {
                    let k = t * q + u;
                    b[sub.0 as usize + k / 8] |= 1 << (k % 8);
                }
            }
        }
    }
    let at = |k: usize| sections[k].0 as usize;
    for (j, g) in s.grid.iter().enumerate() {
        put(&mut b, at(0) + 4 * j, &g.to_bits().to_le_bytes());
    }
    for (j, h) in s.scales.iter().enumerate() {
        put(&mut b, at(1) + 2 * j, &h.to_le_bytes());
    }
    // Bit packing, one stream bit at a time.
    let b_bits = usize::from(s.bits);
    for (i, &c) in s.codes.iter().enumerate() {
        for t in 0..b_bits {
            if (c >> t) & 1 == 1 {
                let k = i * b_bits + t;
                b[at(2) + k / 8] |= 1 << (k % 8);
            }
        }
    }
    for (j, h) in s.overlay.iter().enumerate() {
        put(&mut b, at(3) + 2 * j, &h.to_le_bytes());
    }
    fix_crc(&mut b);
    b
}

/// A random valid record of the given shape.
pub(crate) fn random_spec(rng: &mut Rng, bits: u8, dims: &[u64], overlay_dtype: u8, rank: u32) -> RecordSpec {
    let n: u64 = dims.iter().product();
    let k = 1usize << bits;
    let grid: Vec<f32> = (0..k)
        .map(|_| {
            if rng.below(16) == 0 {
                return 0.0;
            }
            let mag = (rng.below(1 << 20) as f32 + 1.0) / (1 << 20) as f32 * 1.5;
            if rng.below(2) == 0 { mag } else { -mag }
        })
        .collect();
    let scales = (0..n.div_ceil(64))
        .map(|_| ((rng.below(14) + 1) << 10 | rng.below(1024)) as u16)
        .collect();
    let codes = (0..n).map(|_| rng.below(k as u64) as u8).collect();
    let rows = dims[0];
    let cols = n / rows;
    let overlay = (0..u64::from(rank) * (rows + cols))
        .map(|_| {
            // Random finite 16-bit patterns of either dtype, subnormals and -0 included.
            let sign = (rng.below(2) as u16) << 15;
            if overlay_dtype == 2 {
                let e = rng.below(0xff) as u16; // 0..=254: finite
                sign | (e.clamp(100, 130) << 7) | rng.below(128) as u16
            } else {
                let e = rng.below(31) as u16; // 0..=30: finite
                sign | (e.clamp(0, 18) << 10) | rng.below(1024) as u16
            }
        })
        .collect();
    RecordSpec {
        bits,
        dims: dims.to_vec(),
        minor: 3,
        header_len: 192,
        flags: 0,
        header_ext: Vec::new(),
        grid,
        scales,
        codes,
        overlay_dtype,
        rank,
        overlay,
        sub_block: 0,
        subscales: Vec::new(),
        sub_bits: 0,
    }
}

const BASE_CLAUSES: &[&str] = &[
    "R-1.1", "R-1.2", "R-4.1", "R-4.2", "R-4.6", "R-5.1", "R-5.2", "R-6.1", "R-7.1",
];

fn valid(name: &str, description: &str, extra: &[&'static str], spec: &RecordSpec) -> Vector {
    let mut clauses: Vec<&'static str> = BASE_CLAUSES.to_vec();
    clauses.extend_from_slice(extra);
    clauses.sort_unstable();
    clauses.dedup();
    Vector {
        name: name.to_string(),
        description: description.to_string(),
        clauses: clauses.into_iter().map(String::from).collect(),
        record: assemble(spec),
        expect: spec.expect_valid(),
    }
}

/// All positive vectors.
pub fn positive() -> Vec<Vector> {
    let mut rng = Rng(0x5eed_0003_0000_0001);
    let mut v = Vec::new();
    for bits in 1..=8u8 {
        let s = random_spec(&mut rng, bits, &[5, 100], 0, 0);
        v.push(valid(
            &format!("bits{bits}_5x100"),
            &format!("{bits}-bit codes, 5x100 matrix: 8 blocks spanning rows, partial last block of 52"),
            &["R-4.8", "R-4.13", "R-4.14", "R-6.2", "R-5.9", "R-7.5", "R-7.6"],
            &s,
        ));
    }
    let shapes: &[(&str, &[u64], u8)] = &[
        ("n1", &[1], 3),
        ("n63", &[63], 5),
        ("n64", &[64], 7),
        ("n65", &[65], 4),
        ("n4097", &[4097], 6),
        ("shape_3d_3x5x7", &[3, 5, 7], 2),
        ("shape_4d_2x3x4x11", &[2, 3, 4, 11], 8),
        ("shape_8d", &[1, 2, 1, 3, 1, 2, 1, 5], 1),
    ];
    for (name, dims, bits) in shapes {
        let s = random_spec(&mut rng, *bits, dims, 0, 0);
        v.push(valid(
            name,
            &format!("shape {dims:?} at {bits} bits (rank {}), row-major blocks", dims.len()),
            &["R-4.9", "R-4.13", "R-4.14", "R-6.2", "R-5.9"],
            &s,
        ));
    }
    // Zero scales and the sign of zero.
    let mut s = random_spec(&mut rng, 2, &[2, 64], 0, 0);
    s.grid = vec![-1.0, -0.0, 0.0, 0.75];
    s.scales = vec![0x0000, 0x3c00];
    s.codes = (0..128).map(|i| (i % 4) as u8).collect();
    v.push(valid(
        "zero_scale_sign_of_zero",
        "block 0 has scale +0: +0 x -1 = -0, +0 x -0 = -0, +0 x +0 = +0; block 1 has scale 1.0 with grid +-0",
        &["R-7.2", "R-7.3"],
        &s,
    ));
    // Subnormal binary16 scales.
    let mut s = random_spec(&mut rng, 4, &[16, 64], 0, 0);
    s.scales = vec![
        0x0001, 0x0002, 0x0003, 0x0155, 0x01ff, 0x0200, 0x02aa, 0x03fe, 0x03ff, 0x0400, 0x0401, 0x7bff, 0x3c00, 0x0000,
        0x0010, 0x0100,
    ];
    v.push(valid(
        "subnormal_scales",
        "binary16 subnormal scales (2^-24 .. 1023*2^-24) become exact normal binary32 values",
        &["R-7.2", "R-7.4", "R-7.5"],
        &s,
    ));
    // Grid values at the edges of the allowed range, with extreme scales.
    let mut s = random_spec(&mut rng, 3, &[3, 64], 0, 0);
    let p64 = 2f32.powi(64);
    let m64 = 2f32.powi(-64);
    s.grid = vec![
        m64,
        -m64,
        p64,
        -p64,
        1.0,
        -0.0,
        m64 * 1.5,
        -f32::from_bits(p64.to_bits() - 1),
    ];
    s.scales = vec![0x7bff, 0x0001, 0x3c00];
    s.codes = (0..192).map(|i| (i % 8) as u8).collect();
    v.push(valid(
        "grid_range_edges",
        "grid values +-2^-64, +-2^64 and neighbours with scales 65504 and 2^-24: every product exact-zero or normal",
        &["R-7.2", "R-7.3", "R-7.4"],
        &s,
    ));
    let mut s = random_spec(&mut rng, 5, &[7, 77], 0, 0);
    s.grid[3] = s.grid[9];
    s.grid[0] = 1.25;
    s.grid[31] = -0.001;
    v.push(valid(
        "grid_unsorted_asymmetric",
        "5-bit grid, unsorted, asymmetric, with a duplicated value",
        &["R-7.3", "R-4.8"],
        &s,
    ));
    for (rank, dtype, dims) in [
        (1u32, 1u8, [48u64, 80u64]),
        (1, 2, [48, 80]),
        (32, 1, [40, 70]),
        (32, 2, [40, 70]),
    ] {
        let s = random_spec(&mut rng, 4, &dims, dtype, rank);
        let dt = if dtype == 1 { "f16" } else { "bf16" };
        v.push(valid(
            &format!("overlay_r{rank}_{dt}"),
            &format!(
                "rank-{rank} overlay in {dt} on a {}x{} matrix; factors include subnormals and -0",
                dims[0], dims[1]
            ),
            &["R-4.11", "R-8.1", "R-8.2", "R-8.3", "R-8.4", "R-8.5", "R-5.9", "R-7.5"],
            &s,
        ));
    }
    let s = random_spec(&mut rng, 2, &[3, 64], 2, 3);
    v.push(valid(
        "overlay_rank_equals_rows",
        "overlay rank equal to min(rows, cols) = 3, bf16, 3-D tensor flattened to 3 x 64",
        &["R-8.1", "R-8.2", "R-4.13"],
        &s,
    ));
    // Forward compatibility: a later minor version with an extended header and ignorable flags.
    let mut s = random_spec(&mut rng, 4, &[2, 96], 0, 0);
    s.minor = 4;
    s.header_len = 200;
    s.flags = 0x8001_0000;
    s.header_ext = (0..8).map(|i| 0xa0 + i as u8).collect();
    v.push(valid(
        "minor4_extended_header",
        "version 0.4 record: header_len 200 with 8 unknown header bytes (ignored), ignorable flags 16 and 31 set",
        &["R-4.4", "R-10.1", "R-10.2", "R-10.3", "R-5.2"],
        &s,
    ));
    // The worked example of and the minimal record of appendix B.
    let mut s = random_spec(&mut rng, 3, &[8], 0, 0);
    s.codes = vec![5, 3, 7, 0, 1, 6, 2, 4];
    v.push(valid(
        "spec_worked_example",
        "the bit-packing example of R-6.3",
        &["R-6.2", "R-6.3", "R-5.9"],
        &s,
    ));
    let mut s = random_spec(&mut rng, 2, &[3], 0, 0);
    s.grid = vec![-1.0, -0.5, 0.5, 1.0];
    s.scales = vec![0x4000];
    s.codes = vec![0, 2, 3];
    v.push(valid(
        "spec_appendix_b",
        "the minimal record of appendix B",
        &["R-5.2", "R-4.5"],
        &s,
    ));
    let mut s = random_spec(&mut rng, 8, &[4, 64], 0, 0);
    s.codes = (0..256).map(|i| i as u8).collect();
    v.push(valid(
        "all_codes_b8",
        "every 8-bit code 0..=255 once",
        &["R-4.8", "R-6.2"],
        &s,
    ));
    // The accumulator of starts at +0.0: every product is -0 (U[i,0] = -0 times a positive
    // V[0,j], U[i,1] = +0 times a negative V[1,j]), so acc = +0 + -0 + -0 = +0 and a W_base of -0
    // merges to +0. An accumulator started at -0 or at the first product, or W_base += each product,
    // would keep -0. (The vectors with r = 0 check that W = W_base exactly, -0 kept.)
    let mut s = random_spec(&mut rng, 2, &[4, 64], 1, 2);
    s.grid = vec![-0.0, 0.0, 0.5, -1.0];
    s.scales = vec![0x3c00, 0x0000, 0x3c00, 0x4000];
    s.codes = (0..256).map(|i| ((i + i / 7) % 4) as u8).collect();
    let u = (0..8).map(|i| if i % 2 == 0 { 0x8000u16 } else { 0x0000 });
    let v0 = (0..64).map(|j| 0x3c00u16 + 17 * j as u16);
    let v1 = (0..64).map(|j| 0xb800u16 + 13 * j as u16);
    s.overlay = u.chain(v0).chain(v1).collect();
    let x = valid(
        "overlay_merge_acc_starts_at_plus_zero",
        "rank-2 f16 overlay whose products are all -0: acc = +0.0 + (-0) + (-0) = +0.0, so every merged value \
         equals W_base except that W_base -0 (grid -0, and scale +0 times grid -1) becomes +0 (R-8.5)",
        &["R-8.1", "R-8.2", "R-8.3", "R-8.5", "R-7.2"],
        &s,
    );
    if let Expect::Valid { w_base, merged, .. } = &x.expect {
        let flipped = w_base
            .iter()
            .zip(merged)
            .filter(|(w, m)| w.to_bits() == 0x8000_0000 && m.to_bits() == 0)
            .count();
        assert!(flipped >= 64, "the vector must depend on the +0.0 start of acc");
        assert!(w_base.iter().zip(merged).all(|(w, m)| *w == *m));
    }
    v.push(x);
    // Ignorable flags in a v0.3 record: every one of bits 16..=31 set. Encoders must not
    // write them, decoders must ignore them: the record decodes exactly like the same bytes with
    // flags 0 (and a CRC to match).
    let mut s = random_spec(&mut rng, 3, &[3, 40], 1, 1);
    s.flags = 0xffff_0000;
    v.push(valid(
        "flags_ignorable_minor3",
        "version 0.3 record with all ignorable flag bits 16..=31 set and a rank-1 f16 overlay: decodes like the \
         same record with flags 0",
        &["R-10.3", "R-10.2", "R-8.5"],
        &s,
    ));
    v.extend(v04::positive());
    v
}

/// Named offsets in a record built by [`assemble`].
struct Base {
    bytes: Vec<u8>,
    sections: [(u64, u64); 4],
    /// The sub-scales section (two-level scales only; `(0, 0)` otherwise).
    sub: (u64, u64),
}

fn base(spec: RecordSpec) -> Base {
    let (sections, sub, _) = canonical_sections_v04(
        spec.bits,
        &spec.dims,
        spec.rank,
        spec.header_len,
        spec.sub_block,
        spec.sub_bits,
    );
    Base {
        bytes: assemble(&spec),
        sections,
        sub,
    }
}

fn set_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn set_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn set_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// All negative vectors.
pub fn negative() -> Vec<Vector> {
    let mut rng = Rng(0x5eed_0003_0000_0002);
    // Small 1-D record (appendix B shape), a 3x50 matrix with a partial last block, overlay records.
    let a = base(random_spec(&mut rng, 2, &[3], 0, 0));
    let m = base(random_spec(&mut rng, 3, &[3, 50], 0, 0));
    let o = base(random_spec(&mut rng, 2, &[4, 70], 1, 2));
    let ob = base(random_spec(&mut rng, 2, &[4, 70], 2, 2));
    let mut v = Vec::new();
    let mut add = |name: &str, desc: &str, extra: &[&'static str], bytes: Vec<u8>, error: ErrorKind, offset: u64| {
        let mut clauses = vec![error.clause(), "R-9.1", "R-9.3", "R-1.4"];
        clauses.extend_from_slice(extra);
        clauses.sort_unstable();
        clauses.dedup();
        v.push(Vector {
            name: name.to_string(),
            description: desc.to_string(),
            clauses: clauses.into_iter().map(String::from).collect(),
            record: bytes,
            expect: Expect::Invalid { error, offset },
        });
    };
    // Mutates a copy of a base record, optionally re-computing its CRC.
    let mutate = |b: &Base, crc: bool, f: &dyn Fn(&mut Vec<u8>)| {
        let mut x = b.bytes.clone();
        f(&mut x);
        if crc && x.len() >= 28 {
            fix_crc(&mut x);
        }
        x
    };
    use ErrorKind as E;

    // --- truncation
    let cut = |b: &Base, len: usize| b.bytes[..len].to_vec();
    add(
        "truncated_empty",
        "empty input",
        &["R-11.3"],
        Vec::new(),
        E::Truncated,
        0,
    );
    add(
        "truncated_in_magic",
        "5 bytes of a valid record",
        &[],
        cut(&m, 5),
        E::Truncated,
        5,
    );
    add(
        "truncated_garbage_5_bytes",
        "5 bytes that are not a magic: length is checked first",
        &[],
        b"hello".to_vec(),
        E::Truncated,
        5,
    );
    add(
        "truncated_before_lengths",
        "20 bytes: record_len incomplete",
        &[],
        cut(&m, 20),
        E::Truncated,
        20,
    );
    add(
        "truncated_in_header",
        "100 bytes of the header",
        &["R-11.3"],
        cut(&m, 100),
        E::Truncated,
        100,
    );
    let sec = |b: &Base, k: usize| b.sections[k].0 as usize;
    for (name, b, k, plus) in [
        ("truncated_in_grid", &m, 0usize, 4usize),
        ("truncated_in_scales", &m, 1, 1),
        ("truncated_in_codes", &m, 2, 10),
        ("truncated_in_overlay", &o, 3, 3),
    ] {
        let len = sec(b, k) + plus;
        add(
            name,
            "record cut inside a section",
            &["R-11.3"],
            cut(b, len),
            E::Truncated,
            len as u64,
        );
    }
    let len = m.bytes.len() - 1;
    add(
        "truncated_last_byte",
        "record missing its last byte",
        &[],
        cut(&m, len),
        E::Truncated,
        len as u64,
    );
    let huge = mutate(&m, false, &|x| set_u64(x, 16, u64::MAX));
    add(
        "truncated_record_len_huge",
        "record_len = 2^64-1: never trusted, the buffer is too short",
        &["R-11.3", "R-4.5"],
        huge.clone(),
        E::Truncated,
        huge.len() as u64,
    );

    // --- magic and version
    let mut add2 = |name: &str,
                    desc: &str,
                    extra: &[&'static str],
                    b: &Base,
                    crc: bool,
                    f: &dyn Fn(&mut Vec<u8>),
                    e: ErrorKind,
                    off: u64| {
        let bytes = mutate(b, crc, f);
        add(name, desc, extra, bytes, e, off);
    };
    add2(
        "bad_magic_first_byte",
        "magic byte 0 cleared",
        &[],
        &m,
        true,
        &|x| x[0] = 0,
        E::BadMagic,
        0,
    );
    add2(
        "bad_magic_newline_translated",
        "CR LF in the magic turned into LF by a text-mode transfer",
        &[],
        &m,
        false,
        &|x| {
            x.remove(4);
        },
        E::BadMagic,
        0,
    );
    add2(
        "bad_magic_safetensors_file",
        "a safetensors file is not a record",
        &[],
        &m,
        false,
        &|x| {
            x.clear();
            x.extend_from_slice(&16u64.to_le_bytes());
            x.extend_from_slice(b"{\"__metadata__\":{}}     ");
        },
        E::BadMagic,
        0,
    );
    add2(
        "unsupported_version_major_1",
        "version 1.3",
        &["R-10.1"],
        &m,
        true,
        &|x| set_u16(x, 8, 1),
        E::UnsupportedVersion,
        8,
    );
    add2(
        "unsupported_version_major_ffff",
        "version 65535.3",
        &["R-10.1"],
        &m,
        true,
        &|x| set_u16(x, 8, 0xffff),
        E::UnsupportedVersion,
        8,
    );
    add2(
        "unsupported_version_minor_2",
        "version 0.2",
        &["R-10.1"],
        &m,
        true,
        &|x| set_u16(x, 10, 2),
        E::UnsupportedVersion,
        10,
    );
    add2(
        "bad_header_length_minor3_256",
        "v0.3 with header_len 256",
        &[],
        &m,
        true,
        &|x| set_u32(x, 12, 256),
        E::BadHeaderLength,
        12,
    );
    add2(
        "bad_header_length_minor4_191",
        "v0.4 with header_len 191 < 192",
        &["R-10.2"],
        &m,
        true,
        &|x| {
            set_u16(x, 10, 4);
            set_u32(x, 12, 191);
        },
        E::BadHeaderLength,
        12,
    );
    add2(
        "bad_header_length_minor4_65537",
        "v0.4 with header_len above 65536",
        &["R-10.2", "R-11.1"],
        &m,
        true,
        &|x| {
            set_u16(x, 10, 4);
            set_u32(x, 12, 65537);
        },
        E::BadHeaderLength,
        12,
    );
    add2(
        "bad_record_length_below_header",
        "record_len 191 < header_len",
        &[],
        &m,
        true,
        &|x| set_u64(x, 16, 191),
        E::BadRecordLength,
        16,
    );
    add2(
        "bad_record_length_trailing_bytes",
        "record_len covers 64 extra zero bytes after the last section",
        &["R-4.3"],
        &m,
        true,
        &|x| {
            let l = x.len() as u64;
            x.extend_from_slice(&[0u8; 64]);
            set_u64(x, 16, l + 64);
        },
        E::BadRecordLength,
        16,
    );

    // --- CRC
    for (name, b, at) in [
        ("crc_mismatch_header", &m, 33usize),
        ("crc_mismatch_grid", &m, m.sections[0].0 as usize + 1),
        ("crc_mismatch_scales", &m, m.sections[1].0 as usize),
        ("crc_mismatch_codes", &m, m.sections[2].0 as usize + 5),
        ("crc_mismatch_overlay", &o, o.sections[3].0 as usize + 7),
        ("crc_mismatch_crc_field", &m, 25),
    ] {
        add2(
            name,
            "one bit flipped, CRC not updated",
            &["R-4.7"],
            b,
            false,
            &|x| x[at] ^= 0x10,
            E::CrcMismatch,
            24,
        );
    }
    add2(
        "order_crc_before_fields",
        "bits = 9 without CRC update: the CRC check comes first",
        &[],
        &m,
        false,
        &|x| x[32] = 9,
        E::CrcMismatch,
        24,
    );

    // --- reserved, flags, scalar fields
    add2(
        "reserved_nonzero_reserved0",
        "reserved0 byte 45 set",
        &[],
        &m,
        true,
        &|x| x[45] = 1,
        E::ReservedNonZero,
        45,
    );
    add2(
        "reserved_nonzero_reserved1",
        "reserved1 byte 191 set",
        &[],
        &m,
        true,
        &|x| x[191] = 0x80,
        E::ReservedNonZero,
        191,
    );
    add2(
        "unsupported_flags_bit0",
        "must-understand flag 0",
        &["R-10.2"],
        &m,
        true,
        &|x| set_u32(x, 28, 1),
        E::UnsupportedFlags,
        28,
    );
    add2(
        "unsupported_flags_bit15",
        "must-understand flag 15 (ignorable bit 16 also set)",
        &["R-10.2"],
        &m,
        true,
        &|x| set_u32(x, 28, 0x0001_8000),
        E::UnsupportedFlags,
        28,
    );
    add2("bad_bits_0", "bits = 0", &[], &m, true, &|x| x[32] = 0, E::BadBits, 32);
    add2("bad_bits_9", "bits = 9", &[], &m, true, &|x| x[32] = 9, E::BadBits, 32);
    add2(
        "order_bits_before_grid",
        "bits = 9 and a NaN grid value: bits is checked first",
        &[],
        &m,
        true,
        &|x| {
            x[32] = 9;
            let g = m.sections[0].0 as usize;
            x[g..g + 4].copy_from_slice(&f32::NAN.to_bits().to_le_bytes());
        },
        E::BadBits,
        32,
    );
    add2("bad_ndim_0", "ndim = 0", &[], &m, true, &|x| x[33] = 0, E::BadNdim, 33);
    add2(
        "bad_ndim_9",
        "ndim = 9",
        &["R-11.1"],
        &m,
        true,
        &|x| x[33] = 9,
        E::BadNdim,
        33,
    );
    add2(
        "bad_scale_dtype_0",
        "scale_dtype 0",
        &[],
        &m,
        true,
        &|x| x[34] = 0,
        E::BadScaleDtype,
        34,
    );
    add2(
        "bad_scale_dtype_2",
        "scale_dtype 2 (bf16 scales are not defined)",
        &[],
        &m,
        true,
        &|x| x[34] = 2,
        E::BadScaleDtype,
        34,
    );
    add2(
        "bad_overlay_dtype_3",
        "overlay_dtype 3",
        &[],
        &m,
        true,
        &|x| x[35] = 3,
        E::BadOverlayDtype,
        35,
    );
    add2(
        "bad_block_size_0",
        "block_size 0",
        &[],
        &m,
        true,
        &|x| set_u32(x, 36, 0),
        E::BadBlockSize,
        36,
    );
    add2(
        "bad_block_size_32",
        "block_size 32",
        &[],
        &m,
        true,
        &|x| set_u32(x, 36, 32),
        E::BadBlockSize,
        36,
    );
    add2(
        "bad_block_size_128",
        "block_size 128",
        &[],
        &m,
        true,
        &|x| set_u32(x, 36, 128),
        E::BadBlockSize,
        36,
    );

    // --- shape
    add2(
        "bad_dim_zero",
        "dims[1] = 0",
        &[],
        &m,
        true,
        &|x| set_u64(x, 56, 0),
        E::BadDim,
        56,
    );
    add2(
        "bad_dim_unused_nonzero",
        "dims[5] = 1 with ndim 2",
        &[],
        &m,
        true,
        &|x| set_u64(x, 88, 1),
        E::BadDim,
        88,
    );
    add2(
        "shape_overflow",
        "dims [2^32, 2^32]: the product overflows u64",
        &["R-11.3"],
        &m,
        true,
        &|x| {
            set_u64(x, 48, 1 << 32);
            set_u64(x, 56, 1 << 32);
        },
        E::ShapeOverflow,
        48,
    );
    add2(
        "limit_exceeded_elements",
        "dims [2^25, 2^24]: 2^49 elements > 2^48",
        &[],
        &m,
        true,
        &|x| {
            set_u64(x, 48, 1 << 25);
            set_u64(x, 56, 1 << 24);
        },
        E::LimitExceeded,
        48,
    );
    add2(
        "limit_exceeded_overlay_rank",
        "overlay_rank 4097",
        &["R-8.2"],
        &o,
        true,
        &|x| set_u32(x, 40, 4097),
        E::LimitExceeded,
        40,
    );
    add2(
        "bad_overlay_rank_without_dtype",
        "rank 2 with overlay_dtype 0",
        &[],
        &o,
        true,
        &|x| x[35] = 0,
        E::BadOverlayRank,
        40,
    );
    add2(
        "bad_overlay_rank_dtype_without_rank",
        "overlay_dtype 1 with rank 0",
        &[],
        &m,
        true,
        &|x| x[35] = 1,
        E::BadOverlayRank,
        40,
    );
    add2(
        "bad_overlay_rank_1d",
        "rank 1 overlay on a 1-D tensor",
        &[],
        &a,
        true,
        &|x| {
            x[35] = 1;
            set_u32(x, 40, 1);
        },
        E::BadOverlayRank,
        40,
    );
    add2(
        "bad_overlay_rank_above_rows",
        "rank 5 on a 4 x 70 matrix",
        &[],
        &o,
        true,
        &|x| set_u32(x, 40, 5),
        E::BadOverlayRank,
        40,
    );

    // --- section table (R-5.x)
    let st = |k: usize| 112 + 16 * k;
    add2(
        "section_length_grid",
        "grid length 32 where 2-bit grids take 16",
        &["R-5.1"],
        &a,
        true,
        &|x| set_u64(x, st(0) + 8, 32),
        E::SectionLength,
        120,
    );
    add2(
        "section_length_codes",
        "codes length one block short",
        &["R-5.1"],
        &m,
        true,
        &|x| {
            let l = m.sections[2].1;
            set_u64(x, st(2) + 8, l - 24);
        },
        E::SectionLength,
        152,
    );
    add2(
        "section_length_overlay",
        "overlay length 0 although rank is 2",
        &["R-5.1"],
        &o,
        true,
        &|x| set_u64(x, st(3) + 8, 0),
        E::SectionLength,
        168,
    );
    add2(
        "section_overflow_grid",
        "grid offset 2^64-16: offset + length overflows",
        &["R-11.3"],
        &a,
        true,
        &|x| set_u64(x, st(0), u64::MAX - 15),
        E::SectionOverflow,
        112,
    );
    add2(
        "section_misaligned_scales",
        "scales offset + 2",
        &[],
        &m,
        true,
        &|x| {
            let off = m.sections[1].0;
            set_u64(x, st(1), off + 2);
        },
        E::SectionMisaligned,
        128,
    );
    add2(
        "section_overlap_scales",
        "scales at the grid's offset",
        &[],
        &m,
        true,
        &|x| {
            let off = m.sections[0].0;
            set_u64(x, st(1), off);
        },
        E::SectionOverlap,
        128,
    );
    add2(
        "section_overlap_grid_in_header",
        "grid at offset 128, inside the header",
        &[],
        &m,
        true,
        &|x| set_u64(x, st(0), 128),
        E::SectionOverlap,
        112,
    );
    add2(
        "section_gap_codes",
        "codes 64 bytes after their canonical offset",
        &[],
        &m,
        true,
        &|x| {
            let off = m.sections[2].0;
            set_u64(x, st(2), off + 64);
        },
        E::SectionGap,
        144,
    );
    add2(
        "section_out_of_bounds_codes",
        "record_len ends inside the codes section",
        &["R-4.5"],
        &m,
        true,
        &|x| {
            let end = (m.sections[2].0 + m.sections[2].1 - 1) as usize;
            x.truncate(end);
            set_u64(x, 16, end as u64);
        },
        E::SectionOutOfBounds,
        144,
    );

    // --- padding
    let grid_end = (m.sections[0].0 + m.sections[0].1) as usize;
    add2(
        "nonzero_padding_after_grid",
        "a padding byte between grid and scales",
        &[],
        &m,
        true,
        &|x| x[grid_end] = 1,
        E::NonZeroPadding,
        grid_end as u64,
    );
    let codes_end = (m.sections[2].0 + m.sections[2].1) as usize;
    add2(
        "nonzero_padding_after_codes",
        "a padding byte between codes and the empty overlay section",
        &[],
        &m,
        true,
        &|x| x[codes_end + 3] = 0x40,
        E::NonZeroPadding,
        codes_end as u64 + 3,
    );
    let overlay_end = (o.sections[3].0 + o.sections[3].1) as usize;
    assert!(overlay_end % 64 != 0, "the overlay base record must end unaligned");
    add2(
        "nonzero_padding_after_overlay",
        "a byte of the trailing padding after the overlay section",
        &["R-4.5"],
        &o,
        true,
        &|x| x[overlay_end + 1] = 2,
        E::NonZeroPadding,
        overlay_end as u64 + 1,
    );
    // 150 elements x 3 bits = 450 bits: byte 56 holds bits 448..456, of which bits 450.. are unused.
    let c0 = m.sections[2].0 as usize;
    add2(
        "nonzero_padding_code_bits_partial_byte",
        "an unused code bit in the byte holding the last code",
        &["R-6.2"],
        &m,
        true,
        &|x| x[c0 + 56] |= 0x80,
        E::NonZeroPadding,
        (c0 + 56) as u64,
    );
    add2(
        "nonzero_padding_code_bits_whole_byte",
        "an unused code byte of the partial last block",
        &["R-6.2"],
        &m,
        true,
        &|x| x[c0 + 70] = 1,
        E::NonZeroPadding,
        (c0 + 70) as u64,
    );

    // --- values
    let g1 = m.sections[0].0 as usize + 4;
    for (name, desc, val) in [
        ("bad_grid_value_nan", "grid[1] = NaN", f32::NAN.to_bits()),
        ("bad_grid_value_pos_inf", "grid[1] = +inf", f32::INFINITY.to_bits()),
        ("bad_grid_value_neg_inf", "grid[1] = -inf", f32::NEG_INFINITY.to_bits()),
        ("bad_grid_value_too_small", "grid[1] = 2^-65", 2f32.powi(-65).to_bits()),
        (
            "bad_grid_value_too_large",
            "grid[1] = -(2^64 + 1 ulp)",
            (-(2f32.powi(64))).to_bits() + 1,
        ),
        (
            "bad_grid_value_f32_subnormal",
            "grid[1] = smallest binary32 subnormal",
            1,
        ),
    ] {
        add2(
            name,
            desc,
            &["R-7.4"],
            &m,
            true,
            &|x| x[g1..g1 + 4].copy_from_slice(&val.to_le_bytes()),
            E::BadGridValue,
            g1 as u64,
        );
    }
    let s2 = m.sections[1].0 as usize + 4;
    for (name, desc, val) in [
        ("bad_scale_value_negative_zero", "scale[2] = -0", 0x8000u16),
        ("bad_scale_value_negative", "scale[2] = -1", 0xbc00),
        ("bad_scale_value_inf", "scale[2] = +inf", 0x7c00),
        ("bad_scale_value_nan", "scale[2] = NaN", 0x7e00),
    ] {
        add2(
            name,
            desc,
            &[],
            &m,
            true,
            &|x| set_u16(x, s2, val),
            E::BadScaleValue,
            s2 as u64,
        );
    }
    let u1 = o.sections[3].0 as usize + 2;
    add2(
        "bad_overlay_value_f16_inf",
        "U[0,1] = +inf (f16)",
        &["R-8.3"],
        &o,
        true,
        &|x| set_u16(x, u1, 0x7c00),
        E::BadOverlayValue,
        u1 as u64,
    );
    let vl = (ob.sections[3].0 + ob.sections[3].1) as usize - 2;
    add2(
        "bad_overlay_value_bf16_nan",
        "last V entry = NaN (bf16)",
        &["R-8.3"],
        &ob,
        true,
        &|x| set_u16(x, vl, 0xffc1),
        E::BadOverlayValue,
        vl as u64,
    );

    // --- the order of: two errors at once, from neighbouring steps (or from neighbouring
    // checks of one step, or twice in one step); the earlier one is reported. Together they tell
    // every swap of neighbouring steps apart from the spec's order (tests/validation_order.rs).
    let (mg, ms, mc) = (m.sections[0], m.sections[1], m.sections[2]);
    assert_eq!([mg, ms, mc, m.sections[3]], [(192, 32), (256, 6), (320, 72), (448, 0)]);
    assert_eq!(m.bytes.len(), 448);
    assert_eq!(o.sections, [(192, 16), (256, 10), (320, 80), (448, 296)]);
    assert_eq!(o.bytes.len(), 768);
    add2(
        "order_01_before_02",
        "7 bytes that are not a magic: truncated (step 1) before bad_magic (step 2)",
        &["R-4.2"],
        &m,
        false,
        &|x| *x = vec![0xff; 7],
        E::Truncated,
        7,
    );
    add2(
        "order_02_before_03",
        "12 bytes with a wrong magic: bad_magic (step 2) before truncated (step 3)",
        &["R-9.2"],
        &m,
        false,
        &|x| {
            x.truncate(12);
            x[0] = 0;
        },
        E::BadMagic,
        0,
    );
    add2(
        "order_03_before_04",
        "20 bytes with version 1.3: truncated (step 3) before unsupported_version (step 4)",
        &["R-10.1"],
        &m,
        false,
        &|x| {
            x.truncate(20);
            set_u16(x, 8, 1);
        },
        E::Truncated,
        20,
    );
    add2(
        "order_04_before_05",
        "version 1.3 with header_len 256: unsupported_version (step 4) before bad_header_length (step 5)",
        &["R-10.1", "R-4.4"],
        &m,
        true,
        &|x| {
            set_u16(x, 8, 1);
            set_u32(x, 12, 256);
        },
        E::UnsupportedVersion,
        8,
    );
    add2(
        "order_04_major_before_minor",
        "version 1.2: version_major (offset 8) is checked before version_minor (offset 10)",
        &["R-10.1"],
        &m,
        true,
        &|x| {
            set_u16(x, 8, 1);
            set_u16(x, 10, 2);
        },
        E::UnsupportedVersion,
        8,
    );
    add2(
        "order_05_before_06",
        "v0.3 header_len 256 and record_len 200 < header_len: bad_header_length (step 5) before \
         bad_record_length (step 6)",
        &["R-4.5"],
        &m,
        false,
        &|x| {
            set_u32(x, 12, 256);
            set_u64(x, 16, 200);
        },
        E::BadHeaderLength,
        12,
    );
    add2(
        "order_06_before_07",
        "30 bytes with record_len 100 < header_len 192: bad_record_length (step 6) before truncated (step 7)",
        &["R-4.5", "R-9.2"],
        &m,
        false,
        &|x| {
            x.truncate(30);
            set_u64(x, 16, 100);
        },
        E::BadRecordLength,
        16,
    );
    add2(
        "order_07_before_08",
        "the record without its last byte and with a wrong CRC: truncated (step 7) before crc_mismatch (step 8)",
        &["R-4.6", "R-9.2"],
        &m,
        false,
        &|x| {
            x.truncate(447);
            x[25] ^= 0x10;
        },
        E::Truncated,
        447,
    );
    add2(
        "order_08_before_09",
        "reserved0 byte 45 set, CRC not updated: crc_mismatch (step 8) before reserved_nonzero (step 9)",
        &["R-4.15"],
        &m,
        false,
        &|x| x[45] = 1,
        E::CrcMismatch,
        24,
    );
    add2(
        "order_09_before_10",
        "reserved1 bytes 178 and 190 and must-understand flag 0 set: reserved_nonzero (step 9) at the first \
         non-zero byte before unsupported_flags (step 10)",
        &["R-10.3"],
        &m,
        true,
        &|x| {
            x[178] = 1;
            x[190] = 2;
            set_u32(x, 28, 1);
        },
        E::ReservedNonZero,
        178,
    );
    add2(
        "order_09_reserved0_before_reserved1",
        "reserved0 bytes 45 and 46 and reserved1 byte 180 set: reserved0 first, in increasing offset order",
        &[],
        &m,
        true,
        &|x| {
            x[45] = 1;
            x[46] = 1;
            x[180] = 1;
        },
        E::ReservedNonZero,
        45,
    );
    add2(
        "order_10_before_11",
        "must-understand flag 0 and bits = 9: unsupported_flags (step 10) before bad_bits (step 11)",
        &["R-10.3", "R-4.8"],
        &m,
        true,
        &|x| {
            set_u32(x, 28, 1);
            x[32] = 9;
        },
        E::UnsupportedFlags,
        28,
    );
    add2(
        "order_11_before_12",
        "bits = 0 and ndim = 0: bad_bits (step 11) before bad_ndim (step 12)",
        &["R-4.9"],
        &m,
        true,
        &|x| {
            x[32] = 0;
            x[33] = 0;
        },
        E::BadBits,
        32,
    );
    add2(
        "order_12_before_13",
        "ndim = 9 and scale_dtype 0: bad_ndim (step 12) before bad_scale_dtype (step 13)",
        &["R-4.10"],
        &m,
        true,
        &|x| {
            x[33] = 9;
            x[34] = 0;
        },
        E::BadNdim,
        33,
    );
    add2(
        "order_13_before_14",
        "scale_dtype 2 and overlay_dtype 3: bad_scale_dtype (step 13) before bad_overlay_dtype (step 14)",
        &["R-4.11"],
        &m,
        true,
        &|x| {
            x[34] = 2;
            x[35] = 3;
        },
        E::BadScaleDtype,
        34,
    );
    add2(
        "order_14_before_15",
        "overlay_dtype 3 and block_size 32: bad_overlay_dtype (step 14) before bad_block_size (step 15)",
        &["R-4.12"],
        &m,
        true,
        &|x| {
            x[35] = 3;
            set_u32(x, 36, 32);
        },
        E::BadOverlayDtype,
        35,
    );
    add2(
        "order_15_before_16",
        "block_size 0 and dims[1] = 0: bad_block_size (step 15) before bad_dim (step 16)",
        &["R-4.13"],
        &m,
        true,
        &|x| {
            set_u32(x, 36, 0);
            set_u64(x, 56, 0);
        },
        E::BadBlockSize,
        36,
    );
    add2(
        "order_16_before_17",
        "dims[5] = 1 with ndim 2 and overlay_rank 4097: bad_dim (step 16) before limit_exceeded (step 17)",
        &["R-4.13", "R-11.1"],
        &m,
        true,
        &|x| {
            set_u64(x, 88, 1);
            set_u32(x, 40, 4097);
        },
        E::BadDim,
        88,
    );
    add2(
        "order_16_dim_before_overflow",
        "dims [2^32, 2^32] (product overflows) with unused dims[3] and dims[6] = 1: bad_dim of the first \
         offending entry, before shape_overflow",
        &["R-4.13", "R-11.2"],
        &m,
        true,
        &|x| {
            set_u64(x, 48, 1 << 32);
            set_u64(x, 56, 1 << 32);
            set_u64(x, 72, 1);
            set_u64(x, 96, 1);
        },
        E::BadDim,
        72,
    );
    add2(
        "order_17_before_18",
        "rank 5 on a 4 x 70 matrix and a wrong grid length: bad_overlay_rank (step 17) before section_length \
         (step 18)",
        &["R-8.2", "R-5.3"],
        &o,
        true,
        &|x| {
            set_u32(x, 40, 5);
            set_u64(x, st(0) + 8, 32);
        },
        E::BadOverlayRank,
        40,
    );
    add2(
        "order_18_before_19",
        "the empty overlay section 64 bytes late, so the record would end at 512: section_gap (step 18) before \
         bad_record_length (step 19)",
        &["R-5.7", "R-4.5"],
        &m,
        true,
        &|x| set_u64(x, st(3), 512),
        E::SectionGap,
        160,
    );
    // Step 18 inside: for each section, each of its six checks before the next, and the last check of
    // a section before the first of the next section.
    let names = ["grid", "scales", "codes", "overlay"];
    for k in 0..4 {
        let b = if k < 3 { &m } else { &o };
        let (can, len) = b.sections[k];
        let record_len = b.bytes.len() as u64;
        let prev_end = if k == 0 {
            192
        } else {
            b.sections[k - 1].0 + b.sections[k - 1].1
        };
        let at = st(k) as u64;
        let name = names[k];
        let set = |off: u64, slen: u64| {
            move |x: &mut Vec<u8>| {
                set_u64(x, st(k), off);
                set_u64(x, st(k) + 8, slen);
            }
        };
        add2(
            &format!("order_18_{name}_length_before_overflow"),
            &format!("{name}: offset 2^64-64 and length 2^63: section_length (18a) before section_overflow (18b)"),
            &["R-5.3", "R-5.4"],
            b,
            true,
            &set(u64::MAX - 63, 1 << 63),
            E::SectionLength,
            at + 8,
        );
        add2(
            &format!("order_18_{name}_overflow_before_misaligned"),
            &format!("{name}: offset 2^64-2: section_overflow (18b) before section_misaligned (18c)"),
            &["R-5.4", "R-5.5"],
            b,
            true,
            &set(u64::MAX - 1, len),
            E::SectionOverflow,
            at,
        );
        let off = prev_end - 2;
        assert!(off % 64 != 0);
        add2(
            &format!("order_18_{name}_misaligned_before_overlap"),
            &format!(
                "{name}: offset {off}, unaligned and before the end of what precedes it ({prev_end}): \
                      section_misaligned (18c) before section_overlap (18d)"
            ),
            &["R-5.5", "R-5.6"],
            b,
            true,
            &set(off, len),
            E::SectionMisaligned,
            at,
        );
        let off = (prev_end - 1) / 64 * 64;
        add2(
            &format!("order_18_{name}_overlap_before_gap"),
            &format!(
                "{name}: offset {off} < {prev_end}, so not canonical either: section_overlap (18d) before \
                      section_gap (18e)"
            ),
            &["R-5.6", "R-5.7"],
            b,
            true,
            &set(off, len),
            E::SectionOverlap,
            at,
        );
        let off = (record_len - len + 1).div_ceil(64) * 64;
        assert!(off != can && off >= prev_end && off + len > record_len);
        add2(
            &format!("order_18_{name}_gap_before_out_of_bounds"),
            &format!(
                "{name}: offset {off} instead of {can}, ending after record_len {record_len}: section_gap \
                      (18e) before section_out_of_bounds (18f)"
            ),
            &["R-5.7", "R-5.8"],
            b,
            true,
            &set(off, len),
            E::SectionGap,
            at,
        );
        if k < 3 {
            let r = can + len - 1;
            let next = names[k + 1];
            add2(
                &format!("order_18_{name}_out_of_bounds_before_{next}_length"),
                &format!(
                    "record_len {r} ends inside the {name} section and the {next} length is wrong: every \
                          check of section {k} (18f) before those of section {}",
                    k + 1
                ),
                &["R-5.8", "R-5.3", "R-4.5"],
                b,
                true,
                &|x| {
                    x.truncate(r as usize);
                    set_u64(x, 16, r);
                    let l = b.sections[k + 1].1;
                    set_u64(x, st(k + 1) + 8, l + 1);
                },
                E::SectionOutOfBounds,
                at,
            );
        }
    }
    add2(
        "order_19_before_20",
        "record_len covers 64 extra non-zero bytes: bad_record_length (step 19) before nonzero_padding (step 20)",
        &["R-4.5", "R-5.9"],
        &m,
        true,
        &|x| {
            x.extend_from_slice(&[1u8; 64]);
            set_u64(x, 16, 512);
        },
        E::BadRecordLength,
        16,
    );
    add2(
        "order_20_before_21",
        "padding bytes after the grid (224) and after the codes (400) and grid[1] = NaN: nonzero_padding \
         (step 20) at the first of them, before bad_grid_value (step 21)",
        &["R-5.9", "R-7.3"],
        &m,
        true,
        &|x| {
            x[224] = 1;
            x[400] = 1;
            x[196..200].copy_from_slice(&f32::NAN.to_bits().to_le_bytes());
        },
        E::NonZeroPadding,
        224,
    );
    add2(
        "order_21_before_22",
        "grid[1] = NaN, grid[5] = +inf and scale[2] = -1: bad_grid_value (step 21) at grid[1], before \
         bad_scale_value (step 22)",
        &["R-7.3", "R-7.2"],
        &m,
        true,
        &|x| {
            x[196..200].copy_from_slice(&f32::NAN.to_bits().to_le_bytes());
            x[212..216].copy_from_slice(&f32::INFINITY.to_bits().to_le_bytes());
            set_u16(x, 260, 0xbc00);
        },
        E::BadGridValue,
        196,
    );
    add2(
        "order_22_before_23",
        "scale[0] = -1, scale[3] = +inf and U[0,1] = +inf: bad_scale_value (step 22) at scale[0], before \
         bad_overlay_value (step 23)",
        &["R-7.2", "R-8.4"],
        &o,
        true,
        &|x| {
            set_u16(x, 256, 0xbc00);
            set_u16(x, 262, 0x7c00);
            set_u16(x, 450, 0x7c00);
        },
        E::BadScaleValue,
        256,
    );
    add2(
        "order_23_before_24",
        "U[0,1] = +inf, the last V entry = -inf and an unused code bit set: bad_overlay_value (step 23) at \
         U[0,1], before nonzero_padding of the code bits (step 24)",
        &["R-8.4", "R-5.9"],
        &o,
        true,
        &|x| {
            set_u16(x, 450, 0x7c00);
            set_u16(x, 742, 0xfc00);
            x[395] = 1;
        },
        E::BadOverlayValue,
        450,
    );
    add2(
        "order_24_code_bits_in_offset_order",
        "two codes bytes with unused bits set (the byte of the last code, and a later one): the first is reported",
        &["R-5.9", "R-6.2"],
        &m,
        true,
        &|x| {
            x[376] |= 0x80;
            x[390] = 1;
        },
        E::NonZeroPadding,
        376,
    );
    v.push(Vector {
        name: "truncated_every_prefix".into(),
        description: format!(
            "every strict prefix of a valid {}-byte record is rejected as truncated at its length",
            a.bytes.len()
        ),
        clauses: ["R-1.4", "R-9.1", "R-9.2", "R-9.3", "R-11.3", "R-11.4"]
            .map(String::from)
            .to_vec(),
        record: a.bytes.clone(),
        expect: Expect::EveryPrefixTruncated,
    });
    v.extend(v04::negative());
    v
}

/// Every vector, positive first.
pub fn all() -> Vec<Vector> {
    let mut v = positive();
    v.extend(negative());
    v
}
