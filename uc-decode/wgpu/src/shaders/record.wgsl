// The record's sections and the per-element decode (spec R-6.1, R-7.1, R-13.4), shared by the
// dequant and matvec kernels. Prepended by common.wgsl; bindings 1..=3 of group 0.

// 2^b grid values as binary32 bits.
@group(0) @binding(1) var<storage, read> grid: array<u32>;
// One binary16 scale per block (of 64 elements, or of 256 with two-level scales), two per word,
// zero-padded to a whole word; with two-level scales (spec section 13) followed, from word
// `sub_word`, by the sub-scales section
// (q-bit integers packed as codes are, LSB first, zero-padded to a whole word).
@group(0) @binding(2) var<storage, read> scales: array<u32>;
// The codes section as little-endian words (8*b bytes = 2*b words per block).
@group(0) @binding(3) var<storage, read> codes: array<u32>;

// Code of element e (spec R-6.1): bits [e*b, e*b + b) of the little-endian bit stream. A block is
// 2*b whole words, so the position is computed per block (no overflow for any u32 e), and a code
// that straddles two words reads the next word of the same block (always in bounds).
fn code_at(e: u32, b: u32) -> u32 {
    let bit = (e & 63u) * b;
    let w = (e >> 6u) * (2u * b) + (bit >> 5u);
    let s = bit & 31u;
    var v = codes[w] >> s;
    if (s + b > 32u) {
        // Here s >= 25, so the shift 32 - s is in 1..=7 (WGSL shifts use the amount modulo 32).
        v = v | (codes[w + 1u] << (32u - s));
    }
    return v & ((1u << b) - 1u);
}

// Sub-scale t (spec R-13.2, R-13.3): bits [t*q, t*q + q) of the little-endian bit stream of the
// sub-scales section, stored in `scales` from word `sub_word` on; q = `sub_bits`, 1..=8. The
// position t*q < 2^31 fits a u32 (n < 2^32, so t < 2^28). A sub-scale that straddles two words
// reads the next word, which holds its high bits and so lies inside the section.
fn subscale_at(t: u32, q: u32, sub_word: u32) -> u32 {
    let bit = t * q;
    let w = sub_word + (bit >> 5u);
    let s = bit & 31u;
    var v = scales[w] >> s;
    if (s + q > 32u) {
        // Here s >= 25, so the shift 32 - s is in 1..=7.
        v = v | (scales[w + 1u] << (32u - s));
    }
    return v & ((1u << q) - 1u);
}

// W_base[e] as binary32 bits. `block_shift` is log2 of the block size of the binary16 scales (6, or
// 8 with two-level scales); `sub_shift` is log2 of the sub-block size S (4 or 5), or 0 for a record
// without sub-scales; with them, `sub_bits` is q (1..=8) and the sub-scales start at word
// `sub_word` of `scales`.
//
// The effective scale is the binary16 scale as binary32 (exact), times the sub-scale with
// two-level scales: an exact binary32 product (spec R-13.4: at most 11 + q <= 19 significant bits, and
// zero or in [2^-24, 2^24), never subnormal). The scale is never negative (spec R-7.2), so the
// exact product with the grid value has the sign of the grid value, and RNE is symmetric:
// |round(s * g)| = round(s * |g|). Computing the magnitude with one binary32 multiply and taking
// the sign from the grid bits gives exactly the bits of R-7.1 / R-13.4, sign of zero included,
// even on an implementation that would not honour the sign of a zero product. By R-7.4 / R-13.5
// the magnitude is +0 or normal, so flushing hardware agrees.
fn dequant_bits(e: u32, b: u32, block_shift: u32, sub_shift: u32, sub_bits: u32, sub_word: u32) -> u32 {
    let block = e >> block_shift;
    var s = bitcast<f32>(f16_bits_to_f32_bits(half_word(scales[block >> 1u], block)));
    if (sub_shift != 0u) {
        s = s * f32(subscale_at(e >> sub_shift, sub_bits, sub_word));
    }
    let g = grid[code_at(e, b)];
    let mag = bitcast<u32>(s * bitcast<f32>(g & 0x7fffffffu)) & 0x7fffffffu;
    return mag | (g & 0x80000000u);
}
