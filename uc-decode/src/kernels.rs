//! Decode kernels. `decode_scalar` transcribes spec element by element and is the
//! reference; `decode_blocks` works a 64-element block at a time with the portable or AVX2 kernel.
//! All compute `f32(scale) * grid[code]` with one rounded multiply, so their bits agree.

use crate::{BLOCK, Record};
use uc_format::num::f16_to_f32;

/// Code `i` of an LSB-first packed stream of `bits`-bit codes. The caller guarantees that
/// code `i` lies inside `codes`.
#[inline]
pub(crate) fn code_at(codes: &[u8], bits: u8, i: u64) -> u8 {
    let p = i * u64::from(bits);
    let byte = (p / 8) as usize;
    let lo = u16::from(codes[byte]);
    let hi = u16::from(codes.get(byte + 1).copied().unwrap_or(0));
    let v = (lo | (hi << 8)) >> (p % 8);
    (v & ((1u16 << bits) - 1)) as u8
}

/// The binary16 scale of the block holding element `i` (R-4.12: blocks of 64, or of 256 with
/// two-level scales), as its bit pattern.
#[inline]
pub(crate) fn scale_bits_at(rec: &Record<'_>, i: u64) -> u16 {
    let at = (i >> rec.block_shift) as usize * 2;
    u16::from_le_bytes([rec.scales[at], rec.scales[at + 1]])
}

/// The effective scale of element `i`: `f32(scale)`, or with two-level scales the exact
/// product `f32(scale) * sub` of R-13.4 (at most 19 significant bits: no rounding happens).
#[inline]
pub(crate) fn scale_at(rec: &Record<'_>, i: u64) -> f32 {
    let s = f16_to_f32(scale_bits_at(rec, i));
    match rec.sub_shift {
        0 => s,
        sh => s * f32::from(sub_at(rec, i >> sh)),
    }
}

/// Sub-scale `t` of a record with two-level scales: `sub_bits`-bit integers packed as codes are
/// . The caller guarantees `t < n_sub`.
#[inline]
pub(crate) fn sub_at(rec: &Record<'_>, t: u64) -> u8 {
    code_at(rec.subscales, rec.layout.params.sub_bits, t)
}

/// Reference decode of elements `[start, start + out.len())`; the range was checked by the caller.
pub(crate) fn decode_scalar(rec: &Record<'_>, start: u64, out: &mut [f32]) {
    let bits = rec.bits();
    for (k, o) in out.iter_mut().enumerate() {
        let i = start + k as u64;
        let code = code_at(rec.codes, bits, i);
        let g = rec.grid[usize::from(code)];
        *o = match rec.sub_shift {
            0 => crate::w_base_value(scale_bits_at(rec, i), g),
            sh => crate::w_base_value_subscaled(scale_bits_at(rec, i), sub_at(rec, i >> sh), g),
        };
    }
}

/// True where the AVX2 kernel can run.
pub(crate) fn avx2_available() -> bool {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(all(target_arch = "x86_64", not(feature = "std")))]
    {
        cfg!(target_feature = "avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The effective scales of one 64-element code group, by groups of 8 elements: one scale for
/// the whole group in a v0.3 record (`f32`), eight with two-level scales (`[f32; 8]`: sub-blocks of
/// 16 or 32 elements are whole multiples of 8). Generic so that the v0.3 kernels keep one
/// loop-invariant scale.
pub(crate) trait GroupScales: Copy {
    /// Whether one scale covers the whole group (`of` ignores `g`); the AVX2 kernels use it.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    const UNIFORM: bool;
    /// The scale of elements `8g..8g+8`.
    fn of(&self, g: usize) -> f32;
}

impl GroupScales for f32 {
    const UNIFORM: bool = true;
    #[inline(always)]
    fn of(&self, _: usize) -> f32 {
        *self
    }
}

impl GroupScales for [f32; 8] {
    const UNIFORM: bool = false;
    #[inline(always)]
    fn of(&self, g: usize) -> f32 {
        self[g]
    }
}

/// The scales of code group `blk` of a v0.3 record.
#[inline(always)]
fn v03_scales(rec: &Record<'_>, blk: u64) -> f32 {
    f16_to_f32(scale_bits_at(rec, blk * BLOCK as u64))
}

/// The scales of code group `blk` of a record with two-level scales: the group lies inside one
/// 256-element block, so its binary16 scale is converted once; groups of 8 past `n` (a partial
/// last group) reuse the last sub-scale, and their values are dropped by the caller.
#[inline(always)]
fn v04_scales(rec: &Record<'_>, blk: u64) -> [f32; 8] {
    let (d, word) = v04_word(rec, blk);
    let q = u32::from(rec.layout.params.sub_bits);
    if rec.sub_shift == 4 {
        spread::<2>(d, word, q)
    } else {
        spread::<4>(d, word, q)
    }
}

/// The binary16 scale of code group `blk` (as f32) and a word whose low 32 bits hold the group's
/// sub-scales, the first at bit 0.
#[inline(always)]
fn v04_word(rec: &Record<'_>, blk: u64) -> (f32, u64) {
    let first = blk * BLOCK as u64;
    let d = f16_to_f32(scale_bits_at(rec, first));
    let sh = rec.sub_shift;
    let q = u32::from(rec.layout.params.sub_bits);
    // A group of 64 holds 4 sub-blocks of 16 or 2 of 32 (each covering 2 or 4 groups of 8); their
    // sub-scales are at most 32 consecutive bits of the stream, read with one 64-bit load. Bits
    // past the last sub-scale are zero or past the section (read as zero here); they
    // only reach elements past `n`, which the caller drops.
    let bit = (first >> sh) * u64::from(q);
    let at = (bit / 8) as usize;
    let word = match rec.subscales.get(at..at + 8) {
        Some(b) => u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        None => {
            let mut w = [0u8; 8];
            let avail = rec.subscales.len().saturating_sub(at).min(8);
            w[..avail].copy_from_slice(&rec.subscales[at..at + avail]);
            u64::from_le_bytes(w)
        }
    } >> (bit % 8);
    (d, word)
}

/// The 8 group scales from `word`, whose `q`-bit fields are the sub-scales of consecutive
/// sub-blocks of `PER` groups each.
#[inline(always)]
fn spread<const PER: usize>(d: f32, word: u64, q: u32) -> [f32; 8] {
    let mask = (1u64 << q) - 1;
    core::array::from_fn(|g| d * ((word >> ((g / PER) as u32 * q)) & mask) as u32 as f32)
}

/// Walks the 64-element code groups that overlap `[start, start + out.len())`, decoding whole
/// groups straight into `out` and partial ones through a stack buffer.
/// `kernel(codes, scales, out_group)` with the group's [`GroupScales`] from `scales`; `codes` starts
/// at the group's first code byte and runs to the end of the codes section (at least the group's
/// `8*B` bytes), so that kernels can load 8 bytes at a time without copying the group first.
#[inline(always)]
fn for_each_block<S: GroupScales>(
    rec: &Record<'_>,
    start: u64,
    out: &mut [f32],
    scales: impl Fn(&Record<'_>, u64) -> S,
    mut kernel: impl FnMut(&[u8], S, &mut [f32; BLOCK]),
) {
    let bpb = 8 * usize::from(rec.bits()); // code bytes per block
    let mut pos = start;
    let mut o = 0usize;
    while o < out.len() {
        let blk = pos / BLOCK as u64;
        let in_blk = (pos % BLOCK as u64) as usize;
        let take = (BLOCK - in_blk).min(out.len() - o);
        let c0 = blk as usize * bpb;
        let codes = &rec.codes[c0..];
        debug_assert!(codes.len() >= bpb);
        let s = scales(rec, blk);
        match <&mut [f32; BLOCK]>::try_from(&mut out[o..o + take]) {
            Ok(dst) => kernel(codes, s, dst),
            Err(_) => {
                let mut tmp = [0f32; BLOCK];
                kernel(codes, s, &mut tmp);
                out[o..o + take].copy_from_slice(&tmp[in_blk..in_blk + take]);
            }
        }
        pos += take as u64;
        o += take;
    }
}

/// Copies a block's `8*B` code bytes into a 64-byte buffer so that 8-byte loads at `g*B` stay inside.
#[inline(always)]
fn block_bytes<const B: usize>(codes: &[u8]) -> [u8; 64] {
    let mut buf = [0u8; 64];
    buf[..8 * B].copy_from_slice(&codes[..8 * B]);
    buf
}

/// The 8 codes of group `g` as the low `8*B` bits of a little-endian word, from a [`block_bytes`]
/// copy (the group occupies `B` whole bytes from byte `g*B`, R-6.2).
#[inline(always)]
fn buf_word<const B: usize>(buf: &[u8; 64], g: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&buf[g * B..g * B + 8]);
    u64::from_le_bytes(w)
}

fn decode_portable<const B: usize>(rec: &Record<'_>, start: u64, out: &mut [f32]) {
    if rec.sub_shift == 0 {
        portable::<B, f32>(rec, start, out, v03_scales);
    } else {
        portable::<B, [f32; 8]>(rec, start, out, v04_scales);
    }
}

#[inline(always)]
fn portable<const B: usize, S: GroupScales>(
    rec: &Record<'_>,
    start: u64,
    out: &mut [f32],
    scales: impl Fn(&Record<'_>, u64) -> S,
) {
    let grid = &rec.grid;
    let mask = (1u64 << B) - 1;
    for_each_block(rec, start, out, scales, |codes, s, dst| {
        // A copy of the block, from which the compiler vectorises the 8-byte loads (measured faster
        // than loading in place for the portable path, slower for the AVX2 one).
        let buf = block_bytes::<B>(codes);
        for (g, chunk) in dst.chunks_exact_mut(8).enumerate() {
            let x = buf_word::<B>(&buf, g);
            let s = s.of(g);
            for (j, o) in chunk.iter_mut().enumerate() {
                *o = s * grid[((x >> (j * B)) & mask) as usize];
            }
        }
    });
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    //! SAFETY (module-wide): every function here is `#[target_feature(enable = "avx2")]` and is
    //! only called after `avx2_available()` returned true. Loads and stores use unaligned
    //! intrinsics on pointers derived from slices whose lengths are checked by construction:
    //! 8 f32 stores at `dst[8g..8g+8]` with `g < 8` into a 64-element array, the gather reads
    //! `grid[idx]` with `idx < 2^B <= 256` from a 256-element array, and the 4-bit kernel's one
    //! 32-byte load reads the block's 32 code bytes (`codes` holds at least them). The
    //! whole-block loops (`decode_v03`, `decode_v04`) read 4 or 8 bytes from each group's first
    //! code byte only for blocks followed by at least 8 more bytes of the codes section (checked
    //! per block), store 8 f32 at `dst[8g..8g+8]` inside the block's own part of `out`, and gather
    //! with indices masked to `B` bits; their prefetches may name any address (a prefetch never
    //! faults, and `wrapping_add` forms the pointer).
    use super::{BLOCK, GroupScales, Record, for_each_block, v03_scales, v04_word};
    use core::arch::x86_64::*;

    /// The 8 codes of group `g` (elements `8g..8g+8` of a block) as the low `8*B` bits of a
    /// little-endian word: the group occupies exactly `B` whole bytes starting at byte `g*B` of the
    /// block. `codes` runs from the block's first byte to the end of the section; the word is
    /// read in place (bits past the group belong to the next group or block and are never used), and
    /// only near the end of the section through a zero-padded copy. Reading in place, rather than from
    /// a copy of the block, avoids a store-to-load forwarding stall on every load that straddles the
    /// copy's stores.
    #[inline(always)]
    fn group_word<const B: usize>(codes: &[u8], g: usize) -> u64 {
        let at = g * B;
        let mut w = [0u8; 8];
        match codes.get(at..at + 8) {
            Some(b) => w.copy_from_slice(b),
            None => w[..B].copy_from_slice(&codes[at..at + B]),
        }
        u64::from_le_bytes(w)
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn decode<const B: usize>(rec: &Record<'_>, start: u64, out: &mut [f32]) {
        // SAFETY: the caller checked AVX2 (this function's own contract).
        unsafe {
            if rec.sub_shift == 0 {
                decode_v03::<B>(rec, start, out)
            } else {
                decode_v04::<B>(rec, start, out)
            }
        }
    }

    /// Output prefetch distance, in f32 (2 KiB, two 256-element blocks): the lines that the
    /// kernels will write that far ahead are requested early with `prefetcht0`. Measured on the
    /// 2-core Xeon with a 16 MiB output (beyond L2): the stores' own ownership requests left
    /// the 4-bit v0.4 decode at 18 GB/s, with the prefetch 24 (256 to 1024 about the same). A
    /// prefetch never faults, so the address may lie past the output.
    const PF: usize = 512;

    /// The effective scales of a 256-element block, on a cache line of their own. As a plain
    /// `[f32; 16]` on the stack the 8-bit decode with sub-blocks of 16 measured anywhere from 14
    /// to 20 GB/s from build to build, with the same loop and only the array's stack offset
    /// changed (likely its 8-lane stores straddling a line, so that the loads reading each scale
    /// back miss store forwarding); aligned, 20.3.
    #[repr(align(64))]
    struct Es([f32; 16]);

    /// Prefetches the 4 output lines that lie [`PF`] elements past a 64-element group.
    #[inline(always)]
    fn prefetch_group(dst: &[f32; BLOCK]) {
        for l in 0..4 {
            // SAFETY: a prefetch has no effect on the program's memory and never faults.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(dst.as_ptr().wrapping_add(16 * l + PF).cast()) };
        }
    }

    /// A record with two-level scales through the group-at-a-time kernel (any range).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn decode_v04_groups<const B: usize>(rec: &Record<'_>, start: u64, out: &mut [f32]) {
        // SAFETY: AVX2 is available (this function's contract).
        unsafe { decode_with::<B, [f32; 8]>(rec, start, out, |r, blk| v04_scales(r, blk)) }
    }

    /// Byte shuffle, per-lane shifts and mask that take 8 `w`-bit fields (`w` in 1..=8, LSB-first
    /// as codes and sub-scales are packed, R-6.1 and) out of an 8-byte little-endian word
    /// broadcast to all four 64-bit lanes: 32-bit lane `i` gathers the (at most two) bytes that
    /// hold bits `[i*w, i*w + w)`, which all lie among bytes 0..8 (`i*w + w <= 8*w <= 64`); the
    /// shift brings field `i` to bit 0 and the mask clears the rest.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn unpack_ctl(w: u32) -> (__m256i, __m256i, __m256i) {
        let mut ctl = [0x80u8; 32];
        let mut sh = [0i32; 8];
        for i in 0..8 {
            let p = i as u32 * w;
            let byte = (p / 8) as u8;
            ctl[4 * i] = byte;
            if byte < 7 {
                ctl[4 * i + 1] = byte + 1;
            }
            sh[i] = (p % 8) as i32;
        }
        // SAFETY: see the module comment; the loads read the 32 bytes of `ctl` and of `sh`.
        unsafe {
            (
                _mm256_loadu_si256(ctl.as_ptr().cast()),
                _mm256_loadu_si256(sh.as_ptr().cast()),
                _mm256_set1_epi32((1i32 << w) - 1),
            )
        }
    }

    /// 8 bytes of `bytes` from `at` as a little-endian word, zero-padded past the end.
    #[inline(always)]
    fn word_at(bytes: &[u8], at: usize) -> u64 {
        let mut w = [0u8; 8];
        match bytes.get(at..at + 8) {
            Some(b) => w.copy_from_slice(b),
            None => {
                // Past the end (a partial last block's missing sub-scales) reads as zero.
                let rest = bytes.get(at..).unwrap_or(&[]);
                w[..rest.len()].copy_from_slice(rest);
            }
        }
        u64::from_le_bytes(w)
    }

    /// What [`block_scales`] needs to unpack a record's `q`-bit sub-scales, built once per call.
    struct SubCtl {
        ctl: __m256i,
        sh: __m256i,
        mask: __m256i,
        /// `q`: sub-scale bytes per block of 256 with sub-blocks of 32 (half of them with 16).
        q: usize,
        s16: bool,
    }

    impl SubCtl {
        #[target_feature(enable = "avx2")]
        #[inline]
        unsafe fn new(rec: &Record<'_>) -> SubCtl {
            let q = usize::from(rec.layout.params.sub_bits);
            // SAFETY: AVX2 is available (this function's contract).
            let (ctl, sh, mask) = unsafe { unpack_ctl(q as u32) };
            SubCtl {
                ctl,
                sh,
                mask,
                q,
                s16: rec.sub_shift == 4,
            }
        }
    }

    /// The 8 (S = 32) or 16 (S = 16) effective scales `f32(scale) * sub` of 256-element block
    /// `k` (exact, R-13.4), on a line of their own.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn block_scales(rec: &Record<'_>, k: u64, sc: &SubCtl) -> Es {
        // SAFETY: AVX2 is available (this function's contract); the stores write inside `es`.
        unsafe {
            let d = _mm256_set1_ps(super::f16_to_f32(super::scale_bits_at(rec, k * 256)));
            let s0 = k as usize * if sc.s16 { 2 * sc.q } else { sc.q };
            let sub = |at: usize| {
                let v = _mm256_set1_epi64x(word_at(rec.subscales, at) as i64);
                let f = _mm256_and_si256(_mm256_srlv_epi32(_mm256_shuffle_epi8(v, sc.ctl), sc.sh), sc.mask);
                _mm256_mul_ps(_mm256_cvtepi32_ps(f), d)
            };
            let mut es = Es([0f32; 16]);
            _mm256_storeu_ps(es.0.as_mut_ptr(), sub(s0));
            if sc.s16 {
                _mm256_storeu_ps(es.0.as_mut_ptr().add(8), sub(s0 + sc.q));
            }
            es
        }
    }

    /// A record with two-level scales: the whole 256-element blocks of the range a block at a
    /// time (the binary16 scale converted and the 8 or 16 effective scales `f32(scale) * sub`
    /// computed once per block, exact as in [`super::v04_scales`]), the partial blocks at either
    /// end, and a last whole block whose 8-byte code loads would run past the codes section,
    /// through [`decode_v04_groups`].
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn decode_v04<const B: usize>(rec: &Record<'_>, start: u64, out: &mut [f32]) {
        const SB: u64 = 256;
        let end = start + out.len() as u64;
        let mut k = start.div_ceil(SB);
        let kend = end / SB;
        // SAFETY: AVX2 is available (this function's contract); see the module comment.
        unsafe {
            if k >= kend {
                decode_v04_groups::<B>(rec, start, out);
                return;
            }
            let head = (k * SB - start) as usize;
            decode_v04_groups::<B>(rec, start, &mut out[..head]);
            let s16 = rec.sub_shift == 4;
            let cb = 32 * B; // code bytes per block
            let sc = SubCtl::new(rec);
            let (ctl_b, sh_b, mask_b) = unpack_ctl(B as u32);
            let b = B as i32;
            let sh_lo = _mm256_setr_epi32(0, b, 2 * b, 3 * b, 4 * b, 5 * b, 6 * b, 7 * b);
            let grid = &rec.grid;
            let t: [__m256; 4] = core::array::from_fn(|j| _mm256_loadu_ps(grid.as_ptr().add(8 * j)));
            let mut o = head;
            while k < kend {
                let c0 = k as usize * cb;
                // Every code load below reads at most 8 bytes from a group's first byte.
                if rec.codes.len() < c0 + cb + 8 {
                    break;
                }
                let codes = rec.codes.as_ptr().add(c0);
                let es = block_scales(rec, k, &sc);
                let es = &es.0;
                let dst = out.as_mut_ptr().add(o);
                if s16 {
                    for (ts, &e) in es.iter().enumerate() {
                        let sv = _mm256_set1_ps(e);
                        // One 64-byte line of output per sub-block of 16.
                        _mm_prefetch::<_MM_HINT_T0>(dst.wrapping_add(16 * ts + PF).cast());
                        for g in 2 * ts..2 * ts + 2 {
                            let v = lookup::<B>(codes.add(g * B), &t, grid, ctl_b, sh_b, mask_b, sh_lo);
                            _mm256_storeu_ps(dst.add(8 * g), _mm256_mul_ps(v, sv));
                        }
                    }
                } else {
                    for (ts, &e) in es[..8].iter().enumerate() {
                        let sv = _mm256_set1_ps(e);
                        _mm_prefetch::<_MM_HINT_T0>(dst.wrapping_add(32 * ts + PF).cast());
                        _mm_prefetch::<_MM_HINT_T0>(dst.wrapping_add(32 * ts + 16 + PF).cast());
                        for g in 4 * ts..4 * ts + 4 {
                            let v = lookup::<B>(codes.add(g * B), &t, grid, ctl_b, sh_b, mask_b, sh_lo);
                            _mm256_storeu_ps(dst.add(8 * g), _mm256_mul_ps(v, sv));
                        }
                    }
                }
                k += 1;
                o += SB as usize;
            }
            decode_v04_groups::<B>(rec, k * SB, &mut out[o..]);
        }
    }

    /// A v0.3 record (one binary16 scale per 64-element code group): the whole groups of the
    /// range in one loop (the scale converted once per group; for up to 4 bits the table scaled
    /// by it, each lookup then the product `scale × grid[code]` itself, the same single rounding
    /// of ), the partial groups at either end, and a last whole group whose 8-byte code
    /// loads would run past the codes section, through [`decode_with`].
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn decode_v03<const B: usize>(rec: &Record<'_>, start: u64, out: &mut [f32]) {
        const G: u64 = BLOCK as u64;
        let end = start + out.len() as u64;
        let mut k = start.div_ceil(G);
        let kend = end / G;
        // SAFETY: AVX2 is available (this function's contract); see the module comment.
        unsafe {
            if k >= kend {
                decode_with::<B, f32>(rec, start, out, v03_scales);
                return;
            }
            let head = (k * G - start) as usize;
            decode_with::<B, f32>(rec, start, &mut out[..head], v03_scales);
            let (ctl, sh, mask) = unpack_ctl(B as u32);
            let b = B as i32;
            let sh_lo = _mm256_setr_epi32(0, b, 2 * b, 3 * b, 4 * b, 5 * b, 6 * b, 7 * b);
            let grid = &rec.grid;
            let t: [__m256; 4] = core::array::from_fn(|j| _mm256_loadu_ps(grid.as_ptr().add(8 * j)));
            let gb = 8 * B; // code bytes per group
            let mut o = head;
            while k < kend {
                let c0 = k as usize * gb;
                // Every code load below reads at most 8 bytes from a group's first byte.
                if rec.codes.len() < c0 + gb + 8 {
                    break;
                }
                let codes = rec.codes.as_ptr().add(c0);
                let dst = out.as_mut_ptr().add(o);
                for l in 0..4 {
                    _mm_prefetch::<_MM_HINT_T0>(dst.wrapping_add(16 * l + PF).cast());
                }
                let sv = _mm256_set1_ps(v03_scales(rec, k));
                if B <= 4 {
                    let u = [_mm256_mul_ps(t[0], sv), _mm256_mul_ps(t[1], sv), t[2], t[3]];
                    for g in 0..8 {
                        let v = lookup::<B>(codes.add(g * B), &u, grid, ctl, sh, mask, sh_lo);
                        _mm256_storeu_ps(dst.add(8 * g), v);
                    }
                } else {
                    for g in 0..8 {
                        let v = lookup::<B>(codes.add(g * B), &t, grid, ctl, sh, mask, sh_lo);
                        _mm256_storeu_ps(dst.add(8 * g), _mm256_mul_ps(v, sv));
                    }
                }
                k += 1;
                o += BLOCK;
            }
            decode_with::<B, f32>(rec, k * G, &mut out[o..], v03_scales);
        }
    }

    /// `grid[code]` for the 8 codes of the group whose `B` bytes start at `p` (8 bytes readable
    /// there): up to 4 bits from the 8- or 16-entry table in registers (`t`), wider codes by a
    /// gather from `grid` (idx < 2^B <= 256).
    #[target_feature(enable = "avx2")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn lookup<const B: usize>(
        p: *const u8,
        t: &[__m256; 4],
        grid: &[f32; 256],
        ctl: __m256i,
        sh: __m256i,
        mask: __m256i,
        sh_lo: __m256i,
    ) -> __m256 {
        // SAFETY: the caller guarantees 8 readable bytes at `p`; see the module comment.
        unsafe {
            if B <= 4 {
                // 8 codes in the low 32 bits: lane i shifted right by i*B.
                let w = (p as *const u32).read_unaligned();
                let v = _mm256_srlv_epi32(_mm256_set1_epi32(w as i32), sh_lo);
                if B < 3 {
                    _mm256_permutevar8x32_ps(t[0], _mm256_and_si256(v, mask))
                } else if B == 3 {
                    _mm256_permutevar8x32_ps(t[0], v)
                } else {
                    let sel = _mm256_castsi256_ps(_mm256_slli_epi32::<28>(v));
                    _mm256_blendv_ps(
                        _mm256_permutevar8x32_ps(t[0], v),
                        _mm256_permutevar8x32_ps(t[1], v),
                        sel,
                    )
                }
            } else if B == 8 {
                let idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast()));
                _mm256_i32gather_ps::<4>(grid.as_ptr(), idx)
            } else {
                let w = (p as *const u64).read_unaligned();
                let v = _mm256_srlv_epi32(_mm256_shuffle_epi8(_mm256_set1_epi64x(w as i64), ctl), sh);
                _mm256_i32gather_ps::<4>(grid.as_ptr(), _mm256_and_si256(v, mask))
            }
        }
    }

    /// [`super::v04_scales`] with the eight sub-scale fields extracted and multiplied in one
    /// vector: lane `g` takes field `g / PER` (`PER` = 2 for 16-element sub-blocks, 4 for 32). The
    /// products are those of the scalar code (exact: an 11-bit significand times an integer of at
    /// most 8 bits, R-13.3).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn v04_scales(rec: &Record<'_>, blk: u64) -> [f32; 8] {
        let (d, word) = v04_word(rec, blk);
        let q = i32::from(rec.layout.params.sub_bits);
        let per_log2 = if rec.sub_shift == 4 { 1 } else { 2 };
        let mut out = [0f32; 8];
        // SAFETY: see the module comment; the store writes the 8 f32 of `out`.
        unsafe {
            let field = _mm256_srlv_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(per_log2));
            let sh = _mm256_mullo_epi32(field, _mm256_set1_epi32(q));
            let v = _mm256_srlv_epi32(_mm256_set1_epi32(word as u32 as i32), sh);
            let m = _mm256_and_si256(v, _mm256_set1_epi32((1i32 << q) - 1));
            let f = _mm256_mul_ps(_mm256_cvtepi32_ps(m), _mm256_set1_ps(d));
            _mm256_storeu_ps(out.as_mut_ptr(), f);
        }
        out
    }

    /// One 64-element code group's operands for [`group`].
    struct Kern<'g> {
        /// The group's first code byte; 8 bytes are readable from every 8-code group's first byte.
        codes: *const u8,
        /// `x` at the group's first column; 64 values readable.
        xs: *const f32,
        t: &'g [__m256; 4],
        grid: &'g [f32; 256],
        ctl: __m256i,
        sh: __m256i,
        mask: __m256i,
        sh_lo: __m256i,
    }

    /// Adds one group's products into the lanes: `es[s]` is the scale of the 8-code groups
    /// `s * PER .. (s + 1) * PER`. Constant trip counts, so that the loops unroll and the four
    /// accumulators stay in registers.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn group<const B: usize, const PER: usize>(k: &Kern<'_>, es: &[f32], acc: &mut [__m256; 4]) {
        // SAFETY: AVX2 is available (this function's contract); `Kern`'s fields say what is
        // readable, and `es` holds `8 / PER` scales (checked by the slice indexing).
        unsafe {
            for (sb, &e) in es[..8 / PER].iter().enumerate() {
                let sv = _mm256_set1_ps(e);
                // Up to 4 bits, the table scaled once per scale: each lookup is then the product
                // `scale × grid[code]` itself (the same single rounding).
                let u = [_mm256_mul_ps(k.t[0], sv), _mm256_mul_ps(k.t[1], sv), k.t[2], k.t[3]];
                for g in sb * PER..(sb + 1) * PER {
                    let p = k.codes.add(g * B);
                    let v = if B <= 4 {
                        lookup::<B>(p, &u, k.grid, k.ctl, k.sh, k.mask, k.sh_lo)
                    } else {
                        _mm256_mul_ps(lookup::<B>(p, k.t, k.grid, k.ctl, k.sh, k.mask, k.sh_lo), sv)
                    };
                    let prod = _mm256_mul_ps(v, _mm256_loadu_ps(k.xs.add(8 * g)));
                    acc[g % 4] = _mm256_add_ps(acc[g % 4], prod);
                }
            }
        }
    }

    /// Fused row dot products (`crate::dot`'s defined order, bit for bit): for rows of whole
    /// 64-element code groups (`cols % 64 == 0`, so that every row starts on a group), each group's
    /// 8 codes at a time are looked up, multiplied by their effective scale (the decoded value of
    /// the same single rounding) and by `x`, and added into the four 8-lane
    /// registers that hold lanes `0..32` (`c % 32`: group `g` of 8 goes to register `g % 4`);
    /// separate multiplies and adds, no FMA. The reconstruction never leaves the registers.
    /// The caller checked the ranges and `cols % 64 == 0`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn dot_rows<const B: usize>(rec: &Record<'_>, first_row: u64, x: &[f32], y: &mut [f32]) {
        let cols = x.len();
        let gb = 8 * B; // code bytes per 64-element group
        let b = B as i32;
        // SAFETY: AVX2 is available (this function's contract); see the module comment. Code
        // loads read at most 8 bytes from a group's first byte, either in place (checked per group:
        // 8 more bytes of the codes section follow the group) or from `pad`; the `x` loads read
        // `x[c..c + 8]` with `c + 8 <= cols`.
        unsafe {
            let (ctl, sh, mask) = unpack_ctl(B as u32);
            let sh_lo = _mm256_setr_epi32(0, b, 2 * b, 3 * b, 4 * b, 5 * b, 6 * b, 7 * b);
            let grid = &rec.grid;
            let t: [__m256; 4] = core::array::from_fn(|j| _mm256_loadu_ps(grid.as_ptr().add(8 * j)));
            let sc = SubCtl::new(rec);
            let mut es = Es([0f32; 16]);
            let mut es_blk = u64::MAX;
            let mut pad = [0u8; 72];
            for (k, out) in y.iter_mut().enumerate() {
                let mut acc = [_mm256_setzero_ps(); 4];
                let row0 = (first_row + k as u64) * cols as u64;
                for c0 in (0..cols).step_by(BLOCK) {
                    let blk = (row0 + c0 as u64) / BLOCK as u64;
                    let at = blk as usize * gb;
                    let codes = if rec.codes.len() >= at + gb + 8 {
                        rec.codes.as_ptr().add(at)
                    } else {
                        pad[..gb].copy_from_slice(&rec.codes[at..at + gb]);
                        pad.as_ptr()
                    };
                    let xs = x.as_ptr().add(c0);
                    // The effective scales of this 64-element group's 8-code groups: one for the
                    // group in a v0.3 record; with two-level scales those of its sub-blocks (2
                    // groups per sub-block of 16, 4 per 32), from the block's scales computed once
                    // per 256-element block.
                    let k = Kern {
                        codes,
                        xs,
                        t: &t,
                        grid,
                        ctl,
                        sh,
                        mask,
                        sh_lo,
                    };
                    if rec.sub_shift == 0 {
                        es.0[0] = v03_scales(rec, blk);
                        group::<B, 8>(&k, &es.0[..1], &mut acc);
                    } else {
                        if blk / 4 != es_blk {
                            es = block_scales(rec, blk / 4, &sc);
                            es_blk = blk / 4;
                        }
                        let j = (blk % 4) as usize;
                        if sc.s16 {
                            group::<B, 2>(&k, &es.0[4 * j..4 * j + 4], &mut acc);
                        } else {
                            group::<B, 4>(&k, &es.0[2 * j..2 * j + 2], &mut acc);
                        }
                    }
                }
                let mut lanes = [0f32; 32];
                for (j, a) in acc.iter().enumerate() {
                    _mm256_storeu_ps(lanes.as_mut_ptr().add(8 * j), *a);
                }
                *out = crate::dot::fold(lanes);
            }
        }
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn decode_with<const B: usize, S: GroupScales>(
        rec: &Record<'_>,
        start: u64,
        out: &mut [f32],
        scales: impl Fn(&Record<'_>, u64) -> S,
    ) {
        let grid = &rec.grid;
        let b = B as i32;
        // SAFETY: see the module comment.
        unsafe {
            let shifts = _mm256_setr_epi32(0, b, 2 * b, 3 * b, 0, b, 2 * b, 3 * b);
            let maskv = _mm256_set1_epi32((1i32 << B) - 1);
            let spread = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
            let t0 = _mm256_loadu_ps(grid.as_ptr());
            let t1 = _mm256_loadu_ps(grid.as_ptr().add(8));
            if B == 4 {
                for_each_block(rec, start, out, scales, |codes, s: S, dst: &mut [f32; BLOCK]| {
                    prefetch_group(dst);
                    // The 64 codes as bytes, in order: low nibbles are the even codes, high
                    // nibbles the odd ones (R-6.1's LSB-first order); then one zero-extending
                    // load per 8 codes.
                    let x = _mm256_loadu_si256(codes.as_ptr().cast());
                    let m = _mm256_set1_epi8(0x0f);
                    let lo = _mm256_and_si256(x, m);
                    let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(x), m);
                    let a = _mm256_unpacklo_epi8(lo, hi);
                    let c = _mm256_unpackhi_epi8(lo, hi);
                    let mut bytes = [0u8; BLOCK];
                    _mm256_storeu_si256(bytes.as_mut_ptr().cast(), _mm256_permute2x128_si256::<0x20>(a, c));
                    _mm256_storeu_si256(
                        bytes.as_mut_ptr().add(32).cast(),
                        _mm256_permute2x128_si256::<0x31>(a, c),
                    );
                    if S::UNIFORM {
                        // One scale for the whole group: scale the 16-entry table once, so
                        // that each lookup is the product `scale × grid[code]` itself (the same
                        // single rounding, R-7.1).
                        let sv = _mm256_set1_ps(s.of(0));
                        let (u0, u1) = (_mm256_mul_ps(t0, sv), _mm256_mul_ps(t1, sv));
                        for g in 0..8 {
                            let idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64(bytes.as_ptr().add(8 * g).cast()));
                            let sel = _mm256_castsi256_ps(_mm256_slli_epi32::<28>(idx));
                            let vals = _mm256_blendv_ps(
                                _mm256_permutevar8x32_ps(u0, idx),
                                _mm256_permutevar8x32_ps(u1, idx),
                                sel,
                            );
                            _mm256_storeu_ps(dst.as_mut_ptr().add(8 * g), vals);
                        }
                    } else {
                        for g in 0..8 {
                            let sv = _mm256_set1_ps(s.of(g));
                            let idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64(bytes.as_ptr().add(8 * g).cast()));
                            let sel = _mm256_castsi256_ps(_mm256_slli_epi32::<28>(idx));
                            let vals = _mm256_blendv_ps(
                                _mm256_permutevar8x32_ps(t0, idx),
                                _mm256_permutevar8x32_ps(t1, idx),
                                sel,
                            );
                            _mm256_storeu_ps(dst.as_mut_ptr().add(8 * g), _mm256_mul_ps(vals, sv));
                        }
                    }
                });
                return;
            }
            let (ctl, sh, mask) = unpack_ctl(B as u32);
            let sh_lo = _mm256_setr_epi32(0, b, 2 * b, 3 * b, 4 * b, 5 * b, 6 * b, 7 * b);
            let t = [
                t0,
                t1,
                _mm256_loadu_ps(grid.as_ptr().add(16)),
                _mm256_loadu_ps(grid.as_ptr().add(24)),
            ];
            for_each_block(rec, start, out, scales, |codes, s: S, dst: &mut [f32; BLOCK]| {
                prefetch_group(dst);
                if B >= 5 && codes.len() >= 8 * B + 8 {
                    // 8 bytes readable from every group's first byte: the block kernel's
                    // lookup, in place.
                    for g in 0..8 {
                        let v = lookup::<B>(codes.as_ptr().add(g * B), &t, grid, ctl, sh, mask, sh_lo);
                        _mm256_storeu_ps(dst.as_mut_ptr().add(8 * g), _mm256_mul_ps(v, _mm256_set1_ps(s.of(g))));
                    }
                    return;
                }
                for g in 0..8 {
                    let sv = _mm256_set1_ps(s.of(g));
                    let x = group_word::<B>(codes, g);
                    // Codes 0..4 in the low 32 bits, codes 4..8 in the high 32 bits, then
                    // lanes [lo, lo, lo, lo, hi, hi, hi, hi].
                    let y = (x & 0xffff_ffff) | ((x >> (4 * B)) << 32);
                    let v = _mm256_permutevar8x32_epi32(_mm256_set1_epi64x(y as i64), spread);
                    let idx = _mm256_and_si256(_mm256_srlv_epi32(v, shifts), maskv);
                    let vals = if B <= 3 {
                        _mm256_permutevar8x32_ps(t0, idx)
                    } else if B == 4 {
                        let sel = _mm256_castsi256_ps(_mm256_slli_epi32::<28>(idx));
                        _mm256_blendv_ps(
                            _mm256_permutevar8x32_ps(t0, idx),
                            _mm256_permutevar8x32_ps(t1, idx),
                            sel,
                        )
                    } else {
                        _mm256_i32gather_ps::<4>(grid.as_ptr(), idx)
                    };
                    _mm256_storeu_ps(dst.as_mut_ptr().add(8 * g), _mm256_mul_ps(vals, sv));
                }
            });
        }
    }
}

/// Block-at-a-time decode of `[start, start + out.len())`; the range was checked by the caller.
pub(crate) fn decode_blocks(rec: &Record<'_>, start: u64, out: &mut [f32], use_avx2: bool) {
    macro_rules! dispatch {
        ($f:ident) => {
            match rec.bits() {
                1 => $f::<1>(rec, start, out),
                2 => $f::<2>(rec, start, out),
                3 => $f::<3>(rec, start, out),
                4 => $f::<4>(rec, start, out),
                5 => $f::<5>(rec, start, out),
                6 => $f::<6>(rec, start, out),
                7 => $f::<7>(rec, start, out),
                _ => $f::<8>(rec, start, out),
            }
        };
    }
    #[cfg(target_arch = "x86_64")]
    if use_avx2 && avx2_available() {
        #[allow(unsafe_code)]
        fn run<const B: usize>(rec: &Record<'_>, start: u64, out: &mut [f32]) {
            // SAFETY: AVX2 availability was checked just above.
            unsafe { avx2::decode::<B>(rec, start, out) }
        }
        dispatch!(run);
        return;
    }
    let _ = use_avx2;
    dispatch!(decode_portable);
}

/// The fused AVX2 row dot products of [`crate::dot`] where they apply (AVX2 available and
/// `cols % 64 == 0`); returns false, having done nothing, where they do not.
pub(crate) fn dot_rows_fused(rec: &Record<'_>, first_row: u64, x: &[f32], y: &mut [f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if avx2_available() && x.len() % BLOCK == 0 {
        #[allow(unsafe_code)]
        fn run<const B: usize>(rec: &Record<'_>, first_row: u64, x: &[f32], y: &mut [f32]) {
            // SAFETY: AVX2 availability and `cols % 64 == 0` were checked just above.
            unsafe { avx2::dot_rows::<B>(rec, first_row, x, y) }
        }
        match rec.bits() {
            1 => run::<1>(rec, first_row, x, y),
            2 => run::<2>(rec, first_row, x, y),
            3 => run::<3>(rec, first_row, x, y),
            4 => run::<4>(rec, first_row, x, y),
            5 => run::<5>(rec, first_row, x, y),
            6 => run::<6>(rec, first_row, x, y),
            7 => run::<7>(rec, first_row, x, y),
            _ => run::<8>(rec, first_row, x, y),
        }
        return true;
    }
    let _ = (rec, first_row, x, y);
    false
}
