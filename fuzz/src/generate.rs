//! Structured records: an `arbitrary`-derived description of a record (header fields, section
//! contents, mutations), assembled into bytes so that the fuzzer gets past the magic and the CRC
//! into the deep validation steps and the decode paths.
//!
//! [`RecordSpec::build`] first writes a VALID base record with `uc_format::write_record` (values are
//! mapped into their valid ranges; for a later minor version the header is extended), or, when
//! `two_level` asks for it, a v0.4 record with two-level scales (spec section 13: S = 16 or 32,
//! arbitrary sub-scales) with `uc_format::write_record_with_subscales`, then applies
//! up to four mutations of header fields, section values, padding bytes or raw bytes, recomputes
//! the CRC with `uc_format::finalize_crc` unless `stale_crc` is set, and finally truncates or
//! extends the buffer. [`Built::oracle`] predicts the validation verdict from the bytes that
//! changed, where spec makes it a local matter (see [`predict`]).

use crate::f16_value;
use arbitrary::Arbitrary;
use uc_format::num::grid_value_ok;
use uc_format::{
    Error, ErrorKind, FLAG_SUBSCALES, Layout, OverlayDtype, RecordParams, finalize_crc, write_record_with_subscales,
};

/// Largest element count of a generated base record.
pub const MAX_GEN_ELEMENTS: u64 = 2048;

/// A header field, by its place in the table of.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Field {
    /// One byte of the magic.
    Magic(u8),
    /// `version_major`.
    VersionMajor,
    /// `version_minor`.
    VersionMinor,
    /// `header_len`.
    HeaderLen,
    /// `record_len`.
    RecordLen,
    /// `crc32`.
    Crc,
    /// `flags`.
    Flags,
    /// `bits`.
    Bits,
    /// `ndim`.
    Ndim,
    /// `scale_dtype`.
    ScaleDtype,
    /// `overlay_dtype`.
    OverlayDtype,
    /// `block_size`.
    BlockSize,
    /// `overlay_rank`.
    OverlayRank,
    /// One byte of `reserved0`.
    Reserved0(u8),
    /// `dims[i % 8]`.
    Dim(u8),
    /// `sections[k % 4].offset`.
    SectionOffset(u8),
    /// `sections[k % 4].len`.
    SectionLen(u8),
    /// One byte of `reserved1`.
    Reserved1(u8),
    /// `sections[4].offset` (sub-scales, v0.4 extension; other bytes in a v0.3 record).
    SubOffset,
    /// `sections[4].len`.
    SubLen,
    /// `sub_block`.
    SubBlock,
    /// One byte of `reserved2`.
    Reserved2(u8),
}

impl Field {
    /// Byte offset and width.
    pub fn place(self) -> (usize, usize) {
        match self {
            Field::Magic(i) => (usize::from(i % 8), 1),
            Field::VersionMajor => (8, 2),
            Field::VersionMinor => (10, 2),
            Field::HeaderLen => (12, 4),
            Field::RecordLen => (16, 8),
            Field::Crc => (24, 4),
            Field::Flags => (28, 4),
            Field::Bits => (32, 1),
            Field::Ndim => (33, 1),
            Field::ScaleDtype => (34, 1),
            Field::OverlayDtype => (35, 1),
            Field::BlockSize => (36, 4),
            Field::OverlayRank => (40, 4),
            Field::Reserved0(i) => (44 + usize::from(i % 4), 1),
            Field::Dim(i) => (48 + 8 * usize::from(i % 8), 8),
            Field::SectionOffset(k) => (112 + 16 * usize::from(k % 4), 8),
            Field::SectionLen(k) => (120 + 16 * usize::from(k % 4), 8),
            Field::Reserved1(i) => (176 + usize::from(i % 16), 1),
            Field::SubOffset => (192, 8),
            Field::SubLen => (200, 8),
            Field::SubBlock => (208, 4),
            Field::Reserved2(i) => (212 + usize::from(i % 44), 1),
        }
    }
}

/// One change to the base record.
#[derive(Arbitrary, Debug, Clone)]
pub enum Mutation {
    /// Stores `value` (truncated to the field's width) in a header field.
    Set {
        /// The field.
        field: Field,
        /// Its new value.
        value: u64,
    },
    /// Adds `delta` (wrapping) to a header field.
    Add {
        /// The field.
        field: Field,
        /// The change.
        delta: i32,
    },
    /// Stores a byte anywhere in the record (`at` modulo the record length).
    Byte {
        /// Position.
        at: u16,
        /// Value.
        value: u8,
    },
    /// Replaces grid value `index % 2^bits` by raw binary32 bits.
    Grid {
        /// Index.
        index: u8,
        /// Raw bits.
        bits: u32,
    },
    /// Replaces scale `index % n_scales` by raw binary16 bits.
    Scale {
        /// Index.
        index: u16,
        /// Raw bits.
        bits: u16,
    },
    /// Replaces overlay value `index` (modulo the count) by raw 16-bit bits.
    Overlay {
        /// Index.
        index: u16,
        /// Raw bits.
        bits: u16,
    },
    /// Sets the `index`-th padding byte of the record (modulo their count; ).
    Padding {
        /// Index among all padding bytes.
        index: u16,
        /// Value.
        value: u8,
    },
    /// ORs `value` into the codes byte that holds the first unused code bit of a partial last
    /// block, if there is one.
    CodeTail {
        /// Bits to set.
        value: u8,
    },
    /// Replaces sub-scale `index` (modulo the count; none without two-level scales).
    SubScale {
        /// Index.
        index: u16,
        /// New value (every value is valid, R-13.3).
        value: u8,
    },
}

/// What happens to the buffer after the mutations.
#[derive(Arbitrary, Debug, Clone)]
pub enum Tail {
    /// Nothing.
    Keep,
    /// Truncated to `len % record_len` bytes.
    Truncate(u16),
    /// Bytes appended after the record (at most 256).
    Append(Vec<u8>),
}

/// The description of a record; see the module documentation.
#[derive(Arbitrary, Debug, Clone)]
pub struct RecordSpec {
    /// `1 + bits % 8`.
    pub bits: u8,
    /// `1 + ndim % 8`.
    pub ndim: u8,
    /// Dimensions (dim 0 in 1..=256, the others in 1..=12, capped so that n <= 2048).
    pub dims: [u8; 8],
    /// Overlay rank wanted (0: none; capped at min(rows, cols, 8); 1-D tensors get none).
    pub rank: u8,
    /// Overlay dtype bf16 (else f16).
    pub bf16: bool,
    /// Below 160: minor 3; else minor `4 + minor % 8` with an extended header.
    pub minor: u8,
    /// Extra header bytes for a later minor version (`header_len = 192 + header_extra`).
    pub header_extra: u8,
    /// Content of the extended header bytes (ignored by a v0.3 decoder, covered by the CRC).
    pub ext_fill: u8,
    /// Ignorable flag bits (16..31) to set.
    pub ignorable_flags: u16,
    /// Grid values (raw bits; mapped into the valid range, cycled).
    pub grid: Vec<u32>,
    /// Scales (raw bits; sign cleared, infinities and NaN mapped, cycled).
    pub scales: Vec<u16>,
    /// Codes (masked to `bits` bits, cycled).
    pub codes: Vec<u8>,
    /// Overlay values (raw 16-bit patterns; non-finite ones mapped, cycled).
    pub overlay: Vec<u16>,
    /// Mutations applied to the base (the first four).
    pub mutations: Vec<Mutation>,
    /// Keep the base's CRC instead of recomputing it after the mutations.
    pub stale_crc: bool,
    /// Truncation or trailing bytes.
    pub tail: Tail,
    /// `two_level % 3`: 0 a record without two-level scales, 1 with S = 16, 2 with S = 32 (v0.4,
    /// section 13; minor 4, or `4 + minor % 8` with `header_len = 256 + header_extra`).
    pub two_level: u8,
    /// Sub-scales (cycled, masked to `q` bits; every such value is valid).
    pub subscales: Vec<u8>,
    /// Sub-scale width `q = 1 + sub_bits % 8`.
    pub sub_bits: u8,
}

/// A built record.
#[derive(Debug, Clone)]
pub struct Built {
    /// The valid base record.
    pub base: Vec<u8>,
    /// Its layout, as planned.
    pub layout: Layout,
    /// `W_base` of the base record, computed from the generating values with f64 arithmetic.
    pub expected: Vec<f32>,
    /// The final bytes (mutated, CRC handled, truncated or extended).
    pub bytes: Vec<u8>,
    /// The verdict that spec implies for `bytes`, where it is a local matter.
    pub oracle: Option<Result<(), Error>>,
}

fn valid_grid(v: u32) -> u32 {
    if grid_value_ok(v) {
        v
    } else {
        let e = (v >> 23) & 0xff;
        (v & 0x807f_ffff) | ((63 + e % 128) << 23)
    }
}

fn valid_scale(v: u16) -> u16 {
    let v = v & 0x7fff;
    if v & 0x7c00 == 0x7c00 { v & 0x3fff } else { v }
}

fn valid_overlay(v: u16, bf16: bool) -> u16 {
    let inf = if bf16 { 0x7f80 } else { 0x7c00 };
    if v & inf == inf { v & !0x4000 } else { v }
}

fn cycle<T: Copy>(v: &[T], i: usize, default: T) -> T {
    if v.is_empty() { default } else { v[i % v.len()] }
}

fn put(buf: &mut [u8], at: usize, width: usize, value: u64) {
    buf[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
}

fn get(buf: &[u8], at: usize, width: usize) -> u64 {
    let mut a = [0u8; 8];
    a[..width].copy_from_slice(&buf[at..at + width]);
    u64::from_le_bytes(a)
}

/// The padding ranges of a layout, in increasing order.
pub fn padding_ranges(l: &Layout) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = l.params.header_len as usize;
    for s in l.used_sections() {
        out.push((start, s.offset as usize));
        start = s.end() as usize;
    }
    out.push((start, l.record_len as usize));
    out.retain(|r| r.1 > r.0);
    out
}

impl RecordSpec {
    /// The shape fields, minor version and header length of the base record.
    pub fn params(&self) -> (RecordParams, u16) {
        let bits = 1 + self.bits % 8;
        let ndim = 1 + usize::from(self.ndim % 8);
        let mut dims = [0u64; 8];
        let mut n = 1u64;
        for (i, d) in dims.iter_mut().enumerate().take(ndim) {
            let cap = if i == 0 { 256 } else { 12 };
            let mut v = 1 + u64::from(self.dims[i]) % cap;
            if n * v > MAX_GEN_ELEMENTS {
                v = 1;
            }
            *d = v;
            n *= v;
        }
        let rows = dims[0];
        let cols = n / rows;
        let r = if ndim < 2 || self.rank == 0 {
            0
        } else {
            1 + u64::from(self.rank - 1) % rows.min(cols).min(8)
        };
        let overlay_dtype = match (r, self.bf16) {
            (0, _) => OverlayDtype::None,
            (_, true) => OverlayDtype::Bf16,
            (_, false) => OverlayDtype::F16,
        };
        let sub_block = [0u32, 16, 32][usize::from(self.two_level % 3)];
        let first = if sub_block == 0 { 3 } else { 4 };
        let minor = if self.minor < 160 {
            first
        } else {
            4 + u16::from(self.minor % 8)
        };
        // A v0.3 header is 192 bytes, a v0.4 one 256; a later minor may add bytes.
        let fixed = if sub_block == 0 { 192 } else { 256 };
        let header_len = if minor == first {
            fixed
        } else {
            fixed + u32::from(self.header_extra)
        };
        let p = RecordParams {
            bits,
            ndim: ndim as u8,
            dims,
            overlay_rank: r as u32,
            overlay_dtype,
            header_len,
            sub_block,
            sub_bits: if sub_block == 0 { 0 } else { 1 + self.sub_bits % 8 },
        };
        (p, minor)
    }

    /// Builds the record; see the module documentation.
    pub fn build(&self) -> Built {
        let (params, minor) = self.params();
        let layout = params.layout().expect("the generator makes valid shapes");
        let k = 1usize << params.bits;
        let n = layout.n as usize;
        let ns = layout.n_scales as usize;
        let grid: Vec<u32> = (0..k)
            .map(|i| valid_grid(cycle(&self.grid, i, ((i as f32 - k as f32 / 2.0) * 0.25).to_bits())))
            .collect();
        let scales: Vec<u16> = (0..ns).map(|i| valid_scale(cycle(&self.scales, i, 0x3c00))).collect();
        let sub_mask = ((1u16 << params.sub_bits) - 1) as u8;
        let subs: Vec<u8> = (0..layout.n_subscales as usize)
            .map(|i| cycle(&self.subscales, i, (i * 37) as u8) & sub_mask)
            .collect();
        let mask = (k - 1) as u8;
        let codes: Vec<u8> = (0..n).map(|i| cycle(&self.codes, i, i as u8) & mask).collect();
        let bf16 = params.overlay_dtype == OverlayDtype::Bf16;
        let r = params.overlay_rank as usize;
        let (rows, cols) = (layout.rows as usize, layout.cols as usize);
        let ov: Vec<u16> = (0..r * (rows + cols))
            .map(|i| valid_overlay(cycle(&self.overlay, i, 0x3c00), bf16))
            .collect();
        let (u, v) = ov.split_at(rows * r);
        let grid_f: Vec<f32> = grid.iter().map(|&b| f32::from_bits(b)).collect();
        let mut base = vec![0u8; layout.record_len as usize];
        let res = write_record_with_subscales(&params, &grid_f, &scales, &subs, &codes, u, v, &mut base);
        let two_level = params.has_subscales();
        let fixed = if two_level { 256 } else { 192 };
        if params.header_len == 192 || two_level {
            // (A v0.4 record may have a longer header at minor 4 already.)
            res.expect("write_record rejected valid inputs");
        } else {
            // write_record writes minor 3, for which a longer header is invalid; it has written
            // every byte all the same.
            assert_eq!(res.unwrap_err().kind, ErrorKind::BadHeaderLength);
        }
        base[fixed..params.header_len as usize].fill(self.ext_fill);
        // The later minor version it is meant to be.
        let flags = u32::from(self.ignorable_flags) << 16 | if two_level { FLAG_SUBSCALES } else { 0 };
        put(&mut base, 10, 2, u64::from(minor));
        put(&mut base, 28, 4, u64::from(flags));
        finalize_crc(&mut base);
        let mut layout = layout;
        layout.version_minor = minor;
        layout.flags = flags;
        layout.crc32 = get(&base, 24, 4) as u32;
        let expected: Vec<f32> = (0..n)
            .map(|i| {
                let g = f32::from_bits(grid[usize::from(codes[i])]);
                if two_level {
                    // the effective scale exactly (f64), then one binary32 multiply.
                    let sub = subs[i / params.sub_block as usize];
                    let e = f64::from(f16_value(scales[i / 256])) * f64::from(sub);
                    let e32 = e as f32;
                    assert_eq!(f64::from(e32), e, "the effective scale is a binary32 value");
                    e32 * g
                } else {
                    f16_value(scales[i / 64]) * g
                }
            })
            .collect();

        let mut bytes = base.clone();
        for m in self.mutations.iter().take(4) {
            apply(&mut bytes, &layout, m);
        }
        if !self.stale_crc {
            finalize_crc(&mut bytes);
        }
        let mut oracle = predict(&base, &layout, &bytes, self.stale_crc);
        match &self.tail {
            Tail::Keep => {}
            Tail::Truncate(t) => {
                let cut = usize::from(*t) % bytes.len();
                bytes.truncate(cut);
                // Every strict prefix of a valid record is `truncated` at its length (R-9.1
                // steps 1, 3, 7; ); otherwise the verdict is not local.
                oracle = match oracle {
                    Some(Ok(())) => Some(Err(Error::new(ErrorKind::Truncated, cut as u64))),
                    _ => None,
                };
            }
            Tail::Append(extra) => bytes.extend_from_slice(&extra[..extra.len().min(256)]),
        }
        Built {
            base,
            layout,
            expected,
            bytes,
            oracle,
        }
    }
}

fn apply(buf: &mut [u8], l: &Layout, m: &Mutation) {
    let s = &l.sections;
    match *m {
        Mutation::Set { field, value } => {
            let (at, w) = field.place();
            put(buf, at, w, value);
        }
        Mutation::Add { field, delta } => {
            let (at, w) = field.place();
            let v = get(buf, at, w).wrapping_add(i64::from(delta) as u64);
            put(buf, at, w, v);
        }
        Mutation::Byte { at, value } => {
            let len = buf.len();
            buf[usize::from(at) % len] = value;
        }
        Mutation::Grid { index, bits } => {
            let at = s[0].offset as usize + 4 * (usize::from(index) % (1 << l.params.bits));
            put(buf, at, 4, u64::from(bits));
        }
        Mutation::Scale { index, bits } => {
            let at = s[1].offset as usize + 2 * (usize::from(index) % l.n_scales as usize);
            put(buf, at, 2, u64::from(bits));
        }
        Mutation::Overlay { index, bits } => {
            let count = s[3].len as usize / 2;
            if count > 0 {
                put(
                    buf,
                    s[3].offset as usize + 2 * (usize::from(index) % count),
                    2,
                    u64::from(bits),
                );
            }
        }
        Mutation::Padding { index, value } => {
            let ranges = padding_ranges(l);
            let total: usize = ranges.iter().map(|r| r.1 - r.0).sum();
            if total > 0 {
                let mut i = usize::from(index) % total;
                for (a, b) in ranges {
                    if i < b - a {
                        buf[a + i] = value;
                        break;
                    }
                    i -= b - a;
                }
            }
        }
        Mutation::CodeTail { value } => {
            let first_unused = l.n * u64::from(l.params.bits);
            if first_unused < s[2].len * 8 {
                buf[(s[2].offset + first_unused / 8) as usize] |= value;
            }
        }
        Mutation::SubScale { index, value } => {
            // Sub-scale `index % n_sub` gets the low `q` bits of `value` (R-13.2 packing).
            let count = l.n_subscales as usize;
            if l.has_subscales() && count > 0 {
                let q = usize::from(l.params.sub_bits);
                let t = usize::from(index) % count;
                for u in 0..q {
                    let k = t * q + u;
                    let at = s[4].offset as usize + k / 8;
                    buf[at] = (buf[at] & !(1 << (k % 8))) | (((value >> u) & 1) << (k % 8));
                }
            }
        }
    }
}

/// Predicts the verdict of for `bytes` (same length as `base`, a valid record with layout
/// `l`) where it is local: it depends only on which bytes differ from the base. Returns `None`
/// where the verdict would need a validator of its own (changed lengths, offsets, dims, ...).
///
/// * nothing changed: valid;
/// * CRC not recomputed and the changed bytes lie in `[24, record_len)` within 4 consecutive
///   bytes: `crc_mismatch` (CRC-32 detects every burst of at most 32 bits; steps 1-7 read only
///   bytes 0..24, which did not change);
/// * CRC recomputed and every changed byte in one of: the magic, a version field, flags, bits,
///   ndim, scale_dtype, overlay_dtype, block_size, a reserved area, the extended header of a
///   later minor version, padding, one grid value, one scale, one overlay value, the codes: the
///   class of that rule at its offset (or valid, where the new value is allowed).
pub fn predict(base: &[u8], l: &Layout, bytes: &[u8], stale_crc: bool) -> Option<Result<(), Error>> {
    let e = |kind, off: usize| Some(Err(Error::new(kind, off as u64)));
    let skip_crc = |i: &usize| stale_crc || !(24..28).contains(i);
    let diff: Vec<usize> = (0..base.len())
        .filter(|&i| base[i] != bytes[i])
        .filter(skip_crc)
        .collect();
    let (Some(&lo), Some(&hi)) = (diff.first(), diff.last()) else {
        return Some(Ok(()));
    };
    if stale_crc {
        // Only the stored CRC changed, or only a burst of at most 32 bits of the covered bytes.
        let crc_only = lo >= 24 && hi < 28;
        let burst = lo >= 28 && hi - lo < 4;
        return (crc_only || burst).then(|| Err(Error::new(ErrorKind::CrcMismatch, 24)));
    }
    let within = |a: usize, b: usize| lo >= a && hi < b;
    let header_len = l.params.header_len as usize;
    let two_level = l.has_subscales();
    let minor = get(bytes, 10, 2);
    let s = &l.sections;
    if within(0, 8) {
        return e(ErrorKind::BadMagic, 0);
    }
    if within(8, 10) {
        return e(ErrorKind::UnsupportedVersion, 8);
    }
    if within(10, 12) {
        if minor < 3 {
            return e(ErrorKind::UnsupportedVersion, 10);
        }
        return if minor == 3 && header_len != 192 {
            e(ErrorKind::BadHeaderLength, 12)
        } else {
            Some(Ok(()))
        };
    }
    if within(28, 32) {
        let f = get(bytes, 28, 4);
        return if f & 0xfffe != 0 {
            // Must-understand bits 1..=15.
            e(ErrorKind::UnsupportedFlags, 28)
        } else if (f & 1 != 0) == two_level {
            Some(Ok(()))
        } else if two_level {
            // Flag bit 0 cleared: block_size 256 is now wrong.
            e(ErrorKind::BadBlockSize, 36)
        } else if minor < 4 {
            // Flag bit 0 set in a v0.3 record.
            e(ErrorKind::UnsupportedFlags, 28)
        } else if header_len < 256 {
            e(ErrorKind::BadHeaderLength, 12)
        } else {
            None // the bytes 192..256 of a later minor version are read as the extension
        };
    }
    if within(32, 33) {
        let b = bytes[32];
        // A different valid width changes the grid length (4 << bits): section 0's len is wrong.
        return if (1..=8).contains(&b) {
            e(ErrorKind::SectionLength, 120)
        } else {
            e(ErrorKind::BadBits, 32)
        };
    }
    if within(33, 34) {
        let nd = usize::from(bytes[33]);
        let old = l.params.ndim as usize;
        return if !(1..=8).contains(&nd) {
            e(ErrorKind::BadNdim, 33)
        } else {
            // the first dims entry that is zero where it must not be, or the reverse.
            e(ErrorKind::BadDim, 48 + 8 * nd.min(old))
        };
    }
    if within(34, 35) {
        return e(ErrorKind::BadScaleDtype, 34);
    }
    if within(35, 36) {
        let d = bytes[35];
        let had = l.params.overlay_dtype != OverlayDtype::None;
        return match d {
            3.. => e(ErrorKind::BadOverlayDtype, 35),
            0 if had => e(ErrorKind::BadOverlayRank, 40),
            1 | 2 if !had => e(ErrorKind::BadOverlayRank, 40),
            _ => None, // f16 <-> bf16: the overlay values are read in the other dtype
        };
    }
    if within(36, 40) {
        return e(ErrorKind::BadBlockSize, 36);
    }
    if within(44, 48) || within(176, 192) {
        return e(ErrorKind::ReservedNonZero, lo);
    }
    if two_level {
        if within(213, 256) {
            return e(ErrorKind::ReservedNonZero, lo);
        }
        if within(212, 213) {
            let q = bytes[212];
            // Another valid width changes the sub-scales length unless it happens to be equal.
            let len = (l.n_subscales * u64::from(q)).div_ceil(8);
            return if !(1..=8).contains(&q) {
                e(ErrorKind::BadSubBlock, 212)
            } else if len == l.sections[4].len {
                None
            } else {
                e(ErrorKind::SectionLength, 200)
            };
        }
        if within(208, 212) {
            let sb = get(bytes, 208, 4);
            let q = u64::from(l.params.sub_bits);
            return if sb != 16 && sb != 32 {
                e(ErrorKind::BadSubBlock, 208)
            } else if (l.n.div_ceil(sb) * q).div_ceil(8) == l.sections[4].len {
                None // 16 <-> 32 with the same count (n <= 16): valid, with other values
            } else {
                e(ErrorKind::SectionLength, 200)
            };
        }
        let sub = &s[4];
        if within(sub.offset as usize, sub.end() as usize) {
            // Every q-bit value is valid; the unused stream bits must stay zero (step 24).
            let first_unused = l.n_subscales * u64::from(l.params.sub_bits);
            let last = bytes[sub.end() as usize - 1];
            let lo_bit = 8 * (sub.len - 1);
            let mask = if first_unused <= lo_bit {
                0xff
            } else {
                0xffu8.checked_shl((first_unused - lo_bit) as u32).unwrap_or(0)
            };
            return if last & mask != 0 {
                e(ErrorKind::NonZeroPadding, sub.end() as usize - 1)
            } else {
                Some(Ok(()))
            };
        }
    }
    let ext_start = if two_level { 256 } else { 192 };
    if within(ext_start, header_len) {
        return Some(Ok(()));
    }
    let pads = padding_ranges(l);
    if diff.iter().all(|&i| pads.iter().any(|&(a, b)| (a..b).contains(&i))) {
        return e(ErrorKind::NonZeroPadding, lo);
    }
    let (g, sc, c, ov) = (
        s[0].offset as usize,
        s[1].offset as usize,
        s[2].offset as usize,
        s[3].offset as usize,
    );
    if within(g, g + s[0].len as usize) && (lo - g) / 4 == (hi - g) / 4 {
        let at = g + (lo - g) / 4 * 4;
        let v = get(bytes, at, 4) as u32;
        return if grid_value_ok(v) {
            Some(Ok(()))
        } else {
            e(ErrorKind::BadGridValue, at)
        };
    }
    if within(sc, sc + s[1].len as usize) && (lo - sc) / 2 == (hi - sc) / 2 {
        let at = sc + (lo - sc) / 2 * 2;
        let v = get(bytes, at, 2) as u16;
        return if uc_format::num::scale_value_ok(v) {
            Some(Ok(()))
        } else {
            e(ErrorKind::BadScaleValue, at)
        };
    }
    if within(ov, ov + s[3].len as usize) && (lo - ov) / 2 == (hi - ov) / 2 {
        let at = ov + (lo - ov) / 2 * 2;
        let v = get(bytes, at, 2) as u16;
        let bf16 = l.params.overlay_dtype == OverlayDtype::Bf16;
        return if uc_format::num::overlay_value_ok(v, bf16) {
            Some(Ok(()))
        } else {
            e(ErrorKind::BadOverlayValue, at)
        };
    }
    if within(c, c + s[2].len as usize) {
        // Only the unused bits of a partial last block are checked (R-5.9, step 24).
        let first_unused = l.n * u64::from(l.params.bits);
        let codes = &bytes[c..c + s[2].len as usize];
        for (j, &byte) in codes.iter().enumerate() {
            let lo_bit = 8 * j as u64;
            if lo_bit + 8 <= first_unused {
                continue;
            }
            let mask = if lo_bit >= first_unused {
                0xff
            } else {
                0xffu8 << (first_unused - lo_bit)
            };
            if byte & mask != 0 {
                return e(ErrorKind::NonZeroPadding, c + j);
            }
        }
        return Some(Ok(()));
    }
    None
}
